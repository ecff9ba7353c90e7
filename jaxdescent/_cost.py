"""The default chunk: how many runs a CPU sweep vmaps together, from a cost model of one run's program.

Vmapping runs together pays where a run is many small operations: XLA's
fixed cost per operation (a kernel call, a loop iteration) is shared by the
runs of a chunk, elementwise code is vectorised across them, and what a run
computes from its seed alone (initial weights, minibatch draws, dropout
masks) is computed once per seed for every point of the chunk (see
``_engine._chunk_program``). It does not pay where a run is already large matrix
products: XLA's CPU code for a batched product is slower than for the one
product (seen: a full-batch MLP, 1437 × 64 inputs, 1.4x slower per run at
any width from 2 to 32 than one run at a time).

The model reads one run's program (its jaxpr, loop bodies counted as many
times as they run, a ``while`` loop as many as its code bounds it to; nothing
is compiled for it), knowing what each input
varies with: the point's hyperparameters, the seed (or key), or neither:

* **work per operation** = (flops of its matrix products and convolutions +
  elements produced by every other operation) / operations executed. At
  ``LARGE_OPERATION_FLOPS`` or more the run is one run per chunk: its
  operations are large enough to run at full speed alone.
* otherwise the chunk is as wide as keeps every core busy (at least one chunk
  per core: ``ceil(runs / cores)``), at most ``CHUNK_SIZE`` runs, and at most
  ``CHUNK_BYTES`` of the runs' working memory (the largest operation's inputs
  and outputs, a lower bound on one run's, × the chunk).
* a run that computes little from its seed alone (seed-only operations under
  ``SEED_SHARE`` of those executed, or no seed axis) gains nothing more from
  width once its operations' fixed cost is shared, and loses once the chunk's
  values outgrow the cache: the chunk is at most the power of two of runs
  whose loop body writes a core's own cache per pass (its size read from the
  OS: :func:`core_cache_bytes`) (seen: the step network,
  27 kB a pass, 1.2x slower at 256 runs than at 32). A run that draws every
  step (minibatches, dropout) keeps the wide chunk: its rows of seeds compute
  those draws once for all their points (seen: a minibatch MLP, 3x faster
  at 16 points a chunk than at 1).
* a convolution whose kernel varies per run is, vmapped, one grouped
  convolution, which XLA's CPU code runs slower per run as the groups grow:
  at most ``CONVOLUTION_CHUNK`` runs (seen: 1.5x slower at 16 than at 8).
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

import functools
import glob
import math
import operator
from pathlib import Path
from typing import NamedTuple, Optional

from jax.extend.core import Literal

CHUNK_SIZE = 256  # the widest CPU chunk: 256 one-parameter runs of the sextic stay in L1 across steps
LARGE_OPERATION_FLOPS = 1 << 16  # work per operation at which a run runs alone (a 64 x 32 x 32 product)
CHUNK_BYTES = 1 << 28  # the most working memory a chunk may hold (memory is O(chunk))
CACHE_BYTES = 1 << 20  # a core's own cache where the OS does not say (see core_cache_bytes): 1-2 MiB L2 on x86
SEED_SHARE = 0.01  # seed-only operations (of all executed) from which rows of seeds share them instead
CONVOLUTION_CHUNK = 8  # the widest chunk of runs whose convolution kernels vary: one grouped convolution
PIECE_SECONDS = 30.0  # estimated work per piece, on all cores
WORK_PER_SECOND = 1e10  # one core; measured: 4e10 (minibatch MLP), 6e10 (full-batch MLP)
SECONDS_PER_OPERATION = 1e-8  # one core, per operation of a chunk; measured: 2e-9 (the sextic's chunk of 256)
# Estimated work per call of the program, so that its fixed host cost (~0.3 ms: picking its runs, transfers,
# dispatch, reading back) stays small. Measured on the 10^6-run sextic sweep (whose estimate runs ~40x high), in
# seconds for all runs at 0.005 / 0.05 / 0.2 / 1: 0.46 / 0.16 / 0.13 / 0.14 (experiments/benchmarks/sweep_throughput.py).
CALL_SECONDS = 0.2
MOST_CHUNKS_PER_CALL = 256  # a call of many tiny chunks stays one loop; padding a grid's last call stays cheap


# What a value of one run's program varies with: the point's hyperparameters, the seed (or key), both, neither.
CONSTANT, POINT, SEED = 0, 1, 2  # bit flags: POINT | SEED varies per run


class RunCost(NamedTuple):
    """What one run executes (loop bodies × trip counts).

    Attributes:
      operations: primitives executed.
      work: product and convolution flops plus the elements every other operation produces.
      peak_bytes: its largest operation's inputs and outputs.
      seed_operations: operations whose values vary with the seed (or key) alone: a chunk of whole rows of
        seeds computes them once per seed for all its points.
      step_bytes: the most bytes one pass of a loop body (of the run, if it has no loop) writes that vary per
        run: a chunk of ``c`` runs writes ``c`` times as much.
      batched_convolution: a convolution whose kernel varies per run: vmapped, it is one grouped convolution.
    """

    operations: float
    work: float
    peak_bytes: int
    seed_operations: float = 0.0
    step_bytes: int = 0
    batched_convolution: bool = False

    @property
    def work_per_operation(self) -> float:
        return self.work / max(self.operations, 1.0)


def _bytes(variables) -> int:
    return sum(math.prod(v.aval.shape) * v.aval.dtype.itemsize for v in variables if hasattr(v.aval, "shape"))


def _work(eqn) -> int:
    size = sum(math.prod(getattr(v.aval, "shape", ())) for v in eqn.outvars)
    if eqn.primitive.name == "dot_general":
        (contracting, _), _ = eqn.params["dimension_numbers"]
        size *= 2 * math.prod(eqn.invars[0].aval.shape[i] for i in contracting)
    elif eqn.primitive.name == "conv_general_dilated":  # each output: a product over the kernel's window
        kernel = eqn.invars[1].aval.shape
        size *= 2 * math.prod(kernel) // kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
    return size


class _Tally:
    def __init__(self):
        self.operations = self.work = self.seed_operations = 0.0
        self.peak_bytes = self.step_bytes = 0
        self.batched_convolution = self.loops = False

    def add(self, other: "_Tally") -> None:
        self.operations += other.operations
        self.work += other.work
        self.seed_operations += other.seed_operations
        self.peak_bytes = max(self.peak_bytes, other.peak_bytes)
        self.step_bytes = max(self.step_bytes, other.step_bytes)
        self.batched_convolution |= other.batched_convolution
        self.loops |= other.loops


def _called(eqn, n: int):
    """The jaxpr a call-like primitive (pjit, custom_jvp/vjp, remat) runs on its ``n`` inputs, else None."""
    for value in eqn.params.values():
        inner = getattr(value, "jaxpr", value)
        if hasattr(inner, "eqns") and len(inner.invars) == n:
            return inner
    return None


def _loop(body, consts: list, carry: list, rest: list) -> list:
    """The carry's classes at the loop's fixed point (a carry that varies in any pass varies in all)."""
    for _ in range(3):  # two bits: at most two widenings
        out, _ = _walk(body, consts + carry + rest, 0, _Tally())
        widened = [a | b for a, b in zip(carry, out)]
        if widened == carry:
            break
        carry = widened
    return carry


def _pass(jaxpr, classes: list, times: float, tally: _Tally) -> list:
    """:func:`_walk` for a loop body: one pass's bytes are a candidate for ``step_bytes``."""
    outs, written = _walk(jaxpr, classes, times, tally)
    tally.step_bytes = max(tally.step_bytes, written)
    tally.loops = True
    return outs


