"""Sweep throughput, side by side: Python loop, NumPy, PyTorch, jaxdescent and a C reference kernel.

The sextic f(w) = w⁶/6 + w²/2 − w, learning rates ``logspace(-4, 0, n_lr)`` ×
start points ``linspace(-2, 2, n_w0)`` (default 1000 × 1000 = 10⁶ runs), 1000
steps, float32. Every method does the same work per update: the loss and the
gradient, the divergence check (non-finite loss or |w| > 1e10) and the
convergence check (|f′| < 1e-4), recording the first step of each, then
w := w − α·f′(w). Slow methods run a subset of the runs and are extrapolated
(linear in runs; the table says so).

The C kernel is the practical hardware limit: blocks of 64 runs vectorised by
the compiler, steps innermost, OpenMP over blocks, compiled here with
``cc -O3 -march=native -fopenmp`` (skipped with a message without a compiler).

jaxdescent runs on JAX's default backend (CPU, GPU or TPU). On CPU the script
asks for the fast path (``jaxdescent.use_fast_cpu_flags()``) before JAX
starts unless ``--default-xla-flags`` is given, and can split the CPU into
``--host-devices`` XLA devices to shard runs over.

    python experiments/benchmarks/sweep_throughput.py            # the full 10⁶ × 1000 benchmark
    python experiments/benchmarks/sweep_throughput.py --small    # seconds, for a smoke test

The table is printed and written to ``--out`` (default experiments/benchmarks/out/).
"""

import argparse
import ctypes
import functools
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

BOUND, TOL = 1e10, 1e-4

