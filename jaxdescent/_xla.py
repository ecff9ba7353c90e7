"""XLA's CPU settings for fast sweeps, applied at ``import jaxdescent`` when JAX has not started yet.

XLA's default CPU runtime runs a loop of many small steps (a sweep's step
loop) as one runtime call per step, about 5x slower than compiled code, and
one CPU device uses one core for such a loop. Two settings fix that, and both
must be in place before JAX creates its CPU backend:

* ``XLA_FLAGS`` gains the flag that compiles small while loops into one
  kernel (``xla_cpu_small_while_loop_byte_threshold``; jax 0.7.0, below the
  package's floor, aborts on it);
* ``jax_num_cpu_devices`` becomes the number of cores this process may use,
  so a sweep shards its runs over every core. Work placed on one device
  (plain ``jax.jit`` calls) is unchanged; ``jax.devices("cpu")`` lists one
  device per core.

Neither changes what a run computes. A sweep gives the same bits on any
number of devices for a fixed ``chunk_size``; the README's bit-identity
section names the one case found where one device and several differ in the
last bits (Adam on a small MLP), which is then also the difference between
importing jaxdescent before JAX or after.

When it is done: only if the backend has not started (checked through
``jax.config.update("jax_num_cpu_devices", ...)``, which JAX refuses once it
has), and only for settings the user has not made (an ``XLA_FLAGS`` that
already names the flag or a device count, or ``jax_num_cpu_devices`` already
set, is left alone). ``JAXDESCENT_CONFIGURE_XLA=0`` in the environment turns
it all off. If JAX had already started, nothing is changed and the first
sweep on CPU warns once, saying what to do.
"""

import os
import warnings

ENV = "JAXDESCENT_CONFIGURE_XLA"
_LOOP_FLAG = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000000"
_WIDTH_FLAG = "--xla_cpu_prefer_vector_width=512"

# What import did: "configured", or why not ("off", "started", "unknown").
state = {"status": "not run", "devices": None, "warned": False}


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "") \
            and jax.config.jax_num_cpu_devices < 0:
        jax.config.update("jax_num_cpu_devices", cpu_count())
        state["devices"] = cpu_count()
    state["status"] = "configured"
    return "configured"


def fast_flags() -> list:
    """Every flag of the fast CPU path (for ``XLA_FLAGS`` set by hand)."""
    return [_WIDTH_FLAG, _LOOP_FLAG]


def hint_once(platform: str) -> None:
    """One warning, the first time a CPU sweep runs without the settings in effect.

    That is when JAX had started before jaxdescent was imported, or when the
    device count asked for at import did not take (a JAX that accepted the
    option too late).
    """
    if platform != "cpu" or state["warned"] or state["status"] == "off":
        return
    import jax

    took = state["devices"] is None or len(jax.devices("cpu")) == state["devices"]
    if state["status"] == "configured" and took:
        return
    state["warned"] = True
    flags = " ".join(fast_flags())
    warnings.warn(
        "jaxdescent: JAX had started before jaxdescent was imported, so XLA's CPU settings for fast sweeps are not "
        "in effect and sweeps on CPU run several times slower. Import jaxdescent before running anything in JAX, "
        f"or start Python with XLA_FLAGS='{flags}' and jax.config.update('jax_num_cpu_devices', {cpu_count()}) "
        f"(set {ENV}=0 to silence this and keep JAX's defaults).", stacklevel=4)

