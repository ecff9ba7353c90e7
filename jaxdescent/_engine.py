"""The engine: any pure run function over a grid or a sample of hyperparameters × seeds, as one program.

A *run* is a pure function ``fn(hp, key) -> metrics``: ``hp`` maps each axis
name to one traced value (a scalar, or a whole start point for ``sweep``'s
``w0``), ``key`` is that run's ``jax.random`` key, ``metrics`` any pytree of
arrays. The engine

* numbers the runs of the grid row-major on one *run axis* and cuts it into
  chunks of ``chunk_size`` runs; one compiled program computes one chunk
  (vmapped; on several devices a chunk per device under ``jax.shard_map``, after
  ``jax.distributed.initialize`` over every process), and each call of it gets
  its runs' hyperparameters, picked on the host: memory is O(chunk), not
  O(runs); on CPU, where XLA runs a program on one core, the calls are shared
  among one thread per core;
* compiles once per (run function, chunk, shapes of one run's inputs, static
  settings): the grid's size, hyperparameter values, keys and the piece being
  computed never change the program, and ``fn`` is traced once per call;
* with ``out=DIR``, computes the runs in pieces of equal size, saves each when
  done (:mod:`jaxdescent.results`) and resumes from them after a crash;
* labels the result (:class:`Coords`): axis names and coordinates that travel
  through ``jit``/``vmap`` as a pytree and turn into a pandas or xarray table.

A run never sees another run's values: a NaN or inf in one run's metrics
cannot change any other run.
"""

import functools
import hashlib
import itertools
import json
import math
import os
import pathlib
import re
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdescent import _compat, _cost, _progress, _validate, results

CHUNK_SIZE = _cost.CHUNK_SIZE  # the widest default chunk on CPU (see jaxdescent._cost)
ACCELERATOR_CHUNK_SIZE = 1 << 20  # GPU/TPU: enough runs in flight to fill the chip
PIECE_RUNS = 1 << 16  # the most runs per saved piece by default (see jaxdescent._cost.piece_runs)
MAX_RUNS = 2**31 - 1  # run numbers are int32 on the device
CPU_THREADS = None  # threads on CPU in all, shared among the CPU devices (None: one per core; see cpu_threads)
# No per-compile options: xla_cpu_prefer_vector_width=512 (set here before) made XLA's compile of a minibatch MLP's
# program 1.4 s longer (3.7 s against 2.35 s) for no gain on three workloads and 3.5% on the 10^6-run sextic sweep.


# ---------------------------------------------------------------- static configuration


class Static:
    """A hashable stand-in for a function passed as static configuration to ``jax.jit``.

    ``jax.jit`` hashes callables by identity, so ``functools.partial(optax.sgd,
    momentum=0.9)`` built afresh would recompile on every call. Two ``Static``
    are equal when they wrap the same function, or partials of equal functions
    with equal arguments (recursively); anything else compares by identity
    unless it is hashable itself.
    """

    def __init__(self, value):
        self.value = value
        self._key = _structural_key(value)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, Static) and self._key == other._key

    def __repr__(self):
        return f"Static({self.value!r})"


def _structural_key(value):
    if isinstance(value, functools.partial):
        keywords = tuple(sorted((k, _structural_key(v)) for k, v in value.keywords.items()))
        return ("partial", _structural_key(value.func), tuple(_structural_key(a) for a in value.args), keywords)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_structural_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _structural_key(v)) for k, v in value.items()))
    if isinstance(value, (np.ndarray, jax.Array)):
        return ("id", id(value))
    try:
        hash(value)
        return ("value", value)
    except TypeError:
        return ("id", id(value))


class WithStatic:
    """``fn`` with some hyperparameters fixed to Python values: ``WithStatic(fn, (("width", 32),))(hp, key)`` calls
    ``fn({"width": 32, **hp}, key)``.

    Hashable, and equal to another when the functions are equal (as :class:`Static` compares them) and the values
    are of the same types with the same ``repr`` (so ``1``, ``1.0``, ``True`` and ``-0.0``, ``0.0`` differ): a
    second sweep with the same static values reuses its compilation, and never one traced with another value.
    """

    def __init__(self, fn: Callable, values: tuple):
        self.fn, self.values = fn, tuple(values)
        self._key = (Static(fn), tuple((name, type(v).__name__, repr(v)) for name, v in self.values))

    def __call__(self, hp, key, *shared):
        return self.fn({**dict(self.values), **hp}, key, *shared)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, WithStatic) and self._key == other._key

    def __repr__(self):
        return f"WithStatic({self.fn!r}, {dict(self.values)!r})"


# ---------------------------------------------------------------- labels


@jax.tree_util.register_pytree_node_class
class Coords(Mapping):
    """Coordinates of a result's run axes: name → values, each along one axis (its *dim*).

    A pytree whose leaves are the values and whose names and dims are static,
    so it passes through ``jit``, ``vmap`` and ``tree_map`` with the result it
    labels. For a grid every coordinate is its own axis (``name == dim``); for
    zipped points (``product=False``) every hyperparameter lies along the one
    axis ``"point"``. Values have the axis first; trailing axes (a vector start
    point) or a pytree of them are allowed.

    Examples:
      >>> import numpy as np
      >>> from jaxdescent import Coords
      >>> c = Coords([("learning_rate", np.array([0.1, 0.2])), ("w0", np.zeros((3, 2)))])
      >>> c.axes, c.shape, list(c)
      (('learning_rate', 'w0'), (2, 3), ['learning_rate', 'w0'])
    """

    def __init__(self, items: Sequence[tuple], dims: Optional[Sequence[str]] = None):
        items = list(items)
        self.names = tuple(name for name, _ in items)
        self.values = tuple(value for _, value in items)
        self.dims = tuple(self.names if dims is None else dims)

    def tree_flatten(self):
        return self.values, (self.names, self.dims)

    @classmethod
    def tree_unflatten(cls, aux, values):
        names, dims = aux
        return cls(zip(names, values), dims)

    def __getitem__(self, name):
        return self.values[self.names.index(name)]

    def __iter__(self):
        return iter(self.names)

    def __len__(self):
        return len(self.names)

    def __repr__(self):
        return f"Coords({dict(zip(self.names, self.values))!r}, dims={self.dims})"

    @property
    def axes(self) -> tuple:
        """The run axes in order (each dim once)."""
        return tuple(dict.fromkeys(self.dims))

    @property
    def shape(self) -> tuple:
        """The length of each run axis."""
        sizes = {}
        for dim, value in zip(self.dims, self.values):
            sizes.setdefault(dim, _length(value))
        return tuple(sizes[d] for d in self.axes)


def _length(value) -> int:
    return int(np.shape(jax.tree_util.tree_leaves(value)[0])[0])


def leaf_names(name: str, value, *, top: bool = False) -> list:
    """(column stem, leaf) for each array of a pytree: ``name`` for a lone array, else ``name`` and its path
    (``w0_a``, ``final_w_b_0``); with ``top``, a dict or NamedTuple gives its keys without ``name``."""
    paths = jax.tree_util.tree_flatten_with_path(value)[0]
    if len(paths) == 1 and not paths[0][0]:
        return [(name, paths[0][1])]
    top_level = top and (isinstance(value, Mapping) or hasattr(value, "_fields"))
    out = []
    for path, leaf in paths:
        parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        out.append(("_".join(parts if top_level else [name, *parts]), leaf))
    return out


