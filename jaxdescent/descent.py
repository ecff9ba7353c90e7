"""One gradient-descent run as a single ``lax.scan``: :func:`gradient_descent` and its :class:`Trajectory`."""

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

from jaxdescent import _validate

OptimizerFactory = Callable[..., optax.GradientTransformation]


class Trajectory(NamedTuple):
    """A whole run; every field has a leading axis of length ``num_steps + 1``.

    Index 0 is the start ``w0``; index t is the iterate after t updates.

    Attributes:
      w: the iterates (a pytree shaped like ``w0``, stacked).
      loss: ``loss_fn`` at each iterate.
      grad: the gradient at each iterate (shaped like ``w``).
    """

    w: Any
    loss: jax.Array
    grad: Any


def plain_update(learning_rate: ArrayLike) -> optax.GradientTransformation:
    """The lecture's rule w := w − α·∇ as an optax transformation (no state)."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        scale = lambda g: -jnp.asarray(learning_rate, g.dtype) * g
        return jax.tree_util.tree_map(scale, updates), state

    return optax.GradientTransformation(init_fn, update_fn)


def check_optimizer(optimizer: Optional[OptimizerFactory], name: str = "optimizer") -> None:
    """Raises unless ``optimizer`` is None or an optax factory taking ``learning_rate=``."""
    if optimizer is None:
        return
    if isinstance(optimizer, optax.GradientTransformation) or not callable(optimizer):
        raise TypeError(
            f"{name} must be an optax optimizer factory such as optax.adam or "
            f"functools.partial(optax.sgd, momentum=0.9), not {optimizer!r}; "
            "jaxdescent calls it with learning_rate= so that learning rates stay traced")
    try:
        optax.inject_hyperparams(optimizer)(learning_rate=0.1)
    except TypeError as e:
        raise TypeError(f"{name} could not be called with learning_rate=: {e}") from None


def make_optimizer(optimizer: Optional[OptimizerFactory], learning_rate: ArrayLike) -> optax.GradientTransformation:
    """The transformation a run uses: the plain rule, or ``optimizer`` with a traced learning rate.

    ``optax.inject_hyperparams`` keeps the learning rate in the optimizer state as
    an array, so new learning rates reuse one compilation (optax issue #932).
    """
    if optimizer is None:
        return plain_update(learning_rate)
    return optax.inject_hyperparams(optimizer)(learning_rate=learning_rate)


def as_params(w0) -> Any:
    """``w0`` as a pytree of float arrays (integers become the default float)."""

    def leaf(x):
        x = jnp.asarray(x)
        return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))

    return jax.tree_util.tree_map(leaf, w0)


def _trajectory(loss_fn, w0, learning_rate, *, num_steps, optimizer):
    tx = make_optimizer(optimizer, learning_rate)
    value_and_grad = jax.value_and_grad(loss_fn)

    def step(carry, _):
        w, state = carry
        loss, grad = value_and_grad(w)
        updates, state = tx.update(grad, state, w)
        return (optax.apply_updates(w, updates), state), Trajectory(w, loss, grad)

    (w, _), history = lax.scan(step, (w0, tx.init(w0)), length=num_steps)
    last = Trajectory(w, *value_and_grad(w))
    return jax.tree_util.tree_map(lambda h, x: jnp.concatenate([h, x[None]]), history, last)


_run = jax.jit(_trajectory, static_argnames=("loss_fn", "num_steps", "optimizer"))


def gradient_descent(
    loss_fn: Callable[[Any], jax.Array],
    w0: Any,
    *,
    learning_rate: ArrayLike,
    num_steps: int,
    optimizer: Optional[OptimizerFactory] = None,
) -> Trajectory:
    """Runs gradient descent from ``w0`` for ``num_steps`` updates, as one compiled ``lax.scan``.

    The default update is the lecture's w := w − α·∇loss(w). ``learning_rate`` is
    traced: a new value does not recompile (one compilation per ``loss_fn``,
    shapes, ``num_steps`` and ``optimizer``).

    Args:
      loss_fn: a pure function from parameters to a scalar loss.
      w0: the start, any pytree of arrays (integers are promoted to floats).
      learning_rate: α, a finite number > 0.
      num_steps: how many updates; the trajectory holds ``num_steps + 1`` iterates.
      optimizer: ``None`` for the plain rule, or an optax factory such as
        ``optax.adam`` or ``functools.partial(optax.sgd, momentum=0.9)``,
        called with ``learning_rate=``.

    Returns:
      A :class:`Trajectory`; a run that diverges holds inf/nan, it does not raise.

    Examples:
      >>> from jaxdescent import gradient_descent
      >>> from jaxdescent.losses import sextic
      >>> path = gradient_descent(sextic, 1.9, learning_rate=0.01, num_steps=2)
      >>> [round(float(w), 4) for w in path.w]
      [1.9, 1.6434, 1.5171]
    """
    num_steps = _validate.num_steps(num_steps)
    _validate.learning_rate(learning_rate)
    if not _validate.is_traced(learning_rate) and np.ndim(learning_rate) != 0:
        raise ValueError(
            f"learning_rate must be a scalar, got shape {np.shape(learning_rate)}; "
            "use jaxdescent.sweep for many learning rates")
    check_optimizer(optimizer)
    _validate.finite_tree(w0, "w0")
    w0 = as_params(w0)
    _validate.scalar_loss(loss_fn, w0)
    return _run(loss_fn, w0, jnp.asarray(learning_rate), num_steps=num_steps, optimizer=optimizer)
