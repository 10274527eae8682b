#!/usr/bin/env bash
# Set up (or refresh) the virtual environment, then run lint, type checks and the whole test suite on CPU, then
# nerfstudio's own test suite with this package installed (scripts/nerfstudio_tests.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
echo "[test] ruff check"; ruff check nerfstudio_methods dataparsers tests benchmarks scripts
echo "[test] ruff format --check"; ruff format --check nerfstudio_methods dataparsers tests benchmarks scripts
echo "[test] pyright"; pyright
echo "[test] docs (results blocks against their JSON, then the Sphinx build, warnings as errors)"; NSM_SKIP_SETUP=1 bash scripts/docs.sh
# Two pytest workers (pytest-xdist) on CI's 2 cores; whole files per worker (--dist loadfile), so a file's
# module-scoped fixtures (its trained runs) are built once; files start in collection order, the longest first
# (tests/conftest.py). NSM_TEST_WORKERS=0 runs in one process. The 25 slowest
# tests are listed at the end (the suite's budget is 15 minutes on CI's 2 cores).
WORKERS="${NSM_TEST_WORKERS:-2}"
if [ "$WORKERS" -gt 0 ]; then
    echo "[test] pytest ($WORKERS workers)"; python -m pytest -q -n "$WORKERS" --dist loadfile --no-loadscope-reorder --durations=25 "$@"
else
    echo "[test] pytest"; python -m pytest -q --durations=25 "$@"
fi
echo "[test] nerfstudio's own test suite, with this package installed"; bash scripts/nerfstudio_tests.sh
