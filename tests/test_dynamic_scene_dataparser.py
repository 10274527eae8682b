"""The dynamic-scene-data dataparser on real Balloon1 and on generated NVIDIA-layout scenes with exact ground truth."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dataparsers import DatasetFormatError
from dataparsers.dynamic_scene import (
    DynamicSceneDataParserConfig,
    DynamicSceneDataset,
    SceneVideo,
    dynamic_scene_dataparser,
    multiview_gt_path,
)
from dataparsers.llff import average_camera, normalize_poses
from dataparsers.poses_bounds import read_poses_bounds
from nerfstudio_methods.scenegen.cameras import PinholeCamera, forward_facing_rig
from nerfstudio_methods.scenegen.formats._shared import box_downscale
from nerfstudio_methods.scenegen.formats.nvidia_dynamic import frame_time, write_nvidia_dynamic
from nerfstudio_methods.scenegen.groundtruth import disparity, motion_mask, optical_flow, render_view
from nerfstudio_methods.scenegen.scene import forward_facing_scene
from tests.conftest import shared_data

WIDTH, HEIGHT, FRAMES = 32, 18, 4


def parse(data: Path, split: str = "train", **kwargs):
    return DynamicSceneDataParserConfig(data=data, **kwargs).setup().get_dataparser_outputs(split=split)


def video_of(outputs, index: int = 0) -> SceneVideo:
    return outputs.metadata["scenes"][index]


def generated_cameras(seed: int, factor: int = 1) -> list[PinholeCamera]:
    """The generator's rig (write_nvidia_dynamic's arguments), at images/ or images_<factor>/ resolution."""
    cameras = forward_facing_rig(FRAMES, WIDTH, HEIGHT, spread=0.3, seed=seed, layout="line")
    return [camera.scaled(factor) for camera in cameras]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("dynamic")
    for seed in (0, 1):
        write_nvidia_dynamic(root / f"seed{seed}", width=WIDTH, height=HEIGHT, num_frames=FRAMES, seed=seed)
    return {seed: root / f"seed{seed}" for seed in (0, 1)}


def copy_scene(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target


# ------------------------------------------------------------------------------------------------ Balloon1


def test_balloon1_video_cameras_and_normalisation() -> None:
    data = shared_data("nvidia_dynamic/Balloon1")
    assert not (data / "images_2").exists()  # only full resolution ships here: factor 1
    parser = DynamicSceneDataParserConfig(data=data).setup()
    assert parser.includes_time
    train = parser.get_dataparser_outputs("train")
    video = video_of(train)
    assert video.num_frames == 12 and video.supervised_frames == 12 and video.name == "Balloon1"
    assert video.images.shape == (12, 540, 960, 3) and video.images.dtype == torch.float32
    assert 0.0 <= float(video.images.min()) and float(video.images.max()) <= 1.0
    assert len(train.image_filenames) == 12 and train.image_filenames[3].name == "003.png"
    np.testing.assert_allclose(train.cameras.times[:, 0].numpy(), np.arange(12) / 11, atol=1e-7)
    assert train.metadata["frame_index"].tolist() == list(range(12))
    assert train.metadata["scene_index"].tolist() == [0] * 12 and train.metadata["scene_names"] == ["Balloon1"]
    assert train.cameras.metadata is not None and train.cameras.metadata["scene_index"].shape == (12, 1)

    # Disparity is present (raw MiDaS values, read at images/ size unchanged); flow and motion masks are absent.
    assert video.disparity is not None and video.disparity.shape == (12, 540, 960)
    np.testing.assert_array_equal(video.disparity[7].numpy(), np.load(data / "disp" / "007.npy"))
    assert video.flow_forward is None and video.flow_backward is None and video.motion_mask is None
    assert video.missing == ("optical flow (flow/)", "motion masks (motion_masks/)")

    # Intrinsics: poses_bounds.npy's f ~ 920.68 px at 960x540, principal point at the image centre.
    raw = np.load(data / "poses_bounds.npy")
    np.testing.assert_allclose(train.cameras.fx[:, 0].numpy(), raw[:, 14], rtol=1e-6)
    assert float(train.cameras.cx[0]) == 480.0 and float(train.cameras.cy[0]) == 270.0

    # DynamicNeRF's pipeline: 5th-percentile near -> 1 / 0.9, average camera at the origin with identity rotation.
    c2w = train.cameras.camera_to_worlds.double().numpy()
    near_far = train.metadata["near_far"].double().numpy()
    assert np.percentile(near_far[:, 0], 5) == pytest.approx(1 / 0.9, rel=1e-5)
    np.testing.assert_allclose(average_camera(c2w), np.eye(4), atol=1e-5)
    poses = read_poses_bounds(data / "poses_bounds.npy")
    expected, expected_near_far, transform, scale = normalize_poses(
        poses.camera_to_world, poses.near_far, 0.9, recenter=True, near_percentile=5
    )
    np.testing.assert_allclose(c2w, expected, atol=1e-5)
    np.testing.assert_allclose(near_far, expected_near_far, rtol=1e-6)
    # By hand: scale = 1 / (np.percentile(near, 5) * 0.9), and the transform maps raw centres onto normalised ones.
    assert train.dataparser_scale == pytest.approx(1 / (np.percentile(raw[:, 15], 5) * 0.9))
    assert scale == train.dataparser_scale
    t = train.dataparser_transform.double().numpy()
    np.testing.assert_allclose(transform, t, atol=1e-6)
    np.testing.assert_allclose(scale * (t[:, :3] @ poses.camera_to_world[5, :, 3] + t[:, 3]), c2w[5, :, 3], atol=1e-4)
    # With near_percentile 0 it is llff-data's minimum-near normalisation.
    minimum = parse(data, near_percentile=0.0)
    assert float(minimum.metadata["near_far"][:, 0].min()) == pytest.approx(1 / 0.9, rel=1e-5)
    # The scene box holds every camera and reaches past the far bound in front of the rig.
    aabb = train.scene_box.aabb.numpy()
    assert np.all(c2w[:, :, 3] >= aabb[0]) and np.all(c2w[:, :, 3] <= aabb[1])
    assert aabb[0, 2] < -0.9 * near_far[:, 1].max()


def test_balloon1_auto_eval_falls_back_to_training_frames_with_one_warning() -> None:
    data = shared_data("nvidia_dynamic/Balloon1")
    parser = DynamicSceneDataParserConfig(data=data).setup()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        test = parser.get_dataparser_outputs("test")
    messages = [str(w.message) for w in caught if "multi-view ground truth" in str(w.message)]
    assert len(messages) == 1 and "Balloon1" in messages[0]
    assert test.metadata["eval_split"] == "training-frames"
    assert [p.name for p in test.image_filenames] == [f"{i:03d}.png" for i in range(12)]
    assert test.metadata["camera_index"].tolist() == list(range(12))
    with pytest.raises(DatasetFormatError, match=r"multiview_GT/00000001/cam01\.jpg: missing multi-view"):
        parse(data, "test", eval_split="view0")


# ------------------------------------------------------------------------------------------------ generated


def test_generated_flow_masks_and_disparity_at_full_resolution(scenes: dict[int, Path]) -> None:
    """At images/ resolution the read-back flow, its mask and the motion masks are the generator's exact values."""
    video = video_of(parse(scenes[0]))
    assert video.missing == ()
    cameras = generated_cameras(0)
    scene = forward_facing_scene(0, dynamic=True)
    assert video.flow_forward is not None and video.flow_forward_mask is not None
    assert video.flow_backward is not None and video.flow_backward_mask is not None
    assert video.motion_mask is not None and video.disparity is not None
    for i in range(FRAMES):
        time = frame_time(i, FRAMES)
        render = render_view(scene, cameras[i], time)
        np.testing.assert_array_equal(video.motion_mask[i].numpy(), motion_mask(scene, render))
        np.testing.assert_allclose(video.disparity[i].numpy(), disparity(cameras[i], render), rtol=1e-6)
        for j, flow, mask in (
            (i + 1, video.flow_forward, video.flow_forward_mask),
            (i - 1, video.flow_backward, video.flow_backward_mask),
        ):
            if not 0 <= j < FRAMES:
                assert float(flow[i].abs().max()) == 0.0 and float(mask[i].max()) == 0.0
                continue
            truth = optical_flow(scene, cameras[i], time, cameras[j], frame_time(j, FRAMES))
            np.testing.assert_allclose(flow[i].numpy(), truth.flow, atol=1e-4)
            np.testing.assert_array_equal(mask[i].numpy(), truth.mask)


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_flow_read_back_at_images_2_resolution(scenes: dict[int, Path], seed: int) -> None:
    """Factor 2: flow re-evaluated on the half-resolution cameras, an independent ground truth.

    The reader resamples the full-resolution flow (nearest) and halves the vectors; the truth is computed directly on
    the 16x9 cameras. They agree wherever a half-resolution pixel and its 2x2 full-resolution block see one surface;
    the residual comes from the sub-pixel sampling offset, well below the flow itself (which halves if not rescaled).
    """
    outputs = parse(scenes[seed], downscale_factor=2)
    video = video_of(outputs)
    assert video.images.shape == (FRAMES, 9, 16, 3)
    raw = np.load(scenes[seed] / "poses_bounds.npy")
    np.testing.assert_allclose(outputs.cameras.fx[:, 0].numpy(), raw[:, 14] / 2, rtol=1e-6)
    assert int(outputs.cameras.width[0]) == 16 and int(outputs.cameras.height[0]) == 9
    assert float(outputs.cameras.cx[0]) == 8.0 and float(outputs.cameras.cy[0]) == 4.5
    full, half = generated_cameras(seed), generated_cameras(seed, factor=2)
    scene = forward_facing_scene(seed, dynamic=True)
    assert video.flow_forward is not None and video.flow_forward_mask is not None
    assert video.flow_backward is not None and video.motion_mask is not None
    read, truth = [], []
    for i in range(FRAMES):
        time = frame_time(i, FRAMES)
        half_ids = render_view(scene, half[i], time).primitive_id
        full_ids = render_view(scene, full[i], time).primitive_id.reshape(9, 2, 16, 2)
        interior = (full_ids == half_ids[:, None, :, None]).all(axis=(1, 3))
        assert interior.mean() > 0.6
        moving = motion_mask(scene, render_view(scene, half[i], time))
        np.testing.assert_array_equal(video.motion_mask[i].numpy()[interior], moving[interior])
        for j, flow, mask in ((i + 1, video.flow_forward, video.flow_forward_mask), (i - 1, video.flow_backward, None)):
            if not 0 <= j < FRAMES:
                continue
            exact = optical_flow(scene, half[i], time, half[j], frame_time(j, FRAMES))
            chosen = interior & (exact.mask > 0)
            if mask is not None:
                chosen &= mask[i].numpy() > 0
            assert chosen.sum() > 60
            read.append(flow[i].numpy()[chosen])
            truth.append(exact.flow[chosen])
    read_all, truth_all = np.concatenate(read), np.concatenate(truth)
    error = np.abs(read_all - truth_all).max(axis=1)
    assert np.abs(truth_all).max() > 1.0  # the scene really moves by pixels
    assert error.max() < 0.2 and np.median(error) < 0.03
    # Least-squares gain of read vs truth: 1 (vectors in pixels of the 16x9 images), not 2.
    gain = float((read_all * truth_all).sum() / (truth_all**2).sum())
    assert gain == pytest.approx(1.0, abs=0.02)


