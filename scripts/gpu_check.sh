#!/usr/bin/env bash
# One-command GPU check: every method a few hundred steps on generated data through its CUDA path (nerfacc,
# tiny-cuda-nn when installed, the methods' mixed precision), compared with the torch path where both exist, timed,
# then the benchmarks' paper settings; all in one JSON (default bench_results/gpu_check/gpu_check.json).
# Refuses in one line where there is no CUDA. Options: scripts/gpu_check.py --help (--steps, --skip-benchmarks, ...).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python "$ROOT/scripts/gpu_check.py" "$@"
