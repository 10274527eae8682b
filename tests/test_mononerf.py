"""MonoNeRF at the model level: stages, losses, batches, default time and scene, feature options, checkpoints.

Generated NVIDIA-layout scenes (24x16, 5 frames, exact disparity, flow and motion masks) and models shrunk below the
CPU preset (16-wide MLPs, 8 samples) keep every test to a fraction of a second. Expected values are worked out
here (hand values, the scene's files read directly, pinhole geometry), not taken from the code under test.
Ops, encoders and the dataparser have their own files (test_mononerf_ops.py, test_mononerf_encoders.py,
test_dynamic_scene_dataparser.py).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation
from PIL import Image

from dataparsers._common import DatasetFormatError
from dataparsers.dynamic_scene import DynamicSceneDataParserConfig
from nerfstudio_methods.mononerf.config import mononerf_cpu_config
from nerfstudio_methods.mononerf.datamanager import MonoNeRFDataManager, MonoNeRFDataManagerConfig
from nerfstudio_methods.mononerf.field import network_time, positional_encoding
from nerfstudio_methods.mononerf.model import MonoNeRFModel, MonoNeRFModelConfig
from nerfstudio_methods.mononerf.pipeline import MonoNeRFPipelineConfig
from nerfstudio_methods.scenegen.formats.nvidia_dynamic import write_nvidia_dynamic

pytestmark = pytest.mark.filterwarnings("ignore:dynamic-scene-data. no multi-view ground truth")

WIDTH, HEIGHT, FRAMES = 24, 16, 5
STATIC_STEPS = 2

# Every term of mononerf.md §1 "Losses, stage 2" with its weight (the brief's λ column).
STAGE_TWO_WEIGHTS = {
    "full_rgb_loss": ("full_loss_mult", 3.0),
    "dynamic_rgb_loss": ("dynamic_loss_mult", 1.0),
    "warped_rgb_loss": ("warped_loss_mult", 1.0),
    "flow_loss": ("flow_loss_mult", 0.02),
    "slow_loss": ("slow_loss_mult", 0.01),
    "temporal_smooth_loss": ("temporal_smooth_loss_mult", 0.1),
    "spatial_smooth_loss": ("spatial_smooth_loss_mult", 0.1),
    "second_order_smooth_loss": ("second_order_smooth_loss_mult", 0.1),
    "cycle_loss": ("cycle_loss_mult", 1.0),
    "mask_loss": ("mask_loss_mult", 0.1),
    "sparsity_loss": ("sparsity_loss_mult", 0.001),
    "depth_loss": ("depth_loss_mult", 0.04),
    "order_loss": ("order_loss_mult", 0.1),
    "depth_blending_loss": ("depth_blending_loss_mult", 1.0),
    "static_flow_loss": ("static_flow_loss_mult", 0.5),
    "mask_flow_loss": ("mask_flow_loss_mult", 0.1),
}

# The loss terms each optional part feeds, and how the model's warning names them.
NEEDS = {
    "flow": {"flow_loss"},
    "motion_masks": {"mask_loss", "order_loss", "static_flow_loss", "mask_flow_loss", "depth_blending_loss"},
    "disp": {"depth_loss", "depth_blending_loss"},
}
PART_NAMES = {
    "flow": "optical flow (flow/)",
    "motion_masks": "motion masks (motion_masks/)",
    "disp": "disparity (disp/)",
}
LOSS_NAMES = {
    "flow_loss": "optical flow loss",
    "depth_loss": "depth loss",
    "depth_blending_loss": "depth-blending loss",
    "mask_loss": "mask loss",
    "order_loss": "order loss",
    "static_flow_loss": "static flow loss",
    "mask_flow_loss": "mask flow loss",
}


# ------------------------------------------------------------------------------------------------ fixtures / helpers


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tensors are tiny: on a loaded 2-core machine two intra-op threads fight over the cores and one render
    of a 24x16 image took 2.7 s against 0.04 s on one thread (measured while a benchmark ran)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two generated scenes, and copies of the first without one optional part each."""
    root = tmp_path_factory.mktemp("mononerf_scenes")
    paths = {"full": root / "full", "second": root / "second"}
    for seed, path in enumerate(paths.values()):
        write_nvidia_dynamic(path, width=WIDTH, height=HEIGHT, num_frames=FRAMES, seed=seed, multiview_gt=False)
    for part in NEEDS:
        copy = root / f"no_{part}"
        shutil.copytree(paths["full"], copy)
        shutil.rmtree(copy / part)
        paths[f"no_{part}"] = copy
    return paths


@cache
def parsed(paths: tuple[Path, ...], training_frames: int = 0):
    config = DynamicSceneDataParserConfig(data=paths[0], extra_scenes=paths[1:], training_frames=training_frames)
    return config.setup().get_dataparser_outputs("train")


def tiny_config(**overrides) -> MonoNeRFModelConfig:
    """The CPU preset shrunk further: 16-wide MLPs, an 8-d code, 8 samples, stage 2 from step 2."""
    config = mononerf_cpu_config().pipeline.model
    assert isinstance(config, MonoNeRFModelConfig)
    sizes = dict(hidden_width=16, code_channels=8, code_hidden=16, num_samples=8, static_steps=STATIC_STEPS)
    return dataclasses.replace(config, **{**sizes, **overrides})


def make_model(paths: tuple[Path, ...], seed: int = 0, training_frames: int = 0, **overrides) -> MonoNeRFModel:
    outputs = parsed(tuple(paths), training_frames)
    torch.manual_seed(seed)
    model = tiny_config(**overrides).setup(
        scene_box=outputs.scene_box, num_train_data=len(outputs.image_filenames), metadata=outputs.metadata
    )
    assert isinstance(model, MonoNeRFModel)
    return model


