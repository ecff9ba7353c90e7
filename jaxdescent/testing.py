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

    def listener(name, duration, **kwargs):
        if name == _COMPILE_EVENT:
            counter.count += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
