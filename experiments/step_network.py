"""The lecture's step network: the "?" gradient, then XOR, parity and digits trained through an STE.

Writes figures (PNG) and ``table.md`` to ``--out`` (default experiments/out/step_network).

Run: python experiments/step_network.py [--out DIR] [--seeds 256] [--quick] [--digits-only]
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdescent import datasets
from jaxdescent.network import forward, init_params, mse, predict, train_many


def rate(history):
    return float(np.mean(np.asarray(history.solved_step) >= 0))


def zero_gradient(lines):
    x, y = datasets.xor()
    params = init_params(jax.random.key(0), 2, 4, 1)
    true = jax.grad(mse)(params, x, y, ste=None)
    ste = jax.grad(mse)(params, x, y, ste="identity")
    lines += ["## The lecture's \"?\": dMSE/dW with the true step", "",
              "| parameter | max abs gradient, true step | max abs gradient, identity STE |", "|---|---|---|"]
    for name in ("w1", "w2"):
        lines.append(f"| {name} | {float(jnp.abs(getattr(true, name)).max()):.1f} | "
                     f"{float(jnp.abs(getattr(ste, name)).max()):.3g} |")
    lines.append("")


def xor_study(keys, steps, lines, plt, out):
    lines += ["## XOR (Adam, lr 0.03, sigmoid surrogate slope 1)", "",
              "| inputs | hidden | seeds | steps | solved (O_out == Y) |", "|---|---|---|---|---|"]
    rows = {}
    for signed, hidden in [(False, 2), (False, 4), (False, 8), (True, 2), (True, 4)]:
        x, y = datasets.xor(signed)
        for ste in ("identity", "clipped", "sigmoid"):
            _, h = train_many(keys, x, y, learning_rates=jnp.array([0.03]), optimizer_factory=optax.adam,
                              n_hidden=hidden, num_steps=steps, ste=ste)
            rows[(signed, hidden, ste)] = rate(h)
        lines.append(f"| {'±1' if signed else '0/1'} | {hidden} | {len(keys)} | {steps} | "
                     f"{100 * rows[(signed, hidden, 'sigmoid')]:.1f}% |")
    lines += ["", "Other estimators, same settings: " + "; ".join(
        f"{'±1' if s else '0/1'} h={hd} {e}: {100 * r:.1f}%" for (s, hd, e), r in rows.items() if e != "sigmoid"), ""]
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{'±1' if s else '0/1'}, {hd} hidden" for s, hd in [(False, 2), (False, 4), (False, 8), (True, 2), (True, 4)]]
    for i, ste in enumerate(("identity", "clipped", "sigmoid")):
        vals = [100 * rows[(s, hd, ste)] for s, hd in [(False, 2), (False, 4), (False, 8), (True, 2), (True, 4)]]
        ax.bar(np.arange(5) + (i - 1) * 0.27, vals, width=0.27, label=f"STE {ste}")
    ax.set_xticks(np.arange(5), labels)
    ax.set_ylabel(f"seeds solved in {steps} steps (%)")
    ax.set_title(f"XOR, Adam lr 0.03, {len(keys)} seeds")
    ax.set_ylim(0, 118)
    ax.legend(loc="upper center", ncol=3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "xor_success.png"), dpi=120)
    plt.close(fig)


def dead_fraction(params, x):
    """Hidden units whose output is the same for every input pattern (they carry nothing)."""
    h = jax.vmap(jax.vmap(lambda p: (jnp.concatenate([x, jnp.ones((x.shape[0], 1))], 1) @ p.w1) > 0))(params)
    return float(jnp.mean(jnp.all(h, axis=-2) | jnp.all(~h, axis=-2)))


def parity_study(keys, steps, lines, plt, out, quick):
    lines += ["## Parity (±1 inputs, Adam, lr 0.01)", "",
              "| bits | hidden | ste | slope | seeds | steps | solved ever | solved at the end | dead hidden units |",
              "|---|---|---|---|---|---|---|---|---|"]
    cases = [(6, 12, "sigmoid", 4.0), (6, 12, "identity", 1.0), (6, 12, "clipped", 1.0), (8, 32, "sigmoid", 4.0),
             (8, 32, "identity", 1.0)]
    if quick:
        cases = cases[:2]
    unsolve = None
    for bits, hidden, ste, slope in cases:
        x, y = datasets.parity(bits)
        p, h = train_many(keys, x, y, learning_rates=jnp.array([0.01]), optimizer_factory=optax.adam,
                          n_hidden=hidden, num_steps=steps, ste=ste, slope=slope)
        end = float(np.mean(np.asarray(h.exact[..., -1]) == 1))
        lines.append(f"| {bits} | {hidden} | {ste} | {slope:g} | {len(keys)} | {steps} | {100 * rate(h):.1f}% | "
                     f"{100 * end:.1f}% | {100 * dead_fraction(p, x):.0f}% |")
        if bits == 6 and ste == "sigmoid":
            unsolve = h
    slopes = [1.0, 2.0, 4.0, 8.0, 16.0]
    x, y = datasets.parity(6)
    lrs = jnp.array([0.003, 0.01, 0.03])
    grid = np.zeros((len(slopes), len(lrs)))
    un = []
    for i, slope in enumerate(slopes):
        _, h = train_many(keys, x, y, learning_rates=lrs, optimizer_factory=optax.adam, n_hidden=12,
                          num_steps=steps, ste="sigmoid", slope=slope)
        grid[i] = np.mean(np.asarray(h.solved_step) >= 0, axis=1)
        solved = np.asarray(h.solved_step) >= 0
        un.append(np.sum(solved & (np.asarray(h.exact[..., -1]) < 1)) / max(1, solved.sum()))
    lines += ["", "6-bit parity, 12 hidden, sigmoid surrogate: seeds solved (%) by slope × Adam learning rate", "",
              "| slope | " + " | ".join(f"lr {float(r):g}" for r in lrs) + " | solved, then un-solved at the end |",
              "|---|" + "---|" * (len(lrs) + 1)]
    for i, slope in enumerate(slopes):
        lines.append(f"| {slope:g} | " + " | ".join(f"{100 * v:.1f}" for v in grid[i]) + f" | {100 * un[i]:.1f}% |")
    lines.append("")
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, r in enumerate(lrs):
        ax.plot(slopes, 100 * grid[:, j], "o-", label=f"Adam lr {float(r):g}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sigmoid surrogate slope")
    ax.set_ylabel(f"seeds solved in {steps} steps (%)")
    ax.set_title(f"6-bit parity, 12 hidden, {len(keys)} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "parity_slope.png"), dpi=120)
    plt.close(fig)
    # Adam un-solving: a seed that was solved and is not at the end.
    s = np.asarray(unsolve.solved_step[0])
    lost = np.flatnonzero((s >= 0) & (np.asarray(unsolve.exact[0, :, -1]) < 1))
    fig, ax = plt.subplots(figsize=(6, 4))
    for i in lost[:3]:
        ax.plot(np.asarray(unsolve.exact[0, i]) * 100, label=f"seed {i} (first solved at step {s[i]})")
    ax.set_xlabel("step")
    ax.set_ylabel("training patterns exactly right (%)")
    ax.set_title("6-bit parity, Adam: solved, then un-solved" if len(lost) else "6-bit parity: no seed un-solved")
    if len(lost):
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "parity_unsolve.png"), dpi=120)
    plt.close(fig)
    lines += [f"Adam un-solving (6-bit, slope 4): {len(lost)} of {int((s >= 0).sum())} solved seeds are not solved at "
              "the end of training; the first solved step is recorded in history.solved_step "
              "(train(..., stop_when_solved=True) freezes the net there).", ""]


def baseline(keys, x_train, y_train, x_test, y_test, *, hidden, steps, lr):
    """relu hidden, sigmoid output, the same MSE, trained normally with Adam, vmapped over seeds."""
    tx = optax.adam(lr)
    x1 = jnp.concatenate([x_train, jnp.ones((x_train.shape[0], 1))], 1)

    def net(p, x1):
        h = jax.nn.relu(x1 @ p.w1)
        return jax.nn.sigmoid(jnp.concatenate([h, jnp.ones((h.shape[0], 1))], 1) @ p.w2)

    def one(key):
        p = init_params(key, x_train.shape[1], hidden, y_train.shape[1])
        loss = lambda p: jnp.sum((net(p, x1) - y_train) ** 2) / x1.shape[0]

        def body(c, _):
            p, s = c
            u, s = tx.update(jax.grad(loss)(p), s, p)
            return (optax.apply_updates(p, u), s), None

        p, _ = jax.lax.scan(body, (p, tx.init(p)), length=steps)[0]
        xt1 = jnp.concatenate([x_test, jnp.ones((x_test.shape[0], 1))], 1)
        return jnp.mean(jnp.argmax(net(p, xt1), 1) == jnp.argmax(y_test, 1))

    return np.asarray(jax.jit(jax.vmap(one))(keys))


def digits_study(keys, steps, lines, plt, out, quick):
    try:
        x_train, y_train, x_test, y_test = datasets.digits()
    except ImportError as e:
        lines += ["## Digits", "", f"skipped: {e}", ""]
        return
    # Slope 2 rather than the 4 that suits parity: chosen on a validation split
    # carved from the training images (16 seeds, not these keys), where slope 4
    # reached 91.4% mean (some seeds collapsing), slope 2 95.7% (min 95.1%),
    # slope 8 56% (cosine-decayed rate); a cosine-decayed rate did not beat a constant 0.01.
    hidden, slope, lr = 128, 2.0, 0.01
    test = jax.jit(jax.vmap(jax.vmap(lambda p: (jnp.mean(predict(p, x_test) == jnp.argmax(y_test, 1)),
                                                   jnp.mean(jnp.all(forward(p, x_test) == y_test, 1)),
                                                   jnp.mean(jnp.all(forward(p, x_test) == 0, 1))))))
    t = time.perf_counter()
    p, h = train_many(keys, x_train, y_train, learning_rates=jnp.array([lr]), optimizer_factory=optax.adam,
                      n_hidden=hidden, num_steps=steps, ste="sigmoid", slope=slope)
    acc, exact, zero = (np.asarray(a)[0] for a in test(p))
    seconds = time.perf_counter() - t
    base = baseline(keys, x_train, y_train, x_test, y_test, hidden=hidden, steps=steps, lr=lr)
    lines += [f"## Digits (scikit-learn 8×8, 1437 train / 360 test, {hidden} hidden, full batch, Adam lr {lr:g})", "",
              "| network | seeds | steps | test accuracy mean (min–max) | test exact match of O_out | train accuracy |",
              "|---|---|---|---|---|---|",
              f"| step in both layers, sigmoid STE slope {slope:g} | {len(keys)} | {steps} | {100 * acc.mean():.2f}% "
              f"({100 * acc.min():.1f}–{100 * acc.max():.1f}) | {100 * exact.mean():.2f}% | "
              f"{100 * float(np.mean(h.accuracy[..., -1])):.2f}% |",
              f"| relu hidden, sigmoid output, same MSE | {len(keys)} | {steps} | {100 * base.mean():.2f}% "
              f"({100 * base.min():.1f}–{100 * base.max():.1f}) | — | — |", "",
              f"(step network training time for {len(keys)} seeds: {seconds:.0f} s; slope and learning rate were "
              "picked on a validation split of the training images, never on the test set)", ""]
    lrs = jnp.array([0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
    few = keys[: min(16, len(keys))]
    p, _ = train_many(few, x_train, y_train, learning_rates=lrs, optimizer_factory=optax.adam, n_hidden=hidden,
                      num_steps=steps, ste="sigmoid", slope=slope)
    acc, _, zero = (np.asarray(a) for a in test(p))
    lines += [f"Too high a learning rate collapses digits ({len(few)} seeds, sigmoid slope {slope:g}, Adam):", "",
              "| lr | test accuracy | test outputs all zero |", "|---|---|---|"]
    lines += [f"| {float(r):g} | {100 * acc[i].mean():.1f}% | {100 * zero[i].mean():.1f}% |" for i, r in enumerate(lrs)]
    lines.append("")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, 100 * acc.mean(1), "o-", label="test accuracy (argmax O_in)")
    ax.plot(lrs, 100 * zero.mean(1), "s--", label="test outputs O_out all zero")
    ax.set_xscale("log")
    ax.set_xlabel("Adam learning rate")
    ax.set_ylabel("% of test images")
    ax.set_title(f"Digits, step network, {hidden} hidden, sigmoid slope {slope:g}, {steps} steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "digits_learning_rate.png"), dpi=120)
    plt.close(fig)


def loss_curves(keys, steps, plt, out):
    x, y = datasets.xor()
    fig, ax = plt.subplots(figsize=(6, 4))
    for ste in (None, "identity", "sigmoid"):
        _, h = train_many(keys[:64], x, y, learning_rates=jnp.array([0.03]), optimizer_factory=optax.adam,
                          n_hidden=4, num_steps=steps, ste=ste)
        ax.plot(np.asarray(h.loss[0]).mean(0), label=f"ste={ste!r}" + (" (true gradient: 0)" if ste is None else ""))
    ax.set_xlabel("step")
    ax.set_ylabel("MSE, mean over 64 seeds")
    ax.set_title("XOR 0/1, 4 hidden, Adam lr 0.03")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "xor_loss.png"), dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("experiments", "out", "step_network"))
    parser.add_argument("--seeds", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: few seeds and steps")
    parser.add_argument("--digits-only", action="store_true", help="run only the digits study")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(args.out, exist_ok=True)
    seeds = 8 if args.quick else args.seeds
    keys = jax.random.split(jax.random.key(0), seeds)
    steps = 100 if args.quick else 2000
    lines = ["# The step network", ""]
    if not args.digits_only:
        zero_gradient(lines)
        xor_study(keys, steps, lines, plt, args.out)
        loss_curves(keys, min(steps, 500), plt, args.out)
        parity_study(keys, steps, lines, plt, args.out, args.quick)
    digits_study(keys[: min(seeds, 4)] if args.quick else keys, 30 if args.quick else 1000, lines, plt, args.out,
                 args.quick)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