def make_datamanager(
    paths: tuple[Path, ...], rays: int = 32, training_frames: int = 0, **overrides
) -> MonoNeRFDataManager:
    dataparser = DynamicSceneDataParserConfig(data=paths[0], extra_scenes=paths[1:], training_frames=training_frames)
    config = MonoNeRFDataManagerConfig(dataparser=dataparser, train_num_rays_per_batch=rays, **overrides)
    datamanager = config.setup(device="cpu", test_mode="val")
    assert isinstance(datamanager, MonoNeRFDataManager)
    return datamanager


def in_stage_two(model: MonoNeRFModel) -> MonoNeRFModel:
    model.trained_steps.fill_(model.config.static_steps)
    return model


def camera_of(model: MonoNeRFModel, scene: int, index: int, time: float | None, scene_index: int | None) -> Cameras:
    """Rig camera ``index`` of ``scene`` at ``time`` and with a scene index; None leaves it out (a viewer camera)."""
    cameras = model.scenes[scene].cameras
    part = slice(index, index + 1)
    return Cameras(
        camera_to_worlds=cameras.camera_to_worlds[part],
        fx=cameras.fx[part],
        fy=cameras.fy[part],
        cx=cameras.cx[part],
        cy=cameras.cy[part],
        width=cameras.width[part],
        height=cameras.height[part],
        times=None if time is None else torch.tensor([[time]]),
        metadata=None if scene_index is None else {"scene_index": torch.tensor([[scene_index]])},
    )


def render(model: MonoNeRFModel, camera: Cameras) -> torch.Tensor:
    model.eval()
    return model.get_outputs_for_camera(camera)["rgb"]


def noisy_features(model: MonoNeRFModel, scene: int = 0, seed: int = 7) -> None:
    """Replace the cached video, image and pooled features of ``scene`` by noise."""
    features = model.scene_features(scene)
    generator = torch.Generator().manual_seed(seed)

    def noise(value: torch.Tensor) -> torch.Tensor:
        return torch.randn(value.shape, generator=generator) * 3.0

    model._features[scene] = dataclasses.replace(
        features, video=noise(features.video), image=noise(features.image), pooled=noise(features.pooled)
    )


def random_head(head: torch.nn.Linear, seed: int, std: float) -> None:
    """Normal weights and biases for a head that starts at zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * std)
        head.bias.copy_(torch.randn(head.bias.shape, generator=generator) * std)


def random_velocity_head(model: MonoNeRFModel, seed: int = 3, std: float = 0.3) -> None:
    """A moving velocity field (the head starts at zero: no motion)."""
    random_head(model.dynamic_field.velocity_head, seed, std)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


# ------------------------------------------------------------------------------------------------ encodings and time


def test_positional_encoding_hand_values() -> None:
    """nerf-pytorch order, no pi: [x, sin(x), cos(x), sin(2x), cos(2x)] with every dimension inside each group."""
    x, y = 0.5, -1.25
    expected = [x, y, math.sin(x), math.sin(y), math.cos(x), math.cos(y)]
    expected += [math.sin(2 * x), math.sin(2 * y), math.cos(2 * x), math.cos(2 * y)]
    encoded = positional_encoding(torch.tensor([[x, y]], dtype=torch.float64), 2)
    assert encoded.shape == (1, 10)
    np.testing.assert_allclose(encoded[0].numpy(), expected, rtol=0, atol=1e-12)
    # 10 frequencies of (x, y, z, t): the 84 inputs of the dynamic trunk's lin_in (mononerf.md §1)
    assert positional_encoding(torch.zeros(7, 4), 10).shape == (7, 84)


def test_network_time_hand_values() -> None:
    """t = f / N * 2 - 1 (mononerf.md §1): frame 0 of 5 is -1, frame 4 is 0.6, frame 2.5 is 0."""
    frames = torch.tensor([[0.0], [1.0], [2.5], [4.0]])
    np.testing.assert_allclose(network_time(frames, torch.full_like(frames, 5.0))[:, 0], [-1.0, -0.6, 0.0, 0.6])
    twelve = torch.tensor([[0.0], [11.0]])
    np.testing.assert_allclose(network_time(twelve, torch.full_like(twelve, 12.0))[:, 0], [-1.0, 1.0 - 2.0 / 12])


@pytest.mark.parametrize("twelve_frames", [False, True])
def test_rays_reach_the_trunk_at_network_time(
    scenes: dict[str, Path], monkeypatch: pytest.MonkeyPatch, twelve_frames: bool
) -> None:
    """A ray at nerfstudio time 0.75 of a 5-frame video is frame 3: the radiance query sees t = 3/5*2-1 = 0.2 and the
    2-step Euler velocity also 2.5 and 3.5 (0.0, 0.4); with released_twelve_frames the velocity divides by 12."""
    model = in_stage_two(make_model((scenes["full"],), released_twelve_frames=twelve_frames))
    seen: list[float] = []
    original = model.dynamic_field.trunk

    def spy(points, time, code):
        seen.extend(float(v) for v in torch.unique(time))
        return original(points, time, code)

    monkeypatch.setattr(model.dynamic_field, "trunk", spy)
    render(model, camera_of(model, 0, 1, time=0.75, scene_index=0))
    velocity_count = 12 if twelve_frames else FRAMES
    expected = {0.2} | {round(f / velocity_count * 2 - 1, 5) for f in (2.5, 3.0, 3.5)}
    assert sorted(set(np.round(seen, 5).tolist())) == pytest.approx(sorted(expected), abs=1e-5)


# ------------------------------------------------------------------------------------------------ the two stages


def test_two_stages_in_one_training_loop(scenes: dict[str, Path]) -> None:
    """Through the pipeline and its callbacks: steps 0-1 train only the static field with the static MSE; from step 2
    the static field gets no gradient and every term of mononerf.md §1's table is present."""
    dataparser = DynamicSceneDataParserConfig(data=scenes["full"])
    config = MonoNeRFPipelineConfig(
        datamanager=MonoNeRFDataManagerConfig(dataparser=dataparser, train_num_rays_per_batch=32),
        model=tiny_config(),
    )
    torch.manual_seed(0)
    pipeline = config.setup(device="cpu", test_mode="val")
    assert isinstance(pipeline.datamanager, MonoNeRFDataManager) and pipeline.datamanager.static_steps == STATIC_STEPS
    model = pipeline.model
    assert isinstance(model, MonoNeRFModel)
    groups = model.get_param_groups()
    assert {id(p) for p in groups["static"]} == {id(p) for p in model.static_field.parameters()}
    assert {id(p) for p in groups["dynamic"]} == {id(p) for p in model.dynamic_field.parameters()}
    assert not any(p.requires_grad for p in [*model.video_encoder.parameters(), *model.image_encoder.parameters()])
    callbacks = pipeline.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=None, grad_scaler=None, pipeline=pipeline, trainer=None)
    )
    pipeline.train()
    for step in range(STATIC_STEPS + 2):
        for callback in callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        model.zero_grad(set_to_none=True)
        _, losses, _ = pipeline.get_train_loss_dict(step)
        torch.stack(list(losses.values())).sum().backward()

        def graded(module: torch.nn.Module) -> list[bool]:
            return [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters()]

        if step < STATIC_STEPS:
            assert not model.in_dynamic_stage
            assert set(losses) == {"static_rgb_loss"}
            assert any(graded(model.static_field)) and not any(graded(model.dynamic_field))
        else:
            assert model.in_dynamic_stage
            assert set(losses) == set(STAGE_TWO_WEIGHTS)
            assert all(torch.isfinite(value) for value in losses.values())
            assert not any(graded(model.static_field)) and any(graded(model.dynamic_field))
            # the velocity head (zero at the start) is trained too
            assert all(graded(model.dynamic_field.velocity_head))


