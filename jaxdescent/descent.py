"""One gradient-descent run as a single ``lax.scan``: :func:`gradient_descent` and its :class:`Trajectory`."""

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

from jaxdescent import _validate
from jaxdescent._engine import Static

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


def check_optimizer(optimizer: Optional[OptimizerFactory], hyperparams: Optional[dict] = None,
                    name: str = "optimizer") -> None:
    """Raises unless ``optimizer(learning_rate=..., **hyperparams)`` builds an optax transformation.

    The factory is called once here with the first value of each
    hyperparameter (plain Python, nothing compiles).
    """
    if optimizer is None and not hyperparams:
        return
    if isinstance(optimizer, optax.GradientTransformation) or not (optimizer is None or callable(optimizer)):
        raise TypeError(
            f"{name} must be an optax optimizer factory such as optax.adam or optax.sgd, not {optimizer!r}; "
            "jaxdescent calls it inside the compiled run with learning_rate= (and your hyperparams) as traced "
            "values")
    example = {k: 0.5 if _validate.is_traced(v) or not np.size(v) else np.asarray(v).reshape(-1)[0].item()
               for k, v in (hyperparams or {}).items()}
    try:
        tx = make_optimizer(optimizer, 0.1, example)
    except TypeError as e:
        raise TypeError(f"{name} could not be called with learning_rate= and {sorted(example)}: {e}") from None
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(f"{name}(learning_rate=...) must return an optax.GradientTransformation, got {tx!r}")


def make_optimizer(optimizer: Optional[OptimizerFactory], learning_rate: ArrayLike,
                   hyperparams: Optional[dict] = None) -> optax.GradientTransformation:
    """The one optimizer contract: ``(optimizer or optax.sgd)(learning_rate=α, **hyperparams)``.

    Called inside the traced run, so α and the hyperparameters are traced
    values and new values reuse the compilation. ``optax.sgd`` with no
    momentum is the lecture's rule w := w − α·∇ (bit for bit).
    """
    return (optax.sgd if optimizer is None else optimizer)(learning_rate=learning_rate, **(hyperparams or {}))


def as_params(w0) -> Any:
    """``w0`` as a pytree of float arrays (integers become the default float)."""

    def leaf(x):
        x = jnp.asarray(x)
        return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))

    return jax.tree_util.tree_map(leaf, w0)


def descend(value_and_grad, w0, tx, *, num_steps, watch=None, watch_state=None, record=None, record_every=1,
            stop=None, until=None):
    """The one step loop under every run: evaluate, watch, (record,) update, ``num_steps`` times.

    Every user of the package (one run, a sweep, the step network, a
    researcher's own training function) runs this loop; they differ only in
    what they watch and record.

    Args:
      value_and_grad: ``w -> ((loss, aux), grad)``.
      w0: the start (any pytree); ``tx``: an optax transformation.
      num_steps: updates to make (static).
      watch: ``(t, w, loss, aux, grad, state) -> state``, called at every
        iterate t < num_steps before its update (e.g. the first diverged step).
      watch_state: ``watch``'s initial state.
      record: ``(w, loss, aux, grad) -> pytree`` kept at iterates 0, k, 2k, …,
        ⌊num_steps/k⌋·k for ``k = record_every`` (stacked on a leading axis).
      stop: ``state -> bool``: from the first iterate where it holds, w and the
        optimizer state stop changing (a run that has converged, or is solved).
      until: ``state -> bool``: like ``stop`` (the first iterate where it
        holds is held and returned), and the loop also ends early once it
        holds: a ``lax.while_loop`` over blocks of steps that, under ``vmap``,
        ends when every run has stopped. Not with ``record`` or ``stop``.

    Returns:
      ``(w, watch_state, records)``: the last iterate, the watched state and the
      records (``None`` without ``record``).
    """

    def step(t, carry):
        w, opt_state, state = carry
        (loss, aux), grad = value_and_grad(w)
        if watch is not None:
            state = watch(t, w, loss, aux, grad, state)
        updates, new_opt_state = tx.update(grad, opt_state, w)
        new_w = optax.apply_updates(w, updates)
        if stop is not None:
            keep = stop(state)
            new_w, new_opt_state = jax.tree_util.tree_map(
                lambda old, new: jnp.where(keep, old, new), (w, opt_state), (new_w, new_opt_state))
        return (new_w, new_opt_state, state), (loss, aux, grad)

    carry = (w0, tx.init(w0), watch_state)
    if until is not None:
        if record is not None or stop is not None:
            raise ValueError("descend: until= cannot be combined with record= or stop=")
        stop = until  # a run that has stopped is held by step itself
        return _descend_until(step, carry, until, num_steps)
    if record is None:
        carry = lax.fori_loop(0, num_steps, lambda t, c: step(t, c)[0], carry)
        return carry[0], carry[2], None

    num_blocks = num_steps // record_every

    def block(carry, b):  # the record is of the iterate before its update
        t = b * record_every
        w = carry[0]
        carry, (loss, aux, grad) = step(t, carry)
        carry = lax.fori_loop(t + 1, t + record_every, lambda i, c: step(i, c)[0], carry)
        return carry, record(w, loss, aux, grad)

    carry, records = lax.scan(block, carry, jnp.arange(num_blocks, dtype=jnp.int32))
    (loss, aux), grad = value_and_grad(carry[0])
    last = record(carry[0], loss, aux, grad)
    records = jax.tree_util.tree_map(lambda h, x: jnp.concatenate([h, x[None]]), records, last)
    carry = lax.fori_loop(num_blocks * record_every, num_steps, lambda i, c: step(i, c)[0], carry)
    return carry[0], carry[2], records


STOP_CHECK_EVERY = 32  # until= is tested for the whole chunk every this many steps


def _descend_until(step, carry, until, num_steps):
    """``step`` (which holds a run once ``until`` holds) until every run has stopped or num_steps are done.

    Steps go in blocks of ``STOP_CHECK_EVERY`` (a fixed-length inner loop, as
    fast as the plain one); between blocks a ``while_loop`` ends once ``until``
    holds. Under ``vmap`` that test is "every run of the chunk has stopped",
    made once a block rather than once a step; a stopped run is held by
    ``step`` itself, so the extra steps of its block change nothing.
    """
    block = max(1, min(STOP_CHECK_EVERY, num_steps))
    num_blocks = num_steps // block

    def body(loop):
        b, carry = loop
        return b + 1, lax.fori_loop(0, block, lambda i, c: step(b * block + i, c)[0], carry)

    b0 = jnp.asarray(0, jnp.int32)
    _, carry = lax.while_loop(lambda loop: (loop[0] < num_blocks) & ~until(loop[1][2]), body, (b0, carry))
    carry = lax.fori_loop(num_blocks * block, num_steps, lambda t, c: step(t, c)[0], carry)
    return carry[0], carry[2], None


def _no_aux(loss_fn):
    return jax.value_and_grad(lambda w: (loss_fn(w), None), has_aux=True)


def _trajectory(loss_fn, w0, learning_rate, *, num_steps, optimizer):
    loss_fn, optimizer = loss_fn.value, optimizer.value
    tx = make_optimizer(optimizer, learning_rate)
    _, _, (w, loss, grad) = descend(_no_aux(loss_fn), w0, tx, num_steps=num_steps,
                                    record=lambda w, loss, aux, grad: (w, loss, grad))
    return Trajectory(w, loss, grad)


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
    return _run(Static(loss_fn), w0, jnp.asarray(learning_rate), num_steps=num_steps, optimizer=Static(optimizer))
