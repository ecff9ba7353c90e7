import functools
import json
import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdescent import SweepResult, count_compilations, gradient_descent, grid_pairs, sweep, sweep_pairs
from jaxdescent._compat import enable_x64
from jaxdescent.losses import bowl, sextic

LEARNING_RATES = np.array([1e-3, 1e-2, 0.1, 0.3, 1.0, 2.0], np.float32)  # the last rows diverge
STARTS = np.linspace(-2, 2, 9, dtype=np.float32)


def numpy_sweep(learning_rate, w0, num_steps, bound=1e10, tol=1e-4):
    """The lecture's rule in float32 NumPy over the whole grid, with the documented checks."""
    lr = np.asarray(learning_rate, np.float32)[:, None]
    w = np.broadcast_to(np.asarray(w0, np.float32), (lr.shape[0], len(w0))).copy()
    diverged = np.full(w.shape, -1)
    converged = np.full(w.shape, -1)
    with np.errstate(all="ignore"):
        for t in range(num_steps + 1):
            loss = w**6 / np.float32(6) + w**2 / np.float32(2) - w
            grad = w**5 + w - np.float32(1)
            bad = ~np.isfinite(loss) | ~(np.abs(w) <= np.float32(bound))
            diverged = np.where((diverged < 0) & bad, t, diverged)
            converged = np.where((converged < 0) & (grad * grad < np.float32(tol) ** 2), t, converged)
            if t < num_steps:
                w = (w - lr * grad).astype(np.float32)
    return w, loss, diverged, converged


@functools.lru_cache(maxsize=None)
def grid_result():
    return sweep(sextic, w0=STARTS, learning_rate=LEARNING_RATES, num_steps=300)


def test_matches_numpy_reference():
    out = grid_result()
    w, loss, diverged_step, converged_step = numpy_sweep(LEARNING_RATES, STARTS, 300)
    chex.assert_shape([out.final_w, out.final_loss, out.diverged, out.diverged_step, out.converged_step], (6, 9))
    assert out.diverged.dtype == bool and out.diverged_step.dtype == jnp.int32
    assert out.loss_history is None
    np.testing.assert_array_equal(out.diverged_step, diverged_step)
    np.testing.assert_array_equal(out.diverged, diverged_step >= 0)
    # Diverging and converging rows both present, as the test intends.
    assert out.diverged[-1].all() and out.diverged[-2].any() and not out.diverged[:2].any()
    ok = ~np.asarray(out.diverged)
    np.testing.assert_allclose(np.asarray(out.final_w)[ok], w[ok], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.final_loss)[ok], loss[ok], rtol=1e-5, atol=1e-6)
    # |f'| crosses the tolerance where rounding differs between autodiff and the hand formula.
    assert np.abs(np.asarray(out.converged_step) - converged_step).max() <= 1
    assert (converged_step[2:4] >= 0).any() and (converged_step[0] == -1).all()


def test_lecture_blow_up_step():
    out = sweep_pairs(sextic, w0=np.array([1.9]), learning_rate=np.array([1.0]), num_steps=5)
    # Iterate 2 is 7.57e6 with an inf float32 loss (DESIGN.md); iterate 4 is inf.
    assert int(out.diverged_step[0]) == 2 and not np.isfinite(out.final_w[0])


def test_divergence_is_isolated():
    out = grid_result()
    diverged = np.asarray(out.diverged)
    final_w = np.asarray(out.final_w)
    assert not np.isfinite(final_w[diverged]).all()  # inf/nan are there, in their own slots ...
    chex.assert_tree_all_finite((final_w[~diverged], np.asarray(out.final_loss)[~diverged]))
    # ... and every other run is bit-identical to running it alone.
    for i, j in [(0, 0), (2, 4), (3, 8), (1, 5)]:
        alone = sweep_pairs(sextic, w0=STARTS[j:j + 1], learning_rate=LEARNING_RATES[i:i + 1], num_steps=300)
        for field in ("final_w", "final_loss", "diverged_step", "converged_step"):
            np.testing.assert_array_equal(getattr(alone, field)[0], getattr(out, field)[i, j])
    row = sweep(sextic, w0=STARTS, learning_rate=LEARNING_RATES[:2], num_steps=300)
    np.testing.assert_array_equal(row.final_w, out.final_w[:2])
    one = gradient_descent(sextic, STARTS[3], learning_rate=LEARNING_RATES[1], num_steps=300)
    np.testing.assert_allclose(one.w[-1], out.final_w[1, 3], rtol=1e-6)