def test_stage_one_loss_is_the_static_mse_on_static_pixels(scenes: dict[str, Path]) -> None:
    model = make_model((scenes["full"],))
    datamanager = make_datamanager((scenes["full"],), rays=32)
    torch.manual_seed(1)
    bundle, batch = datamanager.next_train(0)
    assert 0 < int(batch["is_dynamic"].sum()) < 32
    model.train()
    outputs = model(bundle)
    losses = model.get_loss_dict(outputs, batch)
    static = ~batch["is_dynamic"]
    expected = ((outputs["rgb_static"] - batch["image"]) ** 2)[static].mean()
    assert set(losses) == {"static_rgb_loss"}
    assert float(losses["static_rgb_loss"]) == pytest.approx(float(expected), rel=1e-6)


def test_stage_two_terms_carry_the_brief_weights(scenes: dict[str, Path]) -> None:
    """The defaults are the brief's λ, and each term scales with its own weight (same outputs, weights doubled)."""
    defaults = MonoNeRFModelConfig()
    for name, (field, weight) in STAGE_TWO_WEIGHTS.items():
        assert getattr(defaults, field) == weight, name
    assert defaults.static_loss_mult == 1.0 and defaults.depth_blending_thickness == 0.03
    model = in_stage_two(make_model((scenes["full"],)))
    random_velocity_head(model)  # motion, so that the flow-based terms are not zero
    datamanager = make_datamanager((scenes["full"],), rays=32)
    torch.manual_seed(2)
    bundle, batch = datamanager.rays_of_frame(0, datamanager.videos[0], 2, 32)
    model.train()
    outputs = model(bundle)
    base = model.get_loss_dict(outputs, batch)
    for field, _ in STAGE_TWO_WEIGHTS.values():
        setattr(model.config, field, 2.0 * getattr(model.config, field))
    doubled = model.get_loss_dict(outputs, batch)
    for name in STAGE_TWO_WEIGHTS:
        assert float(base[name]) > 0, name
        assert float(doubled[name]) == pytest.approx(2.0 * float(base[name]), rel=1e-6), name


def test_losses_read_the_frame_and_scene_the_rays_were_rendered_at(scenes: dict[str, Path]) -> None:
    """The rays carry their frame (time) and scene; the model renders and supervises from them, and they agree with
    the frame and scene the data manager read the targets from. The batch's copies are not read by the losses."""
    paths = (scenes["full"], scenes["second"])
    model = in_stage_two(make_model(paths))
    random_velocity_head(model)
    datamanager = make_datamanager(paths, rays=32)
    model.train()
    torch.manual_seed(4)
    bundle, batch = datamanager.next_train(5)
    outputs = model(bundle)
    assert torch.equal(outputs["frame_index"][:, 0].long(), batch["frame_index"])
    assert torch.equal(outputs["scene_index"], batch["scene_index"])
    losses = model.get_loss_dict(outputs, batch)
    other_frames = torch.where(batch["frame_index"] == 0, FRAMES - 1, 0)  # every ray's neighbours differ
    scrambled = {**batch, "frame_index": other_frames, "scene_index": torch.zeros_like(batch["scene_index"])}
    again = model.get_loss_dict(outputs, scrambled)
    assert set(again) == set(losses)
    for name in losses:
        assert float(again[name]) == float(losses[name]), name


# ------------------------------------------------------------------------------------------------ missing optional parts


