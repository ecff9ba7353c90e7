"""optuna_search against Optuna's own loops: the same sampler seed asks the same trials and is told the same values."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdescent
from jaxdescent import LogUniform, Uniform, count_compilations, optuna_search
from jaxdescent._validate import InvalidArgument

optuna = pytest.importorskip("optuna")
TrialState = optuna.trial.TrialState
optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"lr": LogUniform(1e-4, 1.0), "x": Uniform(-1.0, 1.0), "width": [8, 16, 32]}


def bowl(hp, key):
    """A loss with its minimum at lr = 0.01, x = 0.3, width = 8; ``noisy`` adds the run's normal draw."""
    loss = (jnp.log10(hp["lr"]) + 2) ** 2 + (hp["x"] - 0.3) ** 2 + 0.01 * hp["width"]
    return {"loss": loss, "noisy": loss + jax.random.normal(key), "lr": hp["lr"], "width": hp["width"]}


def suggest(trial):
    """The space as an Optuna user writes it: one suggest call per name, in order."""
    return {"lr": trial.suggest_float("lr", 1e-4, 1.0, log=True), "x": trial.suggest_float("x", -1.0, 1.0),
            "width": trial.suggest_categorical("width", [8, 16, 32])}


def by_hand(hp, metric="loss", seed=0, key=jax.random.key(0)):
    """One trial's metric from one jitted run (no sweep_fn), with the key sweep_fn gives seed ``seed``."""
    hp = {"lr": np.float32(hp["lr"]), "x": np.float32(hp["x"]), "width": np.int32(hp["width"])}
    return float(jax.jit(bowl)(hp, jax.random.fold_in(key, seed))[metric])


def finished(study):
    return [(t.params, t.state, t.value) for t in study.trials]


SAMPLERS = [
    pytest.param(lambda: optuna.samplers.TPESampler(seed=0, n_startup_trials=4), id="tpe"),
    pytest.param(lambda: optuna.samplers.RandomSampler(seed=0), id="random"),
]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_batches_match_a_hand_written_ask_tell_loop(sampler):
    study = optuna_search(bowl, optuna.create_study(sampler=sampler()), SPACE, num_batches=4, batch_size=5,
                          metric="loss")
    reference = optuna.create_study(sampler=sampler())
    for _ in range(4):  # Optuna's batched ask-and-tell: ask the whole batch, then tell it
        trials = [reference.ask() for _ in range(5)]
        values = [by_hand(suggest(t)) for t in trials]
        for t, v in zip(trials, values):
            reference.tell(t, v)
    got, want = finished(study), finished(reference)
    assert len(got) == len(want) == 20
    for (params, state, value), (params_ref, state_ref, value_ref) in zip(got, want):
        assert params == params_ref and state == state_ref == TrialState.COMPLETE
        assert value == pytest.approx(value_ref, rel=1e-6)
    assert study.trials[0].distributions == reference.trials[0].distributions


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_batches_of_one_are_study_optimize(sampler):
    study = optuna_search(bowl, optuna.create_study(sampler=sampler()), SPACE, num_batches=12, batch_size=1,
                          metric="loss")
    reference = optuna.create_study(sampler=sampler())
    reference.optimize(lambda trial: by_hand(suggest(trial)), n_trials=12)
    for (params, _, value), (params_ref, _, value_ref) in zip(finished(study), finished(reference), strict=True):
        assert params == params_ref and value == pytest.approx(value_ref, rel=1e-6)


def test_the_value_is_the_median_over_seeds():
    key = jax.random.key(7)
    study = optuna_search(bowl, optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)), SPACE,
                          num_batches=2, batch_size=3, metric="noisy", seeds=5, key=key)
    for t in study.trials:
        per_seed = [by_hand(t.params, "noisy", seed, key) for seed in range(5)]
        assert t.value == pytest.approx(float(np.median(per_seed)), rel=1e-6)
        assert t.value != pytest.approx(per_seed[0], rel=1e-6)  # the seeds do differ


