import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdescent import datasets
from jaxdescent.network import Params, forward, init_params, mse, predict, step, train, train_many


def numpy_forward(params, x):
    """The lecture's pass in float64 NumPy, biases as constant-1 columns."""
    w1, w2 = np.asarray(params.w1, np.float64), np.asarray(params.w2, np.float64)
    x1 = np.hstack([np.asarray(x, np.float64), np.ones((len(x), 1))])
    h_out = (x1 @ w1 > 0).astype(np.float64)
    o_in = np.hstack([h_out, np.ones((len(x), 1))]) @ w2
    return o_in, (o_in > 0).astype(np.float64)


X = jnp.array([-1e30, -3.0, -1.0, -0.5, -1e-30, 0.0, 1e-30, 0.5, 1.0, 3.0, 1e30, jnp.inf, -jnp.inf])


@pytest.mark.parametrize("ste", [None, "identity", "clipped", "sigmoid"])
def test_step_forward_is_exact_heaviside(ste):
    out = step(X, ste, slope=4.0)
    np.testing.assert_array_equal(out, (np.asarray(X) > 0).astype(np.float32))
    assert out.dtype == jnp.float32


def test_step_is_exact_for_normal_inputs():
    tiny = np.finfo(np.float32).tiny  # the smallest normal float32; below it XLA on CPU may flush to zero
    x = jnp.array([tiny, np.nextafter(tiny, np.float32(1)), -tiny, 2 * tiny], jnp.float32)
    np.testing.assert_array_equal(step(x), [1.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize("slope", [1.0, 4.0, 8.0])
def test_estimator_gradients_match_their_formulas(slope):
    x = jnp.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0])
    grad = lambda ste: jax.grad(lambda v: jnp.sum(step(v, ste, slope=slope) * jnp.arange(1.0, 9.0)))(x)
    w = np.arange(1.0, 9.0)
    np.testing.assert_array_equal(grad(None), np.zeros(8))
    np.testing.assert_array_equal(grad("identity"), w)
    np.testing.assert_array_equal(grad("clipped"), w * (np.abs(np.asarray(x)) <= 1))
    s = 1 / (1 + np.exp(-slope * np.asarray(x, np.float64)))
    np.testing.assert_allclose(grad("sigmoid"), w * slope * s * (1 - s), rtol=1e-5)


def test_slope_is_traced_and_gets_no_gradient():
    f = jax.jit(lambda x, k: jax.grad(lambda v: step(v, "sigmoid", slope=k).sum())(x))
    np.testing.assert_allclose(f(jnp.zeros(2), 8.0), [2.0, 2.0])
    np.testing.assert_allclose(f(jnp.zeros(2), 4.0), [1.0, 1.0])
    assert jax.grad(lambda k: step(jnp.ones(2), "sigmoid", slope=k).sum())(3.0) == 0.0


def test_true_step_gives_the_lectures_question_mark_zero():
    x, y = datasets.parity(4)
    params = init_params(jax.random.key(1), 4, 8, 1)
    g = jax.grad(mse)(params, x, y, ste=None)
    chex.assert_trees_all_equal(g, jax.tree_util.tree_map(jnp.zeros_like, params))
    g_ste = jax.grad(mse)(params, x, y, ste="identity")
    assert float(jnp.abs(g_ste.w1).max()) > 0 and float(jnp.abs(g_ste.w2).max()) > 0


def test_init_params_scale_is_one_over_sqrt_fan_in():
    params = init_params(jax.random.key(5), 99, 199, 50)
    chex.assert_shape([params.w1, params.w2], [(100, 199), (200, 50)])
    assert float(jnp.std(params.w1)) == pytest.approx(0.1, rel=0.03)
    assert float(jnp.std(params.w2)) == pytest.approx(200 ** -0.5, rel=0.03)
    # one draw sliced in two: w2 must not repeat the start of w1's stream
    assert not np.allclose(np.ravel(params.w1)[:50] * 10, np.ravel(params.w2)[:50] * 200 ** 0.5)


def test_forward_mse_predict_match_numpy():
    x_np = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    y_np = np.eye(3, dtype=np.float32)[np.random.default_rng(1).integers(0, 3, 50)]
    params = init_params(jax.random.key(2), 6, 7, 3)
    chex.assert_shape([params.w1, params.w2], [(7, 7), (8, 3)])
    o_in, o_out = numpy_forward(params, x_np)
    np.testing.assert_array_equal(forward(params, x_np), o_out)
    assert float(mse(params, x_np, y_np)) == pytest.approx(np.sum((o_out - y_np) ** 2) / 50, rel=1e-6)
    np.testing.assert_array_equal(predict(params, x_np), np.argmax(o_in, 1))


