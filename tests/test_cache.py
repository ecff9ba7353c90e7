"""The persistent compilation cache: a rerun in a fresh process compiles nothing, and its results are the same bits.

Each rerun is a real fresh process (a subprocess) with its own cache folder under ``tmp_path``; the
user's own cache folder is never touched. XLA compilations are counted with JAX's public monitoring
events: ``/jax/core/compile/backend_compile_duration`` fires for every program JAX hands to its
compiler, cache hits included, and ``/jax/compilation_cache/cache_hits`` for those read from disk
(both in jax 0.7.2 and 0.10.2), so compilations by XLA are the first count minus the second.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxdescent

ROOT = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items()
       if k not in ("JAXDESCENT_COMPILATION_CACHE", "JAXDESCENT_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR",
                    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
ENV.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")

# A few Adam steps on a 2-D quadratic over 3 learning rates x 2 seeds. The child compiles one program
# before turning the cache on (a notebook that turns it on late), then sweeps; it prints what it counted.
SWEEP = r"""
import json, sys
import jaxdescent
import jax, jax.numpy as jnp, numpy as np, optax

mode, folder, save_to = sys.argv[1:]
jax.jit(lambda x: x + 1)(1.0)  # compiled before the cache is on: stays uncached
used = jaxdescent.use_compilation_cache(folder) if mode == "cache" else None
hits = []
jax.monitoring.register_event_listener(
    lambda name, **kw: hits.append(name) if name == "/jax/compilation_cache/cache_hits" else None)

def train(hp, key):
    w = jax.random.normal(key, (2,))
    opt = optax.adam(hp["learning_rate"])
    loss = lambda w: jnp.sum(jnp.array([1.0, 10.0]) * w ** 2)

    def step(carry, _):
        w, state = carry
        updates, state = opt.update(jax.grad(loss)(w), state)
        w = optax.apply_updates(w, updates)
        return (w, state), loss(w)

    (w, _), losses = jax.lax.scan(step, (w, opt.init(w)), None, length=5)
    return {"loss": losses, "w": w}

with jaxdescent.count_compilations() as compiled:  # the sweep, and the indexing below
    runs = jaxdescent.sweep_fn(train, {"learning_rate": np.array([0.01, 0.1, 0.3])}, seeds=2, progress=False)
    np.save(save_to, np.stack([np.asarray(runs.metrics["loss"][..., -1]), np.asarray(runs.metrics["w"][..., 0])]))
print(json.dumps({"used": used, "programs": compiled.count, "hits": len(hits)}))
"""


def _child(script, *args, env=ENV):
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _entries(folder):
    return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).is_dir() else []


@pytest.mark.slow  # three fresh processes: about 12 s on 2 cores
def test_a_rerun_compiles_nothing_and_gives_the_same_bits(tmp_path):
    folder = tmp_path / "cache"
    plain = _child(SWEEP, "plain", folder, tmp_path / "plain.npy")
    assert plain["hits"] == 0 and plain["programs"] >= 1 and _entries(folder) == []

    first = _child(SWEEP, "cache", folder, tmp_path / "first.npy")
    assert first["used"] == str(folder)
    # every program kept, fast ones too (jax 0.7.2 compiles one eager conversion twice: the second is a hit)
    assert len(_entries(folder)) == first["programs"] - first["hits"] >= 1

    second = _child(SWEEP, "cache", folder, tmp_path / "second.npy")
    assert second["programs"] == first["programs"]
    assert second["programs"] - second["hits"] == 0  # nothing compiled by XLA: every program read from disk

    reference = np.load(tmp_path / "plain.npy")
    assert reference.dtype == np.float32 and reference.shape == (2, 3, 2)
    for name in ("first.npy", "second.npy"):
        got = np.load(tmp_path / name)
        assert got.dtype == reference.dtype and got.tobytes() == reference.tobytes(), name


# What the settings are after use_compilation_cache, in a fresh process that imports JAX with `env`.
SETTINGS = r"""
import json, sys
import jax
if sys.argv[2] != "-":
    jax.config.update("jax_compilation_cache_dir", sys.argv[2])
import jaxdescent
used = jaxdescent.use_compilation_cache(None if sys.argv[1] == "-" else sys.argv[1])
print(json.dumps({"used": used, "dir": jax.config.jax_compilation_cache_dir,
                  "min_secs": jax.config.jax_persistent_cache_min_compile_time_secs}))
