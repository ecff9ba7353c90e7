"""Many runs at once: gradient descent over learning rates × optimizer hyperparameters × start points.

:func:`sweep` runs gradient descent for the outer product of a 1-D array of
learning rates, any optimizer hyperparameters (``hyperparams``) and a batch
of start points and returns a labelled :class:`SweepResult` indexed
``[i_learning_rate, i_hyperparam..., i_w0, ...]``. :func:`sweep_pairs` runs a
flat list of (learning rate, start point) pairs. Both are thin users of the
engine (:func:`jaxdescent.sweep_fn`'s runner) and of the one step loop
(:func:`jaxdescent.descent.descend`).

How it runs:

* Learning rates, hyperparameters and start points are traced: one
  compilation per (``loss_fn``, optimizer, shapes, ``num_steps`` and the static
  keywords); a fresh ``functools.partial`` with equal arguments reuses it.
* Divergence is a result, never an exception: a run whose iterate or loss
  becomes non-finite, or whose iterate leaves the box ``|w_i| <=
  divergence_bound`` (default ``1e10``), records the first such step in
  ``diverged_step`` and keeps iterating in its own slot (its values become
  inf/nan there); no other run is affected.
* Convergence: ``converged_step`` is the first step whose gradient has
  Euclidean norm below ``grad_tol`` (default ``1e-4``), over all leaves.
* Bounded memory: the runs are cut into chunks of ``chunk_size`` runs
  (``lax.map(..., batch_size=chunk_size)`` over a vmapped run), so a step only
  holds O(chunk) state; a history, if asked for, holds one loss every
  ``record_every`` steps.
* Devices and hosts: the run axis is sharded over ``devices`` (default: all
  of ``jax.devices()``, i.e. every device of every process after
  ``jax.distributed.initialize``) with ``jax.shard_map``. With several
  processes every process passes the same arguments and receives the whole
  result.
* Bit-identity: for a given ``chunk_size``, a run gives the same bits on
  any number of devices or processes and whether or not ``out=`` saves it in
  pieces, for every loss and optimizer: the chunk (the width every run is
  vmapped at) is ``min(chunk_size, number of runs)``, whatever the devices
  and pieces (``tests/test_bit_identity.py``), except that ``final_loss``
  (evaluated once after the step loop) can differ by the rounding of its
  terms between a run saved in pieces and one in memory. The last bits can change with
  (1) ``chunk_size`` itself, or the grid's size when it is below
  ``chunk_size``: XLA contracts ``a*b + c`` into fused multiply-adds
  according to how it fuses the program at that width (on x86 CPUs,
  ``XLA_FLAGS=--xla_cpu_max_isa=AVX``, no FMA and slower, makes chunk sizes
  agree too); (2) one device against several, found for Adam on a small MLP
  (one device is compiled without XLA's SPMD partitioner): 15 other
  loss × optimizer pairs agree there too.

The fast path on CPU: XLA's default CPU runtime runs a loop of many small
steps as one runtime call per step (several times slower than a C loop).
Importing jaxdescent before JAX has started fixes that for the whole process
(:mod:`jaxdescent._xla`: the small-while-loop flag in ``XLA_FLAGS``;
``JAXDESCENT_CONFIGURE_XLA=0`` turns it off). XLA runs one program on one
core, so on CPU the engine shares a sweep's calls (a chunk each) among one
thread per core (``_engine.cpu_threads``; a run with a
library call such as ``eigh`` stays on one thread, see
``_engine._library_calls``); the CPU is not split into devices. If JAX had
started first, the first CPU sweep warns once; :func:`use_fast_cpu_flags` or ``XLA_FLAGS`` set
to :func:`fast_cpu_flags` in the environment are the manual ways. A run with one
parameter makes each step one loop over its chunk (``descent._loop``). On GPU and TPU
none of this applies.
"""

import functools
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxdescent import _engine, _validate, _xla
from jaxdescent.descent import OptimizerFactory, _no_aux, check_optimizer, descend, make_optimizer

