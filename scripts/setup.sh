#!/usr/bin/env bash
# One command: install the dependencies, build Lethe (Release, -O3) and run the main example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
./build/examples/mlp_fashion/mlp_fashion "$@"
