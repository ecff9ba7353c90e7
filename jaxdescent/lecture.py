"""Every number of the lecture, recomputed with jaxdescent in float32 and float64.

:func:`reproduce` returns rows; the ``jaxdescent reproduce`` command prints them.
Where the slides differ from exact arithmetic it is because they round
intermediate values (they continue from w = −23.76 and from w = 1.64); each row
says so rather than imitating the rounding.
"""

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxdescent import datasets, network
from jaxdescent._compat import enable_x64
from jaxdescent.descent import gradient_descent
from jaxdescent.losses import bowl, quadratic, sextic
from jaxdescent.search import grid_search, stationary_point


class Row(NamedTuple):
    """One number of the lecture beside what jaxdescent computes.

    Attributes:
      quantity: what is computed.
      lecture: the slide's value (None where the slide has "?" or nothing).
      float32: jaxdescent's value in float32 (the default dtype).
      float64: the same computation with ``jax_enable_x64``.
      decimals: the slide's precision; agreement is judged after rounding to it.
      note: why the slide and jaxdescent differ, or what the row shows.
    """

    quantity: str
    lecture: Optional[float]
    float32: float
    float64: float
    decimals: int
    note: str = ""

    @property
    def agrees(self) -> Optional[bool]:
        """Whether float32 matches the slide to the slide's precision (or float32's, if coarser)."""
        if self.lecture is None:
            return None
        tolerance = 0.5 * 10.0**-self.decimals + 2 * np.finfo(np.float32).eps * abs(self.lecture)
        return bool(abs(self.float32 - self.lecture) <= tolerance)


def _first_step(path: np.ndarray, target: float, decimals: int) -> int:
    hits = np.flatnonzero(np.round(path, decimals) == target)
    return int(hits[0]) if hits.size else -1


def _network_gradients(dtype) -> dict:
    """The lecture's "?": the largest |∂MSE/∂W| of the step network on XOR, true step vs straight-through."""
    x, y = datasets.xor()
    x, y = x.astype(dtype), y.astype(dtype)
    rng = np.random.default_rng(0)  # the same weights in float32 and float64 (bias rows included)
    params = network.Params(jnp.asarray(rng.normal(size=(3, 4)), dtype), jnp.asarray(rng.normal(size=(5, 1)), dtype))
    largest = lambda ste: jax.tree_util.tree_map(
        lambda g: jnp.max(jnp.abs(g)), jax.grad(lambda p: network.mse(p, x, y, ste=ste))(params))
    true, ste = largest(None), largest("identity")
    return {"dW1_true": true.w1, "dW2_true": true.w2, "dW1_ste": ste.w1, "dW2_ste": ste.w2}


