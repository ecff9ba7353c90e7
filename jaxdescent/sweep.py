"""Many runs at once: every (learning rate, start point) pair of a grid as one compiled program.

:func:`sweep` runs gradient descent for the outer product of a 1-D array of
learning rates and a batch of start points and returns a :class:`SweepResult`
indexed ``[i_learning_rate, i_w0, ...]``. :func:`sweep_pairs` runs a flat list
of (learning rate, start point) pairs; with :func:`grid_pairs` it computes any
contiguous piece of a grid, so a long sweep can be computed (and saved) piece
by piece and reassembled with ``reshape(n_lr, n_w0, ...)``.

How it runs:

* Learning rates and start points are traced: one compilation per
  (``loss_fn``, shapes, ``num_steps`` and the static keywords).
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
  ``jax.distributed.initialize``) with ``jax.shard_map``; each run is computed
  by exactly the same code wherever it lands, so results are bit-identical
  on one device, many devices or many processes. With several processes
  every process passes the same arguments and receives the whole result.

The fast path on CPU: XLA's default CPU code for a loop over many small
steps is several times slower than a hand-written C loop. Two XLA options
close the gap (see ``experiments/benchmarks/sweep_throughput.py``). A 512-bit
preferred vector width is passed per compilation
(``jax.jit(..., compiler_options=...)``), so it is always on for sweeps on
CPU and touches nothing else. The larger win, emitting small while loops as
one compiled loop instead of one runtime call per step
(``xla_cpu_small_while_loop_byte_threshold``, about 5x on a 2-core CPU),
is only accepted through ``XLA_FLAGS``: it must be set before JAX creates
its CPU backend and applies to every program of the process, so the library
never sets it on import. Ask for it once, at the top of a script, before
anything touches JAX arrays:

    import jaxdescent
    jaxdescent.use_fast_cpu_flags()   # appends to XLA_FLAGS; raises if too late

or set ``XLA_FLAGS`` to the string :func:`fast_cpu_flags` returns in the
environment that starts Python. On GPU and TPU they are ignored.
"""

import math
import os
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jax.typing import ArrayLike

from jaxdescent import _validate
from jaxdescent.descent import OptimizerFactory, check_optimizer, make_optimizer

DIVERGENCE_BOUND = 1e10
GRAD_TOL = 1e-4
CHUNK_SIZE = 2048  # CPU: a chunk's state stays in L1/L2 across steps
ACCELERATOR_CHUNK_SIZE = 1 << 20  # GPU/TPU: enough runs in flight to fill the chip

