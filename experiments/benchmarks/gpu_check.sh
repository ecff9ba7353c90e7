#!/usr/bin/env bash
# The GPU checks as one short script for a lent GPU machine (JAX with CUDA already installed there).
# Writes everything under $OUT. GPU_TESTS=1 also runs the sweep and network tests on the GPU.
set -uo pipefail
OUT=${OUT:-experiments/benchmarks/out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{ nvidia-smi -L; python3 -c "import jax, optax; print('jax', jax.__version__, 'optax', optax.__version__, jax.devices())"; } 2>&1 | tee "$OUT/gpu.txt"
if [ "${GPU_TESTS:-0}" = 1 ]; then
  timeout 180 python3 -m pytest -q -x -p no:cacheprovider tests/test_descent.py tests/test_sweep.py tests/test_network.py \
    -k "not devices and not process and not fast_cpu" 2>&1 | tail -15 | tee -a "$OUT/gpu.txt"
fi
# The engine against a hand-written jit(vmap) and a loop of jit(fn), on every workload (the digits ones need
# scikit-learn; without it, the sextic and the step network only).
if python3 -c "import sklearn" 2>/dev/null; then only=(""); else only=(sextic step_network); fi
for w in "${only[@]}"; do
  timeout 150 python3 experiments/benchmarks/engine_overhead.py --skip-chunks --repeats 2 --loop-budget 4 \
    ${w:+--only "$w"} --out "$OUT" 2>&1 | tee -a "$OUT/engine_gpu.log"
done
# The 10^9-update sextic sweep (10^6 runs x 1000 steps) against the C kernels and the roofline.
timeout 120 python3 experiments/benchmarks/sweep_throughput.py --python-runs 5 --numpy-runs 10000 --torch-runs 10000 \
  --repeats 3 --out "$OUT" 2>&1 | tee "$OUT/sweep_gpu.log"