def test_a_trial_value_depends_on_its_point_alone_not_on_the_batches():
    """Every batch gets the same key: 2 batches of 4 tell what 1 batch of 8 and one sweep_fn call give."""
    space = {"x": Uniform(-1.0, 1.0), "width": [8, 16, 32]}
    fn = lambda hp, key: {"noisy": hp["x"] * hp["width"] + jax.random.normal(key)}
    runs = []
    for num_batches, batch_size in ((2, 4), (1, 8)):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
        runs.append(finished(optuna_search(fn, study, space, num_batches=num_batches, batch_size=batch_size,
                                           metric="noisy", seeds=2)))
    assert [p for p, _, _ in runs[0]] == [p for p, _, _ in runs[1]]
    # the same runs, in other chunks (4 points x 2 seeds, 8 x 2): equal up to the chunk's rounding (see sweep_fn)
    np.testing.assert_allclose([v for _, _, v in runs[0]], [v for _, _, v in runs[1]], rtol=1e-6, atol=1e-6)
    points = {"x": np.array([p["x"] for p, _, _ in runs[1]]), "width": np.array([p["width"] for p, _, _ in runs[1]])}
    direct = np.median(np.float64(jaxdescent.sweep_fn(fn, points, product=False, seeds=2).metrics["noisy"]), axis=-1)
    np.testing.assert_array_equal([v for _, _, v in runs[1]], direct)


def test_non_finite_values_are_failed_trials():
    def fn(hp, key):  # "v": NaN above 0.5, inf below -0.5; "v_seeds": NaN, inf or x by a draw that mixes x and key
        u = (7.3 * hp["x"] + jax.random.uniform(key)) % 1.0
        return {"v": jnp.where(hp["x"] > 0.5, jnp.nan, jnp.where(hp["x"] < -0.5, jnp.inf, hp["x"])),
                "v_seeds": jnp.where(u < 0.2, jnp.nan, jnp.where(u > 0.6, jnp.inf, hp["x"]))}

    space = {"x": Uniform(-1.0, 1.0)}
    study = optuna_search(fn, optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)), space,
                          num_batches=3, batch_size=8, metric="v")
    for t in study.trials:
        x = float(np.float32(t.params["x"]))
        assert (t.state == TrialState.FAIL) == (abs(x) > 0.5), x
        assert t.value == (None if abs(x) > 0.5 else x)
    # over seeds: NumPy's median (NaN if any seed is NaN; inf only if the middle value is inf), by hand
    study = optuna_search(fn, optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)), space,
                          num_batches=3, batch_size=8, metric="v_seeds", seeds=3)
    reasons = set()
    for t in study.trials:
        hp = {"x": np.float32(t.params["x"])}
        per_seed = [float(jax.jit(fn)(hp, jax.random.fold_in(jax.random.key(0), s))["v_seeds"]) for s in range(3)]
        median = float(np.median(per_seed))
        assert (t.state == TrialState.FAIL) == (not np.isfinite(median)), per_seed
        assert t.value == (median if np.isfinite(median) else None)
        reasons.add((np.isnan(per_seed).any(), np.isinf(per_seed).any(), np.isfinite(median)))
    assert {(True, False, False), (False, True, True), (False, True, False), (False, False, True)} <= reasons


def test_choices_and_log_ranges_reach_fn_as_asked():
    study = optuna_search(bowl, optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2)), SPACE,
                          num_batches=2, batch_size=16, metric="width")
    dist = study.trials[0].distributions
    assert dist["lr"] == optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    assert dist["x"] == optuna.distributions.FloatDistribution(-1.0, 1.0)
    assert dist["width"] == optuna.distributions.CategoricalDistribution([8, 16, 32])
    widths = [t.params["width"] for t in study.trials]
    assert [t.value for t in study.trials] == widths and set(widths) == {8, 16, 32}
    lrs = np.array([t.params["lr"] for t in study.trials])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1.0 and np.mean(lrs < 1e-2) > 0.4  # log-uniform: half below 1e-2
    study = optuna_search(bowl, optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2)), SPACE,
                          num_batches=1, batch_size=8, metric="lr")
    for t in study.trials:  # the run saw the asked learning rate, in float32
        assert t.value == float(np.float32(t.params["lr"]))


def test_the_study_direction_decides_best():
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    optuna_search(bowl, study, SPACE, num_batches=2, batch_size=4, metric="loss")
    assert study.best_value == max(t.value for t in study.trials)


def test_one_compilation_for_every_batch_and_each_batch_asked_before_told():
    events = []

    class Recording(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):  # asked: each name in turn
            if ("ask", trial.number) not in events:
                events.append(("ask", trial.number))
            return super().sample_independent(study, trial, name, distribution)

        def after_trial(self, study, trial, state, values):
            events.append(("tell", trial.number))
            super().after_trial(study, trial, state, values)

    fn = lambda hp, key: {"loss": bowl(hp, key)["loss"]}  # a fn no other test compiled
    study = optuna.create_study(sampler=Recording(seed=0))
    with count_compilations() as first:
        optuna_search(fn, study, SPACE, num_batches=1, batch_size=4, metric="loss", seeds=2)
    with count_compilations() as rest:
        optuna_search(fn, study, SPACE, num_batches=3, batch_size=4, metric="loss", seeds=2)
    assert first.count >= 1 and rest.count == 0
    want = []
    for b in range(4):
        want += [("ask", 4 * b + i) for i in range(4)] + [("tell", 4 * b + i) for i in range(4)]
    assert events == want


