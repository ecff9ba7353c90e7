"""A hyperparameter sweep as one compiled program: the step network on digits, minibatch Adam.

Learning rate × sigmoid-surrogate slope × Adam's b1 × seeds, every run a whole
minibatch training, all of them in ONE :func:`jaxdescent.sweep_fn` call. The
training is an ordinary pure function ``train_minibatch(hp, key)`` written
here, not a jaxdescent feature: that is the point. Seeds change the initial
weights and the minibatch order (both drawn from the run's key).

Writes ``heatmap.png`` (median test accuracy over seeds, learning rate × slope,
a panel per b1) and ``table.md`` (one row per setting, best first) to ``--out``
(default experiments/out/hyperparameter_sweep) and prints the table, the wall
time (XLA compile and the rest separately) and the number of runs.

Needs the extras pandas, matplotlib and scikit-learn (for the digits).

Run: python experiments/hyperparameter_sweep.py [--out DIR] [--quick] [--seeds 16] [--steps 3000]
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import jaxdescent
from jaxdescent import datasets, network

COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")


def make_train_minibatch(x_train, y_train, x_test, y_test, *, n_hidden, batch_size, num_steps):
    """``train_minibatch(hp, key)``: one training of the step network with minibatch Adam, as a pure function.

    ``hp`` holds traced scalars ``learning_rate``, ``slope`` and ``b1``. The
    data are closed over (constants of the compiled program); the sizes are
    Python ints, fixed for the whole sweep.
    """
    n_examples, n_in = x_train.shape
    n_out = y_train.shape[1]
    test_labels = jnp.argmax(y_test, axis=1)
    train_labels = jnp.argmax(y_train, axis=1)

    def train_minibatch(hp, key):
        init_key, data_key = jax.random.split(key)
        params = network.init_params(init_key, n_in, n_hidden, n_out)
        tx = optax.adam(hp["learning_rate"], b1=hp["b1"])

        def loss(p, xb, yb):  # the lecture's MSE through the step, sigmoid surrogate in the backward pass
            return network.mse(p, xb, yb, ste="sigmoid", slope=hp["slope"])

        def body(carry, t):
            params, opt_state = carry
            # Minibatch t: indices drawn with replacement, from a key that depends only on (run key, t).
            idx = jax.random.randint(jax.random.fold_in(data_key, t), (batch_size,), 0, n_examples)
            grad = jax.grad(loss)(params, x_train[idx], y_train[idx])
            updates, opt_state = tx.update(grad, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = lax.scan(body, (params, tx.init(params)), jnp.arange(num_steps, dtype=jnp.int32))
        return {
            "train_mse": network.mse(params, x_train, y_train),  # the loss value does not depend on the STE
            "train_accuracy": jnp.mean(network.predict(params, x_train) == train_labels),
            "test_accuracy": jnp.mean(network.predict(params, x_test) == test_labels),
        }

    return train_minibatch


def summarise(frame):
    """One row per (learning_rate, slope, b1): test accuracy median/min/max over seeds, best median first."""
    table = (frame.groupby(["learning_rate", "slope", "b1"])
             .agg(median=("test_accuracy", "median"), min=("test_accuracy", "min"), max=("test_accuracy", "max"),
                  train_median=("train_accuracy", "median"), mse_median=("train_mse", "median"))
             .reset_index()
             .sort_values(["median", "min"], ascending=False, kind="stable"))
    return table


def markdown(table):
    lines = [("| learning_rate | slope | b1 | test acc. median | test acc. min | test acc. max | "
              "train acc. median | train MSE median |"),
             "|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.learning_rate:g} | {row.slope:g} | {row.b1:g} | {row.median:.4f} | {row.min:.4f} | "
                     f"{row.max:.4f} | {row.train_median:.4f} | {row.mse_median:.4f} |")
    return lines


def heatmap(table, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b1s = sorted(table["b1"].unique())
    # One colour scale for all panels, stretched over the medians found: the differences are a few points.
    low, high = 100 * table["median"].min(), 100 * table["median"].max()
    low, high = (low - 0.5, high + 0.5) if high - low < 1 else (low, high)
    fig, axes = plt.subplots(1, len(b1s), figsize=(3.6 * len(b1s) + 1.2, 3.6), squeeze=False)
    for ax, b1 in zip(axes[0], b1s):
        grid = table[table["b1"] == b1].pivot(index="slope", columns="learning_rate", values="median")
        grid = grid.sort_index().sort_index(axis=1)
        image = ax.imshow(100 * grid.to_numpy(), origin="lower", cmap="viridis", vmin=low, vmax=high, aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                value = 100 * grid.iloc[i, j]
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=9,
                        color="black" if value > (low + high) / 2 else "white")
        ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
        ax.set_xlabel("Adam learning rate")
        ax.set_ylabel("sigmoid surrogate slope")
        ax.set_title(f"b1 = {b1:g}")
    fig.colorbar(image, ax=axes[0].tolist(), label="median test accuracy over seeds (%)")
    fig.suptitle(title, fontsize=10, y=1.03)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def floats(text):
    return [float(v) for v in text.split(",")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("experiments", "out", "hyperparameter_sweep"))
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 × 2 × 1 settings, 2 seeds, 100 steps")
    parser.add_argument("--learning-rates", type=floats, default=[0.003, 0.01, 0.03], help="comma-separated")
    parser.add_argument("--slopes", type=floats, default=[1.0, 2.0, 4.0], help="comma-separated")
    parser.add_argument("--b1", type=floats, default=[0.5, 0.9], help="Adam's b1 values, comma-separated")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3000, help="minibatch updates per run")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.quick:
        args.learning_rates, args.slopes, args.b1, args.seeds, args.steps = [0.01, 0.03], [1.0, 2.0], [0.9], 2, 100

    x_train, y_train, x_test, y_test = datasets.digits()
    train_minibatch = make_train_minibatch(x_train, y_train, x_test, y_test, n_hidden=args.hidden,
                                           batch_size=args.batch_size, num_steps=args.steps)
    axes = {"learning_rate": np.array(args.learning_rates, np.float32), "slope": np.array(args.slopes, np.float32),
            "b1": np.array(args.b1, np.float32)}

    # JAX's monitoring events time the tracing, lowering and XLA compilation inside the one call; the rest is
    # running. Besides the sweep's program, XLA compiles a few tiny array-moving ops; the largest is the sweep.
    compile_s, programs = [], []

    recording = [True]  # jax.monitoring can't remove a listener on every supported JAX: it stops recording

    def listener(name, duration, fun_name="?", **kwargs):
        if not recording[0]:
            return
        if name in COMPILE_EVENTS:
            compile_s.append(duration)
        if name == COMPILE_EVENTS[-1]:
            programs.append((duration, fun_name))

    key = jax.random.key(0)
    jax.monitoring.register_event_duration_secs_listener(listener)
    start = time.perf_counter()
    runs = jaxdescent.sweep_fn(train_minibatch, axes, seeds=args.seeds, key=key)
    jax.block_until_ready(runs.metrics)
    wall_s = time.perf_counter() - start
    recording[0] = False
    largest_s, largest = max(programs)

    frame = runs.to_pandas()
    table = summarise(frame)
    num_runs = len(frame)
    settings = (f"digits (1437 train / 360 test), step network {x_train.shape[1]}-{args.hidden}-{y_train.shape[1]}, "
                f"sigmoid STE, minibatch Adam (batch {args.batch_size}, {args.steps} steps), "
                f"{args.seeds} seeds per setting")
    timing = (f"{num_runs} runs ({' × '.join(f'{len(v)} {k}' for k, v in axes.items())} × {args.seeds} seeds) in one "
              f"sweep_fn call: {wall_s:.1f} s wall, of which {sum(compile_s):.1f} s tracing and XLA compilation, "
              f"{wall_s - sum(compile_s):.1f} s running; XLA compiled the sweep program {largest} in {largest_s:.1f} s"
              + (f" and {len(programs) - 1} tiny array move(s)" if len(programs) > 1 else "")
              + f" ({jax.default_backend()}, {len(jax.devices())} device(s))")
    lines = ["# Hyperparameter sweep: the step network on digits", "", settings, "",
             f"Test accuracy over seeds per setting, best median first (axes {runs.axes}):", "",
             *markdown(table), "", timing, ""]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("\n".join(lines))
    heatmap(table, os.path.join(args.out, "heatmap.png"),
            f"Step network on digits, minibatch Adam, {args.steps} steps, median of {args.seeds} seeds")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
