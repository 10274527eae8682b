#!/usr/bin/env bash
# nerfstudio v1.1.5's own test suite, run with this package installed: the plugin must never break nerfstudio.
# Default import mode (nerfstudio's tests/ and tests/dataparsers/ land on sys.path), from a temporary copy (pytest
# and test_train write there). Extra arguments go to pytest.
#   NERFSTUDIO_TESTS=dir  the suite's folder (default ../shared/peer/nerfstudio-1.1.5, beside the clone)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
PEER="${NERFSTUDIO_TESTS:-$ROOT/../shared/peer/nerfstudio-1.1.5}"
if [ ! -d "$PEER/tests" ]; then
    echo "[nerfstudio-tests] error: $PEER/tests not found (nerfstudio v1.1.5's tests/; set NERFSTUDIO_TESTS=dir)" >&2
    exit 1
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nerfstudio-tests.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp -r "$PEER/tests" "$WORK/tests"
chmod -R u+w "$WORK"

ARGS=()
# A bug of the suite on Python >= 3.11, not of nerfstudio or this plugin: tests/plugins/test_registry.py declares a
# dataclass field with a dataclass instance as default (`config: TrainerConfig = TrainerConfig(...)`), which Python
# 3.11's dataclasses refuse at import ("mutable default ... use default_factory"), so the file cannot be collected.
# nerfstudio's later releases changed exactly that default to `field(default_factory=lambda: TrainerConfig(...))`;
# the copy gets that one change, and the file is left out if the text differs.
python - "$WORK/tests/plugins/test_registry.py" <<'PY' || ARGS+=(--ignore=tests/plugins/test_registry.py)
import sys
from pathlib import Path

path = Path(sys.argv[1])
old = """    config: TrainerConfig = TrainerConfig(
        method_name="test-method",
        pipeline=VanillaPipelineConfig(),
        optimizers={},
    )
"""
new = """    config: TrainerConfig = field(
        default_factory=lambda: TrainerConfig(
            method_name="test-method",
            pipeline=VanillaPipelineConfig(),
            optimizers={},
        )
    )
"""
text = path.read_text()
if sys.version_info < (3, 11):
    sys.exit(0)
if text.count(old) != 1:
    print(f"[nerfstudio-tests] {path.name}: the Python 3.11 dataclass default is not where expected: file left out")
    sys.exit(1)
path.write_text(text.replace(old, new))
print("[nerfstudio-tests] tests/plugins/test_registry.py: TestConfigClass.config default made a default_factory "
      "(Python >= 3.11 refuses a dataclass instance as a default; nerfstudio's later test file does the same)")
PY
# tests/scripts/test_exporter.py imports open3d, whose wheel needs the system library libusb-1.0 (.ci/run installs it).
if ! python -c "import open3d" >/dev/null 2>&1; then
    echo "[nerfstudio-tests] open3d does not import (apt-get install libusb-1.0-0): tests/scripts/test_exporter.py left out"
    ARGS+=(--ignore=tests/scripts/test_exporter.py)
fi
cd "$WORK"
echo "[nerfstudio-tests] nerfstudio $(python -c 'import nerfstudio, importlib.metadata as m; print(m.version("nerfstudio"))') suite from $PEER, with nerfstudio-methods installed"
python -m pytest tests -q -p no:cacheprovider "${ARGS[@]}" "$@"
