"""Searches on stepwise runs: successive halving, population-based training, per-run early stopping.

A *stepwise run* is two pure functions:

* ``init(hp, key) -> state``: any pytree of arrays (parameters, optimizer state,
  a step counter);
* ``advance(hp, state, key, num_steps) -> (state, metrics)``: trains
  ``num_steps`` (a Python int) more steps and measures; ``metrics`` is a dict of
  scalars.

``hp`` is a dict of traced scalars. Every run has a *run key*: seed ``i`` of a
search uses ``jax.random.fold_in(key, i)`` as :func:`jaxdescent.sweep_fn` does
(without seeds every point runs with ``fold_in(key, 0)``), a PBT member ``i``
uses ``fold_in(key, i)``. ``init`` receives the run key, and each stretch of
``advance`` receives ``jax.random.fold_in(run_key, steps_done)``: a stretch's
key depends on the steps done before it, not on the rung, round or block it
belongs to (stretches that start at other steps draw other keys).

With ``every=k`` (and optionally ``stop=``) the searches advance in blocks of
``k`` steps inside a ``lax.while_loop`` and a run stops for good after a block
whose metrics hold a NaN or meet ``stop(metrics)``, as :func:`stepwise` does for
:func:`jaxdescent.sweep_fn`. Successive halving always advances in blocks: of
the greatest common divisor of its rungs' steps without ``every`` (and without
stopping), so that a rung's length is a traced number of blocks.

All three run on the engine (:func:`jaxdescent._engine.run_grid`): a rung of
successive halving is one engine call over the surviving points × seeds, with
each run's state carried as a coordinate and the rung's steps passed as traced
data (every rung runs one run function); all rounds of PBT are one compiled
program whose rounds each advance the population through the engine.

With ``out=DIR`` a search saves each finished rung or round there (one file,
``search.npz``, replaced atomically: the carry a stage hands the next) and the
same call, rerun, resumes after the last one saved.
"""

import contextlib
import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdescent import _engine, _progress, _validate, results
from jaxdescent._validate import InvalidArgument

# Coordinates the searches add to a run's hp on the engine's run axis (taken out before the user's functions see it).
_STATE, _SEED, _KEY = "_stepwise_state", "_stepwise_seed", "_stepwise_key"
_DRAWS = 2**31 - 1  # pbt's exploit/explore draws use fold_in(key, _DRAWS): a number no member uses


# ---------------------------------------------------------------- one run on the engine


def _carried(hp, key):
    """``(hp, run key, carried state or None)``: the search's coordinates taken out of an engine run's ``hp``.

    ``hp`` may hold the carried state (for every seed when ``_SEED`` picks
    one) and the run key (else ``key``, the engine's seed key).
    """
    hp = dict(hp)
    key = hp.pop(_KEY, key)
    seed = hp.pop(_SEED, None)
    state = hp.pop(_STATE, None)
    if state is not None and seed is not None:
        state = jax.tree_util.tree_map(lambda s: s[seed], state)
    return hp, key, state


def _advance_run(hp, key, steps_done, *, init, advance, num_steps):
    """One engine run: take the carried state (or ``init`` it), advance ``num_steps`` steps; ``(state, metrics)``."""
    hp, key, state = _carried(hp, key)
    if state is None:
        state = init(hp, key)
    return advance(hp, state, jax.random.fold_in(key, steps_done), num_steps)


def _blank(shape, lead=()):
    """NaN (zero for integers) in ``shape``'s dtype: the metrics of a run that has not run a block yet."""
    fill = jnp.nan if jnp.issubdtype(shape.dtype, jnp.inexact) else 0
    return jnp.full(lead + shape.shape, fill, shape.dtype)


def _like(metrics, blank):
    """``advance``'s metrics as arrays in the dtypes of ``blank`` (a Python number among them has none, and a
    weakly typed one would not match the loop's carry)."""
    return jax.tree_util.tree_map(lambda m, b: jnp.asarray(m, b.dtype), metrics, blank)


def _stops(metrics, stop):
    """Whether a run stops after a block with these metrics: any NaN, or ``stop(metrics)``."""
    nan = [jnp.any(jnp.isnan(x)) for x in jax.tree_util.tree_leaves(metrics) if jnp.issubdtype(x.dtype, jnp.inexact)]
    stopped = functools.reduce(jnp.logical_or, nan, jnp.bool_(False))
    return stopped if stop is None else stopped | jnp.asarray(stop(metrics), bool)


def _advance_blocks(hp, key, steps_done, *, init, advance, num_steps, every, stop):
    """``_advance_run`` in blocks of ``every`` steps that ends early; ``(carry, metrics)``.

    The carry is ``{"state", "metrics", "steps", "stopped"}``: a run stops for
    good after a block whose metrics hold a NaN or meet ``stop``, and keeps
    that block's state and metrics. Block keys are ``fold_in(run_key,
    steps)``, as in one stretch of ``_advance_run``.
    """
    hp, key, carry = _carried(hp, key)
    if carry is None:
        carry = _init_blocks(hp, key, init=init, advance=advance, every=every)
    carry = _blocks(hp, key, carry, steps_done + num_steps, advance=advance, every=every, stop=stop)
    return carry, carry["metrics"]


def _blocks(hp, key, carry, target, *, advance, every, stop):
    """The carry of :func:`_advance_blocks` advanced block after block until ``target`` steps or a stop."""

    def block(c):
        state, metrics = advance(hp, c["state"], jax.random.fold_in(key, c["steps"]), every)
        metrics = _like(metrics, c["metrics"])
        return {"state": state, "metrics": metrics, "steps": c["steps"] + every, "stopped": _stops(metrics, stop)}

    # Under vmap the loop runs while any run of the chunk runs; a stopped run's carry is kept as it was.
    return lax.while_loop(lambda c: (c["steps"] < target) & ~c["stopped"], block, carry)


def _advance_rung(hp, key, steps, *, init, advance, block, halts, stop):
    """One run of a rung of successive halving, the same program for every rung: ``(state, metrics)``.

    ``steps`` is ``[steps done before the rung, steps after it]`` (int32,
    traced). The run advances in blocks of ``block`` steps, each called as
    ``advance(hp, state, fold_in(run_key, steps done), block)``. The rung that
    starts at step 0 makes the state with ``init`` (the carried one is then a
    placeholder of its shapes). With ``halts`` the state is
    :func:`_advance_blocks`' carry and a run stops after a block whose metrics
    hold a NaN or meet ``stop``; without, every run trains the whole rung.
    """
    done, total = steps[0], steps[1]
    hp, key, carried = _carried(hp, key)
    # The bound is the same for every run of the chunk: under vmap these stay a cond and a loop, not selects.
    if halts:
        carry = lax.cond(done == 0, lambda: _init_blocks(hp, key, init=init, advance=advance, every=block),
                         lambda: carried)
        carry = _blocks(hp, key, carry, total, advance=advance, every=block, stop=stop)
        return carry, carry["metrics"]
    state = lax.cond(done == 0, lambda: init(hp, key), lambda: carried)
    _, shapes = jax.eval_shape(lambda s: advance(hp, s, key, block), state)

    def one(c):
        at, state, metrics = c
        state, new = advance(hp, state, jax.random.fold_in(key, at), block)
        return at + block, state, _like(new, metrics)

    blank = jax.tree_util.tree_map(_blank, shapes)
    _, state, metrics = lax.while_loop(lambda c: c[0] < total, one, (done, state, blank))
    return state, metrics


