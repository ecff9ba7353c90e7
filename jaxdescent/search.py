"""Answers without iterating the lecture's rule: the brute-force grid and Newton's method on the gradient.

The sharpness and the critical learning rate 2/λ_max live in :mod:`jaxdescent.stability`.
"""

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxdescent import _validate
from jaxdescent._validate import InvalidArgument
from jaxdescent.descent import _param_dtype, as_params


def _plain(x) -> str:
    """A concrete scalar array as its number (``0.75``, float32's shortest repr); anything else as its repr."""
    if isinstance(x, (jax.Array, np.ndarray, np.generic)) and not _validate.is_traced(x) and np.ndim(x) == 0:
        return str(np.asarray(x)[()])
    return repr(x)


class Point(NamedTuple):
    """A point found by a search and its loss; unpacks as ``w, loss = ...``.

    Prints scalars as plain numbers, ``Point(w=0.75, loss=-0.4390869)``; the fields stay arrays.
    """

    w: Any
    loss: jax.Array

    def __repr__(self) -> str:
        return f"Point(w={_plain(self.w)}, loss={_plain(self.loss)})"


def _check_grid(lo, hi, step) -> None:
    for name, value in (("lo", lo), ("hi", hi), ("step", step)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
                or not np.isfinite(float(value) if abs(value) < 2**1024 else np.inf):
            raise InvalidArgument(f"{name} must be a finite number, got {value!r}")
    if step <= 0:
        raise InvalidArgument(f"step must be > 0, got {step}")
    if lo >= hi:
        raise InvalidArgument(f"lo must be < hi, got lo={lo}, hi={hi}")


def grid(lo: float, hi: float, step: float) -> np.ndarray:
    """lo, lo + step, …, hi inclusive, each point computed as lo + i·step (no accumulated drift)."""
    _check_grid(lo, hi, step)
    n = np.floor((hi - lo) / step * (1 + 1e-12)) + 1
    # the points, their float cast, the checks of the cast (see _in_dtype) and the losses: 48 bytes a point
    _validate.check_memory("grid_search", int(min(n, 2**62)) * 48, f"{n:,.0f} grid points",
                           "use a larger step or a narrower [lo, hi]")
    n = int(n)
    return lo + step * np.arange(n, dtype=np.float64)


def _check_spacing(lo, hi, step, dtype) -> None:
    """Refuses, before the grid is built, a ``step`` below ``dtype``'s spacing at the grid's largest magnitude.

    There neighbouring points would round to one value (which :func:`_in_dtype` finds only after building
    every point: 2.5e8 of them for ``step=4e-9`` on [0, 1]). A step at least that spacing keeps neighbours
    apart, and the grid has at most about 2 / eps(dtype) points.
    """
    edge = max(abs(float(lo)), abs(float(hi)))
    spacing = float(np.spacing(np.asarray(edge, dtype)))
    if step < spacing:
        raise InvalidArgument(
            f"step {step} is too small for {dtype} (the runs' float): near {edge:g} its numbers are {spacing:.3g} "
            "apart, so neighbouring grid points would round to the same value; use a larger step, or float64 "
            "(jax.config.update('jax_enable_x64', True))")


def _in_dtype(points: np.ndarray, step, dtype) -> np.ndarray:
    """``points`` cast to ``dtype``, refusing a grid whose points coincide there, as XLA sees them.

    Neighbours that round to one value, or that are subnormal (XLA flushes them to 0), would be evaluated
    at the same point, and the search would report the first of them whatever the loss.
    """
    tiny = np.finfo(dtype).tiny
    cast = points.astype(dtype)
    seen = np.where(np.abs(cast) < tiny, 0, cast)
    same = np.flatnonzero(np.diff(seen) <= 0)
    if same.size:
        a, b = points[same[0]], points[same[0] + 1]
        why = (f"are subnormal there (below {tiny:.3g}) and XLA flushes them to 0" if max(abs(a), abs(b)) < tiny
               else f"round to the same {dtype} value")
        raise InvalidArgument(
            f"step {step} is too small for {dtype} (the runs' float): the grid points {float(a)!r} and {float(b)!r} {why}; "
            "use a larger step, or float64 (jax.config.update('jax_enable_x64', True))")
    return cast


@jax.jit
def _argmin(losses):
    i = jnp.nanargmin(losses)
    return i, losses[i]


def grid_search(loss_fn: Callable[[jax.Array], jax.Array], lo: float, hi: float, step: float) -> Point:
    """The lecture's brute force: evaluate a scalar-input loss on lo, lo + step, …, hi and keep the least.

    The points are evaluated together with ``jax.vmap``, in the default float dtype (float32
    unless JAX's x64 is on); NaN losses are skipped.

    Returns:
      ``Point(w, loss)``: the first grid point with the smallest loss.

    Raises:
      InvalidArgument (a ValueError and a TypeError): ``lo``, ``hi`` or ``step`` not finite numbers
        with ``lo < hi`` and ``step > 0``; ``lo`` or ``hi`` beyond the default float's range; a ``step``
        so small that grid points coincide in that float (or are subnormal, which XLA flushes to 0);
        more points than half the memory holds; a ``loss_fn`` that does not return a real scalar, or
        is NaN at every grid point.

    Examples:
      >>> from jaxdescent import grid_search
      >>> from jaxdescent.losses import sextic
      >>> w, loss = grid_search(sextic, -2.0, 2.0, 0.01)
      >>> round(float(w), 4), round(float(loss), 6)
      (0.75, -0.439087)
      >>> print(grid_search(sextic, -2.0, 2.0, 0.01))
      Point(w=0.75, loss=-0.4390869)
    """
    _check_grid(lo, hi, step)
    dtype = np.dtype(jnp.result_type(float))
    _validate.representable(lo, "lo", dtype)
    _validate.representable(hi, "hi", dtype)
    _check_spacing(lo, hi, step, dtype)
    points = jnp.asarray(_in_dtype(grid(lo, hi, step), step, dtype))
    _validate.scalar_loss(loss_fn, points[0])
    i, loss = _argmin(jax.vmap(loss_fn)(points))
    if not _validate.is_traced(loss) and bool(jnp.isnan(loss)):
        raise InvalidArgument(f"loss_fn is NaN at every grid point ({points.size:,} points from {lo} to {hi}); "
                              "check it on a few of them")
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
    _check_hessian_size(w0)
    w0 = as_params(w0)
    _validate.scalar_loss(loss_fn, w0)
    return _run_newton(loss_fn, w0, num_steps=num_steps)


HESSIAN_COPIES = 3  # the Hessian, the forward-over-reverse pass that builds it (n tangents), and solve's LU factors


def _check_hessian_size(w0) -> None:
    """Refuses a Newton step whose dense n × n Hessian (``n`` = the parameters in ``w0``) cannot fit."""
    leaves = jax.tree_util.tree_leaves(w0)
    n = sum(math.prod(np.shape(x)) for x in leaves)
    itemsize = np.dtype(jnp.result_type(*(_param_dtype(x) for x in leaves))).itemsize  # ravel_pytree's dtype
    _validate.check_memory(
        "w0", HESSIAN_COPIES * n * n * itemsize,
        f"Newton's method on {n:,} parameters builds a dense {n:,} x {n:,} Hessian: its {HESSIAN_COPIES} copies",
        "use fewer parameters, or a first-order method (jaxdescent.gradient_descent) or Hessian-vector "
        "products (jaxdescent.sharpness) instead")
