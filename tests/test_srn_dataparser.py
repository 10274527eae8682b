"""The srn-data dataparser on generated ShapeNet SRN scenes (3da-ae.md §3 and §6) and on malformed copies of them.

Expected values come from the generator, not from the parser: its cameras are rebuilt exactly as ``write_srn`` makes
them (and checked against the pose files it wrote), intrinsics are worked out by hand, camera heights are read
straight from the pose files' text.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.cameras.cameras import CameraType
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from PIL import Image

from dataparsers import DatasetFormatError
from dataparsers.srn import SrnDataParserConfig
from nerfstudio_methods.scenegen.cameras import PinholeCamera, sphere_rig
from nerfstudio_methods.scenegen.formats.srn import (
    CAMERA_DISTANCE,
    OBJECT_RADIUS,
    SRN_NORMALIZED_FOCAL,
    format_pose,
    instance_ids,
    write_srn,
)
from nerfstudio_methods.scenegen.scene import object_scene
from tests.conftest import REPO

SIZE = 32
VIEWS = 8
INSTANCES = 4
SEED = 3


def generate(root: Path, **kwargs) -> Path:
    """A cars_train split of INSTANCES scenes x VIEWS views of SIZE x SIZE, intrinsics written for 512 x 512."""
    options = dict(width=SIZE, height=SIZE, num_cameras=VIEWS, num_instances=INSTANCES, seed=SEED)
    write_srn(root, intrinsics_resolution=512, **{**options, **kwargs})
    return root


@pytest.fixture(scope="module")
def srn_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("srn") / "shapenet")


@pytest.fixture
def srn_copy(srn_root: Path, tmp_path: Path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(srn_root, tmp_path / "shapenet"))


def parse(data: Path, ns_split: str = "train", **kwargs):
    """nerfstudio's split ``ns_split`` (train / val / test); ``split=`` in kwargs is the config's split folder."""
    return SrnDataParserConfig(data=data, **kwargs).setup().get_dataparser_outputs(split=ns_split)


def sorted_ids() -> list[str]:
    return sorted(instance_ids(INSTANCES, SEED))


def generator_cameras(instance_id: str) -> list[PinholeCamera]:
    """The cameras ``write_srn`` rendered ``instance_id`` with: instance k (generation order) has rig seed
    ``seed * 1009 + k``, horizontal field of view from SRN's normalised focal 1.025, elevations -30..75 degrees."""
    k = instance_ids(INSTANCES, SEED).index(instance_id)
    fov = math.degrees(2 * math.atan(0.5 / SRN_NORMALIZED_FOCAL))
    return sphere_rig(
        VIEWS, SIZE, SIZE, radius=CAMERA_DISTANCE, fov_x_degrees=fov, up="+z",
        min_elevation_degrees=-30.0, max_elevation_degrees=75.0, seed=SEED * 1009 + k,
    )  # fmt: skip


def camera_height(pose_file: Path) -> float:
    """World z of the camera centre: the 12th of the 16 row-major numbers (3Da-AE's ``pose[11]``)."""
    return float(pose_file.read_text().split()[11])


def single_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------------------------- cameras


def test_intrinsics_rescaled_from_512_by_hand(srn_root: Path) -> None:
    instance = srn_root / "cars_train" / sorted_ids()[0]
    # The generator wrote SRN's 512-px intrinsics: f = 1.025390625 * 512 = 525, cx = cy = 256.
    assert (instance / "intrinsics.txt").read_text().splitlines() == [
        "525.000000 256.000000 256.000000 0.", "0. 0. 0.", "1.", "512 512",
    ]  # fmt: skip
    outputs = parse(srn_root, min_camera_height=None, num_eval_views=0)
    cams = outputs.cameras
    # 32 px images: x 32/512 = 1/16 -> f = 525/16 = 32.8125, cx = cy = 256/16 = 16 (the image centre).
    assert cams.shape == (INSTANCES * VIEWS,)
    assert torch.all(cams.fx == 32.8125) and torch.all(cams.fy == 32.8125)
    assert torch.all(cams.cx == 16.0) and torch.all(cams.cy == 16.0)
    assert torch.all(cams.width == SIZE) and torch.all(cams.height == SIZE)
    assert torch.all(cams.camera_type == CameraType.PERSPECTIVE.value)
    # The same numbers as the generator's camera for 32 px.
    assert generator_cameras(sorted_ids()[0])[0].fx == pytest.approx(32.8125, rel=1e-12)


def test_intrinsics_at_image_resolution_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "srn"
    write_srn(root, width=16, height=16, num_cameras=2, num_instances=1, seed=1)  # intrinsics for 16 px
    cams = parse(root, min_camera_height=None, num_eval_views=0).cameras
    # 16 * 1.025390625 = 16.40625, cx = 8, no rescaling.
    assert torch.all(cams.fx == 16.40625) and torch.all(cams.cx == 8.0) and torch.all(cams.cy == 8.0)