def columns(coords: Coords, arrays: Mapping[str, Any], rows: Optional[slice] = None) -> dict:
    """One flat column per coordinate and per entry of ``arrays`` for the runs in ``rows``.

    Runs are numbered row-major over ``coords.shape``. A value with trailing
    axes becomes columns ``name_0, name_1, …`` (flattened); a pytree, columns
    named by its keys. ``arrays`` hold the run axes first. Only the rows asked
    for are built, so a huge result can be written out block by block.
    """
    shape = coords.shape
    num_runs = math.prod(shape)
    rows = slice(0, num_runs) if rows is None else rows
    index = dict(zip(coords.axes, np.unravel_index(np.arange(*rows.indices(num_runs)), shape)))  # O(rows), not O(runs)
    out = {}

    def add(stem, a):
        a = np.asarray(a)
        flat = a.reshape(a.shape[0], -1)
        if a.ndim == 1:
            out[stem] = a
        else:
            for j in range(flat.shape[1]):
                out[f"{stem}_{j}"] = flat[:, j]

    for name, dim, value in zip(coords.names, coords.dims, coords.values):
        for stem, leaf in leaf_names(name, value):
            add(stem, np.asarray(leaf)[index[dim]])
    labels = set(out)
    for name, value in arrays.items():
        for stem, leaf in leaf_names(name, value):
            if stem in labels:
                raise ValueError(f"the metric {stem!r} has the name of an axis; rename it")
            leaf = np.asarray(leaf)
            add(stem, leaf.reshape((num_runs,) + leaf.shape[len(shape):])[rows])
    return out


def to_pandas(coords: Coords, arrays: Mapping[str, Any]):
    """A ``pandas.DataFrame``: a row per run, a column per coordinate and per array (see :func:`columns`)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas needs pandas: pip install 'jaxdescent[pandas]'") from None
    return pd.DataFrame(columns(coords, arrays))


def to_xarray(coords: Coords, arrays: Mapping[str, Any]):
    """An ``xarray.Dataset`` with one variable per array, indexed by the run axes."""
    try:
        import xarray as xr
    except ImportError:
        raise ImportError("to_xarray needs xarray: pip install 'jaxdescent[xarray]'") from None
    axes = coords.axes
    data, coord_vars = {}, {}
    for name, value in arrays.items():
        for stem, leaf in leaf_names(name, value):
            leaf = np.asarray(leaf)
            extra = tuple(f"{stem}_dim_{i}" for i in range(leaf.ndim - len(axes)))
            data[stem] = (axes + extra, leaf)
    for name, dim, value in zip(coords.names, coords.dims, coords.values):
        for stem, leaf in leaf_names(name, value):
            leaf = np.asarray(leaf)
            coord_vars[stem] = ((dim,) + tuple(f"{stem}_dim_{i}" for i in range(leaf.ndim - 1)), leaf)
    return xr.Dataset(data, coords=coord_vars)


class Runs(NamedTuple):
    """What :func:`sweep_fn` returns: the metrics of every run, labelled.

    Attributes:
      metrics: the run function's pytree, each leaf with the run axes first.
      coords: :class:`Coords`: each axis' name and values.
    """

    metrics: Any
    coords: Coords

    @property
    def axes(self) -> tuple:
        """The run axes in order, e.g. ``("learning_rate", "slope", "seed")``."""
        return self.coords.axes

    def _named(self) -> dict:
        """The metrics as name -> value: a dict's or NamedTuple's entries, or ``{"metric": metrics}``."""
        if hasattr(self.metrics, "_asdict"):
            return self.metrics._asdict()
        return dict(self.metrics) if isinstance(self.metrics, Mapping) else {"metric": self.metrics}

    def _scalars(self) -> dict:
        ndim = len(self.coords.shape)
        return {k: v for k, v in self._named().items() if all(np.ndim(x) == ndim for x in jax.tree_util.tree_leaves(v))}

    def to_pandas(self):
        """A ``pandas.DataFrame``: a row per run, a column per axis and per scalar metric.

        A metric that is one array is the column ``metric``; a dict or
        NamedTuple of them gives a column per entry. Metrics with more than a
        scalar per run (a learning curve, a final weight vector) are left out:
        their names are in ``df.attrs["left_out"]`` (use ``.metrics`` or
        :meth:`to_xarray`, which keeps them).
        """
        df = to_pandas(self.coords, self._scalars())
        df.attrs["left_out"] = [k for k in self._named() if k not in self._scalars()]
        return df

    def to_xarray(self):
        """An ``xarray.Dataset``: a variable per metric (all of them), dims named by the axes."""
        return to_xarray(self.coords, self._named())

    def top(self, metric: str, k: int = 1, *, mode: str = "min") -> list:
        """The ``k`` best runs by a scalar metric, best first: a dict per run of its coordinates and the metric.

        Each dict holds every coordinate of the run (traced and static
        hyperparameters, ``seed``) as a plain Python value (a vector
        coordinate as a list) and ``metric``'s value. NaN ranks last in either
        mode; ties keep the runs' order. ``metric`` names a column of
        :meth:`to_pandas` (a scalar per run).

        Args:
          metric: the metric to rank by, e.g. ``"final_loss"``.
          k: how many runs (fewer if there are fewer).
          mode: ``"min"`` (smallest first) or ``"max"`` (largest first).

        Examples:
          >>> import numpy as np
          >>> from jaxdescent import sweep_fn
          >>> def run(hp, key):
          ...     return {"loss": (hp["lr"] - 0.3) ** 2 + 1 / hp["width"]}
          >>> runs = sweep_fn(run, {"lr": np.array([0.1, 0.25, 0.6])}, static={"width": [8, 16]}, progress=False)
          >>> [(r["width"], round(r["lr"], 2), round(r["loss"], 4)) for r in runs.top("loss", k=3)]
          [(16, 0.25, 0.065), (16, 0.1, 0.1025), (8, 0.25, 0.1275)]
        """
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not isinstance(metric, str):
            raise _validate.InvalidArgument(f"metric must be the name of one metric (a str), got {metric!r}")
        labels = {*self.coords.names, *(stem for name, value in zip(self.coords.names, self.coords.values)
                                         for stem, _ in leaf_names(name, value))}
        if metric in labels:  # as to_pandas refuses it: the run's dict would hold the metric under the axis' name
            raise _validate.InvalidArgument(f"the metric {metric!r} has the name of an axis; rename it")
        ndim = len(self.coords.shape)
        scalars = {stem: leaf for name, value in self._scalars().items() for stem, leaf in leaf_names(name, value)
                   if np.ndim(leaf) == ndim}
        if metric not in scalars:
            raise ValueError(f"metric must name a metric with a scalar per run, one of {sorted(scalars)}, "
                             f"got {metric!r}")
        values = _host(scalars[metric]).reshape(-1)
        rank = values.astype(np.float64)
        order = np.argsort(-rank if mode == "max" else rank, kind="stable")[:int(k)]  # NaN sorts last either way
        index = dict(zip(self.coords.axes, np.unravel_index(order, self.coords.shape)))
        labels = [(name, dim, jax.tree_util.tree_map(_host, value))
                  for name, dim, value in zip(self.coords.names, self.coords.dims, self.coords.values)]
        return [{**{name: jax.tree_util.tree_map(lambda v: v[index[dim][j]].tolist(), value)
                    for name, dim, value in labels}, metric: values[r].item()} for j, r in enumerate(order)]


# ---------------------------------------------------------------- the compiled program


def _mesh(devices) -> Mesh:
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices is empty")
    return Mesh(np.array(devices), ("runs",))


def _chunk_program(values, seeds, key, shared, *, run, names, inner_names, chunk, inner, seeded, mesh, gather,
                   key_impls):
    """Chunks of ``chunk`` runs on each device of ``mesh``, one after another: ``values`` holds each run's
    coordinates (run axis first, a whole number of chunks per device), ``seeds`` each run's seed; the metrics,
    run axis first.

    The program's shapes are the chunk's alone: a grid of any size, a piece
    anywhere in it and every thread or device run this one program, so a run's
    bits never depend on where or with what else it was computed.
    """
    fn = _jit_of(run)

    def on_device(values, seeds, key, shared):
        # Keys travel as key data (a global array of uint32 works on every process) and are wrapped here.
        key = jax.random.wrap_key_data(key, impl=key_impls[0])
        values = [v if impl is None else jax.random.wrap_key_data(v, impl=impl) for v, impl in zip(values, key_impls[1:])]
        count = seeds.shape[0] // chunk
        if count == 1:
            return one_chunk(values, seeds, key, shared)
        split = lambda x: x.reshape((count, chunk) + x.shape[1:])
        out = lax.map(lambda a: one_chunk(a[0], a[1], key, shared), jax.tree_util.tree_map(split, (values, seeds)))
        return jax.tree_util.tree_map(lambda x: x.reshape((count * chunk,) + x.shape[2:]), out)

    def one_chunk(values, seeds, key, shared):
        def one(hp, seed, s):
            # Barriers around the run keep XLA from fusing it with the code around it (picking its inputs,
            # placing its outputs): fused differently, a*b + c is contracted into FMAs differently.
            hp, run_key, s = lax.optimization_barrier((hp, jax.random.fold_in(key, seed if seeded else 0), s))
            return fn(hp, run_key) if s is None else fn(hp, run_key, s)

        # Shared data (floating point) is broadcast to the chunk's run axis, so every product in the vmapped runs
        # is a batched one with the run axis leading (no per-step transposes; see network.train_many). Shared
        # integers (step counts, indices) stay unbatched: loops and conditions on them stay a loop and a cond,
        # not selects over both branches.
        data = lambda a: jnp.issubdtype(a.dtype, jnp.inexact)
        spread = jax.tree_util.tree_map(lambda a: 0 if data(a) else None, shared)
        batched = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (chunk,) + a.shape) if data(a) else a, shared)

        def flat():
            return jax.vmap(lambda v, sd, s: one(dict(zip(names, v)), sd, s), in_axes=(0, 0, spread))(
                values, seeds, batched)

        if inner == 1:
            return lax.optimization_barrier(flat())
        # A chunk of whole rows of the last axis (seeds, keys), or a part of one row: vmapped as points x seeds,
        # so what a run computes from its key alone (initial weights, minibatch draws) is computed once per seed,
        # not once per run, as a hand-written vmap over points of a vmap over seeds does.
        rows = lambda x: x.reshape((chunk // inner, inner) + x.shape[1:])
        outer = {n: jax.tree_util.tree_map(lambda x: rows(x)[:, 0], v)
                 for n, v in zip(names, values) if n not in inner_names}
        across = {n: jax.tree_util.tree_map(lambda x: rows(x)[0], v) for n, v in zip(names, values) if n in inner_names}

        def row(o, s):
            return jax.vmap(lambda i, sd, s1: one({n: {**o, **i}[n] for n in names}, sd, s1),
                            in_axes=(0, 0, spread))(across, rows(seeds)[0], s)

        try:
            out = jax.vmap(row, in_axes=(0, spread))(outer, jax.tree_util.tree_map(
                lambda a: rows(a) if data(a) else a, batched))
        except NotImplementedError:  # a batching rule JAX lacks for nested vmaps (seen: a grouped convolution's
            return lax.optimization_barrier(flat())  # gradient inside shard_map, jax 0.10): one flat vmap
        return lax.optimization_barrier(jax.tree_util.tree_map(lambda x: x.reshape((chunk,) + x.shape[2:]), out))

    if mesh.devices.size == 1:  # one device: the chunk's program as it is (inside shard_map, fn would be traced anew)
        return on_device(values, seeds, key, shared)
    result = jax.shard_map(on_device, mesh=mesh, in_specs=(P("runs"), P("runs"), P(), P()), out_specs=P("runs"),
                           check_vma=False)(values, seeds, key, shared)
    if gather:  # every process receives every run
        result = lax.with_sharding_constraint(result, NamedSharding(mesh, P()))
    return result


def _inner(chunk: int, row: int) -> int:
    """The runs of a chunk vmapped as the inner level (a row of seeds or keys, see :func:`_row`): whole rows
    (``row`` divides ``chunk``) or a part of one row (``chunk`` divides ``row``); 1 for one flat vmap."""
    if chunk == 1 or row == 1:
        return 1
    return row if chunk % row == 0 else chunk if row % chunk == 0 else 1


_STATIC = ("run", "names", "inner_names", "chunk", "inner", "seeded", "mesh", "gather", "key_impls")

# Custom calls into a library that waits for its own tasks on XLA's CPU pool (see _library_calls).
_LIBRARY_PRIMITIVES = {"eigh", "svd", "lu", "qr", "householder_product", "geqrf", "geqp3", "cholesky", "eig",
                       "schur", "hessenberg", "tridiagonal", "tridiagonal_solve", "triangular_solve", "ffi_call"}


def _library_calls(jaxpr) -> set:
    """The primitives of a run's jaxpr (nested ones included) that run as a library call on CPU (LAPACK, FFI,
    host callbacks).

    A program with one is run from one thread: jaxlib's batched LAPACK
    kernels (``eigh``, ``svd``, ...) wait for their own tasks on XLA's shared
    CPU pool, so two such programs running at once can take every thread of
    the pool and wait forever (seen with ``eigh`` on 2 cores, jax 0.10.2).
    Read from the jaxpr, nothing lowered for it.
    """
    return {p for p in _primitives(jaxpr) if p in _LIBRARY_PRIMITIVES | _CALLBACKS}


def _primitives(jaxpr) -> set:
    """Every primitive name in a jaxpr and the jaxprs nested in it (loops, conditionals, ``jit``, custom rules)."""
    found = set()

    def inner(value):
        if hasattr(value, "eqns"):  # a Jaxpr
            yield value
        elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):  # a ClosedJaxpr
            yield value.jaxpr
        elif isinstance(value, (tuple, list)):
            for v in value:
                yield from inner(v)

    todo = [jaxpr.jaxpr if hasattr(jaxpr, "jaxpr") and hasattr(jaxpr.jaxpr, "eqns") else jaxpr]
    while todo:
        for eqn in todo.pop().eqns:
            found.add(eqn.primitive.name)
            for value in eqn.params.values():
                todo.extend(inner(value))
    return found


_JITTED_RUNS: dict = {}


def _jit_of(run) -> Callable:
    """``jax.jit`` of a run function, one per configuration (:class:`Static`): every place that needs the run's
    program (its output shapes, its cost, the sweep's program, the saved folder's digest) traces it through this
    one jit, whose cache traces the user's function once per set of input shapes."""
    run = run if isinstance(run, Static) else Static(run)
    try:
        return _JITTED_RUNS[run]
    except KeyError:
        if len(_JITTED_RUNS) >= 64:  # runs made afresh in a loop: keep the newest
            _JITTED_RUNS.pop(next(iter(_JITTED_RUNS)))
        return _JITTED_RUNS.setdefault(run, jax.jit(run.value))
    except TypeError:  # an unhashable configuration
        return jax.jit(run.value)


