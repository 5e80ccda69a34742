"""Python half of the safetensors interop test: what Lethe writes loads with the `safetensors`
package (into torch tensors when torch is importable, else NumPy arrays) with the same names, shapes
and values, and what Python writes loads into the matching Lethe model.

usage: check_python.py TOOL WORKDIR    (TOOL: the safetensors_tool binary)
"""
import json
import subprocess
import sys

import numpy as np

try:
    import torch
    from safetensors.torch import load_file, save_file

    torch.zeros(1).numpy()  # a torch built against another NumPy cannot convert: use NumPy alone
    FLAVOUR = "torch"
except (ImportError, RuntimeError):  # torch is optional: the format check is the same with NumPy
    from safetensors.numpy import load_file, save_file

    FLAVOUR = "numpy"


def as_numpy(t):
    return t.numpy() if FLAVOUR == "torch" else t


def run(tool, *args):
    out = subprocess.run([tool, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    tool, work = sys.argv[1], sys.argv[2]
    failures = []

    # Lethe -> Python.
    lethe_file = f"{work}/from_lethe.safetensors"
    expected = run(tool, "write", lethe_file)
    loaded = load_file(lethe_file)
    if list(loaded) and sorted(loaded) != sorted(expected):
        failures.append(f"names differ: python {sorted(loaded)}, lethe {sorted(expected)}")
    for name, want in expected.items():
        if name not in loaded:
            failures.append(f"{name}: missing in Python")
            continue
        got = as_numpy(loaded[name])
        if list(got.shape) != want["shape"]:
            failures.append(f"{name}: shape {list(got.shape)} in Python, {want['shape']} in Lethe")
        elif got.dtype != np.float32:
            failures.append(f"{name}: dtype {got.dtype} in Python, f32 in Lethe")
        elif not np.array_equal(got.reshape(-1).astype(np.float64), np.array(want["values"], dtype=np.float64)):
            failures.append(f"{name}: values differ")

    # Python -> Lethe: the same names, values made here (batch norm's num_batches_tracked included,
    # as torch.nn.BatchNorm2d.state_dict() has it).
    rng = np.random.default_rng(0)
    tensors = {name: rng.standard_normal(want["shape"]).astype(np.float32) for name, want in expected.items()}
    tensors["1.num_batches_tracked"] = np.array(7, dtype=np.int64)
    py_file = f"{work}/from_python.safetensors"
    if FLAVOUR == "torch":
        save_file({k: torch.from_numpy(v) for k, v in tensors.items()}, py_file)
    else:
        save_file(tensors, py_file)
    back = run(tool, "read", py_file)
    for name, want in tensors.items():
        if name == "1.num_batches_tracked":
            continue
        if name not in back:
            failures.append(f"{name}: not loaded by Lethe")
        elif not np.array_equal(np.array(back[name]["values"], dtype=np.float32), want.reshape(-1)):
            failures.append(f"{name}: Lethe holds other values than Python wrote")

    for f in failures:
        print("FAIL:", f)
    print(f"interop ({FLAVOUR}): {len(expected)} tensors each way, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
