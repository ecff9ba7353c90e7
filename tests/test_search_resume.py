"""Searches that survive: successive halving and PBT with out= resume after an interruption, bit-identical."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from jax import lax

from jaxdescent import _engine, count_compilations, pbt, successive_halving, sweep_fn
from jaxdescent._validate import InvalidArgument


def init(hp, key):
    return {"w": 1.0 + 0.5 * jax.random.normal(key, (2,)), "count": jnp.int32(0)}


def advance(hp, state, key, num_steps):  # noisy gradient descent: a run's keys and its carried state both matter
    def one(i, s):
        noise = hp["noise"] * jax.random.normal(jax.random.fold_in(key, i), (2,))
        return {"w": s["w"] - hp["lr"] * (2 * s["w"] + noise), "count": s["count"] + 1}

    state = lax.fori_loop(0, num_steps, one, state)
    return state, {"loss": jnp.sum(state["w"] ** 2), "count": state["count"]}


def explore(hp, key):
    return {"lr": hp["lr"] * jax.random.uniform(key, (), minval=0.5, maxval=1.5), "noise": hp["noise"]}


POINTS = {"noise": np.array([0.1, 0.5, 0.0, 0.1, 0.2, 0.05, 0.3, 1.0], np.float32),  # not in sorted order
          "lr": np.array([0.01, 0.3, 0.05, 0.45, 0.1, 0.2, 0.02, 0.4], np.float32)}
HALVING = dict(metric="loss", mode="min", min_steps=1, max_steps=8, eta=2)  # 4 rungs: 8, 4, 2, 1 points
PBT = dict(metric="loss", mode="min", steps_per_round=2, num_rounds=4, explore=explore)


class Interrupted(Exception):
    pass


def search(kind, points=POINTS, **settings):
    if kind == "halving":
        return successive_halving(init, advance, points, **{**HALVING, **settings})
    return pbt(init, advance, points, **{**PBT, **settings})


def assert_identical(got, want):
    if hasattr(want, "history"):
        pd.testing.assert_frame_equal(got.history.to_pandas(), want.history.to_pandas())
        jax.tree_util.tree_map(np.testing.assert_array_equal, got.state, want.state)
        jax.tree_util.tree_map(np.testing.assert_array_equal, got.hp, want.hp)
    else:
        pd.testing.assert_frame_equal(got.to_pandas(), want.to_pandas())
        assert got.budgets == want.budgets
    assert got.best == want.best
    jax.tree_util.tree_map(np.testing.assert_array_equal, got.best_state, want.best_state)


def stages_saved(folder):
    return int(np.load(os.path.join(folder, "search.npz"))["__stages__"])


def done_before(found, stages, seeds):
    """What a search reports done after ``stages`` rungs (training steps) or rounds."""
    if hasattr(found, "history"):
        return stages
    runs = found.to_pandas().groupby("rung").size().to_numpy()
    return int(np.sum((runs * np.diff([0, *found.budgets]) * (seeds or 1))[:stages]))


def raising_at_third_report(error):
    """A progress callback that raises ``error`` at its 3rd report (inside the 3rd rung or round)."""
    seen = []

    def interrupt(done, total):
        seen.append(done)
        if len(seen) == 3:
            raise error

    return interrupt


CASES = [pytest.param("halving", {}, id="halving"), pytest.param("halving", {"seeds": 3}, id="halving-seeds"),
         pytest.param("halving", {"seeds": 2, "every": 1, "stop": lambda m: m["loss"] < 0.5}, id="halving-stop"),
         pytest.param("pbt", {}, id="pbt"), pytest.param("pbt", {"every": 1}, id="pbt-every"),
         pytest.param("pbt", {"key": jax.random.key(7)}, id="pbt-key")]


@pytest.mark.parametrize("kind, settings", CASES)
@pytest.mark.parametrize("error", [Interrupted, KeyboardInterrupt])
def test_an_interrupted_search_resumes_bit_identical(tmp_path, kind, settings, error):
    """Interrupted by its progress callback at its 3rd report (inside the 3rd rung or round), rerun: the result of
    one uninterrupted run, from the 2 stages saved on (a rerun from scratch would report 1 stage done first)."""
    want = search(kind, progress=False, **settings)
    with pytest.raises(error):
        search(kind, progress=raising_at_third_report(error), out=tmp_path, **settings)
    saved = stages_saved(tmp_path)
    assert saved == 2
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    resumed = []
    got = search(kind, progress=lambda done, total: resumed.append(done), out=tmp_path, **settings)
    assert_identical(got, want)
    assert resumed[0] == done_before(want, saved, settings.get("seeds"))  # it began where it was saved
    assert sorted(os.listdir(tmp_path)) == ["config.json", "search.npz"]  # no lock, no temporary file left


@pytest.mark.parametrize("kind", ["halving", "pbt"])
def test_a_finished_folder_is_read_back_without_computing(tmp_path, kind):
    want = search(kind, progress=False, out=tmp_path)
    before = os.stat(tmp_path / "search.npz").st_mtime_ns
    with count_compilations() as c:
        got = search(kind, progress=False, out=tmp_path)
    assert c.count == 0
    assert os.stat(tmp_path / "search.npz").st_mtime_ns == before
    assert_identical(got, want)


def test_numpy_integers_name_the_same_search_as_python_integers(tmp_path):
    want = search("halving", eta=np.int64(2), seeds=np.int32(2), progress=False, out=tmp_path)
    with count_compilations() as c:  # the finished folder of the same search
        got = search("halving", eta=2, seeds=2, progress=False, out=tmp_path)
    assert c.count == 0
    assert_identical(got, want)


def other_advance(hp, state, key, num_steps):  # another program: the step is halved
    return advance({**hp, "lr": hp["lr"] / 2}, state, key, num_steps)


OTHER_POINTS = {**POINTS, "lr": POINTS["lr"] * 2}


@pytest.mark.parametrize("kind", ["halving", "pbt"])
@pytest.mark.parametrize("change, differs", [
    pytest.param(lambda kind, out: search("pbt" if kind == "halving" else "halving", out=out), "search",
                 id="the-other-search"),
    pytest.param(lambda kind, out: search(kind, OTHER_POINTS, out=out), "points", id="other-points"),
    pytest.param(lambda kind, out: search(kind, key=jax.random.key(1), out=out), "key", id="other-key"),
    pytest.param(lambda kind, out: search(kind, mode="max", out=out), "mode", id="other-mode"),
    pytest.param(lambda kind, out: (successive_halving(init, other_advance, POINTS, **HALVING, out=out)
                                    if kind == "halving" else pbt(init, other_advance, POINTS, **PBT, out=out)),
                 "program", id="other-advance"),
])
def test_a_folder_of_another_search_is_refused_and_left_alone(tmp_path, kind, change, differs):
    search(kind, progress=False, out=tmp_path)
    files = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)}
    with pytest.raises(InvalidArgument, match=rf"^out: .*holds another run \(different .*{differs}"):
        change(kind, tmp_path)
    assert {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)} == files


def test_other_seeds_a_sweep_fn_folder_and_a_folder_in_use_are_refused(tmp_path):
    search("halving", seeds=2, progress=False, out=tmp_path / "a")
    with pytest.raises(InvalidArgument, match="different .*seeds"):
        search("halving", seeds=3, progress=False, out=tmp_path / "a")
    sweep_fn(lambda hp, key: {"loss": hp["lr"] ** 2}, {"lr": np.array([0.1, 0.2])}, out=tmp_path / "b",
             progress=False)
    for kind in ("halving", "pbt"):
        with pytest.raises(InvalidArgument, match="^out: .*holds another run"):
            search(kind, progress=False, out=tmp_path / "b")
    with pytest.raises(InvalidArgument, match="holds another run"):  # and sweep_fn refuses a search's folder
        sweep_fn(lambda hp, key: {"loss": hp["lr"] ** 2}, {"lr": np.array([0.1, 0.2])}, out=tmp_path / "a",
                 progress=False)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "c").mkdir()
        (tmp_path / "c" / ".lock").write_text(str(other.pid))
        for kind in ("halving", "pbt"):
            with pytest.raises(InvalidArgument, match=f"in use by process {other.pid}"):
                search(kind, progress=False, out=tmp_path / "c")
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("kind", ["halving", "pbt"])
def test_out_is_refused_inside_jit_and_must_be_a_path(tmp_path, kind):
    with pytest.raises(InvalidArgument, match="cannot run inside jax.jit"):  # the search itself, out= or not
        jax.jit(lambda k: search(kind, key=k, progress=False, out=tmp_path).best)(jax.random.key(0))
    with pytest.raises(InvalidArgument, match="out must be a folder path"):
        search(kind, progress=False, out=3)
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------- kill -9 at random moments, in child processes

CHILD = """
import sys, time, numpy as np, jax, jax.numpy as jnp
from jax import lax
import jaxdescent