@functools.lru_cache(maxsize=16)
def _one_run(run, treedef, avals, classes):
    """One run traced alone (cached per configuration and shapes): its output shapes, its library calls, and
    with ``classes`` (what each input varies with, see :mod:`jaxdescent._cost`) its cost."""
    one = _jit_of(run).trace(*jax.tree_util.tree_unflatten(treedef, avals))
    jaxpr = one.jaxpr
    return one.out_info, _library_calls(jaxpr), _cost.count(jaxpr.jaxpr, classes) if classes is not None else None


@functools.cache
def _key_shape() -> jax.ShapeDtypeStruct:
    """One default key's shape and dtype (a key is made once, not on every call)."""
    return jax.eval_shape(lambda: jax.random.key(0))


def _output_shapes(fn, hp_dtypes: tuple):
    """``fn``'s output shapes on traced scalars of ``hp_dtypes`` and a key, traced through the run's one jit
    (:func:`_jit_of`): the sweep's program then reuses this trace."""
    return jax.eval_shape(_jit_of(fn), {name: jax.ShapeDtypeStruct((), dtype) for name, dtype in hp_dtypes},
                          _key_shape())


def _trace(run: Static, coords: Coords, shared, on_cpu: bool):
    """One run of ``coords`` traced alone (values or shapes alike): its output shapes, library calls and, on CPU,
    cost (see :func:`_one_run`)."""
    row = _row(coords)
    hp_example = {n: jax.tree_util.tree_map(lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), v)
                  for n, v in zip(coords.names, coords.values) if n != "seed"}
    shared_example = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), shared)
    example = (hp_example, _key_shape(), *(() if shared is None else (shared_example,)))
    leaves, treedef = jax.tree_util.tree_flatten(example)
    # What each input varies with: a point's coordinates, the row's seed or key (the last axis, see _row), both
    # (the run's key with a seed axis) or nothing (shared data, the one key without seeds).
    dim_of = dict(zip(coords.names, coords.dims))
    of_name = {n: _cost.SEED if row > 1 and dim_of[n] == coords.axes[-1] else _cost.POINT for n in hp_example}
    classes = jax.tree_util.tree_leaves(({n: jax.tree_util.tree_map(lambda _: of_name[n], v)
                                          for n, v in hp_example.items()},
                                         _cost.SEED if "seed" in coords.dims else _cost.CONSTANT,
                                         jax.tree_util.tree_map(lambda _: _cost.CONSTANT, shared_example)))
    return _one_run(run, treedef, tuple(leaves), tuple(classes) if on_cpu else None)


