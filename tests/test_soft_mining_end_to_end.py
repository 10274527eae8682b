"""Soft mining end to end on generated scenes, as a user runs it: ns-train soft-mining, ns-eval, ns-render, and
the sampler in a second method (soft-mining-vanilla-nerf). The LLFF preset is checked in-process
(test_soft_mining.py).

Tiny images, ray counts and networks keep each command to the ~15-20 s of nerfstudio's imports plus seconds of work.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import assert_succeeded, generate_scene, ns_eval, ns_render_interpolated, run_command, run_folder

pytestmark = pytest.mark.slow

COMMON = [
    "--machine.device-type", "cpu",
    "--vis", "tensorboard",
    "--viewer.quit-on-train-completion", "True",
    "--pipeline.datamanager.train-num-rays-per-batch", "64",
    "--pipeline.datamanager.eval-num-rays-per-batch", "64",
    "--experiment-name", "e2e",
]  # fmt: skip
TINY_NERFACTO = [
    "--pipeline.model.implementation", "torch",
    "--pipeline.model.num-proposal-samples-per-ray", "16", "8",
    "--pipeline.model.num-nerf-samples-per-ray", "8",
    "--pipeline.model.log2-hashmap-size", "12",
    "--pipeline.model.eval-num-rays-per-chunk", "1024",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained_soft_mining(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step soft-mining (nerfacto) run on a 32x32 generated Blender scene, with the exponent already at alpha
    (no warm-up) so the importance weights are exercised; returns its config.yml."""
    work = tmp_path_factory.mktemp("soft_mining_e2e")
    generate_scene("blender", work / "scene", "--width", "32", "--height", "32", "--num-cameras", "6")
    train = run_command(
        ["ns-train", "soft-mining", *COMMON, *TINY_NERFACTO, "--max-num-iterations", "4", "--steps-per-save", "4",
         "--pipeline.alpha-warmup-steps", "0", "--timestamp", "run", "blender-data", "--data", str(work / "scene")],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(train)
    assert "Soft mining: 64 samples over 6 images of 32x32 px" in train.stdout
    config = work / "outputs" / "e2e" / "soft-mining" / "run" / "config.yml"
    assert sorted(p.name for p in (config.parent / "nerfstudio_models").iterdir()) == ["step-000000003.ckpt"]
    # config.yml stores the classes by their module paths: these names must stay stable
    text = config.read_text()
    for name in ("nerfstudio_methods.soft_mining.pipeline.SoftMiningPipelineConfig",
                 "nerfstudio_methods.soft_mining.datamanager.SoftMiningDataManagerConfig",
                 "nerfstudio_methods.soft_mining.sampler.SoftMiningSamplerConfig"):  # fmt: skip
        assert name in text
    return config


def test_ns_eval_writes_psnr_and_ssim(trained_soft_mining: Path) -> None:
    report, _ = ns_eval(trained_soft_mining)
    assert report["method_name"] == "soft-mining"
    metrics = report["results"]
    assert 0 < metrics["psnr"] < 60 and math.isfinite(metrics["psnr"])
    assert -1 <= metrics["ssim"] <= 1
    assert "lpips" not in metrics  # offline without cached AlexNet weights (compat layer)


def test_ns_render_writes_a_video(trained_soft_mining: Path) -> None:
    frames = ns_render_interpolated(trained_soft_mining)
    assert frames.ndim == 4 and frames.shape[0] >= 2 and frames.shape[1:] == (32, 32, 3)


def test_vanilla_nerf_with_soft_mining_trains(trained_soft_mining: Path) -> None:
    """The sampler in a second method: nerfstudio's vanilla NeRF (VanillaDataManager), exact-gradient drift."""
    work = run_folder(trained_soft_mining)
    result = run_command(
        ["ns-train", "soft-mining-vanilla-nerf", *COMMON, "--max-num-iterations", "2", "--steps-per-save", "2",
         "--pipeline.model.num-coarse-samples", "8", "--pipeline.model.num-importance-samples", "8",
         "--pipeline.drift-gradient", "exact", "--timestamp", "vanilla", "blender-data", "--data",
         str(work / "scene")],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(result)
    models = work / "outputs" / "e2e" / "soft-mining-vanilla-nerf" / "vanilla" / "nerfstudio_models"
    assert (models / "step-000000001.ckpt").is_file()
