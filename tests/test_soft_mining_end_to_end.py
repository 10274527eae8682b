"""Soft mining end to end on generated scenes, as a user runs it: ns-train soft-mining, ns-eval, ns-render, and
the sampler in a second method (soft-mining-vanilla-nerf); the released code's base model (soft-mining-ngp: trained
long enough to beat the best constant-colour render of the held-out views, rendered, and its uniform twin
``--pipeline.sampler uniform``) and its LLFF preset in NDC (soft-mining-llff on llff-data).

Tiny images, ray counts and networks keep each command to the ~15-20 s of nerfstudio's imports plus seconds of work.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import (
    assert_succeeded,
    best_constant_psnr,
    blender_images,
    generate_scene,
    ns_eval,
    ns_render_interpolated,
    run_command,
    run_folder,
)

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
         "--pipeline.drift-gradient", "exact", "--pipeline.datamanager.soft-mining.langevin-drift", "20",
         "--timestamp", "vanilla", "blender-data", "--data",
         str(work / "scene")],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(result)
    models = work / "outputs" / "e2e" / "soft-mining-vanilla-nerf" / "vanilla" / "nerfstudio_models"
    assert (models / "step-000000001.ckpt").is_file()


# --- soft-mining-ngp: the released code's base model --------------------------------------------------------------

NGP_STEPS = 100
"""Long enough for the tiny run below to learn the 32 x 32 scene (MARGIN_DB), short enough to cost seconds: 100
steps of 64 rays train in ~4 s (0.03-0.04 s a step on the shared 2 cores), next to ns-train's ~15-20 s of imports."""
TINY_NGP = [
    "--pipeline.model.implementation", "torch",
    "--pipeline.model.num-proposal-samples-per-ray", "32",  # one proposal network
    "--pipeline.model.num-nerf-samples-per-ray", "16",
    "--pipeline.model.log2-hashmap-size", "12",
    "--pipeline.model.eval-num-rays-per-chunk", "1024",
    # At the preset's initial density 1 runs this small render only the white background for some seeds (15.22 dB
    # on this scene: 32+16 and 16+8 samples at seed 42, 128+64 at seed 1); at 0.1 every measured seed learns.
    "--pipeline.model.average-init-density", "0.1",
]  # fmt: skip
MARGIN_DB = 3.0
"""How far ns-eval's held-out PSNR of the 100-step run must beat the best constant colour (15.82 dB on this scene;
white alone 15.22). Measured: 21.15 dB (seed 42, the default), 21.51, 21.40, 21.44 (seeds 1-3), i.e. 5.3-5.7 dB
above; 3 dB fails a constant or background render and leaves 2.3 dB for thread counts and platforms."""


def ngp_schedule(steps: int) -> list[str]:
    """The preset's cosine schedule over ``steps`` (not its 20,000) and a 5% alpha warm-up, as scripts/demo.sh."""
    return ["--max-num-iterations", str(steps), "--steps-per-save", str(steps),
            "--optimizers.fields.scheduler.max-steps", str(steps),
            "--optimizers.proposal-networks.scheduler.max-steps", str(steps),
            "--pipeline.alpha-warmup-steps", str(steps // 20)]  # fmt: skip


@pytest.fixture(scope="module")
def trained_soft_mining_ngp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short soft-mining-ngp run on a 32x32 generated Blender scene; returns its config.yml."""
    work = tmp_path_factory.mktemp("soft_mining_ngp_e2e")
    generate_scene("blender", work / "scene", "--width", "32", "--height", "32", "--num-cameras", "6")
    train = run_command(
        ["ns-train", "soft-mining-ngp", *COMMON, *TINY_NGP, *ngp_schedule(NGP_STEPS), "--timestamp", "run",
         "blender-data", "--data", str(work / "scene")],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(train)
    assert "Soft mining: 64 samples over 6 images of 32x32 px" in train.stdout
    config = work / "outputs" / "e2e" / "soft-mining-ngp" / "run" / "config.yml"
    checkpoint = f"step-{NGP_STEPS - 1:09d}.ckpt"
    assert sorted(p.name for p in (config.parent / "nerfstudio_models").iterdir()) == [checkpoint]
    text = config.read_text()
    for name in ("nerfstudio_methods.soft_mining.model.SoftMiningNGPModelConfig",
                 "nerfstudio_methods.soft_mining.pipeline.SoftMiningPipelineConfig"):  # fmt: skip
        assert name in text
    return config


def test_soft_mining_ngp_learns_the_scene(trained_soft_mining_ngp: Path) -> None:
    """ns-eval on the held-out views beats the best constant colour (a model that learned no geometry renders at
    most that; the white background alone is below it) by MARGIN_DB."""
    report, _ = ns_eval(trained_soft_mining_ngp)
    assert report["method_name"] == "soft-mining-ngp"
    psnr = report["results"]["psnr"]
    floor = best_constant_psnr(blender_images(run_folder(trained_soft_mining_ngp) / "scene"))
    assert 15.0 < floor < 17.0  # the generated 32 x 32 scene: 15.82 dB measured (white alone: 15.22)
    assert psnr > floor + MARGIN_DB, f"held-out PSNR {psnr:.2f} dB; best constant colour: {floor:.2f} dB"


def test_soft_mining_ngp_renders_a_video(trained_soft_mining_ngp: Path) -> None:
    frames = ns_render_interpolated(trained_soft_mining_ngp)
    assert frames.ndim == 4 and frames.shape[0] >= 2 and frames.shape[1:] == (32, 32, 3)
    assert frames.std() > 8.0  # not one colour (the white background only)


def test_soft_mining_ngp_uniform_twin_trains(trained_soft_mining_ngp: Path) -> None:
    """--pipeline.sampler uniform: the same preset on uniformly drawn pixels (no population)."""
    work = run_folder(trained_soft_mining_ngp)
    result = run_command(
        ["ns-train", "soft-mining-ngp", *COMMON, *TINY_NGP, *ngp_schedule(4), "--pipeline.sampler", "uniform",
         "--timestamp", "uniform", "blender-data", "--data", str(work / "scene")],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(result)
    assert "Uniform pixel sampling" in result.stdout
    run = work / "outputs" / "e2e" / "soft-mining-ngp" / "uniform"
    assert (run / "nerfstudio_models" / "step-000000003.ckpt").is_file()
    assert "sampler: uniform" in (run / "config.yml").read_text()


def test_soft_mining_llff_trains_and_evaluates(tmp_path: Path) -> None:
    """soft-mining-llff (rays in NDC) on a generated forward-facing scene read by llff-data at full size (every
    8th image held out: 2 of 9), then ns-eval."""
    scene = generate_scene("llff", tmp_path / "llff", "--width", "32", "--height", "24", "--num-cameras", "9")
    train = run_command(
        ["ns-train", "soft-mining-llff", *COMMON, *TINY_NGP, *ngp_schedule(4), "--timestamp", "run",
         "llff-data", "--data", str(scene), "--downscale-factor", "1"],
        cwd=tmp_path,
    )  # fmt: skip
    assert_succeeded(train)
    assert "Soft mining: 64 samples over 7 images of 32x24 px" in train.stdout
    config = tmp_path / "outputs" / "e2e" / "soft-mining-llff" / "run" / "config.yml"
    assert "ndc: true" in config.read_text()
    report, _ = ns_eval(config)
    assert report["method_name"] == "soft-mining-llff"
    assert math.isfinite(report["results"]["psnr"]) and 0 < report["results"]["psnr"] < 60
