"""Every dataparser checks that poses are finite proper rotations and that intrinsics, disparities and flows are
finite, and names the file and the camera in one line; a NaN or degenerate pose used to train to an all-NaN model
with exit status 0. Generated scenes are corrupted one value at a time; the expected messages are written out here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dataparsers import DatasetFormatError
from dataparsers._common import check_camera_poses
from dataparsers.blender import BlenderFewShotDataParserConfig
from dataparsers.dtu import read_dtu_scene
from dataparsers.nvidia_dynamic import read_disparity, read_flow
from dataparsers.poses_bounds import read_poses_bounds
from dataparsers.srn import read_srn_instance
from nerfstudio_methods.pose_checks import check_blender_transforms
from tests.conftest import generate_scene


def rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.eye(4)
    matrix[:2, :2] = [[c, -s], [s, c]]
    return matrix


def test_the_pose_check_by_hand() -> None:
    good = np.stack([rotation_z(0.3), rotation_z(-1.0)])
    good[:, :3, 3] = [[1.0, 2.0, 3.0], [-4.0, 0.5, 9.0]]
    check_camera_poses(Path("poses.txt"), good)  # rotations with any translation pass
    rounded = good.astype(np.float32)  # what a float32 file holds
    check_camera_poses(Path("poses.txt"), rounded)
    cases = {
        "nan": (lambda m: m.__setitem__((1, 0, 3), np.nan), "camera 1: the pose holds NaN or infinite values"),
        "zero": (lambda m: m.__setitem__((0, slice(0, 3), slice(0, 3)), 0.0),
                 "camera 0: the pose's 3x3 part is not a rotation (max |R^T R - I| = 1, det = 0)"),
        "scaled": (lambda m: m.__setitem__((1, slice(0, 3), slice(0, 3)), 2.0 * m[1, :3, :3]),
                   "camera 1: the pose's 3x3 part is not a rotation (max |R^T R - I| = 3, det = 8)"),
        "mirrored": (lambda m: m.__setitem__((0, slice(0, 3), 2), -m[0, :3, 2]),
                     "camera 0: the pose's 3x3 part is not a rotation (max |R^T R - I| = {error}, det = -1)"),
    }  # fmt: skip
    for name, (corrupt, expected) in cases.items():
        broken = good.copy()
        corrupt(broken)
        with pytest.raises(DatasetFormatError) as error:
            check_camera_poses(Path("poses.txt"), broken)
        # a mirror is orthonormal: its |R^T R - I| is float rounding, whatever the BLAS gives
        rounding = str(error.value).split("= ")[1].split(",")[0] if name == "mirrored" else ""
        assert name != "mirrored" or float(rounding) < 1e-12
        assert str(error.value) == f"poses.txt: {expected.format(error=rounding)}", name


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("input_checks")
    small = ("--width", "16", "--height", "16")
    return {
        "blender": generate_scene("blender", root / "blender", *small, "--num-cameras", "4"),
        "llff": generate_scene("llff", root / "llff", *small, "--num-cameras", "4"),
        "nvidia": generate_scene("nvidia-dynamic", root / "nvidia", *small, "--num-frames", "3"),
        "srn": generate_scene("srn", root / "srn", *small, "--num-cameras", "3"),
        "dtu": generate_scene("dtu", root / "dtu", *small, "--num-cameras", "3"),
    }


def copy_of(scene: Path, tmp_path: Path) -> Path:
    copy = tmp_path / scene.name
    shutil.copytree(scene, copy)
    return copy


def test_poses_bounds_with_zero_rotations(scenes: dict[str, Path], tmp_path: Path) -> None:
    path = copy_of(scenes["llff"], tmp_path) / "poses_bounds.npy"
    array = np.load(path)
    pose = array[:, :15].reshape(-1, 3, 5)
    pose[2, :, :3] = 0.0
    array[:, :15] = pose.reshape(-1, 15)
    np.save(path, array)
    with pytest.raises(DatasetFormatError, match=r"poses_bounds.npy: row 2: the pose's 3x3 part is not a rotation"):
        read_poses_bounds(path)


def test_blender_fewshot_with_a_nan_transform(scenes: dict[str, Path], tmp_path: Path) -> None:
    scene = copy_of(scenes["blender"], tmp_path)
    transforms = scene / "transforms_train.json"
    data = json.loads(transforms.read_text())
    data["frames"][1]["transform_matrix"][0][3] = float("nan")
    good_row = data["frames"][3]["transform_matrix"].pop()  # a 3x4 matrix
    transforms.write_text(json.dumps(data))
    parser = BlenderFewShotDataParserConfig(data=scene, train_views=(0, 1, 2)).setup()
    with pytest.raises(DatasetFormatError) as error:
        parser.get_dataparser_outputs("train")  # frame 3 is not a training view: every frame of the file is checked
    assert str(error.value) == (
        f"{transforms}: frames[3] ({data['frames'][3]['file_path']}): transform_matrix is 3x4, expected 4x4"
    )
    data["frames"][3]["transform_matrix"].append(good_row)
    transforms.write_text(json.dumps(data))
    with pytest.raises(DatasetFormatError) as error:
        parser.get_dataparser_outputs("train")
    assert str(error.value) == (
        f"{transforms}: frames[1] ({data['frames'][1]['file_path']}): the pose holds NaN or infinite values"
    )


def test_srn_pose_file_of_zeros(scenes: dict[str, Path], tmp_path: Path) -> None:
    scene = copy_of(scenes["srn"], tmp_path)
    instance = sorted(path for path in scene.rglob("pose") if path.is_dir())[0].parent
    pose = sorted((instance / "pose").glob("*.txt"))[1]
    pose.write_text(" ".join(["0"] * 15 + ["1"]))
    with pytest.raises(DatasetFormatError) as error:
        read_srn_instance(instance)
    assert str(error.value).startswith(f"{instance / 'pose'}: {pose.name}: the pose's 3x3 part is not a rotation")


def test_dtu_camera_with_nan(scenes: dict[str, Path], tmp_path: Path) -> None:
    scene = copy_of(scenes["dtu"], tmp_path)
    cameras_file = next(scene.rglob("cameras*.npz"))
    arrays = dict(np.load(cameras_file))
    arrays["world_mat_1"] = arrays["world_mat_1"].copy()
    arrays["world_mat_1"][0, 0] = np.nan
    np.savez(cameras_file, **arrays)
    with pytest.raises(DatasetFormatError) as error:
        read_dtu_scene(cameras_file.parent, cameras_file=cameras_file.name)
    assert str(error.value).startswith(f"{cameras_file}: ")
    assert "NaN or infinite" in str(error.value)


def test_nan_disparity_and_flow(scenes: dict[str, Path], tmp_path: Path) -> None:
    scene = copy_of(scenes["nvidia"], tmp_path)
    disparity_path = sorted((scene / "disp").glob("*.npy"))[0]
    disparity = np.load(disparity_path)
    disparity[0, :3] = np.nan
    np.save(disparity_path, disparity)
    with pytest.raises(DatasetFormatError) as error:
        read_disparity(disparity_path, 16, 16)
    assert str(error.value) == f"{disparity_path}: the disparity map holds 3 NaN or infinite value(s)"
    flow_path = sorted((scene / "flow").glob("*.npz"))[0]
    arrays = dict(np.load(flow_path))
    arrays["flow"] = arrays["flow"].copy()
    arrays["flow"][2, 2, 1] = np.inf
    np.savez(flow_path, **arrays)
    with pytest.raises(DatasetFormatError) as error:
        read_flow(flow_path, 16, 16)
    assert str(error.value) == f"{flow_path}: the flow holds 1 NaN or infinite value(s)"


def test_the_real_datasets_pass_the_checks() -> None:
    """Every camera of the real data in ../shared/data passes (the tolerance is not tuned to the generator)."""
    from tests.conftest import shared_data

    read_poses_bounds(shared_data("nerf_llff_data/fern/poses_bounds.npy"))
    for instance in sorted(shared_data("srn_cars/cars_train").iterdir()):
        read_srn_instance(instance)
    for split in ("train", "val"):
        check_blender_transforms(shared_data(f"nerf_synthetic/lego/transforms_{split}.json"))
