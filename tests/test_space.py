import re
import warnings

import numpy as np
import pytest

from jaxdescent import LogUniform, Uniform, sample
from jaxdescent._space import MAX_SOBOL_DIM


def scipy_sobol(d, n):
    qmc = pytest.importorskip("scipy.stats.qmc")
    with warnings.catch_warnings():  # scipy warns when n is not a power of two
        warnings.simplefilter("ignore", UserWarning)
        return qmc.Sobol(d, scramble=False).random(n)


def unit_space(d):
    return {f"x{j}": Uniform(0.0, 1.0) for j in range(d)}


def columns(axes):
    return np.stack(list(axes.values()), axis=1)


@pytest.mark.parametrize("d", range(1, 17))
def test_sobol_matches_scipy(d):
    got = columns(sample(unit_space(d), 64, method="sobol"))
    np.testing.assert_array_equal(got, scipy_sobol(d, 64))


@pytest.mark.parametrize("n", [1, 7, 1000, 4096])
def test_sobol_matches_scipy_at_every_table_dimension_and_odd_lengths(n):
    got = columns(sample(unit_space(MAX_SOBOL_DIM), n, method="sobol"))
    np.testing.assert_array_equal(got, scipy_sobol(MAX_SOBOL_DIM, n))


def test_sobol_first_dimension_is_van_der_corput_in_gray_code_order():
    x = sample({"x": Uniform(0.0, 1.0)}, 1024, method="sobol")["x"]
    np.testing.assert_array_equal(x[:8], [0, 0.5, 0.75, 0.25, 0.375, 0.875, 0.625, 0.125])
    np.testing.assert_array_equal(np.sort(x), np.arange(1024) / 1024)


def test_sobol_ignores_seed():
    a = sample(unit_space(3), 16, method="sobol", seed=0)
    b = sample(unit_space(3), 16, method="sobol", seed=123)
    np.testing.assert_array_equal(columns(a), columns(b))


