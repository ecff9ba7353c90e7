"""Random and quasi-random search over hyperparameter spaces, as columns for ``sweep_fn``.

:func:`sample` turns a space (name -> :class:`Uniform`, :class:`LogUniform` or a
sequence of choices) into a dict of equal-length 1-D NumPy arrays, one point per
index, ready for ``sweep_fn(fn, axes, product=False)``. Each point is a unit
vector ``u`` in ``[0, 1)^d`` (one coordinate per name, in mapping order) mapped
to the space: ``low + u (high - low)`` for a range, ``low (high / low)^u`` for a
log range, ``choices[floor(u len(choices))]`` for choices. A range too wide for
those formulas in float64 (``high - low`` or ``high / low`` overflows) is mapped
as ``low (1 - u) + high u`` and ``exp(log low + u (log high - log low))``.

``method="random"`` draws ``u`` with ``np.random.default_rng(seed)``;
``method="sobol"`` takes the first ``num`` points of the unscrambled Sobol
sequence (Joe & Kuo direction numbers, in the Gray-code order of
``scipy.stats.qmc.Sobol(d, scramble=False)``, computed with NumPy alone), which
fills the space more evenly than random draws and needs no seed.
"""

import numbers
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from jaxdescent import _validate
from jaxdescent._validate import InvalidArgument


class Uniform(NamedTuple):
    """Uniform on ``[low, high)``."""

    low: float
    high: float


class LogUniform(NamedTuple):
    """Log-uniform on ``[low, high)``: ``log(x)`` uniform on ``[log low, log high)``; needs ``low > 0``."""

    low: float
    high: float


# Joe & Kuo, new-joe-kuo-6.21201 (https://web.maths.unsw.edu.au/~fkuo/sobol/), dimensions 2..21:
# (s, a, m_1..m_s). Dimension 1 is the van der Corput sequence in base 2 (every m_k = 1).
_JOE_KUO = (
    (1, 0, 1), (2, 1, 1, 3), (3, 1, 1, 3, 1), (3, 2, 1, 1, 1), (4, 1, 1, 1, 3, 3),
    (4, 4, 1, 3, 5, 13), (5, 2, 1, 1, 5, 5, 17), (5, 4, 1, 1, 5, 5, 5), (5, 7, 1, 1, 7, 11, 19),
    (5, 11, 1, 1, 5, 1, 1), (5, 13, 1, 1, 1, 3, 11), (5, 14, 1, 3, 5, 5, 31),
    (6, 1, 1, 3, 3, 9, 7, 49), (6, 13, 1, 1, 1, 15, 21, 21), (6, 16, 1, 3, 1, 13, 27, 49),
    (6, 19, 1, 1, 1, 15, 7, 5), (6, 22, 1, 3, 1, 15, 13, 25), (6, 25, 1, 1, 5, 5, 19, 61),
    (7, 1, 1, 3, 7, 11, 23, 15, 103), (7, 4, 1, 3, 7, 13, 13, 15, 69),
)
MAX_SOBOL_DIM = len(_JOE_KUO) + 1
_BITS = 32  # points are multiples of 2^-32, exact for the first 2^32 points
MAX_SOBOL_POINTS = 2**_BITS  # beyond, the sequence repeats itself


def _directions(d: int) -> np.ndarray:
    """The (d, _BITS) direction numbers v_k = m_k 2^(_BITS - k) (Joe & Kuo's recurrence), as uint64."""
    rows = [[1 << (_BITS - k - 1) for k in range(_BITS)]]
    for s, a, *m in _JOE_KUO[: d - 1]:
        v = [m[k] << (_BITS - k - 1) for k in range(s)]
        for k in range(s, _BITS):
            x = v[k - s] ^ (v[k - s] >> s)
            for i in range(1, s):
                x ^= ((a >> (s - 1 - i)) & 1) * v[k - i]
            v.append(x)
        rows.append(v)
    return np.array(rows, dtype=np.uint64)


def sobol(num: int, d: int) -> np.ndarray:
    """The first ``num`` points of the unscrambled ``d``-dimensional Sobol sequence, shape (num, d)."""
    i = np.arange(num, dtype=np.uint64)
    gray = i ^ (i >> np.uint64(1))
    x = np.zeros((num, d), dtype=np.uint64)
    for k, v in enumerate(_directions(d).T):
        x ^= ((gray >> np.uint64(k)) & np.uint64(1))[:, None] * v
    return x * 2.0**-_BITS


