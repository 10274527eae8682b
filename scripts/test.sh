#!/usr/bin/env bash
# Set up (or refresh) the virtual environment, then run lint, type checks and the whole test suite on CPU, then
# nerfstudio's own test suite with this package installed (scripts/nerfstudio_tests.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
echo "[test] ruff check"; ruff check nerfstudio_methods dataparsers tests
echo "[test] ruff format --check"; ruff format --check nerfstudio_methods dataparsers tests
echo "[test] pyright"; pyright
echo "[test] pytest"; python -m pytest -q "$@"
echo "[test] nerfstudio's own test suite, with this package installed"; bash scripts/nerfstudio_tests.sh
