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

jaxdescent runs on JAX's default backend (CPU, GPU or TPU), by default as a
user gets it: a fresh process that imports jaxdescent (which sets the
compiled-loop flag before JAX starts) and calls ``sweep``, which on CPU runs
one program per core from as many threads. ``--jax-first`` starts JAX before
the import (no flag), ``--fast`` adds ``jaxdescent.use_fast_cpu_flags()``,
and ``--host-devices`` splits the CPU into that many XLA devices.

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
               float *final_w, float *final_loss, int32_t *div_step, int32_t *conv_step, int threads) {
  #pragma omp parallel for schedule(static) num_threads(threads)
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

/* The practical limit: register-blocked AVX-512. A block is 4 vectors of 16 runs that stay in zmm registers
   for all the steps (w, lr, first diverged step, first converged step: 16 registers), so a step is pure
   arithmetic with no loads or stores, and 4 independent vectors hide the FMA latency of the step's dependency
   chain. The same arithmetic as sweep_ref, and the same checks: a step is "bad" when the loss is not finite
   or !(|w| <= bound); the first step is kept with an unsigned min (-1 is the largest unsigned value). */
#ifdef __AVX512F__
#include <immintrin.h>
#define V 4
int have_limit(void) { return 1; }
void sweep_limit(const float *lr_of_run, const float *w0_of_run, long n, int steps, float bound, float tol2,
                 float *final_w, float *final_loss, int32_t *div_step, int32_t *conv_step, int threads) {
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (long b = 0; b < n; b += 16 * V) {
    float wbuf[16 * V], lbuf[16 * V];
    long m = n - b < 16 * V ? n - b : 16 * V;
    for (int j = 0; j < 16 * V; j++) { long r = b + (j < m ? j : 0); wbuf[j] = w0_of_run[r]; lbuf[j] = lr_of_run[r]; }
    __m512 w[V], lr[V]; __m512i ds[V], cs[V];
    for (int v = 0; v < V; v++) {
      w[v] = _mm512_loadu_ps(wbuf + 16 * v); lr[v] = _mm512_loadu_ps(lbuf + 16 * v);
      ds[v] = _mm512_set1_epi32(-1); cs[v] = _mm512_set1_epi32(-1);
    }
    const __m512 sixth = _mm512_set1_ps(1.0f / 6.0f), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    const __m512 vbound2 = _mm512_set1_ps(bound * bound), vtol2 = _mm512_set1_ps(tol2);
    for (int t = 0; t <= steps; t++) {
      const __m512i vt = _mm512_set1_epi32(t);
      #pragma GCC unroll 4
      for (int v = 0; v < V; v++) {
        __m512 x = w[v], x2 = _mm512_mul_ps(x, x), x4 = _mm512_mul_ps(x2, x2);
        __m512 loss = _mm512_fmadd_ps(_mm512_mul_ps(x4, x2), sixth, _mm512_fmsub_ps(x2, half, x));
        __m512 g = _mm512_sub_ps(_mm512_fmadd_ps(x4, x, x), one);
        /* !(|x| <= bound) as !(x*x <= bound*bound) (true for NaN too), and a non-finite loss by its class */
        __mmask16 bad = _mm512_cmp_ps_mask(x2, vbound2, _CMP_NLE_UQ) | _mm512_fpclass_ps_mask(loss, 0x99);
        __mmask16 small = _mm512_cmp_ps_mask(_mm512_mul_ps(g, g), vtol2, _CMP_LT_OQ);
        ds[v] = _mm512_mask_min_epu32(ds[v], bad, ds[v], vt);
        cs[v] = _mm512_mask_min_epu32(cs[v], small, cs[v], vt);
        w[v] = _mm512_mask3_fnmadd_ps(lr[v], g, x, t < steps ? 0xFFFF : 0);  /* no update after the last check */
      }
    }
    int32_t dbuf[16 * V], cbuf[16 * V];
    for (int v = 0; v < V; v++) {
      _mm512_storeu_ps(wbuf + 16 * v, w[v]);
      _mm512_storeu_si512(dbuf + 16 * v, ds[v]); _mm512_storeu_si512(cbuf + 16 * v, cs[v]);
    }
    for (int j = 0; j < m; j++) {
      float x = wbuf[j], x2 = x * x;
      final_w[b + j] = x; final_loss[b + j] = x2 * x2 * x2 / 6.0f + x2 / 2.0f - x;
      div_step[b + j] = dbuf[j]; conv_step[b + j] = cbuf[j];
    }
  }
}
#else
int have_limit(void) { return 0; }
#endif
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
    parser.add_argument("--host-devices", type=int, default=None,
                        help="on CPU, split the host into this many XLA devices (default: one; sweeps use "
                             "every core through threads)")
    parser.add_argument("--fast", action="store_true",
                        help="also call jaxdescent.use_fast_cpu_flags() (the vector-width flag for every program)")
    parser.add_argument("--jax-first", action="store_true",
                        help="start JAX before importing jaxdescent: what a user who did gets (no XLA settings)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the best is reported")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).parent / "out")
    args = parser.parse_args()
    if args.small:
        args.n_lr, args.python_runs, args.numpy_runs, args.torch_runs = 100, 5, 20_000, 20_000
    return args


