"""XLA's CPU settings for fast sweeps, applied at ``import jaxdescent`` when JAX has not started yet.

XLA's default CPU runtime runs a loop of many small steps (a sweep's step
loop) as one runtime call per step, about 5x slower than compiled code. The
flag that compiles small while loops into one kernel
(``xla_cpu_small_while_loop_byte_threshold``) fixes that; it must be in
``XLA_FLAGS`` before JAX creates its CPU backend, so importing jaxdescent
first adds it. It changes how loops are run, not what a run computes.

It does not split the CPU into one device per core: sweeps use every core
without that (the engine runs one program per core from as many threads on
one device). Several host devices also run a run's batched LAPACK kernels
(``eigh``, ``svd``, ...) at once, and those kernels wait for their tasks on XLA's
shared pool: with 2 host devices a ``sweep_fn`` whose run calls
``gradient_descent(..., track_sharpness=True)`` on a small MLP hangs (jax
0.10.2, with or without this flag). ``jax_num_cpu_devices`` stays the user's
choice.

When it is done: only if the backend has not started (checked through
``jax.config.update("jax_num_cpu_devices", ...)`` and its undo, which JAX
refuses once it has), and only if the user's ``XLA_FLAGS`` does not already
name the flag. ``JAXDESCENT_CONFIGURE_XLA=0`` in the environment turns
it all off. If JAX had already started, nothing is changed and the first
sweep on CPU warns once, saying what to do.
"""

import os
import warnings

ENV = "JAXDESCENT_CONFIGURE_XLA"
_LOOP_FLAG = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000000"
_WIDTH_FLAG = "--xla_cpu_prefer_vector_width=512"

# What import did: "configured", or why not ("off", "started", "unknown").
state = {"status": "not run", "warned": False}


def _backend_started(jax) -> bool:
    """Whether JAX's backend exists, failing closed (True) when it cannot tell.

    JAX has no public query for this; its public ``jax_num_cpu_devices`` option
    refuses a new value once a backend exists, so a change and its undo is the
    probe.
    """
    try:
        current = jax.config.jax_num_cpu_devices
        jax.config.update("jax_num_cpu_devices", current + 1)
        jax.config.update("jax_num_cpu_devices", current)
        return False
    except Exception:  # RuntimeError once started; AttributeError on a JAX without the option
        return True


def _add_flags(flags: list) -> None:
    current = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in flags if f.split("=")[0] not in current]
    if missing:
        os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()


def configure(jax_imported_before: bool) -> str:
    """Applies the settings if it is safe; returns and records what was done (see the module docstring)."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        state["status"] = "off"
        return "off"
    import jax

    if _backend_started(jax):
        if jax_imported_before:  # started, or an old JAX that cannot tell: change nothing
            state["status"] = "started"
            return "started"
        _add_flags([_LOOP_FLAG])  # jax was imported just now: no backend can exist yet
        state["status"] = "configured"
        return "configured"
    _add_flags([_LOOP_FLAG])
    state["status"] = "configured"
    return "configured"


def fast_flags() -> list:
    """Every flag of the fast CPU path (for ``XLA_FLAGS`` set by hand)."""
    return [_WIDTH_FLAG, _LOOP_FLAG]


def hint_once(platform: str) -> None:
    """One warning, the first time a CPU sweep runs without the flag: JAX had started before jaxdescent's import."""
    if platform != "cpu" or state["warned"] or state["status"] in ("off", "configured"):
        return
    state["warned"] = True
    warnings.warn(
        "jaxdescent: JAX had started before jaxdescent was imported, so XLA's CPU setting for fast sweeps is not "
        "in effect and sweeps on CPU run slower (1.9x on the sweep benchmark). Import jaxdescent before running anything in JAX, "
        f"or start Python with XLA_FLAGS='{' '.join(fast_flags())}' "
        f"(set {ENV}=0 to silence this and keep JAX's defaults).", stacklevel=4)