def test_generated_view0_split(scenes: dict[int, Path]) -> None:
    parser = DynamicSceneDataParserConfig(data=scenes[0], downscale_factor=2, eval_camera=1).setup()
    train = parser.get_dataparser_outputs("train")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # multiview_GT/ exists: no fallback warning
        test = parser.get_dataparser_outputs("test")
    assert test.metadata["eval_split"] == "view0"
    assert len(test.image_filenames) == FRAMES
    assert test.image_filenames == [multiview_gt_path(scenes[0], t, 1) for t in range(FRAMES)]
    assert test.image_filenames[2] == scenes[0] / "multiview_GT" / "00000003" / "cam02.jpg"
    assert test.metadata["camera_index"].tolist() == [1] * FRAMES
    assert test.metadata["frame_index"].tolist() == list(range(FRAMES))
    np.testing.assert_allclose(test.cameras.times[:, 0].numpy(), np.arange(FRAMES) / (FRAMES - 1), atol=1e-7)
    for k in range(FRAMES):
        assert torch.equal(test.cameras.camera_to_worlds[k], train.cameras.camera_to_worlds[1])
        assert float(test.cameras.fx[k]) == float(train.cameras.fx[1])
    # The same scene is shared, not loaded twice.
    assert video_of(test) is video_of(train)

    # Images come back at the training size (16x9), box-filtered from the 32x18 ground truth.
    dataset = DynamicSceneDataset(test)
    scene = forward_facing_scene(0, dynamic=True)
    camera = generated_cameras(0)[1]
    renders = [box_downscale(render_view(scene, camera, frame_time(t, FRAMES)).rgb, 2) for t in range(FRAMES)]
    for t in range(FRAMES):
        image = dataset[t]["image"].numpy()
        assert image.shape == (9, 16, 3)
        errors = [float(np.abs(image - render).mean()) for render in renders]
        # Up to JPEG, it is camera 1 at time t, and closer to it than to camera 1 at any other time.
        assert errors[t] < 0.017 and int(np.argmin(errors)) == t
    # At t == camera the ground truth is the training frame itself (up to JPEG).
    assert np.abs(dataset[1]["image"].numpy() - video_of(train).images[1].numpy()).mean() < 0.02


