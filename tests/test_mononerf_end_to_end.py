"""MonoNeRF end to end on generated NVIDIA-layout videos, as a user runs it: ``ns-train mononerf-cpu`` through both
stages (long enough to beat the best constant-colour render), ``ns-eval`` (per-frame metrics on DynamicNeRF's
camera-0 protocol), ``ns-render`` across time (the fixed-camera path the run writes) and without times
(``interpolate``: the default time), then the two other documented modes: multi-scene training (``--extra-scenes``)
and an unseen scene fine-tuned from that run's checkpoint.

6 frames of 24x16, 16-wide MLPs (32 in the single-scene run), 8 samples, 32 rays (64) and a handful of steps (500)
keep each command to nerfstudio's ~15 s of imports plus seconds of work (~30 s for the single-scene run).
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
from tests.conftest import (
    assert_succeeded,
    best_constant_psnr,
    generate_scene,
    min_frame_std,
    ns_eval,
    run_command,
    run_folder,
)

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


def view0_images(scene: Path) -> list[np.ndarray]:
    """What ns-eval measures on this split: rig camera 0 at every time, ``multiview_GT/<t+1:08d>/cam01.jpg``, in
    [0, 1] (stored at the training size: no resizing)."""
    images = [iio.imread(scene / "multiview_GT" / f"{t + 1:08d}" / "cam01.jpg") for t in range(FRAMES)]
    assert all(image.shape == (HEIGHT, WIDTH, 3) for image in images)
    return [image.astype(np.float64) / 255.0 for image in images]


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


SINGLE_STEPS = 500
"""The single-scene run: half static, half dynamic; long enough to learn the scene (MARGIN_DB) at ~0.06 s a step."""
LEARN = [
    "--optimizers.static.optimizer.lr", "5e-3",  # 10x the preset's 5e-4
    "--optimizers.dynamic.optimizer.lr", "5e-3",
    "--pipeline.datamanager.train-num-rays-per-batch", "64",
    "--pipeline.model.hidden-width", "32",
]  # fmt: skip
MARGIN_DB = 2.0
"""How far ns-eval's PSNR (camera 0 at every time: novel views but for time 0) of the single-scene run must beat the
best constant colour of those images (19.28 dB: a low-contrast scene). Measured after SINGLE_STEPS: 23.54 dB (seed 42,
the default), 22.71, 22.48 (seeds 1, 2), i.e. 3.2-4.3 dB above; 300 steps: 2.1-3.6 dB (seeds 42, 1-3). At TINY's
sizes (16 wide, 32 rays) this rate reached 2.65 dB in 600 steps, and the preset's rate stayed below the constant in
300. 2 dB fails a constant render and leaves 1.2 dB for thread counts and platforms."""


@pytest.fixture(scope="module")
def single_run(work: Path) -> Path:
    """SINGLE_STEPS steps on one scene, half static, half dynamic."""
    config, _ = train(work, "single", SINGLE_STEPS, SINGLE_STEPS // 2, *LEARN,
                      "dynamic-scene-data", "--data", str(work / "scene0"))  # fmt: skip
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
    # The run learned the scene: it beats the best constant-colour render of the same images (a model that learned
    # nothing renders at most that) by MARGIN_DB.
    floor = best_constant_psnr(view0_images(run_folder(single_run) / "scene0"))
    assert 18.0 < floor < 20.5  # the generated 24 x 16 scene: 19.28 dB measured
    assert results["psnr"] > floor + MARGIN_DB, f"PSNR {results['psnr']:.2f} dB; best constant colour: {floor:.2f} dB"


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


def test_ns_render_camera_path_across_time(work: Path, fixed_camera_frames: list[np.ndarray]) -> None:
    assert len(fixed_camera_frames) == FRAMES
    assert all(frame.shape == (HEIGHT, WIDTH, 3) for frame in fixed_camera_frames)
    # Not one colour: every frame's pixel std is above a quarter of the ground truth's smallest (29.1; 0 for a frame in
    # one colour). Measured after SINGLE_STEPS: 23.6, 27.5, 24.4 (seeds 42, 1, 2).
    truth = 255.0 * np.stack(view0_images(work / "scene0"))
    assert min_frame_std(np.stack(fixed_camera_frames)) > 0.25 * min_frame_std(truth)
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
