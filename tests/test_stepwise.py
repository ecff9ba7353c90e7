"""Successive halving, PBT and per-run early stopping against plain Python/NumPy loops that train the same runs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxdescent import count_compilations, pbt, stepwise, successive_halving, sweep_fn
from jaxdescent._validate import InvalidArgument

# ---------------------------------------------------------------- a noisy quadratic with a step counter


def init(hp, key):
    return {"w": 1.0 + 0.5 * jax.random.normal(key, (2,)), "count": jnp.int32(0)}


def advance(hp, state, key, num_steps):
    def one(i, s):
        noise = hp["noise"] * jax.random.normal(jax.random.fold_in(key, i), (2,))
        return {"w": s["w"] - hp["lr"] * (2 * s["w"] + noise), "count": s["count"] + 1}

    state = lax.fori_loop(0, num_steps, one, state)
    loss = jnp.sum(state["w"] ** 2)
    return state, {"loss": jnp.where(hp["lr"] > 0.9, jnp.nan, loss), "count": state["count"]}


POINTS = {"lr": np.array([0.01, 0.3, 0.05, 0.95, 0.1, 0.2, 0.02, 0.4], np.float32),
          "noise": np.array([0.1, 0.5, 0.0, 0.1, 0.2, 0.05, 0.3, 1.0], np.float32)}


def reference_halving(points, *, metric, mode, min_steps, max_steps, eta, seeds, key, every=None, stop=None):
    """Successive halving as a plain Python loop: a jitted advance called per point and seed, ranked by sorting.

    Each rung is advanced in blocks with keys ``fold_in(run_key, steps)``: of ``every`` steps, after which a run
    stops for good when a metric is NaN or meets ``stop``; without ``every``, of the greatest common divisor of
    the rungs' steps, and no run stops.
    """
    run_init, run_advance = jax.jit(init), jax.jit(advance, static_argnums=3)
    n = len(next(iter(points.values())))
    hp = [{k: jnp.float32(v[p]) for k, v in points.items()} for p in range(n)]
    seed_keys = [jax.random.fold_in(key, s) for s in range(seeds or 1)]
    states = {p: [run_init(hp[p], k) for k in seed_keys] for p in range(n)}
    budgets, b = [], min_steps
    while not budgets or budgets[-1] < max_steps:
        budgets.append(min(b, max_steps))
        b *= eta
    block = every or math.gcd(*(after - before for before, after in zip([0, *budgets], budgets)))
    steps = {p: [0] * len(seed_keys) for p in range(n)}
    last = {p: [None] * len(seed_keys) for p in range(n)}
    stopped = {p: [False] * len(seed_keys) for p in range(n)}
    alive, rungs = list(range(n)), []
    for rung, total in enumerate(budgets):
        scores = {}
        for p in alive:
            for s, k in enumerate(seed_keys):
                while steps[p][s] < total and not stopped[p][s]:
                    states[p][s], last[p][s] = run_advance(hp[p], states[p][s], jax.random.fold_in(k, steps[p][s]),
                                                           block)
                    steps[p][s] += block
                    m = last[p][s]
                    stopped[p][s] = every is not None and (any(np.isnan(float(v)) for v in m.values())
                                                           or bool(stop and stop(m)))
            scores[p] = float(np.median([float(m[metric]) for m in last[p]]))
        rungs.append(scores)
        sign = 1 if mode == "max" else -1
        ranked = sorted(alive, key=lambda p: (math.isnan(scores[p]), -sign * scores[p], p))
        alive = ranked[:math.ceil(len(alive) / eta)] if rung < len(budgets) - 1 else ranked[:1]
    return budgets, rungs, alive[0], states[alive[0]], steps


@pytest.mark.parametrize("mode, seeds, eta, min_steps, max_steps", [
    pytest.param("min", 3, 2, 2, 12, id="min-3seeds-eta2"),  # rungs of 2, 2, 4 and 4 steps: blocks of 2
    pytest.param("max", None, 3, 2, 12, id="max-noseeds-eta3"),  # 2, 4 and 6 steps: blocks of 2
    pytest.param("min", None, 2, 4, 18, id="min-noseeds-eta2-blocks-of-2"),  # 4, 4, 8 and 2 steps: rung 0 in 2
])
def test_successive_halving_matches_a_python_loop(mode, seeds, eta, min_steps, max_steps):
    key = jax.random.key(4)
    got = successive_halving(init, advance, POINTS, metric="loss", mode=mode, min_steps=min_steps,
                             max_steps=max_steps, eta=eta, seeds=seeds, key=key)
    budgets, rungs, best, best_states, _ = reference_halving(POINTS, metric="loss", mode=mode, min_steps=min_steps,
                                                             max_steps=max_steps, eta=eta, seeds=seeds, key=key)
    assert got.budgets == tuple(budgets)
    table = got.to_pandas()
    for rung, scores in enumerate(rungs):  # the same survivors at every rung, the same metrics
        rows = table[table.rung == rung]
        assert rows.point.tolist() == list(scores)  # the survivors, best first
        assert set(rows.steps) == {budgets[rung]}
        want = np.array([scores[p] for p in rows.point])
        # To float32 rounding (bit-identical on the machine this was written on): the engine vmaps the runs, the
        # loop does not, and XLA may contract a*b + c differently.
        np.testing.assert_allclose(rows.loss.to_numpy(), want, rtol=1e-6)
    assert got.best == {k: float(v[best]) for k, v in POINTS.items()}
    want_state = jax.tree_util.tree_map(lambda *s: np.stack(s) if seeds else s[0], *best_states)
    np.testing.assert_allclose(got.best_state["w"], want_state["w"], rtol=1e-6)
    # Rungs continue from their state: the counter has counted every step (from scratch it would hold the last
    # rung's steps only).
    np.testing.assert_array_equal(got.best_state["count"], max_steps)
    assert np.isnan(table[table.point == 3].loss).all() and len(table[table.point == 3]) == 1  # NaN never survives


@pytest.mark.parametrize("seeds", [None, 3])
def test_successive_halving_stops_runs_early_as_a_python_loop_does(seeds):
    key = jax.random.key(5)
    stop = lambda m: m["loss"] < 0.05  # noqa: E731
    settings = dict(metric="loss", mode="min", min_steps=2, max_steps=18, eta=3, seeds=seeds, key=key, every=1,
                    stop=stop)
    got = successive_halving(init, advance, POINTS, **settings)
    budgets, rungs, best, best_states, steps = reference_halving(POINTS, **settings)
    table = got.to_pandas()
    for rung, scores in enumerate(rungs):
        rows = table[table.rung == rung]
        assert rows.point.tolist() == list(scores)
        np.testing.assert_allclose(rows.loss.to_numpy(), [scores[p] for p in rows.point], rtol=1e-6)
    assert got.best == {k: float(v[best]) for k, v in POINTS.items()}
    np.testing.assert_array_equal(got.best_state["count"], np.squeeze([s["count"] for s in best_states]))
    steps_run = table.groupby("point").steps_run.max()
    for p, run in steps_run.items():  # each point's runs trained what the loop trained them, at most
        assert run == max(steps[p])
    assert steps_run[3] == 1  # lr 0.95: NaN after its first block of rung 0's 2 steps, so it computed nothing more
    assert (table.steps_run < table.steps).any() and (table.steps_run <= table.steps).all()


def fresh_halving(points, **settings):
    """``(compilations, result)`` of a successive halving with an ``advance`` that nothing has been compiled for."""
    def fresh_advance(hp, state, key, num_steps):
        return advance(hp, state, key, num_steps)

    with count_compilations() as c:
        found = successive_halving(init, fresh_advance, points, metric="loss", mode="min", key=jax.random.key(0),
                                   progress=False, **settings)
    return c.count, found


BLOCKS = [pytest.param({}, id="every=None"), pytest.param({"every": 1, "stop": lambda m: m["loss"] < 0.1}, id="every=1")]


@pytest.mark.parametrize("blocks", BLOCKS)
def test_successive_halving_compiles_as_much_for_5_rungs_as_for_1(blocks):
    fresh_halving(POINTS, min_steps=1, max_steps=1, seeds=2, **blocks)  # what any search compiles once, compiled
    one, found = fresh_halving(POINTS, min_steps=1, max_steps=1, seeds=2, **blocks)
    assert found.budgets == (1,)
    five, found = fresh_halving(POINTS, min_steps=1, max_steps=16, eta=2, seeds=2, **blocks)
    assert found.budgets == (1, 2, 4, 8, 16)
    assert five == one


@pytest.mark.parametrize("blocks", BLOCKS)
def test_rungs_of_as_many_runs_share_one_program(blocks):
    # One point x 2 seeds: every rung runs 2 runs, and only its steps (traced) differ.
    point = {k: v[4:5] for k, v in POINTS.items()}
    fresh_halving(point, min_steps=1, max_steps=1, seeds=2, **blocks)  # what any search compiles once, compiled
    one, found = fresh_halving(point, min_steps=1, max_steps=1, seeds=2, **blocks)
    assert found.budgets == (1,)
    five, found = fresh_halving(point, min_steps=1, max_steps=16, eta=2, seeds=2, **blocks)
    assert found.budgets == (1, 2, 4, 8, 16)
    assert five == one >= 1
    # The traced steps were run: every step of every rung, or up to the stop (steps_run: the most of a seed).
    assert found.best_state["count"].max() == (found.rows["steps_run"][-1] if blocks else 16)


@pytest.mark.parametrize("every, stop, match", [(None, lambda m: True, "stop needs every"),
                                                (4, None, "every must divide"),
                                                (1, "loss", "stop must be callable"),
                                                (0, None, "every"),
                                                (1, lambda m: jnp.stack([m["loss"]] * 2) < 1, "one bool per run"),
                                                (1, lambda m: m["missing"] < 1, "stop failed")])
def test_successive_halving_refuses_bad_blocks(every, stop, match):
    with pytest.raises(InvalidArgument, match=match):
        successive_halving(init, advance, POINTS, metric="loss", min_steps=2, max_steps=6, every=every, stop=stop)

def test_nan_ranks_last_in_both_modes():
    points = {"lr": np.array([0.95, 0.01], np.float32), "noise": np.zeros(2, np.float32)}
    for mode in ("min", "max"):
        got = successive_halving(init, advance, points, metric="loss", mode=mode, min_steps=1, max_steps=2, eta=2)
        assert got.best["lr"] == pytest.approx(0.01)


def test_a_second_search_of_the_same_sizes_compiles_nothing():
    def fresh_advance(hp, state, key, num_steps):  # a new function: nothing cached for it
        return advance(hp, state, key, num_steps)

    settings = dict(metric="loss", mode="min", min_steps=1, max_steps=8, eta=2, seeds=2, key=jax.random.key(0))
    first = successive_halving(init, fresh_advance, POINTS, **settings)
    assert first.budgets == (1, 2, 4, 8)
    other = {k: v[::-1].copy() for k, v in POINTS.items()}
    with count_compilations() as c:
        successive_halving(init, fresh_advance, other, **settings)
    assert c.count == 0


def test_successive_halving_reports_training_steps_done():
    seen = []
    successive_halving(init, advance, POINTS, metric="loss", mode="min", min_steps=1, max_steps=8, eta=2, seeds=3,
                       progress=lambda done, total: seen.append((done, total)))
    # rungs of 8, 4, 2 and 1 points x 3 seeds advance 1, 1, 2 and 4 steps: 24 + 12 + 12 + 12 training steps
    assert {total for _, total in seen} == {60}
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 60 and {24, 36, 48} <= set(done)
    with pytest.raises(TypeError, match="progress"):
        successive_halving(init, advance, POINTS, metric="loss", min_steps=1, max_steps=2, progress="yes")

# ---------------------------------------------------------------- PBT against a NumPy simulation


def target_init(hp, key):
    return {"w": jax.random.uniform(key, (), minval=-1.0, maxval=1.0), "count": jnp.int32(0)}


def target_advance(hp, state, key, num_steps):
    w = lax.fori_loop(0, num_steps, lambda i, w: w - hp["lr"] * 2 * (w - 3.0), state["w"])
    return {"w": w, "count": state["count"] + num_steps}, {"loss": (w - 3.0) ** 2}


def scale_lr(hp, key):
    return {"lr": hp["lr"] * jax.random.uniform(key, (), minval=0.5, maxval=1.5)}


def numpy_pbt(lr, key, *, steps_per_round, num_rounds, quantile, every=None, stop=None):
    """PBT's rounds in NumPy (float32), with the draws the docstring of pbt names, made by jax.random.

    With ``every``, a member stops after a block of ``every`` steps whose loss is NaN or meets ``stop``: its w,
    loss and steps stay as they were until it copies another member's (with that member's stopped flag).
    """
    n = len(lr)
    lr = lr.astype(np.float32).copy()
    w = np.array([float(target_init(None, jax.random.fold_in(key, i))["w"]) for i in range(n)], np.float32)
    q = max(1, int(quantile * n))
    draws = jax.random.fold_in(key, 2**31 - 1)
    lrs, losses, sources, steps_run = [], [], [], []
    loss, steps, stopped = np.full(n, np.nan, np.float32), np.zeros(n, int), np.zeros(n, bool)
    for r in range(num_rounds):
        for _ in range(steps_per_round // (every or steps_per_round)):
            running = ~stopped
            for _ in range(every or steps_per_round):
                w = np.where(running, w - lr * np.float32(2) * (w - np.float32(3)), w).astype(np.float32)
            loss = np.where(running, (w - np.float32(3)) ** 2, loss)
            steps = steps + running * (every or steps_per_round)
            if every is not None:
                stopped = stopped | np.isnan(loss) | (stop(loss) if stop else False)
        steps_run.append(steps.copy())
        lrs.append(lr.copy())
        losses.append(loss)
        order = sorted(range(n), key=lambda i: (np.isnan(loss[i]), loss[i], i))
        pick, ex = jax.random.split(jax.random.fold_in(draws, r))
        slots = np.asarray(jax.random.randint(pick, (n,), 0, q))
        source = np.arange(n)
        if r < num_rounds - 1:
            for i in order[n - q:]:
                source[i] = order[:q][slots[i]]
        factor = np.array([float(jax.random.uniform(jax.random.fold_in(ex, i), (), minval=0.5, maxval=1.5))
                           for i in range(n)], np.float32)
        moved = source != np.arange(n)
        lr, w = np.where(moved, lr[source] * factor, lr[source]).astype(np.float32), w[source]
        loss, steps, stopped = loss[source], steps[source], stopped[source]
        sources.append(source)
    if every is None:
        return np.array(lrs), np.array(losses), np.array(sources), w
    return np.array(lrs), np.array(losses), np.array(sources), w, np.array(steps_run)


def test_pbt_matches_a_numpy_simulation():
    lr = np.array([0.001, 0.004, 0.002, 0.02, 0.01, 0.003, 0.03, 0.005], np.float32)
    key = jax.random.key(3)
    got = pbt(target_init, target_advance, {"lr": lr}, metric="loss", mode="min", steps_per_round=3, num_rounds=6,
              explore=scale_lr, quantile=0.25, key=key)
    lrs, losses, sources, w = numpy_pbt(lr, key, steps_per_round=3, num_rounds=6, quantile=0.25)
    np.testing.assert_array_equal(got.history.copied_from, sources)
    assert (sources != np.arange(8)).any(axis=1)[:-1].all()  # every round but the last copies 2 members
    np.testing.assert_allclose(got.history.hp["lr"], lrs, rtol=1e-6)  # XLA against NumPy: a few float32 ulps
    np.testing.assert_allclose(got.history.metric, losses, rtol=1e-6)
    np.testing.assert_allclose(got.state["w"], w, rtol=1e-6)
    np.testing.assert_array_equal(got.state["count"], 18)  # copied states keep counting: never restarted
    best = int(np.argmin(losses[-1]))
    assert got.best == {"lr": float(lrs[-1][best])}
    assert float(got.best_state["w"]) == pytest.approx(float(w[best]), rel=1e-5)
    table = got.history.to_pandas()
    assert len(table) == 48 and list(table.columns) == ["round", "member", "steps", "lr", "loss", "copied_from"]
    assert table.steps.max() == 18



def test_pbt_stops_members_early_as_a_numpy_simulation_does():
    lr = np.array([0.001, 0.004, 0.002, 0.2, 0.01, 0.003, 0.3, 0.005], np.float32)
    key = jax.random.key(3)
    settings = dict(steps_per_round=4, num_rounds=6, quantile=0.25, every=2)
    got = pbt(target_init, target_advance, {"lr": lr}, metric="loss", mode="min", explore=scale_lr, key=key,
              stop=lambda m: m["loss"] < 1e-3, **settings)
    lrs, losses, sources, w, steps_run = numpy_pbt(lr, key, stop=lambda loss: loss < 1e-3, **settings)
    np.testing.assert_array_equal(got.history.copied_from, sources)
    np.testing.assert_allclose(got.history.hp["lr"], lrs, rtol=1e-6)
    np.testing.assert_allclose(got.history.metric, losses, rtol=1e-6)
    np.testing.assert_array_equal(got.history.steps_run, steps_run)
    assert (steps_run[-1] < 24).any()  # some members stopped: fewer steps than the rounds' 24
    np.testing.assert_allclose(got.state["w"], w, rtol=1e-6)
    np.testing.assert_array_equal(got.state["count"], steps_run[-1][sources[-1]])  # the count a stopped state kept
    assert "steps_run" in got.history.to_pandas()
    with pytest.raises(InvalidArgument, match="every must divide"):
        pbt(target_init, target_advance, {"lr": lr}, metric="loss", explore=scale_lr, steps_per_round=4,
            num_rounds=2, every=3)

def test_pbt_compiles_the_same_programs_for_any_number_of_rounds():
    def advance_once(hp, state, key, num_steps):
        return target_advance(hp, state, key, num_steps)

    def advance_often(hp, state, key, num_steps):
        return target_advance(hp, state, key, num_steps)

    lr, key = np.linspace(0.001, 0.03, 6).astype(np.float32), jax.random.key(0)
    settings = dict(metric="loss", mode="min", steps_per_round=2, explore=scale_lr, key=key, progress=False)
    pbt(target_init, target_advance, {"lr": lr}, num_rounds=2, **settings)  # what any PBT compiles once
    with count_compilations() as once:
        pbt(target_init, advance_once, {"lr": lr}, num_rounds=1, **settings)
    with count_compilations() as often:
        pbt(target_init, advance_often, {"lr": lr}, num_rounds=7, **settings)
    assert often.count == once.count >= 1
    with count_compilations() as again:
        pbt(target_init, advance_often, {"lr": lr[::-1].copy()}, num_rounds=3, **settings)
    assert again.count == 0


def test_pbt_on_several_threads_has_the_history_of_one(monkeypatch):
    """Each round's members are computed in chunks shared among the CPU threads: the same bits as one thread."""
    from jaxdescent import _engine, _progress

    shared, in_calls = [], _progress.in_calls
    monkeypatch.setattr(_progress, "in_calls", lambda call, args, threads: shared.append(min(threads, len(args)))
                        or in_calls(call, args, threads))
    lr, key = np.linspace(0.001, 0.03, 12).astype(np.float32), jax.random.key(4)
    settings = dict(metric="loss", mode="min", steps_per_round=3, num_rounds=4, explore=scale_lr, key=key,
                    progress=False)
    got = {}
    for threads in (1, 3):
        monkeypatch.setattr(_engine, "CPU_THREADS", threads)
        shared.clear()
        found = pbt(target_init, target_advance, {"lr": lr}, **settings)
        got[threads] = (found.history.to_pandas(), found.state)
        assert any(n > 1 for n in shared) == (threads > 1)  # with threads, each round's chunks were shared
    assert got[1][0].equals(got[3][0])
    jax.tree_util.tree_map(np.testing.assert_array_equal, got[1][1], got[3][1])


