"""MonoNeRF end to end on generated NVIDIA-layout videos, as a user runs it: ``ns-train mononerf-cpu`` through both
stages, ``ns-eval`` (per-frame metrics on DynamicNeRF's camera-0 protocol), ``ns-render`` across time (the fixed-camera
path the run writes) and without times (``interpolate``: the default time), then the two other documented modes:
multi-scene training (``--extra-scenes``) and an unseen scene fine-tuned from that run's checkpoint.

6 frames of 24x16, 16-wide MLPs, 8 samples, 32 rays and a handful of steps keep each command to nerfstudio's
~15 s of imports plus seconds of work.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from nerfstudio_methods import compat
from tests.conftest import assert_succeeded, generate_scene, ns_eval, run_command, run_folder

pytestmark = pytest.mark.slow

FRAMES, WIDTH, HEIGHT = 6, 24, 16
TINY = [
    "--machine.device-type", "cpu",
    "--vis", "tensorboard",
    "--viewer.quit-on-train-completion", "True",
    "--experiment-name", "e2e",
    "--pipeline.datamanager.train-num-rays-per-batch", "32",
    "--pipeline.model.num-samples", "8",
    "--pipeline.model.hidden-width", "16",
    "--pipeline.model.code-channels", "8",
    "--pipeline.model.code-hidden", "16",
    "--pipeline.model.eval-num-rays-per-chunk", "1024",
]  # fmt: skip

# Tensors this small run fastest on one thread, and the CI machine's 2 cores are shared by the suite.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def train(work: Path, timestamp: str, steps: int, static_steps: int, *args: str) -> tuple[Path, str]:
    """``ns-train mononerf-cpu`` for ``steps`` steps, stage 2 from ``static_steps``; returns config.yml and stdout."""
    result = run_command(
        ["ns-train", "mononerf-cpu", *TINY, "--timestamp", timestamp, "--max-num-iterations", str(steps),
         "--steps-per-save", str(steps), "--pipeline.model.static-steps", str(static_steps), *args],
        cwd=work,
        env=ONE_THREAD,
    )  # fmt: skip
    assert_succeeded(result)
    assert f"MonoNeRF: stage 2 from step {static_steps}" in result.stdout
    config = work / "outputs" / "e2e" / "mononerf-cpu" / timestamp / "config.yml"
    assert config.is_file()
    assert [p.name for p in (config.parent / "nerfstudio_models").iterdir()] == [f"step-{steps - 1:09d}.ckpt"]
    return config, result.stdout


def checkpoint_of(config: Path) -> Path:
    (checkpoint,) = sorted((config.parent / "nerfstudio_models").glob("step-*.ckpt"))
    return checkpoint


def render_frames(config: Path, kind: str, name: str, *args: str) -> list[np.ndarray]:
    """``ns-render {kind}`` to lossless PNG frames; returns them in order."""
    work = run_folder(config)
    output = work / "renders" / name
    result = run_command(
        ["ns-render", kind, "--load-config", str(config), "--output-path", str(output), "--output-format", "images",
         "--image-format", "png", *args],
        cwd=work,
        env=ONE_THREAD,
    )  # fmt: skip
    assert_succeeded(result)
    return [iio.imread(path).astype(np.float64) for path in sorted(output.glob("*.png"))]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mononerf_e2e")
    for seed in range(3):
        generate_scene("nvidia-dynamic", folder / f"scene{seed}", "--width", str(WIDTH), "--height", str(HEIGHT),
                       "--num-frames", str(FRAMES), "--seed", str(seed))  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def single_run(work: Path) -> Path:
    """6 steps on one scene: 3 static, 3 dynamic."""
    config, _ = train(work, "single", 6, 3, "dynamic-scene-data", "--data", str(work / "scene0"))
    text = config.read_text()
    for name in ("nerfstudio_methods.mononerf.pipeline.MonoNeRFPipelineConfig",
                 "nerfstudio_methods.mononerf.datamanager.MonoNeRFDataManagerConfig",
                 "nerfstudio_methods.mononerf.model.MonoNeRFModelConfig",
                 "dataparsers.dynamic_scene.DynamicSceneDataParserConfig"):  # fmt: skip
        assert name in text
    return config


@pytest.fixture(scope="module")
def fixed_camera_frames(single_run: Path) -> list[np.ndarray]:
    """The run's fixed-camera path (eval camera 0 at every frame's time) rendered to PNGs."""
    path = single_run.parent / "camera_paths" / "fixed_camera.json"
    keyframes = json.loads(path.read_text())["camera_path"]
    assert [k["render_time"] for k in keyframes] == pytest.approx([i / (FRAMES - 1) for i in range(FRAMES)])
    return render_frames(single_run, "camera-path", "fixed", "--camera-path-filename", str(path))


@pytest.fixture(scope="module")
def multi_run(work: Path) -> Path:
    """4 steps on two scenes (2 static, 2 dynamic)."""
    config, stdout = train(work, "multi", 4, 2, "dynamic-scene-data", "--data", str(work / "scene0"),
                           "--extra-scenes", str(work / "scene1"))  # fmt: skip
    assert "MonoNeRF: 2 scene(s), [16, 16] rays per step" in stdout
    return config


def test_ns_eval_reports_psnr_ssim_and_every_frame(single_run: Path) -> None:
    report, _ = ns_eval(single_run)
    assert report["method_name"] == "mononerf-cpu"
    results = report["results"]
    per_frame = [results[f"psnr_frame_{t:04d}"] for t in range(FRAMES)]
    assert all(math.isfinite(p) and 3 < p < 60 for p in per_frame)
    # DynamicNeRF's protocol (the scene has multiview_GT/): camera 0 at each of the 6 times, one image per frame
    assert results["num_frames"] == FRAMES
    assert results["psnr"] == pytest.approx(sum(per_frame) / FRAMES, rel=1e-6)
    ssim = [results[f"ssim_frame_{t:04d}"] for t in range(FRAMES)]
    assert all(-1 <= s <= 1 for s in ssim) and results["ssim"] == pytest.approx(sum(ssim) / FRAMES, rel=1e-6)
    assert "lpips" not in results  # no AlexNet weights offline: left out, never computed at random
    # The released evaluation's 8-bit PSNR: the same error up to 8-bit rounding, far below these images' error.
    assert results["num_images"] == FRAMES
    assert results["released_psnr"] == pytest.approx(results["psnr"], abs=0.1)
    assert 0 < results["released_ssim"] <= 1


def test_ns_eval_on_the_camera_time_grid(single_run: Path) -> None:
    """MonoNeRF's protocol (``--eval-split grid``: every rig camera at every time, 6 x 6 here) from the same run."""
    grid_config = single_run.with_name("config_grid.yml")
    text = single_run.read_text()
    assert text.count("eval_split: auto") == 1
    grid_config.write_text(text.replace("eval_split: auto", "eval_split: grid"))
    report, _ = ns_eval(grid_config)
    results = report["results"]
    assert results["num_images"] == FRAMES * FRAMES and results["num_frames"] == FRAMES
    per_frame = [results[f"released_psnr_frame_{t:04d}"] for t in range(FRAMES)]
    assert results["released_psnr"] == pytest.approx(sum(per_frame) / FRAMES, rel=1e-6)


