"""The engine under sweep and sweep_fn: hyperparameter axes, keys, labels, compilations, devices, saving.

Every test compares with an independent reference: a float32 NumPy loop of
the optimizer, a Python loop over the jitted run function with the documented
keys, the grid computed another way (alone, on other devices, in other
chunks), or a table built by hand with ``itertools.product``.
"""

import functools
import inspect
import itertools
import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxdescent
from jaxdescent import _compat, _engine, _progress, count_compilations, results, sweep, sweep_fn
from jaxdescent.losses import bowl, sextic

# ---------------------------------------------------------------- shared run functions


def noisy_descent(hp, key):
    """Gradient descent on w**2 with Gaussian gradient noise: every step draws from the run's key."""
    def step(i, w):
        g = 2 * w + hp["sigma"] * jax.random.normal(jax.random.fold_in(key, i))
        return w - hp["lr"] * g
    w = jax.lax.fori_loop(0, 20, step, jnp.float32(1.0))
    return {"w": w, "loss": w * w, "z": jax.random.normal(key, (3,))}


NOISY_AXES = {"lr": np.array([0.01, 0.1, 0.3], np.float32), "sigma": np.array([0.0, 0.5], np.float32)}

LRS = np.array([0.01, 0.05, 0.2], np.float32)
MOMENTA = np.array([0.0, 0.5, 0.9], np.float32)
STARTS = np.array([-1.5, 0.0, 1.0, 1.9], np.float32)
NUM_STEPS = 200


def jitted_runs(fn, axes, num_seeds, key=None):
    """The reference: a Python loop over ``jax.jit(fn)`` with key ``fold_in(key, seed)`` for every grid point."""
    key = jax.random.key(0) if key is None else key
    one = jax.jit(fn)
    names = list(axes)
    shape = tuple(len(v) for v in axes.values()) + (num_seeds,)
    out = {}
    for index in itertools.product(*(range(n) for n in shape)):
        hp = {name: jnp.asarray(axes[name][i]) for name, i in zip(names, index)}
        got = one(hp, jax.random.fold_in(key, index[-1]))
        for k, v in got.items():
            out.setdefault(k, np.zeros(shape + np.shape(v), np.asarray(v).dtype))[index] = np.asarray(v)
    return out


def assert_trees_equal(a, b):
    chex.assert_trees_all_equal_structs(a, b)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def assert_trees_close(a, b):
    """The same runs computed at another vmapped width (chunk, grid size, one by one): equal up to a few ulps.

    Bit-identity is promised for a fixed chunk only: XLA contracts a*b + c into fused multiply-adds according to
    how it fuses the program at that width (the README says so; tests/test_bit_identity.py tests what is exact).
    """
    chex.assert_trees_all_equal_structs(a, b)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=4e-6), a, b)


@functools.cache
def noisy_result(seeds=3, chunk_size=None):
    return sweep_fn(noisy_descent, NOISY_AXES, seeds=seeds, chunk_size=chunk_size)


@functools.cache
def momentum_result():
    return sweep(sextic, w0=STARTS, learning_rate=LRS, num_steps=NUM_STEPS, optimizer=optax.sgd,
                 hyperparams={"momentum": MOMENTA})


# ---------------------------------------------------------------- sweep with hyperparameters vs NumPy


def numpy_heavy_ball(lr, momentum, w0, num_steps, bound=1e10, tol=1e-4):
    """optax.sgd with momentum in float32 NumPy on the sextic: m = g + βm; w -= α m; with the documented checks."""
    f32 = np.float32
    lr = np.asarray(lr, f32)[:, None, None]
    beta = np.asarray(momentum, f32)[None, :, None]
    w = np.broadcast_to(np.asarray(w0, f32)[None, None, :], (lr.shape[0], beta.shape[1], len(w0))).copy()
    m = np.zeros_like(w)
    diverged = np.full(w.shape, -1)
    converged = np.full(w.shape, -1)
    with np.errstate(all="ignore"):
        for t in range(num_steps + 1):
            loss = w**6 / f32(6) + w**2 / f32(2) - w
            grad = w**5 + w - f32(1)
            bad = ~np.isfinite(loss) | ~(np.abs(w) <= f32(bound))
            diverged = np.where((diverged < 0) & bad, t, diverged)
            converged = np.where((converged < 0) & (grad * grad < f32(tol) ** 2), t, converged)
            if t < num_steps:
                m = (grad + beta * m).astype(f32)
                w = (w - lr * m).astype(f32)
    return w, loss, diverged, converged


def test_momentum_axis_matches_numpy_heavy_ball():
    out = momentum_result()
    assert out.axes == ("learning_rate", "momentum", "w0")
    chex.assert_shape([out.final_w, out.final_loss, out.diverged, out.diverged_step, out.converged_step],
                      (3, 3, 4))
    w, loss, diverged_step, converged_step = numpy_heavy_ball(LRS, MOMENTA, STARTS, NUM_STEPS)
    np.testing.assert_array_equal(out.diverged_step, diverged_step)
    np.testing.assert_array_equal(out.diverged, diverged_step >= 0)
    # The grid holds diverged, converged and unconverged runs, or the comparison proves little.
    assert out.diverged.any() and not out.diverged.all()
    assert (converged_step >= 0).any() and ((converged_step < 0) & (diverged_step < 0)).any()
    ok = ~np.asarray(out.diverged)
    np.testing.assert_allclose(np.asarray(out.final_w)[ok], w[ok], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.final_loss)[ok], loss[ok], rtol=1e-5, atol=1e-6)
    # |f'| crosses grad_tol where autodiff and the hand formula round differently.
    assert np.abs(np.asarray(out.converged_step) - converged_step).max() <= 1
    # Momentum changes the runs: the β = 0.9 slice differs from plain gradient descent.
    assert not np.allclose(np.asarray(out.final_w)[0, 2], np.asarray(out.final_w)[0, 0])


def test_momentum_zero_is_plain_sgd():
    out = momentum_result()
    plain = sweep(sextic, w0=STARTS, learning_rate=LRS, num_steps=NUM_STEPS)
    for field in ("final_w", "diverged_step", "converged_step"):
        np.testing.assert_array_equal(getattr(out, field)[:, 0], getattr(plain, field))


def numpy_adam(lr, b1, b2, w0, num_steps, eps=1e-8):
    """optax.adam in float32 NumPy on bowl over the grid lr × b1 × b2 × w0 (w0 of shape (n, 2))."""
    f32 = np.float32
    lr = np.asarray(lr, f32)[:, None, None, None, None]
    b1 = np.asarray(b1, f32)[None, :, None, None, None]
    b2 = np.asarray(b2, f32)[None, None, :, None, None]
    w = np.broadcast_to(np.asarray(w0, f32), (lr.shape[0], b1.shape[1], b2.shape[2]) + np.shape(w0)).copy()
    mu = np.zeros_like(w)
    nu = np.zeros_like(w)
    scale = np.array([4.0, 2.0], f32)
    for t in range(1, num_steps + 1):
        g = scale * w
        mu = ((f32(1) - b1) * g + b1 * mu).astype(f32)
        nu = ((f32(1) - b2) * g * g + b2 * nu).astype(f32)
        mu_hat = mu / (f32(1) - b1 ** f32(t))
        nu_hat = nu / (f32(1) - b2 ** f32(t))
        w = (w - lr * (mu_hat / (np.sqrt(nu_hat) + f32(eps)))).astype(f32)
    loss = 2 * w[..., 0] ** 2 + w[..., 1] ** 2
    return w, loss