def _bound(where: str, dim, field: str) -> float:
    """``dim.<field>`` as a float, refusing booleans, strings, None, arrays and values beyond float64."""
    value = getattr(dim, field)
    if isinstance(value, (bool, np.bool_)):
        raise InvalidArgument(f"{where}.{field} must be a number, not a boolean: got {dim}")
    if not isinstance(value, numbers.Real):
        raise InvalidArgument(f"{where}.{field} must be a real number (int or float), got {value!r} in {dim}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float64
        value = float("inf") if value > 0 else float("-inf")
    if not np.isfinite(value):
        raise InvalidArgument(f"{where} must have finite bounds, got {dim}")
    return value


def _check(name: str, dim) -> None:
    where = f"space[{name!r}]"
    if isinstance(dim, (Uniform, LogUniform)):
        low, high = _bound(where, dim, "low"), _bound(where, dim, "high")
        if low >= high:
            raise InvalidArgument(f"{where} must have low < high, got {dim}")
        if isinstance(dim, LogUniform) and low <= 0:
            raise InvalidArgument(f"{where} is log-uniform and needs low > 0, got {dim}")
    elif isinstance(dim, (Sequence, np.ndarray)) and not isinstance(dim, (str, bytes)):
        if len(dim) == 0 or np.ndim(dim) != 1:
            raise InvalidArgument(f"{where} must be a non-empty 1-D sequence of choices, got {dim!r}")
    else:
        raise InvalidArgument(f"{where} must be a Uniform, LogUniform or a sequence of choices, got {dim!r}")


def _range(dim, col: np.ndarray) -> np.ndarray:
    """Maps unit coordinates to ``dim``, in ``[low, high)``, without overflow for any finite float64 bounds."""
    low, high = float(dim.low), float(dim.high)
    with np.errstate(over="ignore"):
        if isinstance(dim, Uniform):
            span = high - low
            x = low + col * span if np.isfinite(span) else low * (1 - col) + high * col
        else:
            ratio = high / low
            x = low * ratio**col if np.isfinite(ratio) else np.exp(np.log(low) + col * (np.log(high) - np.log(low)))
    return np.clip(x, low, np.nextafter(high, low))  # rounding never reaches high


def sample(space: Mapping[str, Uniform | LogUniform | Sequence], num: int, *, method: str = "random", seed: int = 0) -> dict[str, np.ndarray]:
    """``num`` points of ``space``, as one 1-D array per name (the ``axes`` of ``sweep_fn(..., product=False)``).

    Args:
      space: name -> :class:`Uniform`, :class:`LogUniform` or a sequence of choices (each
        point picks one); one unit coordinate per name, in mapping order.
      num: the number of points, a positive int.
      method: ``"random"`` (``np.random.default_rng(seed)``) or ``"sobol"`` (unscrambled, at
        most :data:`MAX_SOBOL_DIM` names; with ``num`` a power of two, each of ``2^k <= num``
        choices is picked exactly equally often).
      seed: the seed of the random draws, a non-negative int; unused by ``"sobol"``.

    Returns:
      ``{name: array of shape (num,)}``: float64 for ranges, ``np.asarray(choices).dtype`` for choices.
      A run in float32 (JAX's default) rounds the values again; a bound beyond float32's range
      gives values that are inf there.

    Raises:
      InvalidArgument (a ValueError and a TypeError): a bad ``num``, ``method``, ``seed`` or entry
        of ``space`` (a bound that is not a finite real number, ``low >= high``, empty choices),
        named in the message; ``num`` points that would need more than half this machine's memory.

    Examples:
      >>> from jaxdescent import LogUniform, Uniform, sample
      >>> axes = sample({"lr": LogUniform(1e-3, 1e-1), "momentum": [0.0, 0.9]}, 4, method="sobol")
      >>> [round(float(x), 5) for x in axes["lr"]], axes["momentum"].tolist()
      ([0.001, 0.01, 0.03162, 0.00316], [0.0, 0.9, 0.0, 0.9])
    """
    if isinstance(num, (bool, np.bool_)) or not isinstance(num, numbers.Integral) or num <= 0:
        raise InvalidArgument(f"num must be a positive int, got {num!r}")
    num = int(num)
    if not isinstance(space, Mapping) or len(space) == 0:
        raise InvalidArgument(f"space must be a non-empty mapping of name -> dimension, got {space!r}")
    for name, dim in space.items():
        _check(name, dim)
    d = len(space)
    seed = _validate.num_steps(seed, "seed", most=None)  # a NumPy seed: any size
    if method == "sobol":
        if d > MAX_SOBOL_DIM:
            raise InvalidArgument(f"space has {d} dimensions; method='sobol' supports at most {MAX_SOBOL_DIM}")
        if num > MAX_SOBOL_POINTS:
            raise InvalidArgument(f"num must be at most 2**{_BITS} = {MAX_SOBOL_POINTS:,} with method='sobol' "
                                  f"(the sequence repeats after that), got {num:,}")
    elif method != "random":
        raise InvalidArgument(f"method must be 'random' or 'sobol', got {method!r}")
    # the unit points (Sobol: their uint64 bits, a temporary and the float copy), the columns and their temporaries
    per_point = (24 * d + 32 if method == "sobol" else 8 * d) + 8 * d + 32
    _validate.check_memory("num", num * per_point, f"{num:,} points of {d} dimension{'s' * (d != 1)}",
                           "sample fewer points (num), in several calls if need be")
    if method == "random":
        u = np.random.default_rng(seed).random((num, d))
    else:
        u = sobol(num, d)
    out = {}
    for (name, dim), col in zip(space.items(), u.T):
        if isinstance(dim, (Uniform, LogUniform)):
            out[name] = _range(dim, col)
        else:
            out[name] = np.asarray(dim)[(col * len(dim)).astype(np.intp)]
    return out