DIVERGENCE_BOUND = 1e10
GRAD_TOL = 1e-4
NEVER = np.iinfo(np.int32).max  # a step counter's value until its step is found (returned as -1)
CHUNK_SIZE = _engine.CHUNK_SIZE
ACCELERATOR_CHUNK_SIZE = _engine.ACCELERATOR_CHUNK_SIZE

class SweepResult(NamedTuple):
    """The outcome of every run; each field has the run axes first.

    For :func:`sweep` the run axes are ``[i_learning_rate, i_w0]``; for
    :func:`sweep_pairs` a single ``[i_run]``.

    Attributes:
      final_w: the last iterate, shaped like one start point (a pytree).
      final_loss: ``loss_fn(final_w)``.
      diverged: ``diverged_step >= 0``.
      diverged_step: the first iterate index t (0 is the start) at which the
        iterate or its loss is non-finite or some ``|w_i| > divergence_bound``;
        -1 if never.
      converged_step: the first iterate index t at which the gradient's
        Euclidean norm is below ``grad_tol``; -1 if never. A run can converge
        and later diverge (a too-large step overshoots the minimum).
      loss_history: ``None``, or with ``record_every=k`` the losses at
        iterates 0, k, 2k, …, ⌊num_steps/k⌋·k on a last axis.
      coords: the labels (:class:`jaxdescent.Coords`): ``learning_rate``, each
        hyperparameter, ``w0`` (for :func:`sweep_pairs` all along ``"point"``).
        A pytree like the rest, so results pass through ``jit`` and ``vmap``.
    """

    final_w: Any
    final_loss: jax.Array
    diverged: jax.Array
    diverged_step: jax.Array
    converged_step: jax.Array
    loss_history: Optional[jax.Array] = None
    coords: Optional[_engine.Coords] = None

    @property
    def axes(self) -> tuple:
        """The run axes in order: ``("learning_rate", *hyperparams, "w0")``."""
        return self.coords.axes

    def _table(self) -> dict:
        return {"final_loss": self.final_loss, "diverged": self.diverged, "diverged_step": self.diverged_step,
                "converged_step": self.converged_step, "final_w": self.final_w}

    def columns(self, rows: Optional[slice] = None) -> dict:
        """Flat columns for the runs in ``rows``: one per axis, then the results (see :meth:`to_pandas`)."""
        return _engine.columns(self.coords, self._table(), rows)

    def to_pandas(self):
        """A ``pandas.DataFrame`` with a row per run: a column per axis (``w0`` or ``w0_0``, ``w0_1``, … for
        vector start points), then ``final_loss``, ``diverged``, ``diverged_step``, ``converged_step`` and
        ``final_w`` (``final_w_0``, … for vectors)."""
        return _engine.to_pandas(self.coords, self._table())

    def to_xarray(self):
        """An ``xarray.Dataset`` indexed by the run axes (the history too, when recorded)."""
        table = self._table() | ({} if self.loss_history is None else {"loss_history": self.loss_history})
        return _engine.to_xarray(self.coords, table)


def fast_cpu_flags() -> str:
    """The XLA flags of the fast CPU path, as one ``XLA_FLAGS`` string."""
    return " ".join(_xla.fast_flags())


def use_fast_cpu_flags() -> None:
    """Appends :func:`fast_cpu_flags` to ``XLA_FLAGS``; call before JAX starts its backend.

    Importing jaxdescent first already sets the step-loop flag; this adds the
    vector-width flag for every program of the process and works with
    ``JAXDESCENT_CONFIGURE_XLA=0``.

    Raises:
      RuntimeError: if a JAX backend may already exist (then the flags would be
        ignored), including when this JAX cannot say.
    """
    if _xla._backend_started(jax):
        raise RuntimeError(
            "use_fast_cpu_flags() must run before JAX initialises its backend "
            "(before the first jax array or jax.devices()); set "
            f"XLA_FLAGS='{fast_cpu_flags()}' in the environment instead")
    _xla._add_flags(_xla.fast_flags())


