"""Search beyond grids on one budget: an MLP tuned by a Sobol grid, successive halving, PBT and Optuna.

The same training (a tanh MLP, AdamW on minibatches of 128; the learning rate,
weight decay and label smoothing are searched) is tuned six ways, each with
the same budget of training steps (``--trainings`` full trainings of
``--max-steps`` steps), on one of two workloads (``--workload``):

  digits   (default) a 64→64→10 MLP on scikit-learn's 8×8 digits; its training set split 80/20 into train and
           validation, its test set as given. The workload the searches were developed on.
  spirals  held out: two spirals, 2296 points in all (NumPy, a fixed seed), each arm 2 turns with Gaussian noise
           0.03; a fifth held out for test, the rest split 80/20 (1470 train / 367 validation / 459 test);
           a 2→64→64→2 MLP. Data, network and sizes fixed on 2026-12-07 before any tuning: none of
           jaxdescent's defaults or this script's settings were chosen on it.

  (a) Sobol grid        ``jaxdescent.sample(..., method="sobol")``, all points in one ``sweep_fn`` call
  (b) successive halving ``jaxdescent.successive_halving``: as many Sobol points as the budget pays for,
                        rungs of ``min_steps · 3^r`` steps continuing from their state; also run on a
                        third (b/3) and a ninth (b/9) of the budget, to time how soon it reaches (e)
  (c) PBT               ``jaxdescent.pbt``: one member per full training, ``--rounds`` rounds, all one program
  (d) Optuna TPE, batches ``jaxdescent.optuna_search``: batches of ``--batch-size`` trials, one sweep_fn call each
  (e) Optuna TPE, sequential  Optuna's own loop, one trial at a time through one ``jax.jit``-ed training
  (f) Ray Tune ASHA     not run here: Ray is not a dependency (the row says whether ``import ray`` works)

The training is written as a *stepwise run*: ``init(hp, key) -> state`` and
``advance(hp, state, key, num_steps) -> (state, metrics)``; the run's stretch
starting after ``steps_done`` steps gets the key ``fold_in(run_key, steps_done)``
(what the stepwise searches pass), and minibatch ``t`` of a stretch is drawn
with ``fold_in(key, t)``. A full training (a, d, e) is ``init`` then one
``advance`` of ``--max-steps`` steps with ``fold_in(run_key, 0)``.

Columns, per method: the best validation accuracy found (of the config the
method returns, after its full training); the test accuracy of that config;
``wall s``, the search's wall time (compilation included: a user pays it); the
training steps spent; ``wall / Optuna sequential``, the wall time as a fraction
of (e)'s (blank when ``--only`` leaves (e) out); ``compile s``, the seconds of
JAX's compile events during ``wall s`` (``jax.monitoring``: tracing
"/jax/core/compile/jaxpr_trace_duration", lowering
"/jax/core/compile/jaxpr_to_mlir_module_duration" and XLA
"/jax/core/compile/backend_compile_duration", summed, nothing subtracted; a
program read from the persistent cache counts its reading as an XLA event);
``programs compiled``, the XLA compilations (backend events less cache hits:
JAX records a hit as a backend event too); ``cache hits``, the programs read
from the persistent compilation cache ("/jax/compilation_cache/cache_hits");
``wall s, run again``, for successive halving, the same search again in the
same process (its programs compiled in memory, as for a researcher's second
search of the same sizes); the setting.

The issue's goal: successive halving reaches sequential Optuna's best accuracy
in at most a third of its wall time on a quiet 2-core CPU, cold (from a fresh
process, nothing cached), on the held-out workload too (measure it with the
full sizes, nothing else running): the goal line takes the smallest of SH's
three budgets (a ninth, a third, all; fixed before any run) whose best reaches
(e)'s. And a rerun compiles nothing: a second fresh process with
``--compilation-cache`` should read every program from the cache (programs
compiled 0) and spend under 1 s in compile events. The floor: the budget's
matrix-product FLOPs (forward and backward, 3 × 2 · 128 · Σ of the layers'
in·out a step) at the rate NumPy's matmul reaches on this machine's cores.

Options beyond the sizes: ``--workload {digits,spirals}``; ``--only METHOD ...``
runs only those methods, in the order above, so one can be timed alone in a
fresh process (``sobol``, ``halving``, ``halving_third``, ``halving_ninth``,
``pbt``, ``optuna_batches``, ``optuna_sequential``, ``ray_tune``); without
``optuna_sequential`` the ratios and the goal are left blank.
``--compilation-cache DIR`` calls ``jaxdescent.use_compilation_cache(DIR)``
before anything compiles (without it nothing is cached on disk, unless
``JAX_COMPILATION_CACHE_DIR`` is set: unset it for a cold run). In one process
every method runs after the ones before it, which may have compiled small
programs it reuses: ``--only`` in a fresh process is the cold measurement.

Writes ``search_showcase.md``, ``.csv`` and ``.png`` (best-so-far validation
accuracy against training steps spent, and the accuracy each search found
against its wall time) to ``--out`` (default experiments/out/search_showcase);
other workloads add theirs (``search_showcase_spirals.md``), ``--only`` adds
its methods (``search_showcase_only_halving.md``), so runs live side by side.

Needs the extras optuna, matplotlib, pandas and scikit-learn.

Run (all methods; a quiet machine for the numbers that count):
  python experiments/search_showcase.py [--workload spirals] [--out DIR] [--quick] [--trainings 256] [--max-steps 810]
Cold, successive halving and the reference in a fresh process:
  python experiments/search_showcase.py --workload spirals --only halving optuna_sequential
A rerun with the cache (the second fresh process should compile nothing):
  rm -rf /tmp/jd-cache
  python experiments/search_showcase.py --only halving --compilation-cache /tmp/jd-cache   # fills the cache
  python experiments/search_showcase.py --only halving --compilation-cache /tmp/jd-cache   # reads it
"""

