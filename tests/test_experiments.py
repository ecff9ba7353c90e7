"""The experiment scripts run end to end (small settings) and find what the README says they find."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# every experiment script in its own process: 15-90 s each on 2 cores (.ci/run runs them)
pytestmark = pytest.mark.slow

pytest.importorskip("matplotlib")
ROOT = Path(__file__).parents[1]


def script(name, *args, timeout=300):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / name), *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_bifurcation_quick(tmp_path):
    out = script("bifurcation.py", "--out", str(tmp_path), "--quick")
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in out.splitlines() if line.startswith("| ")}
    predicted = float(rows["2/f″(w*) (linear stability)"][0])
    assert predicted == pytest.approx(0.7623, abs=1e-4)
    assert abs(float(rows["first α with period 2 (measured)"][0]) - predicted) < 3e-3
    assert 1.0 < float(rows["first α that escapes to inf/nan"][0]) < 1.1
    assert rows["first α with no period (chaos)"][0].strip() == "nan"
    # the double well: onsets at 1 and √5 − 1, then ratios of gaps heading for Feigenbaum's δ
    assert float(rows["2"][2]) == pytest.approx(1.0, abs=1e-4)
    assert float(rows["4"][2]) == pytest.approx(np.sqrt(5) - 1, abs=1e-4)
    assert float(rows["16"][5]) == pytest.approx(4.669, abs=0.15)
    assert float(rows["escape (bisected; predicted α = 2: 4(1 + α)³ = 27(2 + α))"][0]) == pytest.approx(2.0, abs=1e-3)
    assert 1.44 < float(rows["period-3 window opens (bisected; tangent bifurcation)"][0]) < 1.46
    assert (tmp_path / "bifurcation.png").stat().st_size > 10_000
    assert (tmp_path / "bifurcation.md").read_text() in out


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


def test_hyperparameter_sweep_quick(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("pandas")
    out = script("hyperparameter_sweep.py", "--out", str(tmp_path), "--quick")
    assert (tmp_path / "heatmap.png").stat().st_size > 10_000
    table = (tmp_path / "table.md").read_text()
    assert table in out
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ") and "learning_rate" not in line]
    # --quick: learning rates {0.01, 0.03} x slopes {1, 2} x b1 {0.9}, each setting once
    assert sorted((float(r[0]), float(r[1]), float(r[2])) for r in rows) == [
        (0.01, 1.0, 0.9), (0.01, 2.0, 0.9), (0.03, 1.0, 0.9), (0.03, 2.0, 0.9)]
    medians = [float(r[3]) for r in rows]
    assert medians == sorted(medians, reverse=True)  # best first
    assert medians[0] > 0.5  # 100 minibatch steps already learn digits (chance: 0.1)
    for r in rows:
        median, low, high, train = (float(v) for v in r[3:7])
        assert 0 <= low <= median <= high <= 1 and 0 <= train <= 1
    assert "8 runs" in out and "one sweep_fn call" in out


def table_rows(text):
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("|---")]


def test_pbt_toy_quick(tmp_path):
    out = script("pbt_toy.py", "--out", str(tmp_path), "--quick")
    rows = {r[0]: [float(x) for x in r[1:]] for r in table_rows(out) if r[0] != "variant"}
    assert rows["PBT (exploit + explore)"][2] > 1.19  # the worst key still reaches the optimum 1.2
    assert rows["grid search (each h alone)"] == pytest.approx([1.2 - 0.81] * 3, abs=1e-3)  # one θ_i stays 0.9
    assert rows["exploit only"][1] < 0.4 and rows["explore only"][1] < 1.1
    assert (tmp_path / "pbt_toy.png").stat().st_size > 10_000
    assert (tmp_path / "pbt_toy.md").read_text() in out


def test_edge_of_stability_quick(tmp_path):
    out = script("edge_of_stability.py", "--out", str(tmp_path), "--quick")
    rows = {(r[0], r[1]): r for r in table_rows(out) if r[1] and r[0] != "optimizer"}
    for eta in ("0.2", "0.3"):  # the sharpness reached 2/η and hovers there; the loss falls, not monotonically
        _, _, threshold, reached, ratio, loss, rose = rows[("gd", eta)]
        assert float(threshold) == pytest.approx(2 / float(eta), rel=1e-2)
        assert int(reached) < 300 and 0.95 < float(ratio.split()[0]) < 1.1
        start, end = (float(x) for x in loss.split("→"))
        assert end < start / 2 and float(rose.rstrip("%")) > 10
    assert float(rows[("momentum β = 0.9", "0.3")][2]) == pytest.approx(3.8 / 0.3, rel=1e-2)
    assert (tmp_path / "edge_of_stability.png").stat().st_size > 10_000
    assert (tmp_path / "edge_of_stability.md").read_text() in out


def test_quadratics_quick(tmp_path):
    out = script("quadratics.py", "--out", str(tmp_path), "--quick")
    rows = [r for r in table_rows(out) if r[0] != "κ"]
    assert [r[0] for r in rows] == ["10", "100"]
    for kappa, edge, bracket, crit, best, best_measured, theory, rate in rows:
        low, high = (float(x) for x in bracket.split("–"))
        assert low < float(edge) < high and high - low < 1.1e-3 * float(edge)
        assert float(crit) == pytest.approx(float(edge), rel=1e-4)
        grid_step = float(best_measured.split("grid step ")[1].rstrip(")"))
        assert abs(float(best_measured.split()[0]) - float(best)) <= grid_step
        assert float(theory) == pytest.approx((float(kappa) - 1) / (float(kappa) + 1), rel=1e-5)
        assert float(rate) == pytest.approx(float(theory), abs=1e-5)
    assert (tmp_path / "quadratics.png").stat().st_size > 10_000


def test_engine_overhead_quick(tmp_path):
    pytest.importorskip("sklearn")
    import json

    # nine workloads, and two fresh processes each for the first calls
    out = script("benchmarks/engine_overhead.py", "--out", str(tmp_path), "--quick", timeout=900)
    (path,) = tmp_path.glob("engine_overhead_*_quick.json")  # named after the backend
    report = json.loads(path.read_text())
    rows = {r["workload"]: r for r in report["rows"]}
    names = ["sextic", "fullbatch_mlp", "minibatch_mlp", "step_network", "conv_net", "rnn", "rosenbrock", "logistic",
             "attention"]
    assert list(rows) == names
    table = path.with_suffix(".txt").read_text()
    assert table in out
    for name, r in rows.items():
        assert name in table and r["runs"] > 1 and r["best_chunk"] is not None
        assert all(r[k] > 0 for k in ("sweep_fn_s", "vmap_s", "flat_vmap_s", "loop_s"))  # timed, not how fast
        assert r["loop_runs_timed"] == r["runs"]  # --quick: the loop did every run, nothing extrapolated
        assert r["set"] == ("held-out" if name in ("rnn", "rosenbrock", "logistic", "attention") else "tuned")
        # --quick: sweep_fn's and jit(vmap)'s first calls, each in its own process, which compiled there
        assert list(r["first_call_s"]) == list(r["compile_s"]) == ["sweep_fn", "jit(vmap)"]
        for m in ("sweep_fn", "jit(vmap)"):
            assert r["first_call_s"][m] > 0 and r["compile_s"][m] > 0 and r["import_s"][m] > 0, r
            assert r["compile_in_process_s"][m] > 0, r
        assert r["compile_sweep_fn_over_vmap"] == r["compile_s"]["sweep_fn"] / r["compile_s"]["jit(vmap)"]
        assert r["sweep_fn_compile_events_warm_s"] == 0  # compiled once: later calls trace and compile nothing
        if name == "step_network":
            # The step net's exact Heaviside forward turns the last bit of the first update into a different
            # net within a few steps, and sweep_fn compiles its CPU program with a wider vector width, which
            # contracts multiply-adds differently: the same jit(vmap) compiled with sweep_fn's options agrees.
            assert r["identical_flat"] or r["identical_flat_same_options"], r
        else:  # smooth trainings: sweep_fn's metrics equal the hand-written jit(vmap)'s (rounding at most)
            assert r["identical_vmap"] or r["max_rel_diff_vmap"] < 1e-5, r
            assert r["identical_flat"] or r["max_rel_diff_flat"] < 1e-5, r
            assert r["int_equal_vmap"] == 1.0, r
        assert r["max_rel_diff_loop"] < 1e-5 or name == "step_network", r
    assert path.with_suffix(".csv").read_text().count("\n") == 1 + len(rows)


def test_halving_compile_quick():
    pytest.importorskip("sklearn")
    out = script("benchmarks/halving_compile.py", "--points", "10")
    rows = {int(cells[1]): cells[2:] for cells in (line.split() for line in out.splitlines()) if cells[:1] == ["10"]}
    assert set(rows) == {1, 5}  # a search of 1 rung and one of 5
    for programs, *seconds in rows.values():
        assert int(programs) >= 1 and min(float(s) for s in seconds) > 0  # how many and how fast: the benchmark's


def test_search_showcase_spirals_cache_quick(tmp_path):
    """The held-out workload, one method and the reference alone; a second fresh process compiles nothing."""
    for extra in ("optuna", "pandas"):
        pytest.importorskip(extra)
    args = ("--quick", "--workload", "spirals", "--only", "halving", "optuna_sequential", "--compilation-cache",
            str(tmp_path / "cache"), "--out", str(tmp_path))
    runs = []
    for _ in range(2):  # the first fills the cache, the second reads it
        out = script("search_showcase.py", *args)
        header, *rows = [r for r in table_rows(out) if r[0] == "method" or r[0].startswith("(")]
        runs.append({r[0].split()[0]: dict(zip(header, r)) for r in rows})
        assert "1470 train / 367 validation / 459 test" in out and "Goal: successive halving" in out
    stem = tmp_path / "search_showcase_spirals_only_halving_optuna_sequential"
    assert stem.with_suffix(".md").read_text() in out and stem.with_suffix(".png").stat().st_size > 10_000
    cold, warm = runs
    assert list(cold) == list(warm) == ["(b)", "(e)"]
    assert cold["(e)"]["wall / Optuna sequential"] == "1.000" and float(cold["(b)"]["wall / Optuna sequential"]) > 0
    for key in ("(b)", "(e)"):
        assert 0.6 < float(cold[key]["best val. accuracy"]) <= 1, cold[key]  # chance is 0.5
        # a program read from the cache is the same executable: the same search finds the same numbers
        for column in ("best val. accuracy", "test accuracy (that config)", "training steps"):
            assert warm[key][column] == cold[key][column], (key, column)
        assert int(cold[key]["programs compiled"]) >= 1 and cold[key]["cache hits"] == "0", cold[key]
        assert warm[key]["programs compiled"] == "0" and int(warm[key]["cache hits"]) >= 1, warm[key]
        assert 0 < float(warm[key]["compile s"]) < float(cold[key]["compile s"]), (cold[key], warm[key])
