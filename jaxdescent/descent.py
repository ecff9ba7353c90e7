"""One gradient-descent run as a single ``lax.scan``: :func:`gradient_descent` and its :class:`Trajectory`."""

import functools
import inspect
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

from jaxdescent import _validate
from jaxdescent._curvature import hvp_fn, lanczos
from jaxdescent._engine import Static

OptimizerFactory = Callable[..., optax.GradientTransformation]
SHARPNESS_ITERATIONS = 20  # Lanczos steps per record with track_sharpness (warm-started)


class Trajectory(NamedTuple):
    """A whole run, or every k-th iterate of it; every field has one entry per recorded iterate.

    Index 0 is the start ``w0``. With ``record_every=1`` (the default) index t
    is the iterate after t updates (``num_steps + 1`` entries); with
    ``record_every=k`` the entries are iterates 0, k, 2k, …, ⌊n/k⌋·k and then
    n = ``num_steps`` itself when k does not divide n (see :func:`recorded_steps`).

    Attributes:
      w: the iterates (a pytree shaped like ``w0``, stacked).
      loss: ``loss_fn`` at each iterate.
      grad: the gradient at each iterate (shaped like ``w``).
      sharpness: ``None``, or with ``track_sharpness=True`` the top Hessian
        eigenvalue at each recorded iterate (:func:`jaxdescent.sharpness`).
    """

    w: Any
    loss: jax.Array
    grad: Any
    sharpness: Optional[jax.Array] = None


def recorded_steps(num_steps: int, record_every: int = 1) -> np.ndarray:
    """The iterate indices a :class:`Trajectory` holds: 0, k, 2k, …, and ``num_steps`` (always last).

    Examples:
      >>> from jaxdescent.descent import recorded_steps
      >>> recorded_steps(10, 4).tolist(), recorded_steps(8, 4).tolist()
      ([0, 4, 8, 10], [0, 4, 8])
    """
    steps = np.arange(0, num_steps + 1, record_every)
    return steps if steps[-1] == num_steps else np.append(steps, num_steps)


# The ranges of optax's own hyperparameters, by name: outside them its update is NaN or meaningless, with no
# error (Adam's bias correction divides by 1 - b1**t, so b1 = 1 gives 0/0; a negative eps can divide by 0).
_OPTAX_RANGES = {
    "b1": (lambda a: (a >= 0) & (a < 1), "in [0, 1)"),
    "b2": (lambda a: (a >= 0) & (a < 1), "in [0, 1)"),
    "decay": (lambda a: (a >= 0) & (a <= 1), "in [0, 1]"),
    "momentum": (lambda a: a >= 0, ">= 0"),
    "eps": (lambda a: a >= 0, ">= 0"),
    "eps_root": (lambda a: a >= 0, ">= 0"),
    "weight_decay": (lambda a: a >= 0, ">= 0"),
    "learning_rate": (lambda a: a > 0, "> 0"),
}


def _numbers(value) -> Optional[np.ndarray]:
    """``value`` as a float64 array when it is concrete real numbers (not booleans); else None (not checked)."""
    if value is None or isinstance(value, (bool, np.bool_, str, bytes)) or callable(value) \
            or _validate.is_traced(value):
        return None
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        return None
    return a.astype(np.float64)


def check_optax_numbers(values: dict, label: Callable[[str], str], *, optax_names: bool) -> None:
    """Raises, naming ``label(key)``, for a non-finite number among ``values`` (name → number or array), and with
    ``optax_names`` for one of optax's hyperparameters out of its range (:data:`_OPTAX_RANGES`).

    Values that are not concrete numbers (traced, callables such as schedules, flags, ``None``) pass."""
    for key, value in values.items():
        a = _numbers(value)
        if a is None:
            continue
        if not np.all(np.isfinite(a)):
            raise _validate.InvalidArgument(
                f"{label(key)} must be finite, got {a[~np.isfinite(a)].ravel()[:3].tolist()}")
        if optax_names and key in _OPTAX_RANGES:
            ok, rule = _OPTAX_RANGES[key]
            if not np.all(ok(a)):
                raise _validate.InvalidArgument(
                    f"{label(key)} must be {rule} (optax's {key}), got {a[~ok(a)].ravel()[:3].tolist()}")