def test_rays_are_the_generator_rays(srn_root: Path) -> None:
    """Every pixel's ray from the parser's cameras is the ray the generator rendered that pixel with."""
    outputs = parse(srn_root, min_camera_height=None, num_eval_views=0)
    names = outputs.metadata["scene_names"]
    for i, path in enumerate(outputs.image_filenames):
        instance_id, view = path.parent.parent.name, int(path.stem)
        assert instance_id == names[int(outputs.metadata["scene_index"][i])]
        camera = generator_cameras(instance_id)[view]
        # The rebuilt camera is the one write_srn used: same pose file text.
        assert (path.parent.parent / "pose" / f"{path.stem}.txt").read_text() == format_pose(
            camera.camera_to_world_opencv()
        )
        rays = outputs.cameras.generate_rays(camera_indices=i)
        origins, directions = camera.rays()
        np.testing.assert_allclose(rays.origins.numpy(), origins, atol=1e-5)
        np.testing.assert_allclose(rays.directions.numpy(), directions, atol=1e-5)
        assert rays.metadata["scene_index"].shape == (SIZE, SIZE, 1)
        assert torch.all(rays.metadata["scene_index"] == outputs.metadata["scene_index"][i])


def test_known_points_project_where_the_generator_put_them(srn_root: Path) -> None:
    """World origin and the centre of each object's core sphere: the ray through the pixel where the generator's
    camera (OpenCV K [R | t] of its own pose) projects them passes through them, and the PNG shows the object."""
    outputs = parse(srn_root, min_camera_height=None, num_eval_views=0)
    for i, path in enumerate(outputs.image_filenames):
        instance_id, view = path.parent.parent.name, int(path.stem)
        camera = generator_cameras(instance_id)[view]
        k = instance_ids(INSTANCES, SEED).index(instance_id)
        core = object_scene(SEED * 1009 + k, radius=OBJECT_RADIUS).primitives[0]
        assert core.name == "core"
        for point in (np.zeros(3), core.center):
            # Projection with the generator's OpenCV extrinsics and intrinsics, homogeneous coordinates.
            local = camera.world_to_camera_opencv() @ np.append(point, 1.0)
            x, y, _ = camera.intrinsics @ local[:3] / local[2]
            ray = outputs.cameras.generate_rays(camera_indices=i, coords=torch.tensor([[y, x]], dtype=torch.float32))
            origin, direction = ray.origins[0].double().numpy(), ray.directions[0].double().numpy()
            along = float((point - origin) @ direction)
            assert local[2] > 0 and along == pytest.approx(np.linalg.norm(point - origin), rel=1e-6)  # in front
            np.testing.assert_allclose(origin + along * direction, point, atol=1e-5)  # on the ray
        # The core sphere is opaque and not white (colours lie in 0.15..0.9): its centre's pixel is not background.
        x, y = camera.project(core.center)[0]
        pixel = np.asarray(Image.open(path))[int(y), int(x), :3]
        assert not np.all(pixel == 255)