def _number(v) -> Optional[float]:
    return float(v.val) if isinstance(v, Literal) and getattr(v.val, "shape", ()) == () else None


def _trips(eqn) -> Optional[float]:
    """A ``while`` loop's passes as its code bounds them, or None: its condition compares a counter (carried from
    a literal start, the body adding a literal step) with a literal bound, or with a carry the body passes through
    unchanged from a literal (``fori_loop(0, n, ...)`` with ``n`` a Python int inside ``lax.cond``, ``stepwise``,
    ``stop_early``, ``every=``). Other tests in the condition (a run that stops early) can only end it sooner:
    the bound is what the run may cost, as a piece's size must assume."""
    p = eqn.params
    cond, body = p["cond_jaxpr"].jaxpr, p["body_jaxpr"].jaxpr
    nc, nb = p["cond_nconsts"], p["body_nconsts"]
    init, carried = eqn.invars[nc + nb:], cond.invars[nc:]

    def start(j):
        return _number(init[j])

    def value(v):  # a literal, or a carry that stays as it started
        if isinstance(v, Literal):
            return _number(v)
        j = next((j for j, c in enumerate(carried) if c is v), None)
        return start(j) if j is not None and body.outvars[j] is body.invars[nb + j] else None

    def step(j):  # the literal the body adds to carry j
        out = body.outvars[j]
        for e in body.eqns:
            if e.primitive.name == "add" and e.outvars[0] is out and body.invars[nb + j] in e.invars:
                return next((x for x in map(_number, e.invars) if x is not None), None)
        return None

    found = []
    for e in cond.eqns:
        name, (a, b) = e.primitive.name, (e.invars + [None, None])[:2]
        if name in ("gt", "ge"):
            name, a, b = {"gt": "lt", "ge": "le"}[name], b, a
        if name not in ("lt", "le", "ne"):
            continue
        j = next((j for j, c in enumerate(carried) if c is a), None)
        if j is None:
            continue
        first, by, bound = start(j), step(j), value(b)
        if None not in (first, by, bound) and by > 0:
            found.append(max(0.0, math.ceil((bound - first + (by if name == "le" else 0)) / by)))
    return min(found) if found else None


