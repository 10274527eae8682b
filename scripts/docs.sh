#!/usr/bin/env bash
# Build the documentation (docs/, Sphinx + MyST + furo) into docs/_build/html, warnings as errors, so a broken
# cross-reference, include or heading fails. The project's virtual environment (scripts/_venv.sh, which installs the
# `docs` extra) is created or refreshed first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
python benchmarks/render_results.py --check
python -m sphinx -W --keep-going -q -b html docs docs/_build/html
echo "[docs] built docs/_build/html/index.html"