def test_bowl_with_batched_start_points():
    w0 = np.array([[-8.0, 7.0], [1.0, -2.0], [0.5, 0.25]], np.float32)
    lr = np.array([0.1, 0.2, 0.6], np.float32)
    out = sweep(bowl, w0=w0, learning_rate=lr, num_steps=100)
    chex.assert_shape(out.final_w, (3, 3, 2))
    chex.assert_shape(out.final_loss, (3, 3))
    # w := w - α(4w₁, 2w₂) multiplies each coordinate by (1 - 4α, 1 - 2α) per step.
    factor = np.stack([1 - 4 * lr, 1 - 2 * lr], axis=-1)[:, None, :] ** 100
    np.testing.assert_allclose(out.final_w[:2], (factor * w0)[:2], rtol=1e-4, atol=1e-30)
    np.testing.assert_array_equal(out.diverged, [[False] * 3, [False] * 3, [True] * 3])
    # |1 - 4·0.6| = 1.4: the first coordinate passes the 1e10 bound at the first t with 1.4^t |w₁| > 1e10.
    expected = np.ceil(np.log(1e10 / np.abs(w0[:, 0])) / np.log(1.4)).astype(int)
    np.testing.assert_array_equal(out.diverged_step[2], expected)
    assert (out.converged_step[1] > 0).all()


def test_pytree_start_points():
    loss_fn = lambda p: 2 * p["a"] ** 2 + jnp.sum(p["b"] ** 2)
    w0 = {"a": np.array([-8.0, 1.0]), "b": np.ones((2, 3))}
    out = sweep(loss_fn, w0=w0, learning_rate=np.array([0.1]), num_steps=3)
    chex.assert_shape([out.final_w["a"], out.final_w["b"]], [(1, 2), (1, 2, 3)])
    np.testing.assert_allclose(out.final_w["a"][0], w0["a"] * 0.6**3, rtol=1e-6)


def test_loss_history_every_k_steps():
    out = sweep(sextic, w0=STARTS[:3], learning_rate=LEARNING_RATES[:2], num_steps=10, record_every=3)
    chex.assert_shape(out.loss_history, (2, 3, 4))  # iterates 0, 3, 6, 9
    path = gradient_descent(sextic, STARTS[1], learning_rate=LEARNING_RATES[1], num_steps=10)
    np.testing.assert_allclose(out.loss_history[1, 1], path.loss[::3], rtol=1e-6)
    plain = sweep(sextic, w0=STARTS[:3], learning_rate=LEARNING_RATES[:2], num_steps=10)
    np.testing.assert_array_equal(out.final_w, plain.final_w)


def test_compiles_once_for_new_values():
    run = lambda lr, w0, n=50: sweep(sextic, w0=w0, learning_rate=lr, num_steps=n).final_w.block_until_ready()
    run(np.array([0.01, 0.02]), np.array([0.0, 1.0, 2.0]))
    with count_compilations() as c:
        run(np.array([0.05, 0.5]), np.array([-1.0, 0.5, 1.5]))
        run(np.array([1e-4, 1e-3]), np.array([3.0, 1.0, -2.0]))
    assert c.count == 0
    with count_compilations() as c:
        run(np.array([0.05, 0.5]), np.array([-1.0, 0.5, 1.5]), n=51)  # a new num_steps must compile
    assert c.count >= 1


