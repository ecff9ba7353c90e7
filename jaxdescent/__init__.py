"""jaxdescent: gradient descent you can see, sweep and trust, as pure JAX functions."""

from jaxdescent import losses
from jaxdescent.descent import Trajectory, gradient_descent
from jaxdescent.search import Point, critical_learning_rate, grid_search, stationary_point

__version__ = "0.1.0"

__all__ = [
    "Point",
    "Trajectory",
    "critical_learning_rate",
    "gradient_descent",
    "grid_search",
    "losses",
    "stationary_point",
]
