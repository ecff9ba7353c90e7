"""Stability of gradient descent for any loss: bifurcation diagrams, Lyapunov exponents and the sharpness.

* :func:`bifurcation`: for each learning rate α, gradient descent w := w − α∇f(w)
  from ``w0``; the last iterates, their period and the largest Lyapunov
  exponent, all learning rates in one compiled, chunked call on the engine.
* :func:`sharpness`: the largest eigenvalue of the Hessian ∇²f(w), by Lanczos
  on Hessian-vector products (``jax.jvp`` of ``jax.grad``), for any pytree w;
  :func:`critical_learning_rate` is 2 / sharpness.

Linearised at a minimum, the plain rule multiplies the error along each
Hessian eigenvector by 1 − αλ, so it converges for α < 2/λ_max. Above that the
fixed point becomes a 2-cycle, then (for losses such as the double well
(w² − 1)²/4) a cascade of period doublings into chaos; or, under full-batch
training of a network, the sharpness rises to 2/α and hovers there (the edge of
stability, Cohen et al. 2021, arXiv 2103.00065).
"""

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from jaxdescent import _engine, _validate
from jaxdescent._curvature import _power
from jaxdescent._curvature import hvp_fn as hvp_fn
from jaxdescent._curvature import lanczos as lanczos
from jaxdescent.descent import as_params

DIVERGENCE_BOUND = 1e10
METHODS = ("lanczos", "power", "dense", "auto")

# ---------------------------------------------------------------- the top eigenvalue of the Hessian


def _top_eigenvalue(loss_fn, w, key, *, method, num_iterations):
    loss_fn = loss_fn.value
    flat, hvp, unravel = hvp_fn(loss_fn, w)
    if method == "dense":
        return jnp.linalg.eigvalsh(jax.hessian(lambda v: loss_fn(unravel(v)))(flat))[-1]
    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    if method == "power":
        return _power(hvp, v0, num_iterations)
    return lanczos(hvp, v0, num_iterations)[0]


_run_top_eigenvalue = jax.jit(_top_eigenvalue, static_argnames=("loss_fn", "method", "num_iterations"))


def _flat_dtype(w) -> np.dtype:
    """The dtype of ``w`` flattened into one vector (read abstractly: nothing is computed)."""
    return np.dtype(jax.eval_shape(lambda t: ravel_pytree(t)[0], w).dtype)


def _check_sharpness_size(method, n, num_iterations, itemsize):
    """Refuses, before compiling, a dense Hessian (n² numbers) or a Lanczos basis (k vectors of n) that cannot fit."""
    if method == "dense":
        # the Hessian, and eigvalsh's copy of it and workspace
        _validate.check_memory("method", 3 * n * n * itemsize,
                               f"method='dense' builds a {n:,} × {n:,} Hessian: it and eigvalsh's copies",
                               "use method='lanczos' (num_iterations vectors of w's size) or method='power'")
    elif method in ("lanczos", "auto"):
        k = min(num_iterations, n)
        # the basis, and the reorthogonalisation's products with it
        _validate.check_memory("num_iterations", (k + 4) * n * itemsize,
                               f"num_iterations = {num_iterations:,} Lanczos vectors of {n:,} parameters",
                               "use fewer num_iterations or method='power' (a few vectors of w's size)")