def _run(hp, key, *, loss_fn, optimizer, hyperparams, num_steps, record_every, divergence_bound, grad_tol,
         stop_early=False):
    """One run, written for a single point ``hp`` (learning rate, hyperparameters, start point)."""
    del key
    w0 = hp["w0"]
    tx = make_optimizer(optimizer, hp["learning_rate"], {name: hp[name] for name in hyperparams})
    value_and_grad = _no_aux(loss_fn)

    def bound(x):
        # abs(x) <= bound is False for NaN and inf, so one comparison tests both.
        return jnp.asarray(min(divergence_bound, float(jnp.finfo(x.dtype).max)), x.dtype)

    def watch(t, w, loss, aux, grad, state):
        diverged_step, converged_step = state
        bad = ~jnp.isfinite(loss)
        for x in jax.tree_util.tree_leaves(w):
            bad = bad | ~jnp.all(jnp.abs(x) <= bound(x))
        grad_sq = sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grad))
        small = grad_sq < jnp.asarray(grad_tol, grad_sq.dtype) ** 2
        # The first step is the least one: a min keeps it (NEVER, the largest int32, until then). One
        # instruction fewer per counter and step than testing "not yet set" (-1) before the select.
        return jnp.minimum(diverged_step, jnp.where(bad, t, NEVER)), jnp.minimum(converged_step, jnp.where(small, t, NEVER))

    never = jnp.asarray(NEVER, jnp.int32)
    record = (lambda w, loss, aux, grad: loss) if record_every else None
    until = (lambda state: jnp.minimum(*state) < NEVER) if stop_early else None
    w, state, history = descend(value_and_grad, w0, tx, num_steps=num_steps, watch=watch, watch_state=(never, never),
                                record=record, record_every=max(record_every, 1), until=until)
    (loss, _), grad = value_and_grad(w)
    diverged_step, converged_step = (jnp.where(s == NEVER, -1, s) for s in watch(num_steps, w, loss, None, grad, state))
    return SweepResult(w, loss, diverged_step >= 0, diverged_step, converged_step, history)


def _check_settings(num_steps, optimizer, hyperparams, record_every, divergence_bound, grad_tol, chunk_size,
                    stop_early=False, dtypes=()):
    num_steps = _validate.num_steps(num_steps)  # at most NEVER - 1: steps are counted in int32
    check_optimizer(optimizer, hyperparams)
    record_every = _validate.num_steps(record_every, "record_every")
    if not isinstance(stop_early, (bool, np.bool_)):
        raise TypeError(f"stop_early must be True or False, got {stop_early!r}")
    if stop_early and record_every:
        raise ValueError("stop_early=True cannot record a loss history (record_every > 0): a stopped run has no "
                         "losses after its stop step; use one or the other")
    if chunk_size is not None and _validate.num_steps(chunk_size, "chunk_size") < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for name, value in (("divergence_bound", divergence_bound), ("grad_tol", grad_tol)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0:
            raise _validate.InvalidArgument(f"{name} must be a number > 0 (inf allowed), got {value!r}")
    _check_grad_tol(grad_tol, dtypes)
    return num_steps, record_every, float(divergence_bound), float(grad_tol), chunk_size


def _check_grad_tol(grad_tol, dtypes) -> None:
    """Raises unless ``grad_tol²`` is a normal number in the float the runs test convergence in.

    The test is ``|grad|² < grad_tol²`` in the dtype of ``|grad|²``: w0's float
    (its leaves' common type), not JAX's default float. A ``grad_tol²`` that is
    subnormal or 0 there never holds (XLA flushes subnormals to 0): float16
    start points cannot test the default 1e-4 (1e-8 is below float16's
    smallest normal number, 6.1e-5), and a run would report never converging.
    """
    dtype = np.dtype(jnp.result_type(*dtypes) if dtypes else jax.dtypes.canonicalize_dtype(float))
    tiny = float(np.finfo(dtype).tiny)
    if grad_tol ** 2 < tiny:
        raise _validate.InvalidArgument(
            f"grad_tol={grad_tol!r} squared underflows {dtype}, w0's float, in which the runs test "
            f"|grad|^2 < grad_tol^2: the test would never hold and no run would converge; use grad_tol >= "
            f"{np.sqrt(tiny):.3g}, or a wider float for w0 (float32, or float64 with "
            "jax.config.update('jax_enable_x64', True))")


def _as_batch(w0) -> Any:
    """``w0`` as host arrays of the canonical float dtype (integers become the default float)."""

    def leaf(x):
        if _validate.is_traced(x):
            return x.astype(jnp.result_type(float)) if not jnp.issubdtype(x.dtype, jnp.floating) else x
        x = np.asarray(x)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else jnp.result_type(float)
        return x.astype(jax.dtypes.canonicalize_dtype(dtype))

    return jax.tree_util.tree_map(leaf, w0)


def _check_batch(loss_fn, w0, name="w0") -> int:
    """Raises unless ``w0`` is a batch of start points ``loss_fn`` maps to scalars; returns its size."""
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {loss_fn!r}")
    _validate.finite_tree(w0, name)
    leaves = jax.tree_util.tree_leaves(w0)
    shapes = [np.shape(x) for x in leaves]
    if any(len(s) == 0 for s in shapes):
        raise ValueError(f"{name} must have a leading batch axis (one entry per start point), got shapes {shapes}")
    sizes = {s[0] for s in shapes}
    if len(sizes) != 1:
        raise ValueError(f"{name} leaves must share the leading batch axis, got shapes {shapes}")
    (size,) = sizes
    if size == 0:
        raise ValueError(f"{name} is empty: no start points")
    one = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x)[1:], x.dtype), w0)
    try:
        _validate.scalar_loss(loss_fn, one)
    except TypeError as e:
        raise ValueError(
            f"{name} does not fit loss_fn: one start point has shapes "
            f"{[s[1:] for s in shapes]} (the leading axis of {name} indexes start points; "
            f"for a single start point use w0[None]): {e}") from None
    return size