ARGS = parse_args()
# By default this is the path a user gets: a fresh process that imports jaxdescent (which configures XLA's CPU
# backend before it starts) and calls sweep. XLA reads its flags once, when JAX creates a backend.
if ARGS.host_devices:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={ARGS.host_devices}")
if ARGS.jax_first:
    import jax

    jax.devices()
import jaxdescent  # noqa: E402

if ARGS.fast:
    jaxdescent.use_fast_cpu_flags()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxdescent import _sweep, descent  # noqa: E402
from jaxdescent.losses import sextic  # noqa: E402


def stop_early_bound(full_steps, steps, chunk_size, platform):
    """The full sweep's steps over the fewest stop_early can do: a chunk of consecutive runs runs until its
    last run stops (a run that never stops runs all steps), in blocks of descent.STOP_CHECK_EVERY."""
    div, conv = (np.asarray(s).ravel() for s in full_steps)
    stop = np.minimum(np.where(div >= 0, div, steps), np.where(conv >= 0, conv, steps))
    default = _sweep.CHUNK_SIZE if platform == "cpu" else _sweep.ACCELERATOR_CHUNK_SIZE
    chunk = min(chunk_size or default, stop.size)
    last = np.concatenate([stop, np.zeros(-stop.size % chunk, stop.dtype)]).reshape(-1, chunk).max(1)
    block = descent.STOP_CHECK_EVERY
    done = np.minimum(np.ceil((last + 1) / block) * block, steps)
    return steps / done.mean()


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
    kernels = {"simple": c.sweep_ref}
    if c.have_limit():
        kernels["limit"] = c.sweep_limit
    for kernel in kernels.values():
        kernel.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_long, ctypes.c_int, ctypes.c_float,
                                                   ctypes.c_float] + [ctypes.c_void_p] * 4 + [ctypes.c_int]
    return kernels, None


# The kernels name their thread count: OpenMP's default can be changed behind their back (torch.set_num_threads(1)
# for the PyTorch row sets it for the whole process, which once made the C rows single-threaded).
C_THREADS = int(os.environ.get("OMP_NUM_THREADS") or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                         else os.cpu_count()))


def run_c(kernel, lrs, w0s, steps):
    n = lrs.size
    outs = [np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.int32), np.empty(n, np.int32)]
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)
    kernel(ptr(lrs), ptr(w0s), n, steps, BOUND, TOL * TOL, *map(ptr, outs), C_THREADS)
    return outs


def agreement(name, steps_a, steps_b):
    """How often two methods give the same first diverged / converged steps (exactly, and within one step)."""
    (div_a, conv_a), (div_b, conv_b) = [[np.asarray(x).ravel() for x in s] for s in (steps_a, steps_b)]
    return (f"check: {name}: diverged_step equal in {np.mean(div_a == div_b):.4%} of runs, converged_step equal "
            f"in {np.mean(conv_a == conv_b):.4%}, within 1 step in {np.mean(np.abs(conv_a - conv_b) <= 1):.4%}")


