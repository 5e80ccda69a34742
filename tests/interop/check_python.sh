#!/usr/bin/env bash
# The safetensors interop test: a virtual environment of Debian's python3 (with the system's packages,
# so torch tensors are used when python3-torch is installed, NumPy arrays otherwise) gets the
# `safetensors` package from PyPI; then
# check_python.py round-trips files between Lethe and Python. Exit 77 (ctest: skipped) with a
# message when the package cannot be installed (no network, no venv module).
# usage: check_python.sh TOOL WORKDIR
set -uo pipefail
tool=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
venv=$work/venv
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3  # Debian's: sees Debian's python3-torch
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import safetensors, numpy" 2>/dev/null; then
  rm -rf "$venv"
  if ! "$python" -m venv --system-site-packages "$venv" >"$work/venv.log" 2>&1; then
    echo "skipped: cannot create a virtual environment (python3 -m venv: $(tail -1 "$work/venv.log"))"
    exit 77
  fi
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check safetensors numpy \
      >"$work/pip.log" 2>&1; then
    echo "skipped: cannot install the safetensors package from PyPI ($(tail -1 "$work/pip.log"))"
    exit 77
  fi
fi
exec "$venv/bin/python" "$here/check_python.py" "$tool" "$work"
