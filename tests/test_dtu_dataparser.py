"""``dtu-data``: DTU scans (IDR and MonoSDF layouts) as nerfstudio DataparserOutputs.

Real scans (``../shared/data``): scan24 in MonoSDF's layout (49 views, 384x384 crops of the 1600x1200 originals) and
scan65 in the IDR layout (the first 3 of 49 views, 1600x1200, with masks). The geometry check is brute force: a
point in DTU's world projected by the file's ``world_mat_i`` must land where nerfstudio's camera puts it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.data.utils.data_utils import get_image_mask_tensor_from_path

from dataparsers._common import DatasetFormatError
from dataparsers.dtu import (
    REGNERF_EXCLUDED_VIEWS,
    DtuDataParserConfig,
    detect_dtu_layout,
    read_dtu_mask,
)
from nerfstudio_methods.scenegen.cameras import sphere_rig
from nerfstudio_methods.scenegen.formats.dtu import write_dtu
from tests.conftest import run_command, shared_data

NERFSTUDIO_PIXEL_OFFSET = 0.5
"""nerfstudio's pixel (0, 0) has its centre at (0.5, 0.5); OpenCV's (and DTU's world_mat's) at (0, 0)."""


def parse(data: Path, split: str = "train", **options) -> DataparserOutputs:
    return DtuDataParserConfig(data=data, **options).setup().get_dataparser_outputs(split)


@pytest.fixture(scope="module")
def scan24() -> Path:
    return shared_data("dtu_monosdf/scan24")


@pytest.fixture(scope="module")
def scan65() -> Path:
    return shared_data("dtu_idr/dtu_scan65")


def _project(cameras: Cameras, index: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """nerfstudio image coordinates (x, y) and depth of points, from the Cameras' K and OpenGL camera-to-world."""
    c2w = cameras.camera_to_worlds[index].double().numpy()
    local = (points - c2w[:, 3]) @ c2w[:, :3]  # OpenGL camera axes: x right, y up, looking along -z
    depth = -local[:, 2]
    fx, fy, cx, cy = (float(value[index, 0]) for value in (cameras.fx, cameras.fy, cameras.cx, cameras.cy))
    return np.stack([cx + fx * local[:, 0] / depth, cy - fy * local[:, 1] / depth], axis=1), depth


def _ray_miss_in_pixels(cameras: Cameras, index: int, pixels: np.ndarray, points: np.ndarray) -> np.ndarray:
    """How far (in pixels, small-angle) nerfstudio's rays through ``pixels`` pass from ``points``."""
    coords = torch.from_numpy(pixels[:, ::-1].copy()).float()  # generate_rays takes (y, x)
    rays = cameras.generate_rays(camera_indices=index, coords=coords)
    directions = rays.directions.double().numpy()
    towards = points - rays.origins.double().numpy()
    towards /= np.linalg.norm(towards, axis=1, keepdims=True)
    sine = np.linalg.norm(np.cross(directions, towards), axis=1)  # arccos of a float32 cosine is too coarse
    return sine * float(cameras.fx[index, 0])


@pytest.mark.parametrize("layout", ["monosdf", "idr"])
def test_real_scans_project_like_world_mat(layout: str, scan24: Path, scan65: Path) -> None:
    folder = scan24 if layout == "monosdf" else scan65
    outputs = parse(folder, split_mode="all")
    assert outputs.metadata["view_indices"] == list(range(49 if layout == "monosdf" else 3))
    width = int(outputs.cameras.width[0])
    raw = np.load(folder / "cameras.npz")
    scale_mat = raw["scale_mat_0"].astype(np.float64)
    rng = np.random.default_rng(1)
    # DTU-world points around the object (the unit sphere of the normalised world, mapped through scale_mat).
    dtu_points = (scale_mat @ np.c_[rng.uniform(-0.6, 0.6, (40, 3)), np.ones(40)].T).T
    # nerfstudio's record of the normalisation: normalised = scale * (transform @ DTU point).
    transform = outputs.dataparser_transform.double().numpy()
    normalised = outputs.dataparser_scale * (dtu_points[:, :3] @ transform[:, :3].T + transform[:, 3])
    np.testing.assert_allclose(normalised, (np.linalg.inv(scale_mat) @ dtu_points.T).T[:, :3], atol=1e-5)
    for index in (0, 1, 24, 48) if layout == "monosdf" else (0, 1, 2):
        projected = (raw[f"world_mat_{index}"].astype(np.float64)[:3] @ dtu_points.T).T
        reference = projected[:, :2] / projected[:, 2:]  # OpenCV pixels of the 1600x1200 (IDR: stored) image
        if layout == "monosdf":  # MonoSDF: centre crop 1600x1200 -> 1200x1200, then resize to 384x384
            reference = (reference - [200.0, 0.0]) * width / 1200
        reference = reference + NERFSTUDIO_PIXEL_OFFSET
        pixels, depth = _project(outputs.cameras, index, normalised)
        assert np.all(depth > 0)
        np.testing.assert_allclose(pixels, reference, atol=0.05)
        # The same through nerfstudio's own ray generation: the ray through the reference pixel hits the point.
        assert _ray_miss_in_pixels(outputs.cameras, index, reference, normalised).max() < 0.05