def test_ranges_map_the_unit_points_by_hand():
    u = scipy_sobol(3, 256)
    axes = sample({"a": Uniform(-3.0, 5.0), "lr": LogUniform(1e-4, 1e2), "b": Uniform(0.5, 0.75)}, 256, method="sobol")
    assert list(axes) == ["a", "lr", "b"]
    assert all(x.dtype == np.float64 and x.shape == (256,) for x in axes.values())
    np.testing.assert_allclose(axes["a"], -3.0 + 8.0 * u[:, 0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.log(axes["lr"]), np.log(1e-4) + u[:, 1] * np.log(1e6), rtol=0, atol=1e-12)
    np.testing.assert_allclose(axes["b"], 0.5 + 0.25 * u[:, 2], rtol=0, atol=1e-15)
    assert axes["lr"].min() == 1e-4 and axes["lr"].max() < 1e2
    # 2^8 Sobol points: every prefix count is floor or ceil of n u, so each of the 6 decades holds n/6 +- 2
    counts = np.histogram(np.log10(axes["lr"]), bins=np.arange(-4, 3))[0]
    assert np.all(np.abs(counts - 256 / 6) < 2)


@pytest.mark.parametrize("method", ["random", "sobol"])
def test_ranges_are_half_open_even_when_rounding_would_reach_high(method):
    high = np.nextafter(1.0, 2.0)  # low + u (high - low) rounds to high for u > 1/2
    axes = sample({"u": Uniform(1.0, high), "g": LogUniform(1.0, high)}, 64, method=method)
    for x in axes.values():
        assert np.all((x >= 1.0) & (x < high))


def test_random_is_default_rng_columns_in_mapping_order():
    u = np.random.default_rng(7).random((50, 2))
    axes = sample({"a": Uniform(2.0, 6.0), "b": Uniform(0.0, 1.0)}, 50, seed=7)
    np.testing.assert_allclose(axes["a"], 2.0 + 4.0 * u[:, 0], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(axes["b"], u[:, 1])


def test_random_reproducible_by_seed_and_seeds_differ():
    space = {"a": Uniform(-1.0, 1.0), "lr": LogUniform(1e-3, 1.0), "m": [0.0, 0.5, 0.9]}
    a, b, c = sample(space, 100, seed=3), sample(space, 100, seed=3), sample(space, 100, seed=4)
    for name in space:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["a"], c["a"]) and not np.array_equal(a["lr"], c["lr"])


def test_random_within_bounds_and_uniform():
    n = 10_000
    axes = sample({"a": Uniform(2.0, 6.0), "lr": LogUniform(1e-3, 1e1)}, n, seed=11)
    a, lr = axes["a"], axes["lr"]
    assert a.min() >= 2.0 and a.max() < 6.0 and lr.min() >= 1e-3 and lr.max() < 1e1
    assert abs(a.mean() - 4.0) < 0.02 * 4.0  # 0.5 scaled to [2, 6); the mean's sd is ~0.012
    t = np.log10(lr)  # uniform on [-3, 1)
    assert abs(t.mean() - (-1.0)) < 0.02 * 4.0
    for v in ((a - 2.0) / 4.0, (t + 3.0) / 4.0):  # Kolmogorov-Smirnov statistic against U[0, 1)
        v = np.sort(v)
        ks = max(np.max(np.arange(1, n + 1) / n - v), np.max(v - np.arange(n) / n))
        assert ks < 1.63 / np.sqrt(n)  # the 1% critical value


@pytest.mark.parametrize("method", ["random", "sobol"])
def test_every_choice_appears_and_keeps_its_dtype(method):
    axes = sample({"opt": ["sgd", "adam", "rmsprop"], "k": [1, 2, 3, 4, 5], "m": np.array([0.0, 0.9])}, 64, method=method)
    assert set(axes["opt"].tolist()) == {"sgd", "adam", "rmsprop"} and axes["opt"].dtype == np.asarray(["rmsprop"]).dtype
    assert set(axes["k"].tolist()) == {1, 2, 3, 4, 5} and axes["k"].dtype == np.asarray([1]).dtype
    assert set(axes["m"].tolist()) == {0.0, 0.9} and axes["m"].dtype == np.float64


def test_sobol_choices_follow_floor_of_u_times_len():
    u = scipy_sobol(2, 32)
    axes = sample({"a": Uniform(0.0, 1.0), "c": ["x", "y", "z"]}, 32, method="sobol")
    assert axes["c"].tolist() == [["x", "y", "z"][int(np.floor(v * 3))] for v in u[:, 1]]


@pytest.mark.parametrize("length", [2, 4, 8])
@pytest.mark.parametrize("k", [0, 1, 3])
def test_sobol_choices_are_exactly_balanced(length, k):
    n = length * 2**k
    axes = sample({f"c{j}": list(range(length)) for j in range(16)}, n, method="sobol")
    for name, x in axes.items():
        np.testing.assert_array_equal(np.bincount(x, minlength=length), np.full(length, n // length), err_msg=name)


def test_sobol_three_choices_stay_within_two_of_balance():
    n = 256  # a power of two: every prefix count [0, x) is floor or ceil of n x
    axes = sample({f"c{j}": ["a", "b", "c"] for j in range(16)}, n, method="sobol")
    for x in axes.values():
        counts = np.array([np.sum(x == c) for c in "abc"])
        assert np.all(np.abs(counts - n / 3) < 2)


GOOD = {"a": Uniform(0.0, 1.0)}


@pytest.mark.parametrize(
    "space, num, kwargs, names",
    [
        pytest.param(GOOD, 0, {}, "num", id="num-zero"),
        pytest.param(GOOD, -3, {}, "num", id="num-negative"),
        pytest.param(GOOD, 2.0, {}, "num", id="num-float"),
        pytest.param(GOOD, True, {}, "num", id="num-bool"),
        pytest.param({}, 4, {}, "space", id="space-empty"),
        pytest.param({"a": Uniform(0.0, 1.0), "b": Uniform(1.0, 1.0)}, 4, {}, "space['b']", id="uniform-low-eq-high"),
        pytest.param({"a": Uniform(0.0, 1.0), "b": Uniform(2.0, 1.0)}, 4, {}, "space['b']", id="uniform-low-gt-high"),
        pytest.param({"a": Uniform(0.0, 1.0), "b": Uniform(0.0, np.inf)}, 4, {}, "space['b']", id="uniform-inf"),
        pytest.param({"a": Uniform(0.0, 1.0), "b": Uniform(np.nan, 1.0)}, 4, {}, "space['b']", id="uniform-nan"),
        pytest.param({"a": Uniform(0.0, 1.0), "lr": LogUniform(0.0, 1.0)}, 4, {}, "space['lr']", id="log-low-zero"),
        pytest.param({"a": Uniform(0.0, 1.0), "lr": LogUniform(-1.0, 1.0)}, 4, {}, "space['lr']", id="log-low-negative"),
        pytest.param({"a": Uniform(0.0, 1.0), "lr": LogUniform(1.0, 0.1)}, 4, {}, "space['lr']", id="log-low-gt-high"),
        pytest.param({"a": Uniform(0.0, 1.0), "c": []}, 4, {}, "space['c']", id="choices-empty"),
        pytest.param({"a": Uniform(0.0, 1.0), "c": [[1, 2], [3, 4]]}, 4, {}, "space['c']", id="choices-2d"),
        pytest.param(GOOD, 4, {"method": "grid"}, "method", id="method-unknown"),
        pytest.param(unit_space(MAX_SOBOL_DIM + 1), 4, {"method": "sobol"}, f"at most {MAX_SOBOL_DIM}", id="sobol-too-many-dims"),
        pytest.param({"a": Uniform(True, 2.0)}, 4, {}, "space['a'].low", id="uniform-low-bool"),
        pytest.param({"a": Uniform(0.0, True)}, 4, {}, "space['a'].high", id="uniform-high-bool"),
        pytest.param({"a": LogUniform(np.True_, 2.0)}, 4, {}, "space['a'].low", id="log-low-numpy-bool"),
        pytest.param({"a": Uniform("0", 2.0)}, 4, {}, "space['a'].low", id="uniform-low-str"),
        pytest.param({"a": Uniform(0.0, None)}, 4, {}, "space['a'].high", id="uniform-high-none"),
        pytest.param({"a": Uniform(np.array([0.0, 1.0]), 2.0)}, 4, {}, "space['a'].low", id="uniform-low-array"),
        pytest.param({"a": LogUniform(1e-3, 1j)}, 4, {}, "space['a'].high", id="log-high-complex"),
        pytest.param({"a": Uniform(0, 10**400)}, 4, {}, "space['a']", id="uniform-high-int-beyond-float64"),
        pytest.param(GOOD, 4, {"seed": -1}, "seed", id="seed-negative"),
        pytest.param(GOOD, 4, {"seed": 1.5}, "seed", id="seed-float"),
        pytest.param(GOOD, 4, {"seed": True, "method": "sobol"}, "seed", id="seed-bool"),
        pytest.param(GOOD, 10**12, {}, "num: 1,000,000,000,000 points", id="num-beyond-memory"),
        pytest.param(unit_space(MAX_SOBOL_DIM), 2**32, {"method": "sobol"}, "num: 4,294,967,296 points",
                     id="num-beyond-memory-sobol"),
        pytest.param(GOOD, 2**33, {"method": "sobol"}, "num must be at most 2**32", id="sobol-beyond-its-period"),
    ],
)
def test_bad_inputs_raise_naming_the_entry(space, num, kwargs, names):
    with pytest.raises(ValueError, match=re.escape(names)):
        sample(space, num, **kwargs)


def test_a_bound_of_the_wrong_type_is_a_type_error_too():
    with pytest.raises(TypeError, match=re.escape("space['a'].low")):
        sample({"a": Uniform(None, 1.0)}, 4)


@pytest.mark.parametrize("method", ["random", "sobol"])
def test_ranges_wider_than_float64_can_subtract_are_still_spread_over_the_range(method):
    """high - low and high / low overflow: the values were all high's neighbour; now they follow u."""
    u = np.random.default_rng(5).random((64, 2)) if method == "random" else scipy_sobol(2, 64)
    axes = sample({"a": Uniform(-1e308, 1e308), "lr": LogUniform(1e-300, 1e300)}, 64, method=method, seed=5)
    np.testing.assert_allclose(axes["a"], -1e308 * (1 - u[:, 0]) + 1e308 * u[:, 0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(np.log10(axes["lr"]), -300 + 600 * u[:, 1], rtol=0, atol=1e-9)
    assert np.all(np.isfinite(axes["a"])) and np.all(axes["a"] >= -1e308) and np.all(axes["a"] < 1e308)
    assert np.all(axes["lr"] >= 1e-300) and np.all(axes["lr"] < 1e300)
    assert len(np.unique(axes["a"])) == 64 and len(np.unique(axes["lr"])) == 64


def test_a_value_that_is_neither_range_nor_choices_is_a_type_error():
    with pytest.raises(TypeError, match=re.escape("space['lr']")):
        sample({"lr": 0.1}, 4)
    with pytest.raises(TypeError, match=re.escape("space['opt']")):
        sample({"opt": "adam"}, 4)


def test_numpy_integer_num_and_many_random_dims_are_fine():
    axes = sample(unit_space(MAX_SOBOL_DIM + 5), np.int64(3))
    assert len(axes) == MAX_SOBOL_DIM + 5 and all(x.shape == (3,) for x in axes.values())