import argparse  # noqa: I001 (jaxdescent before jax: its import configures XLA's CPU backend before JAX starts)
import contextlib
import csv
import functools
import math
import os
import time
import warnings

import jaxdescent

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxdescent import LogUniform, Uniform, datasets, sample

SPACE = {"learning_rate": LogUniform(1e-4, 1e-1), "weight_decay": LogUniform(1e-6, 1e-1),
         "label_smoothing": Uniform(0.0, 0.3)}
METRIC = "val_accuracy"


# ---------------------------------------------------------------- the training, as a stepwise run


def split_validation(x_all, y_all, x_test, y_test):
    """A training set split 80/20 (a fixed permutation) into train and validation; the test set as given."""
    order = np.random.default_rng(1).permutation(x_all.shape[0])
    n_val = x_all.shape[0] // 5
    val, train = order[:n_val], order[n_val:]
    return x_all[train], y_all[train], x_all[val], y_all[val], x_test, y_test


def split_digits():
    """``digits()``'s training set split 80/20 (a fixed permutation) into train and validation; its test set."""
    return split_validation(*datasets.digits())


SPIRALS_POINTS, SPIRALS_TURNS, SPIRALS_NOISE = 2296, 2, 0.03


def split_spirals(num_points=SPIRALS_POINTS, *, seed=2296):
    """Two spirals (2-D, one-hot 2 classes): a fifth held out for test, the rest split as ``split_validation``.

    Half the points on each arm; a point's radius is ``t = sqrt(u)``, ``u ~ U(0, 1)`` (uniform over the disc),
    its angle ``2π · SPIRALS_TURNS · t`` (+ π for the second arm), plus Gaussian noise of ``SPIRALS_NOISE``:
    the arms lie 1/(2 · turns) = 0.25 apart along a radius. NumPy only, from a fixed seed.
    """
    rng = np.random.default_rng(seed)
    label = np.arange(num_points) % 2
    t = np.sqrt(rng.uniform(0.0, 1.0, num_points))
    angle = 2 * np.pi * SPIRALS_TURNS * t + np.pi * label
    x = t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x = (x + rng.normal(0.0, SPIRALS_NOISE, x.shape)).astype(np.float32)
    x, y = jnp.asarray(x), jnp.asarray(np.eye(2, dtype=np.float32)[label])  # device arrays, as digits()'s
    order = rng.permutation(num_points)
    test, rest = order[: num_points // 5], order[num_points // 5:]
    return split_validation(x[rest], y[rest], x[test], y[test])


BATCH = 128
def layer_sizes(data, hidden):
    """The MLP's widths, input to output: ``(n_in, *hidden, n_out)``."""
    return (data[0].shape[1], *hidden, data[1].shape[1])


def make_stepwise(data, *, hidden=(64,), batch=BATCH):
    """``(init, advance, test_accuracy)`` for a tanh MLP with ``hidden`` widths; ``hp`` holds traced scalars.

    ``data`` is ``(x_train, y_train, x_val, y_val, x_test, y_test)`` (labels one-hot); the sizes are Python ints.
    Layer ``i`` (from 1) has weights ``w{i}`` and biases ``b{i}``.
    """
    x_train, y_train, x_val, y_val, x_test, y_test = data
    n_train = x_train.shape[0]
    sizes = layer_sizes(data, hidden)
    num_layers = len(sizes) - 1

    def mlp(params, x):
        for i in range(1, num_layers):
            x = jnp.tanh(x @ params[f"w{i}"] + params[f"b{i}"])
        return x @ params[f"w{num_layers}"] + params[f"b{num_layers}"]

    def accuracy(params, x, y):
        return jnp.mean(jnp.argmax(mlp(params, x), -1) == jnp.argmax(y, -1))

    def optimizer(hp):
        return optax.adamw(hp["learning_rate"], weight_decay=hp["weight_decay"])

    def init(hp, key):
        params = {}
        for i, (k, n_in, n_out) in enumerate(zip(jax.random.split(key, num_layers), sizes, sizes[1:]), start=1):
            params[f"w{i}"] = jax.random.normal(k, (n_in, n_out)) / np.sqrt(n_in)
            params[f"b{i}"] = jnp.zeros(n_out)
        return {"params": params, "opt_state": optimizer(hp).init(params)}

    def advance(hp, state, key, num_steps):
        opt = optimizer(hp)

        def loss_fn(params, x, y):
            targets = optax.smooth_labels(y, hp["label_smoothing"])
            return optax.softmax_cross_entropy(mlp(params, x), targets).mean()

        def step(carry, t):
            params, opt_state = carry
            idx = jax.random.randint(jax.random.fold_in(key, t), (batch,), 0, n_train)
            loss, grads = jax.value_and_grad(loss_fn)(params, x_train[idx], y_train[idx])
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = lax.scan(step, (state["params"], state["opt_state"]),
                                               jnp.arange(num_steps, dtype=jnp.int32))
        return {"params": params, "opt_state": opt_state}, {METRIC: accuracy(params, x_val, y_val),
                                                            "train_loss": losses.mean()}

    def test_accuracy(state):
        return accuracy(state["params"], x_test, y_test)

    return init, advance, test_accuracy


def make_train(data, max_steps, *, hidden=(64,)):
    """A full training as one run function ``fn(hp, key)``: ``init``, then ``max_steps`` steps, then measure."""
    init, advance, test_accuracy = make_stepwise(data, hidden=hidden)

    def train(hp, key):
        state, metrics = advance(hp, init(hp, key), jax.random.fold_in(key, 0), max_steps)
        return {METRIC: metrics[METRIC], "test_accuracy": test_accuracy(state)}

    return train


def explore(hp, key):
    """PBT's explore: each hyperparameter × 0.8 or × 1.25 (label smoothing ± 0.02, kept in [0, 0.3])."""
    k1, k2, k3 = jax.random.split(key, 3)
    factor = lambda k: jnp.where(jax.random.bernoulli(k), 1.25, 0.8)
    return {"learning_rate": hp["learning_rate"] * factor(k1), "weight_decay": hp["weight_decay"] * factor(k2),
            "label_smoothing": jnp.clip(hp["label_smoothing"] + jnp.where(jax.random.bernoulli(k3), 0.02, -0.02),
                                        0.0, 0.3)}


# ---------------------------------------------------------------- the searches: each returns a row and a curve


def rungs(min_steps, max_steps, eta):
    """The total steps of each rung of successive halving: ``min(min_steps · eta^r, max_steps)`` up to max_steps."""
    out = [min_steps]
    while out[-1] < max_steps:
        out.append(min(out[-1] * eta, max_steps))
    return out


def halving_steps(num_points, budgets, eta):
    """The training steps successive halving spends on ``num_points`` points (⌈n/eta⌉ survive each rung)."""
    total, alive, done = 0, num_points, 0
    for steps in budgets:
        total += alive * (steps - done)
        alive, done = math.ceil(alive / eta), steps
    return total


COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
CACHE_HIT = "/jax/compilation_cache/cache_hits"


class Compiles:
    """What JAX reports compiling while ``with`` runs: seconds of its compile events, programs, cache hits.

    ``seconds``: the sum of the trace, lowering and XLA-compile events (nothing subtracted; a program read
    from the persistent cache counts its reading as an XLA-compile event); ``programs``: XLA-compile events
    that were not persistent-cache hits (JAX records a hit as an XLA-compile event too); ``cache_hits``:
    programs read from the persistent cache. One listener for the process (jax 0.7 cannot remove one).
    """

    def __init__(self):
        self.active = None
        jax.monitoring.register_event_duration_secs_listener(self._duration)
        jax.monitoring.register_event_listener(self._event)

    def _duration(self, name, duration, **kwargs):
        if self.active is not None and name in COMPILE_EVENTS:
            self.active["seconds"] += duration
            self.active["backend"] += name == BACKEND_COMPILE

    def _event(self, name, **kwargs):
        if self.active is not None and name == CACHE_HIT:
            self.active["cache_hits"] += 1

    @contextlib.contextmanager
    def __call__(self):
        self.active = counts = {"seconds": 0.0, "backend": 0, "cache_hits": 0}
        try:
            yield counts
        finally:
            self.active = None
            counts["programs"] = counts["backend"] - counts["cache_hits"]


def result(name, best_val, test_acc, wall_s, steps, curve, note="", again_s=None, compiles=None):
    compiles = compiles or {}
    return {"method": name, "best_val": best_val, "test": test_acc, "wall_s": wall_s, "steps": steps,
            "curve": curve, "note": note, "again_s": again_s, "compile_s": compiles.get("seconds"),
            "programs": compiles.get("programs"), "cache_hits": compiles.get("cache_hits")}


def curve_of(values, steps_each):
    """Best-so-far of ``values`` (in the order they were found), against cumulative training steps."""
    return np.cumsum(np.asarray(steps_each, dtype=np.int64) * np.ones(len(values))), np.maximum.accumulate(values)


def sobol_grid(data, args, key, compiles):
    with compiles() as compiled:
        start = time.perf_counter()
        points = sample(SPACE, args.trainings, method="sobol")
        runs = jaxdescent.sweep_fn(make_train(data, args.max_steps, hidden=args.hidden), points, product=False,
                                   key=key)
        val, test = np.asarray(runs.metrics[METRIC]), np.asarray(runs.metrics["test_accuracy"])
        wall = time.perf_counter() - start
    best = int(np.argmax(val))
    return result("(a) Sobol grid, one sweep_fn call", val[best], test[best], wall, args.trainings * args.max_steps,
                  curve_of(val, args.max_steps), f"{args.trainings} points × {args.max_steps} steps",
                  compiles=compiled)


def successive_halving(data, args, key, compiles, part=1):
    """Successive halving on ``1/part`` of the budget: as many Sobol points as that pays for (at least one)."""
    name = "(b) successive halving (jaxdescent)" if part == 1 else f"(b/{part}) successive halving, 1/{part} of the budget"
    budgets = rungs(args.min_steps, args.max_steps, args.eta)
    budget = args.trainings * args.max_steps // part
    num_points = 1
    while halving_steps(num_points + 1, budgets, args.eta) <= budget:
        num_points += 1
    init, advance, test_accuracy = make_stepwise(data, hidden=args.hidden)
    search = functools.partial(jaxdescent.successive_halving, init, advance, sample(SPACE, num_points, method="sobol"),
                               metric=METRIC, mode="max", min_steps=args.min_steps, max_steps=args.max_steps,
                               eta=args.eta, key=key)
    with compiles() as compiled:
        start = time.perf_counter()
        found = search()
        wall = time.perf_counter() - start
    start = time.perf_counter()
    search()  # again, with the same init and advance: the rungs' programs are compiled
    again = time.perf_counter() - start
    test = float(jax.jit(test_accuracy)(found.best_state))
    frame = found.to_pandas()
    last = frame[frame["steps"] == frame["steps"].max()]
    steps_of_rung = [len(frame[frame["rung"] == r]) * (s - (budgets[r - 1] if r else 0)) for r, s in enumerate(budgets)]
    best_seen = [frame[frame["rung"] <= r][METRIC].max() for r in range(len(budgets))]
    return result(name, last[METRIC].max(), test, wall, sum(steps_of_rung),
                  (np.cumsum(steps_of_rung), np.maximum.accumulate(best_seen)),
                  f"{num_points} points, rungs {'/'.join(map(str, budgets))} steps, eta {args.eta}", again, compiled)


def population_based(data, args, key, compiles):
    name = "(c) PBT (jaxdescent)"
    steps_per_round = args.max_steps // args.rounds
    init, advance, test_accuracy = make_stepwise(data, hidden=args.hidden)
    with compiles() as compiled:
        start = time.perf_counter()
        found = jaxdescent.pbt(init, advance, sample(SPACE, args.trainings, method="sobol"), metric=METRIC,
                               mode="max", steps_per_round=steps_per_round, num_rounds=args.rounds, explore=explore,
                               key=key)
        wall = time.perf_counter() - start
    test = float(jax.jit(test_accuracy)(found.best_state))
    frame = found.history.to_pandas()
    per_round = frame.groupby("round")[METRIC].max().sort_index().to_numpy()
    steps = args.trainings * steps_per_round * args.rounds
    return result(name, per_round[-1], test, wall, steps,
                  (args.trainings * steps_per_round * np.arange(1, args.rounds + 1), np.maximum.accumulate(per_round)),
                  f"{args.trainings} members, {args.rounds} rounds of {steps_per_round} steps", compiles=compiled)


def optuna_trials(study):
    """Validation accuracy (failed trials: 0) and test accuracy of each trial, in trial order."""
    val = np.array([t.value if t.value is not None else 0.0 for t in study.trials])
    return val, [t.user_attrs.get("test_accuracy") for t in study.trials]


def optuna_batches(data, args, key, compiles):
    import optuna

    train = make_train(data, args.max_steps, hidden=args.hidden)
    num_batches = math.ceil(args.trainings / args.batch_size)
    with compiles() as compiled:
        start = time.perf_counter()
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=0, constant_liar=True))
        jaxdescent.optuna_search(train, study, SPACE, num_batches=num_batches, batch_size=args.batch_size,
                                 metric=METRIC, key=key)
        wall = time.perf_counter() - start
    # optuna_search tells the metric only; the test accuracy of the best trial is the same run again (same key)
    best = study.best_trial
    hp = {name: np.float32(best.params[name]) for name in SPACE}
    test = float(jax.jit(train)(hp, jax.random.fold_in(key, 0))["test_accuracy"])
    val, _ = optuna_trials(study)
    return result("(d) Optuna TPE, batches (optuna_search)", study.best_value, test, wall,
                  num_batches * args.batch_size * args.max_steps, curve_of(val, args.max_steps),
                  f"{num_batches} batches of {args.batch_size} trials, TPE (constant liar), seed 0", compiles=compiled)


