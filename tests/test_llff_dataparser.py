"""The llff-data dataparser on real fern and on malformed copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dataparsers import DatasetFormatError
from dataparsers._common import read_image
from dataparsers.llff import LLFFDataParserConfig, average_camera
from dataparsers.poses_bounds import read_poses_bounds, write_poses_bounds
from tests.conftest import REPO, run_command


def parse(data: Path, split: str = "train", **kwargs):
    return LLFFDataParserConfig(data=data, **kwargs).setup().get_dataparser_outputs(split=split)


def test_fern_split_sizes_and_intrinsics(fern: Path) -> None:
    train = parse(fern, "train")
    test = parse(fern, "test")
    # 20 images; llffhold 8 holds out images 0, 8 and 16.
    assert [p.name for p in test.image_filenames] == ["image000.png", "image008.png", "image016.png"]
    assert len(train.image_filenames) == 17
    assert "image008.png" not in [p.name for p in train.image_filenames]
    cams = train.cameras
    # images_8 of a 4032x3024 capture are 504x378; the stored focal 3260.526 px is for the full size.
    assert int(cams.width[0]) == 504 and int(cams.height[0]) == 378
    raw = np.load(fern / "poses_bounds.npy")
    assert torch.allclose(cams.fx[:, 0], torch.tensor(raw[0, 14] / 8.0, dtype=torch.float32).expand(17), rtol=1e-6)
    assert float(cams.fx[0]) == pytest.approx(3260.526 / 8, abs=1e-2)
    assert float(cams.cx[0]) == 252.0 and float(cams.cy[0]) == 189.0


def test_fern_pose_pipeline_matches_nerf(fern: Path) -> None:
    """Scale so the nearest bound is 1/0.75, then the average camera becomes the identity (NeRF's load_llff_data)."""
    outputs = parse(fern, "train", holdout_every=0)
    c2w = outputs.cameras.camera_to_worlds.double().numpy()
    near_far = outputs.metadata["near_far"].double().numpy()
    assert near_far.min() == pytest.approx(1 / 0.75, rel=1e-5)
    assert np.allclose(average_camera(c2w), np.eye(4), atol=1e-5)
    # Every rotation stays orthonormal and right-handed.
    rotations = c2w[:, :, :3]
    assert np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(rotations), 1.0, atol=1e-5)
    # Column reorder by hand for camera 0: LLFF [down, right, back] -> OpenGL [right, up, back].
    raw = np.load(fern / "poses_bounds.npy")[0, :15].reshape(3, 5)
    by_hand = np.stack([raw[:, 1], -raw[:, 0], raw[:, 2], raw[:, 3]], axis=1)
    assert np.allclose(read_poses_bounds(fern / "poses_bounds.npy").camera_to_world[0], by_hand)
    # The dataparser transform maps raw poses onto the normalised ones.
    transform = outputs.dataparser_transform.double().numpy()
    expected_centre = outputs.dataparser_scale * (transform[:, :3] @ by_hand[:, 3] + transform[:, 3])
    assert np.allclose(c2w[0, :, 3], expected_centre, atol=1e-4)
    # Forward-facing: every camera looks roughly along -z of the average camera.
    assert np.all(c2w[:, 2, 2] > 0.9)
    # The scene box holds every camera and extends to the far bound in front of them.
    aabb = outputs.scene_box.aabb.numpy()
    assert np.all(c2w[:, :, 3] >= aabb[0]) and np.all(c2w[:, :, 3] <= aabb[1])
    assert aabb[0, 2] < -near_far.max() * 0.9


def test_poses_bounds_round_trip(tmp_path: Path, fern: Path) -> None:
    poses = read_poses_bounds(fern / "poses_bounds.npy")
    write_poses_bounds(
        tmp_path / "poses_bounds.npy", poses.camera_to_world, 3024, 4032, float(poses.focal[0]), poses.near_far
    )
    assert np.allclose(np.load(tmp_path / "poses_bounds.npy"), np.load(fern / "poses_bounds.npy"))


def copy_fern(fern: Path, tmp_path: Path) -> Path:
    scene = tmp_path / "fern"
    shutil.copytree(fern, scene)
    return scene


def test_missing_poses_bounds(tmp_path: Path, fern: Path) -> None:
    scene = copy_fern(fern, tmp_path)
    (scene / "poses_bounds.npy").unlink()
    with pytest.raises(DatasetFormatError, match=r"poses_bounds\.npy: missing"):
        parse(scene)