def test_ns_render_camera_path_across_time(fixed_camera_frames: list[np.ndarray]) -> None:
    assert len(fixed_camera_frames) == FRAMES
    assert all(frame.shape == (HEIGHT, WIDTH, 3) for frame in fixed_camera_frames)
    # the same camera at different times: the dynamic branch sees the time, so the frames differ
    differences = [np.abs(frame - fixed_camera_frames[0]).mean() for frame in fixed_camera_frames[1:]]
    assert min(differences) > 0.5, differences


def test_ns_render_interpolate_renders_the_default_time(
    single_run: Path, fixed_camera_frames: list[np.ndarray]
) -> None:
    """``interpolate`` builds cameras without times between the eval cameras (all camera 0 on this split): every frame
    is camera 0 at default_time 0, i.e. the fixed-camera path's first frame."""
    frames = render_frames(single_run, "interpolate", "interpolate", "--interpolation-steps", "2")
    assert len(frames) >= 2
    for frame in frames:
        assert frame.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(frame - fixed_camera_frames[0]).max() <= 1.0
        assert np.abs(frame - fixed_camera_frames[-1]).mean() > 0.5


def test_multi_scene_eval_reports_per_scene_means(multi_run: Path) -> None:
    report, _ = ns_eval(multi_run)
    results = report["results"]
    scene_means = [results["psnr_scene_index00"], results["psnr_scene_index01"]]
    assert all(math.isfinite(p) for p in scene_means)
    # 6 images per scene: the overall mean is the mean of the scene means
    assert results["psnr"] == pytest.approx(sum(scene_means) / 2, rel=1e-6)
    for scene in (0, 1):
        frames = [results[f"scene_index{scene:02d}_psnr_frame_{t:04d}"] for t in range(FRAMES)]
        assert scene_means[scene] == pytest.approx(sum(frames) / FRAMES, rel=1e-6)


def test_unseen_scene_fine_tunes_from_the_multi_scene_checkpoint(work: Path, multi_run: Path) -> None:
    """Another seed (so another random initialisation) on a third scene: the frozen encoders keep the multi-scene
    checkpoint's weights through fine-tuning."""
    source = checkpoint_of(multi_run)
    config, stdout = train(work, "unseen", 2, 1, "--machine.seed", "7",
                           "--pipeline.model.pretrained-checkpoint", str(source),
                           "dynamic-scene-data", "--data", str(work / "scene2"))  # fmt: skip
    assert "MonoNeRF: encoders and MLPs initialised from" in " ".join(stdout.split())
    compat.install()  # nerfstudio checkpoints hold numpy scalars (allow-listed for weights_only loading)
    before = torch.load(source, map_location="cpu", weights_only=True)["pipeline"]
    after = torch.load(checkpoint_of(config), map_location="cpu", weights_only=True)["pipeline"]
    encoder_keys = [k for k in before if k.startswith(("_model.video_encoder.", "_model.image_encoder."))]
    assert encoder_keys
    for key in encoder_keys:
        assert torch.equal(after[key], before[key]), key
    # the MLPs started from the checkpoint and took one Adam step (lr 5e-4) in each stage
    for prefix in ("_model.static_field.", "_model.dynamic_field."):
        changes = [float((after[k] - before[k]).abs().max()) for k in before if k.startswith(prefix)]
        assert 0 < max(changes) < 2e-3, (prefix, max(changes))