def optuna_sequential(data, args, key, compiles):
    import optuna

    train = jax.jit(make_train(data, args.max_steps, hidden=args.hidden))
    run_key = jax.random.fold_in(key, 0)  # the key sweep_fn gives a run without seeds

    def objective(trial):
        hp = {"learning_rate": trial.suggest_float("learning_rate", *SPACE["learning_rate"], log=True),
              "weight_decay": trial.suggest_float("weight_decay", *SPACE["weight_decay"], log=True),
              "label_smoothing": trial.suggest_float("label_smoothing", *SPACE["label_smoothing"])}
        out = train({k: np.float32(v) for k, v in hp.items()}, run_key)
        trial.set_user_attr("test_accuracy", float(out["test_accuracy"]))
        return float(out[METRIC])

    with compiles() as compiled:
        start = time.perf_counter()
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
        study.optimize(objective, n_trials=args.trainings)
        wall = time.perf_counter() - start
    val, _ = optuna_trials(study)
    return result("(e) Optuna TPE, sequential (one jit)", study.best_value,
                  study.best_trial.user_attrs["test_accuracy"], wall, args.trainings * args.max_steps,
                  curve_of(val, args.max_steps), f"{args.trainings} trials one after another, TPE, seed 0",
                  compiles=compiled)


def ray_tune(data, args, key, compiles):
    try:
        import ray  # noqa: F401
    except ImportError:
        note = "skipped: ray is not installed (pip install 'ray[tune]')"
    else:
        note = "skipped: ray imports, but this script has no Ray Tune runner yet"
    return result("(f) Ray Tune ASHA", None, None, None, None, None, note)