@pytest.mark.parametrize("factory", [optax.adam, functools.partial(optax.sgd, momentum=0.9)])
def test_optax_factory_matches_hand_run_optax(factory):
    w0 = np.array([[-8.0, 7.0], [1.0, 2.0]], np.float32)
    lr = np.array([0.01, 0.05], np.float32)
    out = sweep(bowl, w0=w0, learning_rate=lr, num_steps=30, optimizer=factory)
    for i in range(2):
        for j in range(2):
            tx = factory(learning_rate=float(lr[i]))
            w = jnp.asarray(w0[j])
            state = tx.init(w)
            for _ in range(30):
                updates, state = tx.update(jax.grad(bowl)(w), state, w)
                w = optax.apply_updates(w, updates)
            # Fused compiled code rounds differently from eager optax: float32 agreement, not bits.
            np.testing.assert_allclose(out.final_w[i, j], w, rtol=1e-4, atol=1e-5)


def test_pieces_reassemble_the_grid():
    out = grid_result()
    pieces = []
    total = LEARNING_RATES.size * STARTS.size
    for start in range(0, total, 20):
        lr, w0 = grid_pairs(LEARNING_RATES, STARTS, start=start, stop=min(start + 20, total))
        pieces.append(sweep_pairs(sextic, w0=w0, learning_rate=lr, num_steps=300))
    whole = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs).reshape((6, 9) + xs[0].shape[1:]), *pieces)
    for field in ("final_w", "final_loss", "diverged", "diverged_step", "converged_step"):
        np.testing.assert_array_equal(getattr(whole, field), getattr(out, field))


def test_small_chunks_are_bit_identical():
    out = grid_result()
    small = sweep(sextic, w0=STARTS, learning_rate=LEARNING_RATES, num_steps=300, chunk_size=7)
    for field in SweepResult._fields[:-1]:
        np.testing.assert_array_equal(getattr(small, field), getattr(out, field))


FOUR_DEVICES = textwrap.dedent("""
    import sys, numpy as np, jax
    from jaxdescent import sweep
    from jaxdescent.losses import sextic
    assert jax.device_count() == 4, jax.devices()
    lr, w0 = np.load(sys.argv[1])["lr"], np.load(sys.argv[1])["w0"]
    many = sweep(sextic, w0=w0, learning_rate=lr, num_steps=300, chunk_size=4)
    one = sweep(sextic, w0=w0, learning_rate=lr, num_steps=300, devices=jax.devices()[:1])
    np.savez(sys.argv[2], **{f"many_{k}": np.asarray(v) for k, v in many._asdict().items() if v is not None},
             **{f"one_{k}": np.asarray(v) for k, v in one._asdict().items() if v is not None})
""")


