"""Helpers for tests of code built on jaxdescent: count XLA compilations through JAX's public monitoring API."""

import contextlib
from typing import Iterator

import jax

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class Compilations:
    """What :func:`count_compilations` yields; ``count`` grows while the ``with`` block runs."""

    def __init__(self):
        self.count = 0

    def __repr__(self):
        return f"Compilations(count={self.count})"


@contextlib.contextmanager
def count_compilations() -> Iterator[Compilations]:
    """Counts the XLA backend compilations that happen inside the ``with`` block.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxdescent import count_compilations
      >>> f = jax.jit(lambda x: x * 2)
      >>> a, b, c4 = jnp.ones(3), jnp.zeros(3), jnp.ones(4)
      >>> with count_compilations() as c:
      ...     _ = f(a); _ = f(b); _ = f(c4)
      >>> c.count
      2
    """
    counter = Compilations()
    if not _active and not _registered:
        # One listener for the life of the process: jax.monitoring has no public way to remove one on
        # every supported JAX (unregister_event_duration_listener came later than the floor).
        jax.monitoring.register_event_duration_secs_listener(_listener)
        _registered.append(True)
    _active.append(counter)
    try:
        yield counter
    finally:
        _active.remove(counter)


_active: list = []
_registered: list = []


def _listener(name, duration, **kwargs):
    if name == _COMPILE_EVENT:
        for counter in _active:
            counter.count += 1
