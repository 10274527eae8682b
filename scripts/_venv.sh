# Sourced by demo.sh and test.sh: create or refresh the project's virtual environment, then activate it.
# Re-installs only when pyproject.toml or this file changed since the last successful set-up.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NSM_VENV:-$ROOT/.venv}"
PYTHON="${NSM_PYTHON:-python3}"
# torch/torchvision from the package index: a CPU-only torch from a local find-links folder has no working
# torchvision, so ignore find-links and local pip config for these installs (see README, "Set-up").
TORCH_PINS=(torch==2.13.0 torchvision==0.28.0)
pip_index() { env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$VENV/bin/python" -m pip "$@"; }

stamp_now="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/_venv.sh" | sha256sum | cut -c1-16)"
stamp_file="$VENV/.nerfstudio-methods-setup"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# NSM_SKIP_SETUP=1: use the environment as it is (the test suite runs the demo inside an already set-up venv).
if [ -z "${NSM_SKIP_SETUP:-}" ] && { [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_now" ] || ! "$VENV/bin/python" -c "import torchvision, nerfstudio, nerfstudio_methods" 2>/dev/null; }; then
    echo "[setup] installing ${TORCH_PINS[*]}, nerfstudio and this package (a few minutes on a fresh machine)"
    pip_index install --quiet --upgrade pip
    pip_index install --quiet "${TORCH_PINS[@]}"
    pip_index install --quiet -e "$ROOT[dev,docs]" "${TORCH_PINS[@]}"
    "$VENV/bin/python" -c "import torchvision, nerfstudio, nerfstudio_methods; print('[setup] torch', __import__('torch').__version__, '/ torchvision', torchvision.__version__, '/ nerfstudio OK')"
    echo "$stamp_now" > "$stamp_file"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