def test_adam_b1_b2_axes_match_numpy_adam():
    w0 = np.array([[-8.0, 7.0], [1.0, 2.0], [3.0, -0.5]], np.float32)
    lrs = np.array([0.01, 0.1], np.float32)
    b1 = np.array([0.0, 0.9], np.float32)
    b2 = np.array([0.9, 0.99, 0.999], np.float32)
    out = sweep(bowl, w0=w0, learning_rate=lrs, num_steps=30, optimizer=optax.adam,
                hyperparams={"b1": b1, "b2": b2})
    assert out.axes == ("learning_rate", "b1", "b2", "w0")
    chex.assert_shape(out.final_w, (2, 2, 3, 3, 2))
    chex.assert_shape([out.final_loss, out.diverged_step, out.converged_step], (2, 2, 3, 3))
    w, loss = numpy_adam(lrs, b1, b2, w0, 30)
    np.testing.assert_allclose(out.final_w, w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.final_loss, loss, rtol=1e-4, atol=1e-5)
    assert not out.diverged.any()
    # The hyperparameters matter: b1 = 0 and b1 = 0.9 give different runs.
    assert np.abs(np.asarray(out.final_w)[:, 0] - np.asarray(out.final_w)[:, 1]).max() > 1e-3


# ---------------------------------------------------------------- sweep_fn: keys and the grid


def test_sweep_fn_equals_a_loop_over_the_jitted_fn():
    out = noisy_result()
    assert out.axes == ("lr", "sigma", "seed")
    chex.assert_shape([out.metrics["w"], out.metrics["loss"]], (3, 2, 3))
    chex.assert_shape(out.metrics["z"], (3, 2, 3, 3))
    assert_trees_close(out.metrics, jitted_runs(noisy_descent, NOISY_AXES, 3))
    # The noise is there: the seeds of a noisy run differ, those of a noiseless one agree.
    w = np.asarray(out.metrics["w"])
    assert len(set(w[1, 1].tolist())) == 3 and len(set(w[1, 0].tolist())) == 1


def test_explicit_key_is_the_root_of_the_seed_keys():
    key = jax.random.key(42)
    out = sweep_fn(noisy_descent, NOISY_AXES, seeds=2, key=key)
    assert_trees_equal(out.metrics, jitted_runs(noisy_descent, NOISY_AXES, 2, key=key))
    assert not np.array_equal(out.metrics["z"], noisy_result().metrics["z"][:, :, :2])
    # Raw uint32 key data is accepted as the same key.
    raw = sweep_fn(noisy_descent, NOISY_AXES, seeds=2, key=jax.random.key_data(key))
    assert_trees_equal(raw.metrics, out.metrics)


def test_seed_keys_do_not_depend_on_the_number_of_seeds():
    two = noisy_result(seeds=2)
    five = noisy_result(seeds=5)
    assert five.axes[-1] == "seed" and five.metrics["w"].shape == (3, 2, 5)
    assert_trees_close(two.metrics, jax.tree_util.tree_map(lambda x: x[:, :, :2], five.metrics))
    np.testing.assert_array_equal(two.metrics["z"], np.asarray(five.metrics["z"])[:, :, :2])  # the keys


def test_no_seed_axis_is_seed_zero():
    none = sweep_fn(noisy_descent, NOISY_AXES)
    assert none.axes == ("lr", "sigma")
    assert_trees_equal(none.metrics, jax.tree_util.tree_map(lambda x: x[:, :, 0], noisy_result().metrics))


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_chunking_changes_at_most_the_last_bits(chunk_size):
    assert_trees_close(noisy_result(chunk_size=chunk_size).metrics, noisy_result().metrics)
    np.testing.assert_array_equal(noisy_result(chunk_size=chunk_size).metrics["z"], noisy_result().metrics["z"])


def test_zipped_points_are_the_grid_diagonal():
    axes = {"lr": np.array([0.01, 0.1, 0.3], np.float32), "sigma": np.array([0.0, 0.5, 1.0], np.float32)}
    zipped = sweep_fn(noisy_descent, axes, seeds=2, product=False)
    assert zipped.axes == ("point", "seed")
    assert zipped.coords.dims == ("point", "point", "seed") and zipped.coords.shape == (3, 2)
    chex.assert_shape(zipped.metrics["w"], (3, 2))
    grid = sweep_fn(noisy_descent, axes, seeds=2)
    i = np.arange(3)
    assert_trees_close(zipped.metrics, jax.tree_util.tree_map(lambda x: np.asarray(x)[i, i], grid.metrics))
    table = zipped.to_pandas()
    assert list(table.columns) == ["lr", "sigma", "seed", "loss", "w"]
    np.testing.assert_array_equal(table["lr"], np.repeat(axes["lr"], 2))
    np.testing.assert_array_equal(table["sigma"], np.repeat(axes["sigma"], 2))
    np.testing.assert_array_equal(table["seed"], [0, 1] * 3)
    np.testing.assert_array_equal(table["w"], np.asarray(zipped.metrics["w"]).ravel())


def test_non_finite_runs_never_touch_the_others():
    def blow_up(hp, key):
        def step(i, w):
            return w * hp["a"] + jax.random.normal(jax.random.fold_in(key, i)) * 1e-3
        w = jax.lax.fori_loop(0, 100, step, jnp.float32(1.0))
        return {"w": w, "log": jnp.log(hp["a"]), "root": jnp.sqrt(hp["a"] - 0.5)}

    a = np.array([0.5, 30.0, -30.0, 0.9, 0.0, -1.0, 1.0], np.float32)  # 30 and -30 overflow to inf / nan
    out = sweep_fn(blow_up, {"a": a}, seeds=2)
    w, log, root = (np.asarray(out.metrics[k]) for k in ("w", "log", "root"))
    assert not np.isfinite(w[1:3]).any() and np.isnan(log[[2, 5]]).all() and np.isinf(log[4]).all()
    assert np.isnan(root[[2, 4, 5]]).all() and np.isfinite(w[[0, 3, 4, 5, 6]]).all()
    assert_trees_equal(out.metrics, jitted_runs(blow_up, {"a": a}, 2))
    for i in (0, 3, 6):  # a finite run is bit-identical to running it alone
        alone = sweep_fn(blow_up, {"a": a[i:i + 1]}, seeds=2)
        assert_trees_equal(alone.metrics, {k: np.asarray(v)[i:i + 1] for k, v in out.metrics.items()})


# ---------------------------------------------------------------- threads on CPU


@pytest.fixture
def threads(monkeypatch):
    """Sets the engine's CPU threads; yields the list of calls that were split over several threads."""
    merged, in_calls = [], _progress.in_calls

    def recording(call, indices, threads):
        if min(threads, len(indices)) > 1:
            merged.append(min(threads, len(indices)))
        return in_calls(call, indices, threads)

    monkeypatch.setattr(_progress, "in_calls", recording)
    yield lambda n: monkeypatch.setattr(_engine, "CPU_THREADS", n) or merged