_FAST_CPU_FLAGS = (
    "--xla_cpu_prefer_vector_width=512",
    "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000000",
)


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
    """

    final_w: Any
    final_loss: jax.Array
    diverged: jax.Array
    diverged_step: jax.Array
    converged_step: jax.Array
    loss_history: Optional[jax.Array] = None


def fast_cpu_flags() -> str:
    """The XLA flags of the fast CPU path, as one ``XLA_FLAGS`` string."""
    return " ".join(_FAST_CPU_FLAGS)


def use_fast_cpu_flags() -> None:
    """Appends :func:`fast_cpu_flags` to ``XLA_FLAGS``; call before JAX starts its backend.

    The flags affect every program this process compiles (they are XLA
    process options), which is why importing jaxdescent never sets them.

    Raises:
      RuntimeError: if a JAX backend already exists, so the flags would be ignored.
    """
    try:  # there is no public way to ask whether a backend exists
        from jax._src.xla_bridge import backends_are_initialized
    except ImportError:
        backends_are_initialized = lambda: False
    if backends_are_initialized():
        raise RuntimeError(
            "use_fast_cpu_flags() must run before JAX initialises its backend "
            "(before the first jax array or jax.devices()); set "
            f"XLA_FLAGS='{fast_cpu_flags()}' in the environment instead")
    current = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in _FAST_CPU_FLAGS if f.split("=")[0] not in current]
    os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()


def _run(loss_fn, learning_rate, w0, *, num_steps, optimizer, record_every, divergence_bound, grad_tol):
    """One run, written for a single (learning rate, start point); vmapped by the callers."""
    tx = make_optimizer(optimizer, learning_rate)
    value_and_grad = jax.value_and_grad(loss_fn)

    def bound(x):
        # abs(x) <= bound is False for NaN and inf, so one comparison tests both.
        return jnp.asarray(min(divergence_bound, float(jnp.finfo(x.dtype).max)), x.dtype)

    def check(t, w, loss, grad, diverged_step, converged_step):
        leaves = jax.tree_util.tree_leaves(w)
        bad = ~jnp.isfinite(loss)
        for x in leaves:
            bad = bad | ~jnp.all(jnp.abs(x) <= bound(x))
        grad_sq = sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grad))
        small = grad_sq < jnp.asarray(grad_tol, grad_sq.dtype) ** 2
        diverged_step = jnp.where((diverged_step < 0) & bad, t, diverged_step)
        converged_step = jnp.where((converged_step < 0) & small, t, converged_step)
        return diverged_step, converged_step

    def step(t, carry):
        w, state, diverged_step, converged_step = carry
        loss, grad = value_and_grad(w)
        diverged_step, converged_step = check(t, w, loss, grad, diverged_step, converged_step)
        updates, state = tx.update(grad, state, w)
        return optax.apply_updates(w, updates), state, diverged_step, converged_step

    never = jnp.asarray(-1, jnp.int32)
    carry = (w0, tx.init(w0), never, never)
    history = None
    if record_every:
        num_blocks, rest = divmod(num_steps, record_every)

        def block(carry, b):
            loss = loss_fn(carry[0])
            carry = lax.fori_loop(b * record_every, (b + 1) * record_every, step, carry)
            return carry, loss

        carry, history = lax.scan(block, carry, jnp.arange(num_blocks, dtype=jnp.int32))
        history = jnp.concatenate([history, loss_fn(carry[0])[None]])
        carry = lax.fori_loop(num_blocks * record_every, num_steps, step, carry)
    else:
        carry = lax.fori_loop(0, num_steps, step, carry)
    w, _, diverged_step, converged_step = carry
    loss, grad = value_and_grad(w)
    diverged_step, converged_step = check(num_steps, w, loss, grad, diverged_step, converged_step)
    return SweepResult(w, loss, diverged_step >= 0, diverged_step, converged_step, history)


def _sweep_flat(loss_fn, learning_rate, w0, *, mesh, chunk_size, gather, **settings):
    """Runs padded flat pairs: the run axis is split over ``mesh`` and cut into chunks on each device."""

    def on_device(learning_rate, w0):
        return lax.map(lambda a: _run(loss_fn, *a, **settings), (learning_rate, w0), batch_size=chunk_size)

    result = jax.shard_map(on_device, mesh=mesh, in_specs=(P("runs"), P("runs")), out_specs=P("runs"),
                           check_vma=False)(
        learning_rate, w0)
    if gather:  # every process receives every run
        result = lax.with_sharding_constraint(result, NamedSharding(mesh, P()))
    return result


_STATIC = ("loss_fn", "mesh", "chunk_size", "gather", "num_steps", "optimizer", "record_every",
           "divergence_bound", "grad_tol")
# Per-compile options touch only this program, never the process: safe to set by default on CPU.
_CPU_COMPILER_OPTIONS = {"xla_cpu_prefer_vector_width": "512"}
_compiled_sweep = {
    "cpu": jax.jit(_sweep_flat, static_argnames=_STATIC, compiler_options=_CPU_COMPILER_OPTIONS),
    "other": jax.jit(_sweep_flat, static_argnames=_STATIC),
}


def _check_settings(num_steps, optimizer, record_every, divergence_bound, grad_tol, chunk_size):
    num_steps = _validate.num_steps(num_steps)
    check_optimizer(optimizer)
    record_every = _validate.num_steps(record_every, "record_every")
    if chunk_size is not None and _validate.num_steps(chunk_size, "chunk_size") < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for name, value in (("divergence_bound", divergence_bound), ("grad_tol", grad_tol)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0:
            raise ValueError(f"{name} must be a number > 0 (inf allowed), got {value!r}")
    return num_steps, record_every, float(divergence_bound), float(grad_tol), chunk_size


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


def _mesh(devices) -> Mesh:
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices is empty")
    return Mesh(np.array(devices), ("runs",))


def _global(x, mesh, spec):
    """A host array as a global jax.Array on ``mesh`` (works with one or many processes)."""
    if _validate.is_traced(x):
        return x
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, NamedSharding(mesh, spec), lambda index: x[index])


def sweep_pairs(
    loss_fn: Callable[[Any], jax.Array],
    *,
    w0: Any,
    learning_rate: ArrayLike,
    num_steps: int,
    optimizer: Optional[OptimizerFactory] = None,
    record_every: int = 0,
    divergence_bound: float = DIVERGENCE_BOUND,
    grad_tol: float = GRAD_TOL,
    chunk_size: Optional[int] = None,
    devices: Optional[Sequence[jax.Device]] = None,
) -> SweepResult:
    """Runs gradient descent for each pair (``learning_rate[r]``, ``w0[r]``): a flat list of runs.

    The same runner as :func:`sweep` without the outer product; results are
    indexed ``[r, ...]``. Run ``r`` gives bit-identical results here and in a
    :func:`sweep` that contains it. With :func:`grid_pairs` it computes one
    piece of a grid. Arguments are as for :func:`sweep`, except that
    ``learning_rate`` has one entry per run, as many as ``w0`` has start points.

    Examples:
      >>> import numpy as np
      >>> from jaxdescent.sweep import sweep_pairs
      >>> from jaxdescent.losses import sextic
      >>> out = sweep_pairs(sextic, w0=np.array([1.9, 1.9]), learning_rate=np.array([0.01, 1.0]), num_steps=100)
      >>> out.diverged.tolist(), out.diverged_step.tolist()
      ([False, True], [-1, 2])
    """
    num_steps, record_every, divergence_bound, grad_tol, chunk_size = _check_settings(
        num_steps, optimizer, record_every, divergence_bound, grad_tol, chunk_size)
    _check_learning_rates(learning_rate)
    w0 = _as_batch(w0)
    num_runs = _check_batch(loss_fn, w0)
    if np.shape(learning_rate)[0] != num_runs:
        raise ValueError(
            f"learning_rate has {np.shape(learning_rate)[0]} entries but w0 has {num_runs} start points; "
            "sweep_pairs runs them pairwise (use sweep for every combination)")
    mesh = _mesh(devices)
    num_devices = mesh.devices.size
    on_cpu = mesh.devices.flat[0].platform == "cpu"
    if chunk_size is None:
        chunk_size = CHUNK_SIZE if on_cpu else ACCELERATOR_CHUNK_SIZE
    # Chunks are at most chunk_size runs; every device gets a whole number of equal chunks.
    chunk = min(chunk_size, -(-num_runs // num_devices))
    padded = num_devices * chunk * -(-num_runs // (num_devices * chunk))
    dtype = jax.tree_util.tree_leaves(w0)[0].dtype
    xp = jnp if _validate.is_traced((learning_rate, w0)) else np

    def pad(x):  # padding repeats run 0; its results are dropped
        return xp.concatenate([x, xp.repeat(x[:1], padded - num_runs, axis=0)]) if padded > num_runs else x

    learning_rate = pad(xp.asarray(learning_rate, dtype=dtype))
    w0 = jax.tree_util.tree_map(pad, w0)
    learning_rate = _global(learning_rate, mesh, P("runs"))
    w0 = jax.tree_util.tree_map(lambda x: _global(x, mesh, P("runs")), w0)
    gather = len({d.process_index for d in mesh.devices.flat}) > 1
    # compiler_options are only accepted on a top-level jit, not inside the caller's own jit.
    platform = "cpu" if on_cpu and not _validate.is_traced((learning_rate, w0)) else "other"
    result = _compiled_sweep[platform](
        loss_fn, learning_rate, w0, mesh=mesh, chunk_size=chunk, gather=gather, num_steps=num_steps,
        optimizer=optimizer, record_every=record_every, divergence_bound=divergence_bound, grad_tol=grad_tol)
    if padded > num_runs:
        result = jax.tree_util.tree_map(lambda x: x[:num_runs], result)
    return result


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
      >>> from jaxdescent.sweep import grid_pairs
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
    record_every: int = 0,
    divergence_bound: float = DIVERGENCE_BOUND,
    grad_tol: float = GRAD_TOL,
    chunk_size: Optional[int] = None,
    devices: Optional[Sequence[jax.Device]] = None,
) -> SweepResult:
    """Runs gradient descent for every (learning rate, start point) pair, as one compiled program.

    Args:
      loss_fn: a pure function from one start point (a pytree) to a scalar loss.
      w0: the start points: a pytree whose leaves share a leading batch axis
        (shape ``(n,)`` for a scalar loss like ``sextic``, ``(n, 2)`` for ``bowl``).
        Integers become the default float; runs use w0's float dtype.
      learning_rate: a 1-D array of learning rates, each finite and > 0.
      num_steps: updates per run.
      optimizer: ``None`` for the lecture's w := w − α·∇, or an optax factory
        (``optax.adam``, ``functools.partial(optax.sgd, momentum=0.9)``), called
        with ``learning_rate=`` through ``optax.inject_hyperparams``.
      record_every: 0 for no history, or k > 0 to keep the loss every k steps.
      divergence_bound: a run diverges when some ``|w_i|`` exceeds this (or w
        or the loss is non-finite); ``float('inf')`` for non-finite only.
      grad_tol: a run has converged at the first iterate whose gradient norm is below this.
      chunk_size: at most this many runs advance together on a device (memory
        is O(chunk_size) per device). ``None``: ``CHUNK_SIZE`` (2048) on CPU,
        where 1024–4096 is fastest, ``ACCELERATOR_CHUNK_SIZE`` (2²⁰) on GPU/TPU.
      devices: the devices to shard the runs over; default ``jax.devices()``
        (every process's devices after ``jax.distributed.initialize``).

    Returns:
      A :class:`SweepResult` indexed ``[i_learning_rate, i_w0, ...]``. A diverged
      run is a result (``diverged``, inf/nan in its slot), never an exception.

    Raises:
      ValueError, TypeError: naming the argument, before anything is compiled.

    Examples:
      >>> import numpy as np
      >>> from jaxdescent import losses
      >>> from jaxdescent.sweep import sweep
      >>> out = sweep(losses.sextic, w0=np.array([-1.0, 1.9]),
      ...             learning_rate=np.array([0.01, 0.1, 1.0]), num_steps=1000)
      >>> out.final_w.shape
      (3, 2)
      >>> out.diverged.tolist()
      [[False, False], [False, False], [True, True]]
      >>> print(np.round(out.final_w[:2], 4))
      [[0.7549 0.7549]
       [0.7549 0.7549]]
      >>> out.converged_step[:2].tolist()
      [[483, 336], [44, 44]]
    """
    _check_learning_rates(learning_rate)
    w0 = _as_batch(w0)
    n_w0 = _check_batch(loss_fn, w0)
    n_lr = np.shape(learning_rate)[0]
    if _validate.is_traced((learning_rate, w0)):
        pairs_lr = jnp.repeat(jnp.asarray(learning_rate), n_w0)
        pairs_w0 = jax.tree_util.tree_map(lambda x: jnp.tile(x, (n_lr,) + (1,) * (x.ndim - 1)), w0)
    else:
        pairs_lr, pairs_w0 = grid_pairs(learning_rate, w0)
    result = sweep_pairs(
        loss_fn, w0=pairs_w0, learning_rate=pairs_lr, num_steps=num_steps, optimizer=optimizer,
        record_every=record_every, divergence_bound=divergence_bound, grad_tol=grad_tol,
        chunk_size=chunk_size, devices=devices)
    return jax.tree_util.tree_map(lambda x: x.reshape((n_lr, n_w0) + x.shape[1:]), result)