def default_chunk(run: Callable, coords: Coords, *, shared: Any = None, devices=None) -> int:
    """The chunk :func:`run_grid` picks for ``coords`` (values, or ``jax.ShapeDtypeStruct`` shapes) by default.

    A search passes its smallest population's to every call: a chunk of another width is another program.
    """
    on_cpu = _mesh(devices).devices.flat[0].platform == "cpu"
    num_runs = math.prod(coords.shape)
    if not on_cpu:
        return min(ACCELERATOR_CHUNK_SIZE, num_runs)
    cost = _trace(run if isinstance(run, Static) else Static(run), coords, shared, on_cpu)[2]
    return _cost.cpu_chunk(cost, num_runs=num_runs, cores=cores(), row=_row(coords))


def _row(coords: Coords) -> int:
    """The length of the last run axis if it holds seeds or keys (vmapped as the inner level), else 1."""
    last = coords.axes[-1]
    keyed = last == "seed" or any(_is_key(v) for d, v in zip(coords.dims, coords.values) if d == last)
    return coords.shape[-1] if keyed and len(coords.axes) > 1 else 1


def cpu_threads() -> int:
    """The threads a sweep on one CPU device calls its program from: one per core this process may use.

    XLA runs one program on one core, and several programs on one device at
    once, so the chunks of a call on CPU are computed from this many threads
    (``CPU_THREADS`` overrides it; with several CPU devices each gets its share of the cores).
    """
    return max(1, int(CPU_THREADS)) if CPU_THREADS is not None else cores()