def _init_blocks(hp, key, *, init, advance, every):
    """The carry of :func:`_advance_blocks` before its first block: ``init``'s state, no metrics yet (NaN)."""
    hp, key, _ = _carried(hp, key)
    state = init(hp, key)
    _, shapes = jax.eval_shape(lambda s: advance(hp, s, key, every), state)
    return {"state": state, "metrics": jax.tree_util.tree_map(_blank, shapes), "steps": jnp.int32(0),
            "stopped": jnp.bool_(False)}


def _check_blocks(every, stop, stretches):
    """``every`` checked (``None``, or a positive integer dividing each of ``stretches``) with ``stop``."""
    if stop is not None and not callable(stop):
        raise InvalidArgument(f"stop must be callable as stop(metrics) -> bool, or None, got {stop!r}")
    if every is None and stop is not None:
        raise InvalidArgument("stop needs every: a run checks its metrics after each block of `every` steps")
    if every is None:
        return None
    every = _positive(every, "every")
    if any(n % every for n in stretches):
        raise InvalidArgument(f"every must divide the steps of each stretch ({', '.join(map(str, stretches))}), "
                              f"got every={every}")
    return every


def _carry_shape(state_shape, metric_shapes, every):
    """The shapes of a run's carried state: ``init``'s, or with ``every`` :func:`_advance_blocks`' carry (the last
    metrics, the steps run and whether the run has stopped)."""
    if every is None:
        return state_shape
    return {"state": state_shape, "metrics": metric_shapes, "steps": jax.ShapeDtypeStruct((), jnp.int32),
            "stopped": jax.ShapeDtypeStruct((), jnp.bool_)}


def _init_run(hp, key, *, init):
    hp, key, _ = _carried(hp, key)
    return init(hp, key)


def _worst_last(score, mode):
    """``score`` turned so that larger is better and NaN is worst (-inf); NumPy in, NumPy out."""
    xp = jnp if isinstance(score, jax.Array) else np
    if not xp.issubdtype(score.dtype, xp.inexact):  # bool metrics have no negation
        score = score.astype(xp.float32 if xp is jnp else xp.float64)
    score = score if mode == "max" else -score
    return xp.where(xp.isnan(score), -xp.inf, score)


def _ranking(score: np.ndarray, mode: str) -> np.ndarray:
    """Indices best first; NaN last; ties keep the points' order."""
    return np.argsort(-_worst_last(np.asarray(score, np.float64), mode), kind="stable")


# ---------------------------------------------------------------- a search saved stage by stage (out=)

_SAVED = "search.npz"  # the carry after the last stage saved, with the stages done and the search's identity


def _check_out(out) -> None:
    """``out`` checked: ``None``, or a folder path with one process (inside ``jit`` see :func:`_check_host`)."""
    _engine.check_out_devices(out, None)
    if out is not None and jax.process_count() > 1:
        raise InvalidArgument("out= is not supported with several processes (jax.distributed): run without out=")


def _with_shared(args, key, *, run):
    hp, shared = args
    return run(hp, key, shared)


def _digest(run, hp_example, shared=None) -> str:
    """The engine's :func:`jaxdescent._engine.fingerprint` of a run, ``shared`` traced; a run with a host callback
    is refused, as ``run_grid`` refuses it (its Python body is not in the digest)."""
    if shared is not None:
        run, hp_example = functools.partial(_with_shared, run=run), (hp_example, shared)
    digest, _, callbacks = _engine.fingerprint(run, hp_example, jax.random.key(0), callbacks=True)
    if callbacks:
        raise InvalidArgument(f"out= cannot save a search whose runs call back into Python "
                              f"({', '.join(sorted(callbacks))}): the folder is recognised by the program, which "
                              "shows the callback but not its Python body; run without out=")
    return digest


def _stages(out, config: dict, carry, stage: Callable, num_stages: int, resumed: Optional[Callable] = None):
    """``carry = stage(s, carry)`` for each stage ``s`` (a rung, a round) in turn; the last carry.

    With ``out`` (a folder), the carry after each stage (a pytree of arrays in
    the structure of ``carry``) replaces ``out/search.npz`` atomically, and a
    rerun of the same search (``config``, recorded by
    :func:`jaxdescent.results.prepare`) starts after the last stage saved; a
    finished one computes nothing. One process at a time owns the folder
    (:func:`jaxdescent.results.lock`). ``resumed(k)`` is called when ``k`` saved
    stages are taken up.
    """
    if out is None:
        for s in range(num_stages):
            carry = stage(s, carry)
        return carry
    identity = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    treedef = jax.tree_util.tree_structure(carry)

    def saved():  # (stages done, carry) from out/search.npz if it proves to be this search's, else (0, first)
        try:
            arrays = results.load_arrays(Path(out) / _SAVED)
            done = int(arrays.pop("__stages__"))
            if str(arrays.pop("__identity__")) == identity and 0 < done <= num_stages \
                    and set(arrays) == {f"leaf{i}" for i in range(treedef.num_leaves)}:
                return done, jax.tree_util.tree_unflatten(treedef, [arrays[f"leaf{i}"]
                                                                    for i in range(treedef.num_leaves)])
        except (OSError, ValueError, KeyError, TypeError):  # missing, damaged, foreign: computed again
            pass
        return 0, first

    first = carry
    done, carry = saved()  # a finished search is read without writing anything (nor locking)
    with contextlib.nullcontext() if done == num_stages else results.lock(results.folder(out)):
        if done < num_stages:
            try:
                results.prepare(out, config)
            except InvalidArgument as e:
                raise InvalidArgument(f"out: {e}") from None
            results.remove_temporaries(out, [_SAVED, "config.json"])  # what a killed write left
            done, carry = saved()
        if done and resumed is not None:
            resumed(done)
        for s in range(done, num_stages):
            carry = stage(s, carry)
            leaves = {f"leaf{i}": np.asarray(x) for i, x in enumerate(jax.tree_util.tree_leaves(carry))}
            results.save_arrays(Path(out) / _SAVED, {**leaves, "__identity__": identity, "__stages__": s + 1})
    return carry


