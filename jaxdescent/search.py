"""Answers without iterating the lecture's rule: the brute-force grid and Newton's method on the gradient.

The sharpness and the critical learning rate 2/λ_max live in :mod:`jaxdescent.stability`.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxdescent import _validate
from jaxdescent.descent import as_params


class Point(NamedTuple):
    """A point found by a search and its loss; unpacks as ``w, loss = ...``."""

    w: Any
    loss: jax.Array


def grid(lo: float, hi: float, step: float) -> np.ndarray:
    """lo, lo + step, …, hi inclusive, each point computed as lo + i·step (no accumulated drift)."""
    for name, value in (("lo", lo), ("hi", hi), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    if lo >= hi:
        raise ValueError(f"lo must be < hi, got lo={lo}, hi={hi}")
    n = np.floor((hi - lo) / step * (1 + 1e-12)) + 1
    # the points, their float cast and the losses: 24 bytes a point
    _validate.check_memory("grid_search", int(min(n, 2**62)) * 24, f"{n:,.0f} grid points",
                           "use a larger step or a narrower [lo, hi]")
    n = int(n)
    return lo + step * np.arange(n, dtype=np.float64)


@jax.jit
def _argmin(losses):
    i = jnp.nanargmin(losses)
    return i, losses[i]


def grid_search(loss_fn: Callable[[jax.Array], jax.Array], lo: float, hi: float, step: float) -> Point:
    """The lecture's brute force: evaluate a scalar-input loss on lo, lo + step, …, hi and keep the least.

    The points are evaluated together with ``jax.vmap``, in the default float dtype.

    Returns:
      ``Point(w, loss)``: the first grid point with the smallest loss.

    Examples:
      >>> from jaxdescent import grid_search
      >>> from jaxdescent.losses import sextic
      >>> w, loss = grid_search(sextic, -2.0, 2.0, 0.01)
      >>> round(float(w), 4), round(float(loss), 6)
      (0.75, -0.439087)
    """
    points = jnp.asarray(grid(lo, hi, step), dtype=jnp.result_type(float))
    _validate.scalar_loss(loss_fn, points[0])
    i, loss = _argmin(jax.vmap(loss_fn)(points))
    return Point(points[i], loss)


def _newton(loss_fn, w0, *, num_steps):
    flat, unravel = ravel_pytree(w0)
    f = lambda v: loss_fn(unravel(v))
    grad, hessian = jax.grad(f), jax.hessian(f)

    def step(_, v):
        return v - jnp.linalg.solve(hessian(v), grad(v))

    flat = lax.fori_loop(0, num_steps, step, flat)
    return Point(unravel(flat), f(flat))


_run_newton = jax.jit(_newton, static_argnames=("loss_fn", "num_steps"))


def stationary_point(loss_fn: Callable[[Any], jax.Array], w0: Any, *, num_steps: int = 30) -> Point:
    """Newton's method on the gradient, w := w − (∇²loss)⁻¹ ∇loss, second derivatives by JAX.

    Solves ∇loss(w) = 0 where algebra cannot: for the sextic, w⁵ + w − 1 = 0 has
    no closed form (the lecture's "?"). It finds the stationary point nearest in
    Newton's sense, which may be a maximum or a saddle; check the Hessian if it matters.

    Args:
      loss_fn: a pure function from parameters to a scalar loss, twice differentiable.
      w0: the start, any pytree of arrays.
      num_steps: Newton iterations (convergence is quadratic; 30 is ample from a
        reasonable start).

    Returns:
      ``Point(w, loss)``.

    Examples:
      >>> from jaxdescent import stationary_point
      >>> from jaxdescent.losses import sextic
      >>> w, loss = stationary_point(sextic, 1.0)
      >>> round(float(w), 6), round(float(loss), 6)
      (0.754878, -0.439118)
    """
    num_steps = _validate.num_steps(num_steps)
    _validate.finite_tree(w0, "w0")
    w0 = as_params(w0)
    _validate.scalar_loss(loss_fn, w0)
    return _run_newton(loss_fn, w0, num_steps=num_steps)
