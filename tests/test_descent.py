import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdescent import count_compilations, gradient_descent
from jaxdescent._compat import enable_x64
from jaxdescent.losses import bowl, sextic, sextic_grad


def python_loop(w, learning_rate, num_steps):
    """The lecture's rule in float32 NumPy, step by step."""
    w, lr, path = np.float32(w), np.float32(learning_rate), []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(num_steps + 1):
            path.append(w)
            w = np.float32(w - lr * np.float32(w**5 + w - np.float32(1)))
    return np.array(path)


@pytest.mark.parametrize("learning_rate", [0.001, 0.01, 0.1, 0.5])
def test_matches_python_loop(learning_rate):
    path = gradient_descent(sextic, 1.9, learning_rate=learning_rate, num_steps=200)
    chex.assert_shape([path.w, path.loss, path.grad], (201,))
    np.testing.assert_allclose(path.w, python_loop(1.9, learning_rate, 200), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(path.grad, sextic_grad(path.w), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(path.loss, sextic(path.w), rtol=1e-5)  # float32, a few ulps: FMA contraction varies with the XLA version


def test_blow_up_is_a_result_in_float32():
    path = gradient_descent(sextic, 1.9, learning_rate=1.0, num_steps=5)
    w, loss = np.asarray(path.w), np.asarray(path.loss)
    assert w[1] == pytest.approx(-23.76099, rel=1e-6)
    assert w[2] == pytest.approx(7_573_954.90, rel=1e-6)
    assert np.isinf(loss[2]) and np.isfinite(w[3]) and w[3] == pytest.approx(-2.49e34, rel=1e-2)
    assert not np.isfinite(w[4])


def test_float64_follows_the_input():
    with enable_x64(True):
        path = gradient_descent(sextic, jnp.float64(1.9), learning_rate=1.0, num_steps=3)
        assert path.w.dtype == jnp.float64
        assert float(path.w[2]) == pytest.approx(7_573_954.9049, abs=1e-3)
        assert np.isfinite(path.loss[2])


def test_pytree_start():
    loss_fn = lambda p: 2 * p["a"] ** 2 + jnp.sum(p["b"] ** 2)
    path = gradient_descent(loss_fn, {"a": -8.0, "b": jnp.array([7.0, 1.0])}, learning_rate=0.1, num_steps=3)
    chex.assert_shape(path.w["b"], (4, 2))
    np.testing.assert_allclose(path.w["a"], -8.0 * 0.6 ** np.arange(4), rtol=1e-6)
    np.testing.assert_allclose(path.w["b"][:, 0], 7.0 * 0.8 ** np.arange(4), rtol=1e-6)


@pytest.mark.parametrize("factory", [optax.adam, functools.partial(optax.sgd, momentum=0.9), optax.rmsprop])
def test_optimizer_matches_hand_run_optax(factory):
    w0, lr, n = jnp.array([-8.0, 7.0]), 0.05, 50
    tx, w = factory(learning_rate=lr), w0
    state, expected = tx.init(w), [w0]
    for _ in range(n):
        updates, state = tx.update(jax.grad(bowl)(w), state, w)
        w = optax.apply_updates(w, updates)
        expected.append(w)
    path = gradient_descent(bowl, w0, learning_rate=lr, num_steps=n, optimizer=factory)
    np.testing.assert_allclose(path.w, np.stack(expected), rtol=1e-5, atol=1e-6)


def test_new_learning_rates_do_not_recompile():
    traces = []

    def loss_fn(w):
        traces.append(1)
        return sextic(w)

    gradient_descent(loss_fn, 1.9, learning_rate=0.01, num_steps=10)
    after_first = len(traces)
    assert after_first > 0
    for lr in (0.02, 0.5, 1.0, 1e-4):
        gradient_descent(loss_fn, 1.5, learning_rate=lr, num_steps=10)
    assert len(traces) == after_first


def test_composes_with_vmap_over_learning_rates():
    lrs = jnp.array([0.001, 0.01, 0.1])
    final = jax.vmap(lambda lr: gradient_descent(sextic, 1.9, learning_rate=lr, num_steps=100).w[-1])(lrs)
    expected = [python_loop(1.9, lr, 100)[-1] for lr in [0.001, 0.01, 0.1]]
    np.testing.assert_allclose(final, expected, rtol=1e-5)


def test_zero_steps_is_the_start():
    path = gradient_descent(sextic, 1.9, learning_rate=0.1, num_steps=0)
    chex.assert_shape(path.w, (1,))
    assert float(path.loss[0]) == pytest.approx(7.74598, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(learning_rate=-0.1), ValueError, "learning_rate"),
        (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
        (dict(learning_rate=float("inf")), ValueError, "learning_rate"),
        (dict(learning_rate=[0.1, 0.2]), ValueError, "learning_rate"),
        (dict(num_steps=-1), ValueError, "num_steps"),
        (dict(num_steps=2.5), TypeError, "num_steps"),
        (dict(w0=float("nan")), ValueError, "w0"),
        (dict(w0=jnp.array([1.0, jnp.inf])), ValueError, "w0"),
        (dict(loss_fn=lambda w: w * jnp.ones(3)), TypeError, "loss_fn"),
        (dict(loss_fn=lambda w: w[5]), TypeError, "loss_fn"),
        (dict(optimizer=optax.adam(0.1)), TypeError, "optimizer"),
        (dict(optimizer=optax.identity), TypeError, "optimizer"),
        # numbers a partial binds: a NaN momentum gave a NaN trajectory, b1 >= 1 divides by 1 - b1**t = 0
        pytest.param(dict(optimizer=functools.partial(optax.sgd, momentum=float("nan"))), ValueError,
                     r"optimizer: its momentum must be finite, got \[nan\]", id="partial-momentum-nan"),
        pytest.param(dict(optimizer=functools.partial(functools.partial(optax.adam, b1=0.9), b2=float("inf"))),
                     ValueError, r"optimizer: its b2 must be finite", id="nested-partial-b2-inf"),
        pytest.param(dict(optimizer=functools.partial(optax.adam, 0.1, 1.0)), ValueError,
                     r"optimizer: its b1 must be in \[0, 1\) \(optax's b1\), got \[1.0\]", id="partial-positional-b1"),
        pytest.param(dict(optimizer=functools.partial(optax.sgd, momentum=-0.5)), ValueError,
                     r"optimizer: its momentum must be >= 0", id="partial-momentum-negative"),
        pytest.param(dict(learning_rate="0.1"), TypeError, "learning_rate must be a number, not a string",
                     id="learning-rate-string"),
        pytest.param(dict(learning_rate=1e-39), ValueError, r"learning_rate \[1e-39\] is subnormal in float32",
                     id="learning-rate-subnormal"),
        pytest.param(dict(w0=np.float16(1.0), learning_rate=1e-5), ValueError,
                     r"learning_rate \[1e-05\] is subnormal in float16", id="learning-rate-subnormal-in-w0-float16"),
        pytest.param(dict(num_steps=2**31), ValueError, "num_steps must be at most 2,147,483,646",
                     id="num-steps-beyond-int32"),
        pytest.param(dict(record_every=2**31), ValueError, "record_every must be at most", id="record-every-huge"),
        # 10^5 parameters x 10^5 steps: the whole trajectory (w and grad at every step) is 80 GB
        pytest.param(dict(w0=np.ones(10**5, np.float32), loss_fn=bowl, num_steps=10**5), ValueError,
                     r"num_steps: a trajectory of 100,001 recorded iterates of 400,000 bytes .* need about 160\.0 GB.*"
                     "record_every", id="trajectory-too-large"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, name):
    args = dict(loss_fn=sextic, w0=1.9, learning_rate=0.1, num_steps=10) | kwargs
    loss_fn, w0 = args.pop("loss_fn"), args.pop("w0")
    with count_compilations() as c, pytest.raises(error, match=name):
        gradient_descent(loss_fn, w0, **args)
    assert c.count == 0


def test_a_trajectory_that_fits_with_record_every_runs():
    path = gradient_descent(bowl, np.ones(3, np.float32), learning_rate=0.1, num_steps=10**5, record_every=10**4)
    assert path.w.shape == (11, 3)


# ---------------------------------------------------------------- the step loop as one pass (CPU)


def _specials(dtype, n=64):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.floating):
        x = rng.normal(size=n).astype(dtype) * np.asarray(1e3, dtype)
        x[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, np.finfo(dtype).min]
        return x
    if dtype == np.bool_:
        return rng.integers(0, 2, n).astype(bool)
    x = rng.integers(-1000, 1000, n).astype(dtype)
    x[:2] = [np.iinfo(dtype).min, np.iinfo(dtype).max]
    return x


def test_one_pass_is_the_identity_bit_for_bit():
    from jaxdescent.descent import _one_pass

    leaves = [_specials(np.float32), _specials(np.int32), _specials(np.bool_), _specials(np.float32)[::-1].copy()]
    for fn in (jax.jit(_one_pass), jax.jit(jax.vmap(_one_pass))):
        for x, y in zip(leaves, fn(leaves)):
            assert np.asarray(y).dtype == x.dtype
            np.testing.assert_array_equal(np.asarray(y).view(np.uint8), x.view(np.uint8))  # NaN, -0.0 kept


def _descend_sextic(lr, w0, num_steps):
    """Plain GD on the sextic through ``descend`` with a watched step counter: the fused path on CPU."""
    from jaxdescent.descent import _no_aux, descend

    def watch(t, w, loss, aux, grad, first):
        return jnp.minimum(first, jnp.where(grad * grad < 1e-8, t, 2**31 - 1))

    w, first, _ = descend(_no_aux(sextic), w0, optax.sgd(lr), num_steps=num_steps, watch=watch,
                          watch_state=jnp.asarray(2**31 - 1, jnp.int32))
    return w, first


def test_fused_step_loop_matches_a_float64_loop_and_differentiates():
    lrs = np.array([0.01, 0.1, 0.3], np.float32)
    w, first = jax.jit(jax.vmap(lambda lr: _descend_sextic(lr, jnp.float32(1.9), 301)))(lrs)
    dw = jax.jit(jax.vmap(jax.grad(lambda lr: _descend_sextic(lr, jnp.float32(1.9), 301)[0])))(lrs)
    for i, lr in enumerate(lrs.astype(np.float64)):  # w and dw/dlr by forward recursion in float64
        x, dx, hit = 1.9, 0.0, -1
        with np.errstate(over="ignore", invalid="ignore"):  # lr = 0.3 diverges
            for t in range(301):
                g = x**5 + x - 1
                if hit < 0 and g * g < 1e-8:
                    hit = t
                x, dx = x - lr * g, dx - g - lr * (5 * x**4 + 1) * dx
        np.testing.assert_allclose(w[i], x, rtol=1e-5)
        np.testing.assert_allclose(dw[i], dx, rtol=1e-3, atol=1e-6)
        found = -1 if first[i] == 2**31 - 1 else int(first[i])
        assert abs(found - hit) <= 1 and (found < 0) == (hit < 0)  # float32 against float64: within a step


def test_step_loop_of_a_one_parameter_run_is_one_pass_on_cpu():
    # The speed of the sextic sweep rests on this: its step (update and checks) is one variadic reduce.
    text = jax.jit(lambda lr: _descend_sextic(lr, jnp.float32(1.9), 10)).lower(jnp.float32(0.1)).as_text()
    if jax.default_backend() == "cpu":
        assert "stablehlo.reduce" in text and "stablehlo.optimization_barrier" in text
    from jaxdescent.descent import _no_aux, descend

    vector = jax.jit(lambda lr: descend(_no_aux(bowl), jnp.ones(2), optax.sgd(lr), num_steps=10, watch_state=jnp.int32(0),
                                        watch=lambda t, w, loss, aux, grad, s: s + 1)).lower(jnp.float32(0.1))
    assert "stablehlo.optimization_barrier" not in vector.as_text()  # a vector iterate: the plain loop