def _check_learning_rates(learning_rate, name="learning_rate"):
    _validate.learning_rate(learning_rate, name)
    if np.ndim(learning_rate) != 1:
        raise ValueError(f"{name} must be a 1-D array of learning rates, got shape {np.shape(learning_rate)}")


def _check_in_dtypes(learning_rate, hyperparams, w0) -> None:
    """Raises unless the learning rates (normal numbers) and hyperparameters survive the cast to the runs' float.

    The runs' float is w0's (after :func:`_as_batch`): float16 start points run in float16, and with x64 on
    float32 start points still run in float32.
    """
    for dtype in dict.fromkeys(x.dtype for x in jax.tree_util.tree_leaves(w0)):
        _validate.learning_rate(learning_rate, dtype=dtype)
        for name, values in hyperparams.items():
            if not _validate.is_traced(values):
                _validate.representable(values, f"hyperparams[{name!r}]", dtype)


def _check_hyperparams(hyperparams) -> dict:
    """``hyperparams`` as name → 1-D array; traced values pass the value checks.

    Values are numbers cast to the runs' float: booleans are refused (a flag
    such as ``nesterov`` is configuration, not a traced value), and integers
    are taken as floats.
    """
    if hyperparams is None:
        return {}
    if not isinstance(hyperparams, Mapping):
        raise TypeError(f"hyperparams must be a dict name -> 1-D array, got {hyperparams!r}")
    checked = {}
    for name, values in hyperparams.items():
        if name in ("learning_rate", "w0", "seed", "point") or not (isinstance(name, str) and name.isidentifier()):
            raise ValueError(f"hyperparams: {name!r} cannot name a hyperparameter (reserved or not an identifier)")
        if not _validate.is_traced(values):
            if _validate.has_bool(values):
                raise _validate.InvalidArgument(
                    f"hyperparams[{name!r}] holds booleans ({values!r}): a boolean flag is not a traced "
                    "hyperparameter (every value is cast to the runs' float, True to 1.0); pass it in the "
                    f"optimizer instead, e.g. optimizer=functools.partial(optax.sgd, {name}=True), and sweep "
                    "True and False in two calls")
            try:
                a = np.asarray(values)
            except (TypeError, ValueError):
                a = None
            if a is not None and np.issubdtype(a.dtype, np.integer):  # cast to the runs' float like the rest
                values = a.astype(np.float64)
        checked[name] = _engine._check_axes({name: values}, True, what="hyperparams")[0][1]
    return checked


