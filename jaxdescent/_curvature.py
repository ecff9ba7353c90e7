"""The curvature of a loss: Hessian-vector products and the top eigenvalue of a symmetric operator.

* :func:`hvp_fn`: ∇²f(w)·v on flat vectors, as ``jax.jvp`` of ``jax.grad``,
  for any pytree w.
* :func:`lanczos`: the largest eigenvalue of a symmetric operator (and its
  Ritz vector) by Lanczos; ``_power``: that eigenvalue alone, by power iteration.

Both :mod:`jaxdescent.descent` (``track_sharpness``) and
:mod:`jaxdescent.stability` (:func:`~jaxdescent.stability.sharpness`) use
them, so they live here, below both: this module imports neither.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree


def hvp_fn(loss_fn: Callable[[Any], jax.Array], w: Any):
    """``(flat, hvp, unravel)``: w flattened, v ↦ ∇²loss(w)·v on flat vectors (a jvp of the gradient), and back."""
    flat, unravel = ravel_pytree(w)
    grad = jax.grad(lambda v: loss_fn(unravel(v)))
    return flat, (lambda v: jax.jvp(grad, (flat,), (v,))[1]), unravel


def lanczos(matvec: Callable[[jax.Array], jax.Array], v0: jax.Array, num_iterations: int):
    """The largest (algebraic) eigenvalue of a symmetric operator and its Ritz vector, by Lanczos.

    ``min(num_iterations, n)`` steps with full reorthogonalisation (twice),
    then the eigenvalues of the small tridiagonal matrix. The Krylov space of
    dimension k holds the extreme eigenvectors first, so the top Ritz value
    converges from below, fast, and with k = n it is exact. A step that finds an
    invariant subspace (the remaining vector is below √eps of the operator's
    scale) stops the recursion: the later rows are inert. Pure and
    ``jit``/``vmap`` composable; it stores k vectors of length n.

    Returns:
      ``(top, vector)``: the top Ritz value and its unit Ritz vector (a good
      start for the next call at a nearby point).
    """
    n, dtype = v0.shape[0], v0.dtype
    k = min(num_iterations, n)
    v0 = v0 / jnp.linalg.norm(v0)
    tiny = jnp.sqrt(jnp.finfo(dtype).eps)

    def step(i, carry):
        basis, diag, off, alive, scale = carry
        v = basis[i]
        w = matvec(v)
        a = jnp.vdot(v, w)
        for _ in range(2):  # twice is enough (Kahan/Parlett)
            w = w - basis.T @ (basis @ w)
        b = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.maximum(jnp.abs(a), b))
        going = alive & (b > tiny * scale)
        # A dead row repeats diag[0], a Rayleigh quotient of the live block: it never becomes the top value.
        diag = diag.at[i].set(jnp.where(alive, a, diag[0]))
        off = off.at[i].set(jnp.where(going, b, 0))
        basis = basis.at[i + 1].set(jnp.where(going, w / jnp.where(going, b, 1), 0), mode="drop")
        return basis, diag, off, going, scale

    start = (jnp.zeros((k, n), dtype).at[0].set(v0), jnp.zeros(k, dtype), jnp.zeros(k, dtype), jnp.array(True),
             jnp.zeros((), dtype))
    basis, diag, off, _, _ = lax.fori_loop(0, k, step, start)
    tridiagonal = jnp.diag(diag) + jnp.diag(off[:-1], 1) + jnp.diag(off[:-1], -1)
    values, vectors = jnp.linalg.eigh(tridiagonal)
    ritz = basis.T @ vectors[:, -1]
    norm = jnp.linalg.norm(ritz)
    return values[-1], jnp.where(norm > tiny, ritz / jnp.where(norm > tiny, norm, 1), v0)


def _power(matvec, v0, num_iterations):
    """Largest-|λ| eigenvalue by power iteration (Rayleigh quotient); if it is negative, again on H − λI."""

    def iterate(op):
        def step(_, v):
            hv = op(v)
            return hv / jnp.linalg.norm(hv)

        v = lax.fori_loop(0, num_iterations, step, v0 / jnp.linalg.norm(v0))
        return jnp.vdot(v, op(v))

    top = iterate(matvec)
    shift = jnp.minimum(top, 0)
    shifted = lambda _: iterate(lambda u: matvec(u) - shift * u) + shift
    return lax.cond(top < 0, shifted, lambda _: top, None)