def init(hp, key):
    return {"w": jax.random.normal(key, (16,)), "count": jnp.int32(0)}

def advance(hp, state, key, num_steps):
    def one(i, s):
        g = 2 * s["w"] + hp["noise"] * jax.random.normal(jax.random.fold_in(key, i), (16,))
        return {"w": s["w"] - hp["lr"] * g, "count": s["count"] + 1}
    state = lax.fori_loop(0, num_steps, one, state)
    return state, {"loss": jnp.sum(state["w"] ** 2)}

def explore(hp, key):
    return {"lr": hp["lr"] * jax.random.uniform(key, (), minval=0.8, maxval=1.25), "noise": hp["noise"]}

def run(kind, out=None, progress=False):
    points = {"lr": np.geomspace(0.001, 0.3, 32).astype(np.float32),
              "noise": np.linspace(0.0, 1.0, 32).astype(np.float32)}
    if kind == "halving":  # 21 rungs: 32, 16, 8, 4, 2 and 1 points x 2 seeds
        return jaxdescent.successive_halving(init, advance, points, metric="loss", mode="min", min_steps=1,
                                             max_steps=2**20, eta=2, seeds=2, out=out, progress=progress)
    return jaxdescent.pbt(init, advance, points, metric="loss", mode="min", steps_per_round=4, num_rounds=30,
                          explore=explore, out=out, progress=progress)

