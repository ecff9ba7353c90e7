"""The lecture's losses as pure functions, each beside its hand-derived derivative.

Every loss maps parameters to a scalar and works under ``jax.jit``, ``jax.vmap``
and ``jax.grad``. The ``*_grad`` functions are the derivatives the lecture
derives by hand; the tests check them against ``jax.grad``.
"""

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def sextic(w: ArrayLike) -> jax.Array:
    """The lecture's f(w) = w⁶/6 + w²/2 − w, for a scalar w.

    Examples:
        >>> import jax
        >>> from jaxdescent.losses import sextic
        >>> round(float(sextic(1.9)), 2), round(float(jax.grad(sextic)(1.9)), 2)
        (7.75, 25.66)
    """
    w = jnp.asarray(w)
    return w**6 / 6 + w**2 / 2 - w


def sextic_grad(w: ArrayLike) -> jax.Array:
    """The lecture's hand derivative f′(w) = w⁵ + w − 1."""
    w = jnp.asarray(w)
    return w**5 + w - 1


def sextic_hessian(w: ArrayLike) -> jax.Array:
    """f″(w) = 5w⁴ + 1: sets the critical learning rate 2/f″(w*)."""
    w = jnp.asarray(w)
    return 5 * w**4 + 1


def quadratic(w: ArrayLike) -> jax.Array:
    """The lecture's second example y = w² + 2w + 3 (minimum at w = −1)."""
    w = jnp.asarray(w)
    return w**2 + 2 * w + 3


def quadratic_grad(w: ArrayLike) -> jax.Array:
    """The hand derivative y′ = 2w + 2."""
    w = jnp.asarray(w)
    return 2 * w + 2


def bowl(w: ArrayLike) -> jax.Array:
    """The lecture's y = 2w₁² + w₂², for w of shape (2,).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxdescent.losses import bowl
        >>> float(bowl(jnp.array([-8.0, 7.0]))), jax.grad(bowl)(jnp.array([-8.0, 7.0])).tolist()
        (177.0, [-32.0, 14.0])
    """
    w = jnp.asarray(w)
    return 2 * w[0] ** 2 + w[1] ** 2


def bowl_grad(w: ArrayLike) -> jax.Array:
    """The hand partial derivatives (∂y/∂w₁, ∂y/∂w₂) = (4w₁, 2w₂)."""
    w = jnp.asarray(w)
    return jnp.stack([4 * w[0], 2 * w[1]])


def himmelblau(w: ArrayLike) -> jax.Array:
    """A non-convex 2-D loss with four minima (all with loss 0), w of shape (2,).

    (w₁² + w₂ − 11)² + (w₁ + w₂² − 7)²; minima at (3, 2), (−2.805, 3.131),
    (−3.779, −3.283), (3.584, −1.848).
    """
    w = jnp.asarray(w)
    return (w[0] ** 2 + w[1] - 11) ** 2 + (w[0] + w[1] ** 2 - 7) ** 2


def himmelblau_grad(w: ArrayLike) -> jax.Array:
    """Hand partial derivatives of :func:`himmelblau`."""
    w = jnp.asarray(w)
    a = w[0] ** 2 + w[1] - 11
    b = w[0] + w[1] ** 2 - 7
    return jnp.stack([4 * w[0] * a + 2 * b, 2 * a + 4 * w[1] * b])