def main(args):
    lr, w0, lrs, w0s = grid(args)
    runs, steps = lrs.size, args.steps
    updates = runs * steps
    rows = []  # (method, runs timed, seconds for all runs)
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

    def sweep(stop_early=False):
        result = jaxdescent.sweep(sextic, w0=w0, learning_rate=lr, num_steps=steps, chunk_size=args.chunk_size,
                                  stop_early=stop_early)
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
    first_s, compiles = {}, {}
    results = {}
    for name, fn in [("sweep", sweep), ("sweep_fn", run_sweep_fn), ("stop_early", lambda: sweep(True))]:
        compile_s[:] = []
        with jaxdescent.count_compilations() as counted:
            start = time.perf_counter()
            results[name] = fn()
            first_s[name] = time.perf_counter() - start
        compiles[name] = (sum(compile_s), counted.count)
    jax.monitoring.unregister_event_duration_listener(listener)
    devices = jax.devices()
    result, fn_result, early = results["sweep"], results["sweep_fn"], results["stop_early"]
    same = all(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) for a, b in
               [(result.final_w, fn_result.final_w), (result.diverged_step, fn_result.diverged_step),
                (result.converged_step, fn_result.converged_step)])
    messages.append(f"check: sweep_fn and sweep results bit-identical (final_w, diverged_step, converged_step): {same}")
    full_steps = (result.diverged_step, result.converged_step)
    messages.append(agreement("stop_early vs full sweep", (early.diverged_step, early.converged_step), full_steps))

    timed = {"sweep": sweep, "sweep_fn": run_sweep_fn, "stop_early": lambda: sweep(True)}
    with tempfile.TemporaryDirectory() as tmp:
        kernels, why = build_c(pathlib.Path(tmp))
        if kernels is None:
            messages.append(f"C kernels: skipped ({why})")
        else:
            if "limit" not in kernels:
                messages.append("C, register-blocked: skipped (the compiler does not target AVX-512 here)")
            for name, kernel in kernels.items():
                timed["C " + name] = functools.partial(run_c, kernel, lrs, w0s, steps)
                _, _, div, conv = run_c(kernel, lrs, w0s, steps)
                messages.append(agreement(f"jaxdescent vs C {name}", full_steps, (div, conv)))
        # Interleaved, best of each: a busy host slows whichever runs during the noise. The order rotates every
        # repeat, so no method always runs right after another (the C kernels' OpenMP threads spin on).
        names = list(timed)
        timings = {name: [] for name in names}
        for i in range(args.repeats):
            for name in names[i % len(names):] + names[:i % len(names)]:
                timings[name].append(best_time(timed[name], 1))
    best = {name: min(t) for name, t in timings.items()}
    limit = best.get("C limit") or best.get("C simple")
    limit_name = "C limit" if "C limit" in best else "C simple"
    threads = C_THREADS
    platform = devices[0].platform
    c_rows = {"C limit": f"C register-blocked AVX-512 (4x16 runs in registers), {threads} threads: the limit",
              "C simple": f"C, simple (blocks of 64 runs through memory), {threads} threads"}
    jax_rows = {"sweep": f"jaxdescent sweep ({platform}, {len(devices)} device(s))",
                "sweep_fn": "jaxdescent sweep_fn, sweep's run function",
                "stop_early": "jaxdescent sweep, stop_early=True"}
    rows += [(label, runs, best[name]) for name, label in {**jax_rows, **c_rows}.items() if name in best]
    messages.append(f"jaxdescent.sweep_fn / sweep time: {best['sweep_fn'] / best['sweep']:.3f} (best of each); "
                    "per repeat: " + ", ".join(f"{f / s:.2f}" for f, s in zip(timings["sweep_fn"], timings["sweep"])))
    messages.append(f"stop_early speed-up over the full sweep: {best['sweep'] / best['stop_early']:.2f}x; "
                    f"at most {stop_early_bound(full_steps, steps, args.chunk_size, platform):.2f}x on this grid")
    if limit:
        for name in ("sweep", "stop_early"):
            messages.append(f"jaxdescent {name} / {limit_name} time per repeat: "
                            + ", ".join(f"{a / b:.2f}" for a, b in zip(timings[name], timings[limit_name])))
    lines = [
        f"sweep throughput: sextic, {args.n_lr} learning rates x {args.n_w0} start points = {runs} runs, "
        f"{steps} steps, float32",
        f"jax {jax.__version__}, backend {jax.default_backend()}, devices {[str(d) for d in devices]}, "
        f"device kind {devices[0].device_kind!r}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
        f"chunk_size {args.chunk_size or 'default'}, jaxdescent's import-time XLA setup: {jaxdescent._xla.state['status']}"
        f"{', JAX started first' if args.jax_first else ''}{', use_fast_cpu_flags()' if args.fast else ''}",
        f"cpu: {cpu_model()}; load average before the run: {LOAD_BEFORE}",
        "",
        f"{'method':<70} {'runs timed':>10} {'seconds':>9} {'updates/s':>10} {'x limit':>8}",
    ]
    for method, n, seconds in rows:
        ratio = f"{seconds / limit:8.2f}" if limit else f"{'-':>8}"
        extrapolated = "*" if n < runs else " "
        lines.append(f"{method:<70} {n:>10} {seconds:>8.3f}{extrapolated} {updates / seconds:>10.3g} {ratio}")
    lines += [
        "* timed on a subset of the runs (spread over the grid) and extrapolated linearly to all runs",
        "x limit: time / the fastest C kernel's time (the register-blocked one where the CPU has AVX-512)",
        *(f"jaxdescent {name}: compile (trace + lower + XLA compile) {compiles[name][0]:.3f} s in "
          f"{compiles[name][1]} compilation(s); first call including compile and transfers {first_s[name]:.3f} s"
          for name in first_s),
        *messages,
    ]
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sweep_throughput_{jax.default_backend()}.txt"
    path.write_text(table + "\n")
    print(f"written to {path}")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "unknown"
    return f"{name}, {os.cpu_count()} logical cores"


LOAD_BEFORE = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


if __name__ == "__main__":
    main(ARGS)