def cores() -> int:
    """The cores this process may use. The default chunk is sized by it (never by ``CPU_THREADS`` or the
    devices), so a run's bits do not depend on how the work is threaded or split."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_program = jax.jit(_chunk_program, static_argnames=_STATIC)


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and _is_key_type(x)


def _is_key_type(x) -> bool:
    return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_impl(x):
    return str(jax.random.key_impl(x)) if _is_key(x) else None


def _global(x, mesh, spec=P()):
    """A host value as a global jax.Array on ``mesh``, replicated or split by ``spec`` (works with one or many
    processes; each process holds the same host value)."""
    if _is_key(x):
        x = jax.random.key_data(x)
    if _validate.is_traced(x):
        return x
    x = np.asarray(x)
    if mesh.devices.size == 1 and jax.process_count() == 1:  # on one device: no mesh in the program
        return jax.device_put(x, mesh.devices.flat[0])
    return jax.make_array_from_callback(x.shape, NamedSharding(mesh, spec), lambda index: x[index])


class Plan(NamedTuple):
    """How the runs are laid out: calls of ``per_call`` chunks of ``chunk`` runs on each of ``num_devices``."""

    num_runs: int
    num_devices: int
    chunk: int
    per_call: int = 1

    @property
    def runs_per_call(self) -> int:
        return self.num_devices * self.per_call * self.chunk

    @property
    def num_calls(self) -> int:
        return -(-self.num_runs // self.runs_per_call)


def plan(num_runs: int, num_devices: int, chunk_size: int, per_call: int = 1) -> Plan:
    """Chunks of ``min(chunk_size, num_runs)`` runs, ``per_call`` per device in each call; the last call padded.

    The chunk (the vmapped width every run is computed at) depends on
    ``chunk_size`` and the grid alone, never on the devices or the pieces:
    XLA fuses, and so contracts ``a*b + c`` into fused multiply-adds,
    according to that width, so a run's bits depend on it.
    """
    return Plan(num_runs, num_devices, max(1, min(chunk_size, num_runs)), per_call)


def fingerprint(run: Callable, hp_example: dict, key, *, callbacks: bool = False) -> tuple:
    """A digest of what one run computes (its jaxpr and the constants it closes over), and its output shapes.

    Traced through the run's one jit (:func:`_jit_of`), so a sweep that has traced it costs no new trace.
    A host callback's Python body is not part of the jaxpr: two runs that differ only there have one digest.
    With ``callbacks``, also returns the host-callback primitives the run holds (see :func:`host_callbacks`).
    """
    closed, out_shape = jax.make_jaxpr(_jit_of(run), return_shape=True)(hp_example, key)
    (call,) = closed.jaxpr.eqns  # the jit of the run: digest the run's own jaxpr
    jaxpr = call.params["jaxpr"]
    # Some JAX versions print a Python function (a reduce's computation) with its address: not part of the program.
    digest = hashlib.sha256(re.sub(r" at 0x[0-9a-f]+>", ">", str(jaxpr.jaxpr)).encode())
    for c in [*closed.consts, *jaxpr.consts]:
        c = _host(c)
        digest.update(str((c.dtype, c.shape)).encode())
        digest.update(np.ascontiguousarray(c).tobytes())
    if callbacks:
        return digest.hexdigest(), out_shape, host_callbacks(jaxpr)
    return digest.hexdigest(), out_shape


def _host(leaf) -> np.ndarray:
    """A NumPy copy of an array; a typed key array as its key data."""
    if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def _digest_arrays(tree) -> str:
    digest = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        leaf = _host(leaf)
        digest.update(str((leaf.dtype, leaf.shape)).encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


RESULT_COPIES = 2  # the results are held twice at the peak: pieces (or the device's copy) and the joined result


def check_size(num_runs: int, per_run: int, *, what: str = "the grid", extra: int = 0) -> None:
    """Refuses a grid of ``num_runs`` runs of ``per_run`` result bytes each that cannot run or fit: before anything
    per run is built.

    Run numbers are int32 on the device (at most :data:`MAX_RUNS`); the results
    are held :data:`RESULT_COPIES` times at the peak (the pieces and the joined
    result, or the device's result and its host copy); ``extra`` bytes are
    other per-run arrays (the seed coordinate).
    """
    if num_runs > MAX_RUNS:
        raise _validate.InvalidArgument(
            f"{what} has {num_runs:,} runs, more than {MAX_RUNS:,} in one call (run numbers are int32 on the "
            "device); split it into several calls")
    _validate.check_memory(what, RESULT_COPIES * num_runs * per_run + extra,
                           f"{num_runs:,} runs' results ({per_run:,} bytes each, held {RESULT_COPIES} times "
                           "while they are joined)",
                           "record less per run (e.g. a larger record_every), use fewer seeds or axis values, or "
                           "split the grid")


def check_counts(**counts) -> None:
    """Raises (naming it) unless each count (``chunk_size=``, ``piece_runs=``) is ``None`` or an integer >= 1."""
    for name, value in counts.items():
        if value is not None and _validate.num_steps(value, name) < 1:
            raise _validate.InvalidArgument(f"{name} must be >= 1, got {value}")


def check_out_devices(out, devices) -> None:
    """Raises (naming the argument) unless ``out`` is None or a path and ``devices`` None or a list of devices."""
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise _validate.InvalidArgument(f"out must be a folder path (a str or pathlib.Path) or None, got {out!r}")
    if devices is None:
        return
    if isinstance(devices, (str, bytes, jax.Device)) or not isinstance(devices, (Sequence, np.ndarray)):
        raise _validate.InvalidArgument(
            f"devices must be a list of jax devices such as jax.devices() or jax.devices('cpu'), got {devices!r}")
    bad = [d for d in devices if not isinstance(d, jax.Device)]
    if bad:
        raise _validate.InvalidArgument(
            f"devices must hold jax.Device objects (e.g. jax.devices('cpu')), not {bad[0]!r}; pass "
            "jax.devices('cpu') rather than the platform's name")


_CALLBACKS = {"pure_callback", "io_callback", "debug_callback"}


def host_callbacks(jaxpr) -> set:
    """The host-callback primitives (``jax.pure_callback``, ``io_callback``, ``jax.debug.callback``) in a jaxpr and
    the jaxprs nested in it (loops, conditionals, ``jit``, custom derivatives): Python bodies the jaxpr does not
    show (``jax.debug.print`` is its own primitive, its format in the jaxpr)."""
    return _primitives(jaxpr) & _CALLBACKS


def run_grid(
    run: Callable,
    coords: Coords,
    *,
    key: jax.Array,
    chunk_size: Optional[int] = None,
    devices: Optional[Sequence[jax.Device]] = None,
    out=None,
    piece_runs: Optional[int] = None,
    progress: _progress.Progress = True,
    describe: Optional[dict] = None,
    shared: Any = None,
    per_call: Optional[int] = None,
):
    """Runs ``run(hp, key)`` for every point of ``coords``' grid; the metrics pytree with the run axes first.

    The runner under :func:`sweep_fn`, ``sweep`` and ``network.train_many``.
    ``coords`` may hold a ``"seed"`` axis: seed i runs with
    ``jax.random.fold_in(key, i)`` (without one, every run gets
    ``fold_in(key, 0)``). ``run`` is static configuration: wrap it in
    :class:`Static` so that equal configurations reuse one compilation.
    On CPU the runs are computed in pieces of ``piece_runs`` (default: about
    30 s of estimated work, see :mod:`jaxdescent._cost`), reported to
    ``progress`` (see :mod:`jaxdescent._progress`); Ctrl-C interrupts between
    polls. With ``out``, each piece is saved there and a
    rerun resumes (see :mod:`jaxdescent.results`); ``describe`` is JSON-able
    configuration recorded beside them. ``shared`` (data every run reads) is
    passed as ``run(hp, key, shared)``, a traced argument: new data of the same
    shapes does not recompile. The program's shapes are one call's
    (``per_call`` chunks per device, default from the run's cost: about
    ``_cost.CALL_SECONDS`` of work), so grids of any size with the same
    layout share it.
    """
    if not isinstance(run, Static):
        run = Static(run)
    shape = coords.shape
    num_runs = math.prod(shape)
    if num_runs == 0:
        raise ValueError(f"the grid is empty: axes {dict(zip(coords.axes, shape))}")
    check_out_devices(out, devices)
    check_size(num_runs, 0)
    mesh = _mesh(devices)
    on_cpu = mesh.devices.flat[0].platform == "cpu"
    traced = _validate.is_traced((coords.values, key, shared))
    row = _row(coords)
    if chunk_size is None and out is not None and not traced:  # a folder's runs go on with the chunk they began
        chunk_size = results.saved_chunk(out, list(shape))  # with, whatever this machine's default (None: new)
    auto = chunk_size is None and on_cpu and not traced  # from the run's cost (jaxdescent._cost)
    if chunk_size is None:
        chunk_size = CHUNK_SIZE if on_cpu else ACCELERATOR_CHUNK_SIZE
    if out is not None and traced:
        raise ValueError("out= cannot be used inside jit or vmap: saving needs concrete values")
    if out is not None and jax.process_count() > 1:
        # Every process would write the same folder, and a resume must skip the same pieces everywhere.
        raise _validate.InvalidArgument(
            "out= is not supported with several processes (jax.distributed): run without out= (every process "
            "receives the whole result) and save it from process 0")
    gather = len({d.process_index for d in mesh.devices.flat}) > 1
    names = tuple(n for n in coords.names if n != "seed")
    calls, cost, out_info = set(), None, None
    if not traced:  # one run, traced alone: the results (every run's metrics, on the host once read) must fit
        out_info, calls, cost = _trace(run, coords, shared, on_cpu)
        calls = calls if on_cpu and not gather else set()
        per_run = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(out_info))  # keys too
        check_size(num_runs, per_run)
        if auto:
            chunk_size = _cost.cpu_chunk(cost, num_runs=num_runs, cores=cores(), row=row)
    chunk = max(1, min(chunk_size, num_runs))
    if per_call is None:
        per_call = 1 if cost is None else _cost.chunks_per_call(cost, chunk=chunk, num_runs=num_runs, cores=cores())
    layout = plan(num_runs, mesh.devices.size, chunk_size, per_call)
    group = layout.runs_per_call
    if piece_runs is None:
        most = PIECE_RUNS if out is not None else MAX_RUNS  # a saved piece is a file; in memory, only time counts
        piece_runs = most if cost is None else _cost.piece_runs(cost, chunk=chunk, cores=cores(), most=most)
        piece_runs = piece_runs // group * group or piece_runs  # whole calls where a piece holds one
    piece_runs = min(piece_runs, num_runs)
    key_metrics = not traced and any(_is_key_type(x) for x in jax.tree_util.tree_leaves(out_info))
    report = _progress.callback(progress)
    inner = _inner(chunk, row)
    dim_of = dict(zip(coords.names, coords.dims))
    settings = dict(run=run, names=names, inner_names=tuple(n for n in names if dim_of[n] == coords.axes[-1]),
                    chunk=chunk, inner=inner, seeded="seed" in coords.dims, mesh=mesh, gather=gather,
                    key_impls=(_key_impl(key), *(_key_impl(v) for n, v in zip(coords.names, coords.values)
                                                 if n != "seed")))
    key = _global(key, mesh)
    shared_global = jax.tree_util.tree_map(lambda v: _global(v, mesh), shared)
    if traced:
        return _run_traced(settings, coords, key, shared_global, layout)
    if out is not None:  # what the folder will hold, checked before anything is compiled
        hp_example = {n: jax.tree_util.tree_map(lambda v: v[0], v) for n, v in zip(coords.names, coords.values)
                      if n != "seed"}
        fn = run if shared is None else Static(lambda hp, k: run.value(hp, k, shared))
        digest, out_shape, callbacks = fingerprint(fn, hp_example, jax.random.key(0), callbacks=True)
        if callbacks:
            raise _validate.InvalidArgument(
                f"out= cannot save a run that calls back into Python ({', '.join(sorted(callbacks))}): the saved "
                "results are recognised by the run's program, which shows the callback but not its Python body, so "
                "a run with another body would load these results; run without out= (and save the result yourself), "
                "or compute the callback's values in JAX")
        config = {"program": digest, "coords": _digest_arrays(coords.values), "key": _digest_arrays(key),
                  "axes": list(coords.axes), "shape": list(shape), "chunk": chunk,
                  **(describe or {})}  # the chunk decides the runs' last bits; the pieces' size and the machine do not
        leaves, treedef = jax.tree_util.tree_flatten(out_shape)
        stems = [stem for stem, _ in leaf_names("metric", out_shape, top=True)]
        extra = {stem: _host(leaf) for name, value in zip(coords.names, coords.values)
                 for stem, leaf in leaf_names(name, value)}
        if len(set(stems) | set(extra)) < len(stems) + len(extra):
            raise ValueError(f"metric names {stems} collide with axis names {list(extra)}; rename one")
        if key_metrics:
            raise _validate.InvalidArgument(f"out=: metrics {[n for n, leaf in zip(stems, leaves) if _is_key_type(leaf)]} "
                                            "are jax.random keys, which cannot be saved; return "
                                            "jax.random.key_data(key) instead")
        fields = {n: (tuple(leaf.shape), np.dtype(leaf.dtype).str) for n, leaf in zip(stems, leaves)}
    inputs = _Inputs(coords, names, group)
    one_device = mesh.devices.size == 1 and not gather and mesh.devices.flat[0] == jax.devices()[0]
    x64 = jax.config.jax_enable_x64  # the caller's (a context manager sets it in the calling thread only)

    def arguments(g):  # the runs of call g, [g * group, (g + 1) * group) (padded at the end)
        if one_device:  # NumPy arrays: jit's dispatch puts them on the default device at the least cost
            return inputs.at(g)
        return jax.tree_util.tree_map(lambda v: _global(v, mesh, P("runs")), inputs.at(g))

    # On CPU one program runs on one core: the calls are shared among one thread per core. Not across processes
    # (whose calls must match), nor for runs that call a library using XLA's CPU pool (see _library_calls).
    threads = 1 if gather or not on_cpu or calls else max(1, cpu_threads() // mesh.devices.size)
    debug = jax.config.jax_debug_nans or jax.config.jax_debug_infs  # checked by jit's dispatch, in this thread
    threads = 1 if debug else threads
    compiled = []

    def ready():  # the program, compiled once, when the first piece needs it (a finished saved sweep compiles
        # nothing), in the calling thread: JAX's settings entered with a context manager (enable_x64,
        # default_matmul_precision, ...) hold in this thread only, and the program must be traced under them.
        if not compiled:
            with _progress.compiling(report, f"{getattr(run.value, '__name__', 'fn')} for {num_runs:,} runs"), \
                    _progress.held_interrupt():  # a compile left running at exit crashes the process
                compiled.append(functools.partial(_program, **settings) if debug else
                                _program.lower(*arguments(0), key, shared_global, **settings).compile())

    def dispatch(args):  # one call, dispatched asynchronously
        with _compat.enable_x64(x64):  # from another thread: its arguments' dtypes as the caller's
            return compiled[0](*args, key, shared_global)

    def fetch(result):  # its metrics as host arrays, one per leaf
        leaves = jax.tree_util.tree_leaves(result)
        impls[:] = [_key_impl(x) for x in leaves]
        return [_host(x) for x in leaves]

    impls = []  # the key type of each metric (None: not a key), seen on the device

    ahead = {}  # calls computed for a piece before, not all of whose runs it held: the next pieces' (a piece
    # smaller than a call, or than a call per thread, costs no more than its runs)

    def piece(start, stop):  # runs [start, stop) as host arrays, one per leaf
        first, todo = start // group, range(start // group, -(-stop // group))
        done = dict(ahead)  # call -> its metrics on the host
        ready()
        try:
            if threads > 1:  # a call for every thread, the next pieces' too when this one holds fewer
                new = [g for g in range(first, min(first + max(len(todo), threads), layout.num_calls))
                       if g not in done]
                _progress.in_calls(lambda g: done.__setitem__(g, fetch(jax.block_until_ready(dispatch(
                    arguments(g))))), new, threads)
            else:  # two calls in flight (the next one's inputs picked while one runs), waited for in sleeps
                pending = []  # that Ctrl-C interrupts; on Ctrl-C the calls in flight end first (a fraction of
                try:  # a second): no program runs on while the process exits
                    new = [g for g in todo if g not in done]
                    for g in new:
                        pending.append((g, dispatch(arguments(g))))
                        while len(pending) == 2 or (pending and g == new[-1]):
                            _progress.wait(jax.tree_util.tree_leaves(pending[0][1]))
                            g0, r0 = pending.pop(0)
                            done[g0] = fetch(r0)
                except KeyboardInterrupt:
                    for g0, r0 in pending:
                        done[g0] = fetch(jax.block_until_ready(r0))
                    raise
        except KeyboardInterrupt:  # the runs of the calls finished in a row from the first: a piece of their own
            end = next((g for g in todo if g not in done), todo[-1] + 1)
            cut = min(stop, end * group)
            raise results.Interrupted(cut, None if cut <= start else [
                np.concatenate(p)[start - first * group: cut - first * group]
                for p in zip(*(done[g] for g in range(first, end)))]) from None
        ahead.clear()
        ahead.update((g, r) for g, r in done.items() if g >= todo[-1])
        return [np.concatenate(p)[start - first * group: stop - first * group] for p in zip(*(done[g] for g in todo))]

    if out is None:
        parts = []
        for start in range(0, num_runs, piece_runs):
            parts.append(piece(start, min(start + piece_runs, num_runs)))
            if report:
                report(min(start + piece_runs, num_runs), num_runs)
        leaves = [_on_device(np.concatenate(p).reshape(shape + p[0].shape[1:]), impl, mesh, gather)
                  for p, impl in zip(zip(*parts), impls)]
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_info), leaves)

    def named(start, stop):  # a piece's metrics by name; the finished runs of an interrupted one too
        try:
            return dict(zip(stems, piece(start, stop)))
        except results.Interrupted as e:
            raise results.Interrupted(e.stop, e.arrays and dict(zip(stems, e.arrays))) from None

    try:
        arrays = results.run_pieces(out, config, num_runs, piece_runs, fields, named, extra=extra, grid_shape=shape,
                                    progress=report)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted; {results.kept(out)}; call again with the same arguments to resume") \
            from None
    metrics = [arrays[n] for n in stems]
    return jax.tree_util.tree_unflatten(treedef, metrics)


def _on_device(x: np.ndarray, impl, mesh, gather: bool):
    """A joined host result on the mesh's first device (with several processes, on every device: each process
    holds the whole result), as a key array of ``impl`` unless that is None."""
    x = _global(x, mesh) if gather else jax.device_put(x, mesh.devices.flat[0])
    return x if impl is None else jax.random.wrap_key_data(x, impl=impl)


def _pick(coords: Coords, names: tuple, runs):
    """The coordinates of runs ``runs`` (run numbers, NumPy or JAX): each of ``names``' values and the run's index
    on the ``"seed"`` axis (seed i runs with ``fold_in(key, i)``, whatever the axis' coordinate is named)."""
    shape = coords.shape
    index = {d: (runs // math.prod(shape[i + 1:])) % shape[i] for i, d in enumerate(coords.axes)}
    by_name = dict(zip(coords.names, zip(coords.dims, coords.values)))
    values = [jax.tree_util.tree_map(lambda v: v[index[dim]], value) for dim, value in (by_name[n] for n in names)]
    return values, index["seed"] if "seed" in index else runs * 0


class _Inputs:
    """The coordinates of the runs of each call, picked on the host: call ``g`` holds runs ``[g * size, (g + 1) *
    size)`` (the last call repeats the last run)."""

    def __init__(self, coords: Coords, names: tuple, size: int):
        self.coords = jax.tree_util.tree_map(_host, coords)  # keys as key data
        self.names, self.size, self.num_runs = names, size, math.prod(coords.shape)

    def at(self, g: int):
        runs = np.minimum(np.arange(g * self.size, (g + 1) * self.size, dtype=np.int64), self.num_runs - 1)
        values, seeds = _pick(self.coords, self.names, runs)
        return values, seeds.astype(np.int32)


def _run_traced(settings, coords: Coords, key, shared, layout: Plan):
    """The runs inside the caller's ``jit`` or ``vmap``: every call of the chunk program one after another under
    ``lax.map``, the coordinates picked on the device; the metrics on the grid's axes."""
    num_runs, group = layout.num_runs, layout.runs_per_call
    runs = jnp.minimum(jnp.arange(layout.num_calls * group, dtype=jnp.int32), num_runs - 1)
    values, seeds = _pick(jax.tree_util.tree_map(lambda v: jnp.asarray(_key_data(v)), coords), settings["names"], runs)
    calls = lambda x: x.reshape((layout.num_calls, group) + x.shape[1:])
    out = lax.map(lambda a: _program(a[0], a[1], key, shared, **settings),
                  jax.tree_util.tree_map(calls, (values, seeds)))
    shape = coords.shape
    return jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:])[:num_runs].reshape(shape + x.shape[2:]), out)


