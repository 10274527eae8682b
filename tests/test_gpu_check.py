"""scripts/gpu_check.sh's driver refuses in one line where torch sees no CUDA device (here, and any CPU machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def load_driver():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_each_comparison_gets_a_verdict_against_its_limits() -> None:
    driver = load_driver()
    agree = driver.verdict({"psnr": [25.0, 24.2], "same_checkpoint_render": {"mean_abs": 4e-4, "max_abs": 0.01}})
    assert agree["pass"] and agree["checks"]["psnr_gap_db"]["value"] == pytest.approx(0.8)
    drifted = driver.verdict({"psnr": [25.0, 23.5], "same_checkpoint_render": {"mean_abs": 4e-4}})
    assert not drifted["pass"] and not drifted["checks"]["psnr_gap_db"]["pass"]
    assert drifted["checks"]["same_checkpoint_mean_abs"]["pass"]
    other_samples = driver.verdict({"psnr": [25.0, 25.0], "same_checkpoint_render": {"mean_abs": 2e-3}})
    assert not other_samples["pass"] and not other_samples["checks"]["same_checkpoint_mean_abs"]["pass"]
    assert not driver.verdict({"psnr": [None, 25.0]})["pass"]  # a path that produced no PSNR fails


def test_failures_name_every_failed_command_comparison_and_benchmark() -> None:
    driver = load_driver()
    report = {
        "methods": {"streamrf": {"train_exit": 0}, "nerfacto-tcnn": {"error": "train exited 1"}},
        "comparisons": {"streamrf-nerfacc": {"verdict": {"pass": False}}, "ok": {"verdict": {"pass": True}}},
        "benchmarks": {"a.py": {"exit": 0}, "b.py": {"exit": 2}, "c.py": {"skipped": "script not in this checkout"}},
    }
    assert driver.failures(report) == [
        "nerfacto-tcnn (error)", "streamrf-nerfacc (CUDA and torch paths disagree)", "b.py (exit 2)"
    ]  # fmt: skip