@pytest.mark.parametrize("part", sorted(NEEDS))
def test_missing_part_switches_off_its_losses_with_one_warning(
    scenes: dict[str, Path], part: str, capsys: pytest.CaptureFixture
) -> None:
    path = scenes[f"no_{part}"]
    model = in_stage_two(make_model((path,)))
    datamanager = make_datamanager((path,), rays=32)
    assert model.scenes[0].missing == (PART_NAMES[part],)
    capsys.readouterr()
    model.train()
    losses = {}
    for step in (5, 6):
        bundle, batch = datamanager.next_train(step)
        losses = model.get_loss_dict(model(bundle), batch)
    assert set(losses) == set(STAGE_TWO_WEIGHTS) - NEEDS[part]
    printed = capsys.readouterr().out
    warnings = [line for line in printed.splitlines() if "MonoNeRF:" in line and path.name in line]
    assert len(warnings) == 1, printed
    assert PART_NAMES[part] in " ".join(printed.split())  # rich may wrap the line
    # the warning lists every loss that is actually left out
    switched_off = model.switched_off_losses(model.scenes[0])
    assert {LOSS_NAMES[name] for name in NEEDS[part]} <= set(switched_off)


def test_scene_without_motion_masks_draws_uniform_rays(scenes: dict[str, Path]) -> None:
    datamanager = make_datamanager((scenes["no_motion_masks"],), rays=48)
    _, batch = datamanager.next_train(0)
    assert not batch["is_dynamic"].any() and not batch["has_motion_mask"].any()
    assert batch["has_flow"].all() and batch["has_disparity"].all()
    pixels = {(float(u), float(v)) for u, v in batch["pixel_uv"]}
    assert len(pixels) == 48  # distinct pixels, drawn without replacement


