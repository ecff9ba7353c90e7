"""jaxdescent.stability against independent references: NumPy's eigvalsh of jax.hessian, closed forms, NumPy loops."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from jaxdescent import bifurcation, count_compilations, critical_learning_rate, gradient_descent, sharpness, sweep_fn
from jaxdescent.descent import recorded_steps
from jaxdescent.losses import bowl, sextic


def quadratic_with(eigenvalues, seed=0):
    """½ wᵀAw with A = Q diag(eigenvalues) Qᵀ for a random rotation Q."""
    n = len(eigenvalues)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    a = jnp.asarray((q * np.asarray(eigenvalues)) @ q.T, jnp.float32)
    return (lambda w: 0.5 * w @ a @ w), np.asarray(a)


def mlp_problem(seed=0, n=64, d=5, h=8):
    """A tanh MLP with MSE on random regression data; params a dict (a pytree)."""
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    x = jax.random.normal(k[0], (n, d))
    y = jnp.sin(x @ jax.random.normal(k[1], (d,)))[:, None]
    params = {"w1": jax.random.normal(k[2], (d, h)) / np.sqrt(d), "b1": jnp.zeros(h),
              "w2": jax.random.normal(k[3], (h, 1)) / np.sqrt(h)}

    def loss_fn(p):
        return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"][None]) @ p["w2"] - y) ** 2)

    return loss_fn, params


def dense_top(loss_fn, w):
    flat, unravel = ravel_pytree(w)
    return np.linalg.eigvalsh(np.asarray(jax.hessian(lambda v: loss_fn(unravel(v)))(flat), np.float64))[-1]


# ---------------------------------------------------------------- sharpness


@pytest.mark.parametrize("eigenvalues", [
    pytest.param([3.0, 1.0, 0.5, 0.1], id="positive"),
    pytest.param(np.linspace(0.1, 10.0, 200), id="200-spread"),
    pytest.param([-6.0, 2.0, 1.0], id="negative-dominant"),
    pytest.param([-5.0, -2.0, -1.0], id="all-negative"),
    pytest.param([2.0] * 10, id="degenerate"),
    pytest.param(np.r_[np.linspace(-20, 9.5, 299), 10.0], id="close-top-and-large-negative"),
])
def test_sharpness_is_the_largest_algebraic_eigenvalue_of_a_random_quadratic(eigenvalues):
    loss_fn, a = quadratic_with(eigenvalues)
    w = jnp.ones(len(eigenvalues))
    expected = np.linalg.eigvalsh(a.astype(np.float64))[-1]
    assert float(sharpness(loss_fn, w)) == pytest.approx(expected, rel=1e-3, abs=1e-4)
    assert float(sharpness(loss_fn, w, method="dense")) == pytest.approx(expected, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_sharpness_of_an_mlp_matches_eigvalsh_of_its_hessian(seed):
    loss_fn, params = mlp_problem(seed)
    trained = gradient_descent(loss_fn, params, learning_rate=0.5, num_steps=200).w
    final = jax.tree_util.tree_map(lambda x: x[-1], trained)
    for w in (params, final):
        assert float(sharpness(loss_fn, w)) == pytest.approx(dense_top(loss_fn, w), rel=1e-2)
        assert float(sharpness(loss_fn, w, num_iterations=30)) == pytest.approx(dense_top(loss_fn, w), rel=1e-2)


def test_sharpness_composes_with_jit_and_vmap():
    scales = jnp.array([1.0, 2.0, 3.0])
    f = lambda s: sharpness(lambda w: s * jnp.sum(w**2) + w[0] * w[1], jnp.zeros(2))  # Hessian [[2s, 1], [1, 2s]]
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(scales), 2 * scales + 1, rtol=1e-5)


def test_critical_learning_rate_is_two_over_sharpness():
    loss_fn, params = mlp_problem(3)
    assert float(critical_learning_rate(loss_fn, params)) == pytest.approx(2 / float(sharpness(loss_fn, params)))


def test_sharpness_inside_a_sweep_fn_run():
    loss_fn, params = mlp_problem(4)
    lrs = np.array([0.05, 0.5])

    def run(hp, key):
        path = gradient_descent(loss_fn, params, learning_rate=hp["learning_rate"], num_steps=40, record_every=20,
                                track_sharpness=True)
        final = jax.tree_util.tree_map(lambda x: x[-1], path.w)
        return {"tracked": path.sharpness, "final": sharpness(loss_fn, final)}

    out = sweep_fn(run, {"learning_rate": lrs})
    assert out.metrics["tracked"].shape == (2, 3)  # iterates 0, 20, 40
    for i, lr in enumerate(lrs):
        path = gradient_descent(loss_fn, params, learning_rate=lr, num_steps=40)
        final = jax.tree_util.tree_map(lambda x: x[-1], path.w)
        assert float(out.metrics["final"][i]) == pytest.approx(dense_top(loss_fn, final), rel=1e-3)
        assert float(out.metrics["tracked"][i, -1]) == pytest.approx(dense_top(loss_fn, final), rel=1e-3)


@pytest.mark.parametrize("kwargs, error, name", [
    pytest.param(dict(w=jnp.array([jnp.nan, 0.0])), ValueError, "w", id="nan-w"),
    pytest.param(dict(loss_fn=lambda w: w), TypeError, "loss_fn", id="non-scalar-loss"),
    pytest.param(dict(method="qr"), ValueError, "method", id="method"),
    pytest.param(dict(num_iterations=0), ValueError, "num_iterations", id="zero-iterations"),
    pytest.param(dict(num_iterations=2.5), TypeError, "num_iterations", id="float-iterations"),
    pytest.param(dict(w=jnp.zeros(0), loss_fn=lambda w: jnp.sum(w**2)), ValueError, "w", id="empty-array-w"),
    pytest.param(dict(w={}, loss_fn=lambda w: jnp.float32(0)), ValueError, "w", id="empty-dict-w"),
    pytest.param(dict(w={"a": jnp.zeros((3, 0))}, loss_fn=lambda p: jnp.sum(p["a"])), ValueError, "w",
                 id="empty-leaf-w"),
    pytest.param(dict(key=0), TypeError, "key", id="int-key"),
    pytest.param(dict(key=np.zeros(2, np.float32)), TypeError, "key", id="float-key"),
    pytest.param(dict(key=np.zeros(3, np.uint32)), TypeError, "key", id="uint32-key-wrong-shape"),
    pytest.param(dict(key="batch"), TypeError, "key", id="batch-of-keys"),
    # sizes, estimated before compiling (far beyond any machine's memory)
    pytest.param(dict(w="10M", loss_fn=lambda w: jnp.sum(w**2), num_iterations=10**5), ValueError, "num_iterations",
                 id="lanczos-basis-too-large"),
    pytest.param(dict(w="10M", loss_fn=lambda w: jnp.sum(w**2), method="dense"), ValueError, "method",
                 id="dense-hessian-too-large"),
])
def test_sharpness_bad_input_names_the_argument(kwargs, error, name):
    args = dict(loss_fn=bowl, w=jnp.zeros(2)) | kwargs
    if isinstance(args["w"], str):
        args["w"] = jnp.zeros(10**7)
    if isinstance(args.get("key"), str):
        args["key"] = jax.random.split(jax.random.key(0), 2)
    with count_compilations() as c, pytest.raises(error, match=name):
        sharpness(args.pop("loss_fn"), args.pop("w"), **args)
    assert c.count == 0  # refused before compiling


def test_sharpness_takes_a_typed_or_a_raw_key():
    typed = sharpness(bowl, jnp.array([0.3, -1.0]), key=jax.random.key(1))
    raw = sharpness(bowl, jnp.array([0.3, -1.0]), key=jax.random.PRNGKey(1))
    assert float(typed) == pytest.approx(4.0, rel=1e-5) and float(raw) == pytest.approx(4.0, rel=1e-5)


# ---------------------------------------------------------------- gradient_descent: record_every, track_sharpness


@pytest.mark.parametrize("num_steps, k", [(12, 4), (10, 4), (10, 1), (3, 5), (0, 3)])
def test_record_every_is_the_full_trajectory_sliced(num_steps, k):
    full = gradient_descent(sextic, 1.9, learning_rate=0.01, num_steps=num_steps)
    thin = gradient_descent(sextic, 1.9, learning_rate=0.01, num_steps=num_steps, record_every=k)
    steps = recorded_steps(num_steps, k)
    assert steps[0] == 0 and steps[-1] == num_steps and thin.sharpness is None
    for got, want in zip(thin[:3], full[:3]):
        np.testing.assert_array_equal(got, want[steps])


def test_record_every_with_momentum_and_a_pytree():
    loss_fn, params = mlp_problem(5)
    kw = dict(learning_rate=0.1, num_steps=25, optimizer=lambda learning_rate: optax.sgd(learning_rate, 0.9))
    full, thin = gradient_descent(loss_fn, params, **kw), gradient_descent(loss_fn, params, record_every=7, **kw)
    steps = recorded_steps(25, 7)
    assert steps.tolist() == [0, 7, 14, 21, 25]
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b[steps], rtol=1e-6, atol=1e-7), thin.w, full.w)


def test_track_sharpness_matches_sharpness_at_the_recorded_iterates():
    loss_fn, params = mlp_problem(6)
    path = gradient_descent(loss_fn, params, learning_rate=0.5, num_steps=300, record_every=50, track_sharpness=True)
    assert path.sharpness.shape == (7,)
    for i in range(7):
        w = jax.tree_util.tree_map(lambda x: x[i], path.w)
        assert float(path.sharpness[i]) == pytest.approx(float(sharpness(loss_fn, w)), rel=1e-3)
        assert float(path.sharpness[i]) == pytest.approx(dense_top(loss_fn, w), rel=1e-2)


@pytest.mark.parametrize("kwargs, error", [
    pytest.param(dict(record_every=0), ValueError, id="zero"),
    pytest.param(dict(record_every=-2), ValueError, id="negative"),
    pytest.param(dict(record_every=1.5), TypeError, id="float"),
    pytest.param(dict(track_sharpness="yes"), TypeError, id="track-not-bool"),
])
def test_record_bad_input_names_the_argument(kwargs, error):
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        gradient_descent(sextic, 1.9, learning_rate=0.1, num_steps=10, **kwargs)


# ---------------------------------------------------------------- bifurcation


def numpy_gd(grad, w0, lr, num_steps):
    w, path = np.float32(w0), [np.float32(w0)]
    with np.errstate(all="ignore"):
        for _ in range(num_steps):
            w = np.float32(w - np.float32(lr) * grad(w))
            path.append(w)
    return np.array(path)


def test_quadratic_period_one_below_two_over_lambda_and_escape_above():
    lam = 4.0
    lrs = np.array([0.1, 0.2, 0.3, 0.45, 0.49, 0.51, 0.6, 1.0])
    out = bifurcation(lambda w: lam * w**2 / 2, 1.0, lrs, num_steps=3000, keep=50)
    assert out.period.tolist() == [1, 1, 1, 1, 1, -1, -1, -1]
    # the Lyapunov exponent of a quadratic is log|1 − αλ|, whatever the orbit
    below = lrs < 2 / lam
    np.testing.assert_allclose(out.lyapunov[below], np.log(np.abs(1 - lrs[below] * lam)), rtol=1e-5)
    assert np.all(np.isnan(out.lyapunov[~below]))


def test_lyapunov_of_a_quadratic_in_several_dimensions_is_the_largest_log_multiplier():
    eigenvalues = np.array([0.3, 1.0, 2.5])
    loss_fn, _ = quadratic_with(eigenvalues, seed=1)
    lrs = np.array([0.1, 0.3, 0.5, 0.7])
    out = bifurcation(loss_fn, jnp.full(3, 1e-3), lrs, num_steps=300, keep=100, atol=1e-30)
    expected = np.max(np.log(np.abs(1 - lrs[:, None] * eigenvalues)), axis=1)
    np.testing.assert_allclose(out.lyapunov, expected, rtol=1e-4)
    assert out.tail.shape == (4, 100, 3)


def test_double_well_flips_to_period_two_at_two_over_f_second():
    well = lambda w: (w**2 - 1) ** 2 / 4
    flip = 2 / 2.0  # f″(1) = 3·1² − 1 = 2
    out = bifurcation(well, 1.1, np.array([0.9 * flip, 0.99 * flip, 1.01 * flip, 1.05 * flip]), num_steps=20_000,
                      keep=300)
    assert out.period.tolist() == [1, 1, 2, 2]
    # the 2-cycle of w ↦ (1 + α)w − αw³ around 1: w = (2 + α ± √(α² − 4 + 4 + …)) solved by NumPy
    for i, alpha in enumerate([1.01, 1.05]):
        pair = np.sort(np.asarray(out.tail[i + 2, -2:]))
        g = lambda w: (1 + alpha) * w - alpha * w**3
        np.testing.assert_allclose(g(g(pair)), pair, atol=1e-5)
        assert pair[1] - pair[0] > 1e-2


def test_double_well_period_four_at_the_two_cycles_flip():
    # the 2-cycle {a, b}: a + b = √((3 + α)/α), ab = 1/α, multiplier 9 − 2(1 + α)² = −1 at α = √5 − 1
    well = lambda w: (w**2 - 1) ** 2 / 4
    flip = np.sqrt(5) - 1
    out = bifurcation(well, 1.1, np.array([0.99 * flip, 1.01 * flip]), num_steps=20_000, keep=300)
    assert out.period.tolist() == [2, 4]
    a, b = np.asarray(out.tail[0, -2:])
    alpha = 0.99 * flip
    assert a + b == pytest.approx(np.sqrt((3 + alpha) / alpha), rel=1e-5) and a * b == pytest.approx(1 / alpha, rel=1e-5)
    # over the 2-cycle the exponent is ½·log|9 − 2(1 + α)²|
    assert float(out.lyapunov[0]) == pytest.approx(0.5 * np.log(abs(9 - 2 * (1 + alpha) ** 2)), rel=1e-3)


def test_double_well_cascade_and_chaos():
    well = lambda w: (w**2 - 1) ** 2 / 4
    out = bifurcation(well, 1.1, np.array([1.2, 1.27, 1.295, 1.5, 1.4506, 2.1]), num_steps=5000, keep=300)
    assert out.period.tolist() == [2, 4, 8, 0, 3, -1]
    assert float(out.lyapunov[3]) > 0.1 and np.all(out.lyapunov[:3] < 0)


def test_tail_is_the_end_of_a_numpy_run():
    grad = lambda w: w**5 + w - np.float32(1)
    lrs = np.array([0.3, 0.8, 0.9], np.float32)
    out = bifurcation(sextic, 0.76, lrs, num_steps=500, keep=20)
    for i, lr in enumerate(lrs):
        np.testing.assert_allclose(out.tail[i], numpy_gd(grad, 0.76, lr, 500)[-20:], rtol=1e-4, atol=1e-5)
    assert out.period.tolist() == [1, 2, 2]


def test_pytree_start_and_labels():
    out = bifurcation(lambda p: 2 * p["a"] ** 2 + jnp.sum(p["b"] ** 2), {"a": 1.0, "b": jnp.ones(2)},
                      np.array([0.1, 0.2, 0.6]), num_steps=100, keep=10)
    assert out.tail["a"].shape == (3, 10) and out.tail["b"].shape == (3, 10, 2)
    assert out.period.tolist() == [1, 1, -1]
    df = out.to_pandas()
    assert list(df.columns) == ["learning_rate", "period", "lyapunov"] and df["period"].tolist() == [1, 1, -1]


def test_bifurcation_composes_with_jit_and_vmap():
    well = lambda w: (w**2 - 1) ** 2 / 4
    periods = jax.jit(lambda lrs: bifurcation(well, 1.1, lrs, num_steps=300, keep=30).period)
    assert periods(jnp.array([0.9, 1.1, 2.5])).tolist() == [1, 2, -1]
    over_starts = jax.vmap(lambda w0: bifurcation(well, w0, np.array([0.9, 1.1]), num_steps=300, keep=30).tail[:, -1])
    np.testing.assert_allclose(over_starts(jnp.array([1.1, -1.1]))[0], -over_starts(jnp.array([1.1, -1.1]))[1])


def test_new_learning_rates_reuse_the_compilation():
    well = lambda w: (w**2 - 1) ** 2 / 4
    bifurcation(well, 1.1, np.linspace(0.5, 1.5, 16), num_steps=100, keep=10)
    with count_compilations() as c:
        bifurcation(well, 1.1, np.linspace(0.6, 1.6, 16), num_steps=100, keep=10)
    assert c.count == 0


@pytest.mark.parametrize("kwargs, error, name", [
    pytest.param(dict(keep=0), ValueError, "keep", id="keep-zero"),
    pytest.param(dict(keep=101), ValueError, "keep", id="keep-above-num-steps"),
    pytest.param(dict(keep=2.0), TypeError, "keep", id="keep-float"),
    pytest.param(dict(num_steps=-1), ValueError, "num_steps", id="negative-steps"),
    pytest.param(dict(learning_rates=np.array([0.1, -0.1])), ValueError, "learning_rates", id="negative-lr"),
    pytest.param(dict(learning_rates=np.array([[0.1]])), ValueError, "learning_rates", id="2-d-lr"),
    pytest.param(dict(learning_rates=np.array([])), ValueError, "learning_rates", id="empty-lr"),
    pytest.param(dict(w0=np.nan), ValueError, "w0", id="nan-w0"),
    pytest.param(dict(loss_fn=lambda w: w * jnp.ones(3)), TypeError, "loss_fn", id="non-scalar-loss"),
    pytest.param(dict(max_period=0), ValueError, "max_period", id="max-period"),
    pytest.param(dict(rtol=-1.0), ValueError, "rtol", id="rtol"),
    pytest.param(dict(rtol=np.inf), ValueError, "rtol must be finite", id="rtol-inf"),
    pytest.param(dict(atol=np.inf), ValueError, "atol must be finite", id="atol-inf"),
    pytest.param(dict(rtol=2.0), ValueError, "rtol must be < 1", id="rtol-2"),
    pytest.param(dict(divergence_bound=0.0), ValueError, "divergence_bound", id="bound"),
    pytest.param(dict(w0=jnp.zeros(0), loss_fn=lambda w: jnp.sum(w**2)), ValueError, "w0", id="empty-array-w0"),
    pytest.param(dict(w0={}, loss_fn=lambda w: jnp.float32(0)), ValueError, "w0", id="empty-dict-w0"),
    pytest.param(dict(keep=2e9, num_steps=2**31 - 2), TypeError, "keep", id="keep-huge-float"),
    # every learning rate's tail: 2e9 iterates of 1000 parameters, far beyond any machine's memory
    pytest.param(dict(keep=2 * 10**9, num_steps=2**31 - 2, w0=jnp.zeros(1000),
                      loss_fn=lambda w: jnp.sum(w**2)), ValueError, "keep", id="keep-too-large"),
])
def test_bifurcation_bad_input_names_the_argument(kwargs, error, name):
    args = dict(loss_fn=sextic, w0=jnp.array(0.5), learning_rates=np.array([0.1, 0.2]), num_steps=100, keep=10) | kwargs
    with count_compilations() as c, pytest.raises(error, match=name):
        bifurcation(args.pop("loss_fn"), args.pop("w0"), args.pop("learning_rates"), **args)
    assert c.count == 0  # refused before compiling


def test_the_readme_example_prints_what_it_says(capsys):
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Stability"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    expected = [line.split("# ")[-1].strip() for line in code.splitlines() if line.startswith("print(")]
    assert printed == expected


def test_curvature_sits_below_descent_and_stability():
    """No import circle: _curvature imports neither module, and descent imports nothing from stability."""
    import ast
    from pathlib import Path

    import jaxdescent._curvature as curvature
    import jaxdescent.stability as stability

    def imported(path):
        names = set()
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names |= {node.module or ""} | {f"{node.module}.{alias.name}" for alias in node.names}
        return names

    package = Path(curvature.__file__).parent
    curvature_imports = imported(package / "_curvature.py")
    assert not {"jaxdescent.descent", "jaxdescent.stability"} & curvature_imports, curvature_imports
    descent_imports = imported(package / "descent.py")  # ast.walk: function-level imports included
    assert not {n for n in descent_imports if n.startswith("jaxdescent.stability")}, descent_imports
    assert stability.hvp_fn is curvature.hvp_fn and stability.lanczos is curvature.lanczos
