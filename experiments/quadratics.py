"""The classical check on quadratics f(w) = ½wᵀAw: stability boundary 2/λ_max and the best step 2/(λ_min + λ_max), measured by sweeps.

For A = Q diag(λ) Qᵀ (Q a random rotation, 20 eigenvalues spaced geometrically
from λ_min = 1 to λ_max = κ), gradient descent multiplies the error along
eigenvector i by 1 − αλ_i each step. Theory: it converges iff α < 2/λ_max;
the per-step contraction max_i |1 − αλ_i| is smallest at α* = 2/(λ_min + λ_max),
where it is (κ − 1)/(κ + 1).

Measured, each by one ``jaxdescent.sweep`` over α (float64):
1. the boundary: the largest α on a grid of 2000 in [0.95, 1.05]·2/λ_max whose
   loss still falls between steps 2000 and 4000 (only the slowest mode is left
   by then; comparing with the start instead would let a slowly growing λ_max
   mode hide behind the others' decay); and ``critical_learning_rate``
   (2 / the Lanczos sharpness) beside it;
2. the rate: for 2000 α in [0.5, 1.5]·α*, (L_N / L_{N/2})^{1/N} from the recorded
   losses (the loss falls by the rate squared per step); its argmin and the rate at α*.

Run: python experiments/quadratics.py [--out DIR] [--quick]
Writes DIR/quadratics.md and DIR/quadratics.png.
"""

import argparse
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxdescent import critical_learning_rate, sweep  # noqa: E402


def quadratic(kappa, n=20, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eigenvalues = np.geomspace(1.0, kappa, n)
    a = jnp.asarray((q * eigenvalues) @ q.T)
    return (lambda w: 0.5 * w @ a @ w), eigenvalues, rng.normal(size=n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/out/quadratics")
    ap.add_argument("--quick", action="store_true", help="coarser grids: a smoke test")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    kappas = [10.0, 100.0] if args.quick else [10.0, 100.0, 1000.0]
    num_lrs = 200 if args.quick else 2000  # even: the grid straddles 2/λ_max and α* without holding them
    started = time.time()
    lines = ["# Quadratics: theory against sweeps", "",
             f"f(w) = ½wᵀAw, 20 eigenvalues geometric in [1, κ], random rotation, float64; {num_lrs} learning "
             "rates per sweep.", "",
             "| κ | 2/λ_max | measured boundary: last α that contracts – first that does not | 2/sharpness (Lanczos) | α* = 2/(λ_min + λ_max) | "
             "best α measured | (κ − 1)/(κ + 1) | rate measured at α* |", "|---|---|---|---|---|---|---|---|"]
    curves = []
    for kappa in kappas:
        loss_fn, eigenvalues, w0 = quadratic(kappa)
        lam_min, lam_max = eigenvalues[0], eigenvalues[-1]
        edge = 2 / lam_max
        lrs = np.linspace(0.95, 1.05, num_lrs) * edge
        out = sweep(loss_fn, w0=w0[None], learning_rate=lrs, num_steps=4000, record_every=2000)
        history = np.asarray(out.loss_history[:, 0])  # losses at 0, 2000, 4000: by then only λ_max's mode is left
        shrinks = history[:, 2] < history[:, 1]
        boundary = (lrs[shrinks].max(), lrs[~shrinks].min())
        crit = float(critical_learning_rate(loss_fn, jnp.asarray(w0)))

        best = 2 / (lam_min + lam_max)
        theory = (kappa - 1) / (kappa + 1)
        num_steps = 2 * int(np.ceil(np.log(1e-150) / np.log(theory) / 4))  # the loss falls by ~1e-150 at α*
        lrs_rate = np.linspace(0.5, 1.5, num_lrs) * best
        out = sweep(loss_fn, w0=w0[None], learning_rate=lrs_rate, num_steps=num_steps, record_every=num_steps // 2)
        history = np.asarray(out.loss_history[:, 0])  # losses at 0, N/2, N
        rate = (history[:, 2] / history[:, 1]) ** (1 / num_steps)
        history_best = np.asarray(sweep(loss_fn, w0=w0[None], learning_rate=np.array([best]), num_steps=num_steps,
                                        record_every=num_steps // 2).loss_history[0, 0])
        at_best = (history_best[2] / history_best[1]) ** (1 / num_steps)
        curves.append((kappa, lrs_rate / best, rate, theory))
        lines.append(f"| {kappa:g} | {edge:.7g} | {boundary[0]:.7g} – {boundary[1]:.7g} | {crit:.7g} | {best:.6g} | "
                     f"{lrs_rate[np.nanargmin(rate)]:.6g} (grid step {lrs_rate[1] - lrs_rate[0]:.1g}) | {theory:.6f} | "
                     f"{at_best:.6f} |")
    lines += ["", "The measured boundary: the largest grid α whose loss still falls between steps 2000 and 4000, and the next grid point, whose loss grows. "
              "The rate is measured from the loss between steps N/2 and N (N chosen so that the loss falls by ~1e-150 at α*).",
              "", f"Time: {time.time() - started:.1f} s on {jax.devices()[0].platform}.", ""]
    table = "\n".join(lines)
    (out_dir / "quadratics.md").write_text(table)
    print(table)

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for k, (kappa, x, rate, theory) in enumerate(curves):
        ax.plot(x, rate, color=f"C{k}", lw=1.2, label=f"κ = {kappa:g}: measured")
        ax.axhline(theory, color=f"C{k}", ls="--", lw=0.8)
    ax.axvline(1, color="k", lw=0.6)
    ax.set(xlabel="α / α*,  α* = 2/(λ_min + λ_max)", ylabel="contraction per step",
           title="gradient descent on ½wᵀAw: rate against α (dashed: (κ − 1)/(κ + 1))")
    ax.legend()
    fig.savefig(out_dir / "quadratics.png", dpi=110)
    print(f"wrote {out_dir}/quadratics.png")


if __name__ == "__main__":
    main()