def _walk(jaxpr, classes: list, times: float, tally: _Tally) -> tuple:
    """Adds ``times`` evaluations of ``jaxpr`` (inputs varying as ``classes``) to ``tally``; the outputs' classes
    and the bytes that vary per run written by one evaluation (inner loops aside)."""
    env = dict(zip(jaxpr.invars, classes))
    of = lambda v: CONSTANT if isinstance(v, Literal) else env.get(v, CONSTANT)
    written = 0
    for eqn in jaxpr.eqns:
        ins = [of(v) for v in eqn.invars]
        every = functools.reduce(operator.or_, ins, CONSTANT)
        params, name = eqn.params, eqn.primitive.name
        if name == "scan":
            consts, carried = params["num_consts"], params["num_carry"]
            carry = _loop(params["jaxpr"].jaxpr, ins[:consts], ins[consts:consts + carried], ins[consts + carried:])
            outs = _pass(params["jaxpr"].jaxpr, ins[:consts] + carry + ins[consts + carried:],
                         times * params["length"], tally)
            outs = carry + outs[carried:]
        elif name == "while":  # as many passes as its code bounds it to (see _trips), else counted once
            cond, body = params["cond_nconsts"], params["body_nconsts"]
            trips = _trips(eqn)
            trips = 1 if trips is None else trips
            carry = _loop(params["body_jaxpr"].jaxpr, ins[cond:cond + body], ins[cond + body:], [])
            test = _pass(params["cond_jaxpr"].jaxpr, ins[:cond] + carry, times * (trips + 1), tally)[0]
            _pass(params["body_jaxpr"].jaxpr, ins[cond:cond + body] + carry, times * trips, tally)
            outs = [c | test for c in carry]
        elif name == "cond":  # one branch runs: the costliest is counted
            branches = [(_Tally(), branch.jaxpr) for branch in params["branches"]]
            branches = [(t, *_walk(jaxpr, ins[1:], times, t)) for t, jaxpr in branches]
            costliest, _, bytes_ = max(branches, key=lambda b: b[0].work)
            tally.add(costliest)
            written += bytes_
            outs = [functools.reduce(operator.or_, c, ins[0]) for c in zip(*(b[1] for b in branches))]
        elif (inner := _called(eqn, len(ins))) is not None:
            outs, bytes_ = _walk(inner, ins, times, tally)
            written += bytes_
        else:
            tally.operations += times
            tally.work += times * _work(eqn)
            tally.peak_bytes = max(tally.peak_bytes, _bytes(eqn.invars) + _bytes(eqn.outvars))
            if every == SEED:
                tally.seed_operations += times
            if every != CONSTANT:
                written += _bytes(eqn.outvars)
            if name == "conv_general_dilated" and ins[1] != CONSTANT:
                tally.batched_convolution = True
            outs = [every] * len(eqn.outvars)
        env.update(zip(eqn.outvars, outs))
    return [of(v) for v in jaxpr.outvars], written


