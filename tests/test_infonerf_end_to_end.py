"""InfoNeRF end to end on a generated Blender scene, as a user runs it: ns-train infonerf, ns-eval, ns-render.

Tiny images, ray counts and networks keep each command to the ~15-20 s of nerfstudio's imports plus seconds of work.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import assert_succeeded, generate_scene, ns_eval, ns_render_interpolated, run_command, run_folder

pytestmark = pytest.mark.slow

TINY = [
    "--machine.device-type", "cpu",
    "--vis", "tensorboard",
    "--viewer.quit-on-train-completion", "True",
    "--max-num-iterations", "4",
    "--steps-per-save", "4",
    "--pipeline.datamanager.train-num-rays-per-batch", "64",
    "--pipeline.datamanager.num-unseen-rays", "64",
    "--pipeline.datamanager.eval-num-rays-per-batch", "64",
    "--pipeline.model.num-coarse-samples", "16",
    "--pipeline.model.num-importance-samples", "16",
    "--pipeline.model.mlp-layer-width", "64",
    "--pipeline.model.eval-num-rays-per-chunk", "1024",
]  # fmt: skip
# 3 of the generated scene's 6 training views; evaluate on all its test views (test[::8] would keep one).
FEW_SHOT = ["blender-fewshot-data", "--train-views", "0", "2", "4", "--eval-skip", "1"]


@pytest.fixture(scope="module")
def trained_infonerf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step infonerf run (with neighbour rays and the KL loss on) on a 32x32 scene; returns its config.yml."""
    work = tmp_path_factory.mktemp("infonerf_e2e")
    scene = work / "scene"
    generate_scene("blender", scene, "--width", "32", "--height", "32", "--num-cameras", "6")
    train = run_command(
        ["ns-train", "infonerf", *TINY, "--pipeline.datamanager.neighbour-rays", "True",
         "--pipeline.model.kl-lambda", "1e-3", "--experiment-name", "e2e", "--timestamp", "run",
         *FEW_SHOT, "--data", str(scene)],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(train)
    config = work / "outputs" / "e2e" / "infonerf" / "run" / "config.yml"
    assert config.is_file()
    assert sorted(p.name for p in (config.parent / "nerfstudio_models").iterdir()) == ["step-000000003.ckpt"]
    # config.yml stores the classes by their module paths: these names must stay stable
    text = config.read_text()
    for name in ("nerfstudio_methods.infonerf.model.InfoNeRFModelConfig",
                 "nerfstudio_methods.infonerf.datamanager.InfoNeRFDataManagerConfig",
                 "dataparsers.blender.BlenderFewShotDataParserConfig"):  # fmt: skip
        assert name in text
    return config


def test_ns_eval_writes_psnr_and_ssim(trained_infonerf: Path) -> None:
    report, _ = ns_eval(trained_infonerf)
    assert report["method_name"] == "infonerf"
    metrics = report["results"]
    assert 0 < metrics["psnr"] < 60 and math.isfinite(metrics["psnr"])
    assert -1 <= metrics["ssim"] <= 1
    assert math.isfinite(metrics["coarse_psnr"])
    # Offline without cached AlexNet weights, LPIPS is left out (the compat layer), never computed at random.
    assert "lpips" not in metrics


def test_ns_render_writes_a_video(trained_infonerf: Path) -> None:
    frames = ns_render_interpolated(trained_infonerf)
    assert frames.ndim == 4 and frames.shape[0] >= 2 and frames.shape[1:] == (32, 32, 3)


def test_dtu_preset_trains_with_faithful_unseen_poses(trained_infonerf: Path) -> None:
    """infonerf-dtu (dtu-data, KL, density noise, 4-layer coarse MLP) for 2 steps on a generated DTU scan, unseen
    rays drawn from all loaded poses (the released code's choice)."""
    work = run_folder(trained_infonerf)
    generate_scene("dtu", work / "dtu", "--width", "32", "--height", "24", "--num-cameras", "6")
    result = run_command(
        ["ns-train", "infonerf-dtu", *TINY, "--max-num-iterations", "2", "--experiment-name", "e2e",
         "--timestamp", "dtu", "--pipeline.datamanager.unseen-pose-source", "all-poses",
         "dtu-data", "--data", str(work / "dtu"), "--train-views", "0", "2", "4"],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(result)
    # the pool: the 6 distinct views of the scan (train 0, 2, 4 + eval 1, 3, 5; val and test are the same views)
    assert "unseen rays come from all 6 loaded poses" in result.stdout
    assert (work / "outputs" / "e2e" / "infonerf-dtu" / "dtu" / "nerfstudio_models" / "step-000000001.ckpt").is_file()


def test_ns_train_help_lists_infonerf(tmp_path: Path) -> None:
    result = run_command(["ns-train", "--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("infonerf", "infonerf-dtu", "infonerf-nerfacto", "infonerf-nerfacto-dtu"):
        assert name in result.stdout


NERFACTO_TINY = [
    "--machine.device-type", "cpu",
    "--vis", "tensorboard",
    "--viewer.quit-on-train-completion", "True",
    "--max-num-iterations", "3",
    "--steps-per-save", "3",
    "--pipeline.datamanager.train-num-rays-per-batch", "64",
    "--pipeline.datamanager.num-unseen-rays", "64",
    "--pipeline.datamanager.eval-num-rays-per-batch", "64",
    "--pipeline.model.implementation", "torch",
    "--pipeline.model.num-levels", "4",
    "--pipeline.model.log2-hashmap-size", "12",
    "--pipeline.model.max-res", "64",
    "--pipeline.model.num-proposal-samples-per-ray", "16", "16",
    "--pipeline.model.num-nerf-samples-per-ray", "8",
    "--pipeline.model.eval-num-rays-per-chunk", "1024",
]  # fmt: skip


def test_infonerf_nerfacto_trains_evaluates_and_renders(tmp_path: Path) -> None:
    """ns-train infonerf-nerfacto (nerfacto's parallel data manager + InfoNeRF's rays and KL), ns-eval, ns-render."""
    scene = generate_scene("blender", tmp_path / "scene", "--width", "32", "--height", "32", "--num-cameras", "6")
    train = run_command(
        ["ns-train", "infonerf-nerfacto", *NERFACTO_TINY, "--pipeline.datamanager.neighbour-rays", "True",
         "--pipeline.model.kl-lambda", "1e-3", "--experiment-name", "e2e", "--timestamp", "run",
         *FEW_SHOT, "--data", str(scene)],
        cwd=tmp_path,
    )  # fmt: skip
    assert_succeeded(train)
    config = tmp_path / "outputs" / "e2e" / "infonerf-nerfacto" / "run" / "config.yml"
    assert (config.parent / "nerfstudio_models" / "step-000000002.ckpt").is_file()
    text = config.read_text()
    for name in ("nerfstudio_methods.infonerf.nerfacto.InfoNeRFNerfactoModelConfig",
                 "nerfstudio_methods.infonerf.datamanager.InfoNeRFParallelDataManagerConfig"):  # fmt: skip
        assert name in text
    report, _ = ns_eval(config)
    assert report["method_name"] == "infonerf-nerfacto"
    assert 0 < report["results"]["psnr"] < 60 and -1 <= report["results"]["ssim"] <= 1
    frames = ns_render_interpolated(config)
    assert frames.ndim == 4 and frames.shape[0] >= 2 and frames.shape[1:] == (32, 32, 3)