def _append(rows, new):
    """``rows`` with ``new`` appended along the first axis (``rows`` empty: a placeholder of any dtype)."""
    return np.concatenate([rows, new]) if len(rows) else np.asarray(new)


# ---------------------------------------------------------------- input checks


def _check_points(points) -> list:
    if not isinstance(points, Mapping) or not points:
        raise InvalidArgument(f"points must be a non-empty dict name -> 1-D array (as from sample), got {points!r}")
    lengths = {name: np.shape(v)[0] if np.ndim(v) == 1 else np.shape(v) for name, v in points.items()}
    if len(set(lengths.values())) != 1:
        raise InvalidArgument(f"points must hold 1-D arrays of equal length (one value per point), got {lengths}")
    for name in points:
        if isinstance(name, str) and name.startswith("_stepwise"):
            raise InvalidArgument(f"points: the name {name!r} is reserved")
    return _engine._check_axes(points, product=False, what="points")


def _check_mode(mode):
    if mode not in ("min", "max"):
        raise InvalidArgument(f"mode must be 'min' or 'max', got {mode!r}")


def _check_key(key):
    key = jax.random.key(0) if key is None else key
    _validate.prng_key(key, "key")
    return key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)


def _check_host(search, points, key):
    """Refuses a search called inside ``jax.jit`` or ``vmap`` (traced points or key): it drives a loop on the host."""
    if _validate.is_traced((points, key)):
        raise InvalidArgument(f"{search} cannot run inside jax.jit or jax.vmap (points or key is traced): it drives a "
                              "loop on the host, ranking runs between its compiled calls; call it outside them "
                              "(each of its calls is compiled already)")


def _check_point_names(items, columns, search):
    """Refuses a point whose name is a column of the search's table (``to_pandas`` would mix the two)."""
    for name, _ in items:
        if name in columns:
            raise InvalidArgument(f"points: the name {name!r} is a column of {search}'s table ({', '.join(columns)}); "
                                  "rename the point")


def _check_stop(stop, metrics) -> None:
    """Refuses a ``stop`` (if any) that fails on ``advance``'s metrics or is not one bool per run."""
    if stop is None:
        return
    try:
        verdict = jax.eval_shape(stop, metrics)
    except Exception as e:
        raise InvalidArgument(f"stop failed on advance's metrics: {type(e).__name__}: {e}") from e
    if np.shape(verdict) != ():
        raise InvalidArgument(f"stop must return one bool per run, got shape {np.shape(verdict)}")


def _check_carry(state, new_state, metrics=None, stop=None):
    """Refuses an ``advance`` whose state changes shape or dtype (it is carried from block to block) and a ``stop``
    that is not one bool per run; abstract values in, nothing compiled."""
    before, after = jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(new_state)
    same = jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(new_state)
    if not same or any((a.shape, a.dtype) != (b.shape, b.dtype) for a, b in zip(before, after)):
        spell = lambda t: jax.tree_util.tree_map(lambda x: f"{x.dtype}{list(x.shape)}", t)  # noqa: E731
        raise InvalidArgument(f"advance must return the state in the shapes and dtypes init gives it (the state is "
                              f"carried from step to step): init gives {spell(state)}, advance returns "
                              f"{spell(new_state)}")
    _check_stop(stop, metrics)


def _positive(value, name):
    if _validate.num_steps(value, name) < 1:
        raise InvalidArgument(f"{name} must be >= 1, got {value}")
    return int(value)


def _nbytes(tree) -> int:
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree))


def _check_sizes(num_runs, per_run, what, extra=0):
    """The engine's size check (:func:`jaxdescent._engine.check_size`) on ``num_runs`` runs of ``per_run``'s
    shapes (each run's state and metrics), before anything per run is built."""
    _engine.check_size(num_runs, _nbytes(per_run), what=what, extra=extra)


def _check_history(items, num_rounds, state_shape, metric_shapes, metric, every):
    """PBT's sizes before anything is built: the population's states and metrics, and the history of every round
    (each member's hyperparameters, metric, source and, with ``every``, steps run)."""
    n = len(items[0][1])
    _check_sizes(n, (state_shape, metric_shapes), "points (the population)")
    per_round = n * (sum(np.dtype(v.dtype).itemsize for _, v in items) + np.dtype(metric_shapes[metric].dtype).itemsize
                     + 4 + (4 if every is not None else 0))
    _validate.check_memory("num_rounds", 2 * num_rounds * per_round,
                           f"the history of {num_rounds:,} rounds of {n:,} members (held twice as it is stacked)",
                           "use fewer rounds (more steps_per_round) or fewer members")


def _check_run(init, advance, items, metric, num_steps, stop=None):
    """Traces (never compiles) one run; raises naming the argument. The shapes of what ``advance`` returns."""
    for name, f in (("init", init), ("advance", advance)):
        if not callable(f):
            raise InvalidArgument(f"{name} must be callable, got {f!r}")
    if not isinstance(metric, str):
        raise InvalidArgument(f"metric must be the name of one of advance's metrics, got {metric!r}")
    hp = {name: jax.ShapeDtypeStruct((), v.dtype) for name, v in items}
    key = jax.eval_shape(lambda: jax.random.key(0))
    try:
        state = jax.eval_shape(init, hp, key)
    except Exception as e:
        raise InvalidArgument(f"init failed on hp={{{', '.join(hp)}}} (traced scalars) and a key: "
                              f"{type(e).__name__}: {e}") from e
    if any(jnp.issubdtype(x.dtype, jax.dtypes.prng_key) for x in jax.tree_util.tree_leaves(state)):
        raise InvalidArgument("init: the state holds a jax.random key; keep jax.random.key_data(key) instead "
                              "(each stretch of advance receives its own key)")
    try:
        new_state, metrics = jax.eval_shape(lambda h, s, k: advance(h, s, k, num_steps), hp, state, key)
    except Exception as e:
        raise InvalidArgument(f"advance failed on hp, init's state, a key and num_steps={num_steps}: "
                              f"{type(e).__name__}: {e}") from e
    if jax.tree_util.tree_structure(new_state) != jax.tree_util.tree_structure(state):
        raise InvalidArgument("advance must return (state, metrics) with the state in init's structure, got "
                              f"{jax.tree_util.tree_structure(new_state)} for {jax.tree_util.tree_structure(state)}")
    _check_carry(state, new_state)
    if not isinstance(metrics, Mapping) or metric not in metrics:
        have = list(metrics) if isinstance(metrics, Mapping) else type(metrics).__name__
        raise InvalidArgument(f"metric {metric!r} is not among advance's metrics {have}")
    taken = {"point", "rung", "steps", "steps_run", "round", "member", "copied_from", *hp}  # the tables' other columns
    if metric in taken:
        raise InvalidArgument(f"metric {metric!r} has the name of a column of the search's table; rename it")
    if metrics[metric].shape != ():
        raise InvalidArgument(f"metric {metric!r} must be one scalar per run, got shape {metrics[metric].shape}")
    _check_stop(stop, metrics)
    return new_state, metrics


