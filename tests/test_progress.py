"""Watching and stopping a sweep from Python: progress callbacks, the bar, Ctrl-C, the default layout."""

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdescent import _cost, _progress, count_compilations, sweep, sweep_fn
from jaxdescent.losses import sextic


def _noisy(hp, key):
    return {"y": hp["a"] * 2 + jax.random.normal(key)}


def test_progress_callback_sees_increasing_counts_and_the_same_result():
    calls = []
    r = sweep_fn(_noisy, {"a": np.arange(100.0)}, seeds=3, piece_runs=40, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(40 * i, 300) for i in range(1, 8)] + [(300, 300)]
    whole = sweep_fn(_noisy, {"a": np.arange(100.0)}, seeds=3, piece_runs=300, progress=False)
    assert isinstance(r.metrics["y"], jax.Array) and r.metrics["y"].shape == (100, 3)
    np.testing.assert_array_equal(r.metrics["y"], whole.metrics["y"])


def test_progress_of_a_saved_sweep_counts_found_pieces_too(tmp_path):
    first, second = [], []
    kw = dict(learning_rate=np.array([0.01, 0.02]), w0=np.linspace(-1, 1, 10), num_steps=20, piece_runs=6)
    a = sweep(sextic, **kw, out=tmp_path / "r", progress=lambda d, t: first.append(d))
    import shutil
    shutil.rmtree(tmp_path / "r")
    b = sweep(sextic, **kw, out=tmp_path / "r", progress=lambda d, t: second.append(d))
    assert first == second == [6, 12, 18, 20]
    np.testing.assert_array_equal(a.final_w, b.final_w)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _bar(**kw):
    clock = Clock()
    return _progress.Bar("sweep", stream=io.StringIO(), clock=clock, **{"tick": None, **kw}), clock


def _line(bar):  # what the terminal shows now: the text after the last carriage return
    return bar.stream.getvalue().split("\r")[-1].strip()


def test_bar_shows_runs_done_elapsed_and_time_left_at_the_pace_since_the_first_report():
    bar, clock = _bar()
    clock.t = 10.0
    bar(25, 100)
    assert _line(bar) == "sweep: [######..................] 25/100 runs, 10 s"  # no pace yet: no estimate
    clock.t = 15.0
    bar(50, 100)  # 25 runs in 5 s: 50 left take 10 s
    assert _line(bar) == "sweep: [############............] 50/100 runs, 15 s, 10 s left"
    clock.t = 25.0
    bar(100, 100)
    assert _line(bar) == "sweep: [########################] 100/100 runs, 25 s"
    assert bar.stream.getvalue().endswith("\n")


def test_bar_says_what_it_compiles_at_once_and_how_long_it_took():
    bar, clock = _bar()
    with _progress.compiling(bar, "sweep_fn: fn over 4,096 runs"):
        assert _line(bar) == "sweep: compiling sweep_fn: fn over 4,096 runs..."
        clock.t = 31.0
    assert _line(bar) == "sweep: compiled sweep_fn: fn over 4,096 runs in 31 s, running..."


def test_time_left_leaves_out_the_compile():
    bar, clock = _bar()
    clock.t = 2.0
    with _progress.compiling(bar, "fn"):
        clock.t = 32.0  # 30 s compiling
    clock.t = 33.0
    bar(10, 100)  # 10 runs in the 1 s since: 90 left take 9 s (counting the compile: 297 s)
    assert _line(bar).endswith("10/100 runs, 33 s, 9 s left")
    assert bar.time_left(10, 100) == pytest.approx(9.0)


def test_a_resumed_sweep_counts_only_the_runs_computed_since():
    bar, clock = _bar()
    clock.t = 0.5
    bar(50, 100)  # found on disk
    assert "left" not in _line(bar)
    clock.t = 10.5
    bar(60, 100)  # 10 runs in 10 s: 40 left take 40 s (counting the found ones: 6.7 s)
    assert _line(bar).endswith("60/100 runs, 10 s, 40 s left")


