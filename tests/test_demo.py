"""The README's main command, ``bash scripts/demo.sh`` (the soft-mining demo: soft mining beside uniform sampling
on the 24 views of a generated Blender scene), on a shorter run: it finishes, prints where its files are, and its
held-out render beats a floor computed from the generator's ground truth: rendering nothing but the white
background."""

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

SHORT_STEPS = 150
"""Fewer than the demo's 250 steps: two nerfacto runs of 150 steps (the held-out PSNR is flat from step 150)."""
VIDEO_DOWNSCALE = 2
"""The two training-path videos at 32 x 32 px instead of 64 x 64: rendering them (46 frames each, 0.4-0.5 frames a
second at full size on the shared 2 cores) was half of the test's time."""
MARGIN_DB = 5.0
"""How far above the background-only PSNR the short run must be. A model that learned no geometry renders the white
background (the uniform-sampling run of the demo did, at 15.1 dB); one that renders the scene's sphere in place and
colour removes most of the error inside it. Measured with the demo's configuration: ns-eval's held-out PSNR
22.11 dB after these 150 steps (22.36 after 200; the validation curve: 19.1 dB at step 100, 22.0-22.2 from step 150
to 350), against 15.10 dB for white on this scene, so a 5 dB margin fails a background-coloured blur and leaves 2 dB
for seeds and thread counts. The 150-step demo's phases with full-size videos, measured at load 3 on the shared 2
cores: soft mining 108 s, nerfacto and both ns-eval 183 s, the two videos 240 s (the 200-step test took 3 to 6
minutes)."""


def background_psnr(scene: Path) -> float:
    """PSNR of rendering nothing but the white background (what a model that learned no geometry shows) on the
    held-out images that ns-eval scores (transforms_test.json), composited on white as nerfstudio's Blender reader
    does."""
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
        "DEMO_VIDEO_DOWNSCALE": str(VIDEO_DOWNSCALE),
        "PYTHONWARNINGS": "ignore::FutureWarning",
    }
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")], env=env, capture_output=True, text=True, timeout=1500, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    demo = tmp_path / "demo"
    for name in ("config", "metrics", "metrics_uniform", "plot", "video"):
        assert f"  {name:<10}: " in result.stdout or f"  {name}: " in result.stdout
    assert (demo / "psnr_curves.png").is_file() and (demo / "renders" / "soft_mining_vs_uniform.mp4").is_file()
    curves = json.loads((demo / "psnr_curves.json").read_text())
    steps = [step for step, _ in curves["soft mining"]]
    assert len(steps) >= 2 and steps[-1] >= SHORT_STEPS - 50  # held-out PSNR every 50 steps (50, 100 of 150)
    psnr = json.loads((demo / "metrics_soft_mining.json").read_text())["results"]["psnr"]
    floor = background_psnr(demo / "scene")
    assert 14.0 < floor < 16.5  # the demo scene: a sphere covering part of a white view (15.1 dB measured)
    assert psnr > floor + MARGIN_DB, f"held-out PSNR {psnr:.2f} dB; background only: {floor:.2f} dB"