# ---------------------------------------------------------------- the table and the figure


def fmt(value, spec):
    return "—" if value is None else format(value, spec)


def table(rows, reference_wall):
    header = ["method", "best val. accuracy", "test accuracy (that config)", "wall s", "training steps",
              "wall / Optuna sequential", "compile s", "programs compiled", "cache hits", "wall s, run again",
              "setting"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    records = []
    for r in rows:
        ratio = None if r["wall_s"] is None or not reference_wall else r["wall_s"] / reference_wall
        cells = [r["method"], fmt(r["best_val"], ".4f"), fmt(r["test"], ".4f"), fmt(r["wall_s"], ".1f"),
                 fmt(r["steps"], ","), fmt(ratio, ".3f"), fmt(r["compile_s"], ".2f"), fmt(r["programs"], "d"),
                 fmt(r["cache_hits"], "d"), fmt(r["again_s"], ".2f"), r["note"]]
        lines.append("| " + " | ".join(cells) + " |")
        records.append(dict(zip(header, ["" if c == "—" else c for c in cells])))
    return lines, records


def matmul_rate(n=1024, repeats=5):
    """FLOP/s of NumPy's float32 matrix product (its BLAS, every core): the machine's practical peak."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def goal(rows, floor_s):
    """The issue's goal: successive halving reaches sequential Optuna's best accuracy in ≤ 1/3 of its wall time."""
    by = {r["method"].split()[0]: r for r in rows}
    halving = [by[k] for k in ("(b/9)", "(b/3)", "(b)") if k in by]
    if "(e)" not in by or not halving:
        return "Goal: not evaluated (--only left out sequential Optuna (e) or every successive halving (b))."
    seq = by["(e)"]
    floor = (f" Floor: a whole budget's matrix products at NumPy's matmul rate take {floor_s:.3g} s "
             f"({floor_s / seq['wall_s']:.3f} × sequential Optuna's wall time).")
    reached = [r for r in halving if r["best_val"] >= seq["best_val"]]
    if not reached:
        return (f"Goal: successive halving does NOT reach sequential Optuna's best validation accuracy "
                f"({seq['best_val']:.4f}) on any of its budgets run ({', '.join(r['method'].split()[0] for r in halving)}"
                f"): not met." + floor)
    sh = reached[0]
    ratio = sh["wall_s"] / seq["wall_s"]
    return (f"Goal: successive halving reaches sequential Optuna's best validation accuracy ({sh['best_val']:.4f} vs "
            f"{seq['best_val']:.4f}) first as {sh['method'].split()[0]}, in {ratio:.3f} × its wall time (target "
            f"≤ 0.333: {'met' if ratio <= 1 / 3 else 'not met'}; only a quiet machine's full run counts); it spent "
            f"{sh['compile_s']:.2f} s compiling ({sh['programs']} programs, {sh['cache_hits']} from the cache); the "
            f"same search again in this process: {sh['again_s'] / seq['wall_s']:.3f} ×." + floor)


def figure(rows, path, title, reference_wall):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, by_time) = plt.subplots(1, 2, figsize=(13, 4.8))
    styles = ("-", "--", "-.", ":", (0, (5, 1)), (0, (1, 3)), (0, (3, 1, 1, 1)), (0, (8, 2)))
    for r, style, color in zip(rows, styles, plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        if r["curve"] is None:
            continue
        steps, best = r["curve"]  # a line style each: equal searches (TPE's random start) overlap
        ax.step(steps, 100 * np.asarray(best), where="post", linestyle=style, color=color,
                marker="o" if len(steps) < 12 else None, label=r["method"])
        by_time.plot(r["wall_s"], 100 * r["best_val"], "o", color=color, label=r["method"])
    ax.set_xscale("log")
    ax.set_xlabel("training steps spent (all runs)")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    if reference_wall:
        by_time.axvline(reference_wall / 3, color="gray", linestyle=":",
                        label="a third of sequential Optuna's wall time")
    by_time.set_xlabel("wall time, compilation included (s)")
    by_time.set_ylabel("best validation accuracy found (%)")
    by_time.set_title("what each search found, and when it finished", fontsize=10)
    by_time.legend(fontsize=7, loc="lower right")
    for a in (ax, by_time):
        a.grid(alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


SEARCHES = {  # --only's names, in the order they run
    "sobol": sobol_grid, "halving": successive_halving,
    "halving_third": functools.partial(successive_halving, part=3),
    "halving_ninth": functools.partial(successive_halving, part=9),
    "pbt": population_based, "optuna_batches": optuna_batches, "optuna_sequential": optuna_sequential,
    "ray_tune": ray_tune}

WORKLOADS = {  # name: (data, hidden widths, what the table's header says)
    "digits": (split_digits, (64,), "digits, tanh MLP 64-64-10"),
    "spirals": (split_spirals, (64, 64),
                f"two spirals ({SPIRALS_TURNS} turns, noise {SPIRALS_NOISE}; held out: fixed before any tuning), "
                f"tanh MLP 2-64-64-2"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("experiments", "out", "search_showcase"))
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: a budget of 18 trainings of 90 steps, rungs of 30 and 90, Optuna batches of 6")
    parser.add_argument("--workload", choices=list(WORKLOADS), default="digits",
                        help="digits (the tuned workload) or spirals (held out)")
    parser.add_argument("--only", nargs="+", choices=list(SEARCHES), metavar="METHOD",
                        help=f"run only these methods ({', '.join(SEARCHES)}); without optuna_sequential the "
                             f"ratios to it are left blank")
    parser.add_argument("--compilation-cache", metavar="DIR",
                        help="keep compiled programs in DIR (jaxdescent.use_compilation_cache), before anything "
                             "compiles")
    parser.add_argument("--trainings", type=int, default=256, help="the budget, in full trainings")
    parser.add_argument("--max-steps", type=int, default=810, help="steps of a full training")
    parser.add_argument("--min-steps", type=int, default=30, help="successive halving's first rung")
    parser.add_argument("--eta", type=int, default=3, help="successive halving keeps 1/eta per rung")
    parser.add_argument("--rounds", type=int, default=9, help="PBT's rounds (max-steps / rounds steps each)")
    parser.add_argument("--batch-size", type=int, default=32, help="Optuna trials per batch (d)")
    args = parser.parse_args(argv)
    if args.quick:
        args.trainings, args.max_steps, args.min_steps, args.rounds, args.batch_size = 18, 90, 30, 3, 6
    cache = None if args.compilation_cache is None else jaxdescent.use_compilation_cache(args.compilation_cache)
    compiles = Compiles()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # constant_liar
    load, args.hidden, about = WORKLOADS[args.workload]
    data = load()
    key = jax.random.key(0)
    rows = []
    for name, search in SEARCHES.items():
        if args.only and name not in args.only:
            continue
        rows.append(search(data, args, key, compiles))
        if rows[-1]["wall_s"] is None:
            print(f"{rows[-1]['method']}: {rows[-1]['note']}", flush=True)
        else:
            print(f"{rows[-1]['method']}: best val. accuracy {rows[-1]['best_val']:.4f} in {rows[-1]['wall_s']:.1f} s "
                  f"({rows[-1]['compile_s']:.2f} s compiling, {rows[-1]['programs']} programs compiled, "
                  f"{rows[-1]['cache_hits']} from the cache)", flush=True)
    reference = next((r["wall_s"] for r in rows if r["method"].startswith("(e)")), None)
    lines, records = table(rows, reference)
    sizes = layer_sizes(data, args.hidden)
    flops_per_step = 3 * 2 * BATCH * sum(a * b for a, b in zip(sizes, sizes[1:]))  # forward, and twice that backward
    floor_s = args.trainings * args.max_steps * flops_per_step / matmul_rate()
    n_train, n_val, n_test = (len(data[i]) for i in (0, 2, 4))
    text = ["# Search beyond grids: one budget, six searches", "",
            f"{about} ({n_train} train / {n_val} validation / {n_test} test), AdamW, minibatches of {BATCH}; "
            f"searched: learning rate, weight decay, label smoothing. Budget: {args.trainings} trainings of "
            f"{args.max_steps} steps = {args.trainings * args.max_steps:,} training steps per method. "
            f"{jax.default_backend()}, {os.cpu_count()} CPU cores; wall times include compilation; compilation "
            f"cache: {cache or 'off'}.", "",
            *lines, "", goal(rows, floor_s), ""]
    stem = "search_showcase" + ("" if args.workload == "digits" else f"_{args.workload}")
    if args.only:
        stem += "_only_" + "_".join(args.only)  # a run of some methods leaves the whole table alone
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{stem}.md"), "w") as f:
        f.write("\n".join(text))
    with open(os.path.join(args.out, f"{stem}.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    figure(rows, os.path.join(args.out, f"{stem}.png"),
           f"{args.workload} MLP, {args.trainings} trainings × {args.max_steps} steps of budget per method", reference)
    print("\n".join(text))


if __name__ == "__main__":
    main()