def _columns_frame(columns: dict):
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas needs pandas: pip install 'jaxdescent[pandas]'") from None
    return pd.DataFrame(columns)


# ---------------------------------------------------------------- successive halving


class Halving(NamedTuple):
    """What :func:`successive_halving` returns.

    Attributes:
      best: the best point of the last rung: name → Python float.
      best_state: its state after ``max_steps`` (each leaf with a leading seed axis when ``seeds``).
      budgets: the total steps of each rung.
      rows: a column per field of :meth:`to_pandas`, as NumPy arrays.
    """

    best: dict
    best_state: Any
    budgets: tuple
    rows: dict

    def to_pandas(self):
        """A row per point × rung it ran in: ``point``, the hyperparameters, ``rung``, ``steps`` and the metric
        (the median over seeds)."""
        return _columns_frame(self.rows)


def successive_halving(
    init: Callable,
    advance: Callable,
    points: Mapping[str, Any],
    *,
    metric: str,
    mode: str = "max",
    min_steps: int,
    max_steps: int,
    eta: int = 3,
    seeds: Optional[int] = None,
    key: Optional[jax.Array] = None,
    every: Optional[int] = None,
    stop: Optional[Callable[[dict], Any]] = None,
    progress: _progress.Progress = True,
    out=None,
) -> Halving:
    """Successive halving: every point trains a little, the best ``1/eta`` go on, continuing from their state.

    Rung ``r`` advances every surviving point (× seeds) to
    ``min(min_steps * eta**r, max_steps)`` steps in total, continuing from its
    state, as one engine call (:func:`jaxdescent._engine.run_grid`), ranks the
    points by ``metrics[metric]`` (the median over seeds; NaN ranks last, ties
    keep the points' order) and keeps the best ``ceil(n / eta)``. The last rung
    is the one that reaches ``max_steps``; its best point is ``best``.

    Run ``i`` of a point (seed ``i``) has the key ``fold_in(key, i)``:
    ``init`` receives it. Every rung advances its runs in blocks of ``g``
    steps, ``g = every`` or else the greatest common divisor of the rungs'
    steps (their differences: 2, 2, 4 for ``min_steps=2, max_steps=8,
    eta=2``), calling ``advance(hp, state, fold_in(run_key, d), g)`` for the
    block that starts after ``d`` steps; so a run's numbers do not depend on
    the rungs. (Without ``every``, a rung made one call with
    ``fold_in(run_key, d)`` for its start ``d`` before: the numbers of an
    ``advance`` that draws from its key changed.) ``advance`` measures its
    metrics after each block: choose ``min_steps`` and ``max_steps`` whose
    rungs share a large divisor if that is costly.

    The survivors are picked on the host between rungs (so not inside
    ``jit``). Every rung runs the same run function, with its steps as traced
    values and the same chunk width (the engine's default for the last rung,
    the one with the fewest runs), so neither the number of rungs nor the
    population's size adds a compilation: every rung runs the engine's one
    program, in as many calls as its runs need. A second search with the
    same sizes compiles nothing. ``init`` and ``advance`` are static
    configuration: pass the same function objects to reuse the compilations.

    Args:
      init: ``init(hp, key) -> state``.
      advance: ``advance(hp, state, key, num_steps) -> (state, metrics)``.
      points: name → 1-D array, one value per point (as from :func:`jaxdescent.sample`).
      metric: the name of the metric in ``metrics`` to rank by.
      mode: ``"max"`` or ``"min"``: whether larger or smaller is better.
      min_steps: the steps of the first rung.
      max_steps: the steps of the last rung (at least ``min_steps``).
      eta: the factor between rungs (an integer >= 2).
      seeds: ``K`` runs every point with seeds ``0..K-1`` (seed i:
        ``fold_in(key, i)``); ``None``: one run per point with ``fold_in(key, 0)``.
      key: the root key, default ``jax.random.key(0)``.
      every: ``None``: every run trains every step of its rungs, in blocks
        of ``g`` (above), a NaN run too. An integer that divides every rung's
        steps: each rung advances its runs in blocks of ``every`` steps
        (block keys ``fold_in(run_key, steps_run)``) inside a
        ``lax.while_loop``, and a run stops for good after a block whose
        metrics hold a NaN or meet ``stop``: it computes nothing more, keeps
        that block's state and metrics, and is ranked by them (a chunk of runs
        ends once all have stopped). ``to_pandas()`` then has a ``steps_run``
        column (the most steps a seed of the point has run).
      stop: ``stop(metrics) -> bool``, or ``None`` (stop at NaN only); needs ``every``.
      progress: as for :func:`jaxdescent.sweep_fn`, counted in training
        steps (of every run, all rungs): ``progress(steps_done, total)``,
        called as each rung's pieces finish.
      out: a folder, or ``None``. Each finished rung is saved there
        atomically (the surviving points' states, the table so far), and the
        same call after an interruption (Ctrl-C, ``kill -9``) resumes after the
        last rung saved, with the result of an uninterrupted search, bit for
        bit; a finished folder is read back without computing. A folder that
        holds another search (another ``init``/``advance`` program, points,
        seeds, key, rungs, mode, ...), a :func:`jaxdescent.sweep_fn` folder or
        other files is refused, as is a folder in use by another process, and
        ``out`` inside ``jit``.

    Returns:
      :class:`Halving`: ``.best``, ``.best_state``, ``.budgets`` and ``.to_pandas()``.

    Examples:
      >>> import jax.numpy as jnp, numpy as np
      >>> import jaxdescent
      >>> def init(hp, key):
      ...     return jnp.float32(1.0)
      >>> def advance(hp, w, key, num_steps):  # gradient descent on w²
      ...     for _ in range(num_steps):
      ...         w = w - hp["lr"] * 2 * w
      ...     return w, {"loss": w**2}
      >>> found = jaxdescent.successive_halving(init, advance, {"lr": np.array([0.01, 0.1, 0.4, 0.7])},
      ...                                       metric="loss", mode="min", min_steps=2, max_steps=8, eta=2)
      >>> found.best, found.budgets
      ({'lr': 0.4000000059604645}, (2, 4, 8))
      >>> found.to_pandas()[["point", "lr", "rung", "steps"]]
         point    lr  rung  steps
      0      0  0.01     0      2
      1      1  0.10     0      2
      2      2  0.40     0      2
      3      3  0.70     0      2
      4      2  0.40     1      4
      5      3  0.70     1      4
      6      2  0.40     2      8
    """
    _check_host("successive_halving", points, key)
    items = _check_points(points)
    _check_point_names(items, ("point", "rung", "steps", "steps_run"), "successive_halving")
    _check_mode(mode)
    min_steps, max_steps = _positive(min_steps, "min_steps"), _positive(max_steps, "max_steps")
    if min_steps > max_steps:
        raise InvalidArgument(f"min_steps must be <= max_steps, got min_steps={min_steps} > max_steps={max_steps}")
    if isinstance(eta, bool) or not isinstance(eta, (int, np.integer)) or eta < 2:
        raise InvalidArgument(f"eta must be an integer >= 2, got {eta!r}")
    if seeds is not None:
        seeds = _positive(seeds, "seeds")
    key = _check_key(key)
    _check_out(out)
    budgets = [min_steps]
    while budgets[-1] < max_steps:
        budgets.append(min(budgets[-1] * eta, max_steps))
    stretch = np.diff([0, *budgets])
    every = _check_blocks(every, stop, stretch)
    block = every if every is not None else int(np.gcd.reduce(stretch))
    state_shape, metric_shapes = _check_run(init, advance, items, metric, block, stop)
    _check_sizes(len(items[0][1]) * (seeds or 1), (state_shape, metric_shapes), "points x seeds", 4 * (seeds or 0))
    state_shape = _carry_shape(state_shape, metric_shapes, every)
    # One run function for every rung: a rung's steps are traced (shared=), so no rung compiles a program of its own.
    run = functools.partial(_advance_rung, init=init, advance=advance, block=block, halts=every is not None,
                            stop=stop)

    report = _progress.callback(progress, "successive_halving", unit="steps")
    sizes = [len(items[0][1])]
    for _ in budgets[1:]:
        sizes.append(math.ceil(sizes[-1] / eta))
    before = np.cumsum([0, *(np.array(sizes) * stretch * (seeds or 1))])  # training steps before each rung

    def coords(points, state):  # a rung's runs: its points (x seeds), each with its carried state
        coord, dims = [*points, (_STATE, state)], ["point"] * (len(points) + 1)
        if seeds is not None:  # the engine's seed axis: seed i runs with fold_in(key, i)
            coord, dims = coord + [(_SEED, np.arange(seeds, dtype=np.int32))], dims + ["seed"]
        return _engine.Coords(coord, dims)

    # One chunk for every rung: the engine would pick one from each rung's number of runs, and a chunk of another
    # width is another program. The engine's default for the last rung (the fewest runs) pads no rung.
    last = (sizes[-1],) if seeds is None else (sizes[-1], seeds)
    fewest = coords([(n, jax.ShapeDtypeStruct((sizes[-1],), v.dtype)) for n, v in items],
                    jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(last + s.shape, s.dtype), state_shape))
    # A call of one chunk: a rung's runs are trainings (the host's cost per call is nothing beside them), and the
    # cost model counts a while loop's body once, so it would take a rung's blocks for tiny runs.
    # A folder's search goes on with the chunk it began with (the chunk decides the runs' last bits).
    chunk = (out is not None and results.saved_chunk(out)) or _engine.default_chunk(run, fewest,
                                                                                    shared=np.zeros(2, np.int32))

    def one_rung(rung, carry):  # the survivors (points, state) and the rows so far, after rung
        alive, state, total = carry["alive"], carry["state"], budgets[rung]
        on_runs = None if report is None else _progress.relay(
            report, lambda runs, _: report(int(before[rung] + runs * stretch[rung]), int(before[-1])))
        state, metrics = _engine.run_grid(run, coords([(n, v[alive]) for n, v in items], state), key=key,
                                          chunk_size=chunk, per_call=1,
                                          shared=np.array([total - stretch[rung], total], np.int32),
                                          progress=on_runs or False)
        state = jax.tree_util.tree_map(np.asarray, state)  # survivors are picked on the host: no program
        score = np.asarray(metrics[metric])
        score = np.median(score, axis=1) if seeds is not None else score
        new = {"point": alive, **{name: v[alive] for name, v in items}, "rung": np.full(len(alive), rung),
               "steps": np.full(len(alive), total), metric: score}
        if every is not None:  # the most steps a seed of the point has run (fewer once all have stopped)
            new["steps_run"] = state["steps"].max(axis=1) if seeds is not None else state["steps"]
        order = _ranking(score, mode)
        keep = order[:math.ceil(len(alive) / eta)] if rung < len(budgets) - 1 else order[:1]
        return {"alive": alive[keep], "state": jax.tree_util.tree_map(lambda x: x[keep], state),
                "rows": {k: _append(carry["rows"][k], v) for k, v in new.items()}}

    alive = np.arange(len(items[0][1]))
    lead = (len(alive),) if seeds is None else (len(alive), seeds)
    state = jax.tree_util.tree_map(lambda s: np.zeros(lead + s.shape, s.dtype), state_shape)  # rung 0 inits it
    columns = ["point", *(name for name, _ in items), "rung", "steps", metric,
               *(["steps_run"] if every is not None else [])]
    carry = {"alive": alive, "state": state, "rows": {k: np.zeros(0) for k in columns}}
    config = None
    if out is not None:  # what the folder holds: this search (its run's program, points, key, rungs, chunk)
        hp_example = {**{n: v[0] for n, v in items}, _STATE: jax.tree_util.tree_map(lambda x: x[0], state),
                      **({} if seeds is None else {_SEED: np.int32(0)})}
        config = {"search": "successive_halving", "program": _digest(run, hp_example, np.zeros(2, np.int32)),
                  "names": [n for n, _ in items], "points": _engine._digest_arrays(dict(items)),
                  "key": _engine._digest_arrays(key), "metric": metric, "mode": mode,
                  "budgets": [int(b) for b in budgets], "eta": int(eta), "seeds": seeds, "every": every,
                  "chunk": int(chunk)}
    carry = _stages(out, config, carry, one_rung, len(budgets),
                    None if report is None else lambda k: report(int(before[k]), int(before[-1])))
    alive, state = carry["alive"], carry["state"]
    best = {name: float(v[alive[0]]) for name, v in items}
    best_state = jax.tree_util.tree_map(lambda x: x[0], state if every is None else state["state"])
    return Halving(best, best_state, tuple(budgets), {k: carry["rows"][k] for k in columns})


