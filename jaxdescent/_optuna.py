"""Optuna's samplers, a batch at a time: ask ``batch_size`` trials, run them in one ``sweep_fn`` call, tell them.

Optuna asks one trial, waits for its objective, then asks the next; a JAX
training is fast when many run together as one compiled program. Here each
batch is asked first (``study.ask``, a ``suggest_*`` per name of the space), run as the
points of one :func:`jaxdescent.sweep_fn` call (``product=False``), then told.
Batches of one size reuse one compilation. A study kept in a database may be
shared by processes on several machines, each running its own batches: Optuna's
storage is then what distributes the search.

The space is the one :func:`jaxdescent.sample` takes, translated into Optuna's
distributions: :class:`~jaxdescent.Uniform` ``(low, high)`` →
``FloatDistribution(low, high)``, :class:`~jaxdescent.LogUniform` →
``FloatDistribution(low, high, log=True)`` and a sequence of choices →
``CategoricalDistribution(choices)`` (Optuna's ranges include ``high``).

Optuna is an optional extra (``pip install 'jaxdescent[optuna]'``), imported
only when :func:`optuna_search` runs.
"""

import numbers
from collections.abc import Mapping
from typing import Any, Callable, Optional

import jax
import numpy as np

from jaxdescent import _progress, _validate
from jaxdescent._engine import _check_axes, sweep_fn
from jaxdescent._space import LogUniform, Uniform, sample
from jaxdescent._validate import InvalidArgument


def _optuna():
    try:
        import optuna
    except ImportError as e:
        raise ImportError("jaxdescent.optuna_search needs Optuna: pip install 'jaxdescent[optuna]'") from e
    return optuna


def _as_dict(metrics) -> Optional[Mapping]:
    """fn's metrics as a mapping: a dict as it is, a NamedTuple's fields; None for anything else."""
    if hasattr(metrics, "_asdict"):
        return metrics._asdict()
    return metrics if isinstance(metrics, Mapping) else None


# Optuna asks a batch's trials one at a time on the host and keeps every trial in its study. Measured with
# Optuna 4 on this project's CPU machine: about 2 kB of memory per trial in the in-memory storage, and 0.3 ms to
# ask one with RandomSampler, 4 ms with the default TPESampler. A batch of MAX_BATCH_SIZE trials is then
# 30 s to 7 min of asking alone; beyond it, random points are drawn faster by jaxdescent.sample.
MAX_BATCH_SIZE = 100_000
TRIAL_BYTES = 2_000


def _check_trials(num_batches: int, batch_size: int) -> None:
    """Refuses batches larger than Optuna asks in reasonable time, and more trials than the study can hold."""
    if batch_size > MAX_BATCH_SIZE:
        raise InvalidArgument(
            f"batch_size must be at most {MAX_BATCH_SIZE:,}, got {batch_size:,}: Optuna asks a batch's trials one "
            "at a time on the host (0.3 to 4 ms each); for a larger batch of random points use "
            "jaxdescent.sweep_fn(fn, jaxdescent.sample(space, n, key=...), product=False)")
    total = num_batches * batch_size
    _validate.check_memory("num_batches x batch_size", total * TRIAL_BYTES,
                           f"{total:,} trials held by the study (about {TRIAL_BYTES:,} bytes each in Optuna's "
                           "in-memory storage)", "run fewer batches or smaller ones")