def test_progress_counts_the_runs_of_all_batches_and_a_failed_batch_leaves_no_trial_running():
    seen = []
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    optuna_search(bowl, study, SPACE, num_batches=3, batch_size=4, metric="loss", seeds=2,
                  progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (24, 24) and {total for _, total in seen} == {24}
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optuna_search(bowl, study, SPACE, num_batches=2, batch_size=4, metric="loss", progress=stop)
    assert [t.state for t in study.trials[12:]] == [TrialState.FAIL] * 4


def two_objectives():
    return optuna.create_study(directions=["minimize", "maximize"])


BAD = [
    pytest.param(dict(study="not a study"), "study must be an optuna.Study", id="study-not-a-study"),
    pytest.param(dict(study=two_objectives), "study must have one objective", id="study-multi-objective"),
    pytest.param(dict(fn="bowl"), "fn must be callable", id="fn-not-callable"),
    pytest.param(dict(num_batches=0), "num_batches must be a positive int", id="num_batches-0"),
    pytest.param(dict(num_batches=2.0), "num_batches must be a positive int", id="num_batches-float"),
    pytest.param(dict(num_batches=True), "num_batches must be a positive int", id="num_batches-bool"),
    pytest.param(dict(batch_size=-1), "batch_size must be a positive int", id="batch_size-negative"),
    pytest.param(dict(batch_size=None), "batch_size must be a positive int", id="batch_size-none"),
    pytest.param(dict(seeds=0), "seeds must be a positive int", id="seeds-0"),
    pytest.param(dict(key=42), "key must be one jax.random key", id="key-int"),
    pytest.param(dict(metric="accuracy"), r"metric must name one of fn's metrics \(\['loss', 'lr', 'noisy', 'width'\]\), got 'accuracy'",
                 id="metric-missing"),
    pytest.param(dict(metric=0), "metric must name one of fn's metrics", id="metric-not-str"),
    pytest.param(dict(fn=lambda hp, key: hp["x"], metric="x"), "metric must name one of fn's metrics",
                 id="fn-returns-an-array"),
    pytest.param(dict(fn=lambda hp, key: {"v": jnp.ones(3) * hp["x"]}, metric="v"), "must be one scalar per run",
                 id="metric-not-scalar"),
    pytest.param(dict(fn=lambda hp, key: {"v": hp["nope"]}, metric="v"), "fn failed on hp=", id="fn-fails"),
    pytest.param(dict(space={}), "space must be a non-empty mapping", id="space-empty"),
    pytest.param(dict(space={"x": Uniform(1.0, 0.0)}), r"space\['x'\] must have low < high", id="space-low-high"),
    pytest.param(dict(space={"x": LogUniform(0.0, 1.0)}), r"space\['x'\] is log-uniform and needs low > 0",
                 id="space-log-zero"),
    pytest.param(dict(space={"x": Uniform(0.0, float("inf"))}), r"space\['x'\] must have finite bounds",
                 id="space-inf"),
    pytest.param(dict(space={"x": []}), r"space\['x'\] must be a non-empty 1-D sequence", id="space-no-choices"),
    pytest.param(dict(space={"x": "abc"}), r"space\['x'\] must be a Uniform, LogUniform or a sequence",
                 id="space-string"),
    pytest.param(dict(space={"x": ["adam", "sgd"]}), r"space\['x'\] must hold real numbers", id="space-str-choices"),
    pytest.param(dict(space={"seed": Uniform(0.0, 1.0)}), "'seed' is reserved", id="space-name-seed"),
    # 10**7 trials were asked one by one (hours, and gigabytes held by the study) before anything ran
    pytest.param(dict(batch_size=10**7), "batch_size must be at most 100,000", id="batch-size-huge"),
    pytest.param(dict(num_batches=10**9, batch_size=10**4), "num_batches x batch_size: 10,000,000,000,000 trials",
                 id="trials-beyond-memory"),
]


def test_inside_jit_is_refused_naming_the_host_loop():
    study = optuna.create_study()
    with pytest.raises(InvalidArgument, match="optuna_search cannot run inside jax.jit"):
        jax.jit(lambda key: optuna_search(bowl, study, {"x": Uniform(-1.0, 1.0), "lr": LogUniform(1e-3, 1.0),
                                                        "width": [8, 16]}, num_batches=1, batch_size=2, metric="loss",
                                          key=key, progress=False))(jax.random.key(1))
    assert study.trials == []


@pytest.mark.parametrize("change, message", BAD)
def test_bad_inputs_are_named_before_anything_is_asked_or_compiled(change, message):
    study = optuna.create_study()
    kwargs = dict(fn=bowl, study=study, space={"x": Uniform(-1.0, 1.0), "lr": LogUniform(1e-3, 1.0),
                                               "width": [8, 16]},
                  num_batches=1, batch_size=2, metric="loss")
    kwargs.update(change)
    if callable(kwargs["study"]):
        kwargs["study"] = kwargs["study"]()
    with count_compilations() as compiled, pytest.raises((ValueError, TypeError), match=message):
        optuna_search(kwargs.pop("fn"), kwargs.pop("study"), kwargs.pop("space"), **kwargs)
    assert compiled.count == 0
    assert study.trials == []


def test_without_optuna_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'jaxdescent\[optuna\]'"):
        optuna_search(bowl, None, SPACE, num_batches=1, batch_size=1, metric="loss")


class Measured(NamedTuple):
    loss: jax.Array
    width: jax.Array


def test_metrics_may_be_a_named_tuple():
    fn = lambda hp, key: Measured(bowl(hp, key)["loss"], hp["width"])
    study = optuna_search(fn, optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)), SPACE,
                          num_batches=1, batch_size=4, metric="width")
    assert [t.value for t in study.trials] == [t.params["width"] for t in study.trials]
    with pytest.raises(ValueError, match=r"metrics \(\['loss', 'width'\]\), got 'acc'"):
        optuna_search(fn, study, SPACE, num_batches=1, batch_size=4, metric="acc")


