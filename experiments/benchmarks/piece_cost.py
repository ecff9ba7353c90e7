"""Pieces that cost nothing: sweep_fn's time with small pieces (``piece_runs`` below the chunk, below a call per
core) against its default pieces, on engine_overhead.py's minibatch MLP (64 hidden units, 16 points × 8 seeds)
and the sextic (4096 runs), in memory and with ``out=``. Steady state (compiled before), best of 3.

    python experiments/benchmarks/piece_cost.py
"""

import sys
import tempfile
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_overhead as eo  # noqa: E402
from width_ladder import best_of as best  # noqa: E402

from jaxdescent import sweep_fn  # noqa: E402


def main():
    workloads = {"minibatch_mlp": eo.minibatch_mlp(points=16, seeds=8, steps=50, eval_every=10),
                 "sextic": eo.sextic(n_lr=64, n_w0=64, steps=1000)}
    print(f"{'workload':<14} {'piece_runs':>10} {'in memory s':>11} {'out= s':>8} {'vs default':>10}")
    for name, (fn, axes, opts) in workloads.items():
        rows = {}
        for piece_runs in (None, 64, 16, 4):
            run = lambda out=None: sweep_fn(fn, axes, progress=False, piece_runs=piece_runs, out=out, **opts).metrics
            jax.block_until_ready(run())
            memory = best(run, 3)
            saved = best(lambda: run(tempfile.mkdtemp()), 3)  # a fresh folder each time: every piece computed and saved
            rows[piece_runs] = (memory, saved)
            base = rows[None][0]
            print(f"{name:<14} {str(piece_runs or 'default'):>10} {memory:>11.3f} {saved:>8.3f} {memory / base:>10.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