def _numbers(dtype) -> dict:
    """All computed values of the lecture, in ``dtype``."""
    f = lambda w: sextic(jnp.asarray(w, dtype))
    df = lambda w: jax.grad(sextic)(jnp.asarray(w, dtype))
    coarse, fine = grid_search(sextic, -2.0, 2.0, 0.01), grid_search(sextic, -2.0, 2.0, 0.001)
    w_star, f_star = stationary_point(sextic, jnp.asarray(1.0, dtype))
    blowup = gradient_descent(sextic, jnp.asarray(1.9, dtype), learning_rate=1.0, num_steps=4)
    slow = gradient_descent(sextic, jnp.asarray(1.9, dtype), learning_rate=0.01, num_steps=1000)
    at_076 = _first_step(np.asarray(slow.w), 0.76, 2)
    w_bowl = jnp.asarray([-8.0, 7.0], dtype)
    bowl_path = gradient_descent(bowl, w_bowl, learning_rate=0.1, num_steps=100)
    n = {
        "grid_w_0.01": coarse.w, "grid_y_0.01": coarse.loss,
        "grid_w_0.001": fine.w, "grid_y_0.001": fine.loss,
        "newton_w": w_star, "newton_y": f_star, "newton_grad": df(w_star),
        "quadratic_min": stationary_point(quadratic, jnp.asarray(3.0, dtype)).w,
        "y(1.9)": f(1.9), "f'(1.9)": df(1.9),
        "y(-23.76)": f(-23.76), "f'(-23.76)": df(-23.76),
        "y(1.64)": f(1.64), "f'(1.64)": df(1.64), "y(1.52)": f(1.52), "f'(1.52)": df(1.52),
        "slow_step_0.76": at_076,
        "y(0.76)": f(0.76), "f'(0.76)": df(0.76),
        "slow_w_0.76": slow.w[at_076], "slow_y_0.76": slow.loss[at_076], "slow_grad_0.76": slow.grad[at_076],
        "slow_step_grad_0.01": _first_step(np.asarray(slow.grad), 0.01, 2),
        "slow_final_w": slow.w[-1],
        "bowl_y": bowl(w_bowl), "bowl_d1": jax.grad(bowl)(w_bowl)[0], "bowl_d2": jax.grad(bowl)(w_bowl)[1],
        "bowl_gd_w1": bowl_path.w[-1, 0], "bowl_gd_w2": bowl_path.w[-1, 1],
    }
    n.update(_network_gradients(dtype))
    for t in range(1, 5):
        n[f"blowup_w{t}"], n[f"blowup_y{t}"] = blowup.w[t], blowup.loss[t]
    n["blowup_grad1"] = blowup.grad[1]
    for t in (1, 2):
        n[f"slow_w{t}"], n[f"slow_y{t}"], n[f"slow_grad{t}"] = slow.w[t], slow.loss[t], slow.grad[t]
    return {k: float(v) for k, v in n.items()}