def test_single_output_predict_is_the_output_step():
    x, _ = datasets.xor()
    params = init_params(jax.random.key(3), 2, 3, 1)
    np.testing.assert_array_equal(predict(params, x), forward(params, x)[:, 0].astype(np.int32))


def test_mse_gradient_is_the_hand_written_ste_chain():
    x, y = datasets.xor(signed=True)
    p = init_params(jax.random.key(4), 2, 3, 1)
    g = jax.grad(mse)(p, x, y, ste="identity")
    x1 = np.hstack([np.asarray(x, np.float64), np.ones((4, 1))])
    w1, w2 = np.asarray(p.w1, np.float64), np.asarray(p.w2, np.float64)
    h1 = np.hstack([(x1 @ w1 > 0), np.ones((4, 1))])
    d_o = 2 * ((h1 @ w2 > 0) - np.asarray(y)) / 4
    np.testing.assert_allclose(g.w2, h1.T @ d_o, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g.w1, x1.T @ (d_o @ w2[:-1].T), rtol=1e-5, atol=1e-7)


def test_train_matches_a_hand_written_optax_loop():
    x, y = datasets.parity(3)
    key, tx, n = jax.random.key(5), optax.adam(0.05), 5
    params, history = train(key, x, y, n_hidden=4, optimizer=tx, num_steps=n, ste="sigmoid", slope=4.0)
    p = init_params(key, 3, 4, 1)
    state, losses = tx.init(p), []
    for _ in range(n):
        loss, g = jax.value_and_grad(mse)(p, x, y, ste="sigmoid", slope=4.0)
        losses.append(loss)
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
    losses.append(mse(p, x, y))  # the last entry describes the returned net
    chex.assert_trees_all_close(params, p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-6)
    chex.assert_shape([history.loss, history.accuracy, history.exact], (n + 1,))


def test_xor_is_solved_for_most_seeds_and_history_is_consistent():
    x, y = datasets.xor(signed=True)
    keys = jax.random.split(jax.random.key(0), 64)
    params, h = train_many(keys, x, y, learning_rates=jnp.array([0.03]), optimizer_factory=optax.adam,
                           n_hidden=4, num_steps=400, ste="sigmoid", stop_when_solved=True)
    solved = np.asarray(h.solved_step[0]) >= 0
    assert solved.mean() >= 0.9
    i = int(np.argmax(solved))
    s = int(h.solved_step[0, i])
    assert h.exact[0, i, s] == 1 and h.loss[0, i, s] == 0 and h.accuracy[0, i, s] == 1
    assert np.all(np.asarray(h.exact[0, i, :s]) < 1)
    p = jax.tree_util.tree_map(lambda a: a[0, i], params)
    np.testing.assert_array_equal(forward(p, x), y)  # frozen at the solution


def test_train_many_equals_sequential_train_and_compiles_once():
    x, y = datasets.parity(4)
    keys = jax.random.split(jax.random.key(7), 3)
    rates = jnp.array([0.01, 0.05])
    settings = dict(n_hidden=6, num_steps=30, ste="sigmoid", slope=4.0)
    params, h = train_many(keys, x, y, learning_rates=rates, optimizer_factory=optax.adam, chunk_size=4, **settings)
    chex.assert_shape([params.w1], (2, 3, 5, 6))
    for r, lr in enumerate([0.01, 0.05]):
        tx = optax.adam(lr)
        for s in range(3):
            p1, h1 = train(keys[s], x, y, optimizer=tx, **settings)
            chex.assert_trees_all_close(jax.tree_util.tree_map(lambda a: a[r, s], params), p1, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(h.loss[r, s], h1.loss, atol=1e-6)
            assert int(h.solved_step[r, s]) == int(h1.solved_step)


def test_train_many_compiles_once_for_new_keys_rates_and_data():
    from jaxdescent import count_compilations

    x, y = datasets.xor()
    run = lambda seed, rates, x: train_many(jax.random.split(jax.random.key(seed), 4), x, y,
                                            learning_rates=jnp.array(rates), n_hidden=2, num_steps=5)
    run(0, [0.1, 0.2], x)
    flipped = np.asarray(1.0 - x)
    with count_compilations() as c:
        run(1, [0.3, 0.01], x)
        run(2, [1.0, 2.0], flipped)  # new data of the same shape: a traced argument
    assert c.count == 0
    with count_compilations() as c:
        train_many(jax.random.split(jax.random.key(0), 4), x, y, learning_rates=jnp.array([0.1, 0.2]),
                   n_hidden=2, num_steps=6)
    assert c.count >= 1  # a new num_steps must compile


def test_plain_rule_is_the_lectures_update():
    x, y = datasets.xor()
    key = jax.random.key(8)
    params, _ = train_many(key[None], x, y, learning_rates=jnp.array([0.5]), n_hidden=3, num_steps=1)
    p = init_params(key, 2, 3, 1)
    g = jax.grad(mse)(p, x, y)
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda a: a[0, 0], params),
                                jax.tree_util.tree_map(lambda w, d: w - 0.5 * d, p, g), rtol=1e-6)


