"""The jaxdescent command as a user runs it: real subprocesses, exit codes, files on disk."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxdescent import results

CLI = [sys.executable, "-m", "jaxdescent.cli"]


def run(*args, check=True):
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_sweep_writes_results_that_match_the_library(tmp_path):
    from jaxdescent import sweep
    from jaxdescent.losses import sextic

    out = run("sweep", "--loss", "sextic", "--learning-rate", "logspace:-3:0:7", "--w0", "-1.5,0,1.9",
              "--num-steps", "200", "--out", str(tmp_path), "--csv", "--quiet").stdout
    assert "21 runs of 200 steps" in out
    r = results.load(tmp_path)
    expected = sweep(sextic, w0=np.array([-1.5, 0, 1.9], np.float32),
                     learning_rate=np.logspace(-3, 0, 7).astype(np.float32), num_steps=200)
    np.testing.assert_array_equal(r.arrays["final_w"], expected.final_w)
    np.testing.assert_array_equal(r.arrays["diverged_step"], expected.diverged_step)
    assert r.arrays["diverged"][-1, -1] and not r.arrays["diverged"][0].any()
    assert r.meta["num_steps"] == 200 and r.meta["jax_version"] and r.meta["devices"]
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 22


def test_sweep_user_loss_and_two_dimensional_start_points(tmp_path):
    (tmp_path / "myloss.py").write_text("def tilted(w):\n    return (w[0] - 1.0) ** 2 + 3.0 * w[1] ** 2\n")
    proc = subprocess.run([*CLI, "sweep", "--loss", "myloss:tilted", "--learning-rate", "0.1,0.2",
                           "--w0", "-8,7;1,2", "--num-steps", "300", "--out", str(tmp_path / "o"), "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    final = results.load(tmp_path / "o").arrays["final_w"]
    assert final.shape == (2, 2, 2)
    np.testing.assert_allclose(final, np.broadcast_to([1.0, 0.0], (2, 2, 2)), atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--loss", "nope"], "unknown loss 'nope'"),
        (["--learning-rate", "linspace:1:2"], "cannot read grid"),
        (["--learning-rate", "0.1,-1"], "> 0"),
        (["--num-steps", "-3"], "num-steps"),
        (["--w0", "1,nan"], "w0"),
        (["--out", "/proc/forbidden/x"], "cannot create output folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    base = {"--loss": "sextic", "--learning-rate": "0.1", "--w0": "1", "--num-steps": "3", "--out": str(tmp_path / "o")}
    base.update(dict(zip(args[::2], args[1::2])))
    proc = run("sweep", *[x for kv in base.items() for x in kv], "--quiet", check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_another_run_into_the_same_folder_is_refused(tmp_path):
    args = ["sweep", "--loss", "sextic", "--learning-rate", "0.1", "--w0", "1", "--out", str(tmp_path), "--quiet"]
    run(*args, "--num-steps", "5")
    before = (tmp_path / "results.npz").read_bytes()
    proc = run(*args, "--num-steps", "6", check=False)
    assert proc.returncode == 2 and "holds another run" in proc.stderr
    assert (tmp_path / "results.npz").read_bytes() == before


def test_killed_sweep_resumes_bit_identical(tmp_path):
    args = ["sweep", "--loss", "sextic", "--learning-rate", "logspace:-4:0:2000", "--w0", "linspace:-2:2:64",
            "--num-steps", "2000", "--piece-runs", "2048", "--quiet", "--out"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*CLI, *args, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        done = list((killed / "pieces").glob("piece_*.npz")) if (killed / "pieces").exists() else []
        if len(done) >= 3:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "results.npz").exists()
    finished = len(list((killed / "pieces").glob("piece_*.npz")))
    assert 3 <= finished < 63

    run(*args, str(killed))
    run(*args, str(tmp_path / "whole"))
    a, b = results.load(killed).arrays, results.load(tmp_path / "whole").arrays
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["diverged"].any() and (a["converged_step"] >= 0).any()


def test_reproduce_writes_table_and_figures(tmp_path):
    pytest.importorskip("matplotlib")
    run("reproduce", "--out", str(tmp_path), "--quiet")
    for name in ("lecture.txt", "lecture.json", "descent_on_loss.png", "loss_vs_step.png", "phase_diagram.png",
                 "bowl_path.png", "network_training.png"):
        assert (tmp_path / name).stat().st_size > 1000, name


def test_help_has_examples():
    for sub in ("reproduce", "sweep", "train"):
        assert "example:" in run(sub, "--help").stdout


def test_train_xor_matches_the_library(tmp_path):
    import jax
    import optax

    from jaxdescent import datasets, network

    out = run("train", "--dataset", "xor", "--hidden", "4", "--learning-rate", "0.01,0.1", "--seeds", "8",
              "--hyperparam", "slope=2,4", "--num-steps", "300", "--out", str(tmp_path), "--quiet").stdout
    assert "8 seeds × 4 settings (2 learning_rate × 2 slope)" in out
    assert "learning_rate = 0.1, slope = 4: solved" in out
    r = results.load(tmp_path).arrays
    assert r["loss"].shape == (2, 2, 8, 301) and r["solved_step"].shape == (2, 2, 8)
    np.testing.assert_array_equal(r["slope"], [2.0, 4.0])
    x, y = datasets.xor()
    for s in (0, 5):  # seed s of the run uses fold_in(key(--seed), s)
        _, history = network.train(jax.random.fold_in(jax.random.key(0), s), x, y, optimizer=optax.adam(0.1),
                                   n_hidden=4, num_steps=300, ste="sigmoid", slope=4.0)
        assert r["solved_step"][1, 1, s] == history.solved_step
        np.testing.assert_allclose(r["loss"][1, 1, s], history.loss, atol=1e-6)


def test_sweep_hyperparam_axes_and_streamed_csv(tmp_path):
    import optax

    from jaxdescent import sweep
    from jaxdescent.losses import sextic

    out = run("sweep", "--loss", "sextic", "--optimizer", "sgd", "--hyperparam", "momentum=0.0,0.5,0.9",
              "--learning-rate", "0.01,0.1", "--w0", "-1,1.9", "--num-steps", "100", "--csv", "--plot",
              "--out", str(tmp_path), "--quiet").stdout
    assert "12 runs of 100 steps" in out
    r = results.load(tmp_path).arrays
    expected = sweep(sextic, w0=np.array([-1, 1.9], np.float32), learning_rate=np.array([0.01, 0.1], np.float32),
                     num_steps=100, optimizer=optax.sgd, hyperparams={"momentum": np.array([0, 0.5, 0.9], np.float32)})
    np.testing.assert_array_equal(r["final_w"], expected.final_w)
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[0] == "learning_rate,momentum,w0,final_loss,diverged,diverged_step,converged_step,final_w"
    assert len(lines) == 13 and lines[3].startswith("0.01,0.5,-1.0,")
    assert (tmp_path / "phase_diagram.png").stat().st_size > 10_000
    proc = run("sweep", "--loss", "sextic", "--hyperparam", "nope=1", "--learning-rate", "0.1", "--w0", "1",
               "--num-steps", "3", "--out", str(tmp_path / "bad"), "--quiet", check=False)
    assert proc.returncode == 2 and "optimizer" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad" / "config.json").exists()  # refused before anything was written


@pytest.mark.parametrize("args, message", [(["--dataset", "mnist"], "unknown dataset"),
                                           (["--dataset", "parity:x"], "parity needs a bit count"),
                                           (["--hidden", "0"], "must be >= 1")])
def test_train_bad_input(tmp_path, args, message):
    base = {"--dataset": "xor", "--hidden": "2", "--learning-rate": "0.1", "--num-steps": "3", "--out": str(tmp_path)}
    base.update(dict(zip(args[::2], args[1::2])))
    proc = run("train", *[x for kv in base.items() for x in kv], "--quiet", check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
