"""What compilation costs successive halving: the programs a search compiles, and their seconds, for 1 and 5 rungs.

The search showcase's digits MLP (experiments/search_showcase.py: 64-64-10 tanh,
AdamW, minibatches of 128), successive halving with eta 3 on 252 and 762 Sobol
points: one rung of 30 steps, and five rungs of 30/90/270/810/2430 steps. Each
search runs cold in a fresh process (nothing compiled); printed are the XLA
programs it compiled, their compilation seconds (JAX's backend compile events,
through ``jax.monitoring``), the search's wall seconds and its wall seconds run
again in that process (its programs compiled).

A rung's steps are traced, so the rungs add no program of their own; the
programs that remain come from the engine (one per number of runs in a rung
while its program depends on the grid's size, not on the chunk alone).

Run: python experiments/benchmarks/halving_compile.py [--points 252 762]
"""

import argparse
import os
import subprocess
import sys

ONE = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import search_showcase as S
import jax, jaxdescent
from jaxdescent import count_compilations, sample

seconds = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, duration, **kw: seconds.append(duration) if name == "/jax/core/compile/backend_compile_duration"
    else None)
init, advance, _ = S.make_stepwise(S.split_digits())
points = sample(S.SPACE, int(sys.argv[2]), method="sobol")
max_steps = int(sys.argv[3])
times = []
for _ in range(2):
    start = time.perf_counter()
    with count_compilations() as c:
        found = jaxdescent.successive_halving(init, advance, points, metric=S.METRIC, mode="max", min_steps=30,
                                              max_steps=max_steps, eta=3, key=jax.random.key(0), progress=False)
    times.append(time.perf_counter() - start)
    if len(times) == 1:
        programs, compile_seconds = c.count, sum(seconds)
print(len(found.budgets), programs, compile_seconds, *times)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[252, 762])
    args = parser.parse_args()
    experiments = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    print(f"{os.cpu_count()} CPU cores, load average before {os.getloadavg()[0]:.2f}")
    print(f"{'points':>7} {'rungs':>6} {'programs compiled':>18} {'compile s':>10} {'wall s':>8} {'wall s, compiled':>17}")
    for n in args.points:
        for max_steps in (30, 2430):  # one rung; 30, 90, 270, 810 and 2430 steps
            out = subprocess.run([sys.executable, "-c", ONE, experiments, str(n), str(max_steps)], check=True,
                                 capture_output=True, text=True).stdout.split()
            rungs, programs = int(out[0]), int(out[1])
            compile_s, wall, again = (float(x) for x in out[2:])
            print(f"{n:>7} {rungs:>6} {programs:>18} {compile_s:>10.2f} {wall:>8.2f} {again:>17.2f}")


if __name__ == "__main__":
    main()