@pytest.mark.parametrize("n", [2, 3, 5])
def test_threads_give_the_runs_of_one_thread(threads, n, tmp_path, monkeypatch):
    """A call split over threads (chunks dealt in turn, results merged on the host) is the same bits, keys too."""
    def run(hp, key):
        return {**noisy_descent(hp, key), "key": key}

    merged = threads(1)
    one = sweep_fn(run, NOISY_AXES, seeds=3, chunk_size=2).metrics
    assert merged == []
    threads(n)
    many = sweep_fn(run, NOISY_AXES, seeds=3, chunk_size=2).metrics  # 18 runs: 9 chunks over n threads
    assert jnp.issubdtype(many["key"].dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(many["key"]), jax.random.key_data(one["key"]))
    with pytest.raises(ValueError, match=r"\['key'\].*key_data"):  # a key cannot be saved: a clear error
        sweep_fn(run, NOISY_AXES, seeds=3, out=tmp_path / "keys")
    assert not (tmp_path / "keys").exists()
    # saved in pieces of 5 runs, each call split over the threads
    saved = sweep_fn(noisy_descent, NOISY_AXES, seeds=3, chunk_size=2, out=tmp_path / "r", piece_runs=5).metrics
    assert merged[0] > 1  # the calls of the 18 runs were shared among threads
    for got in (many, saved):
        assert_trees_equal({k: v for k, v in got.items() if k != "key"},
                           {k: v for k, v in one.items() if k != "key"})


def test_a_lane_with_one_chunk_is_bit_identical_to_a_lane_with_several(threads):
    """1332 runs in 6 chunks: 6 threads hold one chunk each, 1-3 threads several (XLA once compiled them apart)."""
    def loss(w):
        return jnp.sum(w["p"] ** 2 * jnp.array([1.0, 10.0])) + w["q"] ** 4

    w0 = {"p": np.random.default_rng(0).normal(size=(333, 2)), "q": np.linspace(-1, 1, 333)}
    got = {}
    for n in (1, 2, 3, 6):
        threads(n)
        r = sweep(loss, w0=w0, learning_rate=np.array([0.01, 0.05, 0.09, 0.2]), num_steps=40)
        got[n] = (r.final_w, r.final_loss, r.diverged_step, r.converged_step)
    for n in (2, 3, 6):
        assert_trees_equal(got[n], got[1])


def test_threads_keep_empty_metrics_and_the_callers_jax_settings(threads):
    """Empty metrics merge; settings entered with a context manager (per thread in JAX) hold in every thread."""
    def run(hp, key):
        return {"a": hp["a"] * 1.1 + jax.random.normal(key), "empty": jnp.zeros((0, 3)) + hp["a"]}

    axes = {"a": np.linspace(0.1, 1, 600)}
    merged = threads(2)
    out = sweep_fn(run, axes, chunk_size=64).metrics
    assert merged == [2] and out["empty"].shape == (600, 0, 3)
    with _compat.enable_x64(True):
        assert sweep_fn(run, axes, chunk_size=64).metrics["a"].dtype == jnp.float64
    with jax.debug_nans(True), pytest.raises(FloatingPointError):
        sweep_fn(lambda hp, key: jnp.log(hp["a"] - 0.5), axes, chunk_size=64)


def test_a_run_with_a_lapack_call_stays_on_one_thread(threads):
    """Batched LAPACK kernels wait on XLA's shared pool: two at once can hang, so such a run is not split."""
    def run(hp, key):
        m = jnp.array([[2.0, hp["lr"]], [hp["lr"], 1.0]])
        return {"top": jnp.linalg.eigh(m)[0][-1], "w": noisy_descent(hp, key)["w"]}

    merged = threads(4)
    out = sweep_fn(run, NOISY_AXES, seeds=3, chunk_size=2)
    assert merged == []
    lr = np.repeat(NOISY_AXES["lr"], 6).reshape(3, 2, 3)
    want = 1.5 + np.sqrt(0.25 + lr.astype(np.float64) ** 2)  # the top eigenvalue of [[2, a], [a, 1]]
    np.testing.assert_allclose(out.metrics["top"], want, rtol=1e-6)
    assert _engine._library_calls(jax.make_jaxpr(lambda m: jnp.linalg.eigh(m)[0].sum() + jnp.sin(m))(np.eye(2))) == {"eigh"}
    assert _engine._library_calls(jax.make_jaxpr(lambda m: jnp.sin(m) @ m)(np.eye(2))) == set()


def test_cpu_threads_is_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(_engine, "CPU_THREADS", None)
    assert _engine.cpu_threads() == len(os.sched_getaffinity(0)) >= 1
    monkeypatch.setattr(_engine, "CPU_THREADS", 3)
    assert _engine.cpu_threads() == 3


# ---------------------------------------------------------------- compilations


def test_compilations_sweep():
    def run(lr, mom, w0, num_steps=17, optimizer=optax.sgd):
        out = sweep(sextic, w0=w0, learning_rate=lr, num_steps=num_steps, optimizer=optimizer,
                    hyperparams={"momentum": mom})
        jax.block_until_ready(out)
        return out

    lr, mom, w0 = np.array([0.01, 0.02], np.float32), np.array([0.0, 0.9], np.float32), np.zeros(3, np.float32)
    run(lr, mom, w0)
    with count_compilations() as c:
        run(lr * 3, mom / 2, w0 + 1)
    assert c.count == 0
    with count_compilations() as c:  # a new num_steps is a new program: exactly one compilation for the grid
        run(lr, mom, w0, num_steps=18)
    assert c.count == 1
    with count_compilations() as c:  # and one more for a new shape
        run(lr, mom, np.zeros(5, np.float32))
    assert c.count >= 1

    partial_run = lambda: run(lr, mom, w0, optimizer=functools.partial(optax.sgd, nesterov=False))
    partial_run()
    with count_compilations() as c:  # a fresh partial with equal arguments is the same program
        partial_run()
    assert c.count == 0
    with count_compilations() as c:  # but nesterov=True is another
        run(lr, mom, w0, optimizer=functools.partial(optax.sgd, nesterov=True))
    assert c.count >= 1


def test_compilations_sweep_fn():
    axes = {"lr": np.array([0.1, 0.2], np.float32), "sigma": np.array([0.0, 1.0, 2.0], np.float32)}
    jax.block_until_ready(sweep_fn(noisy_descent, axes, seeds=2).metrics)
    with count_compilations() as c:
        new = {"lr": np.array([0.3, 0.05], np.float32), "sigma": np.array([0.5, 0.25, 4.0], np.float32)}
        out = sweep_fn(noisy_descent, new, seeds=2, key=jax.random.key(7))
        jax.block_until_ready(out.metrics)
    assert c.count == 0
    assert_trees_equal(out.metrics, jitted_runs(noisy_descent, new, 2, key=jax.random.key(7)))



# ---------------------------------------------------------------- devices