def test_rays_go_through_pixel_centres_at_half_pixels(scan24: Path) -> None:
    cameras = parse(scan24).cameras
    grid = cameras.generate_rays(camera_indices=1).directions  # (H, W, 3), one ray per pixel
    rows, columns = np.array([0, 17, 383]), np.array([5, 200, 383])
    centres = np.stack([columns + 0.5, rows + 0.5], axis=1).astype(np.float64)
    through = cameras.generate_rays(camera_indices=1, coords=torch.from_numpy(centres[:, ::-1].copy()).float())
    torch.testing.assert_close(grid[rows, columns], through.directions, atol=1e-6, rtol=0)


def test_scan24_outputs(scan24: Path) -> None:
    assert detect_dtu_layout(scan24) == "monosdf"
    outputs = parse(scan24)
    cameras = outputs.cameras
    assert cameras.camera_to_worlds.shape == (3, 3, 4) and cameras.camera_to_worlds.dtype == torch.float32
    assert cameras.fx.shape == (3, 1) and int(cameras.width[0]) == int(cameras.height[0]) == 384
    assert [p.name for p in outputs.image_filenames] == ["000022_rgb.png", "000025_rgb.png", "000028_rgb.png"]
    assert outputs.mask_filenames is None and outputs.metadata["object_mask_filenames"] is None
    assert (outputs.metadata["near"], outputs.metadata["far"]) == (0.1, 5.0)
    distances = torch.linalg.norm(cameras.camera_to_worlds[:, :, 3], dim=1)
    assert torch.all((distances > 2.5) & (distances < 3.0))
    # The scene box holds the object's unit sphere and every camera (all 49, not only this split's).
    aabb = outputs.scene_box.aabb
    assert torch.all(aabb[1] == -aabb[0]) and 2.73 < float(aabb[1, 0]) < 3.2
    assert outputs.dataparser_scale == pytest.approx(1 / 223.3332, rel=1e-6)
    np.testing.assert_allclose(outputs.metadata["scale_mat"].numpy(), np.load(scan24 / "cameras.npz")["scale_mat_0"])


def test_scan24_splits(scan24: Path) -> None:
    def views(split: str, **options) -> list[int]:
        outputs = parse(scan24, split, **options)
        indices = outputs.metadata["view_indices"]
        assert [p.name for p in outputs.image_filenames] == [f"{i:06d}_rgb.png" for i in indices]
        assert len(outputs.cameras) == len(indices)
        return indices

    others = [i for i in range(49) if i not in (22, 25, 28)]
    assert views("train") == [22, 25, 28]
    assert views("test") == views("val") == others and len(others) == 46
    assert views("train", train_views=(5, 1)) == [5, 1]
    assert views("test", train_views=(5, 1)) == [i for i in range(49) if i not in (1, 5)]
    regnerf_test = [1, 2, 9, 10, 11, 12, 14, 15, 23, 24, 26, 27, 29, 30, 31, 32, 33, 34, 35, 41, 42, 43, 45, 46, 47]
    assert views("train", split_mode="regnerf") == [25, 22, 28]
    assert views("test", split_mode="regnerf") == regnerf_test and len(regnerf_test) == 25
    assert not set(regnerf_test) & set(REGNERF_EXCLUDED_VIEWS)
    assert views("train", split_mode="regnerf", num_train_views=9) == [25, 22, 28, 40, 44, 48, 0, 8, 13]
    assert views("test", split_mode="regnerf", num_train_views=9) == regnerf_test
    assert views("train", split_mode="all") == views("test", split_mode="all") == list(range(49))
    with pytest.raises(ValueError, match="--num-train-views: must be in 1..9"):
        parse(scan24, split_mode="regnerf", num_train_views=10)


