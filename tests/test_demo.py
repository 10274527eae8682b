"""The README's main command, ``bash scripts/demo.sh`` (the soft-mining demo: ``soft-mining-ngp`` beside the same
preset with ``--pipeline.sampler uniform`` on the 24 views of a generated Blender scene), on a shorter run: it
finishes, prints where its files are, and both arms' held-out renders beat a floor computed from the generator's
ground truth: rendering nothing but the white background (what a collapsed model shows)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.conftest import REPO, blender_images

pytestmark = pytest.mark.slow

SHORT_STEPS = 120
"""Under a third of the demo's 400 steps (the preset's cosine schedule and alpha warm-up are scaled to them by the
demo); held-out PSNR every 50 steps gives a curve of two points."""
VIDEO_DOWNSCALE: float | None = 2
"""The two training-path videos at 48 x 48 px instead of the demo's 128 x 128 (upsampled from 96): rendering them
(46 frames each, ~70 s a video at 128 px on the shared 2 cores) would be most of the test's time. None: the
demo's default videos, checked to be at least 128 px wide per arm."""
MARGIN_DB = 6.0
"""How far above the background-only PSNR the short soft-mining run must be. A model that learned no geometry renders
the white background (15.12 dB on this scene; the best constant colour is 15.73), as the demo's former uniform arm
(nerfacto) and this preset at its initial density 1 did; one that renders the scene's sphere in place and colour
removes most of the error inside it. Measured with the demo's configuration: ns-eval's held-out PSNR 25.01 dB after
these 120 steps (validation curve 22.5 / 24.3 dB at steps 50 / 100; the 400-step demo's are in
benchmarks/results/demo_soft-mining.json), i.e. 9.9 dB above white, so 6 dB fails a background-coloured blur and
leaves 3.9 dB for seeds and thread counts."""
UNIFORM_MARGIN_DB = 6.0
"""The same for the uniform arm (the same preset, --pipeline.sampler uniform): it learns too, more slowly. Measured:
23.23 dB after 120 steps (curve 21.6 / 22.7 dB at steps 50 / 100), 8.1 dB above white: 6 dB leaves 2.1 dB. The demo
at these settings took 102 s beside a one-thread benchmark on the 2 cores (200 steps: 121 s in the idle suite)."""


def background_psnr(scene: Path) -> float:
    """PSNR of rendering nothing but the white background (what a model that learned no geometry shows) on the
    held-out images that ns-eval scores (transforms_test.json), composited on white as nerfstudio's Blender reader
    does."""
    errors = [np.mean((rgb - 1.0) ** 2) for rgb in blender_images(scene, "test")]
    return float(-10.0 * np.log10(np.mean(errors)))


def test_default_demo_renders_its_scene(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NSM_SKIP_SETUP": "1",  # this venv, as it is
        "NSM_VENV": sys.prefix,
        "DEMO_OUTPUT": str(tmp_path / "demo"),
        "DEMO_STEPS": str(SHORT_STEPS),
        **({"DEMO_VIDEO_DOWNSCALE": str(VIDEO_DOWNSCALE)} if VIDEO_DOWNSCALE else {}),
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
    assert len(steps) >= 2 and steps[-1] >= SHORT_STEPS - 50  # held-out PSNR every 50 steps (50 and 100 of 120)
    floor = background_psnr(demo / "scene")
    assert 14.5 < floor < 15.7  # the demo scene: a sphere covering part of a white view (15.12 dB measured)
    psnr = json.loads((demo / "metrics_soft_mining.json").read_text())["results"]["psnr"]
    assert psnr > floor + MARGIN_DB, f"soft mining: held-out PSNR {psnr:.2f} dB; background only: {floor:.2f} dB"
    uniform = json.loads((demo / "metrics_uniform.json").read_text())["results"]["psnr"]
    assert uniform > floor + UNIFORM_MARGIN_DB, f"uniform: held-out PSNR {uniform:.2f} dB; background: {floor:.2f} dB"
    # the side-by-side video: two arms and a 4 px gap; each arm at least 128 px (the 96 px cameras upsampled) unless
    # this test's downscale is in effect
    frames = iio.imread(demo / "renders" / "soft_mining_vs_uniform.mp4", plugin="pyav")
    arm = frames.shape[2] // 2 - 2
    assert frames.shape[2] == 2 * arm + 4 and frames.shape[1] == arm and len(frames) >= 24
    assert arm == round(96 / VIDEO_DOWNSCALE) if VIDEO_DOWNSCALE else arm >= 128