def test_a_resumed_sweep_compiled_after_finding_its_pieces_counts_from_the_compiles_end():
    bar, clock = _bar()
    for done in range(10, 60, 10):  # pieces found on disk, reported in a burst
        clock.t += 0.001
        bar(done, 100)
    with _progress.compiling(bar, "fn"):
        clock.t = 30.0
    clock.t = 40.0
    bar(60, 100)  # 10 runs in 10 s since the compile: 40 left take 40 s
    assert bar.time_left(60, 100) == pytest.approx(40.0)
    assert _line(bar).endswith("60/100 runs, 40 s, 40 s left")


def test_a_later_compile_is_left_out_of_the_pace():
    bar, clock = _bar()
    with _progress.compiling(bar, "the first static value's program"):
        clock.t = 30.0
    clock.t = 35.0
    bar(50, 100)  # 10 runs a second
    assert bar.time_left(50, 100) == pytest.approx(5.0)
    before = bar.stream.getvalue()
    with _progress.compiling(bar, "the second static value's program"):
        assert bar.stream.getvalue() == before  # counts on the line: shown only if it lasts a tick
        clock.t = 55.0
    assert _line(bar).endswith("50/100 runs, 55 s, 5 s left")  # the counts again, the 20 s left out
    clock.t = 56.0
    bar(60, 100)  # 60 runs in 6 s of computing
    assert bar.time_left(60, 100) == pytest.approx(4.0)


def test_a_compile_while_runs_go_on_is_not_left_out_of_the_pace():
    bar, clock = _bar()
    with _progress.compiling(bar, "rung 0"):
        clock.t = 30.0
    clock.t = 35.0
    bar(50, 100)
    with _progress.compiling(bar, "rung 1, ahead"):  # in another thread, while rung 0 runs
        clock.t = 40.0
        bar(60, 100)
        clock.t = 45.0
    clock.t = 46.0
    bar(70, 100)  # 70 runs in the 16 s since the first compile
    assert bar.time_left(70, 100) == pytest.approx(30 * 16 / 70)


def test_a_users_callable_is_never_called_by_compiling():
    calls = []

    class Watcher:  # a user's callable that happens to have a method of that name
        def __call__(self, done, total):
            calls.append((done, total))

        def compiling(self, what):
            calls.append(what)

    for user in (lambda done, total: calls.append((done, total)), Watcher(), None):
        with _progress.compiling(user, "fn"):
            pass
        with _progress.compiling(_progress.relay(user, lambda done, total: user(2 * done, 2 * total)), "fn"):
            pass
    assert calls == []
    plain = lambda done, total: None  # noqa: E731
    assert _progress.relay(plain, print) is print  # a relay of a user's callable is the function itself


def test_a_relay_passes_counts_on_and_compile_notices_through():
    bar, clock = _bar()
    each = _progress.relay(_progress.relay(bar, lambda d, t: None), lambda done, total: bar(done + 100, total + 100))
    with _progress.compiling(each, "the second static value's program"):
        assert _line(bar) == "sweep: compiling the second static value's program..."
    each(50, 100)
    assert _line(bar) == "sweep: [##################......] 150/200 runs, 0 s"


def test_the_ticker_shows_the_compiles_seconds_and_stops_with_it():
    bar, clock = _bar(tick=0.01)
    threads = threading.active_count()
    with _progress.compiling(bar, "fn"):
        assert threading.active_count() == threads + 1
        clock.t = 12.0
        deadline = time.monotonic() + 10
        while _line(bar) != "sweep: compiling fn... 12 s" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _line(bar) == "sweep: compiling fn... 12 s"
        clock.t = 13.0
    after = bar.stream.getvalue()
    assert threading.active_count() == threads  # joined: it draws nothing more
    time.sleep(0.1)
    assert bar.stream.getvalue() == after and _line(bar) == "sweep: compiled fn in 13 s, running..."


def test_a_shorter_line_blanks_the_longer_one_before_it():
    bar, clock = _bar()
    with _progress.compiling(bar, "a program with a long name " * 4):
        pass
    bar(1, 2)
    drawn = bar.stream.getvalue().split("\r")[1:]
    assert len(drawn[-1]) >= len(drawn[-2].rstrip())


