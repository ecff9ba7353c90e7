"""Bifurcation diagrams of gradient descent with jaxdescent.bifurcation: the sextic's fold, the double well's cascade into chaos.

1. The lecture's sextic f(w) = w⁶/6 + w²/2 − w from near w*: the fixed point
   becomes a 2-cycle at α = 2/f″(w*) ≈ 0.7623, as linear stability predicts;
   the 2-cycle then ends in a fold (multiplier → +1) and the iterates escape.
   No cascade, no chaos.
2. The double well f(w) = (w² − 1)²/4, f′ = w³ − w, f″(1) = 2: the map
   w ↦ (1 + α)w − αw³ period-doubles at α = 1 = 2/f″(1), then 2 → 4 → 8 → 16
   → 32 → … into chaos, with periodic windows (period 3 among them), and
   escapes past α = 2 (where the critical value leaves the invariant interval:
   4(1 + α)³ = 27(2 + α)). Onsets are found on a fine grid, then bisected on
   the measured period in float64; the ratios of successive gaps approach
   Feigenbaum's δ = 4.669201….

Each learning rate's Lyapunov exponent (from the Jacobians 1 − αf″ along the
tail) is drawn under its diagram: negative on periodic orbits, 0 at each
bifurcation, positive in chaos.

Run: python experiments/bifurcation.py [--out DIR] [--quick] [--num-learning-rates N] [--num-steps N]
Writes DIR/bifurcation.png and DIR/bifurcation.md.
"""

import argparse
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # onsets to 1e-9 need float64; the sextic's part asks for float32

import numpy as np  # noqa: E402

from jaxdescent import bifurcation, critical_learning_rate, stationary_point  # noqa: E402
from jaxdescent.losses import sextic, sextic_hessian  # noqa: E402

FEIGENBAUM = 4.669201609


def well(w):
    return (w**2 - 1) ** 2 / 4


def first(lrs, mask):
    return float(lrs[np.argmax(mask)]) if np.any(mask) else float("nan")


def bisect(loss_fn, w0, low, high, is_low, *, num_steps, keep, iterations, **kw):
    """Shrinks brackets [low, high] (arrays) where is_low(period) holds at low and not at high; all at once."""
    low, high = np.array(low, np.float64), np.array(high, np.float64)
    for _ in range(iterations):
        mid = (low + high) / 2
        at_low = is_low(np.asarray(bifurcation(loss_fn, w0, mid, num_steps=num_steps, keep=keep, **kw).period))
        low, high = np.where(at_low, mid, low), np.where(at_low, high, mid)
    return low, high


def sextic_part(n, num_steps, lines):
    w_star = float(stationary_point(sextic, 1.0).w)
    predicted = float(critical_learning_rate(sextic, np.float32(w_star)))
    lrs = np.linspace(0.5, 1.1, n, dtype=np.float32)
    started = time.time()
    out = bifurcation(sextic, np.float32(w_star + 0.01), lrs, num_steps=num_steps, keep=200)
    period = np.asarray(out.period)
    seconds = time.time() - started
    rows = [
        ("2/f″(w*) (linear stability)", predicted),
        ("first α with period 2 (measured)", first(lrs, period == 2)),
        ("first α with period 4", first(lrs, period == 4)),
        ("first α with no period (chaos)", first(lrs, period == 0)),
        ("first α that escapes to inf/nan", first(lrs, period == -1)),
    ]
    if (period == 2).any():  # the 2-cycle's multiplier: a period doubling needs −1, a fold +1
        last = np.flatnonzero(period == 2)[-1]
        pair = np.asarray(out.tail[last, -2:], np.float64)
        multiplier = float(np.prod(1 - float(lrs[last]) * np.asarray(sextic_hessian(pair))))
        rows.append((f"2-cycle multiplier Π(1 − α f″) at α = {lrs[last]:.4f}, the last α with period 2", multiplier))
    lines += ["## The sextic f(w) = w⁶/6 + w²/2 − w", "",
              "| boundary | α |", "|---|---|", *(f"| {name} | {value:.4f} |" for name, value in rows), "",
              f"{n} learning rates in [{lrs[0]:g}, {lrs[-1]:g}], {num_steps} steps each from w* + 0.01, float32, "
              f"one bifurcation call: {seconds:.2f} s (compile included). The 2-cycle does not period-double: its "
              "multiplier stays inside (−1, 1) and it disappears in a fold, after which every start near w* "
              "escapes. No cascade, no chaos.", ""]
    return lrs, out