def _unwrap(factory):
    """A factory's function under its ``functools.partial`` layers, and the numbers they bind: ``(func, {name:
    value})`` (positional arguments named by the function's signature where it can be read)."""
    bound, layers = {}, []
    while isinstance(factory, functools.partial):
        layers.append(factory)
        factory = factory.func
    for layer in reversed(layers):  # the outer partial's arguments come after (and override) the inner's
        args = list(layer.args)
        if args:
            try:
                names = [n for n in inspect.signature(factory).parameters][len(bound):]
            except (TypeError, ValueError):
                names = []
            bound.update({n: v for n, v in zip(names, args)})
        bound.update(layer.keywords)
    return factory, bound


def _from_optax(func) -> bool:
    return func is None or str(getattr(func, "__module__", "")).startswith("optax")


def check_transformation(tx: optax.GradientTransformation, name: str = "optimizer") -> None:
    """Raises (naming ``name``) for a non-finite or out-of-range hyperparameter that ``tx`` shows: the values of an
    ``optax.inject_hyperparams`` state, read from ``tx.init``'s jaxpr (traced abstractly, nothing compiles).

    An already built ``optax.adam(float("nan"))`` keeps its numbers in closures: no check can read them, and its
    run's iterates are NaN.
    """
    try:
        closed, shape = jax.make_jaxpr(tx.init, return_shape=True)(jax.ShapeDtypeStruct((), jnp.float32))
    except Exception:  # an init that needs other parameters: nothing to read
        return
    outs = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(shape), closed.jaxpr.outvars)
    injected = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)
    states = [s for s in jax.tree_util.tree_leaves(outs, is_leaf=lambda s: isinstance(s, injected))
              if isinstance(s, injected)]
    for state in states:  # a hyperparameter computed in init (a schedule's value) is a variable, not a literal
        values = {k: getattr(v, "val", None) for k, v in state.hyperparams.items()}
        check_optax_numbers(values, lambda k: f"{name}: its hyperparameter {k}", optax_names=True)