def _key_data(x):
    return jax.random.key_data(x) if _is_key(x) else x


# ---------------------------------------------------------------- the public entry point


def _check_axes(axes, product, what="axes"):
    if not isinstance(axes, Mapping) or not axes:
        raise ValueError(f"{what} must be a non-empty dict name -> 1-D array, got {axes!r}")
    items = []
    for name, values in axes.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{what}: names must be identifiers, got {name!r}")
        if name in ("seed", "point"):
            raise ValueError(f"{what}: {name!r} is reserved (the seed axis and zipped points)")
        if _validate.is_traced(values):
            items.append((name, values))
            continue
        try:
            a = np.asarray(values)
        except (TypeError, ValueError):
            raise TypeError(f"{what}[{name!r}] must be a 1-D array of numbers, got {values!r}") from None
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"{what}[{name!r}] must be a non-empty 1-D array, got shape {a.shape}")
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
            raise TypeError(f"{what}[{name!r}] must hold real numbers, got dtype {a.dtype}")
        canonical = np.dtype(jax.dtypes.canonicalize_dtype(a.dtype))  # what the run sees (int32 without x64)
        if np.issubdtype(a.dtype, np.floating):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{what}[{name!r}] must be finite, got {a[~np.isfinite(a)][:3].tolist()}")
            _validate.representable(a, f"{what}[{name!r}]", canonical)
            a = a.astype(canonical)
        elif np.issubdtype(a.dtype, np.integer) and canonical != a.dtype:
            info = np.iinfo(canonical)
            if not (info.min <= int(a.min()) and int(a.max()) <= info.max):
                outside = [int(v) for v in a if not info.min <= int(v) <= info.max]
                raise _validate.InvalidArgument(
                    f"{what}[{name!r}] {outside[:3]} cannot be represented in {canonical} (the runs' integers: "
                    f"they would wrap around there); use values within [{info.min:,}, {info.max:,}], floats, or "
                    "jax.config.update('jax_enable_x64', True)")
        items.append((name, a))
    if not product:
        lengths = {name: np.shape(v)[0] for name, v in items}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"product=False zips the axes, so they need equal lengths, got {lengths}")
    return items