def _runs(loss_fn, coords, *, optimizer, hyperparams, num_steps, record_every, divergence_bound, grad_tol,
          chunk_size, devices, out, piece_runs=None, progress=True, stop_early=False):
    """Validated arguments → the engine; the result labelled with ``coords``."""
    dtypes = {x.dtype for x in jax.tree_util.tree_leaves(coords["w0"])}
    num_steps, record_every, divergence_bound, grad_tol, chunk_size = _check_settings(
        num_steps, optimizer, hyperparams, record_every, divergence_bound, grad_tol, chunk_size, stop_early, dtypes)
    _engine.check_counts(piece_runs=piece_runs)
    _engine.check_out_devices(out, devices)
    _xla.hint_once((jax.devices() if devices is None else list(devices) or jax.devices())[0].platform)
    run = functools.partial(_run, loss_fn=loss_fn, optimizer=optimizer, hyperparams=tuple(hyperparams),
                            num_steps=num_steps, record_every=record_every, divergence_bound=divergence_bound,
                            grad_tol=grad_tol, stop_early=bool(stop_early))
    result = _engine.run_grid(run, coords, key=jax.random.key(0), chunk_size=chunk_size, devices=devices, out=out,
                              piece_runs=piece_runs, progress=progress)
    return result._replace(coords=coords)


def _cast(values, dtype):
    return values.astype(dtype) if _validate.is_traced(values) else np.asarray(values).astype(dtype)


def sweep_pairs(
    loss_fn: Callable[[Any], jax.Array],
    *,
    w0: Any,
    learning_rate: ArrayLike,
    num_steps: int,
    optimizer: Optional[OptimizerFactory] = None,
    hyperparams: Optional[Mapping[str, ArrayLike]] = None,
    record_every: int = 0,
    divergence_bound: float = DIVERGENCE_BOUND,
    grad_tol: float = GRAD_TOL,
    stop_early: bool = False,
    chunk_size: Optional[int] = None,
    devices: Optional[Sequence[jax.Device]] = None,
    out=None,
) -> SweepResult:
    """Runs gradient descent for each pair (``learning_rate[r]``, ``w0[r]``): a flat list of runs.

    The same runner as :func:`sweep` without the outer product; results are
    indexed ``[r, ...]`` along the axis ``"point"``. Arguments are as for
    :func:`sweep`, except that ``learning_rate`` and every hyperparameter have
    one entry per run, as many as ``w0`` has start points.

    Examples:
      >>> import numpy as np
      >>> from jaxdescent import sweep_pairs
      >>> from jaxdescent.losses import sextic
      >>> out = sweep_pairs(sextic, w0=np.array([1.9, 1.9]), learning_rate=np.array([0.01, 1.0]), num_steps=100)
      >>> out.diverged.tolist(), out.diverged_step.tolist()
      ([False, True], [-1, 2])
    """
    _check_learning_rates(learning_rate)
    hyperparams = _check_hyperparams(hyperparams)
    _validate.finite_tree(w0, "w0")  # in the caller's dtype, before the cast to the runs' float
    w0 = _as_batch(w0)
    num_runs = _check_batch(loss_fn, w0)
    for name, values in {"learning_rate": learning_rate, **hyperparams}.items():
        if np.shape(values)[0] != num_runs:
            raise ValueError(
                f"{name} has {np.shape(values)[0]} entries but w0 has {num_runs} start points; "
                "sweep_pairs runs them pairwise (use sweep for every combination)")
    dtype = jax.tree_util.tree_leaves(w0)[0].dtype
    _check_in_dtypes(learning_rate, hyperparams, w0)
    items = [("learning_rate", _cast(learning_rate, dtype)), *((k, _cast(v, dtype)) for k, v in hyperparams.items()),
             ("w0", w0)]
    coords = _engine.Coords(items, ["point"] * len(items))
    return _runs(loss_fn, coords, optimizer=optimizer, hyperparams=hyperparams, num_steps=num_steps,
                 record_every=record_every, divergence_bound=divergence_bound, grad_tol=grad_tol,
                 chunk_size=chunk_size, devices=devices, out=out, stop_early=stop_early)