def test_image_count_differs_from_pose_count(tmp_path: Path, fern: Path) -> None:
    scene = copy_fern(fern, tmp_path)
    (scene / "images_8" / "image019.png").unlink()
    with pytest.raises(DatasetFormatError, match=r"images_8: holds 19 images .* 20 cameras"):
        parse(scene)


def test_unreadable_image(tmp_path: Path, fern: Path) -> None:
    scene = copy_fern(fern, tmp_path)
    (scene / "images_8" / "image003.png").write_bytes(b"not a png")
    with pytest.raises(DatasetFormatError, match=r"image003\.png: unreadable image"):
        parse(scene)


def test_wrong_array_shape(tmp_path: Path, fern: Path) -> None:
    scene = copy_fern(fern, tmp_path)
    np.save(scene / "poses_bounds.npy", np.load(fern / "poses_bounds.npy")[:, :15])
    with pytest.raises(DatasetFormatError, match=r"expected an N x 17 array .* shape \(20, 15\)"):
        parse(scene)


def test_corrupt_npy(tmp_path: Path, fern: Path) -> None:
    scene = copy_fern(fern, tmp_path)
    (scene / "poses_bounds.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetFormatError, match=r"poses_bounds\.npy: unreadable"):
        parse(scene)


def test_missing_downscale_folder_lists_what_exists(tmp_path: Path, fern: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"images_4: missing image folder .* \(found: images_8\)"):
        parse(fern, downscale_factor=4)


def test_ns_train_reports_bad_dataset_in_one_line(tmp_path: Path, fern: Path) -> None:
    scene = copy_fern(fern, tmp_path)
    (scene / "images_8" / "image019.png").unlink()
    result = run_command(
        [
            "ns-train",
            "nerfacto",
            "--machine.device-type",
            "cpu",
            "--vis",
            "tensorboard",
            "llff-data",
            "--data",
            str(scene),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {scene / 'images_8'}: holds 19 images (.png, .jpg, .jpeg) but poses_bounds.npy has 20 cameras"
    )
    assert "Traceback" not in result.stderr


def test_llff_data_is_listed_by_ns_train(tmp_path: Path) -> None:
    result = run_command(["ns-train", "nerfacto", "--help"], cwd=REPO)
    assert result.returncode == 0
    assert "llff-data" in result.stdout


@pytest.mark.parametrize("factor", [1, 2])
def test_generated_scene_rays_reproduce_the_images(tmp_path: Path, factor: int) -> None:
    """nerfstudio's rays for the parsed cameras, mapped back to the generator's world, render the stored pixels.

    This checks the whole chain independently of the parser's code: axis order, focal rescaling for images_N,
    pixel centres, and the dataparser transform/scale (NeRF's bd_factor + recentring).
    """
    from nerfstudio_methods.scenegen.formats.llff import write_llff
    from nerfstudio_methods.scenegen.scene import forward_facing_scene

    write_llff(tmp_path / "scene", width=48, height=32, num_cameras=9, factors=[2], seed=3)
    outputs = parse(tmp_path / "scene", split="test", downscale_factor=factor)
    assert [p.name for p in outputs.image_filenames] == ["image000.png", "image008.png"]
    assert int(outputs.cameras.width[0]) == 48 // factor and int(outputs.cameras.height[0]) == 32 // factor
    scene = forward_facing_scene(3)
    transform = np.concatenate([outputs.dataparser_transform.double().numpy(), [[0, 0, 0, 1]]])
    to_generator_world = np.linalg.inv(transform)
    for camera_index, image_path in enumerate(outputs.image_filenames):
        rays = outputs.cameras.generate_rays(camera_indices=camera_index)
        origins = rays.origins.double().numpy().reshape(-1, 3) / outputs.dataparser_scale
        directions = rays.directions.double().numpy().reshape(-1, 3)
        origins = origins @ to_generator_world[:3, :3].T + to_generator_world[:3, 3]
        directions = directions @ to_generator_world[:3, :3].T
        rendered = scene.render(origins, directions).rgb.reshape(32 // factor, 48 // factor, 3)
        stored = read_image(image_path)[..., :3].astype(np.float64) / 255.0
        if factor == 1:
            # Full-resolution images are exact renders at pixel centres: only uint8 rounding separates them.
            assert np.abs(rendered - stored).max() <= 0.5 / 255 + 1e-6
        else:
            # images_2 are box-filtered 2x2 blocks; the centre ray of a block matches the block mean on smooth parts.
            assert np.median(np.abs(rendered - stored)) < 0.02