def test_four_devices_bit_identical_to_one(tmp_path):
    np.savez(tmp_path / "in.npz", lr=LEARNING_RATES, w0=STARTS)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                   env=env, check=True, timeout=120)
    got = np.load(tmp_path / "out.npz")
    out = grid_result()
    for field in ("final_w", "final_loss", "diverged", "diverged_step", "converged_step"):
        np.testing.assert_array_equal(got[f"many_{field}"], got[f"one_{field}"])
        np.testing.assert_array_equal(got[f"many_{field}"], getattr(out, field))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(learning_rate=np.array([])), ValueError, "learning_rate is empty"),
        (dict(w0=np.array([])), ValueError, "w0 is empty"),
        (dict(learning_rate=np.array([0.1, 0.0])), ValueError, "learning_rate must be > 0"),
        (dict(learning_rate=np.array([0.1, -1.0])), ValueError, "learning_rate must be > 0"),
        (dict(learning_rate=np.array([0.1, np.nan])), ValueError, "learning_rate must be finite"),
        (dict(learning_rate=np.array([0.1, np.inf])), ValueError, "learning_rate must be finite"),
        (dict(learning_rate=0.1), ValueError, "learning_rate must be a 1-D"),
        (dict(w0=np.array([1.0, np.nan])), ValueError, "w0 must be finite"),
        (dict(w0=1.0), ValueError, "w0 must have a leading batch axis"),
        (dict(w0=np.ones((3, 2))), ValueError, "w0 does not fit loss_fn"),
        (dict(loss_fn=bowl, w0=np.ones(3)), ValueError, "w0 does not fit loss_fn"),
        (dict(loss_fn=bowl, w0=np.ones((3, 2, 2))), ValueError, "w0 does not fit loss_fn"),
        (dict(num_steps=-1), ValueError, "num_steps must be >= 0"),
        (dict(num_steps=2.5), TypeError, "num_steps"),
        (dict(optimizer=optax.adam(0.1)), TypeError, "optimizer"),
        (dict(optimizer="adam"), TypeError, "optimizer"),
        (dict(record_every=-2), ValueError, "record_every"),
        (dict(chunk_size=0), ValueError, "chunk_size"),
        (dict(divergence_bound=0.0), ValueError, "divergence_bound"),
        (dict(grad_tol=-1.0), ValueError, "grad_tol"),
        (dict(loss_fn="sextic"), TypeError, "loss_fn must be callable"),
        pytest.param(dict(learning_rate=np.array([0.1, 1e-39])), ValueError,
                     r"learning_rate \[1e-39\] is subnormal in float32", id="learning-rate-subnormal"),
        pytest.param(dict(learning_rate=np.array([0.1, 1e-6]), w0=STARTS.astype(np.float16), grad_tol=0.01),
                     ValueError, r"learning_rate \[1e-06\] is subnormal in float16", id="learning-rate-subnormal-f16"),
        pytest.param(dict(learning_rate=["0.1", "0.2"]), TypeError, "learning_rate must be a number, not a string",
                     id="learning-rate-strings"),
        pytest.param(dict(learning_rate=np.array(["0.1"])), TypeError, "learning_rate must be a number, not a string",
                     id="learning-rate-string-array"),
        pytest.param(dict(num_steps=2**31), ValueError, "num_steps must be at most 2,147,483,646",
                     id="num-steps-beyond-int32"),
        pytest.param(dict(num_steps=2**31 - 1), ValueError, "num_steps must be at most", id="num-steps-never"),
        pytest.param(dict(record_every=2**40), ValueError, "record_every must be at most", id="record-every-huge"),
        pytest.param(dict(w0=STARTS.astype(np.float16)), ValueError,
                     r"grad_tol=0\.0001 squared underflows float16, w0's float", id="grad-tol-default-in-float16"),
        pytest.param(dict(grad_tol=1e-20), ValueError, "grad_tol=1e-20 squared underflows float32",
                     id="grad-tol-underflows-float32"),
        pytest.param(dict(optimizer=optax.adam, hyperparams={"b1": [0.9, 1.5]}), ValueError,
                     r"hyperparams\['b1'\] must be in \[0, 1\) \(optax's b1\), got \[1.5\]", id="adam-b1-above-1"),
        pytest.param(dict(optimizer=optax.adam, hyperparams={"eps": [-1e-8]}), ValueError,
                     r"hyperparams\['eps'\] must be >= 0", id="adam-eps-negative"),
        pytest.param(dict(optimizer=functools.partial(optax.sgd, momentum=float("nan"))), ValueError,
                     "optimizer: its momentum must be finite", id="partial-momentum-nan"),
        pytest.param(dict(piece_runs=0), ValueError, "piece_runs must be >= 1", id="piece-runs-0"),
        pytest.param(dict(piece_runs=-5), ValueError, "piece_runs must be >= 0", id="piece-runs-negative"),
        pytest.param(dict(piece_runs=2.5), TypeError, "piece_runs must be a non-negative integer",
                     id="piece-runs-float"),
        pytest.param(dict(piece_runs="8"), TypeError, "piece_runs must be a non-negative integer",
                     id="piece-runs-str"),
    ],
)
def test_bad_input_raises_before_compiling(kwargs, error, match):
    args = dict(loss_fn=sextic, w0=STARTS, learning_rate=LEARNING_RATES, num_steps=10) | kwargs
    loss_fn = args.pop("loss_fn")
    with pytest.raises(error, match=match):
        sweep(loss_fn, **args)