def test_generated_grid_split(scenes: dict[int, Path]) -> None:
    parser = DynamicSceneDataParserConfig(data=scenes[1], downscale_factor=2, eval_split="grid").setup()
    train = parser.get_dataparser_outputs("train")
    test = parser.get_dataparser_outputs("test")
    assert len(test.image_filenames) == FRAMES * FRAMES
    pairs = list(zip(test.metadata["frame_index"].tolist(), test.metadata["camera_index"].tolist()))
    assert sorted(pairs) == [(t, c) for t in range(FRAMES) for c in range(FRAMES)]
    for k, (t, c) in enumerate(pairs):
        assert test.image_filenames[k] == scenes[1] / "multiview_GT" / f"{t + 1:08d}" / f"cam{c + 1:02d}.jpg"
        assert torch.equal(test.cameras.camera_to_worlds[k], train.cameras.camera_to_worlds[c])
        assert float(test.cameras.times[k]) == pytest.approx(t / (FRAMES - 1))
    dataset = DynamicSceneDataset(test)
    assert dataset[5]["image"].shape == (9, 16, 3)
    # The training frames in the grid (t == c) match the training images.
    train_dataset = DynamicSceneDataset(train)
    for k, (t, c) in enumerate(pairs):
        if t == c:
            assert np.abs(dataset[k]["image"].numpy() - train_dataset[t]["image"].numpy()).mean() < 0.02