# ---------------------------------------------------------------- population-based training


class History(NamedTuple):
    """PBT's record: each array has shape ``(num_rounds, members)``.

    Attributes:
      hp: name → the hyperparameters in force during each round.
      metric: the ranked metric after each round.
      copied_from: the member whose state and hyperparameters each member took
        after the round (itself when it kept its own).
      steps_per_round: steps per round.
      metric_name: the name of the ranked metric (its column in :meth:`to_pandas`).
      steps_run: with ``every``, the steps each member's state has trained
        after each round (fewer once it has stopped); else ``None``.
    """

    hp: dict
    metric: np.ndarray
    copied_from: np.ndarray
    steps_per_round: int
    metric_name: str
    steps_run: Optional[np.ndarray] = None

    def to_pandas(self):
        """A row per member × round: ``round``, ``member``, ``steps`` (after the round), the hyperparameters then
        in force, the metric and ``copied_from``."""
        rounds, members = self.metric.shape
        r, m = np.meshgrid(np.arange(rounds), np.arange(members), indexing="ij")
        cols = {"round": r.ravel(), "member": m.ravel(), "steps": (r.ravel() + 1) * self.steps_per_round}
        cols.update({name: v.ravel() for name, v in self.hp.items()})
        cols.update({self.metric_name: self.metric.ravel(), "copied_from": self.copied_from.ravel()})
        if self.steps_run is not None:
            cols["steps_run"] = self.steps_run.ravel()
        return _columns_frame(cols)


