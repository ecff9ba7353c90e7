"""Input checks shared by the runners: clear errors naming the argument, before anything compiles.

Traced values (a runner called inside the user's own ``jit`` or ``vmap``) cannot
be inspected and are passed through unchecked.
"""

import numbers
import os
from typing import Optional

import jax
import numpy as np


class InvalidArgument(ValueError, TypeError):
    """A bad argument, named in the message: the caller's mistake, not a bug in jaxdescent.

    Both a ``ValueError`` and a ``TypeError``, so ``except ValueError`` and
    ``except TypeError`` keep working; the command line reports it as one line
    and exit status 2, and any other exception as a bug (a traceback).
    """


def is_traced(x) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


MAX_STEPS = 2**31 - 2  # step counters are int32 on the device, and 2**31 - 1 marks "never" (see _sweep.NEVER)


def num_steps(value, name: str = "num_steps", *, most: Optional[int] = MAX_STEPS) -> int:
    """Returns ``value`` as an int, or raises if it is not an integer in ``[0, most]``.

    ``most`` defaults to :data:`MAX_STEPS`: counts (steps, iterations, chunk
    sizes) are int32 on the device, where a larger one would fail to convert
    or wrap. ``None`` for a count that stays on the host (a NumPy seed).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgument(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise InvalidArgument(f"{name} must be >= 0, got {value}")
    if most is not None and value > most:
        raise InvalidArgument(f"{name} must be at most {most:,} (counted in int32 on the device), got {value:,}")
    return int(value)


def has_bool(value) -> bool:
    """Whether ``value`` (an array, or a list or tuple of numbers) holds a boolean anywhere."""
    if isinstance(value, (bool, np.bool_)):
        return True
    try:
        a = np.asarray(value) if not isinstance(value, (list, tuple)) else np.asarray(value, dtype=object)
    except (TypeError, ValueError):
        return False
    return a.dtype == bool or (a.dtype == object and any(isinstance(v, (bool, np.bool_)) for v in a.ravel()))


def _real(value, name):
    """``value`` as a float64 array, refusing booleans, complex numbers and non-numbers (the caller's mistake)."""
    a = np.asarray(value) if not isinstance(value, (list, tuple)) or value else np.zeros(0)
    listed = np.ravel(np.asarray(value, dtype=object)) if isinstance(value, (list, tuple)) or a.dtype == object else ()
    if a.dtype == bool or any(isinstance(v, (bool, np.bool_)) for v in listed):
        raise InvalidArgument(f"{name} must be a number, not a boolean: got {value!r}")
    if a.dtype.kind in "US" or any(isinstance(v, (str, bytes)) for v in listed) or isinstance(value, (str, bytes)):
        raise InvalidArgument(f"{name} must be a number, not a string: got {value!r} (convert it with float())")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise InvalidArgument(f"{name} must be real, got the complex {a.ravel()[:3].tolist()}")
    try:
        return a.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{name} must be a number or an array of numbers, got {value!r}") from None


def learning_rate(value, name: str = "learning_rate", *, allow_empty: bool = False, dtype=None) -> None:
    """Raises unless every learning rate is finite and > 0, also once cast to ``dtype`` (the run's float).

    In ``dtype`` a learning rate must be a normal number: XLA flushes a
    subnormal one to 0, and the run would never move.

    Traced values pass: inside the run, :func:`jaxdescent.descent.make_optimizer`
    turns a traced learning rate that is not finite and > 0 into NaN, so such a
    run's iterates are NaN, never a plausible trajectory.
    """
    if is_traced(value):
        return
    a = _real(value, name)
    if a.size == 0 and not allow_empty:
        raise InvalidArgument(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise InvalidArgument(f"{name} must be finite, got {a[~np.isfinite(a)].ravel()[:3].tolist()}")
    if np.any(a <= 0):
        raise InvalidArgument(f"{name} must be > 0, got {a[a <= 0].ravel()[:3].tolist()}")
    representable(a, name, dtype, normal=True)


def representable(a, name: str, dtype=None, *, normal: bool = False) -> None:
    """Raises if a nonzero finite value becomes 0 or inf in ``dtype`` (default: JAX's default float).

    With ``normal``, also if it becomes subnormal there (below ``finfo(dtype).tiny``): XLA flushes
    subnormals to 0 (float32 on CPU does), so such a value would act as 0.
    """
    dtype = np.dtype(dtype or jax.dtypes.canonicalize_dtype(float))
    with np.errstate(over="ignore", under="ignore"):
        cast = np.asarray(a, np.float64).astype(dtype)
    lost = (np.isinf(cast) & np.isfinite(a)) | ((cast == 0) & (np.asarray(a) != 0))
    if np.any(lost):
        bad = np.asarray(a)[lost].ravel()[:3].tolist()
        raise InvalidArgument(
            f"{name} {bad} cannot be represented in {dtype} (the runs' float: it becomes 0 or inf there); "
            f"use values within [{np.finfo(dtype).tiny:.3g}, {np.finfo(dtype).max:.3g}] or float64 "
            "(jax.config.update('jax_enable_x64', True) and float64 start points)")
    if normal:
        tiny = np.finfo(dtype).tiny
        small = (np.abs(cast) < tiny) & (np.asarray(a) != 0)
        if np.any(small):
            bad = np.asarray(a)[small].ravel()[:3].tolist()
            raise InvalidArgument(
                f"{name} {bad} is subnormal in {dtype} (the runs' float, whose smallest normal number is "
                f"{tiny:.3g}): XLA flushes subnormals to 0 (float32 on CPU does), so it would act as 0 or lose its "
                f"digits; use values >= {tiny:.3g}, or a wider float (float32 start points, or float64 with "
                "jax.config.update('jax_enable_x64', True))")


def finite_tree(tree, name: str) -> None:
    """Raises if any leaf of ``tree`` holds NaN or inf (traced values pass)."""
    if is_traced(tree):
        return
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise InvalidArgument(f"{name} is empty: it has no arrays")
    for leaf in leaves:
        try:
            a = np.asarray(leaf)
        except (TypeError, ValueError):
            raise InvalidArgument(f"{name} must hold arrays of numbers, got {leaf!r}") from None
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise InvalidArgument(f"{name} must hold real numbers, got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise InvalidArgument(f"{name} must be finite, found NaN or inf")
        if np.issubdtype(a.dtype, np.floating) and a.dtype.itemsize > 4 or np.issubdtype(a.dtype, np.integer):
            representable(a, name)  # a float64 or integer start is cast to the default float


def scalar_loss(loss_fn, w, name: str = "loss_fn") -> None:
    """Raises unless ``loss_fn(w)`` is a real scalar; traces abstractly, compiles nothing."""
    if not callable(loss_fn):
        raise InvalidArgument(f"{name} must be callable, got {loss_fn!r}")
    try:
        out = jax.eval_shape(loss_fn, w)
    except Exception as e:  # the user's function failed on these shapes
        shapes = jax.tree_util.tree_map(lambda x: np.shape(x), w)
        raise InvalidArgument(f"{name} failed on parameters of shape {shapes}: {type(e).__name__}: {e}") from e
    if not (isinstance(out, jax.ShapeDtypeStruct) and out.shape == ()):
        raise InvalidArgument(f"{name} must return a scalar, got {out}")
    if not np.issubdtype(out.dtype, np.floating):
        raise InvalidArgument(f"{name} must return a real float scalar, got dtype {out.dtype}")


def memory_bytes() -> int:
    """This machine's physical memory in bytes (the yardstick of the size checks)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def human_bytes(n: float) -> str:
    """``1234567`` → ``'1.2 MB'`` (powers of 1000, as disk and memory sizes are quoted)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000


def check_memory(name: str, need: int, what: str, hint: str) -> None:
    """Refuses (one line: how much, what to change) work whose memory estimate is over half this machine's."""
    have = memory_bytes()
    if need > have // 2:
        raise InvalidArgument(f"{name}: {what} need about {human_bytes(need)} of memory, more than half of "
                              f"this machine's {human_bytes(have)}; {hint}")


def finite_numbers(value, name: str, *, dtype=None, allow_empty: bool = False) -> None:
    """Raises unless every value is a real, finite number (not a boolean) that stays finite in ``dtype``.

    For settings that may be zero or negative (an optimizer's ``b1``, ``momentum``);
    traced values pass.
    """
    if is_traced(value):
        return
    a = _real(value, name)
    if a.size == 0 and not allow_empty:
        raise InvalidArgument(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise InvalidArgument(f"{name} must be finite, got {a[~np.isfinite(a)].ravel()[:3].tolist()}")
    representable(a, name, dtype)


def prng_key(value, name: str = "key", *, batch: bool = False):
    """Returns ``value`` if it is one ``jax.random`` key (``batch``: a non-empty 1-D batch of keys), else raises.

    A typed key (``jax.random.key``) or raw ``uint32`` key data of the default
    implementation's shape (``jax.random.PRNGKey``) is accepted. Only dtypes and
    shapes are read, so traced keys are checked too.
    """
    want = ("a 1-D batch of jax.random keys such as jax.random.split(jax.random.key(0), n)" if batch
            else "one jax.random key such as jax.random.key(0)")
    dtype = getattr(value, "dtype", None)
    if dtype is None or not hasattr(value, "shape"):
        raise InvalidArgument(f"{name} must be {want}, got {type(value).__name__} {value!r}")
    shape = tuple(value.shape)
    raw = jax.eval_shape(lambda: jax.random.PRNGKey(0)).shape  # one key's data: (2,) for the default threefry
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        ok, extra, got = len(shape) == int(batch), len(shape), f"keys of shape {shape}"
    elif dtype == np.uint32:
        ok = shape[len(shape) - len(raw):] == raw and len(shape) == len(raw) + int(batch)
        extra = len(shape) - len(raw) if shape[len(shape) - len(raw):] == raw else None
        got = f"uint32 key data of shape {shape} (one key's data has shape {raw})"
    else:
        ok, extra, got = False, None, f"an array of dtype {dtype} and shape {shape}"
    if not ok:
        hint = "; to use several keys, jax.vmap over them" if not batch and extra == 1 else ""
        raise InvalidArgument(f"{name} must be {want}, got {got}{hint}")
    if batch and shape[0] == 0:
        raise InvalidArgument(f"{name} is empty: it holds no keys")
    return value


def num_params(tree, name: str) -> int:
    """The number of numbers in ``tree`` (read from shapes, so traced trees count too); raises if it is 0."""
    n = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(tree))
    if n == 0:
        raise InvalidArgument(f"{name} is empty: it holds no parameters (shapes "
                              f"{jax.tree_util.tree_map(np.shape, tree)})")
    return n
