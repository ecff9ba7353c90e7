"""Step-network training throughput on digits: jaxdescent against PyTorch eager, and vmapped against sequential.

Digits (1437 × 64), 128 hidden, full batch, sigmoid surrogate slope 4, Adam lr 0.01.
Prints a table and writes it to ``--out``/network_throughput.md.

Run: python experiments/benchmarks/network_throughput.py [--steps 300] [--seeds 64] [--out DIR]
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdescent import datasets, network

HIDDEN, SLOPE, LR = 128, 4.0, 0.01


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def torch_steps_per_s(x, y, steps, threads):
    import torch

    torch.set_num_threads(threads)

    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return (v > 0).to(v.dtype)

        @staticmethod
        def backward(ctx, g):
            (v,) = ctx.saved_tensors
            z = SLOPE * v
            return g * SLOPE * torch.sigmoid(z) * torch.sigmoid(-z)

    x = torch.tensor(np.array(x))
    y = torch.tensor(np.array(y))
    x1 = torch.cat([x, torch.ones(x.shape[0], 1)], 1)
    w1 = (torch.randn(x.shape[1] + 1, HIDDEN) / np.sqrt(x.shape[1] + 1)).requires_grad_()
    w2 = (torch.randn(HIDDEN + 1, y.shape[1]) / np.sqrt(HIDDEN + 1)).requires_grad_()
    opt = torch.optim.Adam([w1, w2], lr=LR)
    ones = torch.ones(x.shape[0], 1)

    def run(n):
        for _ in range(n):
            opt.zero_grad()
            h = Step.apply(x1 @ w1)
            o = Step.apply(torch.cat([h, ones], 1) @ w2)
            loss = ((o - y) ** 2).sum() / x.shape[0]
            loss.backward()
            opt.step()

    run(10)
    t = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - t)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--out", default=os.path.join("experiments", "out", "benchmarks"))
    args = parser.parse_args(argv)
    threads = os.cpu_count()
    x, y, _, _ = datasets.digits()
    key = jax.random.key(0)
    keys = jax.random.split(key, args.seeds)
    tx = optax.adam(LR)
    settings = dict(n_hidden=HIDDEN, num_steps=args.steps, ste="sigmoid", stop_when_solved=False)
    slope = jnp.float32(SLOPE)

    t = time.perf_counter()
    compiled = network._train_one.lower(key, x, y, slope, tx=tx, **settings).compile()
    compile_s = time.perf_counter() - t
    one = best_of(lambda: compiled(key, x, y, slope))
    jax_rate = args.steps / one

    seq = best_of(lambda: [compiled(k, x, y, slope) for k in keys], repeats=1)
    grid = lambda **kw: network.train_many(keys, x, y, learning_rates=jnp.array([LR]), optimizer_factory=optax.adam,
                                          n_hidden=HIDDEN, num_steps=args.steps, ste="sigmoid", slope=SLOPE, **kw)
    t = time.perf_counter()
    jax.block_until_ready(grid())
    grid_first_s = time.perf_counter() - t
    vmapped = best_of(grid, repeats=2)
    jax.block_until_ready(grid(chunk_size=args.seeds))
    plain = best_of(lambda: grid(chunk_size=args.seeds), repeats=1)
    torch_rate = torch_steps_per_s(x, y, args.steps, threads)

    per_seed = lambda seconds: args.seeds * args.steps / seconds
    rows = [
        ("PyTorch eager (autograd.Function STE), 1 run", torch_rate, 1.0),
        ("jaxdescent train, 1 run", jax_rate, jax_rate / torch_rate),
        (f"jaxdescent train, {args.seeds} sequential runs (per run)", per_seed(seq), per_seed(seq) / torch_rate),
        (f"jaxdescent train_many, {args.seeds} seeds (per run)", per_seed(vmapped), per_seed(vmapped) / torch_rate),
        (f"train_many, all {args.seeds} seeds in one vmapped chunk (per run)", per_seed(plain), per_seed(plain) / torch_rate),
    ]
    lines = [f"# Step network throughput: digits 1437×64, {HIDDEN} hidden, full batch, Adam, {args.steps} steps, "
             f"{threads} CPU threads (jax {jax.__version__}, {jax.devices()[0].platform})", "",
             "| what | training steps/s | × PyTorch eager |", "|---|---|---|"]
    lines += [f"| {name} | {r:,.0f} | {ratio:.2f}× |" for name, r, ratio in rows]
    lines += ["", f"- train_many per run vs sequential per run: {seq / vmapped:.2f}×",
              f"- one-chunk vmap per run vs sequential per run: {seq / plain:.2f}×",
              f"- compile time of train (lower + compile): {compile_s:.2f} s",
              f"- first train_many call ({args.seeds} seeds, compile + run): {grid_first_s:.2f} s"]
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "network_throughput.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