def _check_static(static, axis_names) -> list:
    """``static`` as a list of (name, tuple of Python values), checked (naming ``static``) before anything is traced."""
    if static is None:
        return []
    if not isinstance(static, Mapping) or not static:
        raise _validate.InvalidArgument(f"static must be a non-empty dict name -> list of Python values, got {static!r}")
    items = []
    for name, values in static.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise _validate.InvalidArgument(f"static: names must be identifiers, got {name!r}")
        if name in ("seed", "point"):
            raise _validate.InvalidArgument(f"static: {name!r} is reserved (the seed axis and zipped points)")
        if name in axis_names:
            raise _validate.InvalidArgument(f"static[{name!r}]: {name!r} is also in axes; name it in one of them")
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (Sequence, np.ndarray)):
            raise _validate.InvalidArgument(
                f"static[{name!r}] must be a list of values (ints, floats, strings, bools), got {values!r}")
        if isinstance(values, np.ndarray) and values.ndim != 1:
            raise _validate.InvalidArgument(f"static[{name!r}] must be 1-D, got shape {values.shape}")
        values = tuple(v.item() if isinstance(v, np.generic) else v for v in values)  # NumPy scalars as Python's
        if not values:
            raise _validate.InvalidArgument(f"static[{name!r}] is empty; give at least one value")
        bad = [v for v in values if not isinstance(v, (bool, int, float, str))]
        if bad:
            raise _validate.InvalidArgument(
                f"static[{name!r}] must hold ints, floats, strings or bools (fn receives each as a plain Python "
                f"value), got {bad[0]!r} of type {type(bad[0]).__name__}")
        if len({isinstance(v, str) for v in values}) > 1:
            raise _validate.InvalidArgument(f"static[{name!r}] mixes strings and numbers: {list(values)!r}")
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise _validate.InvalidArgument(f"static[{name!r}] must be finite, got {list(values)!r}")
        if len(set(values)) < len(values):
            repeated = sorted({repr(v) for v in values if values.count(v) > 1})
            raise _validate.InvalidArgument(f"static[{name!r}] repeats {', '.join(repeated)} (1, 1.0 and True are "
                                            "one value); give each value once")
        if np.asarray(values).dtype == object:
            raise _validate.InvalidArgument(f"static[{name!r}] has integers too large for a label: {list(values)!r}")
        items.append((name, values))
    return items


_SAFE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,47}")


def _static_folder(items, combo) -> str:
    """The sub-folder of ``out`` for one combination of static values, e.g. ``width=32,opt=adam``.

    A value whose text is not a plain file name, or collides with another value's (``1`` and ``"1"``, ``Adam`` and
    ``adam`` on a case-insensitive disk), is written as a digest of its type and ``repr``.
    """
    parts = []
    for (name, values), value in zip(items, combo):
        texts = [str(v) for v in values]
        if not all(_SAFE_NAME.fullmatch(t) for t in texts) or len({t.lower() for t in texts}) < len(texts):
            text = hashlib.sha256(repr((type(value).__name__, value)).encode()).hexdigest()[:12]
        else:
            text = str(value)
        parts.append(f"{name}={text}")
    return ",".join(parts)