def check_optimizer(optimizer: Optional[OptimizerFactory], hyperparams: Optional[dict] = None,
                    name: str = "optimizer") -> None:
    """Raises unless ``optimizer(learning_rate=..., **hyperparams)`` builds an optax transformation.

    The factory is called once here with the first value of each
    hyperparameter (plain Python, nothing compiles). The numbers a
    ``functools.partial`` binds must be finite, and for an optax factory
    its known hyperparameters (``b1``, ``b2``, ``momentum``, ``eps`` …),
    bound or swept in ``hyperparams``, must be in range.
    """
    if optimizer is None and not hyperparams:
        return
    if isinstance(optimizer, optax.GradientTransformation) or not (optimizer is None or callable(optimizer)):
        raise TypeError(
            f"{name} must be an optax optimizer factory such as optax.adam or optax.sgd, not {optimizer!r}; "
            "jaxdescent calls it inside the compiled run with learning_rate= (and your hyperparams) as traced "
            "values")
    func, bound = _unwrap(optimizer)
    check_optax_numbers(bound, lambda k: f"{name}: its {k}", optax_names=_from_optax(func))
    check_optax_numbers({k: v for k, v in (hyperparams or {}).items()}, lambda k: f"hyperparams[{k!r}]",
                        optax_names=_from_optax(func))
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
    momentum is the lecture's rule w := w − α·∇ (bit for bit). A traced
    α that is not finite and > 0 (no check can see it) becomes NaN, so the
    run's iterates are NaN rather than a plausible wrong trajectory.
    """
    if _validate.is_traced(learning_rate):  # unchecked: an invalid value makes the run NaN, never plausible
        learning_rate = jnp.where((learning_rate > 0) & jnp.isfinite(learning_rate), learning_rate, jnp.nan)
    return (optax.sgd if optimizer is None else optimizer)(learning_rate=learning_rate, **(hyperparams or {}))


def _param_dtype(x) -> np.dtype:
    """The dtype :func:`as_params` gives a leaf, without building it."""
    dtype = jax.dtypes.canonicalize_dtype(x.dtype if hasattr(x, "dtype") else np.result_type(x))
    return np.dtype(dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float))


def as_params(w0) -> Any:
    """``w0`` as a pytree of float arrays (integers become the default float)."""

    def leaf(x):
        x = jnp.asarray(x)
        return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))

    return jax.tree_util.tree_map(leaf, w0)


def descend(value_and_grad, w0, tx, *, num_steps, watch=None, watch_state=None, record=None, record_every=1,
            stop=None, record_state=None, record_last=False, until=None):
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
      record_state: when given, ``record`` is ``(w, loss, aux, grad, state) ->
        (pytree, state)`` and this is its first state, carried from record to
        record (e.g. a warm start for an eigenvector).
      record_last: also record the last iterate ``num_steps`` when k does not divide it.
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
        carry = _loop(step, carry, 0, num_steps)
        return carry[0], carry[2], None

    keep_record = record
    if record_state is None:
        keep_record = lambda w, loss, aux, grad, s: (record(w, loss, aux, grad), s)  # noqa: E731
    num_blocks = num_steps // record_every

    def block(carry, b):  # the record is of the iterate before its update
        carry, s = carry
        t = b * record_every
        w = carry[0]
        carry, (loss, aux, grad) = step(t, carry)
        out, s = keep_record(w, loss, aux, grad, s)
        carry = lax.fori_loop(t + 1, t + record_every, lambda i, c: step(i, c)[0], carry)
        return (carry, s), out

    def append(records, w, s):
        (loss, aux), grad = value_and_grad(w)
        last, s = keep_record(w, loss, aux, grad, s)
        return jax.tree_util.tree_map(lambda h, x: jnp.concatenate([h, x[None]]), records, last), s

    (carry, s), records = lax.scan(block, (carry, record_state), jnp.arange(num_blocks, dtype=jnp.int32))
    records, s = append(records, carry[0], s)
    carry = lax.fori_loop(num_blocks * record_every, num_steps, lambda i, c: step(i, c)[0], carry)
    if record_last and num_steps % record_every:
        records, s = append(records, carry[0], s)
    return carry[0], carry[2], records


def _max_identity(dtype):
    """The value ``m`` with ``max(m, x) == x`` for every ``x`` of ``dtype`` (NaN included), or None."""
    if jnp.issubdtype(dtype, jnp.floating):
        return -np.inf
    if jnp.issubdtype(dtype, jnp.integer):
        return jnp.iinfo(dtype).min
    return False if dtype == jnp.bool_ else None


@jax.custom_jvp
def _one_pass(leaves):
    """``leaves`` (of one shape) unchanged, as one instruction: XLA's CPU backend then emits them in one loop.

    XLA on CPU gives each output of a step its own loop over the runs, and
    each loop recomputes what they share: the loss and the gradient, once for
    the update and again for each check. A variadic ``reduce`` is one
    instruction with several outputs. Each leaf x becomes ``max(x, m)`` over
    a trailing axis of 2, with ``m`` the identity of ``max`` (exact, NaN
    included); ``m`` passes through a barrier, so XLA cannot see that the
    reduce does nothing and remove it.
    """
    shape = jnp.shape(leaves[0])
    ids = lax.optimization_barrier([jnp.full(shape, _max_identity(x.dtype), x.dtype) for x in leaves])
    inits = [jnp.asarray(_max_identity(x.dtype), x.dtype) for x in leaves]
    return lax.reduce([jnp.stack([x, m], axis=-1) for x, m in zip(leaves, ids)], inits,
                      lambda a, b: [jnp.maximum(p, q) for p, q in zip(a, b)], (len(shape),))


_one_pass.defjvp(lambda primals, tangents: (primals[0], tangents[0]))  # the identity


def _loop(step, carry, start, stop):
    """``carry = step(t, carry)[0]`` for t in [start, stop): the step loop.

    On CPU, when the iterate and the watched state are leaves of one shape
    (a run with one parameter, such as the sextic's), each step's new values
    go through :func:`_one_pass` and two steps make one loop iteration (so
    XLA reads one buffer and writes the other instead of copying), 1.4x
    faster on the sweep benchmark. Other runs (vectors: one loop per shape
    would not share the loss; the optimizer's state: in a trial, not kept,
    Adam's made the sweep ~10x slower) and other platforms keep the plain loop. Either loop computes
    the same steps; as between chunk sizes, XLA may contract ``a*b + c``
    into FMAs differently in each, so the last bits can differ between them.
    """
    plain = lambda carry: lax.fori_loop(start, stop, lambda t, c: step(t, c)[0], carry)  # noqa: E731
    leaves = jax.tree_util.tree_leaves((carry[0], carry[2]))
    if len(leaves) < 2 or len({jnp.shape(x) for x in leaves}) > 1 or any(
            _max_identity(x.dtype) is None for x in leaves):
        return plain(carry)

    def fused_step(t, c):
        w, opt_state, state = step(t, c)[0]
        leaves, treedef = jax.tree_util.tree_flatten((w, state))
        w, state = jax.tree_util.tree_unflatten(treedef, _one_pass(leaves))
        return w, opt_state, state

    fused = lambda carry: lax.fori_loop(start, stop, fused_step, carry, unroll=2)  # noqa: E731
    return lax.platform_dependent(carry, cpu=fused, default=plain)


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
        return b + 1, _loop(lambda i, c: step(b * block + i, c), carry, 0, block)

    b0 = jnp.asarray(0, jnp.int32)
    _, carry = lax.while_loop(lambda loop: (loop[0] < num_blocks) & ~until(loop[1][2]), body, (b0, carry))
    carry = lax.fori_loop(num_blocks * block, num_steps, lambda t, c: step(t, c)[0], carry)
    return carry[0], carry[2], None


def _no_aux(loss_fn):
    return jax.value_and_grad(lambda w: (loss_fn(w), None), has_aux=True)


def _trajectory(loss_fn, w0, learning_rate, *, num_steps, optimizer, record_every=1, track_sharpness=False):
    loss_fn, optimizer = loss_fn.value, optimizer.value
    tx = make_optimizer(optimizer, learning_rate)
    if not track_sharpness:
        _, _, (w, loss, grad) = descend(_no_aux(loss_fn), w0, tx, num_steps=num_steps, record_every=record_every,
                                        record=lambda w, loss, aux, grad: (w, loss, grad), record_last=True)
        return Trajectory(w, loss, grad)

    def record(w, loss, aux, grad, v):  # Lanczos, warm-started from the last record's top eigenvector
        _, hvp, _ = hvp_fn(loss_fn, w)
        top, v = lanczos(hvp, v, SHARPNESS_ITERATIONS)
        return (w, loss, grad, top), v

    flat = jax.flatten_util.ravel_pytree(w0)[0]
    v0 = jax.random.normal(jax.random.PRNGKey(0), flat.shape, flat.dtype)
    _, _, (w, loss, grad, top) = descend(_no_aux(loss_fn), w0, tx, num_steps=num_steps, record_every=record_every,
                                         record=record, record_state=v0, record_last=True)
    return Trajectory(w, loss, grad, top)


_run = jax.jit(_trajectory, static_argnames=("loss_fn", "num_steps", "optimizer", "record_every", "track_sharpness"))


def _check_trajectory_size(leaves, num_steps, record_every, track_sharpness) -> None:
    """Refuses a trajectory that cannot fit: every recorded iterate keeps w, its gradient and its loss.

    Counted twice: the last iterate is appended to the recorded ones (a copy), and a read copies to the host.
    """
    records = len(range(0, num_steps + 1, record_every)) + (num_steps % record_every != 0)
    params = sum(math.prod(np.shape(x)) * np.dtype(x.dtype).itemsize for x in leaves)
    loss = np.dtype(jnp.result_type(*leaves)).itemsize
    per_record = 2 * params + loss * (2 if track_sharpness else 1)
    _validate.check_memory(
        "num_steps", 2 * records * per_record,
        f"a trajectory of {records:,} recorded iterates of {params:,} bytes of parameters (w and its gradient "
        "each)", "record fewer iterates (a larger record_every), fewer num_steps, or use jaxdescent.sweep, "
        "which keeps only the last iterate")


def gradient_descent(
    loss_fn: Callable[[Any], jax.Array],
    w0: Any,
    *,
    learning_rate: ArrayLike,
    num_steps: int,
    optimizer: Optional[OptimizerFactory] = None,
    record_every: int = 1,
    track_sharpness: bool = False,
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
      record_every: k >= 1 keeps iterates 0, k, 2k, …, and ``num_steps`` (the
        last iterate is always kept): memory O(num_steps / k), e.g. for a
        network trained for 10⁴ steps. The run itself is the same.
      track_sharpness: also record the top Hessian eigenvalue at each kept
        iterate (field ``sharpness``): 20 Lanczos steps on Hessian-vector
        products, each started from the previous record's eigenvector, so
        close to :func:`jaxdescent.sharpness` at a fraction of its cost.

    Returns:
      A :class:`Trajectory`; a run that diverges holds inf/nan, it does not raise.

    Examples:
      >>> from jaxdescent import gradient_descent
      >>> from jaxdescent.losses import sextic
      >>> path = gradient_descent(sextic, 1.9, learning_rate=0.01, num_steps=2)
      >>> [round(float(w), 4) for w in path.w]
      [1.9, 1.6434, 1.5171]
      >>> import numpy as np
      >>> from jaxdescent.losses import bowl
      >>> path = gradient_descent(bowl, np.ones(2), learning_rate=0.1, num_steps=10, record_every=4,
      ...                         track_sharpness=True)
      >>> path.w.shape, [round(float(s), 4) for s in path.sharpness]  # iterates 0, 4, 8, 10
      ((4, 2), [4.0, 4.0, 4.0, 4.0])
    """
    num_steps = _validate.num_steps(num_steps)
    _validate.learning_rate(learning_rate)
    if not _validate.is_traced(learning_rate) and np.ndim(learning_rate) != 0:
        raise ValueError(
            f"learning_rate must be a scalar, got shape {np.shape(learning_rate)}; "
            "use jaxdescent.sweep for many learning rates")
    check_optimizer(optimizer)
    record_every = _validate.num_steps(record_every, "record_every")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    if not isinstance(track_sharpness, bool):
        raise TypeError(f"track_sharpness must be True or False, got {track_sharpness!r}")
    _validate.finite_tree(w0, "w0")
    params = [jax.ShapeDtypeStruct(np.shape(x), _param_dtype(x)) for x in jax.tree_util.tree_leaves(w0)]
    for dtype in dict.fromkeys(x.dtype for x in params):  # the run's float: the parameters', even with x64 on
        _validate.learning_rate(learning_rate, dtype=dtype)
    _check_trajectory_size(params, num_steps, record_every, track_sharpness)
    w0 = as_params(w0)
    _validate.scalar_loss(loss_fn, w0)
    return _run(Static(loss_fn), w0, jnp.asarray(learning_rate), num_steps=num_steps, optimizer=Static(optimizer),
                record_every=record_every, track_sharpness=track_sharpness)