@pytest.mark.parametrize("bad", [5, "yes", 1.0])
def test_progress_must_be_a_flag_or_a_callable(bad):
    with pytest.raises(TypeError, match="progress must be"):
        sweep_fn(_noisy, {"a": np.arange(3.0)}, progress=bad)


@pytest.mark.parametrize("bad", [
    pytest.param(lambda done: None, id="one-argument"),
    pytest.param(lambda done, total, desc: None, id="three-arguments"),
    pytest.param(lambda *, done, total: None, id="keyword-only"),
])
def test_progress_of_the_wrong_signature_is_named_before_compiling(bad):
    with count_compilations() as c, pytest.raises(TypeError, match=r"progress must be callable as progress\(done, total\)"):
        sweep_fn(_noisy, {"a": np.arange(3.0)}, progress=bad)
    assert c.count == 0


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_piece_runs_must_be_a_positive_integer(bad):
    with pytest.raises((TypeError, ValueError), match="piece_runs"):
        sweep_fn(_noisy, {"a": np.arange(3.0)}, piece_runs=bad)


# ---------------------------------------------------------------- the default chunk (jaxdescent._cost)


def _cost_of(fn, key=_cost.SEED):
    hp = {"a": jax.ShapeDtypeStruct((), jnp.float32)}
    return _cost.count(jax.make_jaxpr(fn)(hp, jax.random.key(0)).jaxpr, (_cost.POINT, key))


def _small_ops(hp, key):  # the sextic's step: scalars, many operations
    return jax.lax.fori_loop(0, 100, lambda i, w: w - hp["a"] * (w**5 + w - 1), 1.0)


X = np.ones((1024, 64), np.float32)


def _large_products(hp, key):  # a full-batch layer: 1024 x 64 x 64 products
    w = jax.random.normal(key, (64, 64)) * hp["a"]
    return jax.lax.scan(lambda w, _: (w - 1e-3 * X.T @ jnp.tanh(X @ w) / 1024, None), w, None, length=10)[0].sum()


def test_cost_counts_loop_bodies_by_their_trip_counts():
    one = _cost_of(lambda hp, key: jax.lax.scan(lambda c, _: (c * hp["a"] + 1.0, None), 0.0, None, length=1)[0])
    ten = _cost_of(lambda hp, key: jax.lax.scan(lambda c, _: (c * hp["a"] + 1.0, None), 0.0, None, length=10)[0])
    assert one.operations >= 2 and ten.operations == 10 * one.operations and ten.work == 10 * one.work
    product = _cost_of(lambda hp, key: (np.ones((8, 16), np.float32) * hp["a"]) @ np.ones((16, 4), np.float32))
    assert product.work == 8 * 16 + 2 * 8 * 4 * 16  # the broadcast-multiply's elements, then the product's flops


def _until(bound, stop_early):  # a while loop as stepwise and stop_early write it: a counter, a bound, a test
    def run(hp, key):
        cond = lambda c: (c[0] < bound) & ~c[2] if stop_early else c[0] < bound
        body = lambda c: (c[0] + 1, jnp.sin(c[1]) * hp["a"], c[1] < 1e-3)
        return jax.lax.while_loop(cond, body, (0, 1.0, False))[1]
    return run


def test_cost_counts_a_while_loop_by_the_passes_its_code_bounds_it_to():
    body = _cost_of(lambda hp, key: jnp.sin(1.0) * hp["a"] < 1e-3).operations  # about one pass's operations
    for bound in (10, 1000):
        for stop_early in (False, True):
            ops = _cost_of(_until(bound, stop_early)).operations
            assert bound * body <= ops <= (bound + 1) * (body + 8), (bound, stop_early, ops)
    fori = _cost_of(lambda hp, key: jax.lax.fori_loop(jnp.int32(3), jnp.int32(43), lambda i, w: jnp.sin(w), hp["a"]))
    assert 40 <= fori.operations <= 41 * 4
    unknown = _cost_of(lambda hp, key: jax.lax.while_loop(lambda w: w < 10.0, lambda w: w * 2.0, hp["a"]))
    assert unknown.operations < 10  # no counter, no bound: one pass, as before