def grid_pairs(learning_rate: ArrayLike, w0: Any, *, start: int = 0, stop: Optional[int] = None):
    """The (learning rate, start point) pairs of runs ``start:stop`` of the grid ``learning_rate × w0``.

    Runs are numbered row-major, ``r = i_learning_rate * n_w0 + i_w0``, as in
    :func:`sweep`'s result reshaped to ``(n_lr * n_w0, ...)``. Feed the pairs to
    :func:`sweep_pairs`; pieces of equal length reuse one compilation.

    Returns:
      ``(learning_rates, start_points)``: NumPy arrays (a pytree for ``w0``)
      with ``stop - start`` entries.

    Examples:
      >>> import numpy as np
      >>> from jaxdescent import grid_pairs
      >>> lr, w = grid_pairs(np.array([0.1, 0.2]), np.array([-1.0, 0.0, 1.0]), start=2, stop=5)
      >>> lr.tolist(), w.tolist()
      ([0.1, 0.2, 0.2], [1.0, -1.0, 0.0])
    """
    learning_rate = np.asarray(learning_rate)
    n_w0 = {np.shape(x)[0] for x in jax.tree_util.tree_leaves(w0)}
    if len(n_w0) != 1 or learning_rate.ndim != 1:
        raise ValueError("grid_pairs needs a 1-D learning_rate and a w0 with one shared leading axis")
    (n_w0,) = n_w0
    total = learning_rate.size * n_w0
    stop = total if stop is None else stop
    if not 0 <= start < stop <= total:
        raise ValueError(f"need 0 <= start < stop <= {total}, got start={start}, stop={stop}")
    runs = np.arange(start, stop)
    return learning_rate[runs // n_w0], jax.tree_util.tree_map(lambda x: np.asarray(x)[runs % n_w0], w0)


def sweep(
    loss_fn: Callable[[Any], jax.Array],
    *,
    w0: Any,
    learning_rate: ArrayLike,
    num_steps: int,
    optimizer: Optional[OptimizerFactory] = None,
    hyperparams: Optional[Mapping[str, ArrayLike]] = None,
    record_every: int = 0,
    divergence_bound: float = DIVERGENCE_BOUND,
    grad_tol: float = GRAD_TOL,
    stop_early: bool = False,
    chunk_size: Optional[int] = None,
    devices: Optional[Sequence[jax.Device]] = None,
    out=None,
    piece_runs: Optional[int] = None,
    progress=True,
) -> SweepResult:
    """Runs gradient descent for every (learning rate, hyperparameters, start point), as one compiled program.

    Args:
      loss_fn: a pure function from one start point (a pytree) to a scalar loss.
      w0: the start points: a pytree whose leaves share a leading batch axis
        (shape ``(n,)`` for a scalar loss like ``sextic``, ``(n, 2)`` for ``bowl``).
        Integers become the default float; runs use w0's float dtype.
      learning_rate: a 1-D array of learning rates, each finite and > 0.
      num_steps: updates per run.
      optimizer: ``None`` for ``optax.sgd`` (without momentum: the lecture's
        w := w − α·∇), or any optax factory such as ``optax.adam``; it is called
        inside the compiled run as ``optimizer(learning_rate=α, **hp)``.
      hyperparams: name → 1-D array of values of more optimizer keywords, e.g.
        ``{"momentum": [0.0, 0.5, 0.9]}`` for ``optax.sgd`` or ``{"b1": ...}``
        for ``optax.adam``. Each becomes an axis after ``learning_rate`` (in
        mapping order) and before ``w0``; values are traced.
      record_every: 0 for no history, or k > 0 to keep the loss every k steps.
      divergence_bound: a run diverges when some ``|w_i|`` exceeds this (or w
        or the loss is non-finite); ``float('inf')`` for non-finite only.
      grad_tol: a run has converged at the first iterate whose gradient norm is below this.
      stop_early: each run stops at its first converged or diverged iterate
        (``final_w`` is that iterate, ``final_loss`` its loss) and a chunk of
        runs ends once all its runs have stopped: a sweep that maps where
        learning rates converge does only the steps it needs. ``diverged_step``
        and ``converged_step`` are those of the full run, except for a run
        that converges and diverges later (its divergence is never reached:
        ``diverged_step`` is -1). Not with ``record_every``.
      chunk_size: at most this many runs advance together on a device (memory
        is O(chunk_size) per device). ``None``: on CPU from the run's cost, as for
        :func:`jaxdescent.sweep_fn` (256 for the sextic's small steps; at most
        ``CHUNK_SIZE``), ``ACCELERATOR_CHUNK_SIZE`` (2²⁰) on GPU/TPU.
      devices: the devices to shard the runs over; default ``jax.devices()``
        (every process's devices after ``jax.distributed.initialize``).
      out: a folder to save finished pieces to and resume from (see
        :func:`jaxdescent.sweep_fn`).
      piece_runs: as for :func:`jaxdescent.sweep_fn`: runs per piece, default about 30 s of
        estimated work.
      progress: as for :func:`jaxdescent.sweep_fn`: a bar where someone watches, ``False``, or
        ``progress(runs_done, num_runs)``.

    Returns:
      A :class:`SweepResult` indexed ``[i_learning_rate, i_hyperparam..., i_w0, ...]``,
      labelled (``.axes``, ``.coords``, ``.to_pandas()``). A diverged run is a
      result (``diverged``, inf/nan in its slot), never an exception.

    Raises:
      ValueError, TypeError: naming the argument, before anything is compiled.

    Examples:
      >>> import numpy as np, optax
      >>> from jaxdescent import losses, sweep
      >>> out = sweep(losses.sextic, w0=np.array([-1.0, 1.9]),
      ...             learning_rate=np.array([0.01, 0.1, 1.0]), num_steps=1000)
      >>> out.final_w.shape, out.axes
      ((3, 2), ('learning_rate', 'w0'))
      >>> out.diverged.tolist()
      [[False, False], [False, False], [True, True]]
      >>> print(np.round(out.final_w[:2], 4))
      [[0.7549 0.7549]
       [0.7549 0.7549]]
      >>> out.converged_step[:2].tolist()
      [[483, 336], [44, 44]]
      >>> heavy = sweep(losses.sextic, w0=np.array([1.9]), learning_rate=np.array([0.01]), num_steps=300,
      ...               optimizer=optax.sgd, hyperparams={"momentum": np.array([0.0, 0.5, 0.9])})
      >>> heavy.axes, heavy.converged_step.tolist()
      (('learning_rate', 'momentum', 'w0'), [[[-1], [147], [150]]])
      >>> heavy.to_pandas()[["momentum", "w0", "converged_step"]]
         momentum   w0  converged_step
      0       0.0  1.9              -1
      1       0.5  1.9             147
      2       0.9  1.9             150
      >>> early = sweep(losses.sextic, w0=np.array([-1.0, 1.9]),
      ...               learning_rate=np.array([0.01, 0.1, 1.0]), num_steps=1000, stop_early=True)
      >>> early.converged_step[:2].tolist(), early.diverged_step[2].tolist()
      ([[483, 336], [44, 44]], [3, 2])
    """
    _check_learning_rates(learning_rate)
    hyperparams = _check_hyperparams(hyperparams)
    _validate.finite_tree(w0, "w0")  # in the caller's dtype, before the cast to the runs' float
    w0 = _as_batch(w0)
    _check_batch(loss_fn, w0)
    dtype = jax.tree_util.tree_leaves(w0)[0].dtype
    _check_in_dtypes(learning_rate, hyperparams, w0)
    items = [("learning_rate", _cast(learning_rate, dtype)), *((k, _cast(v, dtype)) for k, v in hyperparams.items()),
             ("w0", w0)]
    return _runs(loss_fn, _engine.Coords(items), optimizer=optimizer, hyperparams=hyperparams, num_steps=num_steps,
                 record_every=record_every, divergence_bound=divergence_bound, grad_tol=grad_tol,
                 chunk_size=chunk_size, devices=devices, out=out, piece_runs=piece_runs, progress=progress,
                 stop_early=stop_early)
