#!/usr/bin/env bash
# GPU check of the CUDA backend, for a machine with an NVIDIA GPU (written for an H200, sm_90):
# configure + build (Release, sm_90 only), run the CUDA tests, then a short benchmark
# (bench/cuda_bench: matmul vs direct cuBLAS, Transformer step vs PyTorch eager, the same step under
# a quarter of its activation memory). Logs go to build-gpu/logs and, when $OUT is set, to $OUT.
# Budget: about 8 minutes on an H200 with 16 cores.
# LETHE_REQUIRE_CUDA=1: a CUDA test or the benchmark that finds no usable device fails instead of
# skipping (an insufficient driver reads as "no device"), so this check cannot pass without running.
set -euo pipefail
export LETHE_REQUIRE_CUDA=1
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${BUILD:-$ROOT/build-gpu}
LOGS=$BUILD/logs
mkdir -p "$LOGS"
copy_logs() { if [[ -n "${OUT:-}" ]]; then mkdir -p "$OUT" && cp -r "$LOGS"/. "$OUT"/ || true; fi; }
trap copy_logs EXIT

nvidia-smi 2>&1 | tee "$LOGS/nvidia-smi.txt" || true

echo "== configure + build" | tee "$LOGS/build.txt"
start=$(date +%s)
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLETHE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DLETHE_BUILD_EXAMPLES=OFF 2>&1 | tee -a "$LOGS/build.txt"
timeout 300 cmake --build "$BUILD" -j16 2>&1 | tee -a "$LOGS/build.txt"
echo "build seconds: $(( $(date +%s) - start ))" | tee -a "$LOGS/build.txt"

echo "== CUDA tests" | tee "$LOGS/tests.txt"
timeout 180 "$BUILD/tests/test_cuda" --duration=true 2>&1 | tee -a "$LOGS/tests.txt"
# The CPU op tests too: they must be unaffected by the backend.
timeout 120 "$BUILD/tests/test_ops" 2>&1 | tail -3 | tee -a "$LOGS/tests.txt"

echo "== benchmark" | tee "$LOGS/bench.txt"
TORCH_ARGS=()
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  TORCH_ARGS=(--torch "python3 $ROOT/bench/cuda_step_torch.py")
else
  echo "torch with CUDA not importable: no PyTorch comparison" | tee -a "$LOGS/bench.txt"
fi
timeout 240 "$BUILD/bench/cuda_bench" "${TORCH_ARGS[@]}" 2>&1 | tee -a "$LOGS/bench.txt"
echo "== done" | tee -a "$LOGS/bench.txt"