# The subprocess runs the very same source of noisy_descent.
FOUR_DEVICES = "import jax, jax.numpy as jnp\n" + inspect.getsource(noisy_descent) + textwrap.dedent("""
    import sys, numpy as np, optax
    from jaxdescent import sweep, sweep_fn
    from jaxdescent.losses import sextic
    assert jax.device_count() == 4, jax.devices()
    d = np.load(sys.argv[1])
    axes = {"lr": d["lr"], "sigma": d["sigma"]}
    many = sweep_fn(noisy_descent, axes, seeds=3, chunk_size=2)
    one = sweep_fn(noisy_descent, axes, seeds=3, chunk_size=2, devices=jax.devices()[:1])
    other = sweep_fn(noisy_descent, axes, seeds=3, chunk_size=2, devices=jax.devices()[2:3])  # not the default
    assert other.metrics["w"].devices() == {jax.devices()[2]}, other.metrics["w"].devices()
    np.testing.assert_array_equal(np.asarray(other.metrics["w"]), np.asarray(one.metrics["w"]))
    hp = dict(w0=d["w0"], learning_rate=d["lrs"], num_steps=int(d["num_steps"]), optimizer=optax.sgd,
              hyperparams={"momentum": d["momenta"]})
    many_sweep = sweep(sextic, chunk_size=3, **hp)
    one_sweep = sweep(sextic, chunk_size=3, devices=jax.devices()[:1], **hp)
    fields = ("final_w", "final_loss", "diverged_step", "converged_step")
    np.savez(sys.argv[2], **{f"many_{k}": np.asarray(v) for k, v in many.metrics.items()},
             **{f"one_{k}": np.asarray(v) for k, v in one.metrics.items()},
             **{f"many_sweep_{k}": np.asarray(getattr(many_sweep, k)) for k in fields},
             **{f"one_sweep_{k}": np.asarray(getattr(one_sweep, k)) for k in fields})
""")


def test_four_devices_bit_identical_to_one(tmp_path):
    np.savez(tmp_path / "in.npz", lr=NOISY_AXES["lr"], sigma=NOISY_AXES["sigma"], w0=STARTS, lrs=LRS,
             momenta=MOMENTA, num_steps=NUM_STEPS)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    here = noisy_result(chunk_size=2)  # the same chunk: the same bits, whatever the devices
    for k in ("w", "loss", "z"):
        np.testing.assert_array_equal(got[f"many_{k}"], got[f"one_{k}"])
        np.testing.assert_array_equal(got[f"many_{k}"], here.metrics[k])
    here = sweep(sextic, w0=STARTS, learning_rate=LRS, num_steps=NUM_STEPS, optimizer=optax.sgd,
                 hyperparams={"momentum": MOMENTA}, chunk_size=3)
    for k in ("final_w", "final_loss", "diverged_step", "converged_step"):
        np.testing.assert_array_equal(got[f"many_sweep_{k}"], got[f"one_sweep_{k}"])
        np.testing.assert_array_equal(got[f"many_sweep_{k}"], getattr(here, k))


# ---------------------------------------------------------------- labels


def expected_table(axes: dict, metrics: dict):
    """The documented table built by hand: a row per point of the product, in order (last axis fastest)."""
    rows = []
    for index in itertools.product(*(range(len(v)) for v in axes.values())):
        row = {name: np.asarray(values)[i] for (name, values), i in zip(axes.items(), index)}
        row.update({k: np.asarray(v)[index] for k, v in metrics.items()})
        rows.append(row)
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def test_sweep_fn_labels_and_table():
    out = noisy_result()
    assert isinstance(out, jaxdescent.Runs)
    assert out.coords.axes == out.axes == ("lr", "sigma", "seed")
    assert list(out.coords) == ["lr", "sigma", "seed"] and out.coords.shape == (3, 2, 3)
    np.testing.assert_array_equal(out.coords["lr"], NOISY_AXES["lr"])
    np.testing.assert_array_equal(out.coords["sigma"], NOISY_AXES["sigma"])
    np.testing.assert_array_equal(out.coords["seed"], [0, 1, 2])
    table = out.to_pandas()
    assert len(table) == 18
    assert list(table.columns) == ["lr", "sigma", "seed", "loss", "w"]  # z is not a scalar per run
    want = expected_table({**NOISY_AXES, "seed": np.arange(3)},
                          {"loss": out.metrics["loss"], "w": out.metrics["w"]})
    for name, column in want.items():
        np.testing.assert_array_equal(table[name].to_numpy(), column, err_msg=name)
    # Row-major: the seed varies fastest, then sigma, then lr.
    assert table.loc[1, ["lr", "sigma", "seed"]].tolist() == [np.float32(0.01), 0.0, 1]
    assert table.loc[3, ["lr", "sigma", "seed"]].tolist() == [np.float32(0.01), 0.5, 0]
    assert table.loc[6, ["lr", "sigma", "seed"]].tolist() == [np.float32(0.1), 0.0, 0]


def test_sweep_fn_single_array_metric_is_column_metric():
    out = sweep_fn(lambda hp, key: hp["a"] * 2, {"a": np.array([1.0, 2.0, 3.0], np.float32)})
    table = out.to_pandas()
    assert list(table.columns) == ["a", "metric"]
    np.testing.assert_array_equal(table["metric"], [2.0, 4.0, 6.0])


def test_sweep_labels_scalar_start_points():
    out = momentum_result()
    assert out.axes == ("learning_rate", "momentum", "w0")
    np.testing.assert_array_equal(out.coords["learning_rate"], LRS)
    np.testing.assert_array_equal(out.coords["momentum"], MOMENTA)
    np.testing.assert_array_equal(out.coords["w0"], STARTS)
    table = out.to_pandas()
    assert list(table.columns) == ["learning_rate", "momentum", "w0", "final_loss", "diverged", "diverged_step",
                                   "converged_step", "final_w"]
    assert len(table) == 3 * 3 * 4
    want = expected_table({"learning_rate": LRS, "momentum": MOMENTA, "w0": STARTS},
                          {k: getattr(out, k) for k in ("final_loss", "diverged", "diverged_step",
                                                         "converged_step", "final_w")})
    for name, column in want.items():
        np.testing.assert_array_equal(table[name].to_numpy(), column, err_msg=name)
    row = table.iloc[4 * 3 + 4 + 3]  # lr index 1, momentum index 1, w0 index 3
    assert (row["learning_rate"], row["momentum"], row["w0"]) == (LRS[1], MOMENTA[1], STARTS[3])
    assert row["final_w"] == np.asarray(out.final_w)[1, 1, 3]


def test_sweep_labels_vector_start_points():
    w0 = np.array([[-8.0, 7.0], [1.0, -2.0], [0.5, 0.25]], np.float32)
    lrs = np.array([0.1, 0.2], np.float32)
    out = sweep(bowl, w0=w0, learning_rate=lrs, num_steps=5)
    assert out.axes == ("learning_rate", "w0")
    np.testing.assert_array_equal(out.coords["w0"], w0)
    table = out.to_pandas()
    assert list(table.columns) == ["learning_rate", "w0_0", "w0_1", "final_loss", "diverged", "diverged_step",
                                   "converged_step", "final_w_0", "final_w_1"]
    np.testing.assert_array_equal(table["learning_rate"], np.repeat(lrs, 3))
    np.testing.assert_array_equal(table[["w0_0", "w0_1"]].to_numpy(), np.tile(w0, (2, 1)))
    # Five steps of w := w − α(4w₁, 2w₂) multiply each coordinate by (1 − 4α, 1 − 2α) each step.
    factor = np.stack([1 - 4 * lrs, 1 - 2 * lrs], axis=-1)[:, None, :] ** 5
    np.testing.assert_allclose(table[["final_w_0", "final_w_1"]].to_numpy(), (factor * w0).reshape(6, 2),
                               rtol=1e-5, atol=1e-6)
    assert table.loc[4, "w0_0"] == 1.0 and table.loc[4, "learning_rate"] == lrs[1]


