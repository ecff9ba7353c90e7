"""Step-network training throughput on digits: jaxdescent against PyTorch eager, and vmapped against sequential.

Digits (1437 × 64), 128 hidden, full batch, sigmoid surrogate slope 4, Adam lr 0.01.
Prints a table and writes it to ``--out``/network_throughput.md (default experiments/benchmarks/out/).

PyTorch runs in a child process (this script re-invoked with ``--torch-worker``)
with ``torch.set_num_threads`` set to the thread count JAX uses: in one process
the two libraries' thread pools compete for the same cores, which made an
earlier version of this benchmark report PyTorch at 15 steps/s. JAX runs on its
default backend; PyTorch on CUDA when it is available, else on the CPU.

Run: python experiments/benchmarks/network_throughput.py [--steps 300] [--seeds 64] [--out DIR]
"""

import argparse
import importlib.util
import io
import json
import os
import subprocess
import sys
import time

import numpy as np

HIDDEN, SLOPE, LR = 128, 4.0, 0.01


def cpu_threads():
    """The cores this process may use: XLA's CPU thread pool is sized to them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def torch_worker(steps, threads):
    """Runs in the child process: reads x, y (.npz) from stdin, writes {"steps_per_s", "device"} as JSON."""
    import torch

    torch.set_num_threads(threads)
    data = np.load(io.BytesIO(sys.stdin.buffer.read()))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

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

    torch.manual_seed(0)
    x = torch.tensor(data["x"], device=device)
    y = torch.tensor(data["y"], device=device)
    ones = torch.ones(x.shape[0], 1, device=device)
    x1 = torch.cat([x, ones], 1)
    w1 = (torch.randn(x.shape[1] + 1, HIDDEN, device=device) / np.sqrt(x.shape[1] + 1)).requires_grad_()
    w2 = (torch.randn(HIDDEN + 1, y.shape[1], device=device) / np.sqrt(HIDDEN + 1)).requires_grad_()
    opt = torch.optim.Adam([w1, w2], lr=LR)

    def train_step():
        opt.zero_grad()
        h = Step.apply(x1 @ w1)
        o = Step.apply(torch.cat([h, ones], 1) @ w2)
        loss = ((o - y) ** 2).sum() / x.shape[0]
        loss.backward()
        opt.step()

    def rate(step_fn):
        def run(n):
            for _ in range(n):
                step_fn()
            sync()

        run(20)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            run(steps)
            best = min(best, time.perf_counter() - t)
        return steps / best

    out = {"steps_per_s": rate(train_step)}
    compiled = torch.compile(train_step)
    t = time.perf_counter()
    try:
        compiled()
        sync()
        out["compile_s"] = time.perf_counter() - t
        out["compiled_steps_per_s"] = rate(compiled)
    except Exception as e:  # no C++ compiler for inductor, or an unsupported op: the row says why
        out["compile_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    json.dump({**out, "device": name, "version": torch.__version__}, sys.stdout)


def step_flops(num_examples, num_features, hidden, outputs):
    """Multiply-adds × 2 of one full-batch step: X1·W1, H1·W2 forward; dW2, dH, dW1 backward (bias columns in)."""
    n, d1, h1 = num_examples, num_features + 1, hidden + 1
    return 2 * n * (d1 * hidden + h1 * outputs + h1 * outputs + outputs * hidden + d1 * hidden)


def peak_flops():
    """cores × 2 FMA units × 16 float32 lanes (AVX-512) × 2 flops × clock, the clock read from /proc/cpuinfo."""
    mhz = None
    try:
        with open("/proc/cpuinfo") as f:
            mhz = max(float(line.split(":")[1]) for line in f if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        pass
    cores = cpu_threads()
    if mhz is None:
        return float("nan"), "unknown (no clock in /proc/cpuinfo)"
    peak = cores * 2 * 16 * 2 * mhz * 1e6
    return peak, (f"{cores} cores × 2 FMA units × 16 float32 lanes (AVX-512) × 2 flops × {mhz / 1e3:.2f} GHz "
                  "(from /proc/cpuinfo); a CPU that splits 512-bit FMAs into two 256-bit halves (AMD Zen 4) peaks "
                  "at half this")


def torch_steps_per_s(x, y, steps, threads):
    """PyTorch eager in a fresh process (no JAX thread pool beside it)."""
    buf = io.BytesIO()
    np.savez(buf, x=np.asarray(x, np.float32), y=np.asarray(y, np.float32))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--torch-worker", "--steps", str(steps),
                           "--threads", str(threads)], input=buf.getvalue(), stdout=subprocess.PIPE, env=env,
                          check=True)
    return json.loads(done.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed repeats; the best is reported")
    parser.add_argument("--threads", type=int, default=cpu_threads(),
                        help="CPU threads for PyTorch (default: the cores XLA's CPU pool uses)")
    parser.add_argument("--out", default=os.path.join("experiments", "benchmarks", "out"))
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fast", action="store_true",
                        help="also call jaxdescent.use_fast_cpu_flags() (default: what importing jaxdescent gives)")
    args = parser.parse_args(argv)
    if args.torch_worker:
        torch_worker(args.steps, args.threads)
        return

    import jaxdescent

    if args.fast:
        jaxdescent.use_fast_cpu_flags()  # before JAX starts; ignored on GPU/TPU

    import jax
    import jax.numpy as jnp
    import optax

    from jaxdescent import datasets, network
    from jaxdescent._engine import Static

    def best_of(fn, repeats=3):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            jax.block_until_ready(fn())
            times.append(time.perf_counter() - t)
        return min(times)

    x, y, _, _ = datasets.digits()
    # PyTorch first, while no JAX computation has run in this process yet.
    if importlib.util.find_spec("torch") is None:
        print("PyTorch is not installed: its row is skipped (pip install torch)", file=sys.stderr)
        torch_info = {"steps_per_s": float("nan"), "device": "not installed", "version": "(none)",
                      "compile_error": "not installed"}
    else:
        torch_info = torch_steps_per_s(x, y, args.steps, args.threads)
    torch_rate = torch_info["steps_per_s"]

    key = jax.random.key(0)
    keys = jax.random.split(key, args.seeds)
    tx = optax.adam(LR)
    settings = dict(n_hidden=HIDDEN, num_steps=args.steps, ste="sigmoid", stop_when_solved=False)
    slope = jnp.float32(SLOPE)

    t = time.perf_counter()
    lowered = network._train_one.lower(key, x, y, slope, tx=Static(tx), **settings)
    lower_s = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t
    grid = lambda **kw: network.train_many(keys, x, y, learning_rates=jnp.array([LR]), optimizer_factory=optax.adam,
                                          n_hidden=HIDDEN, num_steps=args.steps, ste="sigmoid", slope=SLOPE, **kw)
    t = time.perf_counter()
    jax.block_until_ready(grid())
    grid_first_s = time.perf_counter() - t
    jax.block_until_ready(grid(chunk_size=args.seeds))
    # Interleaved, best of each: on a busy host the noise falls on whichever runs during it, and the ratios
    # (train_many per run vs sequential per run) are only meaningful from the same repeats.
    timed = {"one": lambda: compiled(key, x, y, slope), "seq": lambda: [compiled(k, x, y, slope) for k in keys],
             "many": grid, "plain": lambda: grid(chunk_size=args.seeds)}
    times = {name: [] for name in timed}
    for _ in range(args.repeats):
        for name, fn in timed.items():
            times[name].append(best_of(fn, repeats=1))
    one, seq, vmapped, plain = (min(times[name]) for name in timed)
    jax_rate = args.steps / one

    device = jax.devices()[0]
    jax_device = (f"{device.platform}, {args.threads} threads, {jax.device_count()} device(s)" if device.platform == "cpu"
                  else device.device_kind)
    per_seed = lambda seconds: args.seeds * args.steps / seconds
    rows = [
        (f"PyTorch {torch_info['version']} eager (autograd.Function STE), 1 run [{torch_info['device']}]", torch_rate),
        (f"PyTorch {torch_info['version']} torch.compile, 1 run [{torch_info['device']}]",
         torch_info.get("compiled_steps_per_s", float("nan"))),
        (f"jaxdescent train, 1 run [{jax_device}]", jax_rate),
        (f"jaxdescent train, {args.seeds} sequential runs (per run)", per_seed(seq)),
        (f"jaxdescent train_many, {args.seeds} seeds (per run)", per_seed(vmapped)),
        (f"train_many, all {args.seeds} seeds in one vmapped chunk (per run)", per_seed(plain)),
    ]
    lines = [f"# Step network throughput: digits 1437×64, {HIDDEN} hidden, full batch, sigmoid STE slope {SLOPE:g}, "
             f"Adam lr {LR:g}, {args.steps} steps (jax {jax.__version__} on {jax_device}; PyTorch in its own "
             f"process on {torch_info['device']}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r})", "",
             "| what | training steps/s | × PyTorch eager |", "|---|---|---|"]
    flops = step_flops(x.shape[0], x.shape[1], HIDDEN, y.shape[1])
    peak, peak_note = peak_flops()
    lines[-2:] = ["| what | training steps/s | × PyTorch eager | GFLOP/s | % of peak |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r:,.0f} | {r / torch_rate:.2f}× | {r * flops / 1e9:.1f} | {100 * r * flops / peak:.1f}% |"
              for name, r in rows]
    compile_note = (f"{torch_info['compile_s']:.1f} s" if "compile_s" in torch_info
                    else f"failed ({torch_info.get('compile_error')})")
    per_repeat = ", ".join(f"{s_ / m:.2f}" for s_, m in zip(times["seq"], times["many"]))
    lines += ["", f"- FLOP per training step: {flops / 1e6:.1f} MFLOP (the five matrix products of forward and "
              "backward, 2 flops per multiply-add; the elementwise STE, loss and Adam work, O(N·H), is not counted)",
              f"- peak assumed: {peak / 1e9:.0f} GFLOP/s = {peak_note}",
              f"- torch.compile compile time (first call): {compile_note}",
              f"- train_many per run vs sequential per run: {seq / vmapped:.2f}× (best of each; per repeat: "
              f"{per_repeat})",
              f"- one-chunk vmap per run vs sequential per run: {seq / plain:.2f}×",
              f"- compile time of train: {lower_s + compile_s:.2f} s (trace + lower {lower_s:.2f} s, "
              f"XLA compile {compile_s:.2f} s)",
              f"- first train_many call ({args.seeds} seeds, compile + run): {grid_first_s:.2f} s"]
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "network_throughput.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