def test_a_study_in_a_database_is_told_every_trial_and_an_interrupted_batch_is_failed(tmp_path):
    """In an SQLite file, as in memory: a batch stopped while asking, running or telling leaves no trial RUNNING."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="bowl", sampler=optuna.samplers.RandomSampler(seed=0))
    optuna_search(bowl, study, SPACE, num_batches=1, batch_size=4, metric="loss")  # trials 0-3

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # while running: trials 4-7
        optuna_search(bowl, study, SPACE, num_batches=1, batch_size=4, metric="loss", progress=stop)

    class Interrupting(optuna.samplers.RandomSampler):
        """Ctrl-C once, at the draw of trial ``ask`` or the tell of trial ``tell``."""

        def __init__(self, ask=None, tell=None):
            super().__init__(seed=1)
            self.ask, self.tell = ask, tell

        def sample_independent(self, study, trial, name, distribution):
            if trial.number == self.ask:
                self.ask = None
                raise KeyboardInterrupt
            return super().sample_independent(study, trial, name, distribution)

        def after_trial(self, study, trial, state, values):  # Optuna stores the state even if this raises
            if trial.number == self.tell:
                self.tell = None
                raise KeyboardInterrupt
            super().after_trial(study, trial, state, values)

    for sampler in (Interrupting(ask=10), Interrupting(tell=13)):  # while asking: 8-10; telling: 11-14
        other = optuna.load_study(study_name="bowl", storage=url, sampler=sampler)
        with pytest.raises(KeyboardInterrupt):
            optuna_search(bowl, other, SPACE, num_batches=1, batch_size=4, metric="loss")
    states = [t.state for t in optuna.load_study(study_name="bowl", storage=url).trials]
    complete, fail = TrialState.COMPLETE, TrialState.FAIL
    assert states == [complete] * 4 + [fail] * 7 + [complete] * 3 + [fail]
    for t in optuna.load_study(study_name="bowl", storage=url).trials:
        if t.state == complete:
            assert t.value == pytest.approx(by_hand(t.params), rel=1e-6)


# One worker of a shared study, as a user starts it on each machine: load the study, run batches, tell them.
WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import jax.numpy as jnp
    import optuna
    from jaxdescent import LogUniform, Uniform, optuna_search

    url, study_name, worker, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    told = []

    class Recording(optuna.samplers.TPESampler):  # the numbers of the trials this process tells
        def after_trial(self, study, trial, state, values):
            told.append(trial.number)
            super().after_trial(study, trial, state, values)

    def fn(hp, key):
        return {"loss": (jnp.log10(hp["lr"]) + 2) ** 2 + (hp["x"] - 0.3) ** 2}

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=url, study_name=study_name, load_if_exists=True,
                                sampler=Recording(seed=worker, n_startup_trials=4))
    (folder / f"ready{worker}").touch()
    while not all((folder / f"ready{i}").exists() for i in range(2)):  # both start their batches together
        time.sleep(0.05)
    optuna_search(fn, study, {"lr": LogUniform(1e-4, 1.0), "x": Uniform(-1.0, 1.0)}, num_batches=3, batch_size=4,
                  metric="loss", progress=lambda done, total: time.sleep(0.1))  # batches that last: they interleave
    print(json.dumps(told))
""")