def test_pbt_reports_rounds_done():
    lr = np.linspace(0.001, 0.03, 4).astype(np.float32)
    seen = []
    pbt(target_init, target_advance, {"lr": lr}, metric="loss", mode="min", steps_per_round=2, num_rounds=3,
        explore=scale_lr, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


# ---------------------------------------------------------------- the PBT paper's toy example (fig. 2)

TOY_LR = 0.01  # gradient ascent on the surrogate, as public reimplementations of the toy use


def toy_init(hp, key):
    return jnp.full(2, 0.9, jnp.float32)


def toy_advance(hp, theta, key, num_steps):
    h = jnp.stack([hp["h0"], hp["h1"]])
    theta = lax.fori_loop(0, num_steps, lambda i, t: t + TOY_LR * (-2 * h * t), theta)  # ascent on Q̂(θ|h)
    return theta, {"Q": 1.2 - jnp.sum(theta**2)}  # the true objective, read out for ranking


def toy_explore(hp, key):
    noise = 0.1 * jax.random.normal(key, (2,))
    return {"h0": hp["h0"] + noise[0], "h1": hp["h1"] + noise[1]}


def test_pbt_toy_example_reaches_the_optimum_where_the_ablations_do_not():
    points = {"h0": np.array([1.0, 0.0], np.float32), "h1": np.array([0.0, 1.0], np.float32)}
    settings = dict(metric="Q", steps_per_round=4, num_rounds=50, quantile=0.5, key=jax.random.key(0))
    full = pbt(toy_init, toy_advance, points, explore=toy_explore, **settings)
    exploit_only = pbt(toy_init, toy_advance, points, explore=lambda hp, key: hp, **settings)
    # explore only: each member alone (a population of one copies itself), h perturbed every round
    explore_only = [pbt(toy_init, toy_advance, {k: v[i:i + 1] for k, v in points.items()}, explore=toy_explore,
                        **settings) for i in range(2)]
    grid = sweep_fn(stepwise(toy_init, toy_advance, num_steps=200, every=4), points, product=False)
    assert full.history.metric[-1].max() > 1.19
    assert np.asarray(grid.metrics.metrics["Q"]).max() == pytest.approx(1.2 - 0.81, abs=1e-3)  # one θ_i stays 0.9
    assert exploit_only.history.metric.max() < 0.4
    assert max(r.history.metric.max() for r in explore_only) < 1.0


# ---------------------------------------------------------------- early stopping in sweep_fn


def decay_advance(hp, w, key, num_steps):
    w = lax.fori_loop(0, num_steps, lambda i, w: w * hp["rate"], w)
    return w, {"w": w, "bad": jnp.where(w > hp["nan_above"], jnp.nan, w)}


def decay_init(hp, key):
    return jnp.float32(1.0)


def test_stepwise_stops_at_the_first_block_where_the_rule_or_a_nan_holds():
    axes = {"rate": np.array([0.9, 0.5, 1.1, 0.99], np.float32),
            "nan_above": np.array([10.0, 10.0, 2.0, 10.0], np.float32)}
    every, num_steps = 3, 30
    stop = lambda m: m["w"] < 0.05
    fn = stepwise(decay_init, decay_advance, num_steps=num_steps, every=every, stop=stop)
    got = sweep_fn(fn, axes, product=False).metrics
    step = jax.jit(decay_advance, static_argnums=3)
    for i in range(4):  # a plain loop of blocks, checking after each
        hp = {k: jnp.float32(v[i]) for k, v in axes.items()}
        w, steps, curve = decay_init(hp, None), 0, []
        while steps < num_steps:
            w, m = step(hp, w, jax.random.key(0), every)
            steps += every
            curve.append(float(m["w"]))
            if bool(stop(m)) or np.isnan(float(m["bad"])):
                break
        assert int(got.steps[i]) == steps
        np.testing.assert_array_equal(np.asarray(got.curve["w"][i, :len(curve)]), np.float32(curve))
        assert np.isnan(np.asarray(got.curve["w"][i, len(curve):])).all()  # nothing recorded after the stop
        assert float(got.metrics["w"][i]) == np.float32(curve[-1])  # the stopped run kept its state
    assert got.steps.tolist() == [30, 6, 9, 30]  # 0.5⁶ < 0.05; 1.1⁹ > 2 gives NaN (1.1⁶ < 2); the others run out


# ---------------------------------------------------------------- bad inputs


def _sh(**kw):
    args = dict(metric="loss", min_steps=1, max_steps=4, init=init, advance=advance) | kw
    points = args.pop("points", POINTS)
    return successive_halving(args.pop("init"), args.pop("advance"), points, **args)


def _pbt(**kw):
    args = dict(metric="loss", steps_per_round=1, num_rounds=2, explore=lambda hp, key: hp, init=init,
                advance=advance) | kw
    points = args.pop("points", POINTS)
    return pbt(args.pop("init"), args.pop("advance"), points, **args)


@pytest.mark.parametrize("call, name", [
    pytest.param(lambda: _sh(min_steps=5, max_steps=4), "min_steps", id="min_steps>max_steps"),
    pytest.param(lambda: _sh(min_steps=0), "min_steps", id="min_steps=0"),
    pytest.param(lambda: _sh(eta=1), "eta", id="eta<2"),
    pytest.param(lambda: _sh(eta=2.5), "eta", id="eta-float"),
    pytest.param(lambda: _sh(points={"lr": np.ones(3), "noise": np.ones(2)}), "points", id="sh-unequal"),
    pytest.param(lambda: _sh(metric="accuracy"), "metric", id="sh-metric"),
    pytest.param(lambda: _sh(mode="best"), "mode", id="sh-mode"),
    pytest.param(lambda: successive_halving(decay_init, lambda hp, s, k, n: (s, {"steps": s}), {"rate": [0.5]},
                                            metric="steps", min_steps=1, max_steps=2), "metric", id="metric-column"),
    pytest.param(lambda: _sh(seeds=0), "seeds", id="seeds=0"),
    pytest.param(lambda: _pbt(quantile=0.0), "quantile", id="quantile=0"),
    pytest.param(lambda: _pbt(quantile=0.6), "quantile", id="quantile>0.5"),
    pytest.param(lambda: _pbt(points={"lr": np.ones(3), "noise": np.ones(2)}), "points", id="pbt-unequal"),
    pytest.param(lambda: _pbt(metric="acc"), "metric", id="pbt-metric"),
    pytest.param(lambda: _pbt(mode="maximum"), "mode", id="pbt-mode"),
    pytest.param(lambda: _pbt(explore=lambda hp, key: {"lr": hp["lr"]}), "explore", id="explore-names"),
    pytest.param(lambda: _pbt(num_rounds=0), "num_rounds", id="num_rounds=0"),
    pytest.param(lambda: stepwise(decay_init, decay_advance, num_steps=10, every=3), "every", id="every"),
    # point names that are columns of the tables: to_pandas interleaved or overwrote them
    pytest.param(lambda: _sh(points={**POINTS, "steps": POINTS["lr"]}), "points: the name 'steps'", id="sh-steps"),
    *(pytest.param(lambda name=name: _pbt(points={**POINTS, name: POINTS["lr"]}), f"points: the name '{name}'",
                   id=f"pbt-{name}") for name in ("round", "member", "copied_from")),
    # sizes, before anything per run is built: seeds=10**9 built a 4 GB seed axis first; PBT checked nothing
    pytest.param(lambda: _sh(seeds=10**9), "points x seeds has 8,000,000,000 runs", id="sh-seeds-huge"),
    pytest.param(lambda: pbt(lambda hp, key: jnp.zeros(10**4), lambda hp, w, key, n: (w, {"loss": jnp.sum(w)}),
                             {"lr": np.ones(10**6, np.float32)}, metric="loss", steps_per_round=1, num_rounds=2,
                             explore=lambda hp, key: hp), "points \\(the population\\)", id="pbt-population-huge"),
    pytest.param(lambda: _pbt(num_rounds=10**9), "num_rounds: the history of 1,000,000,000 rounds", id="pbt-rounds"),
    # an advance that changes the carried state, a stop that is not one bool: JAX's carry errors named neither
    *(pytest.param(lambda search=search, change=change: search(points={"rate": np.float32([0.5, 0.9])}, metric="w",
                                                                init=decay_init, advance=change),
                   "advance must return the state in the shapes and dtypes", id=f"{search.__name__[1:]}-{what}")
      for search in (_sh, _pbt) for what, change in (("dtype", lambda hp, w, k, n: (w.astype(jnp.float16), {"w": w})),
                                                      ("shape", lambda hp, w, k, n: (jnp.stack([w, w]), {"w": w})))),
    pytest.param(lambda: sweep_fn(stepwise(decay_init, lambda hp, w, k, n: (jnp.stack([w, w]), {"w": w}), num_steps=4,
                                           every=2), {"rate": np.float32([0.5])}, progress=False),
                 "advance must return the state in the shapes and dtypes", id="stepwise-shape"),
    pytest.param(lambda: sweep_fn(stepwise(decay_init, decay_advance, num_steps=4, every=2,
                                           stop=lambda m: jnp.stack([m["w"] < 0, m["w"] < 1])),
                                  {"rate": np.float32([0.5]), "nan_above": np.float32([2.0])}, progress=False),
                 "stop must return one bool per run", id="stepwise-stop-vector"),
    # inside jit: they pick survivors and exploit on the host (a tracer conversion error before)
    pytest.param(lambda: jax.jit(lambda lr: _sh(points={"lr": lr, "noise": lr}))(POINTS["lr"]),
                 "successive_halving cannot run inside jax.jit", id="sh-in-jit"),
    pytest.param(lambda: jax.jit(lambda key: _pbt(key=key))(jax.random.key(1)), "pbt cannot run inside jax.jit",
                 id="pbt-in-jit"),
])
def test_bad_inputs_raise_one_clear_error_before_compiling(call, name):
    with count_compilations() as c, pytest.raises(InvalidArgument, match=name):
        call()
    assert c.count == 0


def test_blocks_accept_metrics_given_as_python_numbers():
    def const_advance(hp, state, key, num_steps):  # "one" and "two" are Python numbers, not arrays
        state, metrics = advance(hp, state, key, num_steps)
        return state, {**metrics, "one": 1.0, "two": 2}

    halving = successive_halving(init, const_advance, POINTS, metric="loss", mode="min", min_steps=1, max_steps=2,
                                 eta=2, every=1, progress=False)
    plain = successive_halving(init, advance, POINTS, metric="loss", mode="min", min_steps=1, max_steps=2, eta=2,
                               every=1, progress=False)
    assert halving.best == plain.best
    fn = stepwise(init, const_advance, num_steps=2, every=1)
    assert (np.asarray(sweep_fn(fn, POINTS).metrics.metrics["one"]) == 1.0).all()
    lr = {"lr": np.array([0.1, 0.2, 0.3, 0.4], np.float32)}
    found = pbt(target_init, lambda hp, s, k, n: (target_advance(hp, s, k, n)[0], {"loss": 1.0}), lr, metric="loss",
                steps_per_round=2, num_rounds=2, explore=scale_lr, every=1)
    assert found.history.metric.tolist() == [[1.0] * 4] * 2


@pytest.mark.parametrize("mode", ["min", "max"])
def test_pbt_ranks_by_a_bool_or_integer_metric(mode):
    def flag_advance(hp, state, key, num_steps):
        state, metrics = target_advance(hp, state, key, num_steps)
        return state, {"close": metrics["loss"] < 1.0, "fast": (hp["lr"] > 0.1).astype(jnp.int32)}

    lr = {"lr": np.array([0.01, 0.2, 0.3, 0.05], np.float32)}
    for metric in ("close", "fast"):
        found = pbt(target_init, flag_advance, lr, metric=metric, mode=mode, steps_per_round=2, num_rounds=1,
                    explore=scale_lr)
        assert (found.best["lr"] > 0.1) == (mode == "max")


def test_pbt_with_one_member_keeps_its_hyperparameters():
    found = pbt(target_init, target_advance, {"lr": np.array([0.1], np.float32)}, metric="loss", mode="min",
                steps_per_round=2, num_rounds=3, explore=scale_lr)
    assert found.history.hp["lr"].ravel().tolist() == [pytest.approx(0.1)] * 3
    assert found.history.copied_from.ravel().tolist() == [0, 0, 0]


PBT_ON_DEVICES = """
import sys, numpy as np, jax, jax.numpy as jnp
from jax import lax
import jaxdescent
assert jax.device_count() == int(sys.argv[1]), jax.devices()

def init(hp, key):
    return {"w": jax.random.uniform(key, (3,), minval=-1.0, maxval=1.0)}

def advance(hp, state, key, num_steps):  # noisy gradient descent on a quadratic: keys matter
    def step(i, w):
        return w - hp["lr"] * (2 * (w - 3.0) + 0.1 * jax.random.normal(jax.random.fold_in(key, i), (3,)))
    w = lax.fori_loop(0, num_steps, step, state["w"])
    return {"w": w}, {"loss": jnp.sum((w - 3.0) ** 2)}

explore = lambda hp, key: {"lr": hp["lr"] * jnp.where(jax.random.bernoulli(key), 1.2, 0.8)}
found = jaxdescent.pbt(init, advance, {"lr": np.linspace(0.001, 0.05, 24).astype(np.float32)}, metric="loss",
                       mode="min", steps_per_round=5, num_rounds=6, explore=explore, key=jax.random.key(3),
                       progress=False)
frame = found.history.to_pandas()
np.savez(sys.argv[2], **{c: frame[c].to_numpy() for c in frame.columns}, w=np.asarray(found.state["w"]))
"""


@pytest.mark.slow
def test_pbt_split_over_devices_has_the_history_of_one_device(tmp_path):
    """Each round's members split over 1, 2 or 3 CPU devices (fresh processes): the same history and states."""
    import os
    import subprocess
    import sys

    got = []
    for n in (1, 2, 3):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu")
        path = tmp_path / f"{n}.npz"
        done = subprocess.run([sys.executable, "-c", PBT_ON_DEVICES, str(n), str(path)], env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        got.append(dict(np.load(path)))
    for other in got[1:]:
        assert other.keys() == got[0].keys()
        for k in got[0]:
            np.testing.assert_array_equal(other[k], got[0][k], err_msg=k)