def test_srn_units_scene_box_and_identity_transform(srn_root: Path) -> None:
    outputs = parse(srn_root, num_eval_views=2)
    centres = outputs.cameras.camera_to_worlds[:, :, 3]
    assert torch.allclose(centres.norm(dim=-1), torch.tensor(1.3), atol=1e-5)  # SRN units, no rescaling
    assert torch.equal(outputs.scene_box.aabb, torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    assert torch.equal(outputs.dataparser_transform, torch.eye(4)[:3]) and outputs.dataparser_scale == 1.0
    assert torch.equal(outputs.alpha_color, torch.ones(3))


# ------------------------------------------------------------------------------------- views, scenes, splits


def test_view_filter_and_held_out_views(srn_root: Path) -> None:
    instance = srn_root / "cars_train" / sorted_ids()[0]
    heights = [camera_height(instance / "pose" / f"{v:06d}.txt") for v in range(VIEWS)]
    # Elevations -30..75 degrees at radius 1.3: view 0 sits at 1.3 * (-0.5 + 1.466 / 16) ~ -0.53 < -0.5.
    assert heights[0] < -0.5 and all(h > -0.5 for h in heights[1:])
    expected_kept = [v for v, h in enumerate(heights) if h > -0.5]

    def views(split: str, **kwargs) -> list[str]:
        outputs = parse(srn_root, split, num_scenes=1, **kwargs)
        assert [p.stem for p in outputs.image_filenames] == outputs.metadata["view_names"]
        return outputs.metadata["view_names"]

    names = [f"{v:06d}" for v in expected_kept]
    assert views("val", num_eval_views=3) == names[:3] == views("test", num_eval_views=3)
    assert views("train", num_eval_views=3) == names[3:]
    # The default holds out 10 views; with 7 kept views of 8 nothing would be left to train on.
    assert SrnDataParserConfig().num_eval_views == 10 and SrnDataParserConfig().min_camera_height == -0.5
    # No filter: view 0 is back and is the first held-out view.
    assert views("val", num_eval_views=2, min_camera_height=None) == ["000000", "000001"]
    assert views("train", num_eval_views=2, min_camera_height=None) == [f"{v:06d}" for v in range(2, VIEWS)]
    # Another threshold: only cameras above the equator.
    above = [f"{v:06d}" for v, h in enumerate(heights) if h > 0.0]
    assert 1 < len(above) < len(expected_kept)
    assert (
        views("val", num_eval_views=1, min_camera_height=0.0) + views("train", num_eval_views=1, min_camera_height=0.0)
        == above
    )


def test_scene_order_ranges_and_local_indices(srn_root: Path) -> None:
    ids = sorted_ids()
    assert ids != instance_ids(INSTANCES, SEED)  # generation order differs from sorted order
    everything = parse(srn_root, num_eval_views=2)
    assert everything.metadata["scene_names"] == ids and everything.metadata["num_scenes"] == INSTANCES
    outputs = parse(srn_root, scene_start=1, num_scenes=2, num_eval_views=2)
    metadata = outputs.metadata
    assert metadata["scene_names"] == ids[1:3]
    assert metadata["num_scenes"] == 2 and metadata["scene_start"] == 1
    scene_index = metadata["scene_index"]
    assert scene_index.dtype == torch.long and scene_index.shape == (len(outputs.image_filenames),)
    # Local indices 0, 1 in scene order, each view of a scene's folder carries its scene's index.
    assert scene_index.tolist() == sorted(scene_index.tolist()) and set(scene_index.tolist()) == {0, 1}
    for index, path in zip(scene_index.tolist(), outputs.image_filenames):
        assert path.parent.parent.name == ids[1 + index]
    camera_index = outputs.cameras.metadata["scene_index"]
    assert camera_index.dtype == torch.long and torch.equal(camera_index, scene_index[:, None])
    # Per scene: the training views of the whole run, in the same order.
    per_scene = [p for p in everything.image_filenames if p.parent.parent.name in ids[1:3]]
    assert outputs.image_filenames == per_scene
    # num_scenes None takes the rest; the split folder itself may be given as data.
    rest = parse(srn_root / "cars_train", scene_start=2, num_eval_views=2)
    assert rest.metadata["scene_names"] == ids[2:] and rest.metadata["scene_index"].max() == 1
    other_split = parse(srn_root / "cars_train", split="cars_val", num_scenes=1, num_eval_views=2)
    assert other_split.metadata["scene_names"] == ids[:1]


def test_split_folder_option_and_images_load(tmp_path: Path) -> None:
    root = tmp_path / "shapenet"
    write_srn(root, width=16, height=16, num_cameras=3, num_instances=1, split="cars_val", seed=2)
    train = parse(root, "train", split="cars_val", min_camera_height=None, num_eval_views=1)
    assert [p.stem for p in train.image_filenames] == ["000001", "000002"]
    # RGBA files are composited onto SRN's white background.
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:8, :, :] = [10, 20, 30, 255]
    Image.fromarray(rgba, "RGBA").save(train.image_filenames[0])
    image = InputDataset(train).get_image_float32(0)
    assert image.shape == (16, 16, 3)
    assert torch.allclose(image[0, 0], torch.tensor([10, 20, 30]) / 255.0)
    assert torch.equal(image[-1, -1], torch.ones(3))


def test_entry_point_is_registered_in_pyproject() -> None:
    import importlib

    import tomllib

    table = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    target = table["nerfstudio.dataparser_configs"]["srn-data"]
    assert target == "nerfstudio_methods.registered_dataparsers:srn_dataparser"
    module, name = target.split(":")
    specification = getattr(importlib.import_module(module), name)
    assert isinstance(specification, DataParserSpecification)
    assert isinstance(specification.config, SrnDataParserConfig)


# ---------------------------------------------------------------------------------------------------- errors


