"""The bifurcation diagram of gradient descent on the sextic: convergence, period doubling, chaos, escape.

For 10⁴ learning rates the map w ↦ w − α f′(w) is iterated from near w* and the
last 200 iterates are kept, all learning rates vmapped in one compiled call.
Linear stability predicts the first period doubling at α = 2/f″(w*) ≈ 0.7623.

Run: python experiments/bifurcation.py [--out DIR] [--num-learning-rates N]
Writes DIR/bifurcation.png and DIR/bifurcation.md.
"""

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxdescent import critical_learning_rate, gradient_descent, stationary_point
from jaxdescent.losses import sextic


def tails(learning_rates, w0, *, num_steps, keep):
    """The last ``keep`` iterates of a ``num_steps`` run per learning rate, vmapped."""
    run = lambda lr: gradient_descent(sextic, w0, learning_rate=lr, num_steps=num_steps).w[-keep:]
    return jax.jit(jax.vmap(run))(learning_rates)


def period(tail, tol=1e-4):
    """Smallest p <= 64 with tail[t] ≈ tail[t + p] over the tail; 0 for none (chaos), −1 if escaped."""
    if not np.all(np.isfinite(tail)):
        return -1
    for p in range(1, 65):
        if np.max(np.abs(tail[p:] - tail[:-p])) < tol:
            return p
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/out/bifurcation")
    ap.add_argument("--num-learning-rates", type=int, default=10_000)
    ap.add_argument("--num-steps", type=int, default=4000)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    w_star = float(stationary_point(sextic, 1.0).w)
    predicted = float(critical_learning_rate(sextic, w_star))
    lrs = np.linspace(0.5, 1.1, args.num_learning_rates, dtype=np.float32)
    started = time.time()
    t = np.asarray(tails(jnp.asarray(lrs), np.float32(w_star + 0.01), num_steps=args.num_steps, keep=200))
    seconds = time.time() - started
    periods = np.array([period(row) for row in t])

    first = lambda mask: float(lrs[np.argmax(mask)]) if mask.any() else float("nan")
    rows = [
        ("2/f″(w*) (linear stability)", predicted),
        ("first α with period 2 (measured)", first(periods == 2)),
        ("first α with period 4", first(periods == 4)),
        ("first α with no period <= 64 (chaos)", first(periods == 0)),
        ("first α that escapes to inf/nan", first(periods == -1)),
    ]
    table = "| boundary | α |\n|---|---|\n" + "\n".join(f"| {name} | {value:.4f} |" for name, value in rows)
    table += (f"\n\n{len(lrs)} learning rates in [{lrs[0]:g}, {lrs[-1]:g}], {args.num_steps} steps each from "
              f"w* + 0.01, float32, one vmapped call: {seconds:.1f} s (compile included).\n")
    (out / "bifurcation.md").write_text(table)
    print(table)

    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    finite = np.isfinite(t)
    x = np.broadcast_to(lrs[:, None], t.shape)
    ax.plot(x[finite], t[finite], ",", color="k", alpha=0.4)
    ax.axvline(predicted, color="C0", ls="--", label=f"2/f″(w*) = {predicted:.4f}")
    escape = rows[-1][1]
    if np.isfinite(escape):
        ax.axvspan(escape, lrs[-1], color="C3", alpha=0.15, label=f"escapes to inf (α >= {escape:.3f})")
    ax.axhline(w_star, color="0.6", lw=0.8, label=f"w* = {w_star:.4f}")
    ax.set(xlabel="learning rate α", ylabel="last 200 iterates of w",
           title="gradient descent on f(w) = w⁶/6 + w²/2 − w: bifurcation diagram")
    ax.legend(loc="lower left")
    fig.savefig(out / "bifurcation.png", dpi=130)
    print(f"wrote {out}/bifurcation.png")


if __name__ == "__main__":
    main()