def sharpness(
    loss_fn: Callable[[Any], jax.Array],
    w: Any,
    *,
    method: str = "lanczos",
    num_iterations: int = 64,
    key: Optional[jax.Array] = None,
) -> jax.Array:
    """The sharpness: the largest eigenvalue λ_max of the Hessian ∇²loss(w), for any pytree ``w``.

    The largest *algebraic* eigenvalue, not the largest in magnitude: at a
    saddle whose most negative curvature dominates, it is still the most
    positive one (and negative when every curvature is). Lanczos on
    Hessian-vector products (``jax.jvp`` of ``jax.grad``) finds it without
    forming the Hessian; with ``n`` parameters it takes ``min(num_iterations, n)``
    products and is exact (to rounding) when n <= num_iterations. Composes
    with ``jit`` and ``vmap``: the iteration count is fixed and the start
    vector comes from ``key``.

    Args:
      loss_fn: a pure, twice-differentiable loss of ``w``.
      w: where to take the curvature, any pytree of arrays.
      method: ``"lanczos"`` (default; ``"auto"`` is the same), ``"power"``
        (power iteration, shifted when the dominant eigenvalue is negative;
        slower to converge when the top eigenvalues are close) or ``"dense"``
        (``eigvalsh`` of the full Hessian from ``jax.hessian``: small w only).
      num_iterations: Lanczos steps (memory: that many vectors of w's size) or
        power iterations.
      key: the start vector's random key, default ``PRNGKey(0)``.

    Returns:
      A scalar of w's dtype.

    Raises:
      ValueError: for a non-finite Hessian at a concrete ``w``, or a bad argument (named): also
        an empty ``w``, or a Lanczos basis (``num_iterations``) or dense Hessian (``method``)
        estimated, before compiling, not to fit in memory.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxdescent import sharpness
      >>> round(float(sharpness(lambda w: 2 * w[0] ** 2 + w[1] ** 2, jnp.zeros(2))), 4)
      4.0
      >>> round(float(sharpness(lambda w: -3 * w[0] ** 2 + w[1] ** 2, jnp.ones(2))), 4)  # not -6
      2.0
      >>> params = {"a": jnp.ones(3), "b": jnp.array(2.0)}
      >>> round(float(sharpness(lambda p: jnp.sum(p["a"] ** 2) * p["b"], params)), 4)
      6.0
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    num_iterations = _validate.num_steps(num_iterations, "num_iterations")
    if num_iterations < 1:
        raise ValueError(f"num_iterations must be >= 1, got {num_iterations}")
    if key is not None:
        _validate.prng_key(key, "key")
    _validate.finite_tree(w, "w")
    w = as_params(w)
    n = _validate.num_params(w, "w")
    _check_sharpness_size(method, n, num_iterations, _flat_dtype(w).itemsize)
    _validate.scalar_loss(loss_fn, w)
    key = jax.random.PRNGKey(0) if key is None else key
    top = _run_top_eigenvalue(_engine.Static(loss_fn), w, key, method="lanczos" if method == "auto" else method,
                              num_iterations=num_iterations)
    if not _validate.is_traced(top) and not np.isfinite(top):
        raise ValueError(f"loss_fn has a non-finite Hessian at w (λ_max = {float(top)}); pick another w")
    return top


def critical_learning_rate(
    loss_fn: Callable[[Any], jax.Array],
    w: Any,
    *,
    method: str = "lanczos",
    num_iterations: int = 64,
    key: Optional[jax.Array] = None,
) -> jax.Array:
    """2 / :func:`sharpness`: the step size above which gradient descent is unstable near ``w``.

    Linearised at a minimum w*, the plain rule maps an error e to (1 − α·λ)e along
    each Hessian eigenvector; it shrinks only if α < 2/λ for every λ. Far from w*
    the first steps decide instead (see ``experiments/stability.py``). Heavy-ball
    momentum β moves the bound to (2 + 2β)/λ_max.

    Arguments are those of :func:`sharpness`.

    Returns:
      A scalar; ``inf`` where λ_max <= 0 (no direction of positive curvature).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxdescent import critical_learning_rate
      >>> from jaxdescent.losses import bowl
      >>> float(critical_learning_rate(bowl, jnp.array([0.0, 0.0])))
      0.5
    """
    top = sharpness(loss_fn, w, method=method, num_iterations=num_iterations, key=key)
    return jnp.where(top > 0, 2 / top, jnp.inf)


# ---------------------------------------------------------------- the bifurcation diagram


class Bifurcation(NamedTuple):
    """What :func:`bifurcation` returns; every field has the learning-rate axis first.

    Attributes:
      period: int32, per learning rate: the smallest period p >= 1 of the tail
        (1: a fixed point, 2: a 2-cycle, …); 0 when none is found (chaos, or a
        period longer than the search, or an orbit still converging, or a
        cycle with a positive exponent: a chaotic orbit that rounding closed
        on itself); −1 when the run escaped (an iterate became inf/nan or some
        ``|w_i|`` exceeded ``divergence_bound``, at any step).
      lyapunov: the largest Lyapunov exponent over the tail, the mean of
        log‖J_t v_t‖ with J_t = I − α∇²f(w_t) and v_t the renormalised tangent
        vector (carried from iterate 0, so it points along the most unstable
        direction by then); over the tail's last whole cycles when a period
        is found, so that a p-cycle gives (1/p)·log|its multiplier|. NaN for
        an escaped run. Negative: the orbit attracts; 0 at a bifurcation;
        positive: chaos. For a quadratic with curvature λ it is log|1 − αλ|.
      tail: the last ``keep`` iterates, shaped ``(n_lr, keep, ...)`` like ``w0``
        (a pytree for a pytree ``w0``): iterates ``num_steps − keep + 1 … num_steps``.
      coords: the labels (``learning_rate``), as for :func:`jaxdescent.sweep_fn`.
    """

    period: jax.Array
    lyapunov: jax.Array
    tail: Any
    coords: Optional[_engine.Coords] = None

    def to_pandas(self):
        """A ``pandas.DataFrame``: a row per learning rate, columns ``learning_rate``, ``period``, ``lyapunov``."""
        return _engine.to_pandas(self.coords, {"period": self.period, "lyapunov": self.lyapunov})

    def to_xarray(self):
        """An ``xarray.Dataset`` indexed by ``learning_rate``, the tail included."""
        return _engine.to_xarray(self.coords, {"period": self.period, "lyapunov": self.lyapunov, "tail": self.tail})


def period_of(tail: jax.Array, *, max_period: int, rtol: float, atol: float) -> jax.Array:
    """The smallest period p of a tail of flat iterates ``(keep, n)``, tolerance-based; 0 for none.

    With P = min(max_period, keep // 3), p <= P is the period when every one of
    the last P iterates is within tol of the iterate p before it,
    ‖w_t − w_{t−p}‖∞ <= tol for keep − P <= t < keep, where tol = rtol·s + atol
    and s is the largest |w_i| over the last 2P iterates. Every candidate is
    judged on the same P iterates: at least 2 cycles of each p after the first.
    """
    keep = tail.shape[0]
    span = min(max_period, keep // 3)
    recent = tail[keep - span:]
    scale = jnp.max(jnp.abs(tail[keep - 2 * span:]))
    tol = rtol * scale + atol

    def gap(p):
        earlier = lax.dynamic_slice_in_dim(tail, keep - span - p, span)
        return jnp.max(jnp.abs(recent - earlier))

    ok = jax.vmap(gap)(jnp.arange(1, span + 1)) <= tol
    return jnp.where(jnp.any(ok), jnp.argmax(ok) + 1, 0).astype(jnp.int32)


def _orbit(hp, key, w0, *, loss_fn, num_steps, keep, max_period, rtol, atol, divergence_bound):
    """One learning rate: the transient, then the tail with the tangent vector's growth; pure."""
    flat, unravel = ravel_pytree(w0)
    grad = jax.grad(lambda v: loss_fn.value(unravel(v)))
    lr = hp["learning_rate"].astype(flat.dtype)
    bound = jnp.asarray(min(divergence_bound, float(jnp.finfo(flat.dtype).max)), flat.dtype)

    def step(carry):
        w, v, escaped = carry
        g, hv = jax.jvp(grad, (w,), (v,))  # ∇f(w) and ∇²f(w)·v in one pass
        jv = v - lr * hv  # (I − α∇²f(w))·v
        growth = jnp.linalg.norm(jv)
        v = jnp.where(growth > 0, jv / jnp.where(growth > 0, growth, 1), v)
        new_w = w - lr * g
        escaped = escaped | ~jnp.all(jnp.abs(new_w) <= bound)  # False for NaN too
        return (new_w, v, escaped), jnp.log(growth)

    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    carry = (flat, v0 / jnp.linalg.norm(v0), ~jnp.all(jnp.abs(flat) <= bound))
    # iterates 0 … num_steps − keep: the tangent vector turns towards the most unstable direction meanwhile
    carry = lax.fori_loop(0, num_steps - keep + 1, lambda _, c: step(c)[0], carry)

    def tail_step(carry, _):
        w = carry[0]
        carry, log_growth = step(carry)
        return carry, (w, log_growth)

    carry, (tail, log_growth) = lax.scan(tail_step, carry, None, length=keep)
    escaped = carry[2] | ~jnp.all(jnp.isfinite(tail))
    period = period_of(tail, max_period=max_period, rtol=rtol, atol=atol)
    # Over whole cycles the mean is the cycle's own exponent, (1/p)·log|multiplier|.
    cycles = jnp.where(period > 0, keep // jnp.maximum(period, 1) * period, keep)
    whole = jnp.arange(keep) >= keep - cycles
    lyapunov = jnp.sum(jnp.where(whole, log_growth, 0)) / cycles
    # A cycle that repels (exponent > 0) cannot attract in exact arithmetic: it is a chaotic orbit that
    # rounding closed on itself (float32 has only 2³² values), so it counts as no period.
    period = jnp.where(lyapunov > 0, 0, period)
    return jnp.where(escaped, -1, period), jnp.where(escaped, jnp.nan, lyapunov), jax.vmap(unravel)(tail)


def _number(value, name, *, positive):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or np.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if (value <= 0) if positive else (value < 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def bifurcation(
    loss_fn: Callable[[Any], jax.Array],
    w0: Any,
    learning_rates: ArrayLike,
    *,
    num_steps: int,
    keep: int,
    max_period: int = 64,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    divergence_bound: float = DIVERGENCE_BOUND,
    chunk_size: Optional[int] = None,
) -> Bifurcation:
    """The bifurcation diagram of gradient descent w := w − α∇f(w): periods, Lyapunov exponents, tails.

    For each learning rate α, ``num_steps`` updates from ``w0`` (any pytree),
    then the last ``keep`` iterates, their period and the largest Lyapunov
    exponent from the Jacobians I − α∇²f along them (Hessian-vector products
    on a renormalised tangent vector, so any parameter dimension works). All
    learning rates run as one compiled program on the engine
    (:func:`jaxdescent.sweep_fn`'s runner): vmapped chunks of ``chunk_size``
    under ``lax.map``, sharded over the devices; a new set of learning rates of
    the same length reuses the compilation.

    Period detection is tolerance-based (see :func:`period_of`): p <= P =
    min(max_period, keep // 3) is the period when each of the last P iterates
    lies within ``rtol·s + atol`` (∞-norm, s the orbit's largest |w_i|) of the
    iterate p before it. An orbit still converging slowly (near a bifurcation)
    may read 0 or a multiple of its period: give it more steps.

    Args:
      loss_fn: a pure, twice-differentiable loss with a scalar value.
      w0: the start, any pytree of arrays (its float dtype is the run's dtype).
      learning_rates: a 1-D array of α > 0.
      num_steps: updates per learning rate (static).
      keep: iterates kept at the end, an int with 3 <= keep <= num_steps
        (memory: keep iterates of w0's size per learning rate).
      max_period: the longest period searched for.
      rtol: the period tolerance, relative to max|w|, in [0, 1).
      atol: the period tolerance, absolute, finite and >= 0.
      divergence_bound: a run escapes when some |w_i| exceeds this (or is inf/nan).
      chunk_size: learning rates vmapped together (default: the engine's).

    Returns:
      A :class:`Bifurcation` (``period``, ``lyapunov``, ``tail``, ``coords``;
      ``.to_pandas()``).

    Examples:
      The double well f(w) = (w² − 1)²/4 has f″(1) = 2, so its minimum w = 1
      turns into a 2-cycle at α = 2/f″(1) = 1 (Lyapunov exponent log|1 − 2α|
      below), then period-doubles into chaos (Lyapunov exponent > 0); past α = 2 it escapes.

      >>> import numpy as np
      >>> from jaxdescent import bifurcation
      >>> well = lambda w: (w**2 - 1) ** 2 / 4
      >>> out = bifurcation(well, 1.1, np.array([0.4, 0.9, 1.1, 1.25, 1.3, 1.5, 2.1]), num_steps=2000, keep=200)
      >>> out.period.tolist(), out.tail.shape
      ([1, 1, 2, 4, 16, 0, -1], (7, 200))
      >>> [round(float(x), 4) for x in out.lyapunov[:2]], bool(out.lyapunov[5] > 0)
      ([-1.6094, -0.2231], True)
      >>> out.to_pandas().head(2).round(4)
         learning_rate  period  lyapunov
      0            0.4       1   -1.6094
      1            0.9       1   -0.2231
    """
    _validate.learning_rate(learning_rates, "learning_rates")
    if np.ndim(learning_rates) != 1:
        raise ValueError(f"learning_rates must be a 1-D array, got shape {np.shape(learning_rates)}")
    num_steps = _validate.num_steps(num_steps)
    keep = _validate.num_steps(keep, "keep")
    if not 3 <= keep <= num_steps:
        raise ValueError(f"keep must be between 3 and num_steps = {num_steps} (the last iterates kept), got {keep}")
    max_period = _validate.num_steps(max_period, "max_period")
    if max_period < 1:
        raise ValueError(f"max_period must be >= 1, got {max_period}")
    rtol, atol = _number(rtol, "rtol", positive=False), _number(atol, "atol", positive=False)
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not np.isfinite(value):  # an infinite tolerance reads every orbit, a diverging one aside, as period 1
            raise _validate.InvalidArgument(f"{name} must be finite, got {value!r}")
    if rtol >= 1:  # two iterates differ by at most 2s: rtol >= 2 reads every orbit as period 1, and 1 is no tolerance
        raise _validate.InvalidArgument(f"rtol must be < 1 (a tolerance relative to the orbit's largest |w_i|), "
                                        f"got {rtol!r}")
    divergence_bound = _number(divergence_bound, "divergence_bound", positive=True)
    if chunk_size is not None and _validate.num_steps(chunk_size, "chunk_size") < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    _validate.finite_tree(w0, "w0")
    w0 = as_params(w0)
    n = _validate.num_params(w0, "w0")
    dtype = _flat_dtype(w0)
    n_lr = np.shape(learning_rates)[0]
    # every learning rate's tail (keep iterates of n parameters) and its keep tangent growths
    _validate.check_memory("keep", n_lr * keep * (n + 1) * dtype.itemsize,
                           f"keep = {keep:,} iterates of {n:,} parameters for {n_lr:,} learning rates",
                           "keep fewer iterates (a smaller keep) or split the learning rates")
    _validate.scalar_loss(loss_fn, w0)
    lrs = learning_rates.astype(dtype) if _validate.is_traced(learning_rates) else np.asarray(learning_rates, dtype)
    coords = _engine.Coords([("learning_rate", lrs)])
    run = functools.partial(_orbit, loss_fn=_engine.Static(loss_fn), num_steps=num_steps, keep=keep,
                            max_period=max_period, rtol=rtol, atol=atol, divergence_bound=divergence_bound)
    period, lyapunov, tail = _engine.run_grid(run, coords, key=jax.random.key(0), chunk_size=chunk_size, shared=w0)
    return Bifurcation(period, lyapunov, tail, coords)
