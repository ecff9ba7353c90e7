"""The API reference lists every public name, and CI installs and tests as the README says."""

import re
import shlex
from pathlib import Path

import jaxdescent

ROOT = Path(__file__).parents[1]
NAMESPACE_MODULES = ["losses", "network", "datasets", "results", "descent"]  # imported as namespaces


def _documented():
    return set(re.findall(r"^::: jaxdescent\.(\w+)\s*$", (ROOT / "docs" / "api.md").read_text(encoding="utf-8"), re.M))


def test_every_public_name_is_in_the_api_reference():
    missing = sorted(set(jaxdescent.__all__) - _documented())
    assert not missing, f"add '::: jaxdescent.NAME' to docs/api.md for {missing}"


def test_the_namespace_modules_are_in_the_api_reference():
    assert set(NAMESPACE_MODULES) <= _documented()


def test_the_api_reference_names_only_what_exists():
    assert not {name for name in _documented() if not hasattr(jaxdescent, name)
                and name not in NAMESPACE_MODULES}


def _readme_commands():
    block = re.search(r"^```bash\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S | re.M).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines()]


def test_the_readme_opens_with_the_lecture_and_the_fast_tests():
    reproduce, tests = _readme_commands()[:2]
    assert "jaxdescent reproduce" in reproduce
    assert tests.endswith('python -m pytest -m "not slow"')
    # each line makes the venv it activates, so it works whether or not the other one ran
    for line in (reproduce, tests):
        venv = shlex.split(line)[3]
        assert f". {venv}/bin/activate" in line


def test_ci_installs_the_tests_as_the_readme_says():
    tests = _readme_commands()[1]
    install = re.search(r'pip install (-e "\.\[[^\]]*\]")', tests).group(1)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"pip install -q {install}" in ci
    assert "mkdocs build --strict" in ci
