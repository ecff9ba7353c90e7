"""jaxdescent: gradient descent you can see, sweep and trust, as pure JAX functions.

The public names are re-exported here; the modules that define them are
private (``_engine``, ``_sweep``, ``_space``) except those users import as
namespaces (``losses``, ``network``, ``datasets``, ``results``, ``descent``).

Importing jaxdescent before JAX has started configures XLA's CPU backend for
fast sweeps (a sweep's small step loops are compiled into one kernel; the CPU
stays one device, ``jax_num_cpu_devices`` is left to the user); results do not
change. It never touches a JAX that has started, nor a setting the user made;
``JAXDESCENT_CONFIGURE_XLA=0`` turns it off. See :mod:`jaxdescent._xla`.
"""

import sys

_JAX_IMPORTED_BEFORE = "jax" in sys.modules  # before anything below imports it

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

from jaxdescent import _xla  # noqa: E402

_xla.configure(_JAX_IMPORTED_BEFORE)

from jaxdescent import datasets as datasets
from jaxdescent import losses as losses
from jaxdescent import network as network
from jaxdescent._cache import use_compilation_cache as use_compilation_cache
from jaxdescent._engine import Coords as Coords
from jaxdescent._engine import Runs as Runs
from jaxdescent._engine import sweep_fn as sweep_fn
from jaxdescent._optuna import optuna_search as optuna_search
from jaxdescent._space import LogUniform as LogUniform
from jaxdescent._space import Uniform as Uniform
from jaxdescent._space import sample as sample
from jaxdescent._stepwise import Halving as Halving
from jaxdescent._stepwise import PBTResult as PBTResult
from jaxdescent._stepwise import Stepped as Stepped
from jaxdescent._stepwise import pbt as pbt
from jaxdescent._stepwise import stepwise as stepwise
from jaxdescent._stepwise import successive_halving as successive_halving
from jaxdescent._sweep import SweepResult as SweepResult
from jaxdescent._sweep import fast_cpu_flags as fast_cpu_flags
from jaxdescent._sweep import grid_pairs as grid_pairs
from jaxdescent._sweep import sweep as sweep
from jaxdescent._sweep import sweep_pairs as sweep_pairs
from jaxdescent._sweep import use_fast_cpu_flags as use_fast_cpu_flags
from jaxdescent.descent import Trajectory as Trajectory
from jaxdescent.descent import gradient_descent as gradient_descent
from jaxdescent.search import Point as Point
from jaxdescent.search import grid_search as grid_search
from jaxdescent.search import stationary_point as stationary_point
from jaxdescent.stability import Bifurcation as Bifurcation
from jaxdescent.stability import bifurcation as bifurcation
from jaxdescent.stability import critical_learning_rate as critical_learning_rate
from jaxdescent.stability import sharpness as sharpness
from jaxdescent.testing import count_compilations as count_compilations

try:
    __version__ = version("jaxdescent")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.2.0"

__all__ = [
    "Bifurcation",
    "Coords",
    "Halving",
    "LogUniform",
    "PBTResult",
    "Point",
    "Runs",
    "Stepped",
    "SweepResult",
    "Trajectory",
    "Uniform",
    "bifurcation",
    "count_compilations",
    "critical_learning_rate",
    "datasets",
    "fast_cpu_flags",
    "gradient_descent",
    "grid_pairs",
    "grid_search",
    "losses",
    "network",
    "optuna_search",
    "pbt",
    "sample",
    "sharpness",
    "stationary_point",
    "stepwise",
    "successive_halving",
    "sweep",
    "sweep_fn",
    "sweep_pairs",
    "use_compilation_cache",
    "use_fast_cpu_flags",
]