def test_scan24_focal_and_principal_point_modes(scan24: Path) -> None:
    per_view = parse(scan24, split_mode="all").cameras
    mean = parse(scan24, focal_mode="mean").cameras
    # InfoNeRF: one focal for every view, the mean over ALL views of (fx + fy) / 2, whatever the split.
    expected = float(torch.mean((per_view.fx + per_view.fy) / 2))
    torch.testing.assert_close(mean.fx, torch.full((3, 1), expected))
    torch.testing.assert_close(mean.fy, mean.fx)
    torch.testing.assert_close(mean.cx, per_view.cx[[22, 25, 28]])
    assert float((per_view.fx - per_view.fy).abs().max()) > 1.0  # real DTU has fx != fy: the mode matters
    centred = parse(scan24, principal_point="image_centre").cameras
    # InfoNeRF's rays go through integer pixel coordinates minus W/2: nerfstudio's cx = W/2 + 0.5.
    torch.testing.assert_close(centred.cx, torch.full((3, 1), 192.5))
    torch.testing.assert_close(centred.fx, per_view.fx[[22, 25, 28]])
    assert float((per_view.cx - 192.5).abs().min()) > 5.0


def test_scan65_missing_views_and_masks(scan65: Path, tmp_path: Path) -> None:
    assert detect_dtu_layout(scan65) == "idr"
    with pytest.raises(DatasetFormatError, match=r"needs views \[22, 25, 28\] .* only 3 views \(0..2\)"):
        parse(scan65)
    with pytest.raises(DatasetFormatError, match=r"'regnerf' needs views \[9, 10, .*, 47\] for the test split"):
        parse(scan65, "test", split_mode="regnerf", train_views=(0,), num_train_views=7)
    outputs = parse(scan65, "test", split_mode="infonerf", train_views=(1,))
    assert outputs.metadata["view_indices"] == [0, 2]
    assert outputs.mask_filenames is None
    object_masks = outputs.metadata["object_mask_filenames"]
    assert [p.name for p in object_masks] == ["000.png", "002.png"]
    # use_masks: nerfstudio's mask loader needs one channel; the real masks are RGB, so copies are made.
    masked = parse(scan65, "test", split_mode="infonerf", train_views=(1,), use_masks=True, mask_cache_dir=tmp_path)
    assert masked.mask_filenames is not None and all(tmp_path in p.parents for p in masked.mask_filenames)
    for original, copy in zip(object_masks, masked.mask_filenames):
        loaded = get_image_mask_tensor_from_path(copy)
        assert loaded.shape == (1200, 1600, 1)
        np.testing.assert_array_equal(loaded[..., 0].numpy(), read_dtu_mask(original))
    assert parse(scan65, split_mode="all", use_masks=True, mask_cache_dir=tmp_path).mask_filenames is not None