def test_to_xarray_dims():
    pytest.importorskip("xarray")
    ds = momentum_result().to_xarray()
    assert ds["final_w"].dims == ("learning_rate", "momentum", "w0")
    assert ds["diverged_step"].dims == ("learning_rate", "momentum", "w0")
    np.testing.assert_array_equal(ds["momentum"].values, MOMENTA)
    np.testing.assert_array_equal(ds["final_w"].sel(momentum=MOMENTA[2]).values, momentum_result().final_w[:, 2])

    w0 = np.array([[-8.0, 7.0], [1.0, -2.0]], np.float32)
    vec = sweep(bowl, w0=w0, learning_rate=np.array([0.1], np.float32), num_steps=3).to_xarray()
    assert vec["final_w"].dims == ("learning_rate", "w0", "final_w_dim_0")
    assert vec["final_loss"].dims == ("learning_rate", "w0")
    np.testing.assert_array_equal(vec["w0"].values, w0)

    runs = noisy_result().to_xarray()
    assert runs["w"].dims == ("lr", "sigma", "seed")
    assert runs["z"].dims == ("lr", "sigma", "seed", "z_dim_0")
    np.testing.assert_array_equal(runs["seed"].values, [0, 1, 2])
    zipped = sweep_fn(noisy_descent, {"lr": np.array([0.1, 0.2], np.float32),
                                      "sigma": np.array([0.0, 1.0], np.float32)}, seeds=2, product=False).to_xarray()
    assert zipped["w"].dims == ("point", "seed") and zipped["lr"].dims == ("point",)


def test_results_from_jit_keep_their_labels():
    out = momentum_result()
    inside = jax.jit(lambda lr, w0: sweep(sextic, w0=w0, learning_rate=lr, num_steps=NUM_STEPS, optimizer=optax.sgd,
                                          hyperparams={"momentum": MOMENTA}))(jnp.asarray(LRS), jnp.asarray(STARTS))
    assert isinstance(inside, jaxdescent.SweepResult)
    assert inside.axes == ("learning_rate", "momentum", "w0")
    np.testing.assert_array_equal(inside.coords["learning_rate"], LRS)
    for field in ("final_w", "final_loss", "diverged_step", "converged_step"):
        np.testing.assert_array_equal(getattr(inside, field), getattr(out, field))
    assert list(inside.to_pandas().columns) == list(out.to_pandas().columns)

    runs = jax.jit(lambda lr: sweep_fn(noisy_descent, {"lr": lr, "sigma": NOISY_AXES["sigma"]}, seeds=3))(
        jnp.asarray(NOISY_AXES["lr"]))
    assert runs.axes == ("lr", "sigma", "seed")
    assert_trees_equal(runs.metrics, noisy_result().metrics)


def test_bug_traced_hyperparams_inside_jit():
    """BUG: sweep under jax.jit with the hyperparameters traced fails.

    _check_hyperparams lets traced values through, but check_optimizer then calls
    np.asarray on them (descent.py, ``example = {k: np.asarray(v)...}``) and raises
    TracerArrayConversionError, although the optimizer receives traced values anyway.
    """
    out = momentum_result()
    inside = jax.jit(lambda mom: sweep(sextic, w0=STARTS, learning_rate=LRS, num_steps=NUM_STEPS,
                                       optimizer=optax.sgd, hyperparams={"momentum": mom}))(jnp.asarray(MOMENTA))
    assert inside.axes == ("learning_rate", "momentum", "w0")
    for field in ("final_w", "diverged_step", "converged_step"):
        np.testing.assert_array_equal(getattr(inside, field), getattr(out, field))


def test_bug_metric_named_like_an_axis_overwrites_the_axis_column():
    """BUG: Runs.to_pandas silently replaces an axis column by a metric of the same name.

    With out= the same collision is refused ("metric names ... collide with axis names");
    without it the table loses the coordinate values and shows the metric under the axis name.
    """
    out = sweep_fn(lambda hp, key: {"a": hp["a"] * 10}, {"a": np.array([1.0, 2.0], np.float32)})
    try:
        table = out.to_pandas()
    except ValueError as e:  # refusing the collision is an acceptable fix
        assert "a" in str(e)
        return
    assert "a" in table.columns
    np.testing.assert_array_equal(table["a"], [1.0, 2.0])  # the coordinate must not be lost


# ---------------------------------------------------------------- saving and resuming

SAVE_AXES = {"a": np.arange(5, dtype=np.float32), "b": np.array([1.0, 2.0, 3.0], np.float32)}  # 5 × 3 × 2 = 30 runs


def saved_fn(hp, key):
    return {"y": hp["a"] * hp["b"] + jax.random.normal(key), "v": jnp.stack([hp["a"], -hp["b"]])}


