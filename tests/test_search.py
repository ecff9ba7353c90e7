
import re
import tracemalloc
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdescent import count_compilations, grid_search, stationary_point
from jaxdescent._compat import enable_x64
from jaxdescent.losses import bowl, himmelblau, quadratic, sextic, sextic_grad
from jaxdescent.search import Point, grid


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
    [pytest.param((-2.0, 2.0, 0.0), "step", id="step-zero"),
     pytest.param((-2.0, 2.0, -0.1), "step", id="step-negative"),
     pytest.param((2.0, -2.0, 0.1), "lo", id="lo-gt-hi"),
     pytest.param((1.0, 1.0, 0.1), "lo", id="lo-eq-hi"),
     pytest.param((float("nan"), 2.0, 0.1), "lo", id="lo-nan"),
     pytest.param((-2.0, float("inf"), 0.1), "hi", id="hi-inf"),
     pytest.param((True, 2.0, 0.1), "lo", id="lo-bool"),
     pytest.param((0.0, 10**400, 1.0), "hi", id="hi-int-beyond-float64"),
     # float32 (the default float) overflows: the points became +-inf and 0, and the search returned w = 0
     pytest.param((-1e300, 1e300, 1e299), "lo [-1e+300] cannot be represented in float32", id="lo-beyond-float32"),
     pytest.param((-1.0, 1e39, 1e38), "hi [1e+39] cannot be represented in float32", id="hi-beyond-float32"),
     # subnormal in float32: XLA flushed every point to 0, and the search returned w = 0 whatever the loss
     pytest.param((0.0, 1e-40, 1e-41), "step 1e-41 is too small for float32", id="step-subnormal"),
     pytest.param((1.0, 1.0 + 1e-6, 1e-8), "step 1e-08 is too small for float32", id="step-below-float32-spacing"),
     ],
)
def test_grid_search_bad_input(args, name):
    with pytest.raises(ValueError, match=re.escape(name)):
        grid_search(lambda w: -w, *args)


def test_grid_search_refuses_a_step_below_the_float_spacing_before_building_the_grid():
    """step=2e-8 on [0, 1] in float32 (spacing 6e-8 near 1): the 5e7 points (400 MB of float64) were built and
    cast before the points that coincide were found."""
    if jax.config.jax_enable_x64:
        pytest.skip("float32 is the runs' float only without x64")
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=re.escape("step 2e-08 is too small for float32")):
            grid_search(lambda w: -w, 0.0, 1.0, 2e-8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10**7  # bytes: nothing per grid point


def test_grid_search_refuses_a_loss_that_is_nan_everywhere():
    """It returned Point(2.0, nan): nanargmin of all-NaN is -1, the last point."""
    with pytest.raises(ValueError, match="loss_fn is NaN at every grid point"):
        grid_search(lambda w: w * jnp.nan, -1.0, 2.0, 0.5)
    w, loss = grid_search(lambda w: jnp.where(w < 0.5, jnp.nan, (w - 1.5) ** 2), -1.0, 2.0, 0.5)  # some NaN: skipped
    assert (float(w), float(loss)) == (1.5, 0.0)


def test_grid_search_near_zero_and_in_float64():
    """A grid through 0 whose float64 rounding leaves a 1e-46 at zero is fine; float64 takes what float32 cannot."""
    assert float(grid_search(lambda w: -w, -1e-30, 1e-30, 1e-31).w) == pytest.approx(1e-30)
    with enable_x64(True):
        w, _ = grid_search(lambda w: (w - 3e-40) ** 2, 0.0, 1e-39, 1e-40)
        assert w.dtype == jnp.float64 and float(w) == pytest.approx(3e-40)
        assert float(grid_search(lambda w: -w, -1e300, 1e300, 1e299).w) == 1e300


def test_point_prints_plain_numbers_and_stays_a_pytree_of_arrays():
    point = grid_search(sextic, -2.0, 2.0, 0.01)
    assert repr(point) == str(point) == "Point(w=0.75, loss=-0.4390869)"
    assert isinstance(point.w, jax.Array) and isinstance(point.loss, jax.Array)
    doubled = jax.jit(lambda p: jax.tree_util.tree_map(lambda x: 2 * x, p))(point)
    assert type(doubled) is Point and float(doubled.w) == 1.5
    assert jax.vmap(lambda p: p.w + p.loss)(Point(jnp.ones(3), jnp.zeros(3))).shape == (3,)
    jax.jit(lambda p: repr(p) and p)(point)  # a traced Point prints without touching its values
    vector = Point(jnp.array([3.0, 2.0]), jnp.float32(0.5))
    assert repr(vector) == "Point(w=Array([3., 2.], dtype=float32), loss=0.5)"


def test_the_readme_prints_the_grid_search_point_it_shows():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("print(grid_search(sextic, -2.0, 2.0, 0.01))"))
    assert repr(grid_search(sextic, -2.0, 2.0, 0.01)) == line.split("# ")[-1].strip()


def test_grid_search_rejects_non_scalar_loss():
    with pytest.raises(TypeError, match="loss_fn"):
        grid_search(lambda w: jnp.stack([w, w]), -1.0, 1.0, 0.5)


@pytest.mark.parametrize("args, kwargs, match", [
    pytest.param((sextic, float("nan")), {}, "w0", id="w0-nan"),
    pytest.param((sextic, 1.0), dict(num_steps=-3), "num_steps", id="num-steps-negative"),
    pytest.param((sextic, 1.0), dict(num_steps=2**31), "num_steps must be at most", id="num-steps-beyond-int32"),
    # Newton's dense Hessian of 10^6 parameters: 10^12 float32, 12 TB in three copies
    pytest.param((bowl, np.ones(10**6, np.float32)), {},
                 r"w0: Newton's method on 1,000,000 parameters builds a dense 1,000,000 x 1,000,000 Hessian: .* "
                 r"need about 12\.0 TB", id="hessian-too-large"),
])
def test_stationary_point_bad_input(args, kwargs, match):
    with count_compilations() as c, pytest.raises(ValueError, match=match):
        stationary_point(*args, **kwargs)
    assert c.count == 0
