"""Small datasets for the step network: XOR, n-bit parity, and scikit-learn's 8×8 digits.

Every function returns float32 NumPy-compatible JAX arrays: inputs ``x`` of
shape ``(examples, features)`` and 0/1 targets ``y`` of shape
``(examples, outputs)`` (one-hot for classes), the shapes
:func:`jaxdescent.network.train` takes.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def xor(signed: bool = False) -> tuple[jax.Array, jax.Array]:
    """The four XOR patterns: ``x`` (4, 2) and ``y`` (4, 1).

    Args:
      signed: inputs in {−1, +1} instead of {0, 1}; targets are always 0/1.

    Examples:
      >>> from jaxdescent.datasets import xor
      >>> x, y = xor()
      >>> x.tolist(), y[:, 0].tolist()
      ([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], [0.0, 1.0, 1.0, 0.0])
    """
    return parity(2, signed=signed)


def parity(n: int, signed: bool = True) -> tuple[jax.Array, jax.Array]:
    """All 2ⁿ bit patterns and their parity (1 where an odd number of bits is set).

    Args:
      n: bits per pattern, 1 to 20.
      signed: inputs in {−1, +1} (bit 1 ↦ +1) instead of {0, 1}.

    Returns:
      ``x`` of shape ``(2**n, n)`` in counting order and ``y`` of shape ``(2**n, 1)``.

    Examples:
      >>> from jaxdescent.datasets import parity
      >>> x, y = parity(3)
      >>> x.shape, y.shape, x[1].tolist(), float(y[1, 0]), float(y[3, 0])
      ((8, 3), (8, 1), [-1.0, -1.0, 1.0], 1.0, 0.0)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 20:
        raise ValueError(f"n must be an integer from 1 to 20, got {n!r}")
    _check_flag(signed, "signed")
    bits = np.array(list(itertools.product([0, 1], repeat=int(n))), dtype=np.float32)
    y = (bits.sum(axis=1, keepdims=True) % 2).astype(np.float32)
    x = 2 * bits - 1 if signed else bits
    return jnp.asarray(x), jnp.asarray(y)


def digits(seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """scikit-learn's bundled 8×8 handwritten digits (1797 images, no download).

    The split is stratified 80/20 (1437 train, 360 test) and fixed by ``seed``.
    Each of the 64 pixels is standardised with the training set's mean and
    standard deviation (pixels constant in training are only centred).
    Targets are one-hot, shape ``(examples, 10)``.

    Needs the optional extra: ``pip install "jaxdescent[digits]"`` (scikit-learn).

    Returns:
      ``(x_train, y_train, x_test, y_test)``.

    Examples:
      >>> from jaxdescent.datasets import digits
      >>> x_train, y_train, x_test, y_test = digits()  # doctest: +SKIP
      >>> x_train.shape, y_train.shape, x_test.shape  # doctest: +SKIP
      ((1437, 64), (1437, 10), (360, 64))
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise ImportError(
            'jaxdescent.datasets.digits needs scikit-learn: pip install "jaxdescent[digits]"') from e
    data = load_digits()
    x_train, x_test, c_train, c_test = train_test_split(
        data.data.astype(np.float64), data.target, test_size=0.2, stratify=data.target, random_state=int(seed))
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    eye = np.eye(10, dtype=np.float32)
    scale = lambda a: jnp.asarray(((a - mean) / std).astype(np.float32))
    return scale(x_train), jnp.asarray(eye[c_train]), scale(x_test), jnp.asarray(eye[c_test])
