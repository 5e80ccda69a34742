#!/usr/bin/env bash
# Installs Lethe's build and test dependencies from Debian 12's packages (nothing else is fetched).
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config doctest-dev libopenblas-dev libopenblas-openmp-dev nlohmann-json3-dev libcli11-dev
      zlib1g-dev dataset-fashion-mnist coinor-libcbc-dev python3 python3-venv openmpi-bin libopenmpi-dev clang-format clang-tidy)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