class PBTResult(NamedTuple):
    """What :func:`pbt` returns.

    Attributes:
      best: the best member's hyperparameters after the last round: name → Python float.
      best_state: its state.
      hp: every member's final hyperparameters (name → array).
      state: every member's final state (leaves with a leading member axis).
      history: :class:`History` (``.to_pandas()``).
    """

    best: dict
    best_state: Any
    hp: dict
    state: Any
    history: History


class _PBTConfig(NamedTuple):  # static configuration of the compiled program (hashable)
    init: _engine.Static
    advance: _engine.Static
    explore: _engine.Static
    metric: str
    mode: str
    steps_per_round: int
    num_rounds: int
    num_copied: int
    every: Optional[int]
    stop: Optional[_engine.Static]
    chunk: Optional[int] = None  # the engine's default unless out= records it


def _member_keys(key, n: int):
    """Member ``i``'s run key, ``fold_in(key, i)``, for every member."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n, dtype=jnp.int32))


def _exploit(hp, state, score, r, copying, key, *, explore, mode, num_copied):
    """Round ``r``'s exploit (where ``copying``) and explore on the ranked members: ``(hp, state, source)`` for the
    next round, and the best member (see :func:`pbt`)."""
    n = score.shape[0]
    members = jnp.arange(n, dtype=jnp.int32)
    order = jnp.argsort(-_worst_last(score, mode), stable=True)  # best first, NaN last
    pick_key, explore_key = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, _DRAWS), r))
    q = num_copied
    donor = order[:q][jax.random.randint(pick_key, (n,), 0, q)]  # a top member for each member
    bottom = jnp.zeros(n, bool).at[order[n - q:]].set(True)
    # No exploit after the last round; a lone member (bottom and top at once) keeps its own.
    copies = bottom & (donor != members) & copying
    source = jnp.where(copies, donor, members)
    taken = {k: v[source] for k, v in hp.items()}
    explored = jax.vmap(explore.value)(taken, jax.vmap(lambda i: jax.random.fold_in(explore_key, i))(members))
    new_hp = {k: jnp.where(copies, jnp.asarray(explored[k], v.dtype), v) for k, v in taken.items()}
    return new_hp, jax.tree_util.tree_map(lambda x: x[source], state), source, order[0]


_exploit_jitted = jax.jit(_exploit, static_argnames=("explore", "mode", "num_copied"))
_member_keys_jitted = jax.jit(_member_keys, static_argnames="n")


def _pbt_runs(config):
    """PBT's two engine runs: a member's ``init``, and its advance by one round."""
    if config.every is None:
        return (functools.partial(_init_run, init=config.init.value),
                functools.partial(_advance_run, init=None, advance=config.advance.value,
                                  num_steps=config.steps_per_round))
    # The state is _advance_blocks' carry: the last metrics, the steps run, whether the member has stopped.
    return (functools.partial(_init_blocks, init=config.init.value, advance=config.advance.value, every=config.every),
            functools.partial(_advance_blocks, init=None, advance=config.advance.value,
                              num_steps=config.steps_per_round, every=config.every,
                              stop=None if config.stop is None else config.stop.value))


def _pbt_rounds(hp, key, config, report, carry, out=None, identity=None):
    """PBT's rounds: each advances every member on the engine (one program for every round, its chunks shared
    among the cores, the round's first step a traced value), then exploits and explores (one small program).

    ``carry`` is what a round hands the next (see :func:`_stages`, which saves it in ``out``): the members' hp and
    state (placeholders before round 0, which makes the state with ``init``), the history so far and the best
    member; ``identity`` is the folder's config."""
    n = len(next(iter(hp.values())))
    init_run, advance_run = _pbt_runs(config)
    names = list(hp)
    run_keys = functools.cache(lambda: _member_keys_jitted(key, n))
    members = lambda hp, *coords: _engine.Coords([*hp.items(), *coords, (_KEY, run_keys())],
                                                 ["point"] * (len(hp) + len(coords) + 1))

    def one_round(r, carry):
        hp = {k: carry["hp"][k] for k in names}  # in the points' order (a carry read back has its names sorted)
        state = _engine.run_grid(init_run, members(hp), key=key, progress=False) if r == 0 else carry["state"]
        state, metrics = _engine.run_grid(advance_run, members(hp, (_STATE, state)), key=key,
                                          chunk_size=config.chunk, shared=np.int32(r * config.steps_per_round),
                                          progress=False)
        score = metrics[config.metric]
        new_hp, new_state, source, best = _exploit_jitted(hp, state, score, np.int32(r), r < config.num_rounds - 1,
                                                          key, explore=config.explore, mode=config.mode,
                                                          num_copied=config.num_copied)
        new = {"hp": hp, "score": score, "source": source}
        if config.every is not None:
            new["steps_run"] = state["steps"]
        history = {k: jax.tree_util.tree_map(lambda h, x: _append(h, np.asarray(x)[None]), carry["history"][k], v)
                   for k, v in new.items()}
        if report:
            report(r + 1, config.num_rounds)
        return {"hp": {k: np.asarray(v) for k, v in new_hp.items()},  # host values, as in round 0
                "state": new_state, "history": history, "best": best}

    carry = _stages(out, identity, carry, one_round, config.num_rounds,
                    None if report is None else lambda k: report(k, config.num_rounds))
    state = carry["state"] if config.every is None else carry["state"]["state"]
    best = int(carry["best"])
    return carry["hp"], state, carry["history"], best, jax.tree_util.tree_map(lambda x: np.asarray(x)[best], state)


