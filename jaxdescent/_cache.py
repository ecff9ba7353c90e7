"""JAX's persistent compilation cache for jaxdescent's programs: a rerun compiles nothing.

A researcher reruns the same script or reopens a notebook many times a day;
each fresh process compiles every sweep again (0.2 to 1 s a program on CPU).
JAX can keep compiled programs on disk (its persistent compilation cache);
:func:`use_compilation_cache` turns it on through JAX's public options only:

- ``jax_compilation_cache_dir``: where the programs are kept;
- ``jax_persistent_cache_min_compile_time_secs``: JAX keeps only programs that
  took at least 1 s to compile, which leaves out most of jaxdescent's; it is
  lowered to 0 (every program is kept);
- ``jax_persistent_cache_min_entry_size_bytes`` is left as it is: JAX's default
  (0) already keeps entries of any size.

Where it is on: in the ``jaxdescent`` command (a fresh process each time),
unless ``JAXDESCENT_COMPILATION_CACHE=0``. In the library it is off until
the user asks, in one line: a library does not write to the user's disk
unasked. A setting the user made is never changed: a cache folder set with
``jax.config.update("jax_compilation_cache_dir", ...)`` or
``JAX_COMPILATION_CACHE_DIR`` is kept, thresholds included, and
``jax_enable_compilation_cache=False`` keeps the cache off.

When it takes effect: JAX opens the cache folder at the first compilation
after a folder is set (jax 0.7.2 to 0.10.2), so turning it on after other
programs have compiled works for every later compilation; programs compiled
before stay uncached. Once opened, JAX keeps that folder for the life of the
process, so a second call naming another folder is refused.
"""

import os
from typing import Optional

ENV_OFF = "JAXDESCENT_COMPILATION_CACHE"  # "0": the command line does not turn the cache on
ENV_DIR = "JAXDESCENT_CACHE_DIR"  # the default folder, before the XDG cache folder
_JAX_DEFAULT_MIN_COMPILE_SECS = 1.0  # jax_persistent_cache_min_compile_time_secs's default, jax 0.7.2 to 0.10.2

_ours: dict = {"dir": None}  # the folder this module set, so a second call can tell it from the user's


def default_dir() -> str:
    """``$JAXDESCENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxdescent/xla``, else ``~/.cache/jaxdescent/xla``."""
    if os.environ.get(ENV_DIR):
        return os.environ[ENV_DIR]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxdescent", "xla")


def _check_dir(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a folder name (str or os.PathLike), got {type(path).__name__}")
    if not os.fspath(path):
        raise ValueError("path: an empty name; give a folder, or None for the default")
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"path: {path!r} is a file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ValueError(f"path: cannot create the cache folder {path!r}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"path: the cache folder {path!r} is not writable")
    return path


def use_compilation_cache(path=None) -> Optional[str]:
    """Keeps compiled programs on disk, so a rerun of the same script or notebook compiles nothing.

    Turns on JAX's persistent compilation cache in ``path`` and lowers the
    compile time a program needs to be kept from JAX's 1 s to 0 (jaxdescent's
    sweeps often compile in 0.2 to 1 s). Results are bit-identical with and
    without it: a cached program is the same XLA executable.

    Off by default in the library (a library does not write to your disk
    unasked); the ``jaxdescent`` command turns it on unless
    ``JAXDESCENT_COMPILATION_CACHE=0``. Your own settings win: if
    ``jax_compilation_cache_dir`` is already set (``jax.config.update`` or
    ``JAX_COMPILATION_CACHE_DIR``), nothing is changed, thresholds included,
    and your folder is returned; if ``jax_enable_compilation_cache`` is False,
    nothing is changed and None is returned; a minimum compile time you set
    (anything but JAX's default 1 s) is kept.

    It can be called after programs have compiled: every later compilation is
    cached (JAX opens the folder at the next compilation). JAX keeps one folder
    per process, so a second call with another ``path`` raises ValueError.
    Share a cache folder only with people you trust: JAX runs what it finds
    there.

    Args:
      path: the cache folder, created if missing. ``None``:
        ``$JAXDESCENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxdescent/xla``,
        else ``~/.cache/jaxdescent/xla``.

    Returns:
      The folder in use (absolute), or None when ``jax_enable_compilation_cache``
      is False.

    Raises:
      TypeError: ``path`` is not a str or os.PathLike.
      ValueError: ``path`` is empty, a file, cannot be created or written, or
        differs from the folder an earlier call set in this process.

    Examples:
      Once, at the top of a script or notebook (skipped here: it would turn
      the cache on for every test after it):

      >>> import jaxdescent
      >>> folder = jaxdescent.use_compilation_cache()  # doctest: +SKIP
      >>> folder  # doctest: +SKIP
      '/home/me/.cache/jaxdescent/xla'
    """
    import jax

    if not jax.config.jax_enable_compilation_cache:
        return None
    current = jax.config.jax_compilation_cache_dir
    if current is not None and current != _ours["dir"]:
        return current  # the user's folder: never ours to change
    path = _check_dir(default_dir() if path is None else path)
    if current is not None:  # set by an earlier call
        if path != current:
            raise ValueError(f"path: this process already keeps its compiled programs in {current!r} (JAX keeps "
                             f"one cache folder per process); got {path!r}")
        return current
    if (jax.config.jax_persistent_cache_min_compile_time_secs == _JAX_DEFAULT_MIN_COMPILE_SECS
            and "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ):
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_compilation_cache_dir", path)
    _ours["dir"] = path
    return path


def use_by_default() -> Optional[str]:
    """The command line's default: :func:`use_compilation_cache` unless ``JAXDESCENT_COMPILATION_CACHE=0``.

    Returns the folder in use, or None when it is off.
    """
    if os.environ.get(ENV_OFF, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    return use_compilation_cache()
