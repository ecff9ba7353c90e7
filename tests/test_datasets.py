import builtins

import numpy as np
import pytest

from jaxdescent import datasets


def test_xor_encodings():
    x, y = datasets.xor()
    np.testing.assert_array_equal(x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y[:, 0], [0, 1, 1, 0])
    xs, ys = datasets.xor(signed=True)
    np.testing.assert_array_equal(xs, 2 * np.asarray(x) - 1)
    np.testing.assert_array_equal(ys, y)


@pytest.mark.parametrize("n", [1, 3, 6, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_parity_is_every_pattern_once(n, signed):
    x, y = datasets.parity(n, signed=signed)
    assert x.shape == (2**n, n) and y.shape == (2**n, 1) and x.dtype == np.float32
    bits = np.asarray(x) > 0
    assert len({tuple(r) for r in bits}) == 2**n
    np.testing.assert_array_equal(y[:, 0], bits.sum(1) % 2)
    assert set(np.unique(x).tolist()) == ({-1.0, 1.0} if signed else {0.0, 1.0})


@pytest.mark.parametrize("n", [0, 21, 2.0, True])
def test_parity_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n must"):
        datasets.parity(n)


def test_digits_split_scaling_and_one_hot():
    pytest.importorskip("sklearn")
    x_train, y_train, x_test, y_test = datasets.digits()
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert y_train.shape == (1437, 10) and y_test.shape == (360, 10)
    np.testing.assert_array_equal(np.asarray(y_train).sum(1), 1)
    np.testing.assert_allclose(np.asarray(x_train).mean(0), 0, atol=1e-5)
    std = np.asarray(x_train).std(0)
    assert np.all((np.abs(std - 1) < 1e-4) | (std == 0))
    counts_train, counts_test = np.asarray(y_train).sum(0), np.asarray(y_test).sum(0)
    np.testing.assert_allclose(counts_test / (counts_train + counts_test), 0.2, atol=0.01)  # stratified
    again = datasets.digits()
    np.testing.assert_array_equal(again[0], x_train)
    other = datasets.digits(seed=1)
    assert not np.array_equal(other[0], x_train)


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r'pip install "jaxdescent\[digits\]"'):
        datasets.digits()