@functools.cache
def saved_reference():
    return sweep_fn(saved_fn, SAVE_AXES, seeds=2)


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of 7 runs (so 30 runs make 5 pieces); records which pieces are computed."""
    monkeypatch.setattr(_engine, "PIECE_RUNS", 7)
    computed = []
    run_pieces = results.run_pieces

    def recording(out_dir, config, num_runs, piece_runs, fields, compute_piece, **kwargs):
        def compute(start, stop):
            computed.append((start, stop))
            return compute_piece(start, stop)
        return run_pieces(out_dir, config, num_runs, piece_runs, fields, compute, **kwargs)

    monkeypatch.setattr(results, "run_pieces", recording)
    return computed


PIECE = lambda start, stop: f"piece_{start:010d}-{stop:010d}.npz"  # a piece of runs [start, stop)


def crash_after(monkeypatch, num_saved):
    """Makes saving the piece after ``num_saved`` pieces raise, as a crash would."""
    save_arrays = results.save_arrays
    saved = []

    def failing(path, arrays):
        if pathlib.Path(path).parent.name == "pieces":
            if len(saved) == num_saved:
                raise RuntimeError("simulated crash")
            saved.append(path)
        return save_arrays(path, arrays)

    monkeypatch.setattr(results, "save_arrays", failing)


def test_out_saves_and_a_second_call_loads(tmp_path, small_pieces):
    out_dir = tmp_path / "run"
    first = sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=out_dir)
    assert small_pieces == [(0, 7), (7, 14), (14, 21), (21, 28), (28, 30)]
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.json", "results.npz"]  # pieces removed
    assert_trees_equal(jax.tree_util.tree_map(np.asarray, first.metrics),
                       jax.tree_util.tree_map(np.asarray, saved_reference().metrics))
    assert first.axes == ("a", "b", "seed")
    saved = np.load(out_dir / "results.npz")
    # results.npz holds the runs flat, in run order, beside the coordinates.
    np.testing.assert_array_equal(saved["y"].reshape(5, 3, 2), saved_reference().metrics["y"])
    np.testing.assert_array_equal(saved["v"].reshape(5, 3, 2, 2), saved_reference().metrics["v"])
    np.testing.assert_array_equal(saved["a"], SAVE_AXES["a"])
    mtime = (out_dir / "results.npz").stat().st_mtime_ns

    with count_compilations() as c:
        second = sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=out_dir)
    assert c.count == 0 and len(small_pieces) == 5  # nothing computed
    assert (out_dir / "results.npz").stat().st_mtime_ns == mtime
    assert_trees_equal(second.metrics, first.metrics)


def test_resume_after_a_crash_is_bit_identical(tmp_path, small_pieces, monkeypatch):
    out_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        crash_after(m, 2)
        with pytest.raises(RuntimeError, match="simulated crash"):
            sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=out_dir)
    assert sorted(p.name for p in (out_dir / "pieces").iterdir()) == [PIECE(0, 7), PIECE(7, 14)]
    assert not (out_dir / "results.npz").exists() and not (out_dir / results.LOCK).exists()
    del small_pieces[:]
    resumed = sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=out_dir)
    assert small_pieces == [(14, 21), (21, 28), (28, 30)]  # only the missing pieces
    assert_trees_equal(jax.tree_util.tree_map(np.asarray, resumed.metrics),
                       jax.tree_util.tree_map(np.asarray, saved_reference().metrics))


def test_resume_with_run_grid_small_pieces(tmp_path, monkeypatch):
    coords = jaxdescent.Coords([(k, v) for k, v in SAVE_AXES.items()] + [("seed", np.arange(2, dtype=np.int32))])
    key = jax.random.key(0)
    with monkeypatch.context() as m:
        crash_after(m, 1)
        with pytest.raises(RuntimeError, match="simulated crash"):
            _engine.run_grid(saved_fn, coords, key=key, out=tmp_path, piece_runs=4)
    assert len(list((tmp_path / "pieces").iterdir())) == 1
    got = _engine.run_grid(saved_fn, coords, key=key, out=tmp_path, piece_runs=4)
    assert_trees_equal(jax.tree_util.tree_map(np.asarray, got),
                       jax.tree_util.tree_map(np.asarray, saved_reference().metrics))


def test_corrupt_and_foreign_pieces_are_recomputed(tmp_path, small_pieces, monkeypatch):
    # A foreign run with the same shapes and piece size, but other values.
    other_axes = {"a": SAVE_AXES["a"] + 100, "b": SAVE_AXES["b"]}
    foreign_dir = tmp_path / "foreign"
    with monkeypatch.context() as m:
        crash_after(m, 4)
        with pytest.raises(RuntimeError):
            sweep_fn(saved_fn, other_axes, seeds=2, out=foreign_dir)
    # A foreign run with another piece size (3 runs a piece).
    sized_dir = tmp_path / "sized"
    with monkeypatch.context() as m:
        m.setattr(_engine, "PIECE_RUNS", 3)
        crash_after(m, 4)
        with pytest.raises(RuntimeError):
            sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=sized_dir)

    out_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        crash_after(m, 4)
        with pytest.raises(RuntimeError):
            sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=out_dir)
    pieces = out_dir / "pieces"
    names = sorted(p.name for p in pieces.iterdir())
    assert names == [PIECE(0, 7), PIECE(7, 14), PIECE(14, 21), PIECE(21, 28)]
    # piece 0: truncated; piece 1: from the foreign grid; piece 2: another piece size's (runs 6 to 9);
    # piece 3: this run's piece 0 under piece 3's name (right identity, wrong runs); piece 4: missing.
    data = (pieces / names[0]).read_bytes()
    (pieces / names[0]).write_bytes(data[: len(data) // 2])
    (pieces / names[1]).write_bytes((foreign_dir / "pieces" / names[1]).read_bytes())
    (pieces / names[2]).write_bytes((sized_dir / "pieces" / PIECE(6, 9)).read_bytes())
    (pieces / names[3]).write_bytes(data)
    del small_pieces[:]
    got = sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=out_dir)
    assert small_pieces == [(0, 7), (7, 14), (14, 21), (21, 28), (28, 30)]
    assert_trees_equal(jax.tree_util.tree_map(np.asarray, got.metrics),
                       jax.tree_util.tree_map(np.asarray, saved_reference().metrics))


def test_a_corrupt_results_file_is_recomputed(tmp_path, small_pieces):
    sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=tmp_path)
    path = tmp_path / "results.npz"
    path.write_bytes(path.read_bytes()[:100])
    del small_pieces[:]
    got = sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=tmp_path)
    assert len(small_pieces) == 5
    assert_trees_equal(jax.tree_util.tree_map(np.asarray, got.metrics),
                       jax.tree_util.tree_map(np.asarray, saved_reference().metrics))


def test_out_refuses_other_folders(tmp_path, small_pieces):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=busy)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]

    used = tmp_path / "used"
    sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=used)
    before = (used / "results.npz").read_bytes()
    bad_calls = [
        dict(axes={"a": SAVE_AXES["a"] + 1, "b": SAVE_AXES["b"]}, seeds=2),  # other values
        dict(axes=SAVE_AXES, seeds=3),  # another seed axis
        dict(axes=SAVE_AXES, seeds=2, key=jax.random.key(1)),  # another key
    ]
    for kwargs in bad_calls:
        with pytest.raises(ValueError, match="holds another run"):
            sweep_fn(saved_fn, out=used, **kwargs)
    with pytest.raises(ValueError, match="holds another run"):  # another function
        sweep_fn(lambda hp, key: saved_fn(hp, key) | {"y": hp["a"]}, SAVE_AXES, seeds=2, out=used)
    assert (used / "results.npz").read_bytes() == before


def test_out_refuses_a_folder_in_use(tmp_path):
    sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=tmp_path)
    finished = (tmp_path / "results.npz").read_bytes()
    (tmp_path / results.LOCK).write_text(str(os.getppid()))  # a live process holds it
    # A finished result is read without the lock (files are only replaced by rename; read-only media work)
    np.testing.assert_array_equal(sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=tmp_path).metrics["y"],
                                  saved_reference().metrics["y"])
    (tmp_path / "results.npz").unlink()  # unfinished: computing needs the folder to itself
    with pytest.raises(ValueError, match="in use"):
        sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    (tmp_path / results.LOCK).write_text(dead.stdout.strip())  # its owner is gone: taken over
    got = sweep_fn(saved_fn, SAVE_AXES, seeds=2, out=tmp_path)
    np.testing.assert_array_equal(got.metrics["y"], saved_reference().metrics["y"])
    assert not (tmp_path / results.LOCK).exists() and (tmp_path / "results.npz").read_bytes() == finished


def test_sweep_with_hyperparams_saves_and_loads(tmp_path):
    kwargs = dict(w0=STARTS, learning_rate=LRS, num_steps=NUM_STEPS, optimizer=optax.sgd,
                  hyperparams={"momentum": MOMENTA})
    first = sweep(sextic, out=tmp_path, **kwargs)
    saved = np.load(tmp_path / "results.npz")
    np.testing.assert_array_equal(saved["momentum"], MOMENTA)
    with count_compilations() as c:
        second = sweep(sextic, out=tmp_path, **kwargs)
    assert c.count == 0
    assert second.axes == ("learning_rate", "momentum", "w0")
    for field in ("final_w", "final_loss", "diverged", "diverged_step", "converged_step"):
        np.testing.assert_array_equal(getattr(first, field), getattr(momentum_result(), field))
        np.testing.assert_array_equal(getattr(second, field), getattr(momentum_result(), field))
    with pytest.raises(ValueError, match="holds another run"):
        sweep(sextic, out=tmp_path, **(kwargs | {"hyperparams": {"momentum": MOMENTA[::-1]}}))


# ---------------------------------------------------------------- bad inputs

ONE = np.array([0.1, 0.2], np.float32)


def run_ok(hp, key):
    return hp["a"] * 2


@pytest.mark.parametrize(
    "call, error, match",
    [
        pytest.param(lambda: sweep_fn(run_ok, {}), ValueError, "axes must be a non-empty", id="empty-axes"),
        pytest.param(lambda: sweep_fn(run_ok, [("a", ONE)]), ValueError, "axes must be", id="axes-not-a-dict"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": np.ones((2, 2))}), ValueError, r"axes\['a'\].*1-D",
                     id="2d-axis"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": np.array([])}), ValueError, r"axes\['a'\].*non-empty",
                     id="empty-axis"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": np.array([0.1, np.nan])}), ValueError,
                     r"axes\['a'\] must be finite", id="nan-in-axis"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": np.array([0.1, np.inf])}), ValueError,
                     r"axes\['a'\] must be finite", id="inf-in-axis"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": np.array(["x", "y"])}), TypeError,
                     r"axes\['a'\] must hold real numbers", id="string-axis"),
        pytest.param(lambda: sweep_fn(run_ok, {"seed": ONE}), ValueError, "'seed' is reserved", id="reserved-seed"),
        pytest.param(lambda: sweep_fn(run_ok, {"point": ONE}), ValueError, "'point' is reserved",
                     id="reserved-point"),
        pytest.param(lambda: sweep_fn(run_ok, {"a b": ONE}), ValueError, "identifiers", id="name-not-identifier"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE, "b": np.ones(3)}, product=False), ValueError,
                     "product=False.*equal lengths", id="zip-unequal-lengths"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, seeds=0), ValueError, "seeds must be a positive",
                     id="seeds-0"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, seeds=-2), ValueError, "seeds", id="seeds-negative"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, seeds=2.0), ValueError, "seeds", id="seeds-float"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, seeds=True), ValueError, "seeds", id="seeds-bool"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, key=3), TypeError, "key must be", id="key-int"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, chunk_size=0), ValueError, "chunk_size",
                     id="chunk-size-0"),
        pytest.param(lambda: sweep_fn("run", {"a": ONE}), TypeError, "fn must be callable", id="fn-not-callable"),
        pytest.param(lambda: sweep_fn(lambda hp, key: "done", {"a": ONE}), TypeError, "fn", id="fn-returns-string"),
        pytest.param(lambda: sweep_fn(lambda hp, key: hp["missing"], {"a": ONE}), TypeError, "fn failed",
                     id="fn-fails"),
        pytest.param(lambda: sweep_fn(lambda hp: hp["a"], {"a": ONE}), TypeError, "fn", id="fn-wrong-arity"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, hyperparams={"w0": ONE}),
                     ValueError, "hyperparams: 'w0'", id="hyperparam-w0"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3,
                                   hyperparams={"learning_rate": ONE}),
                     ValueError, "hyperparams: 'learning_rate'", id="hyperparam-learning-rate"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, hyperparams={"seed": ONE}),
                     ValueError, "hyperparams: 'seed'", id="hyperparam-seed"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, optimizer=optax.sgd,
                                   hyperparams={"nope": [1.0]}),
                     TypeError, "optimizer", id="hyperparam-optimizer-does-not-accept"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, hyperparams={"nope": [1.0]}),
                     TypeError, "optimizer", id="hyperparam-default-optimizer-does-not-accept"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, optimizer=optax.sgd,
                                   hyperparams=[("momentum", ONE)]),
                     TypeError, "hyperparams must be a dict", id="hyperparams-not-a-dict"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, optimizer=optax.sgd,
                                   hyperparams={"momentum": np.array([0.1, np.nan])}),
                     ValueError, "momentum.*finite", id="hyperparam-nan"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, optimizer=optax.sgd,
                                   hyperparams={"momentum": np.ones((2, 2))}),
                     ValueError, "momentum.*1-D", id="hyperparam-2d"),
        # integers the run's int32 would wrap: the coordinates said 1099511627776, the run saw 0
        pytest.param(lambda: sweep_fn(run_ok, {"a": np.array([2**40, 3])}), ValueError,
                     r"axes\['a'\] \[1099511627776\] cannot be represented in int32", id="int64-beyond-int32"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": np.array([2**63 + 5], np.uint64)}), ValueError,
                     r"axes\['a'\] \[9223372036854775813\] cannot be represented in uint32", id="uint64-beyond-uint32"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": [-(2**31) - 1]}), ValueError,
                     r"axes\['a'\].*cannot be represented in int32", id="int-below-int32"),
        # finite in float64, inf in the run's float32
        pytest.param(lambda: sweep_fn(run_ok, {"a": np.array([1e39])}), ValueError,
                     r"axes\['a'\] \[1e\+39\] cannot be represented in float32", id="float64-beyond-float32"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, optimizer=optax.sgd,
                                   hyperparams={"momentum": [1e39]}),
                     ValueError, r"hyperparams\['momentum'\] \[1e\+39\] cannot be represented", id="hyperparam-overflow"),
        pytest.param(lambda: sweep(sextic, w0=STARTS.astype(np.float16), learning_rate=ONE, num_steps=3,
                                   grad_tol=0.01, optimizer=optax.sgd, hyperparams={"momentum": [0.5, 1e5]}),
                     ValueError, r"hyperparams\['momentum'\] \[100000.0\] cannot be represented in float16",
                     id="hyperparam-overflows-w0-float16"),
        # booleans are not numbers, and a flag is not a traced hyperparameter
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, optimizer=optax.sgd,
                                   hyperparams={"momentum": [True, False]}),
                     ValueError, r"hyperparams\['momentum'\] holds booleans", id="hyperparam-bool"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, optimizer=optax.sgd,
                                   hyperparams={"momentum": [0.5, True]}),
                     ValueError, r"hyperparams\['momentum'\] holds booleans", id="hyperparam-bool-among-floats"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3,
                                   hyperparams={"nesterov": [True, False]}),
                     ValueError, r"hyperparams\['nesterov'\].*a boolean flag is not a traced hyperparameter.*"
                     r"functools\.partial\(optax\.sgd, nesterov=True\)", id="hyperparam-nesterov-flag"),
        # out= and devices= are checked before compiling, by name
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, out=12345), TypeError, "out must be a folder path",
                     id="out-int"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, devices=["cpu"]), TypeError,
                     "devices must hold jax.Device objects", id="devices-names"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, devices="cpu"), TypeError, "devices must be a list",
                     id="devices-string"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, devices=jax.devices()[0]), TypeError,
                     "devices must be a list", id="devices-one-device"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, out=3.5), TypeError,
                     "out must be a folder path", id="sweep-out-float"),
        pytest.param(lambda: sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, devices=["cpu"]), TypeError,
                     "devices must hold jax.Device", id="sweep-devices-names"),
        # the run count is refused before the seed coordinate (37 GiB here) is built
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, seeds=10**10), ValueError,
                     "axes x seeds has 20,000,000,000 runs, more than 2,147,483,647", id="seeds-beyond-max-runs"),
        pytest.param(lambda: sweep_fn(run_ok, {"a": ONE}, chunk_size=2**31), ValueError, "chunk_size must be at most",
                     id="chunk-size-beyond-int32"),
    ],
)
def test_bad_input_raises_before_compiling(call, error, match):
    with count_compilations() as c, pytest.raises(error, match=match):
        call()
    assert c.count == 0


def test_bug_hyperparam_errors_name_hyperparams():
    """BUG (minor): a bad hyperparams value is reported as ``axes['momentum'] ...``; sweep has no ``axes`` argument.

    sweep's _check_hyperparams reuses sweep_fn's _check_axes and with it the wording of sweep_fn's argument.
    """
    for hyperparams in ({"momentum": np.array([0.1, np.nan])}, {"momentum": np.ones((2, 2))}):
        with pytest.raises(ValueError) as info:
            sweep(sextic, w0=STARTS, learning_rate=ONE, num_steps=3, optimizer=optax.sgd, hyperparams=hyperparams)
        assert "hyperparams" in str(info.value), str(info.value)


@pytest.mark.parametrize("seeds", [pytest.param(10**10, id="1e10"), pytest.param(2**31, id="2**31")])
def test_the_run_count_is_refused_before_any_per_run_array(seeds):
    """The seed coordinate of 10^10 runs alone is 37 GiB (int32): refused before it is built."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="seeds has .* runs, more than 2,147,483,647"):
            sweep_fn(run_ok, {"a": ONE[:1]}, seeds=seeds)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6, f"{peak:,} bytes allocated before refusing"