def test_scene_without_motion_masks_gets_them_from_the_static_error(
    scenes: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Halfway through the static stage the pipeline renders each training frame with the static branch; pixels
    missed by more than ``static_error_ratio`` x the frame's median miss, grown by ``motion_mask_dilation``, move.
    The static render is replaced by the frame itself with a known wrong patch, so the expected mask is the patch
    grown by one pixel; frames after the training frames are all "moving" (never read); the scene then trains as
    one with masks."""
    training_frames = 3
    dataparser = DynamicSceneDataParserConfig(data=scenes["no_motion_masks"], training_frames=training_frames)
    config = MonoNeRFPipelineConfig(
        datamanager=MonoNeRFDataManagerConfig(dataparser=dataparser, train_num_rays_per_batch=32),
        model=tiny_config(static_steps=4),
        static_error_ratio=2.0,
        motion_mask_dilation=1,
    )
    torch.manual_seed(0)
    pipeline = config.setup(device="cpu", test_mode="val")
    model = pipeline.model
    assert isinstance(model, MonoNeRFModel)
    video = model.scenes[0]
    # Every pixel off by 0.01 (the median miss), a 2x3 patch at rows 5-6, columns 9-11 off by 0.5 in one channel.
    patch = (slice(5, 7), slice(9, 12))

    def static_render(camera):
        frame = int(round(float(camera.times[0, 0]) * (video.num_frames - 1)))
        rendered = (video.images[frame] + 0.01).clone()
        rendered[patch[0], patch[1], 1] += 0.5
        return {"rgb_static": rendered}

    monkeypatch.setattr(model, "get_outputs_for_camera", static_render)
    pipeline.get_train_loss_dict(0)
    pipeline.get_train_loss_dict(1)
    datamanager = pipeline.datamanager
    assert datamanager.videos[0].motion_mask is None  # not before step static_steps // 2 = 2
    monkeypatch.setattr(
        type(pipeline), "get_train_loss_dict", lambda self, step: self.derive_motion_masks_when_due(step)
    )
    pipeline.get_train_loss_dict(2)
    expected = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    expected[4:8, 8:13] = True  # the patch grown by one pixel in every direction
    derived = datamanager.videos[0].motion_mask
    assert derived is not None and datamanager.videos[0].motion_mask_derived
    for frame in range(training_frames):
        assert torch.equal(derived[frame], expected), frame
    assert derived[training_frames:].all()
    assert torch.equal(model.scenes[0].motion_mask, derived)
    monkeypatch.undo()
    # From now on: half the rays of a frame on the derived moving pixels (20 of them), the mask terms on.
    _, batch = datamanager.next_train(3)  # still the static stage: it keeps to the training frames
    assert batch["has_motion_mask"].all()
    assert int(batch["is_dynamic"].sum()) == 16
    assert int(batch["frame_index"].max()) < training_frames


def test_ignored_parts_are_not_read(scenes: dict[str, Path]) -> None:
    config = DynamicSceneDataParserConfig(data=scenes["full"], ignore_parts=("flow", "motion-masks"))
    video = config.setup().get_dataparser_outputs("train").metadata["scenes"][0]
    assert video.flow_forward is None and video.flow_backward is None and video.motion_mask is None
    assert video.disparity is not None
    assert set(video.missing) == {PART_NAMES["flow"], PART_NAMES["motion_masks"]}


def test_multi_scene_flow_loss_uses_only_scenes_with_flow(
    scenes: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    """Scene 0 has flow, scene 1 not: one warning names scene 1 only; the flow term is the L1 over scene 0's rays."""
    paths = (scenes["full"], scenes["no_flow"])
    model = in_stage_two(make_model(paths))
    datamanager = make_datamanager(paths, rays=32)
    capsys.readouterr()
    model.train()
    torch.manual_seed(3)
    bundle, batch = datamanager.next_train(5)
    outputs = model(bundle)
    losses = model.get_loss_dict(outputs, batch)
    printed = " ".join(capsys.readouterr().out.split())
    assert printed.count("MonoNeRF: no_flow has no optical flow (flow/)") == 1 and "MonoNeRF: full has" not in printed
    frame = batch["frame_index"]
    in_scene_0 = (batch["scene_index"] == 0).float()

    def l1(induced: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor) -> float:
        return float((mask[:, None] * (induced - flow).abs()).sum() / (2.0 * mask.sum()).clamp_min(1e-8))

    forward_mask = batch["flow_forward_mask"] * in_scene_0 * (frame < FRAMES - 1).float()
    backward_mask = batch["flow_backward_mask"] * in_scene_0 * (frame > 0).float()
    expected = 0.02 * (
        l1(outputs["induced_flow_forward"], batch["flow_forward"], forward_mask)
        + l1(outputs["induced_flow_backward"], batch["flow_backward"], backward_mask)
    )
    assert float(losses["flow_loss"]) == pytest.approx(expected, rel=1e-5, abs=1e-9)
    # scene 1's induced flow is never read
    scene_1 = batch["scene_index"] == 1
    changed = dict(outputs)
    for key in ("induced_flow_forward", "induced_flow_backward"):
        changed[key] = torch.where(scene_1[:, None], torch.full_like(outputs[key], 1e6), outputs[key])
    assert float(model.get_loss_dict(changed, batch)["flow_loss"]) == pytest.approx(float(losses["flow_loss"]))


# ------------------------------------------------------------------------------------------------ the datamanager


def test_one_frame_per_scene_per_step(scenes: dict[str, Path]) -> None:
    paths = (scenes["full"], scenes["second"])
    datamanager = make_datamanager(paths, rays=33)
    frames_seen: set[int] = set()
    for step in range(4):
        bundle, batch = datamanager.next_train(step)
        scene = batch["scene_index"]
        assert [int((scene == s).sum()) for s in (0, 1)] == [17, 16]  # 33 rays split as evenly as possible
        assert torch.equal(bundle.metadata["scene_index"][:, 0].long(), scene)
        for s in (0, 1):
            frames = batch["frame_index"][scene == s].unique()
            assert frames.numel() == 1
            frames_seen.add(int(frames))
        assert bundle.times is not None
        np.testing.assert_allclose(bundle.times[:, 0], batch["frame_index"] / (FRAMES - 1), atol=1e-7)
    assert len(frames_seen) > 1


def test_batch_values_are_the_scene_files_at_the_pixels(scenes: dict[str, Path]) -> None:
    """Colour, disparity, flows, masks and the ray itself, looked up independently from the scene's files and the
    camera's pinhole model at each ray's ``pixel_uv`` (pixel centres)."""
    path = scenes["full"]
    datamanager = make_datamanager((path,), rays=40)
    cameras = datamanager.scenes[0].cameras
    for step in range(3):
        bundle, batch = datamanager.next_train(step)
        frame = int(batch["frame_index"][0])
        u, v = batch["pixel_uv"][:, 0], batch["pixel_uv"][:, 1]
        assert torch.all(u % 1 == 0.5) and torch.all(v % 1 == 0.5)
        rows, cols = (v - 0.5).long().numpy(), (u - 0.5).long().numpy()
        image = read_png(path / "images" / f"{frame:03d}.png")[..., :3] / 255.0
        np.testing.assert_allclose(batch["image"].numpy(), image[rows, cols], atol=1e-6)
        disparity = np.load(path / "disp" / f"{frame:03d}.npy")
        np.testing.assert_allclose(batch["disparity"].numpy(), disparity[rows, cols], rtol=1e-6)
        moving = read_png(path / "motion_masks" / f"{frame:03d}.png") > 0
        assert batch["is_dynamic"].numpy().tolist() == moving[rows, cols].tolist()
        for name, neighbour in (("fwd", frame + 1), ("bwd", frame - 1)):
            key = "flow_forward" if name == "fwd" else "flow_backward"
            if 0 <= neighbour < FRAMES:
                stored = np.load(path / "flow" / f"{frame:03d}_{name}.npz")
                flow, mask = stored["flow"][rows, cols], stored["mask"][rows, cols]
            else:
                flow, mask = np.zeros((len(rows), 2)), np.zeros(len(rows))
            np.testing.assert_allclose(batch[key].numpy(), flow, atol=1e-5)
            np.testing.assert_allclose(batch[f"{key}_mask"].numpy(), mask, atol=1e-6)
        # the ray through the pixel centre: OpenGL camera, y up, looking down -z
        pose = cameras.camera_to_worlds[frame]
        fx, fy, cx, cy = (float(getattr(cameras, k)[frame]) for k in ("fx", "fy", "cx", "cy"))
        local = torch.stack([(u - cx) / fx, -(v - cy) / fy, -torch.ones_like(u)], dim=-1)
        directions = local @ pose[:, :3].T
        directions = directions / directions.norm(dim=-1, keepdim=True)
        torch.testing.assert_close(bundle.directions, directions, atol=1e-5, rtol=0)
        torch.testing.assert_close(bundle.origins, pose[:, 3].expand_as(bundle.origins), atol=1e-6, rtol=0)


def test_dynamic_ray_fraction(scenes: dict[str, Path]) -> None:
    path = scenes["full"]
    moving_per_frame = [int((read_png(path / "motion_masks" / f"{i:03d}.png") > 0).sum()) for i in range(FRAMES)]
    assert min(moving_per_frame) >= 16 and max(moving_per_frame) < 57
    # enough moving pixels: exactly half of the 32 rays lie on them
    half = make_datamanager((path,), rays=32)
    for step in range(4):
        _, batch = half.next_train(step)
        assert int(batch["is_dynamic"].sum()) == 16
    # too few for 90% of 64 (57): every moving pixel of the frame once, the rest static
    most = make_datamanager((path,), rays=64, dynamic_ray_fraction=0.9)
    for step in range(4):
        _, batch = most.next_train(step)
        frame = int(batch["frame_index"][0])
        dynamic_uv = {(float(u), float(v)) for u, v in batch["pixel_uv"][batch["is_dynamic"]]}
        assert int(batch["is_dynamic"].sum()) == len(dynamic_uv) == moving_per_frame[frame]
        assert batch["image"].shape == (64, 3)


def test_unseen_frames_stage_two_draws_only_training_frames(scenes: dict[str, Path]) -> None:
    datamanager = make_datamanager((scenes["full"],), rays=8, training_frames=3)
    datamanager.static_steps = 4  # the pipeline sets it from the model config
    torch.manual_seed(4)
    stage_one = {int(datamanager.next_train(step)[1]["frame_index"][0]) for step in [0, 1, 2, 3] * 10}
    stage_two = {int(datamanager.next_train(step)[1]["frame_index"][0]) for step in range(4, 44)}
    assert stage_two <= {0, 1, 2} and len(stage_two) == 3
    assert stage_one & {3, 4}  # the static stage also sees the later frames (static_stage_all_frames)
    only = make_datamanager((scenes["full"],), rays=8, training_frames=3, static_stage_all_frames=False)
    only.static_steps = 4
    assert {int(only.next_train(0)[1]["frame_index"][0]) for _ in range(30)} <= {0, 1, 2}
    # Without motion masks every pixel is "static": the static stage must not fit the unseen frames' motion.
    unmasked = make_datamanager((scenes["no_motion_masks"],), rays=8, training_frames=3)
    unmasked.static_steps = 4
    assert {int(unmasked.next_train(0)[1]["frame_index"][0]) for _ in range(30)} <= {0, 1, 2}


# ------------------------------------------------------------------------------------------------ rendering


def test_rays_without_time_or_scene_render_at_the_defaults(scenes: dict[str, Path]) -> None:
    """A camera without times or scene index (the viewer, ``ns-render interpolate``) shows default_scene at
    default_time: the same image as the camera with both given explicitly."""
    model = in_stage_two(make_model((scenes["full"], scenes["second"]), default_time=0.5, default_scene=1))
    bare = render(model, camera_of(model, 1, 2, time=None, scene_index=None))
    explicit = render(model, camera_of(model, 1, 2, time=0.5, scene_index=1))
    torch.testing.assert_close(bare, explicit, rtol=0, atol=1e-6)
    # time and scene do matter, so the equality above is not trivial
    assert (render(model, camera_of(model, 1, 2, time=0.0, scene_index=1)) - explicit).abs().max() > 1e-4
    assert (render(model, camera_of(model, 1, 2, time=0.5, scene_index=0)) - explicit).abs().max() > 1e-4


def test_rays_of_two_scenes_in_one_bundle_render_as_their_own_scene(scenes: dict[str, Path]) -> None:
    model = in_stage_two(make_model((scenes["full"], scenes["second"])))
    model.eval()
    scene_0 = camera_of(model, 0, 1, time=0.25, scene_index=0).generate_rays(camera_indices=0)
    scene_1 = camera_of(model, 1, 3, time=0.75, scene_index=1).generate_rays(camera_indices=0)
    rays_0, rays_1 = scene_0.flatten()[::7], scene_1.flatten()[::5]
    mixed = RayBundle(
        origins=torch.cat([rays_0.origins, rays_1.origins]),
        directions=torch.cat([rays_0.directions, rays_1.directions]),
        pixel_area=torch.cat([rays_0.pixel_area, rays_1.pixel_area]),
        times=torch.cat([rays_0.times, rays_1.times]),  # type: ignore[list-item]
        metadata={"scene_index": torch.cat([rays_0.metadata["scene_index"], rays_1.metadata["scene_index"]])},
    )
    with torch.no_grad():
        together = model(mixed)["rgb"]
        alone = torch.cat([model(rays_0)["rgb"], model(rays_1)["rgb"]])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize("training_frames", [0, 3])
def test_warped_and_flow_terms_use_only_rays_whose_frame_has_the_neighbour(
    scenes: dict[str, Path], training_frames: int
) -> None:
    """The last supervised frame (4 of 5, or 2 in the unseen-frames setup) has no forward neighbour and frame 0 no
    backward one: changing the forward (backward) warped colour and induced flow of their rays changes nothing."""
    path = scenes["full"]
    model = in_stage_two(make_model((path,), training_frames=training_frames))
    datamanager = make_datamanager((path,), rays=16, training_frames=training_frames)
    last = (training_frames or FRAMES) - 1
    model.train()
    for frame in (0, 1, last):
        torch.manual_seed(frame)
        bundle, batch = datamanager.rays_of_frame(0, datamanager.videos[0], frame, 16)
        if frame == last and training_frames:
            assert float(batch["flow_forward_mask"].sum()) > 0  # the data has the flow; the model must not use it
        outputs = model(bundle)
        base = model.get_loss_dict(outputs, batch)
        for direction, has_neighbour in (("forward", frame < last), ("backward", frame > 0)):
            changed = dict(outputs)
            changed[f"rgb_dynamic_{direction}"] = outputs[f"rgb_dynamic_{direction}"] + 0.25
            changed[f"induced_flow_{direction}"] = outputs[f"induced_flow_{direction}"] + 3.0
            after = model.get_loss_dict(changed, batch)
            for term in ("warped_rgb_loss", "flow_loss"):
                moved = abs(float(after[term]) - float(base[term])) > 1e-6
                assert moved == has_neighbour, (frame, direction, term)


def test_released_warped_frame_bug_decides_by_the_last_scene(scenes: dict[str, Path]) -> None:
    """Scene 0's rays at its last frame, scene 1's at frame 1: with the flag, scene 1's frame decides that a forward
    neighbour exists for every ray, so scene 0's forward warped colour counts; without it, it does not."""
    paths = (scenes["full"], scenes["second"])
    datamanager = make_datamanager(paths, rays=16)
    parts = [datamanager.rays_of_frame(s, datamanager.videos[s], frame, 8) for s, frame in ((0, FRAMES - 1), (1, 1))]
    from nerfstudio_methods.rays import cat_ray_bundles

    bundle = cat_ray_bundles([part[0] for part in parts])
    batch = {key: torch.cat([part[1][key] for part in parts]) for key in parts[0][1]}
    for bug in (False, True):
        model = in_stage_two(make_model(paths, released_warped_frame_bug=bug))
        model.train()
        torch.manual_seed(0)
        outputs = model(bundle)
        base = model.get_loss_dict(outputs, batch)["warped_rgb_loss"]
        changed = dict(outputs)
        in_scene_0 = (batch["scene_index"] == 0).float()[:, None]
        changed["rgb_dynamic_forward"] = outputs["rgb_dynamic_forward"] + 0.25 * in_scene_0
        after = model.get_loss_dict(changed, batch)["warped_rgb_loss"]
        assert (abs(float(after) - float(base)) > 1e-6) == bug


# ------------------------------------------------------------------------------------------------ options and flags


def test_without_features_renders_ignore_the_feature_volumes(scenes: dict[str, Path]) -> None:
    camera_args = dict(scene=0, index=2, time=0.5, scene_index=0)
    for use_features in (False, True):
        model = in_stage_two(make_model((scenes["full"],), use_features=use_features))
        before = render(model, camera_of(model, **camera_args))  # type: ignore[arg-type]
        noisy_features(model)
        after = render(model, camera_of(model, **camera_args))  # type: ignore[arg-type]
        if use_features:
            assert (after - before).abs().max() > 1e-3
        else:
            torch.testing.assert_close(after, before, rtol=0, atol=0)


@pytest.mark.parametrize("bug", [False, True])
def test_released_backward_code_bug_hides_the_code_from_the_backward_trajectory(
    scenes: dict[str, Path], bug: bool
) -> None:
    model = make_model((scenes["full"],), released_backward_code_bug=bug)
    random_velocity_head(model)
    generator = torch.Generator().manual_seed(5)
    points = torch.rand(20, 3, generator=generator) * torch.tensor([1.6, 1.6, 0.9]) - torch.tensor([0.8, 0.8, 0.0])
    frames = torch.full((20, 1), 2.0)
    with torch.no_grad():
        forward, backward = model.trajectories(0, points, frames)
        assert (forward - points).abs().max() > 1e-2 and (backward - points).abs().max() > 1e-2
        noisy_features(model)
        forward_2, backward_2 = model.trajectories(0, points, frames)
    assert (forward_2 - forward).abs().max() > 1e-4  # the forward trajectory always reads the global code
    if bug:
        torch.testing.assert_close(backward_2, backward, rtol=0, atol=0)
    else:
        assert (backward_2 - backward).abs().max() > 1e-4


def test_adjoint_gradients_do_not_depend_on_the_next_scene(scenes: dict[str, Path]) -> None:
    """get_outputs integrates scene 0's trajectories, then scene 1's, then the loss backpropagates. The gradient of
    scene 0's end points must be the same whether or not scene 1 was integrated in between: odeint_adjoint
    re-evaluates the velocity field during backward, which must still be scene 0's (its global code)."""
    paths = (scenes["full"], scenes["second"])
    generator = torch.Generator().manual_seed(6)
    points = torch.rand(6, 3, generator=generator) * 0.5
    frames = torch.full((6, 1), 1.0)
    for solver in ("ode", "ode-adjoint"):
        gradients = []
        for other_scene_in_between in (False, True):
            # rk4 on the [0, 1] grid: a fixed, cheap step; the comparison does not depend on its accuracy
            model = make_model(paths, trajectory_solver=solver, ode_method="rk4", ode_first_step=None)
            random_velocity_head(model, std=0.01)
            forward, _ = model.trajectories(0, points, frames)
            if other_scene_in_between:
                model.trajectories(1, points, frames)
            forward.sum().backward()
            parameters = list(model.dynamic_field.code_mlp.parameters())
            gradients.append(torch.cat([torch.zeros(0) if p.grad is None else p.grad.flatten() for p in parameters]))
        assert gradients[0].abs().max() > 0
        torch.testing.assert_close(gradients[1], gradients[0], rtol=1e-5, atol=1e-9, msg=solver)


# ------------------------------------------------------------------------------------------------ checkpoints, cache


def write_checkpoint(model: MonoNeRFModel, path: Path) -> Path:
    torch.save({"pipeline": {"_model." + k: v for k, v in model.state_dict().items()}, "step": 0}, path)
    return path


def random_blending_head(model: MonoNeRFModel, seed: int = 5, std: float = 1.0) -> None:
    """A trained-looking blending head (it starts at zero: b = 0.5 everywhere)."""
    random_head(model.dynamic_field.blending_head, seed, std)


@pytest.mark.parametrize("fresh_blending", [True, False])
def test_pretrained_checkpoint_initialises_a_fresh_model(
    scenes: dict[str, Path], tmp_path: Path, fresh_blending: bool
) -> None:
    """Every encoder and MLP weight comes from the checkpoint; the blending head too only when asked
    (``pretrained_fresh_blending=False``), else it starts at zero as in a new model."""
    paths = (scenes["full"],)
    source = in_stage_two(make_model(paths, seed=1))
    random_velocity_head(source)
    random_blending_head(source)
    checkpoint = write_checkpoint(source, tmp_path / "step-000000000.ckpt")
    loaded = in_stage_two(
        make_model(paths, seed=2, pretrained_checkpoint=checkpoint, pretrained_fresh_blending=fresh_blending)
    )
    wanted = ("video_encoder.", "image_encoder.", "static_field.", "dynamic_field.")
    source_state, loaded_state = source.state_dict(), loaded.state_dict()
    keys = [k for k in source_state if k.startswith(wanted)]
    assert len(keys) > 20 and any(k.startswith("video_encoder.") for k in keys)
    blending = {"dynamic_field.blending_head.weight", "dynamic_field.blending_head.bias"}
    assert blending <= set(keys)
    for key in keys:
        if key in blending and fresh_blending:
            assert not loaded_state[key].any(), key  # a new head: zeros
        else:
            assert torch.equal(loaded_state[key], source_state[key]), key
    camera = camera_of(source, 0, 1, time=0.5, scene_index=0)
    expected = render(source, camera)
    if fresh_blending:
        assert (render(loaded, camera) - expected).abs().max() > 1e-3
        random_blending_head(loaded)  # the same head as the source's: then the same model
    torch.testing.assert_close(render(loaded, camera), expected, rtol=0, atol=1e-6)


def test_blending_starts_at_one_half_and_ignores_the_trunk_scale(scenes: dict[str, Path]) -> None:
    """b = sigmoid(head(layer_norm(relu(h)))): 0.5 at initialisation, and the same b for a trunk state 1000 times
    larger, so a trunk whose activations grew cannot push it into saturation (the cause measured in issue 23).
    At initialisation every bias is zero, so the residual blocks are positively homogeneous (f(1000 x) = 1000 f(x))
    and scaling the trunk state and the features by 1000 scales the head's input by 1000."""
    model = make_model((scenes["full"],))
    field = model.dynamic_field
    biases = [module.bias for module in field.modules() if isinstance(module, torch.nn.Linear)]
    assert all(not bias.any() for bias in biases if bias is not None)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(64, model.config.hidden_width, generator=generator)
    features = torch.randn(64, model.video_encoder.channels, generator=generator)
    with torch.no_grad():
        blend = field.radiance(hidden, features, [])[2]
        assert torch.equal(blend, torch.full_like(blend, 0.5))
        head = field.blending_head
        head.weight.copy_(0.2 * torch.randn(head.weight.shape, generator=generator))
        blend = field.radiance(hidden, features, [])[2]
        scaled = field.radiance(1000.0 * hidden, 1000.0 * features, [])[2]
    assert 0.01 < float(blend.min()) and float(blend.max()) < 0.99 and float(blend.std()) > 0.05
    torch.testing.assert_close(scaled, blend, rtol=0, atol=1e-4)


def test_checkpoint_with_the_old_blending_head_fails_in_one_line(scenes: dict[str, Path]) -> None:
    model = make_model((scenes["full"],))
    state = model.state_dict()
    state["dynamic_field.blend_head.weight"] = state.pop("dynamic_field.blending_head.weight")
    state["dynamic_field.blend_head.bias"] = state.pop("dynamic_field.blending_head.bias")
    with pytest.raises(DatasetFormatError, match="made before the normalised blending head") as error:
        model.load_state_dict(state)
    assert "\n" not in str(error.value)


def test_pretrained_checkpoint_errors_name_the_file(scenes: dict[str, Path], tmp_path: Path) -> None:
    paths = (scenes["full"],)
    good = write_checkpoint(make_model(paths), tmp_path / "good.ckpt")
    truncated = tmp_path / "truncated.ckpt"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    other_width = write_checkpoint(make_model(paths, hidden_width=8), tmp_path / "width8.ckpt")
    pickled = tmp_path / "array.ckpt"
    torch.save({"pipeline": np.zeros(3)}, pickled)
    multi_line = []
    for path in (truncated, text, other_width, pickled, tmp_path / "absent.ckpt"):
        with pytest.raises(DatasetFormatError) as error:
            make_model(paths, pretrained_checkpoint=path)
        message = str(error.value)
        assert error.value.path == path and message.startswith(str(path)), message
        if "\n" in message:
            multi_line.append(message)
    assert not multi_line, "errors must be one line:\n" + "\n\n".join(multi_line)
    with pytest.raises(DatasetFormatError, match="another shape"):
        make_model(paths, pretrained_checkpoint=other_width)


def test_features_are_computed_once_per_scene_and_rebuilt_after_loading(
    scenes: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = (scenes["full"], scenes["second"])
    model = in_stage_two(make_model(paths, seed=0))
    calls = {"video": 0, "image": 0}
    for name, encoder in (("video", model.video_encoder), ("image", model.image_encoder)):
        original = encoder.encode

        def counted(frames, original=original, name=name):
            calls[name] += 1
            return original(frames)

        monkeypatch.setattr(encoder, "encode", counted)
    datamanager = make_datamanager(paths, rays=16)
    model.train()
    for step in range(3):
        bundle, batch = datamanager.next_train(step)
        model.get_loss_dict(model(bundle), batch)
    render(model, camera_of(model, 0, 0, time=0.0, scene_index=0))
    assert calls == {"video": 2, "image": 2}  # one encoder pass per scene
    # a checkpoint with other encoder weights: the cache is rebuilt from them
    other = make_model(paths, seed=9)
    model.load_state_dict(other.state_dict())
    render(model, camera_of(model, 0, 0, time=0.0, scene_index=0))
    assert calls == {"video": 3, "image": 3}
    mine, theirs = model.scene_features(0), other.scene_features(0)
    torch.testing.assert_close(mine.video, theirs.video, rtol=0, atol=0)
    torch.testing.assert_close(mine.image, theirs.image, rtol=0, atol=0)
    torch.testing.assert_close(mine.pooled, theirs.pooled, rtol=0, atol=0)
