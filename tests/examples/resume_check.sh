#!/usr/bin/env bash
# Resume bitwise across processes: an example trains N steps saving checkpoints every K; a second
# process resumes from an intermediate one and trains to N; both final checkpoints (model, optimizer,
# random state, data position) must be byte for byte the same file.
# usage: resume_check.sh EXAMPLE WORKDIR [example flags...]
set -euo pipefail
example=$1
work=$2
shift 2
rm -rf "$work"
mkdir -p "$work"
"$example" "$@" --steps 12 --save "$work/a_{step}.ckpt" --save-every 5 --quiet >"$work/a.log" 2>&1 ||
  { cat "$work/a.log"; exit 1; }
"$example" "$@" --steps 12 --resume "$work/a_5.ckpt" --save "$work/b_{step}.ckpt" --quiet >"$work/b.log" 2>&1 ||
  { cat "$work/b.log"; exit 1; }
if cmp "$work/a_12.ckpt" "$work/b_12.ckpt"; then
  echo "resumed at step 5 of 12: the final checkpoints are identical ($(stat -c %s "$work/a_12.ckpt") bytes)"
else
  echo "FAIL: the resumed run's final checkpoint differs from the uninterrupted run's"
  exit 1
fi