def double_well_part(n, num_steps, fine_steps, iterations, lines):
    lrs = np.linspace(0.5, 2.1, n)
    w0 = np.float64(1.1)
    kw = dict(keep=256, rtol=1e-7, atol=1e-9)
    started = time.time()
    out = bifurcation(well, w0, lrs, num_steps=num_steps, **kw)
    period, lyapunov = np.asarray(out.period), np.asarray(out.lyapunov)
    grid_seconds = time.time() - started

    started = time.time()
    cascade = [2, 4, 8, 16, 32]
    brackets = []
    for p in cascade:  # the first grid point with period p, after one with period p/2
        i = int(np.argmax(period == p))
        if period[i] == p and i > 0:
            brackets.append((p, lrs[i - 1], lrs[i]))
    found = [p for p, _, _ in brackets]
    low, high = bisect(well, w0, [b[1] for b in brackets], [b[2] for b in brackets],
                       lambda got: got == np.array([p // 2 for p in found]), num_steps=fine_steps,
                       iterations=iterations, **kw)
    bisected = (low + high) / 2
    # Just below an onset the old cycle's exponent (1/p)·log|multiplier| is a smooth function of α that reaches 0
    # at the onset: extrapolate it linearly from two points, which undoes the bias of slow convergence.
    h = 1e-3 * np.diff(np.r_[0.0, bisected])
    at_onset = np.asarray(bifurcation(well, w0, low, num_steps=fine_steps, **kw).lyapunov)
    before = np.asarray(bifurcation(well, w0, low - h, num_steps=fine_steps, **kw).lyapunov)
    onsets = dict(zip(found, low - at_onset * h / (at_onset - before)))

    chaos = lrs[(lyapunov > 1e-3) & (period != -1)]
    three = period == 3
    escape_low, escape_high = bisect(well, w0, [lrs[np.argmax(period == -1) - 1]], [first(lrs, period == -1)],
                                     lambda got: got != -1, num_steps=fine_steps, iterations=iterations, **kw)
    window = None
    if three.any():
        i = int(np.argmax(three))
        w_low, w_high = bisect(well, w0, [lrs[i - 1]], [lrs[i]], lambda got: got != 3, num_steps=fine_steps,
                               iterations=iterations, **kw)
        j = i + int(np.argmin(three[i:]))  # the window's first grid point without period 3
        window = ((w_low[0] + w_high[0]) / 2, lrs[j - 1], int(period[j]))
    bisect_seconds = time.time() - started

    lines += ["## The double well f(w) = (w² − 1)²/4: period doubling into chaos", "",
              "| period | onset α, bisected on the period | Lyapunov exponent there | onset α, exponent extrapolated "
              "to 0 | theory | gap to the previous onset | ratio of gaps (δ = 4.6692…) |", "|---|---|---|---|---|---|---|"]
    theory = {2: "1", 4: f"√5 − 1 = {np.sqrt(5) - 1:.9f}"}
    for k, p in enumerate(found):
        gap = onsets[p] - onsets[found[k - 1]] if k else float("nan")
        ratio = (onsets[found[k - 1]] - onsets[found[k - 2]]) / gap if k >= 2 else float("nan")
        lines.append(f"| {p} | {bisected[k]:.9f} | {at_onset[k]:.2e} | {onsets[p]:.9f} | {theory.get(p, '')} | "
                     f"{gap:.6g} | {ratio:.4f} |")
    lines += ["", f"Feigenbaum's δ = {FEIGENBAUM}. Theory: the fixed point 1 flips at 2/f″(1) = 1 (the exponent "
              "below it is log|2α − 1|); its 2-cycle {a, b} has a + b = ±√((3 + α)/α), ab = 1/α and multiplier "
              "(1 + α − 3αa²)(1 + α − 3αb²) = 9 − 2(1 + α)², which is −1 at α = √5 − 1. The bisection finds where the measured period changes; just below an "
              "onset the orbit converges slowly (multiplier near −1), so that point sits a little low. The "
              "extrapolated column removes this: the old cycle's exponent is extrapolated linearly to 0 from "
              "the bisected point and one 0.1% of a gap below it.", ""]
    if len(found) >= 3:
        d = onsets[found[-1]] - onsets[found[-2]]
        lines += ["| landmark | α |", "|---|---|",
                  f"| accumulation point (extrapolated: α_{found[-1]} + gap/(δ − 1)) | "
                  f"{onsets[found[-1]] + d / (FEIGENBAUM - 1):.6f} |"]
    else:
        lines += ["| landmark | α |", "|---|---|"]
    lines.append(f"| first α with Lyapunov exponent > 0 (grid) | {chaos.min() if chaos.size else float('nan'):.6f} |")
    if window:
        lines.append(f"| period-3 window opens (bisected; tangent bifurcation) | {window[0]:.9f} |")
        lines.append(f"| period-3 window: last grid α with period 3 (then period {window[2]}) | {window[1]:.6f} |")
    counts = {int(p): int(np.sum(period[lrs > onsets.get(32, 1.3)] == p)) for p in (3, 5, 6, 7, 9, 12)}
    lines.append("| grid points in windows past the cascade, by period | "
                 + ", ".join(f"{p}: {c}" for p, c in counts.items() if c) + " |")
    lines.append(f"| escape (bisected; predicted α = 2: 4(1 + α)³ = 27(2 + α)) | {(escape_low[0] + escape_high[0]) / 2:.6f} |")
    lines += ["", f"{n} learning rates in [0.5, 2.1], {num_steps} steps each from w = 1.1, float64, keep = 256, "
              f"period tolerance 1e-7·|w| + 1e-9: one bifurcation call, {grid_seconds:.2f} s (compile included). "
              f"Bisection: {iterations} halvings of every bracket at once with {fine_steps} steps per run, "
              f"{bisect_seconds:.1f} s.", ""]
    return lrs, out, onsets


def figure(out_dir, sextic_data, well_data, onsets):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 7), layout="constrained")
    axes = fig.subplots(2, 2, sharex="col", height_ratios=[3, 1.3])
    for col, (lrs, out, title) in enumerate([(*sextic_data, "sextic w⁶/6 + w²/2 − w (float32)"),
                                             (*well_data, "double well (w² − 1)²/4 (float64)")]):
        tail = np.asarray(out.tail)
        ok = np.isfinite(tail)
        x = np.broadcast_to(np.asarray(lrs)[:, None], tail.shape)
        axes[0, col].plot(x[ok], tail[ok], ",", color="k", alpha=0.35)
        axes[0, col].set(ylabel="last iterates of w", title=f"gradient descent on the {title}")
        lyap = np.asarray(out.lyapunov)
        axes[1, col].plot(lrs, np.maximum(lyap, -3), lw=0.6, color="C0")
        axes[1, col].axhline(0, color="k", lw=0.6)
        axes[1, col].set(xlabel="learning rate α", ylabel="Lyapunov exponent", ylim=(-3, 1.5))
        escaped = np.asarray(out.period) == -1
        if escaped.any():
            for ax in axes[:, col]:
                ax.axvspan(lrs[np.argmax(escaped)], lrs[-1], color="C3", alpha=0.12)
    for p, a in onsets.items():
        axes[0, 1].axvline(a, color="C2", lw=0.5, ls=":")
    axes[0, 1].set_xlim(0.9, 2.1)
    fig.savefig(out_dir / "bifurcation.png", dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/out/bifurcation")
    ap.add_argument("--quick", action="store_true", help="coarse grids, few steps: a smoke test")
    ap.add_argument("--num-learning-rates", type=int, default=None)
    ap.add_argument("--num-steps", type=int, default=None)
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = args.num_learning_rates or (800 if args.quick else 8000)
    num_steps = args.num_steps or (4000 if args.quick else 20_000)
    started = time.time()
    lines = ["# Bifurcation diagrams of gradient descent", ""]
    sextic_data = sextic_part(n, num_steps, lines)
    well_lrs, well_out, onsets = double_well_part(n, num_steps, 20_000 if args.quick else 400_000,
                                                  24 if args.quick else 36, lines)
    figure(out_dir, sextic_data, (well_lrs, well_out), onsets)
    lines.append(f"Total time {time.time() - started:.1f} s on {jax.devices()[0].platform}.")
    (out_dir / "bifurcation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out_dir}/bifurcation.png")


if __name__ == "__main__":
    main()