def _wide_steps(hp, key):  # small operations on 64 kB values, 3 a step: 5 runs fill a 1 MiB cache
    w = jax.random.normal(key, (128, 128)) * hp["a"]
    return jax.lax.fori_loop(0, 1000, lambda i, w: jnp.tanh(w * 0.5 + 0.1), w).sum()


def _draws_every_step(hp, key):  # as _wide_steps, plus a draw from the seed each step (a minibatch, a mask)
    w = jnp.zeros((128, 128)) + hp["a"]
    return jax.lax.fori_loop(0, 100, lambda i, w: jnp.tanh(w * 0.5 + jax.random.normal(jax.random.fold_in(key, i),
                                                                                      (128, 128))), w).sum()


IMAGES = np.ones((4, 8, 8, 1), np.float32)


def _convolution(hp, key):  # a kernel that varies per run: vmapped, a grouped convolution
    kernel = jax.random.normal(key, (3, 3, 1, 4)) * hp["a"]
    return jax.lax.conv_general_dilated(IMAGES, kernel, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")).sum()


def test_a_cores_own_cache_is_read_from_the_os(tmp_path):
    cpu = tmp_path / "cpu0"
    (cpu / "topology").mkdir(parents=True)
    (cpu / "topology" / "thread_siblings_list").write_text("0,64\n")  # two hardware threads share the core
    for i, (level, kind, size, shared) in enumerate([(1, "Data", "48K", "0,64"), (1, "Instruction", "32K", "0,64"),
                                                      (2, "Unified", "2048K", "0,64"), (3, "Unified", "105M", "0-127")]):
        index = cpu / "cache" / f"index{i}"
        index.mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
            (index / name).write_text(f"{value}\n")
    assert _cost.core_cache_bytes(str(cpu)) == 2048 * 1024  # the L2: the L3 is shared with other cores
    assert _cost.core_cache_bytes(str(tmp_path / "absent")) == _cost.CACHE_BYTES


def test_cost_knows_what_each_value_varies_with():
    seeded = _cost_of(_draws_every_step)
    assert 0 < seeded.seed_operations < seeded.operations  # the draws vary with the seed alone, the rest per run
    assert _cost_of(_draws_every_step, key=_cost.CONSTANT).seed_operations == 0  # no seed axis: the key is shared
    assert _cost_of(_wide_steps).step_bytes == 3 * 128 * 128 * 4  # a pass writes w * 0.5, + 0.1 and the tanh
    assert _cost_of(_small_ops).step_bytes < 100
    assert _cost_of(_convolution).batched_convolution
    assert not _cost_of(lambda hp, key: jax.lax.conv_general_dilated(  # a kernel shared by every run
        IMAGES * hp["a"], np.ones((3, 3, 1, 4), np.float32), (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC")).sum()).batched_convolution


@pytest.mark.parametrize("fn, num_runs, cores, row, chunk", [
    pytest.param(_wide_steps, 256, 2, 1, 4, id="196 kB a step: the power of two of runs that fit 1 MiB"),
    pytest.param(_wide_steps, 256, 2, 8, 4, id="196 kB a step, seeds: a part of a row of 8"),
    pytest.param(_draws_every_step, 256, 2, 8, 128, id="draws every step: rows of seeds share them"),
    pytest.param(_draws_every_step, 256, 2, 1, 1, id="draws every step, no seeds: nothing to share, 852 kB a step"),
    pytest.param(_convolution, 256, 2, 2, 8, id="a kernel per run: at most 8"),
    pytest.param(_small_ops, 10**6, 2, 1, 256, id="small ops, many runs: the widest chunk"),
    pytest.param(_small_ops, 64, 2, 1, 32, id="small ops, few runs: one chunk per core"),
    pytest.param(_small_ops, 64, 16, 1, 4, id="16 cores"),
    pytest.param(_small_ops, 256, 2, 8, 128, id="seeds: whole rows of 8"),
    pytest.param(_small_ops, 60, 2, 8, 24, id="seeds: 30 runs per core, rows of 8"),
    pytest.param(_small_ops, 12, 4, 8, 2, id="seeds: 3 runs per core, a part of a row"),
    pytest.param(_large_products, 256, 2, 8, 1, id="large products: one run at a time"),
])
def test_default_chunk(fn, num_runs, cores, row, chunk, monkeypatch):
    monkeypatch.setattr(_cost, "core_cache_bytes", lambda: 1 << 20)  # the ids' numbers: a core of 1 MiB L2
    assert _cost.cpu_chunk(_cost_of(fn), num_runs=num_runs, cores=cores, row=row) == chunk


def test_pieces_hold_about_thirty_seconds_of_estimated_work():
    cost = _cost.RunCost(operations=4e6, work=1e10, peak_bytes=0)  # 1 s of work + 0.04 s of operations / chunk
    assert _cost.piece_runs(cost, chunk=4, cores=2, most=10**6) == 56  # 30 s x 2 cores / 1.01 s = 59.4: blocks of 8
    assert _cost.piece_runs(cost._replace(work=1e14), chunk=4, cores=2, most=10**6) == 8  # a chunk for each core
    tiny = cost._replace(work=1.0, operations=1.0)
    assert _cost.piece_runs(tiny, chunk=256, cores=2, most=5000) == 4608  # whole blocks of 512 under `most`
    assert _cost.piece_runs(cost, chunk=4, cores=2, most=5) == 5


def test_a_fast_sweep_in_memory_is_one_piece_a_saved_one_several(tmp_path):
    counts = []
    sweep(sextic, learning_rate=np.linspace(0.001, 0.01, 300), w0=np.linspace(-1, 1, 300), num_steps=50,
          progress=lambda done, total: counts.append(done))
    assert counts == [90000]
    counts.clear()
    sweep(sextic, learning_rate=np.linspace(0.001, 0.01, 300), w0=np.linspace(-1, 1, 300), num_steps=50,
          out=tmp_path / "r", progress=lambda done, total: counts.append(done))
    assert counts == [65536, 90000]  # a saved piece holds at most _engine.PIECE_RUNS runs


@pytest.mark.parametrize("chunk_size", [None, 1, 3, 8, 24])
def test_a_chunk_of_points_and_seeds_computes_what_the_hand_written_vmap_does(chunk_size):
    """Whole rows of seeds (8, 24), a part of one (None: 12 on 2 cores, 1), or neither (3): the same numbers as a
    researcher's vmap (points) of a vmap (seeds), up to float rounding (the widths differ)."""
    data = jax.random.normal(jax.random.key(1), (200, 8))

    def run(hp, key):
        w = jax.random.normal(key, (8,))
        idx = jax.random.choice(key, 200, (32,), replace=False)
        return jnp.tanh(data[idx] @ w * hp["a"]).mean()

    a = np.linspace(0.1, 1.0, 6, dtype=np.float32)
    got = sweep_fn(run, {"a": a}, seeds=4, chunk_size=chunk_size, progress=False).metrics
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(0), s))(jnp.arange(4))
    by_hand = jax.jit(jax.vmap(lambda x: jax.vmap(lambda k: run({"a": x}, k))(keys)))(a)
    np.testing.assert_allclose(got, by_hand, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- Ctrl-C

CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import jaxdescent
    import jax, jax.numpy as jnp
    from jaxdescent import sweep_fn

    def run(hp, key):  # about a second a piece on a 2-core machine
        m = jax.random.normal(key, (32, 32)) / 8
        return {"w": jax.lax.fori_loop(0, 1_500_000, lambda i, w: jnp.tanh(m @ w + hp["a"]), jnp.ones(32))}

    try:
        r = sweep_fn(run, {"a": np.linspace(0, 1, 8)}, seeds=2, chunk_size=2, piece_runs=4, out=sys.argv[1],
                     progress=lambda done, total: print("done", done, flush=True))
    except KeyboardInterrupt:
        print("interrupted at", time.time(), flush=True)  # then the exit waits for the abandoned piece's threads
        raise
    np.save(sys.argv[2], np.asarray(r.metrics["w"]))
""")


@pytest.mark.slow  # a subprocess: over 10 s on 2 cores
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_in_threads_keeps_finished_pieces_and_resumes_bit_identical(tmp_path):
    def start(out, npy):
        return subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(npy)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    child = start(tmp_path / "r", tmp_path / "a.npy")
    assert child.stdout.readline().split() == ["done", "4"]  # the first piece is saved
    time.sleep(0.2)
    sent = time.time()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode != 0 and "KeyboardInterrupt" in err, err[-2000:]
    assert "done" not in out, out  # the piece in progress was abandoned, not finished
    raised = float(out.split("interrupted at")[1])
    assert raised - sent < 10, raised - sent  # within the lanes' share of the piece (about a second here)
    kept = sorted(os.listdir(tmp_path / "r" / "pieces"))  # the first piece, and the calls the threads finished
    assert kept[0] == "piece_0000000000-0000000004.npz" and all(n.startswith("piece_") for n in kept), kept
    assert not (tmp_path / "a.npy").exists()

    resumed = start(tmp_path / "r", tmp_path / "a.npy")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert out.split()[:2] == ["done", "4"]  # the saved piece was found
    whole = start(tmp_path / "fresh", tmp_path / "b.npy")
    assert whole.wait(timeout=300) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_cost_counts_a_convolutions_flops():
    image, kernel = np.ones((1, 3, 8, 8), np.float32), np.ones((5, 3, 3, 3), np.float32)  # NCHW, OIHW
    conv = _cost_of(lambda hp, key: jax.lax.conv_general_dilated(image * hp["a"], kernel, (1, 1), "VALID"))
    assert conv.work == 3 * 8 * 8 + 2 * (5 * 6 * 6) * (3 * 3 * 3)  # the multiply's elements, then 2 x out x window


@pytest.mark.skipif(jax.__version_info__ < (0, 10), reason="jax 0.7.2 cannot vmap this gradient inside shard_map")
def test_a_convolutions_gradient_over_points_and_seeds():
    """JAX cannot batch a grouped convolution's gradient in nested vmaps inside shard_map (jax 0.10): the chunk
    falls back to one flat vmap and gives the hand-written vmap's numbers."""
    data = jax.random.normal(jax.random.key(2), (64, 6, 6, 1))

    def run(hp, key):  # a minibatch drawn with the run's key, as in a researcher's conv net
        kernel = jax.random.normal(key, (3, 3, 1, 4))
        images = data[jax.random.randint(key, (16,), 0, 64)]

        def loss(k):
            out = jax.lax.conv_general_dilated(images, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return jnp.mean(jnp.tanh(out) ** 2)

        for _ in range(3):
            kernel = kernel - hp["a"] * jax.grad(loss)(kernel)
        return loss(kernel)

    a = np.array([0.1, 0.5, 1.0], np.float32)
    got = sweep_fn(run, {"a": a}, seeds=2, chunk_size=6, progress=False).metrics
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(0), s))(jnp.arange(2))
    by_hand = jax.jit(jax.vmap(lambda x: jax.vmap(lambda k: run({"a": x}, k))(keys)))(a)
    np.testing.assert_allclose(got, by_hand, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_a_ctrl_c_in_a_held_block_is_raised_when_it_ends_and_the_handler_is_called_at_once():
    calls, steps = [], []

    def handler(signum, frame):  # as the command line's: starts its deadline, then raises
        calls.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with _progress.held_interrupt():
                os.kill(os.getpid(), signal.SIGINT)
                for i in range(50):  # bytecodes run: a plain handler would have raised here
                    time.sleep(0.001)
                    steps.append(i)
                assert calls == [signal.SIGINT]
        assert len(steps) == 50 and signal.getsignal(signal.SIGINT) is handler
        with _progress.held_interrupt():  # no Ctrl-C: nothing raised
            steps.append("quiet")
    finally:
        signal.signal(signal.SIGINT, previous)
