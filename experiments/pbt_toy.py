"""The toy example of population-based training (Jaderberg et al. 2017, arXiv:1711.09846, fig. 2), four ways.

Maximise Q(θ) = 1.2 − ‖θ‖² over θ ∈ ℝ² while only the surrogate
Q̂(θ|h) = 1.2 − (h₀θ₀² + h₁θ₁²) can be climbed: gradient ascent on Q̂ with step
size 0.01 (an assumption: the paper does not print it; public
reimplementations use 0.01), from θ = (0.9, 0.9), two members with
h = (1, 0) and (0, 1). Every 4 steps the members are ranked by the true Q
(which the toy can read out); with exploit the worse member copies θ and h of
the better one; with explore h is perturbed by N(0, 0.1²) noise per entry
(for the member that copied; explore only: every member, alone). 50 rounds,
200 steps.

* PBT (exploit and explore): ``jaxdescent.pbt``, all 50 rounds one program;
* exploit only: ``pbt`` with ``explore`` the identity;
* explore only: ``pbt`` on each member alone (a population of one copies itself);
* grid search: each h trained alone, ``sweep_fn`` over ``jaxdescent.stepwise``.

Run: python experiments/pbt_toy.py [--out DIR] [--quick]
Writes DIR/pbt_toy.md (final Q per variant over several keys) and DIR/pbt_toy.png (Q over steps).
"""

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxdescent

LEARNING_RATE, STEPS_PER_ROUND, NUM_ROUNDS, NOISE = 0.01, 4, 50, 0.1
POINTS = {"h0": np.array([1.0, 0.0], np.float32), "h1": np.array([0.0, 1.0], np.float32)}


def init(hp, key):
    return jnp.full(2, 0.9, jnp.float32)


def advance(hp, theta, key, num_steps):
    h = jnp.stack([hp["h0"], hp["h1"]])
    theta = lax.fori_loop(0, num_steps, lambda i, t: t + LEARNING_RATE * (-2 * h * t), theta)  # ascent on Q̂(θ|h)
    return theta, {"Q": 1.2 - jnp.sum(theta**2)}


def perturb(hp, key):
    noise = NOISE * jax.random.normal(key, (2,))
    return {"h0": hp["h0"] + noise[0], "h1": hp["h1"] + noise[1]}


def keep(hp, key):
    return hp


def curves(key) -> dict:
    """The best member's Q after each round (every 4 steps), for each variant; and PBT's history."""
    settings = dict(metric="Q", steps_per_round=STEPS_PER_ROUND, num_rounds=NUM_ROUNDS, quantile=0.5, key=key)
    full = jaxdescent.pbt(init, advance, POINTS, explore=perturb, **settings)
    exploit = jaxdescent.pbt(init, advance, POINTS, explore=keep, **settings)
    alone = [jaxdescent.pbt(init, advance, {k: v[i:i + 1] for k, v in POINTS.items()}, explore=perturb, **settings)
             for i in range(2)]
    grid = jaxdescent.sweep_fn(jaxdescent.stepwise(init, advance, num_steps=STEPS_PER_ROUND * NUM_ROUNDS,
                                                   every=STEPS_PER_ROUND), POINTS, product=False, key=key)
    return {
        "PBT (exploit + explore)": full.history.metric.max(axis=1),
        "exploit only": exploit.history.metric.max(axis=1),
        "explore only": np.max([r.history.metric[:, 0] for r in alone], axis=0),
        "grid search (each h alone)": np.asarray(grid.metrics.curve["Q"]).max(axis=0),
    }, full.history


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/out/pbt_toy")
    ap.add_argument("--quick", action="store_true", help="3 keys instead of 20: a smoke test")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    keys = range(3 if args.quick else 20)
    runs = [curves(jax.random.key(k)) for k in keys]
    lines = [f"Final Q after {STEPS_PER_ROUND * NUM_ROUNDS} steps (the optimum is 1.2), best member, over "
             f"{len(runs)} keys:", "", "| variant | key 0 | median | worst |", "|---|---|---|---|"]
    for name in runs[0][0]:
        final = np.array([c[name][-1] for c, _ in runs])
        lines.append(f"| {name} | {final[0]:.4f} | {np.median(final):.4f} | {final.min():.4f} |")
    table = "\n".join(lines) + "\n"
    (out_dir / "pbt_toy.md").write_text(table)
    print(table)

    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    ax, hx = fig.subplots(1, 2)
    steps = STEPS_PER_ROUND * np.arange(NUM_ROUNDS + 1)
    start = 1.2 - 2 * 0.9**2
    for (name, curve), style in zip(runs[0][0].items(), ("-", "--", "-", ":")):  # exploit only = the grid: dashed
        ax.plot(steps, np.concatenate([[start], curve]), style, label=name, lw=2 if style == "--" else 1.5)
    ax.axhline(1.2, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="steps", ylabel="Q(θ) of the best member", title="PBT toy (Jaderberg et al. 2017, fig. 2), key 0",
           ylim=(-0.6, 1.3))
    ax.legend(loc="lower right", fontsize=8)
    history = runs[0][1]
    for m in range(2):
        hx.plot(history.hp["h0"][:, m], history.hp["h1"][:, m], ".-", ms=3, label=f"member {m}")
    hx.set(xlabel="h₀", ylabel="h₁", title="PBT's hyperparameters, round by round")
    hx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "pbt_toy.png", dpi=110)
    print(f"wrote {out_dir}/pbt_toy.png")


if __name__ == "__main__":
    main()
