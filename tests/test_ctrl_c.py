"""Ctrl-C at random moments of a running command: out within 2 s, one line saying what was kept, exit 130,
never an abort; the folder resumes to the result of an uninterrupted run."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxdescent import results

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["sweep", "--loss", "sextic", "--learning-rate", "logspace:-4:0:500", "--w0", "linspace:-2:2:64",
        "--num-steps", "60000", "--piece-runs", "4096", "--quiet", "--out"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "JAXDESCENT_COMPILATION_CACHE": "0"}


def _cli(out, **kwargs):
    return subprocess.Popen([sys.executable, "-P", "-m", "jaxdescent.cli", *ARGS, str(out)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow  # subprocesses: about 30 s on 2 cores
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_at_random_moments_of_a_run_is_one_line_130_within_2_s_and_resumes(tmp_path):
    rng = random.Random(0)
    for i in range(6):
        out = tmp_path / str(i)
        proc = _cli(out)
        while not (out / "config.json").exists() and proc.poll() is None:  # the run has begun (imports done)
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 2))  # compiling, or computing a piece, or saving one
        sent = time.time()
        for _ in range(1 + i % 2):  # once, or twice ("stop now")
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        took = time.time() - sent
        lines = err.strip().splitlines()
        if proc.returncode == 0:  # finished before the signal
            continue
        assert proc.returncode == 130, err[-3000:]
        assert took < 2, took
        assert len(lines) == 1 and "interrupted;" in lines[0] and "rerun the same command" in lines[0], err
        assert not (out / ".lock").exists()
    resumed = subprocess.run([sys.executable, "-P", "-m", "jaxdescent.cli", *ARGS, str(out)], env=ENV,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = subprocess.run([sys.executable, "-P", "-m", "jaxdescent.cli", *ARGS, str(tmp_path / "whole")], env=ENV,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0
    a, b = results.load(out).arrays, results.load(tmp_path / "whole").arrays
    for k in b:
        np.testing.assert_array_equal(a[k], b[k])


HELD = """
import sys, numpy as np
from jaxdescent import cli

def held():  # as a compile is: minutes of C that Python cannot interrupt (one long NumPy call)
    open(sys.argv[1] + ".started", "w").close()
    x = np.random.default_rng(0).random(3 * 10**7)
    for _ in range(20):
        np.sort(x)

cli._compilation_cache = held
sys.exit(cli.main(["sweep", "--loss", "sextic", "--learning-rate", "0.1", "--w0", "1", "--num-steps", "10", "--out",
                         sys.argv[1]]))
"""


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_in_a_call_python_cannot_interrupt_still_ends_within_2_s_with_one_line(tmp_path):
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-c", HELD, str(out)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while not (tmp_path / "o.started").exists() and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.5)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and time.time() - sent < 2, (proc.returncode, err)
    assert err.strip() == "jaxdescent sweep: interrupted; nothing was written", err