def _count(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidArgument(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _distributions(optuna, space) -> dict:
    out = {}
    for name, dim in space.items():
        if isinstance(dim, (Uniform, LogUniform)):
            out[name] = optuna.distributions.FloatDistribution(float(dim.low), float(dim.high),
                                                               log=isinstance(dim, LogUniform))
        else:  # Python scalars: Optuna stores choices as JSON
            out[name] = optuna.distributions.CategoricalDistribution(np.asarray(dim).tolist())
    return out


def _suggest(optuna, trial, name: str, distribution) -> None:
    """``study.ask(distributions)`` for one name, on a trial already asked: the same distribution, drawn the same way."""
    if isinstance(distribution, optuna.distributions.FloatDistribution):
        trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)
    else:
        trial.suggest_categorical(name, distribution.choices)


def optuna_search(
    fn: Callable[[dict, jax.Array], Any],
    study,
    space: Mapping[str, Any],
    *,
    num_batches: int,
    batch_size: int,
    metric: str,
    seeds: Optional[int] = None,
    key: Optional[jax.Array] = None,
    progress: _progress.Progress = True,
):
    """Runs ``num_batches`` batches of ``batch_size`` trials of ``study``, each batch in one ``sweep_fn`` call.

    Each batch asks ``study`` for ``batch_size`` trials over ``space``, runs
    ``fn`` on their hyperparameters × ``seeds`` as the points of one
    :func:`jaxdescent.sweep_fn` call, and tells each trial its value: the
    median of ``metrics[metric]`` over seeds (NumPy's median: a NaN in any
    seed makes it NaN). A non-finite value (NaN, ±inf) is a failed trial
    (``TrialState.FAIL``), as Optuna does with a sequential objective. The
    study's direction says whether larger or smaller is better.

    Every batch uses the same ``key``: the run of a trial's seed i gets
    ``fold_in(key, i)`` whatever its batch, as every point of one ``sweep_fn``
    call does. So all trials are compared on the same random draws (initial
    weights, minibatches), and a trial's value depends on its hyperparameters
    alone, not on ``batch_size`` or the batch it was asked in: the same as
    ``sweep_fn`` gives for those points (up to the last bits, which depend on
    ``sweep_fn``'s chunk and so on the batch size). Use ``seeds`` for values
    that do not hang on one draw.

    One study, many processes or machines: keep the study in a database, e.g.
    ``optuna.create_study(storage="postgresql+psycopg2://user:password@host/db",
    study_name="digits", load_if_exists=True)`` (SQLAlchemy's URL, its driver
    installed; ``"sqlite:///study.db"`` for processes of one machine), and run
    ``optuna_search`` in every process. The storage hands out the trials: each
    process asks its own batches, runs them here and tells them, and every
    sampler sees what all processes told. A trial's value is the same on any
    of them (the same ``key``). Create the study once before the workers start
    (two first ``create_study`` calls on an empty database can race on its
    tables; ``optuna create-study --storage URL --study-name NAME`` does it from
    a shell), and give each worker a sampler seed of its own, or none: workers
    seeded alike ask the same points.

    A batch stopped by an exception or Ctrl-C (while asking, running or telling)
    fails its trials not yet told; those told keep their value. A process
    killed outright (``kill -9``, a machine lost) leaves its batch's trials
    ``RUNNING``. Optuna's heartbeat (``RDBStorage(url, heartbeat_interval=60)``)
    does not cover them: Optuna records it in ``study.optimize`` only, not for
    asked trials (and warns so). Once those processes are gone, fail their
    trials from any process: ``for t in study.get_trials(states=[TrialState.RUNNING]):
    study.tell(t.number, state=TrialState.FAIL)`` (trials still running
    elsewhere are ``RUNNING`` too: pick by ``t.datetime_start`` if workers run).

    Args:
      fn: ``fn(hp, key) -> metrics``, a dict or NamedTuple with a scalar per run
        under ``metric``; ``hp`` maps each name of ``space`` to a traced scalar.
      study: an ``optuna.Study`` with one objective (its sampler decides what is
        asked: TPE, random, CMA-ES, ...), in memory or in a storage that other
        processes share.
      space: name → :class:`~jaxdescent.Uniform`, :class:`~jaxdescent.LogUniform`
        or a sequence of numeric choices, as for :func:`jaxdescent.sample`.
      num_batches: batches to run, a positive int.
      batch_size: trials per batch, a positive int; trials that run together.
      metric: the entry of ``fn``'s metrics that is told as the trial's value.
      seeds: ``K`` runs every trial K times (seed i with ``fold_in(key, i)``)
        and tells the median; ``None``: once, with ``fold_in(key, 0)``.
      key: the root key, default ``jax.random.key(0)``, the same for every batch.
      progress: as for :func:`jaxdescent.sweep_fn`, over the runs of all batches:
        ``True`` a bar when someone watches stderr, ``False`` none, or a callable
        ``progress(runs_done, num_runs)``.

    Returns:
      ``study``, with ``num_batches * batch_size`` more finished trials (and
      those other processes finished meanwhile, in a shared study).

    Raises:
      ImportError: Optuna is not installed.
      InvalidArgument (a ValueError and a TypeError): ``study`` is not an
        ``optuna.Study`` or has several objectives; a bad ``num_batches``,
        ``batch_size``, ``seeds``, ``key`` or entry of ``space``; ``metric`` is
        not a scalar entry of ``fn``'s metrics. All before anything is asked or compiled.

    Examples:
      >>> import jax, optuna
      >>> from jaxdescent import LogUniform, Uniform, optuna_search
      >>> def fn(hp, key):  # a training would go here; a bowl with its minimum at lr = 0.01, x = 0.5
      ...     return {"loss": (jax.numpy.log10(hp["lr"]) + 2) ** 2 + (hp["x"] - 0.5) ** 2}
      >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
      >>> study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
      >>> study = optuna_search(fn, study, {"lr": LogUniform(1e-4, 1.0), "x": Uniform(0.0, 1.0)},
      ...                       num_batches=4, batch_size=8, metric="loss")
      >>> len(study.trials), study.best_value < 0.1
      (32, True)
    """
    optuna = _optuna()
    if not isinstance(study, optuna.Study):
        raise InvalidArgument(f"study must be an optuna.Study (optuna.create_study(...)), got {study!r}")
    if len(study.directions) != 1:
        raise InvalidArgument(f"study must have one objective, got {len(study.directions)} "
                              "(a multi-objective study); optuna_search tells one value per trial")
    if not callable(fn):
        raise InvalidArgument(f"fn must be callable as fn(hp, key), got {fn!r}")
    num_batches, batch_size = _count(num_batches, "num_batches"), _count(batch_size, "batch_size")
    _check_trials(num_batches, batch_size)
    if seeds is not None:
        seeds = _count(seeds, "seeds")
    if _validate.is_traced(key):
        raise InvalidArgument("optuna_search cannot run inside jax.jit or jax.vmap (key is traced): it asks and "
                              "tells Optuna on the host between its compiled batches; call it outside them")
    key = jax.random.key(0) if key is None else _validate.prng_key(key)
    on_runs = _progress.callback(progress, "optuna_search")
    # The space as sample() and sweep_fn() check it: bounds, choices, names; one point gives the dtypes fn sees.
    example = _check_axes(sample(space, 1), product=False, what="space")
    hp = {name: jax.ShapeDtypeStruct((), a.dtype) for name, a in example}
    try:
        shapes = jax.eval_shape(fn, hp, jax.eval_shape(lambda: jax.random.key(0)))
    except Exception as e:
        raise InvalidArgument(f"fn failed on hp={{{', '.join(hp)}}} (traced scalars) and a key: "
                              f"{type(e).__name__}: {e}") from e
    fields = _as_dict(shapes)
    if fields is None or not isinstance(metric, str) or metric not in fields:
        names = list(fields) if fields is not None else f"none: fn returns a {type(shapes).__name__}, not a dict"
        raise InvalidArgument(f"metric must name one of fn's metrics ({names}), got {metric!r}")
    if not isinstance(fields[metric], jax.ShapeDtypeStruct) or fields[metric].shape != ():
        raise InvalidArgument(f"metric {metric!r} must be one scalar per run, got {fields[metric]}")
    distributions = _distributions(optuna, space)
    runs_per_batch, num_runs = batch_size * (seeds or 1), num_batches * batch_size * (seeds or 1)
    for batch in range(num_batches):
        trials = []
        try:
            for _ in range(batch_size):
                trials.append(study.ask())  # held before its point is drawn: a Ctrl-C while sampling fails it too
                for name, distribution in distributions.items():
                    _suggest(optuna, trials[-1], name, distribution)
            points = {name: np.asarray([t.params[name] for t in trials], dtype=a.dtype) for name, a in example}
            report = None if on_runs is None else (
                lambda done, total, before=batch * runs_per_batch: on_runs(before + done, num_runs))
            runs = sweep_fn(fn, points, product=False, seeds=seeds, key=key, progress=report or False)
            values = np.asarray(_as_dict(runs.metrics)[metric], dtype=np.float64)
            values = np.median(values, axis=-1) if seeds is not None else values
            for t, value in zip(trials, values):
                if np.isfinite(value):
                    study.tell(t, float(value))
                else:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
        except BaseException:
            # Interrupted (Ctrl-C, an error, a storage that failed) while asking, running or telling: the batch's
            # trials not yet told are failed, not left running in the study; those told keep their value.
            for t in trials:
                study.tell(t, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise
    return study