def sweep_fn(
    fn: Callable[[dict, jax.Array], Any],
    axes: Mapping[str, Any],
    *,
    static: Optional[Mapping[str, Sequence]] = None,
    seeds: Optional[int] = None,
    key: Optional[jax.Array] = None,
    product: bool = True,
    chunk_size: Optional[int] = None,
    devices: Optional[Sequence[jax.Device]] = None,
    out=None,
    piece_runs: Optional[int] = None,
    progress: _progress.Progress = True,
) -> Runs:
    """Runs ``fn(hp, key)`` for every point of a grid (or a list) of hyperparameters × seeds, as one program.

    ``fn`` is any pure function of a dict of traced scalars and a key that
    returns a pytree of arrays: a whole training, a loss after N steps, a
    gradient-descent run. The grid compiles once; new values of the same
    shapes (and the same ``fn`` object) reuse the compilation.

    Args:
      fn: ``fn(hp, key) -> metrics``; ``hp`` maps each axis name to one value.
      axes: name → 1-D array of values. The grid is their outer product, in
        order (the first axis varies slowest). ``{}`` with ``static`` and
        ``seeds``: the static values × seeds alone.
      static: name → list of Python values (ints, floats, strings, bools)
        that ``fn`` needs as plain Python values in ``hp[name]``: a hidden
        width, a number of steps, a warmup length, an optimizer's name. Each
        combination (their outer product) is compiled once and run after the
        one before; the result's axes are the static names first (in order),
        then ``axes``, then ``"seed"``. Every combination runs with the same
        keys (seed i is ``fold_in(key, i)`` in each), and must return metrics
        of the same structure, shapes and dtypes. With ``out``, each
        combination is saved in its own sub-folder of ``out``
        (``width=32,opt=adam``): a later call with more values of the same
        static names loads the combinations already there.
      seeds: ``K`` adds a last axis ``"seed"`` of length K; seed i uses
        ``jax.random.fold_in(key, i)``, so a run's key never depends on K, the
        chunking or the devices. ``None``: no seed axis, every run gets
        ``fold_in(key, 0)`` (the same as seed 0).
      key: the root key, default ``jax.random.key(0)``.
      product: ``False`` zips the axes (equal lengths) into one axis ``"point"``,
        e.g. for the points of :func:`jaxdescent.sample`.
      chunk_size: runs vmapped together on a device; memory is O(chunk_size).
        ``None``: on GPU/TPU 2²⁰; on CPU chosen from ``fn``'s program by a
        cost model (:mod:`jaxdescent._cost`): one run at a time when its
        operations are large matrix products, else as many as keep every core
        busy (at most 256), whole rows of seeds. A run's last bits depend on
        the chunk: pass it to get the same bits on a machine with other cores.
      devices: the devices to split the runs over (a list of ``jax.Device``),
        default ``jax.devices()``.
      out: a folder: finished pieces are saved there and a rerun after a crash
        resumes from them; a second call with the same arguments loads the
        saved result. A folder holding another run is refused. A saved run
        is recognised by its program (``fn``'s jaxpr and constants), so an
        ``fn`` that calls back into Python (``jax.pure_callback``,
        ``jax.experimental.io_callback``, ``jax.debug.callback``) is refused:
        the program shows the callback but not its Python body, and another
        body would load these results (``jax.debug.print``, whose format is
        part of the program, is allowed).
      piece_runs: runs per piece: progress is reported, and with ``out``
        saved, after each. ``None``: about 30 s of estimated work.
      progress: ``True``: a bar on stderr when a terminal or a notebook shows
        it; ``False``: none; or a callable ``progress(runs_done, num_runs)``.
        Ctrl-C raises ``KeyboardInterrupt`` within seconds (split over CPU
        threads, once they end their share of the piece); with ``out``
        every finished piece is kept and a rerun resumes.

    Returns:
      :class:`Runs` with ``.metrics`` (``fn``'s pytree, run axes first),
      ``.axes``, ``.coords``, ``.to_pandas()`` and ``.top(metric, k)``.

    Examples:
      >>> import jax, numpy as np
      >>> from jaxdescent import sweep_fn
      >>> def run(hp, key):
      ...     noise = jax.random.normal(key)
      ...     return {"y": hp["a"] * hp["b"], "noisy": hp["a"] + 0 * noise}
      >>> out = sweep_fn(run, {"a": np.array([1.0, 2.0]), "b": np.array([10.0, 20.0, 30.0])}, seeds=2)
      >>> out.axes, out.metrics["y"].shape
      (('a', 'b', 'seed'), (2, 3, 2))
      >>> out.to_pandas().head(3)
           a     b  seed  noisy     y
      0  1.0  10.0     0    1.0  10.0
      1  1.0  10.0     1    1.0  10.0
      2  1.0  20.0     0    1.0  20.0

      Step counts are Python ints under ``static``, so optax's schedules take them (the learning rate stays traced):

      >>> import jax.numpy as jnp, optax
      >>> def train(hp, key):
      ...     schedule = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=hp["warmup"],
      ...                                                   decay_steps=hp["num_steps"])
      ...     w = jax.lax.fori_loop(0, hp["num_steps"], lambda i, w: w - hp["lr"] * schedule(i) * 2 * w, 1.0)
      ...     return {"loss": w**2}
      >>> runs = sweep_fn(train, {"lr": np.array([0.1, 0.3])}, static={"num_steps": [10, 40], "warmup": [0, 5]},
      ...                 progress=False)
      >>> runs.axes, runs.metrics["loss"].shape
      (('num_steps', 'warmup', 'lr'), (2, 2, 2))
      >>> best = runs.top("loss")[0]
      >>> best["num_steps"], best["warmup"], round(best["lr"], 2)
      (40, 0, 0.3)
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable as fn(hp, key), got {fn!r}")
    # Static values and seeds alone are a sweep too: axes may then be {}.
    only_static = isinstance(axes, Mapping) and not axes and static is not None and seeds is not None
    items = [] if only_static else _check_axes(axes, product)
    static_items = _check_static(static, [name for name, _ in items])
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
            raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
        seeds = int(seeds)
    key = jax.random.key(0) if key is None else key
    if not _validate.is_traced(key) and not (isinstance(key, jax.Array)
                                             and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()):
        if isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,):
            key = jax.random.wrap_key_data(key)
        else:
            raise TypeError(f"key must be one jax.random.key(...), got {key!r}")
    check_counts(chunk_size=chunk_size, piece_runs=piece_runs)
    check_out_devices(out, devices)
    report = _progress.callback(progress)  # checked before compiling
    # One run function per combination of static values (just fn without static): each is its own program.
    combos = list(itertools.product(*(values for _, values in static_items)))
    runs = [WithStatic(fn, tuple(zip([n for n, _ in static_items], combo))) if static_items else fn for combo in combos]
    hp_dtypes = tuple((name, np.asarray(v).dtype if not _validate.is_traced(v) else v.dtype) for name, v in items)
    shapes = []
    for run, combo in zip(runs, combos):
        where = f" with static values {dict(run.values)}" if static_items else ""
        try:
            out_shape = _output_shapes(run, hp_dtypes)
        except Exception as e:  # an InvalidArgument stays one (fn's own check, e.g. stepwise's, named an argument)
            error = _validate.InvalidArgument if isinstance(e, _validate.InvalidArgument) else TypeError
            raise error(f"fn failed on hp={{{', '.join(name for name, _ in hp_dtypes)}}} (traced scalars) and a "
                        f"key{where}: {type(e).__name__}: {e}") from e
        for leaf in jax.tree_util.tree_leaves(out_shape):
            if not isinstance(leaf, jax.ShapeDtypeStruct):
                raise TypeError(f"fn must return a pytree of arrays, got a leaf {leaf!r}")
        shapes.append((jax.tree_util.tree_structure(out_shape),
                       [(x.shape, x.dtype) for x in jax.tree_util.tree_leaves(out_shape)], where))
    for tree, leaves, where in shapes[1:]:
        if (tree, leaves) != shapes[0][:2]:
            raise _validate.InvalidArgument(
                f"static: fn must return metrics of the same structure, shapes and dtypes for every combination of "
                f"static values, but{shapes[0][2]} it returns {shapes[0][0]} {shapes[0][1]} and{where} {tree} "
                f"{leaves}; sweep those values in separate calls")
    # The size, before anything per run (the seed coordinate) is built.
    lengths = [np.shape(v)[0] for _, v in items]
    num_runs = (math.prod(lengths) if product or not lengths else lengths[0]) * (seeds or 1)
    per_run = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(out_shape))
    check_size(num_runs * len(combos), per_run, what="static x axes x seeds" if static_items else
               "axes x seeds" if seeds is not None else "axes", extra=4 * (seeds or 0))
    if seeds is not None:
        items.append(("seed", np.arange(seeds, dtype=np.int32)))
    dims = None
    if not product:
        dims = ["point"] * (len(items) - (seeds is not None)) + (["seed"] if seeds is not None else [])
    coords = Coords(items, dims)
    describe = {"seeds": seeds, "product": product}
    if not static_items:
        metrics = run_grid(fn, coords, key=key, chunk_size=chunk_size, devices=devices, out=out,
                           piece_runs=None if piece_runs is None else int(piece_runs), progress=report,
                           describe=describe)
        return Runs(metrics, coords)
    if out is not None:  # one sub-folder per combination inside out (see _static_folder)
        from jaxdescent import results

        container = {"static": [name for name, _ in static_items]}
        try:  # a folder of this kind already: nothing written (a finished sweep may be on read-only media)
            ready = json.loads((pathlib.Path(out) / "config.json").read_text()) == container
        except (OSError, ValueError):
            ready = False
        if not ready:
            with results.lock(results.folder(out)):
                results.prepare(out, container)
    parts = []
    for i, (run, combo) in enumerate(zip(runs, combos)):
        # Progress over the whole sweep: combination i's runs come after those of the i before it.
        each = None if report is None else _progress.relay(
            report, lambda done, total, i=i: report(i * total + done, len(combos) * total))
        parts.append(run_grid(run, coords, key=key, chunk_size=chunk_size, devices=devices,
                              out=None if out is None else os.path.join(out, _static_folder(static_items, combo)),
                              piece_runs=None if piece_runs is None else int(piece_runs), progress=each,
                              describe={**describe, "static": dict(run.values)}))
    static_shape = tuple(len(values) for _, values in static_items)
    device = jax.devices()[0] if devices is None else list(devices)[0]

    def join(*xs):  # on the host (nothing to compile), back on the device where the runs were
        if _validate.is_traced(xs):
            return jnp.stack(xs).reshape(static_shape + xs[0].shape)
        joined = np.stack([_host(x) for x in xs])
        joined = joined.reshape(static_shape + joined.shape[1:])
        if isinstance(xs[0], np.ndarray):  # loaded from out=
            return joined
        impl = _key_impl(xs[0])
        joined = jax.device_put(joined, device)
        return joined if impl is None else jax.random.wrap_key_data(joined, impl=impl)

    metrics = jax.tree_util.tree_map(join, *parts)
    labels = [(name, np.asarray(values)) for name, values in static_items]
    return Runs(metrics, Coords(labels + list(zip(coords.names, coords.values)),
                                [name for name, _ in static_items] + list(coords.dims)))
