
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdescent import grid_search, stationary_point
from jaxdescent._compat import enable_x64
from jaxdescent.losses import bowl, himmelblau, quadratic, sextic, sextic_grad
from jaxdescent.search import grid


def test_grid_has_no_drift():
    points = grid(-2.0, 2.0, 0.01)
    assert len(points) == 401 and points[0] == -2.0 and points[-1] == 2.0
    assert len(grid(-2.0, 2.0, 0.001)) == 4001
    np.testing.assert_allclose(points, np.round(points, 2), atol=1e-12)


def test_lecture_grid_minima():
    w, loss = grid_search(sextic, -2.0, 2.0, 0.01)
    assert round(float(w), 2) == 0.75 and round(float(loss), 6) == -0.439087
    w, loss = grid_search(sextic, -2.0, 2.0, 0.001)
    assert round(float(w), 3) == 0.755 and round(float(loss), 6) == -0.439118
    assert float(grid_search(quadratic, -2.0, 2.0, 0.001).w) == pytest.approx(-1.0)


def test_grid_search_matches_numpy_brute_force():
    points = np.linspace(-2, 2, 401)
    expected = points[np.argmin(points**6 / 6 + points**2 / 2 - points)]
    assert float(grid_search(sextic, -2.0, 2.0, 0.01).w) == pytest.approx(expected)


def test_newton_solves_the_lectures_question_mark():
    with enable_x64(True):
        w, loss = stationary_point(sextic, jnp.float64(1.0))
        assert float(w) == pytest.approx(0.754878, abs=1e-6)
        assert float(loss) == pytest.approx(-0.439118, abs=1e-6)
        assert abs(float(sextic_grad(w))) < 1e-12
    w, _ = stationary_point(sextic, 2.0)
    assert round(float(w), 6) == 0.754878


def test_newton_in_two_dimensions():
    w, loss = stationary_point(bowl, jnp.array([-8.0, 7.0]))
    np.testing.assert_allclose(w, [0.0, 0.0], atol=1e-6)
    w, loss = stationary_point(himmelblau, jnp.array([2.5, 2.5]))
    np.testing.assert_allclose(w, [3.0, 2.0], atol=1e-4)
    assert float(stationary_point(quadratic, 10.0).w) == -1.0


@pytest.mark.parametrize(
    "args, name",
    [((-2.0, 2.0, 0.0), "step"), ((-2.0, 2.0, -0.1), "step"), ((2.0, -2.0, 0.1), "lo"),
     ((1.0, 1.0, 0.1), "lo"), ((float("nan"), 2.0, 0.1), "lo"), ((-2.0, float("inf"), 0.1), "hi")],
)
def test_grid_search_bad_input(args, name):
    with pytest.raises(ValueError, match=name):
        grid_search(sextic, *args)


def test_grid_search_rejects_non_scalar_loss():
    with pytest.raises(TypeError, match="loss_fn"):
        grid_search(lambda w: jnp.stack([w, w]), -1.0, 1.0, 0.5)


def test_stationary_point_bad_input():
    with pytest.raises(ValueError, match="w0"):
        stationary_point(sextic, float("nan"))
    with pytest.raises(ValueError, match="num_steps"):
        stationary_point(sextic, 1.0, num_steps=-3)
