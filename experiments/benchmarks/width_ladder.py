"""The width ladder: sweep_fn's default chunk on one model at hidden widths 16 → 512, against the code a user
would write, to show that the default has no cliff (goal: sweep_fn within 0.9 of the faster of the two at
every width).

The model is engine_overhead.py's minibatch MLP (64→hidden→10, tanh, AdamW on a warmup-cosine schedule,
minibatches of 128 drawn each step, a validation curve), 16 Sobol points × 8 seeds. At each width, side by
side in one process, compiled beforehand, best of ``--repeats`` interleaved rounds:

  sweep_fn     the library's defaults (its chunk is reported);
  jit(vmap)    a hand-written jax.jit(vmap(points) of vmap(seeds)), one call for every run;
  loop         a Python loop over jax.jit(fn), one run per call (extrapolated past ``--loop-budget`` s);
  best chunk   sweep_fn with each power-of-two chunk from 1 to the run count, the fastest (``--chunks``).

    python experiments/benchmarks/width_ladder.py                  # the table, JSON and the figure in out/
    python experiments/benchmarks/width_ladder.py --widths 16,512 --quick
"""

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_overhead as eo  # noqa: E402

from jaxdescent import _engine  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
WIDTHS = (16, 32, 64, 128, 168, 176, 256, 512)


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def loop_seconds(w, budget):
    single = eo.calls(w)["loop"]
    jax.block_until_ready(single(0))  # compiled
    order = np.random.default_rng(0).permutation(len(w.seed_index))
    start, done = time.perf_counter(), 0
    for r in order:
        jax.block_until_ready(single(int(r)))
        done += 1
        if time.perf_counter() - start > budget:
            break
    return (time.perf_counter() - start) * len(order) / done


def one_width(hidden, args):
    fn, axes, opts = eo.minibatch_mlp(points=args.points, seeds=args.seeds, steps=args.steps, eval_every=10,
                                      hidden=hidden)
    names, values, seed_index, shape = eo.expand(axes, opts["product"], opts["seeds"])
    w = eo.Workload("minibatch_mlp", {}, fn, axes, opts["product"], opts["seeds"], names, values, seed_index, shape,
                    jax.random.key(0))
    calls = eo.calls(w)
    num_runs = len(seed_index)
    default = calls["sweep_fn"]
    jax.block_until_ready(default())
    jax.block_until_ready(calls["jit(vmap)"]())
    row = {"hidden": hidden, "runs": num_runs, "chunk": _engine.default_chunk(
        _engine.Static(fn), _engine.Coords([*axes.items(), ("seed", np.arange(args.seeds, dtype=np.int32))],
                                           ["point"] * len(axes) + ["seed"]))}
    row["sweep_fn"] = min(best_of(default, 1) for _ in range(args.repeats))
    row["jit(vmap)"] = best_of(calls["jit(vmap)"], args.repeats)
    row["loop"] = loop_seconds(w, args.loop_budget)
    if args.chunks:
        chunks = {}
        for c in [2 ** i for i in range(num_runs.bit_length()) if 2 ** i <= num_runs]:
            f = lambda c=c: calls["sweep_fn"](chunk_size=c)
            jax.block_until_ready(f())
            chunks[c] = best_of(f, args.repeats)
        row["chunks"] = chunks
        row["best chunk"] = min(chunks, key=chunks.get)
    row["ratio"] = min(row["jit(vmap)"], row["loop"]) / row["sweep_fn"]
    return row


def figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    widths = [r["hidden"] for r in rows]
    ax.plot(widths, [r["ratio"] for r in rows], "o-", label="faster of jit(vmap), loop / sweep_fn")
    if "chunks" in rows[0]:
        ax.plot(widths, [min(r["jit(vmap)"], r["loop"]) / min(r["chunks"].values()) for r in rows], "s--",
                label="same, sweep_fn at its best chunk")
    ax.axhline(0.9, color="gray", lw=0.8, ls=":")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden width")
    ax.set_ylabel("speed ratio (> 1: sweep_fn faster)")
    ax.set_title(f"minibatch AdamW MLP, {rows[0]['runs']} runs, steady state")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    p.add_argument("--points", type=int, default=16)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--loop-budget", type=float, default=5.0)
    p.add_argument("--chunks", action="store_true", help="also time every power-of-two chunk")
    p.add_argument("--quick", action="store_true", help="4 points x 2 seeds, 20 steps, 1 repeat")
    args = p.parse_args(argv)
    if args.quick:
        args.points, args.seeds, args.steps, args.repeats, args.loop_budget = 4, 2, 20, 1, 1.0
    rows = []
    print(f"{'hidden':>6} {'chunk':>5} {'sweep_fn s':>10} {'jit(vmap) s':>11} {'loop s':>8} {'ratio':>6} best chunk")
    for hidden in map(int, args.widths.split(",")):
        r = one_width(hidden, args)
        rows.append(r)
        print(f"{hidden:>6} {r['chunk']:>5} {r['sweep_fn']:>10.3f} {r['jit(vmap)']:>11.3f} {r['loop']:>8.3f} "
              f"{r['ratio']:>6.2f} {r.get('best chunk', '')}", flush=True)
    OUT.mkdir(exist_ok=True)
    stem = OUT / ("width_ladder_quick" if args.quick else "width_ladder")
    stem.with_suffix(".json").write_text(json.dumps({"cpu": eo.cpu_model(), "rows": rows}, indent=1))
    figure(rows, stem.with_suffix(".png"))
    print(f"worst ratio {min(r['ratio'] for r in rows):.2f}; {stem}.json, {stem}.png")


if __name__ == "__main__":
    main()