def test_the_results_are_counted_twice_in_the_memory_estimate():
    """The pieces and the joined result (or the device's result and its host copy) are held at once: a grid
    whose results fit once in half the memory but not twice is refused, before the seed coordinate is built."""
    per_run = 64  # 16 float32
    half = jaxdescent._validate.memory_bytes() // 2
    num_runs = min(int(0.75 * half / per_run), _engine.MAX_RUNS)
    if 2 * num_runs * per_run <= half:
        pytest.skip("this machine's memory is too large for the run-count limit to reach it")
    with pytest.raises(ValueError, match=r"axes x seeds: .* runs' results \(64 bytes each, held 2 times"):
        sweep_fn(lambda hp, key: jnp.zeros(16) + hp["a"], {"a": ONE[:1]}, seeds=num_runs)


def _with_callback(body):
    def run(hp, key):
        y = jax.pure_callback(body, jax.ShapeDtypeStruct((), jnp.float32), hp["a"], vmap_method="sequential")
        return {"y": y}
    return run


@pytest.mark.parametrize("make_run", [
    pytest.param(lambda: _with_callback(lambda a: np.float32(a * 2)), id="pure-callback"),
    pytest.param(lambda: (lambda hp, key: jax.lax.fori_loop(
        0, 2, lambda i, w: w + jax.pure_callback(lambda a: np.float32(a), jax.ShapeDtypeStruct((), jnp.float32), w,
                                                 vmap_method="sequential"), hp["a"])), id="pure-callback-in-a-loop"),
    pytest.param(lambda: (lambda hp, key: jax.jit(lambda a: (jax.debug.callback(lambda x: None, a), a)[1])(hp["a"])),
                 id="debug-callback-in-jit"),
    pytest.param(lambda: (lambda hp, key: jax.experimental.io_callback(
        lambda a: np.float32(a), jax.ShapeDtypeStruct((), jnp.float32), hp["a"])), id="io-callback"),
])
def test_out_refuses_a_run_with_a_host_callback(make_run, tmp_path):
    """out= recognises a saved run by its jaxpr, which shows a callback but not its Python body: two runs that
    differ only there would share one result (seen: the second loaded the first's)."""
    import jax.experimental  # noqa: F401  (io_callback)

    with count_compilations() as c, pytest.raises(ValueError, match=r"out= cannot save a run that calls back into "
                                                                    r"Python \((debug|io|pure)_callback\)"):
        sweep_fn(make_run(), {"a": ONE}, out=tmp_path / "r", progress=False)
    assert c.count == 0
    assert not (tmp_path / "r").exists()
    # without out= such a run is fine, and the body counts
    double = sweep_fn(_with_callback(lambda a: np.float32(a * 2)), {"a": ONE}, progress=False)
    triple = sweep_fn(_with_callback(lambda a: np.float32(a * 3)), {"a": ONE}, progress=False)
    np.testing.assert_allclose(double.metrics["y"], 2 * ONE)
    np.testing.assert_allclose(triple.metrics["y"], 3 * ONE)


