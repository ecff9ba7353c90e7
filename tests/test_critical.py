import jax.numpy as jnp
import numpy as np
import pytest

from jaxdescent import critical_learning_rate, gradient_descent, stationary_point
from jaxdescent.losses import bowl, himmelblau, sextic, sextic_hessian


def test_sextic_at_its_minimum_is_two_over_f_second():
    w_star = stationary_point(sextic, 1.0).w
    expected = 2 / float(sextic_hessian(w_star))
    assert float(critical_learning_rate(sextic, w_star)) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.7623, abs=1e-4)


@pytest.mark.parametrize("method", ["dense", "power", "auto"])
def test_bowl(method):
    assert float(critical_learning_rate(bowl, jnp.array([0.3, -1.0]), method=method)) == pytest.approx(0.5, rel=1e-5)


def test_power_iteration_matches_dense_on_a_large_quadratic():
    scales = jnp.linspace(1.0, 50.0, 2000).at[7].set(400.0)
    loss_fn = lambda w: 0.5 * jnp.sum(scales * w**2)
    w = jnp.ones(2000)
    assert float(critical_learning_rate(loss_fn, w)) == pytest.approx(2 / 400.0, rel=1e-4)  # auto -> power
    assert float(critical_learning_rate(loss_fn, w, method="dense")) == pytest.approx(2 / 400.0, rel=1e-5)


def test_negative_dominant_curvature_still_gives_the_largest_positive_eigenvalue():
    loss_fn = lambda w: -3 * w[0] ** 2 + w[1] ** 2
    assert float(critical_learning_rate(loss_fn, jnp.ones(2), method="power")) == pytest.approx(1.0, rel=1e-4)
    assert np.isinf(critical_learning_rate(lambda w: -jnp.sum(w**2), jnp.ones(3)))


def test_the_prediction_is_the_measured_boundary_near_the_minimum():
    w_star = stationary_point(himmelblau, jnp.array([2.8, 2.2])).w
    alpha = float(critical_learning_rate(himmelblau, w_star))
    start = w_star + 1e-3
    for factor, converges in ((0.97, True), (1.03, False)):
        path = gradient_descent(himmelblau, start, learning_rate=alpha * factor, num_steps=2000)
        assert bool(jnp.linalg.norm(path.w[-1] - w_star) < 1e-4) == converges


def test_bad_input():
    with pytest.raises(ValueError, match="Hessian"):
        critical_learning_rate(lambda w: jnp.sqrt(w) ** 3, 0.0)
    with pytest.raises(ValueError, match="method"):
        critical_learning_rate(bowl, jnp.zeros(2), method="qr")
    with pytest.raises(ValueError, match="w"):
        critical_learning_rate(bowl, jnp.array([jnp.nan, 0.0]))
