#!/usr/bin/env bash
# The GPU checks as one short script for a lent GPU machine (JAX with CUDA already installed there):
# the sweep and network tests on the GPU, then both benchmarks. Writes everything under $OUT.
set -uo pipefail
OUT=${OUT:-experiments/benchmarks/out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{ nvidia-smi -L; python3 -c "import jax, optax, chex; print('jax', jax.__version__, 'optax', optax.__version__, jax.devices())"; } 2>&1 | tee "$OUT/gpu.txt"
timeout 180 python3 -m pytest -q -x -p no:cacheprovider tests/test_descent.py tests/test_sweep.py tests/test_network.py \
  -k "not devices and not process and not fast_cpu" 2>&1 | tail -15 | tee -a "$OUT/gpu.txt"
timeout 200 python3 experiments/benchmarks/sweep_throughput.py --out "$OUT" 2>&1 | tee "$OUT/sweep_gpu.log"
timeout 150 python3 experiments/benchmarks/network_throughput.py --out "$OUT" 2>&1 | tee "$OUT/network_gpu.log"
