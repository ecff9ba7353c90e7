"""A saved sweep travels: a folder begun on one machine loads, and resumes half done, on another with another
core count or device count, bit-identical to an uninterrupted run on the first (the folder keeps the chunk)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxdescent
from jaxdescent import results

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import os, sys
    import jax, jax.numpy as jnp, numpy as np
    import jaxdescent

    def run(hp, key):
        w = jax.random.normal(key, (3,)) + hp["w0"]
        w = jax.lax.fori_loop(0, 50, lambda i, w: w - hp["lr"] * (w ** 5 + w - 1), w)
        return {"w": w, "loss": jnp.sum(w ** 6 / 6 + w ** 2 / 2 - w)}

    stop_after = int(sys.argv[2])  # pieces, then the process dies as a kill would leave it (0: run to the end)
    seen = []

    def progress(done, total):
        seen.append(done)
        if stop_after and len(seen) == stop_after:
            os._exit(3)

    r = jaxdescent.sweep_fn(run, {"lr": np.linspace(0.01, 0.3, 25), "w0": np.linspace(-1, 1, 6)}, seeds=2,
                            out=sys.argv[1], piece_runs=40, progress=progress)
    print(len(jax.devices()), flush=True)
""")


def _child(out, stop_after=0, cpus=None, devices=1):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    cmd = [sys.executable, "-c", CHILD, str(out), str(stop_after)]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _arrays(out):
    return results.load_arrays(out / "results.npz")


@pytest.mark.slow  # subprocesses: over 10 s on 2 cores
@pytest.mark.skipif(shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2,
                    reason="needs taskset and two cores")
def test_a_folder_begun_on_one_core_resumes_on_all_cores_and_on_two_devices_bit_identical(tmp_path):
    whole = tmp_path / "one_core"
    assert _child(whole, cpus="0").returncode == 0
    fresh = tmp_path / "all_cores"
    assert _child(fresh).returncode == 0
    chunk = json.loads((whole / "config.json").read_text())["chunk"]
    assert json.loads((fresh / "config.json").read_text())["chunk"] != chunk  # the machines' defaults differ
    for name, devices in (("cores", 1), ("devices", 2)):
        out = tmp_path / name
        killed = _child(out, stop_after=3, cpus="0")
        assert killed.returncode == 3 and not (out / "results.npz").exists()
        assert len(list((out / "pieces").iterdir())) == 3
        resumed = _child(out, devices=devices)  # every core, or two devices
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert resumed.stdout.split() == [str(devices)]
        got, want = _arrays(out), _arrays(whole)
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def _run(hp, key):
    w = jax.random.normal(key, (2,)) + hp["w0"]
    w = jax.lax.fori_loop(0, 20, lambda i, w: w - hp["lr"] * (w ** 5 + w - 1), w)
    return {"w": w}


AXES = {"lr": np.linspace(0.01, 0.3, 12, dtype=np.float32), "w0": np.linspace(-1, 1, 5, dtype=np.float32)}


def test_a_resume_uses_the_folders_chunk_not_this_machines_default(tmp_path):
    out = tmp_path / "o"
    seen = []

    def stop_after_two(done, total):
        seen.append(done)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="finished runs are kept"):
        jaxdescent.sweep_fn(_run, AXES, seeds=3, out=out, chunk_size=7, piece_runs=16, progress=stop_after_two)
    resumed = jaxdescent.sweep_fn(_run, AXES, seeds=3, out=out, progress=False)  # chunk_size=None: the default
    assert json.loads((out / "config.json").read_text())["chunk"] == 7
    whole = jaxdescent.sweep_fn(_run, AXES, seeds=3, chunk_size=7, progress=False)
    np.testing.assert_array_equal(np.asarray(resumed.metrics["w"]), np.asarray(whole.metrics["w"]))
    with pytest.raises(ValueError, match="holds another run .different chunk"):  # a chunk asked for is kept
        jaxdescent.sweep_fn(_run, AXES, seeds=3, out=out, chunk_size=5, progress=False)