def count(jaxpr, classes=None) -> RunCost:
    """The :class:`RunCost` of one evaluation of ``jaxpr`` whose inputs vary as ``classes`` (``POINT``,
    ``SEED``, both or ``CONSTANT``, one per input; default: every input ``POINT``)."""
    tally = _Tally()
    _, written = _walk(jaxpr, list(classes) if classes is not None else [POINT] * len(jaxpr.invars), 1, tally)
    if not tally.loops:  # a run without loops: its one pass
        tally.step_bytes = written
    return RunCost(tally.operations, tally.work, tally.peak_bytes, tally.seed_operations, tally.step_bytes,
                   tally.batched_convolution)


@functools.lru_cache(maxsize=None)
def core_cache_bytes(cpu: str = "/sys/devices/system/cpu/cpu0") -> int:
    """The largest cache of one core's own (not shared with other cores), read from the OS (Linux's sysfs: the
    L2 of an x86 core, 1 MiB on an EPYC, 256 KiB to 2 MiB on Xeons); ``CACHE_BYTES`` where it cannot be read.

    What a chunk's loop body writes in one pass stays in it while the chunk fits (see the module docstring).
    """
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        core = Path(cpu, "topology", "thread_siblings_list").read_text().strip()  # the core's hardware threads
        sizes = []
        for index in glob.glob(f"{cpu}/cache/index*"):
            read = lambda name: Path(index, name).read_text().strip()
            if read("type") in ("Data", "Unified") and read("shared_cpu_list") == core:
                size = read("size")
                sizes.append(int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size))
        return max(sizes) if sizes else CACHE_BYTES
    except (OSError, ValueError):
        return CACHE_BYTES


def _floor_power_of_two(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def cpu_chunk(cost: RunCost, *, num_runs: int, cores: int, row: int = 1) -> int:
    """The default CPU chunk for runs of ``cost`` (see the module docstring); ``row`` is the seeds' (keys') count."""
    if cost.work_per_operation >= LARGE_OPERATION_FLOPS:
        return 1
    chunk = min(CHUNK_SIZE, -(-num_runs // max(cores, 1)), max(1, CHUNK_BYTES // max(cost.peak_bytes, 1)))
    if row == 1 or cost.seed_operations < SEED_SHARE * cost.operations:  # nothing worth sharing: stay in cache
        chunk = min(chunk, _floor_power_of_two(core_cache_bytes() // max(cost.step_bytes, 1)))
    if cost.batched_convolution:
        chunk = min(chunk, CONVOLUTION_CHUNK)
    if row > 1:
        chunk = chunk - chunk % row if chunk >= row else max(d for d in range(1, chunk + 1) if row % d == 0)
    return max(1, chunk)


def seconds(cost: RunCost, chunk: int = 1) -> float:
    """One run's estimated time on one core in a chunk of ``chunk`` runs (an overestimate: see the module
    docstring)."""
    return cost.work / WORK_PER_SECOND + cost.operations * SECONDS_PER_OPERATION / max(chunk, 1)


def chunks_per_call(cost: RunCost, *, chunk: int, num_runs: int, cores: int) -> int:
    """Chunks one call of the program computes (one after another, in a loop): about ``CALL_SECONDS`` of estimated
    work, a power of two, at most ``MOST_CHUNKS_PER_CALL`` and no more than leaves a call for every core. It
    depends on the run and the chunk alone once the grid holds that many calls, so larger grids share the
    program."""
    wanted = CALL_SECONDS / max(chunk * seconds(cost, chunk), 1e-12)
    fill = -(-num_runs // (max(chunk, 1) * max(cores, 1)))
    return _floor_power_of_two(int(max(1, min(wanted, MOST_CHUNKS_PER_CALL, fill))))


def piece_runs(cost: RunCost, *, chunk: int, cores: int, most: int) -> int:
    """Runs per piece: about ``PIECE_SECONDS`` of estimated work on ``cores`` cores, whole chunks for each core,
    at most ``most``."""
    block = chunk * max(cores, 1)
    runs = PIECE_SECONDS * max(cores, 1) / max(seconds(cost, chunk), 1e-12)
    return min(most, max(block, int(min(runs, most)) // block * block))