def test_pairs_must_have_matching_lengths():
    with pytest.raises(ValueError, match="learning_rate has 2 entries but w0 has 3"):
        sweep_pairs(sextic, w0=np.zeros(3), learning_rate=np.array([0.1, 0.2]), num_steps=3)
    with pytest.raises(ValueError, match="start < stop"):
        grid_pairs(LEARNING_RATES, STARTS, start=5, stop=5)


def test_composes_with_jit_and_vmap():
    out = grid_result()
    inside = jax.jit(lambda lr, w0: sweep(sextic, w0=w0, learning_rate=lr, num_steps=300))(
        jnp.asarray(LEARNING_RATES), jnp.asarray(STARTS))
    for field in ("final_w", "diverged_step", "converged_step"):
        np.testing.assert_array_equal(getattr(inside, field), getattr(out, field))
    rows = jax.vmap(lambda lr: sweep(sextic, w0=STARTS, learning_rate=lr[None], num_steps=300).final_w[0])(
        jnp.asarray(LEARNING_RATES[:3]))
    np.testing.assert_allclose(rows, out.final_w[:3], rtol=1e-6)


def test_fast_cpu_flags_refused_too_late():
    from jaxdescent import fast_cpu_flags, use_fast_cpu_flags

    assert "xla_cpu_small_while_loop_byte_threshold" in fast_cpu_flags()
    jax.devices()  # a backend now exists
    before = os.environ.get("XLA_FLAGS")
    with pytest.raises(RuntimeError, match="before JAX initialises"):  # this process already has a backend
        use_fast_cpu_flags()
    assert os.environ.get("XLA_FLAGS") == before
    script = ("import os, jaxdescent as s; s.use_fast_cpu_flags(); import jax; jax.devices(); "
              "print(os.environ['XLA_FLAGS'])")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(fast_cpu_flags().split())


