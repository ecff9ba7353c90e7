"""Static axes of sweep_fn (Python values such as a width or a step count), and what researchers want back.

References: separate ``sweep_fn`` calls with the static values closed over by
hand, a NumPy loop over optax's schedule evaluated on Python ints, tables
built with ``itertools.product``, and a plain ``sorted`` for the ranking.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdescent import Uniform, count_compilations, sample, sweep_fn
from jaxdescent._validate import InvalidArgument

LRS = {"lr": np.array([0.05, 0.2], np.float32)}
STATIC = {"width": [2, 3], "num_steps": [3, 5]}


def tiny_net(hp, key):
    """A linear net of ``hp["width"]`` hidden units fitted by ``hp["num_steps"]`` steps of GD: both Python ints."""
    k1, k2 = jax.random.split(key)
    w1 = jax.random.normal(k1, (2, hp["width"])) / math.sqrt(2)
    w2 = jax.random.normal(k2, (hp["width"],)) / math.sqrt(hp["width"])
    x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = jnp.array([1.0, -1.0, 0.0])

    def loss(params):
        a, b = params
        return jnp.mean((x @ a @ b - y) ** 2)

    def step(_, params):
        return jax.tree_util.tree_map(lambda p, g: p - hp["lr"] * g, params, jax.grad(loss)(params))

    params = jax.lax.fori_loop(0, hp["num_steps"], step, (w1, w2))
    return {"loss": loss(params), "out": x @ params[0] @ params[1]}


def closed_over(width, num_steps):
    """The reference: the static values closed over by hand, one sweep_fn call per combination."""
    return lambda hp, key: tiny_net({**hp, "width": width, "num_steps": num_steps}, key)


def test_static_axes_equal_separate_calls_with_the_values_closed_over():
    runs = sweep_fn(tiny_net, LRS, static=STATIC, seeds=2, progress=False)
    assert runs.axes == ("width", "num_steps", "lr", "seed")
    assert runs.metrics["loss"].shape == (2, 2, 2, 2) and runs.metrics["out"].shape == (2, 2, 2, 2, 3)
    for (i, width), (j, num_steps) in itertools.product(enumerate(STATIC["width"]), enumerate(STATIC["num_steps"])):
        alone = sweep_fn(closed_over(width, num_steps), LRS, seeds=2, progress=False)
        for name in ("loss", "out"):
            np.testing.assert_array_equal(np.asarray(runs.metrics[name][i, j]), np.asarray(alone.metrics[name]))


def counted(fn, **kwargs):
    with count_compilations() as c:
        jax.block_until_ready(sweep_fn(fn, LRS, progress=False, **kwargs).metrics)
    return c.count


def test_one_compilation_per_static_combination_and_none_when_repeated():
    counted(lambda hp, key: {"y": hp["lr"]})  # the first sweep of the process compiles a few helpers once
    assert counted(tiny_net, static={"width": [2, 3, 4], "num_steps": [2]}, seeds=2) == 3
    assert counted(tiny_net, static={"width": [2, 3, 4], "num_steps": [2]}, seeds=2) == 0
    assert counted(tiny_net, static={"width": [3, 5], "num_steps": [2]}, seeds=2) == 1  # only width 5 is new


def test_equal_static_values_of_another_type_are_another_program():
    def kind(hp, key):
        return {"is_float": jnp.float32(isinstance(hp["x"], float)), "y": hp["lr"] * hp["x"]}

    as_int = sweep_fn(kind, LRS, static={"x": [1]}, progress=False)
    as_float = sweep_fn(kind, LRS, static={"x": [1.0]}, progress=False)  # 1 == 1.0, but fn must see a float
    assert np.all(np.asarray(as_int.metrics["is_float"]) == 0) and np.all(np.asarray(as_float.metrics["is_float"]) == 1)
    numpy_ints = sweep_fn(kind, LRS, static={"x": np.array([1, 2])}, progress=False)  # NumPy scalars as Python ints
    assert np.all(np.asarray(numpy_ints.metrics["is_float"]) == 0)


def test_warmup_cosine_schedule_takes_static_step_counts():
    def train(hp, key):
        schedule = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=hp["warmup"], decay_steps=hp["steps"])
        w = jax.lax.fori_loop(0, hp["steps"], lambda i, w: w - hp["lr"] * schedule(i) * 2 * w, jnp.float32(1.5))
        return {"w": w}

    # The failure this fixes: as traced hyperparameters the step counts cannot be compared in Python.
    with pytest.raises(TypeError, match="fn failed"):
        sweep_fn(train, {"lr": LRS["lr"], "warmup": np.array([2]), "steps": np.array([8])}, progress=False)

    static = {"warmup": [0, 3], "steps": [8, 20]}
    runs = sweep_fn(train, LRS, static=static, progress=False)
    assert runs.axes == ("warmup", "steps", "lr")
    for (i, warmup), (j, steps), (k, lr) in itertools.product(
            enumerate(static["warmup"]), enumerate(static["steps"]), enumerate(LRS["lr"])):
        schedule = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=warmup, decay_steps=steps)
        w = np.float32(1.5)
        for t in range(steps):  # a NumPy float32 loop over the schedule's values
            w = w - lr * np.float32(schedule(t)) * 2 * w
        np.testing.assert_allclose(np.asarray(runs.metrics["w"][i, j, k]), w, rtol=1e-5)


def test_axes_order_and_pandas_columns():
    def run(hp, key):
        return {"loss": hp["lr"] * hp["width"] + len(hp["opt"]), "curve": jnp.zeros(4)}

    static = {"opt": ["sgd", "adam"], "width": [4, 8]}
    runs = sweep_fn(run, LRS, static=static, seeds=2, progress=False)
    assert runs.axes == ("opt", "width", "lr", "seed")
    df = runs.to_pandas()
    assert list(df.columns) == ["opt", "width", "lr", "seed", "loss"]
    assert df.attrs["left_out"] == ["curve"]
    rows = list(itertools.product(static["opt"], static["width"], LRS["lr"].tolist(), [0, 1]))
    assert [tuple(r) for r in df[["opt", "width", "lr", "seed"]].itertuples(index=False)] == rows
    assert all(isinstance(v, str) for v in df.opt)
    np.testing.assert_allclose(df.loss, [np.float32(lr) * w + len(o) for o, w, lr, _ in rows], rtol=1e-6)

    points = sample({"lr": Uniform(0.01, 0.1)}, 3, seed=1)
    zipped = sweep_fn(run, points, static={"opt": ["sgd"], "width": [4]}, seeds=2, product=False, progress=False)
    assert zipped.axes == ("opt", "width", "point", "seed") and zipped.metrics["loss"].shape == (1, 1, 3, 2)
    assert list(zipped.to_pandas().columns) == ["opt", "width", "lr", "seed", "loss"]


def test_to_xarray_keeps_what_to_pandas_leaves_out():
    pytest.importorskip("xarray")

    def run(hp, key):
        return {"loss": hp["lr"] * hp["width"], "curve": jnp.arange(3.0) * hp["lr"]}

    runs = sweep_fn(run, LRS, static={"width": [1, 2]}, progress=False)
    ds = runs.to_xarray()
    assert ds["curve"].dims == ("width", "lr", "curve_dim_0")
    np.testing.assert_array_equal(ds["curve"].values, np.asarray(runs.metrics["curve"]))
    assert ds["width"].values.tolist() == [1, 2]


def wide(hp, key):
    return {"h": jnp.zeros(hp["w"])}


BAD_STATIC = [
    pytest.param({}, "non-empty dict", id="empty-dict"),
    pytest.param([("w", [1])], "non-empty dict", id="not-a-dict"),
    pytest.param({"w": []}, "is empty", id="no-values"),
    pytest.param({"w": "adam"}, "must be a list", id="a-string-not-a-list"),
    pytest.param({"w": {1, 2}}, "must be a list", id="a-set"),
    pytest.param({"w": 3}, "must be a list", id="a-number"),
    pytest.param({"w": np.zeros((2, 2))}, "1-D", id="2d-array"),
    pytest.param({"w": [[1, 2]]}, "ints, floats, strings", id="unhashable-value"),
    pytest.param({"w": [np.zeros(2)]}, "ints, floats, strings", id="array-value"),
    pytest.param({"w": [None]}, "ints, floats, strings", id="none-value"),
    pytest.param({"w": [1, 2, 1.0]}, "repeats 1", id="duplicate-int-float"),
    pytest.param({"w": [True, 1]}, "repeats", id="duplicate-bool-int"),
    pytest.param({"w": [1.0, float("nan")]}, "finite", id="nan"),
    pytest.param({"w": ["a", 1]}, "mixes strings and numbers", id="mixed-types"),
    pytest.param({"w": [2**70]}, "too large", id="huge-int"),
    pytest.param({"lr": [1, 2]}, "also in axes", id="name-in-axes"),
    pytest.param({"seed": [1]}, "reserved", id="seed"),
    pytest.param({"point": [1]}, "reserved", id="point"),
    pytest.param({"1w": [1]}, "identifiers", id="not-an-identifier"),
]


@pytest.mark.parametrize("static, match", BAD_STATIC)
def test_bad_static_raises_one_clear_error_before_compiling(static, match):
    with count_compilations() as c, pytest.raises(ValueError, match=match) as error:
        sweep_fn(lambda hp, key: {"y": hp["lr"]}, LRS, static=static, progress=False)
    assert "static" in str(error.value) and c.count == 0


def test_metrics_of_other_shapes_per_combination_are_refused_naming_static():
    counted(lambda hp, key: {"y": hp["lr"]})  # the process's one-time helpers (the default key) compiled first
    with count_compilations() as c, pytest.raises(ValueError, match="static: fn must return metrics of the same"):
        sweep_fn(wide, LRS, static={"w": [2, 3]}, progress=False)
    assert c.count == 0


def test_top_against_a_plain_sort():
    def run(hp, key):
        loss = jnp.where(hp["lr"] > 0.3, jnp.nan, (hp["lr"] - 0.1) ** 2 + 0.01 * jax.random.normal(key) / hp["w"])
        return {"loss": loss, "curve": jnp.zeros(2)}

    runs = sweep_fn(run, {"lr": np.array([0.05, 0.1, 0.2, 0.4], np.float32)}, static={"w": [1, 2]}, seeds=3,
                    progress=False)
    df = runs.to_pandas()
    values = df.loss.to_numpy()
    assert np.isnan(values).sum() == 6
    for mode, sign in (("min", 1), ("max", -1)):
        order = sorted(range(len(values)), key=lambda r: (np.isnan(values[r]), sign * values[r], r))
        best = runs.top("loss", k=8, mode=mode)
        expected = [{k: v.item() if hasattr(v, "item") else v for k, v in df.iloc[r].items()} for r in order[:8]]
        assert [set(b) for b in best] == [{"w", "lr", "seed", "loss"}] * 8
        for got, want in zip(best, expected):
            assert got["w"] == want["w"] and got["seed"] == want["seed"] and got["lr"] == want["lr"]
            np.testing.assert_equal(got["loss"], want["loss"])
            assert type(got["w"]) is int and type(got["lr"]) is float
        assert [np.isnan(r["loss"]) for r in runs.top("loss", k=len(values), mode=mode)] == [False] * 18 + [True] * 6
    assert len(runs.top("loss", k=100)) == len(values)
    # NumPy's sort also puts NaN last: the whole ranking is its ascending order, and the runs are its argsort's.
    ranked = runs.top("loss", k=len(values))
    np.testing.assert_array_equal([r["loss"] for r in ranked], np.sort(values))
    assert [(r["w"], r["lr"], r["seed"]) for r in ranked] == [
        tuple(df.iloc[r][["w", "lr", "seed"]].tolist()) for r in np.argsort(values, kind="stable")]
    for bad, match in (({"metric": "curve"}, "scalar per run"), ({"metric": "nope"}, "scalar per run"),
                       ({"metric": "loss", "mode": "best"}, "mode"), ({"metric": "loss", "k": 0}, "k must")):
        with pytest.raises(ValueError, match=match):
            runs.top(**bad)


@pytest.mark.parametrize("metric", ["lr", "width"], ids=["axis", "static"])
def test_top_refuses_a_metric_named_as_an_axis_as_to_pandas_does(metric):
    runs = sweep_fn(lambda hp, key: {"loss": hp["lr"] * hp["width"], metric: 2 * hp["lr"]},
                    {"lr": np.array([0.1, 0.2])}, static={"width": [1, 2]}, progress=False)
    with pytest.raises(ValueError, match=f"the metric '{metric}' has the name of an axis"):
        runs.to_pandas()
    with pytest.raises(ValueError, match=f"the metric '{metric}' has the name of an axis"):
        runs.top(metric)


def test_top_names_metric_when_it_is_not_a_string():
    runs = sweep_fn(lambda hp, key: {"loss": hp["lr"]}, {"lr": np.array([0.1, 0.2])}, progress=False)
    with pytest.raises(InvalidArgument, match=r"metric must be the name of one metric \(a str\), got \['loss'\]"):
        runs.top(["loss"])


def test_progress_counts_rise_over_the_whole_sweep():
    seen = []
    sweep_fn(tiny_net, LRS, static={"width": [2, 3], "num_steps": [2, 3]}, seeds=2,
             progress=lambda done, total: seen.append((done, total)))
    assert {t for _, t in seen} == {16}
    done = [d for d, _ in seen]
    assert done == sorted(done) and len(set(done)) == len(done) and done[-1] == 16 and len(done) >= 4


def test_out_saves_each_combination_and_a_rerun_loads(tmp_path):
    out = tmp_path / "r"
    static = {"width": [2, 3], "opt": ["sgd", "a/b"]}

    def run(hp, key):
        return tiny_net({**hp, "num_steps": 2 + len(hp["opt"])}, key)

    first = sweep_fn(run, LRS, static=static, seeds=2, out=out, progress=False)
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 4 and folders[0].startswith("width=2,opt=")  # "a/b" is no file name: a digest
    for folder in folders:
        assert sorted(p.name for p in (out / folder).iterdir()) == ["config.json", "results.npz"]
    fresh = sweep_fn(run, LRS, static=static, seeds=2, progress=False)
    for name in ("loss", "out"):
        np.testing.assert_array_equal(np.asarray(first.metrics[name]), np.asarray(fresh.metrics[name]))

    with count_compilations() as c:
        again = sweep_fn(run, LRS, static=static, seeds=2, out=out, progress=False)
    assert c.count == 0
    np.testing.assert_array_equal(again.metrics["loss"], np.asarray(first.metrics["loss"]))
    assert again.to_pandas().equals(first.to_pandas())

    # A lost combination is computed again, alone; the others load.
    (out / folders[-1] / "results.npz").unlink()
    kept = {f: (out / f / "results.npz").stat().st_mtime_ns for f in folders[:-1]}
    resumed = sweep_fn(run, LRS, static=static, seeds=2, out=out, progress=False)
    assert {f: (out / f / "results.npz").stat().st_mtime_ns for f in folders[:-1]} == kept
    assert (out / folders[-1] / "results.npz").is_file()

    # More values of the same static names: the combinations already saved load, the new ones are added.
    kept = {f: (out / f / "results.npz").stat().st_mtime_ns for f in folders}
    more = sweep_fn(run, LRS, static={"width": [2, 3, 4], "opt": ["sgd", "a/b"]}, seeds=2, out=out, progress=False)
    assert {f: (out / f / "results.npz").stat().st_mtime_ns for f in folders} == kept
    assert len([p for p in out.iterdir() if p.is_dir()]) == 6
    np.testing.assert_array_equal(more.metrics["loss"][:2], np.asarray(first.metrics["loss"]))
    with pytest.raises(ValueError, match="holds another run"):  # other static names: another sweep
        sweep_fn(run, LRS, static={"opt": ["sgd"], "width": [2]}, seeds=2, out=out, progress=False)
    np.testing.assert_array_equal(resumed.metrics["loss"], np.asarray(first.metrics["loss"]))


def test_out_refuses_a_folder_holding_something_else(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        sweep_fn(tiny_net, LRS, static={"width": [2], "num_steps": [2]}, out=busy, progress=False)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    plain = tmp_path / "plain"
    sweep_fn(closed_over(2, 2), LRS, out=plain, progress=False)
    with pytest.raises(ValueError, match="holds another run"):
        sweep_fn(tiny_net, LRS, static={"width": [2], "num_steps": [2]}, out=plain, progress=False)


def test_static_values_and_seeds_alone():
    def run(hp, key):
        return {"y": jax.random.normal(key) * hp["scale"]}

    runs = sweep_fn(run, {}, static={"scale": [1.0, 2.0]}, seeds=3, progress=False)
    assert runs.axes == ("scale", "seed") and runs.metrics["y"].shape == (2, 3)
    alone = sweep_fn(lambda hp, key: run({"scale": 2.0}, key), {"unused": np.zeros(1, np.float32)}, seeds=3,
                     progress=False)
    np.testing.assert_array_equal(np.asarray(runs.metrics["y"][1]), np.asarray(alone.metrics["y"][0]))
    with pytest.raises(ValueError, match="axes must be a non-empty dict"):  # without seeds there is nothing to sweep
        sweep_fn(run, {}, static={"scale": [1.0]}, progress=False)