def instance_dir(root: Path, position: int = 1) -> Path:
    return root / "cars_train" / sorted_ids()[position]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"scene_start": 4},
            r"cars_train: holds 4 instance folders \(scenes 0\.\.3\), out of range for --scene-start 4$",
        ),
        ({"scene_start": -1}, r"holds 4 instance folders .* --scene-start -1$"),
        ({"scene_start": 2, "num_scenes": 3}, r"out of range for --scene-start 2 --num-scenes 3 \(scenes 2\.\.4\)$"),
        ({"num_scenes": 0}, r"cars_train: --num-scenes must be at least 1, got 0$"),
        ({"num_eval_views": -1}, r"cars_train: --num-eval-views must be at least 0, got -1$"),
        (
            {"num_eval_views": 7},
            r"cars_train/[0-9a-f]{32}: no training views left: 7 of 8 views have camera height > -0\.5 "
            r"\(--min-camera-height\), the first 7 held out \(--num-eval-views\)$",
        ),
        (
            {"num_eval_views": 8, "min_camera_height": None},
            r"[0-9a-f]{32}: no training views left: 8 views, the first 8 held out",
        ),
        ({"min_camera_height": 2.0}, r"no training views left: 0 of 8 views have camera height > 2"),
    ],
)
def test_bad_options(srn_root: Path, options: dict, message: str) -> None:
    with pytest.raises(DatasetFormatError, match=message) as error:
        parse(srn_root, **{"num_eval_views": 2, **options})
    single_line(error)


def test_empty_eval_split_and_unknown_split(srn_root: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"cars_train: the val split is empty: --num-eval-views is 0"):
        parse(srn_root, "val", num_eval_views=0)
    with pytest.raises(ValueError, match="unknown split 'inference'"):
        parse(srn_root, "inference")


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"absent: missing folder: SRN data") as error:
        parse(tmp_path / "absent")
    single_line(error)
    (tmp_path / "empty" / "cars_train").mkdir(parents=True)
    with pytest.raises(DatasetFormatError, match=r"empty/cars_train: holds no instance folders"):
        parse(tmp_path / "empty")


def break_missing_pose(root: Path) -> Path:
    (instance_dir(root) / "pose" / "000003.txt").unlink()
    return instance_dir(root) / "pose" / "000003.txt"


def break_extra_pose(root: Path) -> Path:
    shutil.copy(instance_dir(root) / "pose" / "000000.txt", instance_dir(root) / "pose" / "000100.txt")
    return instance_dir(root) / "pose"


def break_intrinsics(root: Path) -> Path:
    path = instance_dir(root) / "intrinsics.txt"
    path.write_text("525.0 256.0 256.0 0.\n0. 0. 0.\n1.\n")
    return path


def break_intrinsics_numbers(root: Path) -> Path:
    path = instance_dir(root) / "intrinsics.txt"
    path.write_text("f 256.0 256.0 0.\n0. 0. 0.\n1.\n512 512\n")
    return path


def remove_intrinsics(root: Path) -> Path:
    path = instance_dir(root) / "intrinsics.txt"
    path.unlink()
    return path


def break_png(root: Path) -> Path:
    path = instance_dir(root) / "rgb" / "000005.png"
    path.write_bytes(path.read_bytes()[:40])
    return path


def resize_png(root: Path) -> Path:
    path = instance_dir(root) / "rgb" / "000004.png"
    Image.new("RGB", (SIZE // 2, SIZE // 2), "white").save(path)
    return path


def remove_rgb(root: Path) -> Path:
    shutil.rmtree(instance_dir(root) / "rgb")
    return instance_dir(root) / "rgb"


def empty_rgb(root: Path) -> Path:
    for png in (instance_dir(root) / "rgb").iterdir():
        png.unlink()
    return instance_dir(root) / "rgb"


def remove_pose_folder(root: Path) -> Path:
    shutil.rmtree(instance_dir(root) / "pose")
    return instance_dir(root) / "pose"


def break_pose_values(root: Path) -> Path:
    path = instance_dir(root) / "pose" / "000002.txt"
    path.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n")
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (break_missing_pose, r"missing pose file for image rgb/000003\.png"),
        (break_extra_pose, r"has 9 pose files but rgb/ has 8 images \(000100\.txt has no image\)"),
        (break_intrinsics, r"expected at least 4 lines"),
        (break_intrinsics_numbers, r"intrinsics\.txt must hold only numbers"),
        (remove_intrinsics, r"missing intrinsics\.txt"),
        (break_png, r"unreadable image"),
        (resize_png, r"image size 16x16 differs from 32x32 of the instance's first view"),
        (remove_rgb, r"missing folder: image folder"),
        (empty_rgb, r"holds no \.png or \.jpg images"),
        (remove_pose_folder, r"missing folder: SRN poses"),
        (break_pose_values, r"expected 16 numbers .* found 12"),
    ],
)
def test_malformed_instance_names_the_file(srn_copy: Path, damage, message: str) -> None:
    path = damage(srn_copy)
    with pytest.raises(DatasetFormatError) as error:
        parse(srn_copy, num_eval_views=2)
    text = single_line(error)
    assert text.startswith(f"{path}: "), text
    assert error.match(message)