IMPORT_CONFIG = textwrap.dedent("""
    import json, os, sys, warnings
    if sys.argv[1] == "jax-first":
        import jax; jax.devices()
    import numpy as np, jaxdescent, jax
    from jaxdescent.losses import sextic
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            jaxdescent.sweep(sextic, w0=np.array([1.9]), learning_rate=np.array([0.01]), num_steps=3)
    print(json.dumps({"flags": os.environ.get("XLA_FLAGS", ""), "devices": len(jax.devices()),
                      "warnings": [str(w.message) for w in caught]}))
""")
@pytest.mark.parametrize("case, env_extra, flagged, devices, warned", [
    pytest.param("import-first", {}, True, 1, 0, id="import-first"),  # the flag; never a device count
    pytest.param("jax-first", {}, False, 1, 1, id="jax-started-first-warns-once"),
    pytest.param("import-first", {"JAXDESCENT_CONFIGURE_XLA": "0"}, False, 1, 0, id="turned-off"),
    pytest.param("import-first", {"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}, True, 3, 0,
                 id="user-device-count-kept"),
])
def test_import_configures_xla_only_when_safe(case, env_extra, flagged, devices, warned):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXDESCENT_CONFIGURE_XLA")}
    env.update(env_extra, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", IMPORT_CONFIG, case], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert ("small_while_loop" in got["flags"]) is flagged
    assert got["devices"] == devices
    assert len(got["warnings"]) == warned
    if warned:
        assert "XLA_FLAGS=" in got["warnings"][0] and "JAXDESCENT_CONFIGURE_XLA=0" in got["warnings"][0]


@pytest.mark.parametrize("optimizer", [pytest.param(None, id="sgd"),
                                       pytest.param(functools.partial(optax.sgd, momentum=0.9), id="momentum")])
def test_stop_early_matches_the_full_run(optimizer):
    w0 = np.linspace(-2, 2, 41, dtype=np.float32)
    lr = np.array([1e-3, 1e-2, 0.1, 0.3, 0.7, 0.8, 1.0, 2.0], np.float32)
    full = sweep(sextic, w0=w0, learning_rate=lr, num_steps=300, optimizer=optimizer)
    with count_compilations() as compiled:
        early = sweep(sextic, w0=w0, learning_rate=lr, num_steps=300, optimizer=optimizer, stop_early=True,
                      chunk_size=16)
    assert compiled.count == 1
    np.testing.assert_array_equal(early.converged_step, full.converged_step)
    np.testing.assert_array_equal(early.diverged_step, full.diverged_step)
    assert (early.converged_step >= 0).any() and (early.diverged_step >= 0).any()
    # final_w is the full trajectory's iterate at the first converged or diverged step (the last if neither)
    steps = np.stack([full.converged_step, full.diverged_step])
    stop = np.where(steps >= 0, steps, 300).min(axis=0)
    for i, a in enumerate(lr):
        # every start point at once: the sum's gradient is each point's own, and both optimizers act per element
        path = np.asarray(gradient_descent(lambda w: jnp.sum(jax.vmap(sextic)(w)), w0, learning_rate=a,
                                           num_steps=300, optimizer=optimizer).w)
        want = path[stop[i], np.arange(w0.size)]
        # another program (one run over all points) can round an iterate differently by an ulp (jax 0.7.2 does)
        np.testing.assert_allclose(early.final_w[i], want, rtol=4e-7, atol=0)
        np.testing.assert_allclose(early.final_loss[i], jax.vmap(sextic)(want), rtol=4e-6, atol=0)


@pytest.mark.parametrize("kwargs, error", [
    pytest.param({"stop_early": True, "record_every": 10}, ValueError, id="with-history"),
    pytest.param({"stop_early": 1}, TypeError, id="not-a-bool"),
])
def test_stop_early_bad_input(kwargs, error):
    with pytest.raises(error, match="stop_early"):
        sweep(sextic, w0=STARTS, learning_rate=LEARNING_RATES, num_steps=10, **kwargs)


def test_float16_start_points_converge_with_a_tolerance_float16_can_test():
    """float16 runs test |grad|² < grad_tol² in float16: the default 1e-4 squared is 0 there (refused, see the
    table); with grad_tol=0.01 a run that reaches the minimum converges, one that stalls (α·f' below half a
    float16 step of w, near |f'| = 0.023 for α = 0.01) honestly does not."""
    out = sweep(sextic, learning_rate=np.array([0.01, 0.1]), w0=np.array([1.9, 0.7], np.float16), num_steps=1000,
                grad_tol=0.01, progress=False)
    assert out.final_w.dtype == np.float16
    w = np.asarray(out.final_w, np.float32)
    f_prime = w**5 + w - 1  # in float32: what the float16 iterates' true gradient is
    converged = np.asarray(out.converged_step) >= 0
    np.testing.assert_array_equal(converged, [[False, False], [True, True]])
    assert (np.abs(f_prime[1]) < 0.01).all() and (np.abs(f_prime[0]) > 0.01).all()


def test_learning_rates_are_checked_in_w0s_float_with_x64():
    """With x64 on, float32 start points still run in float32: 1e-300 would be 0 there (the run froze), 1e-50
    too (reported as diverged at step 1)."""
    with enable_x64(True):
        for lr in (1e-300, 1e-50, 1e-39):
            with pytest.raises(ValueError, match=r"learning_rate \[.*\] (cannot be represented|is subnormal) in "
                                                 r"float32"):
                sweep(sextic, learning_rate=np.array([0.1, lr]), w0=STARTS, num_steps=3, progress=False)
            with pytest.raises(ValueError, match=r"learning_rate .* in float32"):
                gradient_descent(sextic, np.float32(1.9), learning_rate=lr, num_steps=3)
        # float64 start points run in float64, where 1e-50 moves w = 0 by 1e-50 a step (f'(0) = -1)
        out = sweep(sextic, learning_rate=np.array([1e-50]), w0=np.array([0.0]), num_steps=3, progress=False)
        np.testing.assert_allclose(np.asarray(out.final_w), [[3e-50]], rtol=1e-12)