def pbt(
    init: Callable,
    advance: Callable,
    points: Mapping[str, Any],
    *,
    metric: str,
    mode: str = "max",
    steps_per_round: int,
    num_rounds: int,
    explore: Callable[[dict, jax.Array], dict],
    quantile: float = 0.25,
    key: Optional[jax.Array] = None,
    every: Optional[int] = None,
    stop: Optional[Callable[[dict], Any]] = None,
    progress: _progress.Progress = True,
    out=None,
) -> PBTResult:
    """Population-based training (Jaderberg et al. 2017, arXiv:1711.09846): every round runs the same programs.

    One member per point; member ``i`` runs with the key ``fold_in(key, i)``.
    Each round advances every member ``steps_per_round`` steps (one engine
    call: one program for every round, the round's first step a traced value,
    its chunks of members shared among the CPU cores as in :func:`jaxdescent.sweep_fn`) and ranks the members by ``metrics[metric]`` (NaN last, ties
    keep the members' order). Then, except after the last round, each of the
    bottom ``q = max(1, floor(quantile * n))`` members copies the state and
    hyperparameters of a top-``q`` member drawn uniformly (exploit) and
    replaces those hyperparameters with ``explore(hp, key)`` (explore). The
    draws of round ``r`` come from ``k = fold_in(fold_in(key, 2**31 - 1), r)``:
    ``pick, ex = jax.random.split(k)``; member ``i`` copies
    ``top[jax.random.randint(pick, (n,), 0, q)[i]]`` and explores with
    ``fold_in(ex, i)``. A member keeps its own run key when it copies.

    Args:
      init: ``init(hp, key) -> state``.
      advance: ``advance(hp, state, key, num_steps) -> (state, metrics)``.
      points: name → 1-D array: the members' starting hyperparameters.
      metric: the name of the metric to rank by.
      mode: ``"max"`` or ``"min"``.
      steps_per_round: steps between exploits.
      num_rounds: rounds in all.
      explore: ``explore(hp, key) -> hp``: a dict of traced scalars in, the
        same names out (cast back to the points' dtypes).
      quantile: the fraction of members copied and copied from, in (0, 0.5].
      key: the root key, default ``jax.random.key(0)``.
      every: ``None``: a round calls ``advance`` once per member. An integer
        that divides ``steps_per_round``: rounds advance in blocks of
        ``every`` steps, and a member stops after a block whose metrics hold
        a NaN or meet ``stop`` (as in :func:`successive_halving`); it is
        ranked by that block's metrics and starts again only by copying
        another member's state. ``history`` then has ``steps_run``.
      stop: ``stop(metrics) -> bool``, or ``None`` (stop at NaN only); needs ``every``.
      progress: as for :func:`jaxdescent.sweep_fn`, counted in rounds: ``progress(rounds_done, num_rounds)``.
      out: a folder, or ``None``. Each finished round is saved there
        atomically (every member's hyperparameters and state, the history so
        far), and the same call after an interruption (Ctrl-C, ``kill -9``)
        resumes after the last round saved, with the result of an
        uninterrupted search, bit for bit; a finished folder is read back
        without computing. A folder that holds another search (other programs,
        points, key, rounds, ...), a :func:`jaxdescent.sweep_fn` folder or
        other files is refused, as is a folder in use by another process, and
        ``out`` inside ``jit``.

    Returns:
      :class:`PBTResult`: ``.best``, ``.best_state``, ``.hp``, ``.state`` and ``.history``.

    Examples:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> import jaxdescent
      >>> def init(hp, key):
      ...     return jnp.float32(1.0)
      >>> def advance(hp, w, key, num_steps):
      ...     for _ in range(num_steps):
      ...         w = w - hp["lr"] * 2 * w
      ...     return w, {"loss": w**2}
      >>> explore = lambda hp, key: {"lr": hp["lr"] * jax.random.choice(key, jnp.array([0.8, 1.25]))}
      >>> found = jaxdescent.pbt(init, advance, {"lr": np.array([0.01, 0.02, 0.05, 0.1])}, metric="loss",
      ...                        mode="min", steps_per_round=2, num_rounds=5, explore=explore)
      >>> found.history.to_pandas().shape
      (20, 6)
      >>> found.best["lr"] >= 0.1
      True
    """
    _check_host("pbt", points, key)
    items = _check_points(points)
    _check_point_names(items, ("round", "member", "steps", "copied_from", "steps_run"), "pbt")
    _check_mode(mode)
    steps_per_round, num_rounds = _positive(steps_per_round, "steps_per_round"), _positive(num_rounds, "num_rounds")
    if not isinstance(quantile, (int, float, np.floating)) or isinstance(quantile, bool) or not 0 < quantile <= 0.5:
        raise InvalidArgument(f"quantile must be in (0, 0.5], got {quantile!r}")
    if not callable(explore):
        raise InvalidArgument(f"explore must be callable as explore(hp, key) -> hp, got {explore!r}")
    every = _check_blocks(every, stop, [steps_per_round])
    state_shape, metric_shapes = _check_run(init, advance, items, metric, steps_per_round if every is None else every,
                                            stop)
    _check_history(items, num_rounds, state_shape, metric_shapes, metric, every)
    hp_shape = {name: jax.ShapeDtypeStruct((), v.dtype) for name, v in items}
    try:
        explored = jax.eval_shape(explore, hp_shape, jax.eval_shape(lambda: jax.random.key(0)))
    except Exception as e:
        raise InvalidArgument(f"explore failed on hp={{{', '.join(hp_shape)}}} and a key: {type(e).__name__}: {e}") \
            from e
    if not isinstance(explored, Mapping) or set(explored) != set(hp_shape) \
            or any(np.shape(v) != () for v in explored.values()):
        raise InvalidArgument(f"explore must return a dict of scalars with the names {sorted(hp_shape)}, "
                              f"got {explored!r}")
    key = _check_key(key)
    _check_out(out)
    n = len(items[0][1])
    config = _PBTConfig(_engine.Static(init), _engine.Static(advance), _engine.Static(explore), metric, mode,
                        steps_per_round, num_rounds, max(1, int(quantile * n)), every,
                        None if stop is None else _engine.Static(stop))
    report = _progress.callback(progress, "pbt", unit="rounds")
    hp = dict(items)
    state_shape = _carry_shape(state_shape, metric_shapes, every)
    state = jax.tree_util.tree_map(lambda s: np.zeros((n, *s.shape), s.dtype), state_shape)  # round 0 inits it
    history = {"hp": {k: np.zeros(0) for k in hp}, "score": np.zeros(0), "source": np.zeros(0),
               **({} if every is None else {"steps_run": np.zeros(0)})}
    carry = {"hp": hp, "state": state, "history": history, "best": np.int32(0)}
    identity = None
    if out is not None:  # what the folder holds: this search (its programs, points, key, rounds, chunk)
        init_run, advance_run = _pbt_runs(config)
        one = {**{k: v[0] for k, v in items}, _KEY: key}
        keys = jax.eval_shape(functools.partial(_member_keys, n=n), key)
        chunk = results.saved_chunk(out) or _engine.default_chunk(advance_run, _engine.Coords(
            [*items, (_STATE, state), (_KEY, keys)], ["point"] * (len(items) + 2)), shared=np.int32(0))
        config = config._replace(chunk=int(chunk))
        programs = [_digest(init_run, one), _digest(advance_run, {**one, _STATE: jax.tree_util.tree_map(
            lambda x: x[0], state)}, np.int32(0)), _digest(explore, {k: v[0] for k, v in items})]
        identity = {"search": "pbt", "program": programs, "names": list(hp), "points": _engine._digest_arrays(hp),
                    "key": _engine._digest_arrays(key), "metric": metric, "mode": mode,
                    "steps_per_round": steps_per_round, "num_rounds": num_rounds, "num_copied": config.num_copied,
                    "every": every, "chunk": config.chunk}
    hp, state, rounds, best, best_state = _pbt_rounds(hp, key, config, report, carry, out, identity)
    hp = {k: np.asarray(hp[k]) for k in dict(items)}
    history = History({k: np.asarray(rounds["hp"][k]) for k in dict(items)}, np.asarray(rounds["score"]),
                      np.asarray(rounds["source"]), steps_per_round, metric,
                      None if every is None else np.asarray(rounds["steps_run"]))
    return PBTResult({k: float(v[best]) for k, v in hp.items()}, best_state, hp,
                     jax.device_put(state), history)