def test_integer_axes_within_int32_run_with_their_values():
    out = sweep_fn(lambda hp, key: hp["a"], {"a": np.array([2**31 - 1, -(2**31), 3])}, progress=False)
    assert out.metrics.tolist() == [2**31 - 1, -(2**31), 3]
    assert out.coords["a"].tolist() == [2**31 - 1, -(2**31), 3]


# ---------------------------------------------------------------- compile once


def test_fn_is_traced_once_per_call(tmp_path):
    """The output shapes, the cost model, the program and out='s digest all read one trace of fn."""
    traces = []

    def run(hp, key):
        traces.append(1)
        return {"w": noisy_descent(hp, key)["w"], "twice": 2 * hp["lr"]}

    sweep_fn(run, NOISY_AXES, seeds=3, progress=False)
    assert len(traces) == 1
    sweep_fn(run, NOISY_AXES, seeds=3, out=tmp_path / "r", progress=False)  # the same shapes: no new trace
    assert len(traces) == 1
    sweep_fn(run, NOISY_AXES, static={"width": [1, 2]}, seeds=3, progress=False)  # one per static combination
    assert len(traces) == 3


def test_a_grid_of_another_size_reuses_the_program():
    """The program's shapes are one call's (chunks of a width): more or fewer points, padded at the end, compile
    nothing new once the grid fills a call for each core (tiny runs: 64 chunks a call)."""
    axes = lambda n: {"lr": np.linspace(0.05, 0.2, n, dtype=np.float32), "sigma": np.array([0.0, 1.0], np.float32)}
    sweep_fn(noisy_descent, axes(128), seeds=2, chunk_size=4, progress=False)
    for n in (129, 160, 200):
        with count_compilations() as c:
            got = sweep_fn(noisy_descent, axes(n), seeds=2, chunk_size=4, progress=False).metrics
            jax.block_until_ready(got)
        assert c.count == 0, n
        assert_trees_equal(got, jitted_runs(noisy_descent, axes(n), 2))