def test_generated_unseen_frames_split(scenes: dict[int, Path]) -> None:
    parser = DynamicSceneDataParserConfig(data=scenes[0], extra_scenes=(scenes[1],), training_frames=2).setup()
    train = parser.get_dataparser_outputs("train")
    test = parser.get_dataparser_outputs("test")
    assert test.metadata["eval_split"] == "unseen-frames"
    assert train.metadata["scene_index"].tolist() == [0, 0, 1, 1]
    assert train.metadata["frame_index"].tolist() == [0, 1, 0, 1]
    assert test.metadata["scene_index"].tolist() == [0, 0, 1, 1]
    assert test.metadata["frame_index"].tolist() == [2, 3, 2, 3]
    assert test.metadata["camera_index"].tolist() == [2, 3, 2, 3]
    assert [p.name for p in test.image_filenames] == ["002.png", "003.png"] * 2
    np.testing.assert_allclose(test.cameras.times[:, 0].numpy(), [2 / 3, 1.0, 2 / 3, 1.0], atol=1e-7)
    for k, (s, i) in enumerate([(0, 2), (0, 3), (1, 2), (1, 3)]):
        video = video_of(train, s)
        assert torch.equal(test.cameras.camera_to_worlds[k], video.cameras.camera_to_worlds[i])
    for video in train.metadata["scenes"]:
        assert video.supervised_frames == 2 and video.num_frames == FRAMES  # the whole video is still there
    with pytest.raises(ValueError, match="--training-frames: must be in 1..3"):
        parse(scenes[0], training_frames=4)
    with pytest.raises(ValueError, match="training-frames"):
        parse(scenes[0], "test", eval_split="unseen-frames")


