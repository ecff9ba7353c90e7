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
    return [
        ("x", lambda: forward(p, jnp.ones((4, 3)))),
        ("y", lambda: mse(p, x, jnp.ones((3, 1)))),
        ("y", lambda: mse(p, x, jnp.ones((4, 2)))),
        ("params", lambda: forward(Params(p.w1, p.w2[:-1]), x)),
        ("ste", lambda: step(x, "relu")),
        ("ste", lambda: train(jax.random.key(0), x, y, ste="straight", **kw)),
        ("n_hidden", lambda: train(jax.random.key(0), x, y, **{**kw, "n_hidden": 0})),
        ("num_steps", lambda: train(jax.random.key(0), x, y, **{**kw, "num_steps": -1})),
        ("x", lambda: train(jax.random.key(0), x.at[0, 0].set(jnp.nan), y, **kw)),
        ("y", lambda: train(jax.random.key(0), x, y.at[1, 0].set(jnp.inf), **kw)),
        ("y", lambda: train(jax.random.key(0), x, y[:3], **kw)),
        ("x", lambda: train(jax.random.key(0), x[0], y, **kw)),
        ("slope", lambda: train(jax.random.key(0), x, y, slope=-1.0, **kw)),
        ("optimizer", lambda: train(jax.random.key(0), x, y, n_hidden=3, optimizer=optax.sgd, num_steps=5)),
        ("learning_rates", lambda: train_many(jax.random.split(jax.random.key(0), 2), x, y,
                                              learning_rates=jnp.array([0.1, -1.0]), n_hidden=2, num_steps=3)),
        ("chunk_size", lambda: train_many(jax.random.split(jax.random.key(0), 2), x, y,
                                          learning_rates=jnp.array([0.1]), n_hidden=2, num_steps=3, chunk_size=0)),
        ("n_hidden", lambda: init_params(jax.random.key(0), 2, 0, 1)),
    ]


@pytest.mark.parametrize("i", range(len(bad_calls())))
def test_bad_input_names_the_argument(i):
    name, call = bad_calls()[i]
    with pytest.raises((ValueError, TypeError), match=name):
        call()