C_SOURCE = r"""
#include <math.h>
#include <float.h>
#include <stdint.h>
#define B 64
void sweep_ref(const float *lr_of_run, const float *w0_of_run, long n, int steps, float bound, float tol2,
               float *final_w, float *final_loss, int32_t *div_step, int32_t *conv_step) {
  #pragma omp parallel for schedule(static)
  for (long b = 0; b < n; b += B) {
    float w[B], lr[B]; int32_t ds[B], cs[B];
    long m = n - b < B ? n - b : B;
    for (int j = 0; j < B; j++) {
      long r = b + (j < m ? j : 0);
      w[j] = w0_of_run[r]; lr[j] = lr_of_run[r]; ds[j] = -1; cs[j] = -1;
    }
    for (int t = 0; t <= steps; t++) {
      #pragma omp simd
      for (int j = 0; j < B; j++) {
        float x = w[j], x2 = x * x, x4 = x2 * x2;
        float loss = x4 * x2 / 6.0f + x2 / 2.0f - x;
        float g = x4 * x + x - 1.0f;
        int bad = !(fabsf(x) <= bound) | !(fabsf(loss) <= FLT_MAX);
        ds[j] = ((ds[j] < 0) & bad) ? t : ds[j];
        cs[j] = ((cs[j] < 0) & (g * g < tol2)) ? t : cs[j];
        w[j] = t < steps ? x - lr[j] * g : x;
      }
    }
    for (int j = 0; j < m; j++) {
      float x = w[j], x2 = x * x;
      final_w[b + j] = x; final_loss[b + j] = x2 * x2 * x2 / 6.0f + x2 / 2.0f - x;
      div_step[b + j] = ds[j]; conv_step[b + j] = cs[j];
    }
  }
}
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-lr", type=int, default=1000, help="learning rates (rows)")
    parser.add_argument("--n-w0", type=int, default=1000, help="start points (columns)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--small", action="store_true", help="100 × 1000 runs × 1000 steps and small subsets")
    parser.add_argument("--python-runs", type=int, default=20, help="runs timed in the plain Python loop")
    parser.add_argument("--numpy-runs", type=int, default=100_000, help="runs timed in NumPy (0: all)")
    parser.add_argument("--torch-runs", type=int, default=100_000, help="runs timed in PyTorch (0: all)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch.set_num_threads; 1 by default: on a busy 2-core host more threads spin badly")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="jaxdescent's chunk_size (default: the library's per-platform default)")
    parser.add_argument("--host-devices", type=int, default=1,
                        help="on CPU, split the host into this many XLA devices (the sweep shards over them)")
    parser.add_argument("--default-xla-flags", action="store_true",
                        help="do not call jaxdescent.use_fast_cpu_flags() (to measure the default path)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the best is reported")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).parent / "out")
    args = parser.parse_args()
    if args.small:
        args.n_lr, args.python_runs, args.numpy_runs, args.torch_runs = 100, 5, 20_000, 20_000
    return args


ARGS = parse_args()
# XLA reads its flags once, when JAX creates a backend: set them before anything touches jax arrays.
import jaxdescent  # noqa: E402  (imports jax without starting a backend)

if ARGS.host_devices > 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={ARGS.host_devices}")
if not ARGS.default_xla_flags:
    jaxdescent.use_fast_cpu_flags()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxdescent import _sweep  # noqa: E402
from jaxdescent.losses import sextic  # noqa: E402


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def grid(args):
    lr = np.logspace(-4, 0, args.n_lr).astype(np.float32)
    w0 = np.linspace(-2, 2, args.n_w0).astype(np.float32)
    return lr, w0, np.repeat(lr, args.n_w0), np.tile(w0, args.n_lr)


def python_loop(lrs, w0s, steps):
    """Plain Python floats (float64), one run at a time, the same checks."""
    out = []
    for lr, w in zip(lrs.tolist(), w0s.tolist()):
        diverged = converged = -1
        for t in range(steps + 1):
            try:
                loss = w**6 / 6 + w**2 / 2 - w
            except OverflowError:
                loss = float("inf")
            g = w**5 + w - 1 if abs(w) < 1e60 else float("inf")
            if diverged < 0 and not (abs(w) <= BOUND and abs(loss) < float("inf")):
                diverged = t
            if converged < 0 and g * g < TOL * TOL:
                converged = t
            if t < steps:
                w = w - lr * g
        out.append((w, diverged, converged))
    return out


def numpy_vectorised(lrs, w0s, steps):
    lr, w = lrs.astype(np.float32), w0s.astype(np.float32).copy()
    diverged = np.full(w.shape, -1, np.int32)
    converged = np.full(w.shape, -1, np.int32)
    bound, tol2 = np.float32(BOUND), np.float32(TOL * TOL)
    with np.errstate(all="ignore"):
        for t in range(steps + 1):
            w2 = w * w
            w4 = w2 * w2
            loss = w4 * w2 / np.float32(6) + w2 / np.float32(2) - w
            g = w4 * w + w - np.float32(1)
            bad = ~(np.abs(w) <= bound) | ~np.isfinite(loss)
            diverged[(diverged < 0) & bad] = t
            converged[(converged < 0) & (g * g < tol2)] = t
            if t < steps:
                w = w - lr * g
    return w, diverged, converged


def torch_eager(torch, lrs, w0s, steps):
    lr, w = torch.from_numpy(lrs.astype(np.float32)), torch.from_numpy(w0s.astype(np.float32))
    diverged = torch.full(w.shape, -1, dtype=torch.int32)
    converged = torch.full(w.shape, -1, dtype=torch.int32)
    with torch.no_grad():
        for t in range(steps + 1):
            w2 = w * w
            w4 = w2 * w2
            loss = w4 * w2 / 6 + w2 / 2 - w
            g = w4 * w + w - 1
            bad = ~(w.abs() <= BOUND) | ~torch.isfinite(loss)
            diverged = torch.where((diverged < 0) & bad, t, diverged)
            converged = torch.where((converged < 0) & (g * g < TOL * TOL), t, converged)
            if t < steps:
                w = w - lr * g
    return w, diverged, converged


def build_c(workdir):
    cc = shutil.which("cc")
    if cc is None:
        return None, "no C compiler `cc` on PATH"
    src, lib = workdir / "sweep_ref.c", workdir / "sweep_ref.so"
    src.write_text(C_SOURCE)
    cmd = [cc, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", str(src), "-o", str(lib)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"`{' '.join(cmd)}` failed: {done.stderr.strip()[:300]}"
    c = ctypes.CDLL(str(lib))
    c.sweep_ref.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_long, ctypes.c_int, ctypes.c_float,
                                                    ctypes.c_float] + [ctypes.c_void_p] * 4
    return c, None


def run_c(c, lrs, w0s, steps):
    n = lrs.size
    outs = [np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.int32), np.empty(n, np.int32)]
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)
    c.sweep_ref(ptr(lrs), ptr(w0s), n, steps, BOUND, TOL * TOL, *map(ptr, outs))
    return outs


def main(args):
    lr, w0, lrs, w0s = grid(args)
    runs, steps = lrs.size, args.steps
    updates = runs * steps
    rows = []  # (method, runs timed, seconds for all runs, note)
    messages = []

    def subset(n):
        n = runs if n <= 0 or n > runs else n
        pick = np.linspace(0, runs - 1, n).astype(np.int64)  # spread over the grid: mixed divergence
        return n, lrs[pick], w0s[pick]

    n, a, b = subset(args.python_runs)
    rows.append(("Python loop (float64)", n, best_time(lambda: python_loop(a, b, steps), 1) * runs / n))
    n, a, b = subset(args.numpy_runs)
    rows.append(("NumPy vectorised", n, best_time(lambda: numpy_vectorised(a, b, steps), 1) * runs / n))
    try:
        import torch
    except ImportError:
        messages.append("PyTorch: skipped (not installed)")
    else:
        torch.set_num_threads(args.torch_threads)
        n, a, b = subset(args.torch_runs)
        t = best_time(lambda: torch_eager(torch, a, b, steps), 1) * runs / n
        rows.append((f"PyTorch {torch.__version__} eager, CPU ({torch.get_num_threads()} threads)", n, t))

    # jaxdescent: the first call traces and compiles; monitoring events give the compile part.
    compile_s = []
    events = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def listener(name, duration, **kwargs):
        if name in events:
            compile_s.append(duration)

    def run_jax():
        result = jaxdescent.sweep(sextic, w0=w0, learning_rate=lr, num_steps=steps,
                                        chunk_size=args.chunk_size)
        return jax.block_until_ready(result)

    # The same grid through the general engine, jaxdescent.sweep_fn, with sweep's own run function and
    # settings. Wrapped in a new function so that it compiles its own program rather than reusing sweep's
    # (an equal functools.partial would hit sweep's compilation cache): the row then times sweep_fn's whole
    # path (its checks, eval_shape, labels) on a program of its own.
    one_run = functools.partial(_sweep._run, loss_fn=sextic, optimizer=None, hyperparams=(), num_steps=steps,
                                record_every=0, divergence_bound=_sweep.DIVERGENCE_BOUND, grad_tol=_sweep.GRAD_TOL)

    def gd_run(hp, key):
        return one_run(hp, key)

    def run_sweep_fn():
        runs = jaxdescent.sweep_fn(gd_run, {"learning_rate": lr, "w0": w0}, chunk_size=args.chunk_size)
        return jax.block_until_ready(runs.metrics)

    jax.monitoring.register_event_duration_secs_listener(listener)
    start = time.perf_counter()
    result = run_jax()
    first_s = time.perf_counter() - start
    sweep_compile_s, compile_s[:] = sum(compile_s), []
    start = time.perf_counter()
    fn_result = run_sweep_fn()
    fn_first_s = time.perf_counter() - start
    jax.monitoring.unregister_event_duration_listener(listener)
    fn_compile_s, compile_s[:] = sum(compile_s), [sweep_compile_s]
    devices = jax.devices()
    same = all(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) for a, b in
               [(result.final_w, fn_result.final_w), (result.diverged_step, fn_result.diverged_step),
                (result.converged_step, fn_result.converged_step)])
    messages.append(f"check: sweep_fn and sweep results bit-identical (final_w, diverged_step, converged_step): {same}")

    c_s = None
    jax_row = len(rows)
    with tempfile.TemporaryDirectory() as tmp:
        c, why = build_c(pathlib.Path(tmp))
        timed = [run_jax, run_sweep_fn]
        if c is None:
            messages.append(f"C reference: skipped ({why})")
        else:
            timed.append(lambda: run_c(c, lrs, w0s, steps))
        # Interleaved, best of each: a busy host slows whichever runs during the noise. sweep and sweep_fn swap
        # places every repeat, so neither always runs right after the C kernel (whose OpenMP threads spin on).
        def repeat(i):
            order = ([0, 1] if i % 2 == 0 else [1, 0]) + list(range(2, len(timed)))
            seconds = {k: best_time(timed[k], 1) for k in order}
            return tuple(seconds[k] for k in range(len(timed)))

        timings = [repeat(i) for i in range(args.repeats)]
        jax_s, fn_s = min(t[0] for t in timings), min(t[1] for t in timings)
        messages.append(f"jaxdescent.sweep_fn / sweep time: {fn_s / jax_s:.3f} (best of each); per repeat: "
                        + ", ".join(f"{t[1] / t[0]:.2f}" for t in timings))
        if c is not None:
            c_s = min(t[2] for t in timings)
            threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
            rows.append((f"C -O3 -march=native -fopenmp ({threads} threads)", runs, c_s))
            messages.append("jaxdescent / C time per repeat: "
                            + ", ".join(f"{t[0] / t[2]:.2f}" for t in timings))
            _, _, c_div, c_conv = run_c(c, lrs, w0s, steps)
            same_div = np.mean(np.asarray(result.diverged_step).ravel() == c_div)
            same_conv = np.mean(np.abs(np.asarray(result.converged_step).ravel() - c_conv) <= 1)
            messages.append(f"check: jaxdescent vs C diverged_step equal in {same_div:.4%} of runs, "
                            f"converged_step within 1 step in {same_conv:.4%}")

    rows.insert(jax_row, (f"jaxdescent ({devices[0].platform}, {len(devices)} device(s))", runs, jax_s))
    rows.insert(jax_row + 1, ("jaxdescent.sweep_fn, sweep's run function", runs, fn_s))
    lines = [
        f"sweep throughput: sextic, {args.n_lr} learning rates x {args.n_w0} start points = {runs} runs, "
        f"{steps} steps, float32",
        f"jax {jax.__version__}, backend {jax.default_backend()}, devices {[str(d) for d in devices]}, "
        f"device kind {devices[0].device_kind!r}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
        f"chunk_size {args.chunk_size or 'default'}",
        "",
        f"{'method':<52} {'runs timed':>10} {'seconds':>9} {'updates/s':>10} {'x C time':>9}",
    ]
    for method, n, seconds in rows:
        ratio = f"{seconds / c_s:9.2f}" if c_s else f"{'-':>9}"
        extrapolated = "*" if n < runs else " "
        lines.append(f"{method:<52} {n:>10} {seconds:>8.3f}{extrapolated} {updates / seconds:>10.3g} {ratio}")
    lines += [
        "* timed on a subset of the runs (spread over the grid) and extrapolated linearly to all runs",
        f"jaxdescent compile (trace + lower + XLA compile): {sum(compile_s):.3f} s; "
        f"first call including compile and transfers: {first_s:.3f} s; "
        f"sweep_fn: compile {fn_compile_s:.3f} s, first call {fn_first_s:.3f} s",
        *messages,
    ]
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sweep_throughput_{jax.default_backend()}.txt"
    path.write_text(table + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main(ARGS)
