"""The README's main command, ``bash scripts/demo.sh`` (InfoNeRF, few-shot), on a shorter run: it finishes, prints
where its files are, and its held-out render beats a floor computed from the generator's ground truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SHORT_STEPS = 200
MARGIN_DB = 3.0
"""How far above the floor the short run must be: an image of the scene, not a background-coloured blur."""


def background_psnr(scene: Path) -> float:
    """PSNR of rendering nothing but the white background (what a model that learned no geometry shows) on the
    held-out images, composited on white as nerfstudio's Blender reader does."""
    frames = json.loads((scene / "transforms_test.json").read_text())["frames"]
    errors = []
    for frame in frames:
        rgba = iio.imread(scene / f"{frame['file_path']}.png").astype(np.float64) / 255.0
        rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:]) if rgba.shape[-1] == 4 else rgba
        errors.append(np.mean((rgb - 1.0) ** 2))
    return float(-10.0 * np.log10(np.mean(errors)))


def test_default_demo_renders_its_scene(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NSM_SKIP_SETUP": "1",  # this venv, as it is
        "NSM_VENV": sys.prefix,
        "DEMO_OUTPUT": str(tmp_path / "demo"),
        "DEMO_STEPS": str(SHORT_STEPS),
        "PYTHONWARNINGS": "ignore::FutureWarning",
    }
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")], env=env, capture_output=True, text=True, timeout=1500, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    demo = tmp_path / "demo"
    for name in ("config", "metrics", "metrics_plain", "video"):
        assert f"  {name:<10}: " in result.stdout
    assert (demo / "renders" / "infonerf_vs_plain.mp4").is_file()
    psnr = json.loads((demo / "metrics_infonerf.json").read_text())["results"]["psnr"]
    floor = background_psnr(demo / "scene")
    assert psnr > floor + MARGIN_DB, f"held-out PSNR {psnr:.2f} dB; background only: {floor:.2f} dB"
