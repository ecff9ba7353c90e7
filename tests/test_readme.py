"""The README's examples print what the README says they print.

A README block is checked when it is the first Python block, or when any of its ``print(...)`` lines
carries a trailing comment: that comment is the expected output, compared as text after normalising
whitespace (runs of blanks are one blank; NumPy's padding after ``[`` and before ``]`` is dropped).
Floats must be written as printed, up to float32 rounding (a relative 1e-6: the oldest supported jax and
optax end Adam's example a unit in the last place away); remarks go on comment lines of their own.
"""

import ast
import contextlib
import io
import re
import tokenize
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def _python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def _trailing_comments(source):
    """{line number: comment text} for comments that follow code on their line."""
    comments = {}
    code_lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            if tok.start[0] in code_lines:
                comments[tok.start[0]] = tok.string[1:].strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            for line in range(tok.start[0], tok.end[0] + 1):
                code_lines.add(line)
    return comments


def _is_print(stmt):
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "print")


def _normalise(text):
    text = " ".join(text.split())
    return re.sub(r"\[ ", "[", re.sub(r" \]", "]", text))


_NUMBER = re.compile(r"-?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)$")


def _same(printed, expected):
    """The normalised texts agree, numbers within a relative 1e-6 (float32 rounding), everything else exactly."""
    a, b = re.split(r"([\s\[\](),=])", _normalise(printed)), re.split(r"([\s\[\](),=])", _normalise(expected))
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        if not (_NUMBER.match(x) and _NUMBER.match(y)):
            return False
        fx, fy = float(x), float(y)
        if not (fx == fy or abs(fx - fy) <= 1e-6 * max(abs(fx), abs(fy))):
            return False
    return True


def _checked_prints(source):
    """(statement, expected output) for every print whose lines end in a comment."""
    comments = _trailing_comments(source)
    checked = []
    for stmt in ast.parse(source).body:
        if _is_print(stmt):
            found = [comments[line] for line in range(stmt.lineno, stmt.end_lineno + 1) if line in comments]
            if found:
                checked.append((stmt, " ".join(found)))
    return checked


def _checked_blocks():
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    return [pytest.param(block, id=f"block{i}") for i, block in enumerate(blocks)
            if i == 0 or _checked_prints(block)]


def test_the_first_block_is_checked():
    first = _python_blocks(README.read_text(encoding="utf-8"))[0]
    assert len(_checked_prints(first)) >= 5, "the README's first example lost its expected outputs"


@pytest.mark.parametrize("block", _checked_blocks())
def test_readme_block_prints_what_it_says(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    expected = {stmt.lineno: text for stmt, text in _checked_prints(block)}
    namespace = {"__name__": "__readme__"}
    mismatches = []
    for stmt in ast.parse(block).body:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(ast.Module([stmt], type_ignores=[]), "README.md", "exec"), namespace)
        if stmt.lineno in expected and not _same(out.getvalue(), expected[stmt.lineno]):
            mismatches.append(f"{ast.unparse(stmt)}\n  README says: {expected[stmt.lineno]}\n  it prints:   {out.getvalue().strip()}")
    assert not mismatches, "\n".join(mismatches)


def test_normalise():
    assert _normalise("[      nan 0.7548729 0.8409684]\n") == "[nan 0.7548729 0.8409684]"
    assert _normalise("[-0.04081972  0.00939636]") == "[-0.04081972 0.00939636]"
    assert not _same("0.75626", "0.75626445")  # floats as printed, not rounded
    assert _same("[-0.0408197   0.00939636]", "[-0.04081972  0.00939636]")  # float32's last place
    assert _same("Point(w=0.75, loss=-0.4390869)", "Point(w=0.75, loss=-0.4390869)")
    assert not _same("Point(w=0.75, loss=-0.4390869)", "Point(w=0.75, loss=-0.4390887)")
    assert not _same("Point(w=0.75, loss=-0.4390869)", "Spot(w=0.75, loss=-0.4390869)")