def reproduce() -> list[Row]:
    """Recomputes the lecture and returns one :class:`Row` per number.

    Examples:
      >>> from jaxdescent.lecture import reproduce
      >>> rows = {r.quantity: r for r in reproduce()}
      >>> rows["grid w ∈ {−2, −1.99, …, 2}: argmin w"].float32
      0.75
    """
    a = _numbers(jnp.float32)
    with enable_x64(True):
        b = _numbers(jnp.float64)

    def row(quantity, key, lecture, decimals, note=""):
        return Row(quantity, lecture, a[key], b[key], decimals, note)

    rounded = "the slide evaluates at the rounded w = {}; at the exact iterate {:.4f} it is {:,.2f} (float64)"
    return [
        row("grid w ∈ {−2, −1.99, …, 2}: argmin w", "grid_w_0.01", 0.75, 2),
        row("grid w ∈ {−2, −1.99, …, 2}: y(argmin)", "grid_y_0.01", -0.439087, 6),
        row("grid w ∈ {−2, −1.999, …, 2}: argmin w", "grid_w_0.001", 0.755, 3),
        row("grid w ∈ {−2, −1.999, …, 2}: y(argmin)", "grid_y_0.001", -0.439118, 6),
        row("w⁵ + w − 1 = 0: root w* (Newton)", "newton_w", None, 6,
            "the slide's \"?\": no closed form; Newton on f′ with f″ from JAX"),
        row("f(w*)", "newton_y", None, 6, "what the finer grid approaches"),
        row("f′(w*)", "newton_grad", None, 6, "zero to working precision"),
        row("y = w² + 2w + 3: minimum w", "quadratic_min", -1.0, 6, "Newton from w = 3"),
        row("y(1.9)", "y(1.9)", 7.75, 2),
        row("f′(1.9)", "f'(1.9)", 25.66, 2),
        row("α = 1: iterate 1 (1.9 − 25.66)", "blowup_w1", -23.76, 2),
        row("α = 1: y(−23.76)", "y(-23.76)", 29986915, 0,
            rounded.format(-23.76, b["blowup_w1"], b["blowup_y1"])),
        row("α = 1: f′(−23.76)", "f'(-23.76)", -7572400, 0,
            "the slide drops the decimals; " + rounded.format(-23.76, b["blowup_w1"], b["blowup_grad1"])),
        row("α = 1: iterate 2", "blowup_w2", 7572376.24, 2,
            "the slide computes −23.76 + 7,572,400 from rounded values; exact arithmetic gives "
            f"{b['blowup_w2']:,.2f} (float64), float32 rounds f′ to {a['blowup_grad1']:,.0f}"),
        row("α = 1: y(iterate 2)", "blowup_y2", None, 0,
            "float32 overflows: w⁶/6 ≈ 3·10⁴⁰ > 3.4·10³⁸"),
        row("α = 1: iterate 3", "blowup_w3", None, 0, "still finite in float32: w⁵ ≈ 2.5·10³⁴"),
        row("α = 1: iterate 4", "blowup_w4", None, 0, "float32: w⁵ overflows and w is inf; float64 lasts one step longer"),
        row("α = 0.01: iterate 1 (1.9 − 0.01·25.66)", "slow_w1", 1.64, 2),
        row("α = 0.01: y(1.64)", "y(1.64)", 2.95, 2, rounded.format(1.64, b["slow_w1"], b["slow_y1"])),
        row("α = 0.01: f′(1.64)", "f'(1.64)", 12.50, 2, rounded.format(1.64, b["slow_w1"], b["slow_grad1"])),
        row("α = 0.01: iterate 2 (1.64 − 0.01·12.50)", "slow_w2", 1.52, 2,
            "the slide's 1.515 comes from the rounded 1.64; exact gives "
            f"{b['slow_w2']:.4f}, which also rounds to 1.52"),
        row("α = 0.01: y(1.52)", "y(1.52)", 1.69, 2, rounded.format(1.52, b["slow_w2"], b["slow_y2"])),
        row("α = 0.01: f′(1.52)", "f'(1.52)", 8.63, 2, rounded.format(1.52, b["slow_w2"], b["slow_grad2"])),
        row("α = 0.01: first step with w ≈ 0.76", "slow_step_0.76", None, 0,
            "the slide writes \"…\"; this is the step at which w rounds to 0.76"),
        row("α = 0.01: y(0.76)", "y(0.76)", -0.44, 2,
            f"at step {a['slow_step_0.76']:.0f} the exact iterate is {b['slow_w_0.76']:.4f}, y = {b['slow_y_0.76']:.4f}"),
        row("α = 0.01: f′(0.76)", "f'(0.76)", 0.01, 2,
            f"at step {a['slow_step_0.76']:.0f} f′ = {b['slow_grad_0.76']:.4f}; "
            f"f′ first rounds to 0.01 at step {a['slow_step_grad_0.01']:.0f}"),
        row("α = 0.01: w after 1000 steps", "slow_final_w", None, 6, "converges to w*"),
        row("bowl y(−8, 7)", "bowl_y", 177, 0),
        row("bowl ∂y/∂w₁(−8, 7)", "bowl_d1", -32, 0),
        row("bowl ∂y/∂w₂(−8, 7)", "bowl_d2", 14, 0),
        row("bowl: w₁ after 100 steps of α = 0.1", "bowl_gd_w1", 0.0, 6, "the minimum (0, 0) the slide finds by algebra"),
        row("bowl: w₂ after 100 steps of α = 0.1", "bowl_gd_w2", 0.0, 6),
        row("network on XOR: max |∂MSE/∂W₁|, true step", "dW1_true", None, 6,
            "the slide's \"?\": exactly 0, the step is flat wherever it has a derivative"),
        row("network on XOR: max |∂MSE/∂W₂|, true step", "dW2_true", None, 6, "so W := W − α·0 never moves"),
        row("network on XOR: max |∂MSE/∂W₁|, identity STE", "dW1_ste", None, 6,
            "straight-through: exact step forward, identity backward; now it learns"),
        row("network on XOR: max |∂MSE/∂W₂|, identity STE", "dW2_ste", None, 6),
    ]
