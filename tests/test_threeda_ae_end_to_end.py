"""3Da-AE end to end on generated SRN-layout scenes, as a user runs it: ``ns-train 3da-ae-cpu`` (autoencoder from
scratch, then the latent and joint phases), ``ns-train 3da-ae-exploit-cpu`` on new scenes in that run's latent space
(and its refusal of scenes stage 1 trained), ``ns-train rgb-triplanes-cpu``, then ``ns-eval`` (per-scene PSNR/SSIM
after decoding) and ``ns-render`` for each.

Scenes of 32x32 pixels (a 4x4 latent with the 8x autoencoder), 8x8 tri-planes, 4 + 4 samples and a few epochs keep
each command to nerfstudio's ~15 s of imports plus seconds of work.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.conftest import assert_succeeded, generate_scene, ns_eval, run_command, run_folder

pytestmark = pytest.mark.slow

SIZE, VIEWS, SCENES, EVAL_VIEWS = 32, 6, 5, 2
STAGE_ONE_SCENES = 3  # scenes 0-2 for stage 1; 3-4 are new scenes for stage 2
TINY = [
    "--machine.device-type", "cpu",
    "--vis", "tensorboard",
    "--viewer.quit-on-train-completion", "True",
    "--experiment-name", "e2e",
    "--pipeline.datamanager.images-per-batch", "4",
    "--pipeline.datamanager.dataparser.num-eval-views", str(EVAL_VIEWS),
    "--pipeline.datamanager.dataparser.min-camera-height", "-2",
    "--pipeline.model.triplane-resolution", "8",
    "--pipeline.model.num-samples", "4",
    "--pipeline.model.num-importance-samples", "4",
    "--pipeline.model.eval-chunk-rays", "256",
]  # fmt: skip
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("threeda_ae")
    generate_scene(
        "srn", folder / "srn", "--width", str(SIZE), "--height", str(SIZE),
        "--num-cameras", str(VIEWS), "--num-instances", str(SCENES),
    )  # fmt: skip
    return folder


def data_of(work: Path) -> Path:
    return work / "srn" / "cars_train"


def train(work: Path, method: str, timestamp: str, *args: str, expect_success: bool = True):
    result = run_command(
        ["ns-train", method, *TINY, "--timestamp", timestamp, "--data", str(data_of(work)), *args],
        cwd=work,
        env=ONE_THREAD,
    )
    if expect_success:
        assert_succeeded(result)
    return work / "outputs" / "e2e" / method / timestamp / "config.yml", result


def white_image_psnr(work: Path, first_scene: int, count: int) -> float:
    """PSNR of an all-white prediction on the held-out views (the first EVAL_VIEWS kept views of each scene)."""
    instances = sorted(p for p in data_of(work).iterdir() if p.is_dir())[first_scene : first_scene + count]
    errors = []
    for instance in instances:
        for path in sorted((instance / "rgb").glob("*.png"))[:EVAL_VIEWS]:
            image = iio.imread(path)[..., :3].astype(np.float64) / 255.0
            errors.append(np.mean((1.0 - image) ** 2))
    return float(np.mean([-10 * math.log10(e) for e in errors]))


def render_interpolated(config: Path) -> np.ndarray:
    work = run_folder(config)
    output = work / "renders" / config.parent.parent.name
    result = run_command(
        ["ns-render", "interpolate", "--load-config", str(config), "--output-path", str(output),
         "--output-format", "images", "--image-format", "png", "--interpolation-steps", "1"],
        cwd=work,
        env=ONE_THREAD,
    )  # fmt: skip
    assert_succeeded(result)
    frames = [iio.imread(p).astype(np.float64) / 255.0 for p in sorted(output.glob("*.png"))]
    assert frames
    return np.stack(frames)


@pytest.fixture(scope="module")
def stage_one(work: Path) -> tuple[Path, str]:
    config, result = train(
        work, "3da-ae-cpu", "stage1",
        "--pipeline.datamanager.dataparser.num-scenes", str(STAGE_ONE_SCENES),
        "--pipeline.model.phases.autoencoder.epochs", "3",
        "--pipeline.model.phases.latent.epochs", "2",
        "--pipeline.model.phases.joint.epochs", "2",
    )  # fmt: skip
    return config, result.stdout


def test_stage_one_trains_evaluates_and_renders(work: Path, stage_one: tuple[Path, str]) -> None:
    config, stdout = stage_one
    assert stdout.count("no pretrained autoencoder given") == 1
    for phase in ("autoencoder", "latent", "joint"):
        assert f"phase '{phase}'" in stdout
    assert "latent normaliser tanh(" in stdout
    metrics, _ = ns_eval(config)
    results = metrics["results"]
    per_scene = [results[f"psnr_scene_index{s:02d}"] for s in range(STAGE_ONE_SCENES)]
    assert all(math.isfinite(v) for v in per_scene)
    # Every scene has the same number of held-out views, so the mean is the mean of the scene means.
    assert results["psnr"] == pytest.approx(sum(per_scene) / len(per_scene), abs=1e-6)
    assert "ssim" in results and f"ssim_scene_index{STAGE_ONE_SCENES - 1:02d}" in results
    stats = json.loads((config.parent / "scene_stats" / "rank0.json").read_text())
    assert stats["scene_trained_by_ranks"] == [1] * STAGE_ONE_SCENES
    assert all(count > 0 for count in stats["scene_images_trained"])
    frames = render_interpolated(config)
    assert frames.shape[1:] == (SIZE, SIZE, 3)


def test_exploit_learns_new_scenes_in_the_stage_one_latent_space(work: Path, stage_one: tuple[Path, str]) -> None:
    stage_one_config, _ = stage_one
    config, result = train(
        work, "3da-ae-exploit-cpu", "exploit",
        "--pipeline.stage-one-checkpoint", str(stage_one_config.parent),
        "--pipeline.datamanager.dataparser.scene-start", str(STAGE_ONE_SCENES),
        "--pipeline.model.phases.latent.epochs", "2",
        "--pipeline.model.phases.decoder.epochs", "1",
    )  # fmt: skip
    assert "taken from" in result.stdout
    assert "no pretrained autoencoder given" not in result.stdout  # the weights are stage 1's
    assert "latent normaliser tanh(" not in result.stdout  # stage 1's normaliser is kept, not re-measured
    metrics, _ = ns_eval(config)
    frames = render_interpolated(config)
    assert frames.shape[1:] == (SIZE, SIZE, 3)
    assert set(k for k in metrics["results"] if k.startswith("psnr_scene_index")) == {
        "psnr_scene_index00",
        "psnr_scene_index01",
    }
    import torch

    def autoencoder_encoder(config_path: Path) -> dict:
        (checkpoint,) = sorted((config_path.parent / "nerfstudio_models").glob("step-*.ckpt"))
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["pipeline"]
        return {k: v for k, v in state.items() if k.startswith("_model.autoencoder.encoder.")}

    # The latent space is frozen in stage 2: the encoder is stage 1's, bit for bit.
    before, after = autoencoder_encoder(stage_one_config), autoencoder_encoder(config)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_exploit_refuses_scenes_seen_in_stage_one(work: Path, stage_one: tuple[Path, str]) -> None:
    stage_one_config, _ = stage_one
    _, result = train(
        work, "3da-ae-exploit-cpu", "overlap",
        "--pipeline.stage-one-checkpoint", str(stage_one_config.parent),
        "--pipeline.datamanager.dataparser.scene-start", "2",
        expect_success=False,
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "were trained in stage 1" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_exploit_names_a_missing_stage_one_run(work: Path) -> None:
    _, result = train(
        work, "3da-ae-exploit-cpu", "missing",
        "--pipeline.stage-one-checkpoint", str(work / "no_such_run"),
        expect_success=False,
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no_such_run" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_rgb_triplanes_beat_a_blank_image(work: Path) -> None:
    config, result = train(
        work, "rgb-triplanes-cpu", "rgb",
        "--pipeline.datamanager.dataparser.num-scenes", "2",
        "--pipeline.model.phases.rgb.epochs", "30",
    )  # fmt: skip
    assert "phase 'rgb'" in result.stdout
    metrics, _ = ns_eval(config)
    # The objects cover part of each white image: a model that learned nothing renders white.
    assert metrics["results"]["psnr"] > white_image_psnr(work, 0, 2) + 1.0
    frames = render_interpolated(config)
    assert frames.shape[1:] == (SIZE, SIZE, 3) and frames.min() < 0.9


def test_two_processes_share_the_autoencoder_and_split_the_scenes(work: Path) -> None:
    """``--machine.num-devices 2`` on CPU (gloo): each process trains its own scenes, the shared weights (autoencoder,
    MLP, global bases) and the latent normaliser stay bit-identical, and rank 0's checkpoint holds every scene as
    the process that trained it left it."""
    import torch

    from nerfstudio_methods.threeda_ae.model import checksum

    config, result = train(
        work, "3da-ae-cpu", "two_processes",
        "--machine.num-devices", "2",
        "--pipeline.datamanager.dataparser.num-scenes", "4",
        "--pipeline.model.phases.autoencoder.epochs", "1",
        "--pipeline.model.phases.latent.epochs", "1",
        "--pipeline.model.phases.joint.epochs", "1",
    )  # fmt: skip
    ranks = [json.loads((config.parent / "scene_stats" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["owned_scenes"] == [0, 2] and ranks[1]["owned_scenes"] == [2, 4]
    assert ranks[0]["shared_weights_sha256"] == ranks[1]["shared_weights_sha256"]
    assert ranks[0]["latent_scale"] == ranks[1]["latent_scale"]
    assert ranks[0]["latent_background"] == ranks[1]["latent_background"]
    # Each scene was trained by exactly one process, its owner (bit 1 << rank).
    assert ranks[0]["scene_trained_by_ranks"] == [1, 1, 2, 2]
    assert all(count > 0 for count in ranks[0]["scene_images_trained"])
    (checkpoint,) = sorted((config.parent / "nerfstudio_models").glob("step-*.ckpt"))
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["pipeline"]
    for rank in ranks:
        for scene, digest in rank["owned_scene_sha256"].items():
            tensors = [state[f"_model.scenes.{name}.{scene}"] for name in ("local_planes", "coefficients", "biases")]
            assert checksum(tensors) == digest, f"scene {scene} of rank {rank['rank']}"
