"""What compilation costs successive halving, and what compiling the later rungs ahead saves.

The search showcase's digits MLP (experiments/search_showcase.py: 64-64-10 tanh,
AdamW, minibatches of 128), successive halving with rungs 30/90/270/810 steps
and eta 3 on 252, 762 and 2296 Sobol points. Each cold search runs in a fresh
process (nothing compiled), once with the later rungs compiled in a background
thread while the first runs (what ``successive_halving`` does) and once with
them compiled one after another (``_stepwise._ahead`` replaced by a version
that compiles nothing ahead); then the same search again in that process, its
programs compiled. Also printed: the cores busy while the engine compiles one
rung's program (process CPU seconds over wall seconds).

Run: python experiments/benchmarks/halving_compile.py [--points 252 762 2296]
"""

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import time

ONE = r"""
import contextlib, concurrent.futures, sys, time
sys.path.insert(0, sys.argv[1])
import search_showcase as S
import jax, jaxdescent
from jaxdescent import _stepwise, sample

if sys.argv[2] == "one after another":
    @contextlib.contextmanager
    def nothing_ahead(compiles):  # every rung "compiled ahead" at once: each compiles when it is called
        done = [concurrent.futures.Future() for _ in compiles]
        for f in done:
            f.set_result(None)
        yield done
    _stepwise._ahead = nothing_ahead
init, advance, _ = S.make_stepwise(S.split_digits())
points = sample(S.SPACE, int(sys.argv[3]), method="sobol")
times = []
for _ in range(2):
    start = time.perf_counter()
    jaxdescent.successive_halving(init, advance, points, metric=S.METRIC, mode="max", min_steps=30, max_steps=810,
                                  eta=3, key=jax.random.key(0), progress=False)
    times.append(time.perf_counter() - start)
print(*times)
"""


def compile_cores():
    """Cores busy while the engine compiles one rung's program (762 points, 60 steps), from shapes alone."""
    import functools

    import jax
    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    import search_showcase as S

    from jaxdescent import _engine, _stepwise, sample

    init, advance, _ = S.make_stepwise(S.split_digits())
    points = sample(S.SPACE, 762, method="sobol")
    state = jax.eval_shape(lambda: init({k: np.float32(0) for k in points}, jax.random.key(0)))
    coords = [(k, jax.ShapeDtypeStruct((762,), v.dtype)) for k, v in points.items()]
    coords.append((_stepwise._STATE, jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct((762,) + s.shape, s.dtype),
                                                            state)))
    run = functools.partial(_stepwise._advance_run, init=init, advance=advance, num_steps=60)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    _engine.run_grid(run, _engine.Coords(coords, ["point"] * len(coords)), key=jax.random.key(0),
                     shared=np.int32(30), progress=False, compile_only=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[252, 762, 2296])
    args = parser.parse_args()
    experiments = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    print(f"{os.cpu_count()} CPU cores, load average before {os.getloadavg()[0]:.2f}")
    print(f"{'points':>7} {'compiled ahead':>15} {'one after another':>18} {'programs compiled':>18}")
    for n in args.points:
        cells = {}
        for how in ("ahead", "one after another"):
            out = subprocess.run([sys.executable, "-c", ONE, experiments, how, str(n)], check=True,
                                 capture_output=True, text=True).stdout.split()
            cells[how] = [float(x) for x in out]
        print(f"{n:>7} {cells['ahead'][0]:>14.2f}s {cells['one after another'][0]:>17.2f}s "
              f"{min(cells['ahead'][1], cells['one after another'][1]):>17.2f}s")
    with contextlib.redirect_stdout(sys.stderr):
        wall, cpu = compile_cores()
    print(f"one rung's program (762 points, 60 steps): compiled in {wall:.2f} s wall, {cpu:.2f} CPU s: "
          f"{cpu / wall:.2f} cores busy")


if __name__ == "__main__":
    main()