def test_generated_multi_scene(scenes: dict[int, Path]) -> None:
    outputs = parse(scenes[0], extra_scenes=(scenes[1],))
    single = [parse(scenes[0]), parse(scenes[1])]
    assert len(outputs.image_filenames) == 2 * FRAMES
    assert outputs.metadata["scene_names"] == ["seed0", "seed1"]
    assert outputs.metadata["scene_index"].tolist() == [0] * FRAMES + [1] * FRAMES
    assert outputs.metadata["frame_index"].tolist() == list(range(FRAMES)) * 2
    assert outputs.cameras.metadata is not None
    assert outputs.cameras.metadata["scene_index"][:, 0].tolist() == [0] * FRAMES + [1] * FRAMES
    for s in (0, 1):
        video = video_of(outputs, s)
        assert video.cameras.metadata is not None
        assert video.cameras.metadata["scene_index"].tolist() == [[s]] * FRAMES
        c2w = outputs.cameras.camera_to_worlds[s * FRAMES : (s + 1) * FRAMES]
        # Each scene normalised on its own: identical to parsing it alone, with its own average camera at the origin.
        assert torch.allclose(c2w, single[s].cameras.camera_to_worlds, atol=1e-6)
        assert torch.equal(video.cameras.camera_to_worlds, c2w)
        np.testing.assert_allclose(average_camera(c2w.double().numpy()), np.eye(4), atol=1e-5)
        near = outputs.metadata["near_far"][s * FRAMES : (s + 1) * FRAMES, 0].double().numpy()
        assert np.percentile(near, 5) == pytest.approx(1 / 0.9, rel=1e-5)
    assert outputs.dataparser_scale == single[0].dataparser_scale != single[1].dataparser_scale
    assert torch.equal(outputs.dataparser_transform, single[0].dataparser_transform)
    # The scene index reaches the rays (Cameras.metadata -> RayBundle.metadata), by index and for a slice.
    indices = torch.tensor([[FRAMES + 2], [1], [FRAMES]])
    bundle = outputs.cameras.generate_rays(camera_indices=indices, coords=torch.tensor([[1.5, 2.5]] * 3))
    assert bundle.metadata["scene_index"][:, 0].tolist() == [1, 0, 1]
    assert bundle.times is not None
    np.testing.assert_allclose(bundle.times[:, 0].numpy(), [2 / 3, 1 / 3, 0.0], atol=1e-7)
    one = outputs.cameras[FRAMES + 1 : FRAMES + 2]
    image_rays = one.generate_rays(camera_indices=0, keep_shape=True)
    assert image_rays.shape == (HEIGHT, WIDTH) and image_rays.metadata["scene_index"].unique().tolist() == [1]
    # The train dataset returns the training frames exactly as the video holds them.
    dataset = DynamicSceneDataset(outputs)
    assert video_of(dataset) is video_of(outputs)  # deep copy of metadata shares the video
    np.testing.assert_array_equal(dataset[FRAMES + 3]["image"].numpy(), video_of(outputs, 1).images[3].numpy())


def test_specification() -> None:
    assert isinstance(dynamic_scene_dataparser.config, DynamicSceneDataParserConfig)
    assert dynamic_scene_dataparser.config.bd_factor == 0.9 and dynamic_scene_dataparser.config.eval_split == "auto"


# ------------------------------------------------------------------------------------------------ errors


def test_missing_parts_name_the_file(scenes: dict[int, Path], tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"nowhere: missing folder: dynamic scene folder"):
        parse(tmp_path / "nowhere")

    no_poses = copy_scene(scenes[0], tmp_path / "a")
    (no_poses / "poses_bounds.npy").unlink()
    with pytest.raises(DatasetFormatError, match=r"poses_bounds\.npy: missing poses_bounds\.npy"):
        parse(no_poses)

    no_images = copy_scene(scenes[0], tmp_path / "b")
    shutil.rmtree(no_images / "images_2")
    shutil.rmtree(no_images / "images")  # without images/ either there is nothing to downscale
    with pytest.raises(DatasetFormatError, match=r"images_2: missing folder"):
        parse(no_images, downscale_factor=2)

    empty = copy_scene(scenes[0], tmp_path / "c")
    for path in (empty / "images").iterdir():
        path.unlink()
    with pytest.raises(DatasetFormatError, match=r"images: holds no \.png or \.jpg images"):
        parse(empty)

    fewer = copy_scene(scenes[0], tmp_path / "d")
    (fewer / "images" / "003.png").unlink()
    with pytest.raises(DatasetFormatError, match=r"images: has 3 images but poses_bounds\.npy has 4 frames"):
        parse(fewer)

    corrupt = copy_scene(scenes[0], tmp_path / "e")
    (corrupt / "flow" / "001_fwd.npz").write_bytes(b"not a zip archive")
    with pytest.raises(DatasetFormatError, match=r"001_fwd\.npz: unreadable optical flow archive"):
        parse(corrupt)

    missing_flow = copy_scene(scenes[0], tmp_path / "f")
    (missing_flow / "flow" / "002_bwd.npz").unlink()
    with pytest.raises(DatasetFormatError, match=r"002_bwd\.npz: missing optical flow file"):
        parse(missing_flow)

    gt = copy_scene(scenes[0], tmp_path / "g")
    (gt / "multiview_GT" / "00000003" / "cam01.jpg").unlink()
    with pytest.raises(DatasetFormatError, match=r"00000003/cam01\.jpg: missing multi-view ground truth"):
        parse(gt, "test")  # auto -> view0: multiview_GT/ exists
    parse(gt, "test", eval_camera=1)  # camera 1's files are all there
    with pytest.raises(DatasetFormatError, match=r"00000003/cam01\.jpg: missing multi-view ground truth"):
        parse(gt, "test", eval_split="grid", eval_camera=1)

    # Optional folders may be absent: listed in `missing`, not an error.
    partial = copy_scene(scenes[0], tmp_path / "h")
    shutil.rmtree(partial / "flow")
    shutil.rmtree(partial / "motion_masks")
    shutil.rmtree(partial / "disp")
    video = video_of(parse(partial))
    assert video.missing == ("disparity (disp/)", "optical flow (flow/)", "motion masks (motion_masks/)")
    assert video.disparity is None and video.flow_backward_mask is None


