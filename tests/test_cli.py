"""The jaxdescent command as a user runs it: real subprocesses, exit codes, files on disk."""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxdescent import results

CLI = [sys.executable, "-P", "-m", "jaxdescent.cli"]  # -P: like the installed command, the cwd is not on sys.path
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # this checkout's jaxdescent


def run(*args, check=True):
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV)
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
                          capture_output=True, text=True, cwd=tmp_path, env=ENV)
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
    proc = subprocess.Popen([*CLI, *args, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
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
    assert (killed / ".lock").exists()  # left by the killed run; the rerun takes it over

    run(*args, str(killed))
    run(*args, str(tmp_path / "whole"))
    a, b = results.load(killed).arrays, results.load(tmp_path / "whole").arrays
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["diverged"].any() and (a["converged_step"] >= 0).any()


@pytest.mark.slow  # a subprocess: over 10 s on 2 cores
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


# ---------------------------------------------------------------- adversarial inputs, in-process
#
# Every bad input the command line must answer with one line on stderr and exit status 2, before it touches
# the output folder. The count of these cases is the "bad CLI inputs tried" figure.

from jaxdescent.cli import main  # noqa: E402

MODULES = {
    "adv_syntax": "def f(w:\n",
    "adv_boom": "raise RuntimeError('boom at import')\n",
    "adv_exit0": "import sys\nsys.exit(0)\n",
    "adv_exit3": "import sys\nsys.exit(3)\n",
    "adv_ok": ("import jax.numpy as jnp\nCONST = 3\n"
               "def vector(w):\n    return jnp.stack([w, w])\n"
               "def integer(w):\n    return jnp.int32(1)\n"
               "def raises(w):\n    raise ZeroDivisionError('inside the loss')\n"
               "def exits(w):\n    raise SystemExit(0)\n"
               "def branchy(w):\n    return w if w > 0 else -w\n"),
}

SWEEP = {"--loss": "sextic", "--learning-rate": "0.1", "--w0": "1", "--num-steps": "3"}
TRAIN = {"--dataset": "xor", "--hidden": "2", "--learning-rate": "0.1", "--num-steps": "3", "--seeds": "2"}
BAD_INPUTS = [
    # --loss
    ("sweep", {"--loss": "nope"}, "unknown loss 'nope'"),
    ("sweep", {"--loss": "adv_missing:f"}, "cannot import 'adv_missing'"),
    ("sweep", {"--loss": "adv_syntax:f"}, "SyntaxError"),
    ("sweep", {"--loss": "adv_boom:f"}, "RuntimeError: boom at import"),
    ("sweep", {"--loss": "adv_exit0:f"}, "called sys.exit(0)"),
    ("sweep", {"--loss": "adv_exit3:f"}, "called sys.exit(3)"),
    ("sweep", {"--loss": "adv_ok:nothere"}, "has no 'nothere'"),
    ("sweep", {"--loss": "adv_ok:CONST"}, "is not a function"),
    ("sweep", {"--loss": "adv_ok:vector"}, "must return a scalar"),
    ("sweep", {"--loss": "adv_ok:integer"}, "real float scalar"),
    ("sweep", {"--loss": "adv_ok:raises"}, "ZeroDivisionError"),
    ("sweep", {"--loss": "adv_ok:exits"}, "SystemExit"),
    ("sweep", {"--loss": "adv_ok:branchy"}, "--loss adv_ok:branchy"),
    ("sweep", {"--loss": ":f"}, "cannot import ''"),
    ("sweep", {"--loss": "os:"}, "has no ''"),
    ("sweep", {"--loss": "himmelblau"}, "shape ()"),
    ("sweep", {"--w0": "1,2;3,4"}, "must return a scalar"),
    # --learning-rate
    ("sweep", {"--learning-rate": "linspace:1:2"}, "cannot read grid"),
    ("sweep", {"--learning-rate": "0.1,-1"}, "> 0"),
    ("sweep", {"--learning-rate": "0"}, "> 0"),
    ("sweep", {"--learning-rate": "nan"}, "finite"),
    ("sweep", {"--learning-rate": "inf"}, "finite"),
    ("sweep", {"--learning-rate": "1e39"}, "beyond float32"),
    ("sweep", {"--learning-rate": "1e-50"}, "not > 0 in float32"),
    ("sweep", {"--learning-rate": "abc"}, "cannot read grid"),
    ("sweep", {"--learning-rate": ""}, "cannot read grid"),
    ("sweep", {"--learning-rate": ","}, "cannot read grid"),
    ("sweep", {"--learning-rate": "linspace:0.1:1:0"}, "cannot read grid"),
    ("sweep", {"--learning-rate": "linspace:0.1:1:1e3"}, "cannot read grid"),
    ("sweep", {"--learning-rate": "linspace:0.1:1:10000000000000"}, "more than 100,000,000"),
    ("sweep", {"--learning-rate": "logspace:0:400:3"}, "finite"),
    # logspace takes exponents, as NumPy: bounds given as values would run learning rates 1 to 10
    ("sweep", {"--learning-rate": "logspace:1e-4:1:20"},
     "logspace:START:STOP:N takes exponents: logspace:-4:0:20 for 1e-4..1; 'logspace:1e-4:1:20' would give "
     "1.00023..10 (for 0.0001..1 write logspace:-4:0:20)"),
    ("sweep", {"--learning-rate": "logspace:-4:0.5:20"}, "takes exponents"),
    ("sweep", {"--learning-rate": "logspace:0.001:400:20"}, "would give 1.00231..inf"),
    ("sweep", {"--w0": "logspace:0.1:0.5:3"}, "--w0: logspace:START:STOP:N takes exponents"),
    ("sweep", {"--hyperparam": "momentum=logspace:0.5:0.9:3", "--optimizer": "sgd"},
     "--hyperparam momentum: logspace:START:STOP:N takes exponents"),
    ("train", {"--learning-rate": "logspace:0.001:0.1:5"}, "(for 0.001..0.1 write logspace:-3:-1:5)"),
    ("sweep", {"--learning-rate": "0.1,0.2;0.3,0.4"}, "learning rate"),
    ("sweep", {"--learning-rate": "linspace:-1e308:1e308:3"}, "finite"),
    # --w0
    ("sweep", {"--w0": "1,nan"}, "--w0: every value must be finite"),
    ("sweep", {"--w0": "1e39"}, "beyond float32"),
    ("sweep", {"--w0": "1,2;3"}, "cannot read grid"),
    ("sweep", {"--w0": "linspace:-2:2:50000 x linspace:-2:2:50000"}, "2,500,000,000 points"),
    ("sweep", {"--w0": "1,2;3,4 x 1,2"}, "must be a 1-D grid"),
    ("sweep", {"--w0": "linspace:-2:2:x"}, "cannot read grid"),
    # --num-steps
    ("sweep", {"--num-steps": "-3"}, "num-steps"),
    ("sweep", {"--num-steps": "10000000000000"}, "int32 step counters"),
    ("sweep", {"--num-steps": str(2**31)}, "int32 step counters"),
    ("sweep", {"--num-steps": str(2**31 - 1)}, "from 0 to 2,147,483,646"),  # the engine's "never" marker
    ("train", {"--num-steps": str(2**31 - 1)}, "from 0 to 2,147,483,646"),
    ("sweep", {"--num-steps": "1.5"}, "num-steps"),
    ("sweep", {"--num-steps": "abc"}, "num-steps"),
    # --hyperparam
    ("sweep", {"--hyperparam": "nope=1"}, "--optimizer gd does not take nope"),
    ("sweep", {"--hyperparam": "momentum"}, "expected NAME=GRID"),
    ("sweep", {"--hyperparam": "1bad=2"}, "expected NAME=GRID"),
    ("sweep", {"--hyperparam": "momentum=nan", "--optimizer": "sgd"}, "finite"),
    ("sweep", {"--hyperparam": "momentum=1e39", "--optimizer": "sgd"}, "beyond float32"),
    ("sweep", {"--hyperparam": "w0=1"}, "the name is taken"),
    ("sweep", {"--hyperparam": "learning_rate=1"}, "the name is taken"),
    ("sweep", {"--hyperparam": "nesterov=1", "--optimizer": "momentum"}, "traced value"),
    ("sweep", {"--hyperparam": "nesterov=1,0", "--optimizer": "sgd"}, "--optimizer sgd does not use it"),
    ("train", {"--hyperparam": "nesterov=1,0", "--optimizer": "sgd"}, "--optimizer sgd does not use it"),
    # the other options
    ("sweep", {"--piece-runs": "0"}, "must be >= 1"),
    ("sweep", {"--piece-runs": "-1"}, "must be >= 1"),
    ("sweep", {"--optimizer": "bogus"}, "invalid choice"),
    ("sweep", {"--bogus": "1"}, "unrecognized arguments: --bogus"),
    # a flag is never abbreviated, and a misspelt one is named before the required one it leaves missing
    ("sweep", {"--learning-rate": None, "--learning-rat": "0.1"},
     "unrecognized arguments: --learning-rat (did you mean --learning-rate?)"),
    ("sweep", {"--learning-rate": None, "--learnig-rate": "0.1"},
     "unrecognized arguments: --learnig-rate (did you mean --learning-rate?)"),
    ("sweep", {"--learning-rate": None, "--learnig-rate=0.1": None}, "unrecognized arguments: --learnig-rate ("),
    ("sweep", {"--num-steps": None, "--num-step": "3"}, "unrecognized arguments: --num-step (did you mean --num-steps?)"),
    ("sweep", {"--pie": "3"}, "unrecognized arguments: --pie"),
    ("train", {"--num-steps": None, "--num-step": "3"}, "unrecognized arguments: --num-step (did you mean --num-steps?)"),
    ("train", {"--see": "3"}, "unrecognized arguments: --see"),
    ("reproduce", {"--jso": None, "--js": "x"}, "unrecognized arguments: --js"),
    ("sweep", {"--loss": None}, "required: --loss"),
    ("bogus", {}, "invalid choice"),
    ("--bogus", {}, "unrecognized arguments: --bogus"),
    # sizes
    ("sweep", {"--learning-rate": "linspace:0.001:0.1:50000", "--w0": "linspace:-2:2:50000"},
     "2,500,000,000 runs"),
    ("sweep", {"--learning-rate": "linspace:0.001:0.1:40000", "--w0": "linspace:-2:2:40000"},
     "need about 54.4 GB of memory"),
    ("train", {"--hidden": "2000000000"}, "use a smaller --hidden"),
    ("train", {"--num-steps": "100000000", "--seeds": "64"}, "fewer --num-steps"),
    ("train", {"--seeds": str(10**12)}, "1,000,000,000,000 runs"),
    # train
    ("train", {"--dataset": "mnist"}, "unknown dataset"),
    ("train", {"--dataset": "parity:x"}, "parity needs a bit count"),
    ("train", {"--dataset": "parity:0"}, "from 1 to 20"),
    ("train", {"--dataset": "parity:30"}, "from 1 to 20"),
    ("train", {"--hidden": "0"}, "must be >= 1"),
    ("train", {"--num-steps": "10000000000000"}, "int32 step counters"),
    ("train", {"--seed": str(2**70)}, "larger seeds would collide"),
    ("train", {"--seed": str(2**32)}, "larger seeds would collide"),
    ("train", {"--seed": "-1"}, "from 0 to 2**32"),
    ("train", {"--slope": "0"}, "finite and > 0"),
    ("train", {"--slope": "nan"}, "finite and > 0"),
    ("train", {"--slope": "-1"}, "finite and > 0"),
    ("train", {"--hyperparam": "slope=2", "--ste": "identity"}, "only by --ste sigmoid"),
    ("train", {"--hyperparam": "slope=-1"}, "every slope must be > 0"),
    ("train", {"--hyperparam": "b1=0.9", "--optimizer": "sgd"}, "--optimizer sgd does not take b1"),
    ("train", {"--hyperparam": "seed=1"}, "the name is taken"),
    ("train", {"--seeds": "0"}, "must be >= 1"),
    ("train", {"--learning-rate": "0"}, "> 0"),
    ("train", {"--ste": "bogus"}, "invalid choice"),
    # --out
    ("sweep", {"--out": ""}, "output folder name is empty"),
    ("sweep", {"--out": "/proc/forbidden/x"}, "cannot create output folder"),
    ("train", {"--out": ""}, "output folder name is empty"),
    ("reproduce", {"--out": ""}, "output folder name is empty"),
]


@pytest.fixture
def adversarial_cwd(tmp_path, monkeypatch):
    """A working directory with the loss modules above, and a machine of exactly 16 GB (the size checks)."""
    for name, text in MODULES.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(results, "memory_bytes", lambda: 16 * 10**9)
    return tmp_path


def call(capsys, *argv):
    try:
        status = main(list(argv))
    except SystemExit as e:  # argparse's own errors
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def command_line(command, overrides, out):
    base = {"sweep": SWEEP, "train": TRAIN, "reproduce": {}, "bogus": {}, "--bogus": {}}[command]
    merged = {**base, "--out": str(out), **overrides}
    args = [command]
    for k, v in merged.items():
        if v is not None:
            args += [k, v]
        elif k.startswith("--") and "=" in k:  # a flag with its value, as one word
            args.append(k)
    return args + ["--quiet"]


@pytest.mark.parametrize("command, overrides, message",
                         [pytest.param(*case, id=f"{case[0]} {' '.join(f'{k} {v}' for k, v in case[1].items())}")
                          for case in BAD_INPUTS])
def test_every_bad_input_is_one_line_exit_2_and_touches_nothing(adversarial_cwd, capsys, command, overrides,
                                                                message):
    out = adversarial_cwd / "out"
    status, stdout, err = call(capsys, *command_line(command, overrides, out))
    assert status == 2, err
    assert message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # refused before the folder was created
    assert sorted(p.name for p in adversarial_cwd.iterdir()) == sorted(f"{m}.py" for m in MODULES) + \
        (["__pycache__"] if (adversarial_cwd / "__pycache__").exists() else [])  # nothing written in the cwd


def _plant(name):
    def setup(out):
        out.mkdir()
        (out / name).write_bytes(b"the user's own " + name.encode())
    return setup


def _other_run(out):
    assert main(command_line("sweep", {"--num-steps": "4"}, out)) == 0


def _in_use(out):
    out.mkdir()
    (out / ".lock").write_text(str(os.getppid()))  # a live process (pytest's parent)


def _a_file(out):
    out.write_text("a file, not a folder")


def _dead_lock(setup):
    """``setup``, then a ``.lock`` of a process that has exited: refusing the folder must not remove it."""
    def plant(out):
        setup(out)
        proc = subprocess.Popen(["true"])
        proc.wait()
        (out / ".lock").write_text(str(proc.pid))
    return plant


FOLDER_CASES = [
    ("meta.json", _plant("meta.json"), "holds other files"),
    ("results.csv", _plant("results.csv"), "holds other files"),
    ("a PNG", _plant("phase_diagram.png"), "holds other files"),
    ("notes", _plant("notes.txt"), "holds other files"),
    ("a foreign .lock", _plant(".lock"), "not a jaxdescent lock"),
    ("another run", _other_run, "holds another run (different"),
    ("in use", _in_use, "in use by process"),
    ("notes and a dead process's .lock", _dead_lock(_plant("notes.txt")), "holds other files"),
    ("another run and a dead process's .lock", _dead_lock(_other_run), "holds another run (different"),
    ("a file", _a_file, "cannot create output folder"),
]


@pytest.mark.parametrize("command", ["sweep", "train", "reproduce"])
@pytest.mark.parametrize("setup, message", [pytest.param(s, m, id=i) for i, s, m in FOLDER_CASES])
def test_a_folder_holding_something_else_is_refused_untouched(adversarial_cwd, capsys, command, setup, message):
    if command == "reproduce":
        pytest.importorskip("matplotlib")
    out = adversarial_cwd / "out"
    setup(out)
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()} if out.is_dir() else out.read_bytes()
    status, _, err = call(capsys, *command_line(command, {}, out))
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    after = {p.name: p.read_bytes() for p in out.iterdir()} if out.is_dir() else out.read_bytes()
    assert after == before  # not one byte changed, no config.json added


def test_a_library_bug_is_a_traceback_and_exit_1_not_a_usage_error(adversarial_cwd, capsys, monkeypatch):
    import jaxdescent

    def buggy(*args, **kwargs):
        raise ValueError("an internal inconsistency")

    monkeypatch.setattr(jaxdescent, "sweep", buggy)
    status, _, err = call(capsys, *command_line("sweep", {}, adversarial_cwd / "out"))
    assert status == 1
    assert "Traceback" in err and "an internal inconsistency" in err and "please report" in err


def test_train_with_zero_steps_and_the_largest_seed(adversarial_cwd, capsys):
    status, stdout, err = call(capsys, *command_line("train", {"--num-steps": "0", "--seed": str(2**32 - 1)},
                                                     adversarial_cwd / "out"))
    assert status == 0, err
    assert "0 steps" in stdout and results.load(adversarial_cwd / "out").arrays["loss"].shape == (1, 2, 1)


def test_the_loss_module_does_not_leave_the_cwd_on_sys_path(adversarial_cwd, capsys):
    before = list(sys.path)
    status, _, err = call(capsys, *command_line("sweep", {"--loss": "adv_ok:branchy"}, adversarial_cwd / "o"))
    assert status == 2 and sys.path == before
    (adversarial_cwd / "adv_fine.py").write_text("def f(w):\n    return (w - 1.0) ** 2\n")
    status, _, err = call(capsys, *command_line("sweep", {"--loss": "adv_fine:f"}, adversarial_cwd / "o"))
    assert status == 0 and sys.path == before, err


def test_sweep_plot_for_two_dimensional_start_points_is_a_final_state_map(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    status, _, err = call(capsys, "sweep", "--loss", "himmelblau", "--learning-rate", "0.001,0.01", "--w0",
                          "linspace:-4:4:5 x linspace:-4:4:5", "--num-steps", "50", "--plot", "--out",
                          str(tmp_path), "--quiet")
    assert status == 0, err
    assert (tmp_path / "final_state.png").stat().st_size > 10_000 and not (tmp_path / "phase_diagram.png").exists()


# ---------------------------------------------------------------- faults: signals, races, a full disk, a hostile cwd

LONG = ["sweep", "--loss", "sextic", "--learning-rate", "logspace:-4:0:2000", "--w0", "linspace:-2:2:64",
        "--num-steps", "2000", "--piece-runs", "2048", "--quiet", "--out"]


def _start_and_wait(out, pieces=2, args=LONG):
    proc = subprocess.Popen([*CLI, *args, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(out.glob("pieces/piece_*.npz"))) >= pieces:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read()
    return proc


def _same(a, b):
    a, b = results.load(a).arrays, results.load(b).arrays
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.slow  # a subprocess: over 10 s on 2 cores
def test_ctrl_c_keeps_the_finished_pieces_says_so_and_resumes(tmp_path):
    out = tmp_path / "interrupted"
    proc = _start_and_wait(out)
    kept_before = len(list(out.glob("pieces/piece_*.npz")))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    kept = len(list(out.glob("pieces/piece_*.npz")))
    # nothing lost; the piece in progress, if any, finished and saved (a Ctrl-C between a piece's save and its
    # report finds none in progress: pieces smaller than a call come out of it in a burst, so this happens)
    assert kept >= kept_before
    runs = sum(int(p.name[17:27]) - int(p.name[6:16]) for p in out.glob("pieces/piece_*.npz"))
    assert f"{runs:,} finished runs are kept in {out}/pieces; rerun the same command" in err
    assert not (out / ".lock").exists() and not list(out.glob("**/.*.tmp"))
    run(*LONG, str(out))
    run(*LONG, str(tmp_path / "whole"))
    _same(out, tmp_path / "whole")


def test_two_commands_racing_into_one_folder_one_is_refused(tmp_path):
    slow = [*LONG[:8], "200000", *LONG[9:]]  # about a minute: the others start while it runs
    out = tmp_path / "o"
    first = _start_and_wait(out, pieces=0, args=slow)
    while not (out / "config.json").exists() and first.poll() is None:
        time.sleep(0.01)
    config = (out / "config.json").read_bytes()
    other = run(*slow[:8], "300", *slow[9:], str(out), check=False)  # another run (other steps)
    same = run(*slow, str(out), check=False)  # the same run, twice at once
    assert first.poll() is None  # still running: a real race
    for proc in (other, same):
        assert proc.returncode == 2 and "in use by process" in proc.stderr, proc.stderr
    first.send_signal(signal.SIGINT)
    first.send_signal(signal.SIGINT)  # twice: stop now, do not finish the piece
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert (out / "config.json").read_bytes() == config and not (out / ".lock").exists()


def test_a_full_disk_is_one_line_and_a_rerun_resumes(tmp_path, capsys, monkeypatch):
    import errno

    args = ["sweep", "--loss", "sextic", "--learning-rate", "logspace:-3:0:40", "--w0", "linspace:-2:2:8",
            "--num-steps", "100", "--piece-runs", "64", "--quiet", "--out"]
    real, writes = results.save_arrays, []

    def full_after_two(path, arrays):
        writes.append(path)
        if len(writes) > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, arrays)

    monkeypatch.setattr(results, "save_arrays", full_after_two)
    status, _, err = call(capsys, *args, str(tmp_path / "o"))
    assert status == 2 and "No space left on device" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in (tmp_path / "o" / "pieces").iterdir()) == ["piece_0000000000-0000000064.npz", "piece_0000000064-0000000128.npz"]
    assert not list((tmp_path / "o").glob("**/.*.tmp")) and not (tmp_path / "o" / ".lock").exists()
    monkeypatch.setattr(results, "save_arrays", real)
    assert call(capsys, *args, str(tmp_path / "o"))[0] == 0
    assert call(capsys, *args, str(tmp_path / "whole"))[0] == 0
    _same(tmp_path / "o", tmp_path / "whole")


def test_a_matplotlib_py_in_the_cwd_is_not_imported_by_plot(tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "matplotlib.py").write_text("raise SystemExit('the fake matplotlib ran')\n")
    (tmp_path / "mymod.py").write_text("def fn(w):\n    return (w - 1.0) ** 2\n")
    proc = subprocess.run([*CLI, "sweep", "--loss", "mymod:fn", "--learning-rate", "0.1,0.2", "--w0", "-1,2",
                           "--num-steps", "20", "--plot", "--out", "o", "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "phase_diagram.png").stat().st_size > 10_000


def test_the_largest_num_steps_argparse_accepts_is_the_engines():
    """--num-steps is checked in argparse against the bound the engine enforces later (after --out exists)."""
    from jaxdescent import _sweep, cli

    assert cli.MAX_STEPS == _sweep.NEVER - 1


def test_no_parser_takes_a_prefix_of_a_flag():
    from jaxdescent.cli import parser

    top = parser()
    subs = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)][0].choices
    assert not top.allow_abbrev and subs.keys() == {"reproduce", "sweep", "train"}
    assert not any(p.allow_abbrev for p in subs.values())


def test_a_rerun_removes_what_a_killed_write_left_and_writes_readable_files(adversarial_cwd, capsys):
    """A kill during the final writes left .results.npz.XXXXXXXX.tmp (5.9 MB) behind a successful resume."""
    import stat

    out = adversarial_cwd / "out"
    args = command_line("sweep", {"--learning-rate": "0.1,0.2"}, out) + ["--csv"]
    assert call(capsys, *args)[0] == 0
    (out / "results.npz").unlink()  # killed while writing it: its pieces were all there (here recomputed)
    left = [out / f".{name}.abcd_123.tmp" for name in ("results.npz", "meta.json", "results.csv", "config.json")]
    for path in left:
        path.write_bytes(b"half a file")
    (out / "pieces").mkdir()
    (out / "pieces" / "mine.txt").write_text("the user's")
    status, _, err = call(capsys, *args)
    assert status == 0, err
    assert not [p for p in left if p.exists()] and (out / "pieces" / "mine.txt").read_text() == "the user's"
    mask = os.umask(0)
    os.umask(mask)
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()} == {0o666 & ~mask}
