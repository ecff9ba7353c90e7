"""The experiment scripts run end to end (small settings) and find what the README says they find."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
ROOT = Path(__file__).parents[1]


def script(name, *args):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / name), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_bifurcation_finds_the_predicted_period_doubling_and_the_escape(tmp_path):
    out = script("bifurcation.py", "--out", str(tmp_path), "--num-learning-rates", "600", "--num-steps", "20000")
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in out.splitlines() if line.startswith("| ")}
    predicted = float(rows["2/f″(w*) (linear stability)"])
    assert predicted == pytest.approx(0.7623, abs=1e-4)
    assert abs(float(rows["first α with period 2 (measured)"]) - predicted) < 2e-3
    assert 1.0 < float(rows["first α that escapes to inf/nan"]) < 1.1
    assert (tmp_path / "bifurcation.png").stat().st_size > 10_000


def test_stability_quick(tmp_path):
    out = script("stability.py", "--out", str(tmp_path), "--quick")
    assert "| gd | 0.7623 |" in out and "| momentum | 1.4484 |" in out
    for name in ("phase_gd", "phase_momentum", "phase_adam", "final_state_bowl", "final_state_himmelblau"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    assert (tmp_path / "stability.md").read_text() in out


def test_step_network_quick(tmp_path):
    pytest.importorskip("sklearn")
    script("step_network.py", "--out", str(tmp_path), "--quick")
    table = (tmp_path / "table.md").read_text()
    assert "| w1 | 0.0 |" in table and "| w2 | 0.0 |" in table  # the lecture's "?": exactly zero
    for name in ("xor_success", "parity_slope", "digits_learning_rate"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