"""


@pytest.mark.parametrize("how", [pytest.param("env", id="JAX_COMPILATION_CACHE_DIR"),
                                 pytest.param("config", id="jax.config.update")])
def test_a_users_cache_folder_and_thresholds_are_kept(tmp_path, how):
    mine, ours = tmp_path / "mine", tmp_path / "ours"
    env = {**ENV, "JAX_COMPILATION_CACHE_DIR": str(mine)} if how == "env" else ENV
    got = _child(SETTINGS, ours, "-" if how == "env" else mine, env=env)
    assert got == {"used": str(mine), "dir": str(mine), "min_secs": 1.0}
    assert not ours.exists()


def test_a_users_minimum_compile_time_is_kept(tmp_path):
    env = {**ENV, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "2.5"}
    got = _child(SETTINGS, tmp_path / "ours", "-", env=env)
    assert got == {"used": str(tmp_path / "ours"), "dir": str(tmp_path / "ours"), "min_secs": 2.5}


@pytest.mark.slow  # three fresh processes: about 7-10 s on 2 cores
def test_the_default_folder_and_threshold(tmp_path):
    got = _child(SETTINGS, "-", "-", env={**ENV, "JAXDESCENT_CACHE_DIR": str(tmp_path / "env")})
    assert got == {"used": str(tmp_path / "env"), "dir": str(tmp_path / "env"), "min_secs": 0.0}
    assert (tmp_path / "env").is_dir()
    got = _child(SETTINGS, "-", "-", env={**ENV, "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert got["used"] == str(tmp_path / "xdg" / "jaxdescent" / "xla")
    home = {k: v for k, v in ENV.items() if k != "XDG_CACHE_HOME"}
    got = _child(SETTINGS, "-", "-", env={**home, "HOME": str(tmp_path / "home")})
    assert got["used"] == str(tmp_path / "home" / ".cache" / "jaxdescent" / "xla")


def test_a_second_folder_in_one_process_is_refused(tmp_path):
    script = SETTINGS.replace("used = ", "jaxdescent.use_compilation_cache(sys.argv[1] + '-first'); used = ")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "b"), "-"], capture_output=True, text=True,
                          env=ENV)
    assert proc.returncode == 1
    assert re.search(r"ValueError: path: this process already keeps its compiled programs in '.*b-first'",
                     proc.stderr), proc.stderr
    again = SETTINGS.replace("used = ", "jaxdescent.use_compilation_cache(sys.argv[1]); used = ")
    assert _child(again, tmp_path / "c", "-")["used"] == str(tmp_path / "c")  # the same folder twice is fine


@pytest.fixture
def blank_file(tmp_path):
    (tmp_path / "a_file").write_text("")
    return tmp_path / "a_file"


@pytest.mark.parametrize("path, error, message", [
    pytest.param("a_file", ValueError, r"^path: '.*a_file' is a file, not a folder$", id="a file"),
    pytest.param("a_file/below", ValueError, r"^path: cannot create the cache folder '.*a_file/below'", id="under a file"),
    pytest.param("", ValueError, r"^path: an empty name; give a folder, or None for the default$", id="empty"),
    pytest.param(3, TypeError, r"^path: expected a folder name \(str or os.PathLike\), got int$", id="not a path"),
])
def test_a_bad_path_is_refused_naming_path(blank_file, path, error, message):
    before = jax.config.jax_compilation_cache_dir
    with pytest.raises(error, match=message):
        jaxdescent.use_compilation_cache(blank_file.parent / path if isinstance(path, str) and path else path)
    assert jax.config.jax_compilation_cache_dir == before  # refused before anything is set


CLI_SWEEP = ["-P", "-m", "jaxdescent.cli", "sweep", "--loss", "sextic", "--learning-rate", "0.1,0.2", "--w0", "1",
             "--num-steps", "10", "--quiet", "--out"]


@pytest.mark.slow  # three fresh processes of the command: about 14 s on 2 cores
def test_the_command_keeps_its_programs_unless_told_not_to(tmp_path):
    env = {**ENV, "JAXDESCENT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, *CLI_SWEEP, tmp_path / "a"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(_entries(tmp_path / "cache")) >= 1

    env = {**ENV, "JAXDESCENT_CACHE_DIR": str(tmp_path / "off"), "JAXDESCENT_COMPILATION_CACHE": "0"}
    proc = subprocess.run([sys.executable, *CLI_SWEEP, tmp_path / "b"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "off").exists()

    (tmp_path / "a_file").write_text("")  # a default folder that cannot be used: one line, the command still runs
    env = {**ENV, "JAXDESCENT_CACHE_DIR": str(tmp_path / "a_file")}
    proc = subprocess.run([sys.executable, *CLI_SWEEP, tmp_path / "c"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("jaxdescent: compiled programs are not kept on disk: path: ")
    assert (tmp_path / "c" / "results.npz").is_file()


def test_the_readme_example_keeps_its_programs(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### A rerun compiles nothing", 1)[1]
    block = re.search(r"^```python\n(.*?)^```", section, re.S | re.M).group(1)
    env = {**ENV, "JAXDESCENT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "cache")
    assert len(_entries(tmp_path / "cache")) >= 1
