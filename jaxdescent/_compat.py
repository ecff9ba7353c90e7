"""The one place that bridges public JAX APIs across the supported releases (see pyproject's floor)."""

import jax

if hasattr(jax, "enable_x64"):
    enable_x64 = jax.enable_x64
else:  # before jax 0.8 the context manager lived in jax.experimental
    from jax.experimental import enable_x64  # noqa: F401
