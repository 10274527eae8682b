"""scripts/gpu_check.sh's driver refuses in one line where torch sees no CUDA device (here, and any CPU machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_gpu_check_refuses_without_cuda(tmp_path: Path) -> None:
    output = tmp_path / "gpu_check"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--output", str(output)],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: gpu_check needs a CUDA GPU and torch sees none (torch.cuda.is_available() is False); nothing was run"
    ]
    assert not output.exists()