def bad_calls():
    x, y = datasets.xor()
    p = init_params(jax.random.key(0), 2, 3, 1)
    tx = optax.sgd(0.1)
    kw = dict(n_hidden=3, optimizer=tx, num_steps=5)
    keys = jax.random.split(jax.random.key(0), 2)
    rate = jnp.array([0.1])
    many = lambda **over: lambda: train_many(**{**dict(keys=keys, x=x, y=y, learning_rates=rate, n_hidden=2,
                                                         num_steps=3), **over})
    adam_with = lambda **hp: many(optimizer_factory=optax.adam, hyperparams=hp)
    # every array built here, so that a call compiles nothing unless the function under test does
    x3, y3, y42 = jnp.ones((4, 3)), jnp.ones((3, 1)), jnp.ones((4, 2))
    short, x_nan, y_inf = Params(p.w1, p.w2[:-1]), x.at[0, 0].set(jnp.nan), y.at[1, 0].set(jnp.inf)
    rates, key, x1, y_short, no_keys = jnp.array([0.1, -1.0]), jax.random.key(0), x[0], y[:3], keys[:0]
    float_key, float_keys = jnp.zeros(2), jnp.zeros((2, 2))
    raw_3, raw_23 = jnp.zeros(3, jnp.uint32), jnp.zeros((2, 3), jnp.uint32)  # key data is (2,) uint32
    injected_nan = optax.inject_hyperparams(optax.adam)(learning_rate=float("nan"))
    injected_b1 = optax.inject_hyperparams(optax.adam)(learning_rate=0.1, b1=1.0)
    return [
        pytest.param("x", lambda: forward(p, x3), id="forward-x-features"),
        pytest.param("y", lambda: mse(p, x, y3), id="mse-y-examples"),
        pytest.param("y", lambda: mse(p, x, y42), id="mse-y-outputs"),
        pytest.param("params", lambda: forward(short, x), id="params-shapes"),
        pytest.param("ste", lambda: step(x, "relu"), id="step-ste"),
        pytest.param("ste", lambda: train(key, x, y, ste="straight", **kw), id="train-ste"),
        pytest.param("n_hidden", lambda: train(key, x, y, **{**kw, "n_hidden": 0}), id="n-hidden-zero"),
        pytest.param("num_steps", lambda: train(key, x, y, **{**kw, "num_steps": -1}), id="num-steps"),
        pytest.param("x", lambda: train(key, x_nan, y, **kw), id="x-nan"),
        pytest.param("y", lambda: train(key, x, y_inf, **kw), id="y-inf"),
        pytest.param("y", lambda: train(key, x, y_short, **kw), id="y-examples"),
        pytest.param("x", lambda: train(key, x1, y, **kw), id="x-1-d"),
        pytest.param("slope", lambda: train(key, x, y, slope=-1.0, **kw), id="slope-negative"),
        pytest.param("optimizer", lambda: train(key, x, y, n_hidden=3, optimizer=optax.sgd, num_steps=5),
                     id="optimizer-factory"),
        pytest.param("learning_rates", many(learning_rates=rates), id="learning-rates"),
        pytest.param("chunk_size", many(chunk_size=0), id="chunk-size"),
        pytest.param("n_hidden", lambda: init_params(key, 2, 0, 1), id="init-n-hidden"),
        # hyperparameters of train_many: finite real numbers that fit the data's float
        pytest.param("hyperparams['b1']", adam_with(b1=[np.nan]), id="hyperparam-nan"),
        pytest.param("hyperparams['b1']", adam_with(b1=[np.inf]), id="hyperparam-inf"),
        pytest.param("hyperparams['b1']", adam_with(b1=[True]), id="hyperparam-bool"),
        pytest.param("hyperparams['b1']", adam_with(b1=np.array([0.9, 1e39])), id="hyperparam-overflows-float32"),
        # optimizer numbers that can be read: an inject_hyperparams state, a factory's partial, optax's ranges
        pytest.param("optimizer: its hyperparameter learning_rate must be finite",
                     lambda: train(key, x, y, **{**kw, "optimizer": injected_nan}), id="inject-hyperparams-nan"),
        pytest.param("optimizer: its hyperparameter b1 must be in [0, 1)",
                     lambda: train(key, x, y, **{**kw, "optimizer": injected_b1}), id="inject-hyperparams-b1"),
        pytest.param("hyperparams['momentum'] must be >= 0",
                     many(optimizer_factory=optax.sgd, hyperparams={"momentum": np.array([-0.5])}),
                     id="train-many-momentum-negative"),
        pytest.param("optimizer_factory: its eps must be >= 0",
                     many(optimizer_factory=functools.partial(optax.adam, eps=-1.0)), id="train-many-partial-eps"),
        # an axis of the grid is 1-D (a 2-D one failed broadcasting, a scalar indexing a shape)
        pytest.param("hyperparams['b1'] must be a 1-D array", adam_with(b1=np.array([[0.9, 0.8]])), id="hyperparam-2-d"),
        pytest.param("hyperparams['b1'] must be a 1-D array", adam_with(b1=0.9), id="hyperparam-scalar"),
        # slope: a number, read only by the sigmoid estimator
        pytest.param("slope", lambda: train(key, x, y, slope=True, ste="sigmoid", **kw), id="slope-bool"),
        pytest.param("slope", lambda: train(key, x, y, slope=4.0, **kw), id="slope-with-identity"),
        pytest.param("slope", lambda: train(key, x, y, slope=4.0, ste="clipped", **kw),
                     id="slope-with-clipped"),
        pytest.param("slope", many(slope=4.0), id="train-many-slope-with-identity"),
        pytest.param("slope", many(slope=1e39, ste="sigmoid"), id="slope-overflows-float32"),
        pytest.param("hyperparams['slope']", many(hyperparams={"slope": np.array([2.0, 4.0])}),
                     id="hyperparam-slope-with-identity"),
        # keys: one key for train, a 1-D batch for train_many
        pytest.param("key", lambda: train(0, x, y, **kw), id="key-int"),
        pytest.param("key", lambda: train(float_key, x, y, **kw), id="key-float-array"),
        pytest.param("key", lambda: train(raw_3, x, y, **kw), id="key-uint32-wrong-shape"),
        pytest.param("key", lambda: train(keys, x, y, **kw), id="key-batch"),
        pytest.param("keys", many(keys=0), id="keys-int"),
        pytest.param("keys", many(keys=key), id="keys-one-key"),
        pytest.param("keys", many(keys=float_keys), id="keys-float-array"),
        pytest.param("keys", many(keys=raw_23), id="keys-uint32-wrong-shape"),
        pytest.param("keys", many(keys=no_keys), id="keys-empty"),
        # sizes, estimated before compiling (far beyond any machine's memory)
        pytest.param("n_hidden", lambda: train(key, x, y, **{**kw, "n_hidden": 10**11}), id="train-huge"),
        pytest.param("num_steps", lambda: train(key, x, y, **{**kw, "num_steps": 10**13}),
                     id="train-long-history"),
        pytest.param("n_hidden", many(n_hidden=10**11), id="train-many-huge"),
    ]


@pytest.mark.parametrize("name, call", bad_calls())
def test_bad_input_names_the_argument(name, call):
    from jaxdescent import count_compilations

    with count_compilations() as c, pytest.raises((ValueError, TypeError), match=re.escape(name)):
        call()
    assert c.count == 0  # refused before compiling


def test_defaults_and_raw_keys_are_accepted():
    x, y = datasets.xor()
    kw = dict(n_hidden=2, num_steps=1)
    # a slope equal to the default is not "set": the experiments pass slope=1.0 with every estimator
    p_typed, _ = train(jax.random.key(3), x, y, optimizer=optax.sgd(0.1), slope=1.0, ste="clipped", **kw)
    p_raw, _ = train(jax.random.PRNGKey(3), x, y, optimizer=optax.sgd(0.1), **kw)
    chex.assert_trees_all_close(p_typed.w1.shape, p_raw.w1.shape)
    params, _ = train_many(jax.random.split(jax.random.PRNGKey(0), 2), x, y, learning_rates=jnp.array([0.1]),
                           optimizer_factory=optax.sgd, hyperparams={"momentum": np.array([0.0, 0.9])}, **kw)
    assert params.w1.shape == (1, 2, 2, 3, 2)