def worker_env():
    """This checkout's jaxdescent first on the path of a subprocess."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         *filter(None, [os.environ.get("PYTHONPATH")])])}


def run_two_workers(url, study_name, folder):
    """Two processes share ``study_name`` in ``url``: 3 batches of 4 trials each; the trial numbers each told."""
    env = worker_env()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, study_name, str(i), str(folder)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(err for _, err in outs)
    return [json.loads(out.splitlines()[-1]) for out, _ in outs]


def check_shared_study(url, study_name, told):
    """Every trial asked was told once, by the process that asked it, with its own point's loss."""
    assert sorted(told[0] + told[1]) == list(range(24)) and len(told[0]) == len(told[1]) == 12
    assert min(told[0]) < max(told[1]) and min(told[1]) < max(told[0])  # the processes did run side by side
    trials = optuna.load_study(study_name=study_name, storage=url).trials
    assert [t.number for t in trials] == list(range(24))
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    for t in trials:  # the loss by hand, in float64, from the point the study holds
        lr, x = np.float32(t.params["lr"]), np.float32(t.params["x"])
        assert t.value == pytest.approx((np.log10(lr, dtype=np.float64) + 2) ** 2 + (np.float64(x) - 0.3) ** 2,
                                        rel=1e-5, abs=1e-6)


@pytest.mark.slow  # two subprocesses: about 15 s on 2 cores
def test_two_processes_share_one_study_in_an_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    # created once before the workers: two first create_study calls on a new database race on its tables
    optuna.create_study(storage=url, study_name="shared")
    check_shared_study(url, "shared", run_two_workers(url, "shared", tmp_path))


# A worker killed outright (kill -9) in its second batch, after running it and before telling it.
KILLED = textwrap.dedent("""
    import os, signal, sys
    import optuna
    from jaxdescent import Uniform, optuna_search

    def progress(done, total):
        if done > 4:
            os.kill(os.getpid(), signal.SIGKILL)

    study = optuna.load_study(study_name="killed", storage=sys.argv[1])
    optuna_search(lambda hp, key: {"loss": hp["x"] ** 2}, study, {"x": Uniform(-1.0, 1.0)}, num_batches=2,
                  batch_size=4, metric="loss", progress=progress)
""")


@pytest.mark.slow  # a subprocess: about 5 s on 2 cores
def test_a_killed_worker_leaves_its_batch_running_until_another_process_fails_it(tmp_path):
    """What optuna_search's docstring says of kill -9, and its recipe, from another process."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=url, study_name="killed")
    proc = subprocess.run([sys.executable, "-c", KILLED, url], env=worker_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    study = optuna.load_study(study_name="killed", storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4 + [TrialState.RUNNING] * 4
    for t in study.get_trials(states=[TrialState.RUNNING]):  # the docstring's recipe
        study.tell(t.number, state=TrialState.FAIL)
    optuna_search(lambda hp, key: {"loss": hp["x"] ** 2}, study, {"x": Uniform(-1.0, 1.0)}, num_batches=1,
                  batch_size=4, metric="loss")
    trials = optuna.load_study(study_name="killed", storage=url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4 + [TrialState.FAIL] * 4 + [TrialState.COMPLETE] * 4
    assert all(t.value == pytest.approx(np.float32(t.params["x"]) ** 2, rel=1e-6) for t in trials if t.value is not None)


@pytest.mark.slow  # two subprocesses and a PostgreSQL server: about 15 s on 2 cores
def test_two_processes_share_one_study_in_postgresql(tmp_path):
    url = os.environ.get("JAXDESCENT_TEST_POSTGRES_URL")
    if not url:
        message = ("JAXDESCENT_TEST_POSTGRES_URL is not set: it names a PostgreSQL database the test may write to, "
                   "e.g. postgresql+psycopg2://user@/db?host=/socket/folder (.ci/postgres.sh starts one)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; under CI=true it must run")
        pytest.skip(message)
    study_name = f"jaxdescent-test-{uuid.uuid4().hex}"  # a database others may use too: a name of its own
    optuna.create_study(storage=url, study_name=study_name)
    try:
        check_shared_study(url, study_name, run_two_workers(url, study_name, tmp_path))
    finally:
        optuna.delete_study(study_name=study_name, storage=url)