def test_nerfstudio_datamanager_batches(scenes: dict[int, Path]) -> None:
    """nerfstudio's VanillaDataManager with this dataset: rays carry time and scene index; eval images at train size."""
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig

    config = VanillaDataManagerConfig(
        _target=VanillaDataManager[DynamicSceneDataset],
        dataparser=DynamicSceneDataParserConfig(
            data=scenes[0], extra_scenes=(scenes[1],), downscale_factor=2, eval_split="grid"
        ),
        train_num_rays_per_batch=64,
        eval_num_rays_per_batch=64,
    )
    datamanager = config.setup(device="cpu", test_mode="val")
    assert datamanager.includes_time and isinstance(datamanager.train_dataset, DynamicSceneDataset)
    assert len(datamanager.train_dataset) == 2 * FRAMES and len(datamanager.eval_dataset) == 2 * FRAMES * FRAMES
    bundle, batch = datamanager.next_train(0)
    assert bundle.times is not None and bundle.metadata["scene_index"].shape == (64, 1)
    # Each ray's scene index and time are those of the image it was drawn from.
    image_index = batch["indices"][:, 0]
    assert torch.equal(
        bundle.metadata["scene_index"][:, 0], datamanager.train_dataset.metadata["scene_index"][image_index]
    )
    expected_times = datamanager.train_dataset.metadata["frame_index"][image_index].float() / (FRAMES - 1)
    assert torch.allclose(bundle.times[:, 0], expected_times)
    camera, eval_batch = datamanager.next_eval_image(0)
    assert eval_batch["image"].shape == (9, 16, 3)
    # The videos are shared between the train and eval datasets, not copied.
    assert datamanager.train_dataset.metadata["scenes"][1] is datamanager.eval_dataset.metadata["scenes"][1]


def test_balloon1_without_images_n_is_downscaled_from_images_in_memory() -> None:
    """Balloon1 ships images/ only (960x540): factor 4 reads it and box-filters each frame to 240x135, as
    DynamicNeRF's _minify would have written images_4/ (focal / 4); a 4x4 block's mean becomes one pixel."""
    from PIL import Image

    data = shared_data("nvidia_dynamic/Balloon1")
    full = parse(data)
    quarter = parse(data, downscale_factor=4)
    video = quarter.metadata["scenes"][0]
    assert video.images.shape == (12, 135, 240, 3)
    assert int(quarter.cameras.width[0, 0]) == 240 and int(quarter.cameras.height[0, 0]) == 135
    assert float(quarter.cameras.fx[0, 0]) == pytest.approx(float(full.cameras.fx[0, 0]) / 4, rel=1e-6)
    with Image.open(data / "images" / "000.png") as image:
        original = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    block_means = original.reshape(135, 4, 240, 4, 3).mean(axis=(1, 3))
    assert np.abs(video.images[0].numpy() - block_means).max() <= 1.0 / 255.0 + 1e-6
    assert video.disparity is not None and video.disparity.shape == (12, 135, 240)