if __name__ == "__main__":
    print("go", flush=True)
    run(sys.argv[1], sys.argv[2], lambda done, total: time.sleep(0.05))  # >= 0.05 s a stage
"""


def saved_now(folder):
    try:
        with np.load(os.path.join(folder, "search.npz")) as z:
            return int(z["__stages__"])
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["halving", "pbt"])
def test_a_search_killed_5_times_at_random_moments_resumes_bit_identical(tmp_path, kind):
    """Each child process is killed (SIGKILL) a random 0-0.12 s after it saved its first stage, computing, reporting
    or writing (at most 4 stages a life: the search is not done after 5); the search finished here is bit-identical
    to an uninterrupted one."""
    out, rng, kills = tmp_path / "search", random.Random(0), []
    for life in range(5):
        before = saved_now(out)
        with open(tmp_path / f"stderr{life}", "w") as err:
            child = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(out)], stdout=subprocess.PIPE,
                                     stderr=err, text=True)
        try:
            assert child.stdout.readline() == "go\n", (tmp_path / f"stderr{life}").read_text()[-3000:]
            while saved_now(out) == before and child.poll() is None:  # this life has saved a stage
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.12))
            running = child.poll() is None
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL or not running, (tmp_path / f"stderr{life}").read_text()[-3000:]
        writing = any(name.endswith(".tmp") for name in os.listdir(out))  # killed inside an atomic write
        kills.append((before, saved_now(out), running, writing))
    print(f"{kind}: kills (stages saved at start, at the kill, child running, inside a write): {kills}")
    assert all(running for _, _, running, _ in kills)  # each kill stopped a search in progress
    assert [after for _, after, _, _ in kills] == sorted({after for _, after, _, _ in kills})  # every life saved more
    ns = {"__name__": "child"}
    exec(CHILD, ns)
    got = ns["run"](kind, out)  # the rest, here
    assert_identical(got, ns["run"](kind))
    assert sorted(os.listdir(out)) == ["config.json", "search.npz"]  # what a killed write left is gone


@pytest.mark.parametrize("kind", ["halving", "pbt"])
def test_a_search_resumes_on_a_machine_whose_default_chunk_differs(tmp_path, kind, monkeypatch):
    """The folder's chunk, not the machine's default, decides the rest of the runs (their last bits)."""
    want = search(kind, progress=False)
    with pytest.raises(Interrupted):
        search(kind, progress=raising_at_third_report(Interrupted), out=tmp_path)
    chunk = json.loads((tmp_path / "config.json").read_text())["chunk"]
    monkeypatch.setattr(_engine, "default_chunk", lambda *a, **k: chunk + 1)  # another machine's cores
    assert_identical(search(kind, progress=False, out=tmp_path), want)