# ---------------------------------------------------------------- per-run early stopping


class Stepped(NamedTuple):
    """What a :func:`stepwise` run returns.

    Attributes:
      metrics: ``advance``'s metrics after the last block run (at the stop, if it stopped).
      steps: the steps run (a multiple of ``every``; ``num_steps`` unless it stopped).
      curve: the metrics after every block, a leading axis of ``num_steps // every``; NaN (0 for
        integer metrics) after a stop.
    """

    metrics: Any
    steps: jax.Array
    curve: Any


def _stepwise_run(hp, key, *, init, advance, num_steps, every, stop):
    num_blocks = num_steps // every
    state = init(hp, key)
    new_state, shapes = jax.eval_shape(lambda s: advance(hp, s, key, every), state)
    _check_carry(jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), state),
                 new_state, shapes, stop)
    metrics = jax.tree_util.tree_map(_blank, shapes)
    curve = jax.tree_util.tree_map(lambda s: _blank(s, (num_blocks,)), shapes)

    def running(carry):
        _, _, block, stopped, _ = carry
        return (block < num_blocks) & ~stopped

    def block_of(carry):
        state, _, block, _, curve = carry
        state, metrics = advance(hp, state, jax.random.fold_in(key, block * every), every)
        metrics = _like(metrics, shapes)
        curve = jax.tree_util.tree_map(lambda c, m: c.at[block].set(m), curve, metrics)
        return state, metrics, block + 1, _stops(metrics, stop), curve

    # Under vmap the loop runs while any run of the chunk runs; a stopped run's carry is kept as it was.
    _, metrics, block, _, curve = lax.while_loop(running, block_of, (state, metrics, jnp.int32(0), jnp.bool_(False),
                                                                     curve))
    return Stepped(metrics, block * every, curve)


def stepwise(
    init: Callable,
    advance: Callable,
    *,
    num_steps: int,
    every: int,
    stop: Optional[Callable[[dict], Any]] = None,
) -> Callable:
    """A run function ``fn(hp, key)`` for :func:`jaxdescent.sweep_fn` that trains in blocks and stops early.

    ``fn`` calls ``init(hp, key)``, then ``advance(hp, state, fold_in(key,
    steps_done), every)`` block after block until ``num_steps`` steps, inside a
    ``lax.while_loop``: a run stops after the first block whose metrics hold a
    NaN or for which ``stop(metrics)`` is true. Vmapped by the engine, a chunk
    of runs ends once all its runs have stopped; a stopped run's state is kept
    as it was. ``fn`` is a ``functools.partial`` of a module-level function:
    equal arguments reuse one compilation.

    Args:
      init: ``init(hp, key) -> state``.
      advance: ``advance(hp, state, key, num_steps) -> (state, metrics)``.
      num_steps: the most steps a run trains (a multiple of ``every``).
      every: the steps per block, between checks.
      stop: ``stop(metrics) -> bool``, or ``None`` (stop at NaN only).

    Returns:
      ``fn(hp, key) -> Stepped``: the final metrics, the steps run and the learning curve.

    Examples:
      >>> import jax.numpy as jnp, numpy as np
      >>> import jaxdescent
      >>> def advance(hp, w, key, num_steps):
      ...     for _ in range(num_steps):
      ...         w = w - hp["lr"] * 2 * w
      ...     return w, {"loss": w**2}
      >>> fn = jaxdescent.stepwise(lambda hp, key: jnp.float32(1.0), advance, num_steps=40, every=4,
      ...                          stop=lambda m: m["loss"] < 1e-3)
      >>> out = jaxdescent.sweep_fn(fn, {"lr": np.array([0.01, 0.25, 1.5])})
      >>> out.metrics.steps.tolist()  # lr 0.25 halves w each step: loss < 1e-3 after 5 steps, seen at 8
      [40, 8, 40]
      >>> out.metrics.curve["loss"].shape
      (3, 10)
    """
    for name, f in (("init", init), ("advance", advance)):
        if not callable(f):
            raise InvalidArgument(f"{name} must be callable, got {f!r}")
    if stop is not None and not callable(stop):
        raise InvalidArgument(f"stop must be callable as stop(metrics) -> bool, or None, got {stop!r}")
    num_steps, every = _positive(num_steps, "num_steps"), _positive(every, "every")
    if num_steps % every:
        raise InvalidArgument(f"num_steps must be a multiple of every, got num_steps={num_steps}, every={every}")
    return functools.partial(_stepwise_run, init=init, advance=advance, num_steps=num_steps, every=every, stop=stop)
