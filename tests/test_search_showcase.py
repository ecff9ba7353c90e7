"""The search showcase runs end to end (--quick) and its table holds every method with plausible numbers."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # its own process, about 20-40 s on 2 cores

ROOT = Path(__file__).parents[1]


def test_search_showcase_quick(tmp_path):
    for extra in ("optuna", "matplotlib", "pandas", "sklearn"):
        pytest.importorskip(extra)
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "search_showcase.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "search_showcase.md").read_text() in proc.stdout
    assert (tmp_path / "search_showcase.png").stat().st_size > 10_000
    with open(tmp_path / "search_showcase.csv", newline="") as f:
        rows = {row["method"].split()[0]: row for row in csv.DictReader(f)}
    assert list(rows) == ["(a)", "(b)", "(b/3)", "(b/9)", "(c)", "(d)", "(e)", "(f)"]
    budget = 18 * 90  # --quick: 18 trainings of 90 steps
    ran = [key for key, row in rows.items() if row["wall s"]]
    assert ran == ["(a)", "(b)", "(b/3)", "(b/9)", "(c)", "(d)", "(e)"]
    for key in ran:
        row = rows[key]
        assert 0.8 < float(row["best val. accuracy"]) <= 1, row  # chance is 0.1; 90 steps already learn digits
        assert 0.8 < float(row["test accuracy (that config)"]) <= 1, row
        assert 0 < float(row["wall s"]) < 300 and float(row["wall / Optuna sequential"]) > 0, row
        steps = int(row["training steps"].replace(",", ""))
        part = {"(b/3)": 3, "(b/9)": 9}.get(key, 1)
        assert steps == budget if key in ("(a)", "(c)", "(d)", "(e)") else budget / part / 2 < steps <= budget / part, row
    assert rows["(e)"]["wall / Optuna sequential"] == "1.000"
    for key in set(rows) - set(ran):
        assert rows[key]["setting"].startswith("skipped: "), rows[key]
    assert "ray is not installed" in rows["(f)"]["setting"] or "ray imports" in rows["(f)"]["setting"]
    assert "Goal" in proc.stdout