def test_generated_idr_scene_matches_the_generator(tmp_path: Path) -> None:
    write_dtu(tmp_path, width=40, height=30, num_cameras=4, seed=6, world_scale=200.0, world_offset=(-40, 30, 620))
    outputs = parse(tmp_path, split_mode="all")
    # The generator's render cameras (nerfstudio conventions, normalised world), as in test_scenegen_formats.
    rig = sphere_rig(4, 40, 30, radius=3.0, fov_x_degrees=50.0, up="-y", pole="-z", min_elevation_degrees=35.0,
                     max_elevation_degrees=75.0, seed=6)  # fmt: skip
    cameras = outputs.cameras
    np.testing.assert_allclose(
        cameras.camera_to_worlds.double().numpy(), np.stack([c.camera_to_world for c in rig]), atol=1e-5
    )
    np.testing.assert_allclose(cameras.fx.numpy()[:, 0], rig[0].fx, rtol=1e-5)
    np.testing.assert_allclose(cameras.fy.numpy()[:, 0], rig[0].fx * 1.01, rtol=1e-5)
    # The generator renders with principal point (20 + 1.25, 15 - 0.75) in nerfstudio's pixel convention.
    np.testing.assert_allclose(cameras.cx.numpy(), 21.25, atol=1e-4)
    np.testing.assert_allclose(cameras.cy.numpy(), 14.25, atol=1e-4)
    assert outputs.dataparser_scale == pytest.approx(1 / 200.0)
    np.testing.assert_allclose(outputs.dataparser_transform[:, 3].numpy(), [40.0, -30.0, -620.0], rtol=1e-6)
    assert [p.name for p in outputs.metadata["object_mask_filenames"]] == [f"{i:03d}.png" for i in range(4)]


def _idr_scan(folder: Path) -> Path:
    write_dtu(folder, width=16, height=12, num_cameras=3, seed=1)
    return folder


def test_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    no_images = _idr_scan(tmp_path / "no_images")
    for image in (no_images / "image").iterdir():
        image.unlink()
    with pytest.raises(DatasetFormatError, match=r"no_images/image: holds no \.png or \.jpg images"):
        parse(no_images, split_mode="all")
    extra_image = _idr_scan(tmp_path / "extra_image")
    (extra_image / "image" / "000003.png").write_bytes((extra_image / "image" / "000001.png").read_bytes())
    (extra_image / "mask").rename(extra_image / "unused_masks")
    with pytest.raises(DatasetFormatError, match=r"cameras\.npz: has 3 views \(world_mat_<i>\) but there are 4 images"):
        parse(extra_image, split_mode="all")
    corrupt = _idr_scan(tmp_path / "corrupt")
    (corrupt / "cameras.npz").write_bytes(b"PK\x03\x04 not an archive")
    with pytest.raises(DatasetFormatError, match=r"corrupt/cameras\.npz: unreadable camera file"):
        parse(corrupt, split_mode="all")
    missing_key = _idr_scan(tmp_path / "missing_key")
    arrays = dict(np.load(missing_key / "cameras.npz"))
    del arrays["scale_mat_2"]
    np.savez(missing_key / "cameras.npz", **arrays)
    with pytest.raises(DatasetFormatError, match="cameras.npz: missing key 'scale_mat_2'"):
        parse(missing_key, split_mode="all")
    uneven = _idr_scan(tmp_path / "uneven")
    arrays = dict(np.load(uneven / "cameras.npz"))
    arrays["scale_mat_1"][0, 3] += 5.0  # another world centre for view 1
    np.savez(uneven / "cameras.npz", **arrays)
    with pytest.raises(DatasetFormatError, match="scale_mat_<i> differ between views"):
        parse(uneven, split_mode="all")
    with pytest.raises(DatasetFormatError, match="is not a DTU scan: expected image/"):
        parse(tmp_path, split_mode="all")
    with pytest.raises(DatasetFormatError, match="nowhere: missing folder: DTU scan"):
        parse(tmp_path / "nowhere")
    both = _idr_scan(tmp_path / "both")
    (both / "000000_rgb.png").write_bytes((both / "image" / "000000.png").read_bytes())
    with pytest.raises(DatasetFormatError, match="holds both image/"):
        parse(both, split_mode="all")
    assert len(parse(both, split_mode="all", layout="idr").image_filenames) == 3
    no_masks = _idr_scan(tmp_path / "no_masks")
    for mask in (no_masks / "mask").iterdir():
        mask.unlink()
    (no_masks / "mask").rmdir()
    assert parse(no_masks, split_mode="all").metadata["object_mask_filenames"] is None
    with pytest.raises(DatasetFormatError, match=r"no_masks/mask: missing folder: object masks"):
        parse(no_masks, split_mode="all", use_masks=True)


def test_ns_train_lists_dtu_data(tmp_path: Path) -> None:
    result = run_command(["ns-train", "vanilla-nerf", "--help"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dtu-data" in result.stdout
