"""InfoNeRF end to end on a generated Blender scene, as a user runs it: ns-train infonerf (long enough that ns-eval's
PSNR of its training views beats the best constant colour), ns-eval, ns-render.

Tiny images, ray counts and networks keep each command to the ~15-20 s of nerfstudio's imports plus seconds of work.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    assert_succeeded,
    best_constant_psnr,
    blender_images,
    generate_scene,
    min_frame_std,
    ns_eval,
    ns_render_interpolated,
    run_command,
    run_folder,
)

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
TRAIN_VIEWS = (0, 2, 4)
FEW_SHOT = ["blender-fewshot-data", "--train-views", *map(str, TRAIN_VIEWS), "--eval-skip", "1"]

STEPS = 150
"""The module's run is long enough to learn its training views (MARGIN_DB): 150 steps cost ~15 s more than 4."""
LEARN = [
    "--max-num-iterations", str(STEPS),
    "--steps-per-save", str(STEPS),
    # 10x the preset's 5e-4, and no centre crop (the preset's first 500 steps see only the middle half of each image,
    # so a short run renders noise at the borders: with the crop, 300 steps at 5e-4 and 200 at 5e-3 measured 14.28 and
    # 13.87 dB on the training views, below their constant colour)
    "--optimizers.fields.optimizer.lr", "5e-3",
    "--pipeline.datamanager.precrop-iters", "0",
]  # fmt: skip
MARGIN_DB = 3.0
"""How far ns-eval's PSNR of the training views must beat their best constant colour (15.62 dB). Measured after
STEPS: 21.20 dB (seed 42, the default), 20.97, 21.10 (seeds 1, 2), i.e. 5.3-5.6 dB above (100 steps: 19.57; 200
steps at the preset's 5e-4: 18.52). 3 dB fails a constant or background render and leaves 2.3 dB for thread counts and platforms.
The 2 held-out views are not the measure: 3 views and 150 steps do not generalise to them (14.7-15.1 dB measured,
under their constant colour's 15.82)."""


@pytest.fixture(scope="module")
def trained_infonerf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A STEPS-step infonerf run (with neighbour rays and the KL loss on) on a 32x32 scene; returns its config.yml."""
    work = tmp_path_factory.mktemp("infonerf_e2e")
    scene = work / "scene"
    generate_scene("blender", scene, "--width", "32", "--height", "32", "--num-cameras", "6")
    train = run_command(
        ["ns-train", "infonerf", *TINY, *LEARN, "--pipeline.datamanager.neighbour-rays", "True",
         "--pipeline.model.kl-lambda", "1e-3", "--experiment-name", "e2e", "--timestamp", "run",
         *FEW_SHOT, "--data", str(scene)],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(train)
    config = work / "outputs" / "e2e" / "infonerf" / "run" / "config.yml"
    assert config.is_file()
    assert sorted(p.name for p in (config.parent / "nerfstudio_models").iterdir()) == [f"step-{STEPS - 1:09d}.ckpt"]
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


def training_views_config(config: Path) -> tuple[Path, Path]:
    """A copy of the run's config.yml whose dataparser reads a copy of the scene with the training views
    (TRAIN_VIEWS of transforms_train.json) as its test split, so that ns-eval measures them; returns it and the
    copied scene."""
    scene = run_folder(config) / "scene"
    views = scene.with_name("scene_training_views")
    shutil.copytree(scene, views)
    split = json.loads((scene / "transforms_train.json").read_text())
    split["frames"] = [split["frames"][i] for i in TRAIN_VIEWS]
    (views / "transforms_test.json").write_text(json.dumps(split))
    # config.yml writes the dataparser's data path as the list of its parts; the scene folder's is the only "scene"
    text = config.read_text()
    assert text.count(f"- {scene.name}\n") == 1
    copy = config.with_name("config_training_views.yml")
    copy.write_text(text.replace(f"- {scene.name}\n", f"- {views.name}\n"))
    return copy, views


def test_ns_eval_of_the_training_views_beats_a_constant_colour(trained_infonerf: Path) -> None:
    """The run learned its 3 views: ns-eval's PSNR of those views beats the best constant colour (a model that
    learned nothing renders at most that) by MARGIN_DB."""
    config, views = training_views_config(trained_infonerf)
    report, _ = ns_eval(config)
    assert report["checkpoint"].endswith(f"step-{STEPS - 1:09d}.ckpt")
    images = blender_images(views)
    assert len(images) == len(TRAIN_VIEWS)
    floor = best_constant_psnr(images)
    assert 15.0 < floor < 17.0  # the generated scene's views 0, 2, 4: 15.62 dB measured
    psnr = report["results"]["psnr"]
    assert psnr > floor + MARGIN_DB, f"training-view PSNR {psnr:.2f} dB; best constant colour: {floor:.2f} dB"


def test_ns_render_writes_a_video_of_the_scene(trained_infonerf: Path) -> None:
    """Interpolated between the training cameras (where the run learned the scene, see MARGIN_DB), not one colour:
    every frame's pixel std is above a quarter of the training images' smallest (8-bit units; ~0 for a frame in one
    colour after h264). Measured: 35.9, 35.7, 28.9 (seeds 42, 1, 2) against the images' 40.7."""
    frames = ns_render_interpolated(trained_infonerf, "--pose-source", "train")
    assert frames.ndim == 4 and frames.shape[0] >= 2 and frames.shape[1:] == (32, 32, 3)
    scene = run_folder(trained_infonerf) / "scene"
    truth = 255.0 * np.stack([blender_images(scene, "train")[i] for i in TRAIN_VIEWS])
    assert min_frame_std(frames) > 0.25 * min_frame_std(truth), (min_frame_std(frames), min_frame_std(truth))


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
