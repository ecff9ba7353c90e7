"""jaxdescent: gradient descent you can see, sweep and trust, as pure JAX functions."""

from jaxdescent import datasets, losses, network
from jaxdescent.descent import Trajectory, gradient_descent
from jaxdescent.search import Point, critical_learning_rate, grid_search, stationary_point
from jaxdescent.sweep import SweepResult, fast_cpu_flags, grid_pairs, sweep, sweep_pairs, use_fast_cpu_flags

__version__ = "0.1.0"

__all__ = [
    "Point",
    "SweepResult",
    "Trajectory",
    "critical_learning_rate",
    "datasets",
    "fast_cpu_flags",
    "grid_pairs",
    "gradient_descent",
    "grid_search",
    "losses",
    "network",
    "stationary_point",
    "sweep",
    "sweep_pairs",
    "use_fast_cpu_flags",
]
