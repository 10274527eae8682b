"""srn-data on the 5 real ShapeNet SRN car instances in ``../shared/data/srn_cars`` (512 px originals, 6-11 views
each): what the docs say about SRN's cameras is checked on real cameras, not only on the generator's.

Independent values: poses and intrinsics are read straight from the text files with numpy; the claims checked are
SRN's own (cameras at radius 1.3 looking at the origin, world z up, ``f = 525`` at 512 px, renders on white),
measured through nerfstudio's rays and the PNGs' pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dataparsers import DatasetFormatError
from dataparsers.srn import SrnDataParserConfig
from tests.conftest import shared_data

CARS = shared_data("srn_cars/cars_train")
INSTANCES = sorted(path for path in CARS.iterdir() if path.is_dir())


def outputs(split: str = "train", **kwargs):
    return SrnDataParserConfig(data=CARS, **kwargs).setup().get_dataparser_outputs(split=split)


def poses_from_text(instance: Path) -> dict[str, np.ndarray]:
    return {path.stem: np.loadtxt(path).reshape(4, 4) for path in sorted((instance / "pose").glob("*.txt"))}


def test_the_split_follows_the_pose_files_camera_heights() -> None:
    train, held_out = outputs("train", num_eval_views=2), outputs("test", num_eval_views=2)
    assert train.metadata["scene_names"] == [path.name for path in INSTANCES]
    for scene, instance in enumerate(INSTANCES):
        kept = [name for name, pose in poses_from_text(instance).items() if pose[2, 3] > -0.5]
        names = lambda out: [n for n, s in zip(out.metadata["view_names"], out.metadata["scene_index"]) if s == scene]  # noqa: E731
        assert names(held_out) == kept[:2] and names(train) == kept[2:]


def test_real_cameras_sit_at_radius_1_3_look_at_the_origin_and_stand_upright() -> None:
    out = outputs("train", num_eval_views=2, min_camera_height=None)
    names, scenes = out.metadata["view_names"], out.metadata["scene_index"].tolist()
    assert len(names) == sum(len(poses_from_text(i)) for i in INSTANCES) - 2 * len(INSTANCES)
    for index, (name, scene) in enumerate(zip(names, scenes)):
        pose = poses_from_text(INSTANCES[scene])[name]
        centre = pose[:3, 3]
        assert np.linalg.norm(centre) == pytest.approx(1.3, rel=0.01)
        # nerfstudio's ray through the principal point (pixel centre 256, 256 of 512) passes through the origin
        ray = out.cameras.generate_rays(camera_indices=index, coords=torch.tensor([[256.0, 256.0]]))
        origin, direction = ray.origins[0].double().numpy(), ray.directions[0].double().numpy()
        np.testing.assert_allclose(origin, centre, atol=1e-5)
        closest = origin - np.dot(origin, direction) * direction
        assert np.linalg.norm(closest) < 0.01
        # image up (nerfstudio's camera +y) points up the world's z, as SRN renders stand the car on its wheels;
        # OpenCV's +y (down) from the text file is its negative
        up = out.cameras.camera_to_worlds[index, :3, 1].double().numpy()
        np.testing.assert_allclose(up, -pose[:3, 1], atol=1e-6)
        assert up[2] > 0


def test_intrinsics_and_the_white_background_of_the_real_renders() -> None:
    out = outputs("train", num_eval_views=2)
    first = INSTANCES[0] / "intrinsics.txt"
    focal, cx, cy = (float(v) for v in first.read_text().split()[:3])
    assert (focal, cx, cy) == (525.0, 256.0, 256.0)
    assert (
        torch.all(out.cameras.fx == focal) and torch.all(out.cameras.cx == cx) and torch.all(out.cameras.width == 512)
    )
    assert out.alpha_color is not None and torch.all(out.alpha_color == 1.0)
    # The real renders are RGBA but fully opaque, the white background baked in; the car lies around the principal
    # point in every view: its box of non-white pixels contains pixel (256, 256).
    for path in out.image_filenames:
        rgba = np.asarray(Image.open(path))
        assert rgba.shape == (512, 512, 4) and np.all(rgba[..., 3] == 255), path
        assert np.all(rgba[0, :, :3] == 255) and np.all(rgba[:, 0, :3] == 255), path
        rows, cols = np.nonzero((rgba[..., :3] < 250).any(axis=-1))
        assert rows.min() < 256 < rows.max() and cols.min() < 256 < cols.max(), path
        assert 0.1 < rows.size / 512**2 < 0.3, path


def test_the_default_ten_held_out_views_leave_no_training_view_in_one_line() -> None:
    with pytest.raises(DatasetFormatError) as error:
        outputs("train")
    message = str(error.value)
    assert "no training views left" in message and "--num-eval-views" in message and "\n" not in message
    assert INSTANCES[0].name in message
