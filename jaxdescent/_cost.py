"""The default chunk: how many runs a CPU sweep vmaps together, from a cost model of one run's program.

Vmapping runs together pays where a run is many small operations: XLA's
fixed cost per operation (a kernel call, a loop iteration) is shared by the
runs of a chunk, elementwise code is vectorised across them, and what a run
computes from its seed alone (initial weights, minibatch draws, dropout
masks) is computed once per seed for every point of the chunk (see
``_engine._launch``). It does not pay where a run is already large matrix
products: XLA's CPU code for a batched product is slower than for the one
product (seen: a full-batch MLP, 1437 × 64 inputs, 1.4x slower per run at
any width from 2 to 32 than one run at a time).

The model reads one run's program (its jaxpr, loop bodies counted as many
times as they run; nothing is compiled for it):

* **work per operation** = (flops of its matrix products and convolutions +
  elements produced by every other operation) / operations executed. At
  ``LARGE_OPERATION_FLOPS`` or more the run is one run per chunk: its
  operations are large enough to run at full speed alone.
* otherwise the chunk is as wide as keeps every core busy (at least one chunk
  per core: ``ceil(runs / cores)``), at most ``CHUNK_SIZE`` runs, and at most
  ``CHUNK_BYTES`` of the runs' working memory (the largest operation's inputs
  and outputs, a lower bound on one run's, × the chunk).
* then it is aligned to the seeds (or keys): a whole number of rows of
  seeds, or a part of one row, so that the seed-only work is shared.

Pieces (what a sweep computes between two reports of progress, and saves
with ``out=``) hold about ``PIECE_SECONDS`` of estimated work: one run is
estimated at ``work / WORK_PER_SECOND + operations * SECONDS_PER_OPERATION /
chunk`` on one core (a chunk shares each operation's fixed cost; rates below
the ones measured on a 2-core x86 CPU, so pieces come out shorter rather than
longer), a piece is a whole number of chunks per core (at least one), and at
most ``most`` runs (the engine's ``PIECE_RUNS`` with ``out=``, where a piece
is a file).

It is deterministic: the same run, grid and core count give the same chunk,
and with it the same bits. Pass ``chunk_size`` to fix it across machines.
"""

import math
from typing import NamedTuple

CHUNK_SIZE = 256  # the widest CPU chunk: 256 one-parameter runs of the sextic stay in L1 across steps
LARGE_OPERATION_FLOPS = 1 << 16  # work per operation at which a run runs alone (a 64 x 32 x 32 product)
CHUNK_BYTES = 1 << 28  # the most working memory a chunk may hold (memory is O(chunk))
PIECE_SECONDS = 30.0  # estimated work per piece, on all cores
WORK_PER_SECOND = 1e10  # one core; measured: 4e10 (minibatch MLP), 6e10 (full-batch MLP)
SECONDS_PER_OPERATION = 1e-8  # one core, per operation of a chunk; measured: 2e-9 (the sextic's chunk of 256)


class RunCost(NamedTuple):
    """What one run executes: ``operations`` (primitives, loop bodies × trip counts), ``work`` (product flops plus
    elements of other operations, likewise) and ``peak_bytes`` (its largest operation's inputs and outputs)."""

    operations: float
    work: float
    peak_bytes: int

    @property
    def work_per_operation(self) -> float:
        return self.work / max(self.operations, 1.0)


def _inner_jaxprs(eqn):
    """(jaxpr, times it runs per run of ``eqn``) for each jaxpr inside ``eqn`` (loop bodies, branches, calls)."""
    params = eqn.params
    if eqn.primitive.name == "scan":
        return [(params["jaxpr"].jaxpr, params["length"])]
    if eqn.primitive.name == "while":
        # A while loop's trip count is unknown here (fori_loop with static bounds is a scan): counted once.
        return [(params["body_jaxpr"].jaxpr, 1), (params["cond_jaxpr"].jaxpr, 1)]
    if eqn.primitive.name == "cond":  # one branch runs: the costliest is counted
        costs = [count(b.jaxpr).work for b in params["branches"]]
        return [(params["branches"][costs.index(max(costs))].jaxpr, 1)]
    found = []
    for value in params.values():
        inner = getattr(value, "jaxpr", value)
        if hasattr(inner, "eqns"):
            found.append((inner, 1))
    return found


def _bytes(variables) -> int:
    return sum(math.prod(v.aval.shape) * v.aval.dtype.itemsize for v in variables if hasattr(v.aval, "shape"))


def count(jaxpr) -> RunCost:
    """The :class:`RunCost` of one evaluation of ``jaxpr``."""
    operations = work = 0.0
    peak = 0
    for eqn in jaxpr.eqns:
        inner = _inner_jaxprs(eqn)
        if inner:
            for sub, times in inner:
                ops, w, p = count(sub)
                operations, work, peak = operations + times * ops, work + times * w, max(peak, p)
            continue
        peak = max(peak, _bytes(eqn.invars) + _bytes(eqn.outvars))
        size = sum(math.prod(getattr(v.aval, "shape", ())) for v in eqn.outvars)
        if eqn.primitive.name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            size *= 2 * math.prod(eqn.invars[0].aval.shape[i] for i in contracting)
        elif eqn.primitive.name == "conv_general_dilated":  # each output: a product over the kernel's window
            kernel = eqn.invars[1].aval.shape
            size *= 2 * math.prod(kernel) // kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
        operations, work = operations + 1, work + size
    return RunCost(operations, work, peak)


def cpu_chunk(cost: RunCost, *, num_runs: int, cores: int, row: int = 1) -> int:
    """The default CPU chunk for runs of ``cost`` (see the module docstring); ``row`` is the seeds' (keys') count."""
    if cost.work_per_operation >= LARGE_OPERATION_FLOPS:
        return 1
    chunk = min(CHUNK_SIZE, -(-num_runs // max(cores, 1)), max(1, CHUNK_BYTES // max(cost.peak_bytes, 1)))
    if row > 1:
        chunk = chunk - chunk % row if chunk >= row else max(d for d in range(1, chunk + 1) if row % d == 0)
    return max(1, chunk)


def seconds(cost: RunCost, chunk: int = 1) -> float:
    """One run's estimated time on one core in a chunk of ``chunk`` runs (an overestimate: see the module
    docstring)."""
    return cost.work / WORK_PER_SECOND + cost.operations * SECONDS_PER_OPERATION / max(chunk, 1)


def piece_runs(cost: RunCost, *, chunk: int, cores: int, most: int) -> int:
    """Runs per piece: about ``PIECE_SECONDS`` of estimated work on ``cores`` cores, whole chunks for each core,
    at most ``most``."""
    block = chunk * max(cores, 1)
    runs = PIECE_SECONDS * max(cores, 1) / max(seconds(cost, chunk), 1e-12)
    return min(most, max(block, int(min(runs, most)) // block * block))
