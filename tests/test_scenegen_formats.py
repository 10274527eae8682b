"""The six dataset writers: layout, names, dtypes and shapes against the real files, and read-back of cameras.

Real examples live in the repository's sibling ``../shared/data`` (SOURCES.md); where one exists, the real and the
generated dataset go through the same check function. Read-back uses nerfstudio's Blender dataparser and this
repo's readers (``dataparsers.poses_bounds``, ``dtu``, ``srn``, ``n3dv``, ``nvidia_dynamic``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from numpy.typing import ArrayLike
from PIL import Image

from dataparsers.poses_bounds import read_poses_bounds
from nerfstudio_methods.scenegen import cli
from nerfstudio_methods.scenegen.cameras import forward_facing_rig, sphere_rig
from nerfstudio_methods.scenegen.formats import (
    write_blender,
    write_dtu,
    write_llff,
    write_n3dv,
    write_nvidia_dynamic,
    write_srn,
)
from nerfstudio_methods.scenegen.formats._io import atomic_path
from nerfstudio_methods.scenegen.formats.dtu import OPENCV_PIXEL_OFFSET
from nerfstudio_methods.scenegen.formats.srn import SRN_NORMALIZED_FOCAL, instance_ids
from nerfstudio_methods.scenegen.groundtruth import disparity, optical_flow, render_view
from nerfstudio_methods.scenegen.scene import forward_facing_scene

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POSE_TOLERANCE = 1e-5


def real(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real example {path} is not available")
    return path


def image_info(path: Path) -> tuple[str, tuple[int, int], np.dtype]:
    """(PIL mode, (width, height), array dtype) of an image file."""
    with Image.open(path) as image:
        return image.mode, image.size, np.asarray(image).dtype


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def c2w_3x4(matrices: ArrayLike) -> np.ndarray:
    return np.asarray(matrices, dtype=np.float64)[..., :3, :4]


# ---------------------------------------------------------------------------------------------------------------
# Blender


def check_blender(folder: Path, split: str) -> tuple[dict, DataparserOutputs]:
    """Same checks for lego and for a generated scene; returns the JSON and nerfstudio's cameras for the split."""
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig

    meta = json.loads((folder / f"transforms_{split}.json").read_text())
    assert set(meta) == {"camera_angle_x", "frames"}
    for frame in meta["frames"]:
        assert set(frame) <= {"file_path", "rotation", "transform_matrix", "time"}
        assert {"file_path", "rotation", "transform_matrix"} <= set(frame)
        assert re.fullmatch(rf"\./{split}/r_\d+", frame["file_path"])  # no extension, like lego
        assert np.asarray(frame["transform_matrix"]).shape == (4, 4)
    first = folder / (meta["frames"][0]["file_path"][2:] + ".png")
    mode, _, dtype = image_info(first)
    assert (mode, dtype) == ("RGBA", np.uint8)
    outputs = BlenderDataParserConfig(data=folder).setup().get_dataparser_outputs(split)
    assert len(outputs.image_filenames) == len(meta["frames"])
    np.testing.assert_allclose(
        outputs.cameras.camera_to_worlds.numpy(),
        c2w_3x4([f["transform_matrix"] for f in meta["frames"]]),
        atol=POSE_TOLERANCE,
    )
    return meta, outputs


def test_blender_matches_lego_and_loads_in_nerfstudio(tmp_path: Path) -> None:
    lego_meta, lego = check_blender(real("nerf_synthetic/lego"), "train")
    assert int(lego.cameras.width[0]) == 800

    summary = write_blender(tmp_path, width=40, height=32, num_cameras=5, num_val=2, num_test=1, seed=3)
    assert {p.name for p in tmp_path.iterdir()} == {
        "transforms_train.json",
        "transforms_val.json",
        "transforms_test.json",
        "train",
        "val",
        "test",
    }
    assert len(summary.files) == 5 + 2 + 1 + 3
    meta, outputs = check_blender(tmp_path, "train")
    assert set(meta["frames"][0]) == set(lego_meta["frames"][0])
    rig = sphere_rig(5, 40, 32, radius=3.2, fov_x_degrees=40.0, up="+z", seed=9)
    np.testing.assert_allclose(
        outputs.cameras.camera_to_worlds.numpy(), c2w_3x4([c.camera_to_world for c in rig]), atol=POSE_TOLERANCE
    )
    assert (int(outputs.cameras.width[0]), int(outputs.cameras.height[0])) == (40, 32)
    assert float(outputs.cameras.fx[0]) == pytest.approx(rig[0].fx, rel=1e-6)
    for split, count in (("val", 2), ("test", 1)):
        assert len(check_blender(tmp_path, split)[1].image_filenames) == count
    # Transparent background, opaque objects: alpha is the exact accumulation.
    alpha = np.asarray(Image.open(tmp_path / "train" / "r_0.png"))[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255
    # The dynamic variant adds D-NeRF's per-frame time in [0, 1].
    write_blender(tmp_path / "dynamic", width=16, height=16, num_cameras=3, num_val=1, num_test=1, dynamic=True)
    frames = json.loads((tmp_path / "dynamic" / "transforms_train.json").read_text())["frames"]
    assert [frame["time"] for frame in frames] == [0.0, 0.5, 1.0]


# ---------------------------------------------------------------------------------------------------------------
# LLFF


def check_llff(folder: Path, factor: int) -> tuple[np.ndarray, list[Path]]:
    """poses_bounds.npy semantics shared by fern and generated data: hwf is the full-resolution size."""
    raw = np.load(folder / "poses_bounds.npy")
    assert raw.ndim == 2 and raw.shape[1] == 17 and raw.dtype == np.float64
    poses = read_poses_bounds(folder / "poses_bounds.npy")
    images = sorted((folder / f"images_{factor}").glob("*.png"))
    assert [p.name for p in images] == [f"image{i:03d}.png" for i in range(len(poses))]
    for path in images:
        _, (width, height), dtype = image_info(path)
        assert dtype == np.uint8
        assert (width * factor, height * factor) == (poses.width[0], poses.height[0])
    assert np.all(poses.near_far[:, 0] > 0)
    return raw, images


def test_llff_matches_fern_and_round_trips(tmp_path: Path) -> None:
    fern_raw, _ = check_llff(real("nerf_llff_data/fern"), 8)
    write_llff(tmp_path, width=64, height=48, num_cameras=4, seed=2)
    raw, _ = check_llff(tmp_path, 2)
    assert raw.dtype == fern_raw.dtype and raw.shape[1] == fern_raw.shape[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "images_2", "images_4", "poses_bounds.npy"]
    check_llff(tmp_path, 4)
    assert [image_info(p)[1] for p in sorted((tmp_path / "images").glob("*.png"))] == [(64, 48)] * 4
    poses = read_poses_bounds(tmp_path / "poses_bounds.npy")
    rig = forward_facing_rig(4, 64, 48, seed=2)
    assert len(poses) == 4
    np.testing.assert_allclose(poses.camera_to_world, np.stack([c.camera_to_world for c in rig]), atol=POSE_TOLERANCE)
    assert poses.focal[0] == pytest.approx(rig[0].fx)
    # Near/far bracket the true depths of everything each camera sees.
    scene = forward_facing_scene(2)
    for camera, (near, far) in zip(rig, poses.near_far):
        render = render_view(scene, camera)
        z = camera.z_depth(render.depth)
        assert near < z.min() and z.max() < far


def test_llff_rejects_indivisible_factor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not divisible"):
        write_llff(tmp_path, width=60, height=44, factors=[8])


# ---------------------------------------------------------------------------------------------------------------
# N3DV


def test_n3dv_videos_and_poses_round_trip(tmp_path: Path) -> None:
    from dataparsers.n3dv import read_n3dv_frame, read_n3dv_scene

    write_n3dv(tmp_path, width=48, height=32, num_cameras=4, num_frames=5, seed=1, missing_cameras=[2])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["cam00.mp4", "cam01.mp4", "cam03.mp4", "cam04.mp4", "poses_bounds.npy"]
    scene = read_n3dv_scene(tmp_path)
    assert len(scene) == 4 and scene.camera_ids.tolist() == [0, 1, 3, 4] and scene.test_camera_index == 0
    assert (scene.cameras.width, scene.cameras.height) == (48, 32)
    rig = forward_facing_rig(5, 48, 32, seed=1)
    expected = np.stack([rig[i].camera_to_world for i in (0, 1, 3, 4)])
    np.testing.assert_allclose(c2w_3x4(scene.cameras.camera_to_world), expected, atol=POSE_TOLERANCE)
    raw = np.load(tmp_path / "poses_bounds.npy")
    assert raw.shape == (4, 17) and raw.dtype == np.float64
    # cam00 is the centre camera. Frames decode close to the exact renders: the error is dominated by yuv420p's
    # halved chroma resolution at texture edges (crf 0 would barely lower it), so check the median and that frame k
    # is closest to time k / (N - 1) rather than to the other times.
    np.testing.assert_allclose(scene.cameras.camera_to_world[0, :3, 3], 0.0, atol=1e-12)
    dynamic = forward_facing_scene(1, dynamic=True)
    for frame in (0, 4):
        decoded = read_n3dv_frame(scene, frame).astype(np.float64)
        assert decoded.shape == (4, 32, 48, 3)
        for k, camera_id in enumerate((0, 1, 3, 4)):
            errors = [np.abs(decoded[k] - render_view(dynamic, rig[camera_id], t).rgb * 255) for t in (0.0, 0.5, 1.0)]
            assert np.median(errors[frame // 2]) < 3.0 and errors[frame // 2].mean() < 6.0
            assert int(np.argmin([e.mean() for e in errors])) == frame // 2
    import imageio.v2 as imageio

    reader = imageio.get_reader(tmp_path / "cam03.mp4", format="FFMPEG")  # pyright: ignore[reportArgumentType]
    try:
        assert reader.get_meta_data()["fps"] == pytest.approx(30.0)
        assert sum(1 for _ in reader.iter_data()) == 5
    finally:
        reader.close()


def test_n3dv_rejects_sizes_that_ffmpeg_would_resize(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        write_n3dv(tmp_path, width=50, height=32)
    with pytest.raises(ValueError, match="cam00"):
        write_n3dv(tmp_path, missing_cameras=[0])


# ---------------------------------------------------------------------------------------------------------------
# NVIDIA dynamic (DynamicNeRF layout)


def check_nvidia(folder: Path):
    """What the real Balloon1 and a generated scene share: names, dtypes, shapes, hwf at images/ resolution."""
    from dataparsers.nvidia_dynamic import read_disparity, read_nvidia_dynamic_scene

    raw = np.load(folder / "poses_bounds.npy")
    assert raw.ndim == 2 and raw.shape[1] == 17 and raw.dtype == np.float64
    count = raw.shape[0]
    assert [p.name for p in sorted((folder / "images").iterdir())] == [f"{i:03d}.png" for i in range(count)]
    assert [p.name for p in sorted((folder / "disp").iterdir())] == [f"{i:03d}.npy" for i in range(count)]
    scene = read_nvidia_dynamic_scene(folder)
    height, width = raw[0, 4], raw[0, 9]  # hwf column of the 3x5 matrix
    assert (scene.cameras.width, scene.cameras.height) == (width, height)
    disp = np.load(folder / "disp" / "000.npy")
    assert disp.dtype == np.float32 and disp.shape == (height, width)
    assert read_disparity(scene.disparity_paths[0], scene.cameras.height, scene.cameras.width).shape == (height, width)  # pyright: ignore[reportOptionalSubscript]
    mode, _, _ = image_info(scene.image_paths[0])
    assert mode == "RGB"
    return scene


def test_nvidia_dynamic_matches_balloon1_and_round_trips(tmp_path: Path) -> None:
    from dataparsers.nvidia_dynamic import read_flow, read_motion_mask, read_nvidia_dynamic_scene

    balloon = check_nvidia(real("nvidia_dynamic/Balloon1"))
    n = 6
    write_nvidia_dynamic(tmp_path, width=32, height=18, num_frames=n, seed=5)
    scene = check_nvidia(tmp_path)
    assert len(scene) == n and len(balloon) == 12
    rig = forward_facing_rig(n, 32, 18, spread=0.3, seed=5, layout="line")
    np.testing.assert_allclose(
        c2w_3x4(scene.cameras.camera_to_world), np.stack([c.camera_to_world for c in rig]), atol=POSE_TOLERANCE
    )
    assert scene.cameras.fx[0] == pytest.approx(rig[0].fx)
    half = read_nvidia_dynamic_scene(tmp_path, factor=2)
    assert (half.cameras.width, half.cameras.height) == (16, 9) and half.cameras.fx[0] == pytest.approx(rig[0].fx / 2)

    flows = sorted(p.name for p in (tmp_path / "flow").iterdir())
    assert flows == sorted([f"{i:03d}_fwd.npz" for i in range(n - 1)] + [f"{i:03d}_bwd.npz" for i in range(1, n)])
    dynamic = forward_facing_scene(5, dynamic=True)
    times = np.arange(n) / (n - 1)
    with np.load(tmp_path / "flow" / "002_fwd.npz") as archive:
        assert sorted(archive.files) == ["flow", "mask"]
        assert archive["flow"].dtype == np.float32 and archive["flow"].shape == (18, 32, 2)
        assert archive["mask"].dtype == np.float32 and archive["mask"].shape == (18, 32)
    expected = optical_flow(dynamic, rig[2], times[2], rig[3], times[3])
    read = read_flow(tmp_path / "flow" / "002_fwd.npz", 18, 32)
    np.testing.assert_allclose(read.flow, expected.flow, atol=1e-4)
    np.testing.assert_array_equal(read.mask, expected.mask)
    backward = read_flow(tmp_path / "flow" / "003_bwd.npz", 9, 16)  # the reader halves vectors with the image
    assert backward.flow.shape == (9, 16, 2)

    render = render_view(dynamic, rig[1], times[1])
    np.testing.assert_allclose(np.load(tmp_path / "disp" / "001.npy"), disparity(rig[1], render), rtol=1e-6)
    assert image_info(tmp_path / "motion_masks" / "001.png")[:1] == ("L",)
    assert set(np.unique(np.asarray(Image.open(tmp_path / "motion_masks" / "001.png"))).tolist()) <= {0, 255}
    moving = read_motion_mask(scene.motion_mask_paths[1], 18, 32)  # pyright: ignore[reportOptionalSubscript]
    assert moving.any() and not moving.all()
    np.testing.assert_allclose(
        read_rgb(tmp_path / "images_2" / "001.png"),
        read_rgb(tmp_path / "images" / "001.png").reshape(9, 2, 16, 2, 3).mean((1, 3)),
        atol=1.0,
    )

    # multiview_GT: 1-based time and camera folders, every camera at every time; the diagonal is the video.
    times_dirs = sorted(p.name for p in (tmp_path / "multiview_GT").iterdir())
    assert times_dirs == [f"{t:08d}" for t in range(1, n + 1)]
    for t in times_dirs:
        assert sorted(p.name for p in (tmp_path / "multiview_GT" / t).iterdir()) == [
            f"cam{c:02d}.jpg" for c in range(1, n + 1)
        ]
    for i in (0, n - 1):
        gt = read_rgb(tmp_path / "multiview_GT" / f"{i + 1:08d}" / f"cam{i + 1:02d}.jpg")
        assert np.abs(gt - read_rgb(tmp_path / "images" / f"{i:03d}.png")).mean() < 6.0


# ---------------------------------------------------------------------------------------------------------------
# SRN


def test_srn_layout_and_round_trip(tmp_path: Path) -> None:
    from dataparsers.srn import list_srn_instances, read_srn_instance

    write_srn(tmp_path, width=32, height=32, num_cameras=3, num_instances=2, seed=4)
    instances = list_srn_instances(tmp_path / "cars_train")
    assert len(instances) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", p.name) for p in instances)
    for instance_dir in instances:
        assert sorted(p.name for p in (instance_dir / "rgb").iterdir()) == ["000000.png", "000001.png", "000002.png"]
        assert sorted(p.name for p in (instance_dir / "pose").iterdir()) == ["000000.txt", "000001.txt", "000002.txt"]
        lines = (instance_dir / "intrinsics.txt").read_text().splitlines()
        assert lines[1:] == ["0. 0. 0.", "1.", "32 32"] and lines[0].endswith(" 0.")
        assert len((instance_dir / "pose" / "000000.txt").read_text().split()) == 16
        mode, size, _ = image_info(instance_dir / "rgb" / "000000.png")
        assert (mode, size) == ("RGB", (32, 32))
        assert np.all(read_rgb(instance_dir / "rgb" / "000000.png")[0, 0] == 255)  # white background
    # Instance k (in generation order, not sorted order) uses a rig seeded with seed * 1009 + k.
    ids = instance_ids(2, 4)
    assert sorted(ids) == [p.name for p in instances]
    for k, instance_id in enumerate(ids):
        loaded = read_srn_instance(tmp_path / "cars_train" / instance_id)
        rig = sphere_rig(
            3, 32, 32, radius=1.3, fov_x_degrees=loaded_fov(), up="+z", min_elevation_degrees=-30.0,
            max_elevation_degrees=75.0, seed=4 * 1009 + k,
        )  # fmt: skip
        assert len(loaded) == 3
        # The files hold OpenCV axes; the reader's diag(1, -1, -1, 1) gives back the OpenGL rig.
        np.testing.assert_allclose(
            c2w_3x4(loaded.cameras.camera_to_world), np.stack([c.camera_to_world for c in rig]), atol=POSE_TOLERANCE
        )
        assert loaded.cameras.fx[0] == pytest.approx(rig[0].fx, rel=1e-6)
        assert (loaded.cameras.cx[0], loaded.cameras.cy[0]) == (16.0, 16.0)
        # World up +z and cameras at radius 1.3 looking at the origin.
        centres = loaded.cameras.camera_to_world[:, :3, 3]
        np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 1.3, rtol=1e-6)
        forward = -loaded.cameras.camera_to_world[:, :3, 2]  # OpenGL cameras look along their -z axis
        np.testing.assert_allclose(forward, -centres / 1.3, atol=1e-6)


def loaded_fov() -> float:
    return float(np.degrees(2 * np.arctan(0.5 / SRN_NORMALIZED_FOCAL)))


def test_srn_intrinsics_for_another_resolution_are_rescaled(tmp_path: Path) -> None:
    from dataparsers.srn import read_srn_instance

    write_srn(tmp_path, width=16, height=16, num_cameras=1, num_instances=1, intrinsics_resolution=512)
    instance = next((tmp_path / "cars_train").iterdir())
    assert (instance / "intrinsics.txt").read_text().splitlines()[3] == "512 512"
    loaded = read_srn_instance(instance)
    assert loaded.cameras.fx[0] == pytest.approx(16 * 131.25 / 128, rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# DTU (IDR layout)


def camera_mat_form(width: int, height: int) -> np.ndarray:
    return np.array([[2 / width, 0, -1, 0], [0, 2 / height, -1, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def check_dtu(folder: Path) -> dict[str, np.ndarray]:
    """Key names, dtypes, the camera_mat form and the _inv relations: the same code for scan65 and generated data."""
    images = sorted((folder / "image").iterdir())
    masks = sorted((folder / "mask").iterdir())
    assert [p.name for p in images] == [f"{i:06d}.png" for i in range(len(images))]
    assert [p.name for p in masks] == [f"{i:03d}.png" for i in range(len(images))]
    assert image_info(images[0])[0] == "RGB"
    mode, size, dtype = image_info(masks[0])
    assert (mode, dtype) == ("RGB", np.uint8) and size == image_info(images[0])[1]
    assert set(np.unique(np.asarray(Image.open(masks[0]))).tolist()) == {0, 255}
    with np.load(folder / "cameras.npz") as archive:
        cameras = {key: archive[key] for key in archive.files}
    views = len([k for k in cameras if k.startswith("world_mat_") and "inv" not in k])
    assert len(cameras) == 6 * views
    width, height = size
    for i in range(views):
        for name in ("world_mat", "scale_mat", "camera_mat"):
            matrix, inverse = cameras[f"{name}_{i}"], cameras[f"{name}_inv_{i}"]
            assert matrix.dtype == inverse.dtype == np.float32 and matrix.shape == (4, 4)
            # float32 files: scan65's translations reach 5e5, so compare with a scale-aware tolerance.
            expected = np.linalg.inv(matrix.astype(np.float64))
            np.testing.assert_allclose(inverse, expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())
        np.testing.assert_allclose(cameras[f"camera_mat_{i}"], camera_mat_form(width, height), rtol=1e-6)
        np.testing.assert_array_equal(cameras[f"world_mat_{i}"][3], [0, 0, 0, 1])
        scale = cameras[f"scale_mat_{i}"]
        assert scale[0, 0] == scale[1, 1] == scale[2, 2] > 1 and np.all(scale[3] == [0, 0, 0, 1])
        np.testing.assert_array_equal(scale, cameras["scale_mat_0"])
    return cameras


def test_dtu_matches_scan65_and_round_trips(tmp_path: Path) -> None:
    from dataparsers.dtu import decompose_projection, read_dtu_mask, read_dtu_scene

    real_cameras = check_dtu(real("dtu_idr/dtu_scan65"))
    assert len(read_dtu_scene(real("dtu_idr/dtu_scan65"))) == 3
    write_dtu(tmp_path, width=40, height=30, num_cameras=4, seed=6)
    cameras = check_dtu(tmp_path)
    assert {k.rsplit("_", 1)[0] for k in cameras} == {k.rsplit("_", 1)[0] for k in real_cameras}

    scene = read_dtu_scene(tmp_path)
    rig = sphere_rig(4, 40, 30, radius=3.0, fov_x_degrees=50.0, up="-y", pole="-z", min_elevation_degrees=35.0,
                     max_elevation_degrees=75.0, seed=6)  # fmt: skip
    assert len(scene) == 4 and (scene.cameras.width, scene.cameras.height) == (40, 30)
    # Normalised world (after undoing scale_mat), OpenGL axes: the generator's cameras within 1e-5.
    np.testing.assert_allclose(
        c2w_3x4(scene.cameras.camera_to_world), np.stack([c.camera_to_world for c in rig]), atol=POSE_TOLERANCE
    )
    np.testing.assert_allclose(scene.cameras.fx, rig[0].fx, rtol=1e-5)
    np.testing.assert_allclose(scene.cameras.fy, rig[0].fx * 1.01, rtol=1e-5)
    # Stored principal point is OpenCV's (pixel centres at integers) = render camera's minus 0.5.
    np.testing.assert_allclose(scene.cameras.cx + OPENCV_PIXEL_OFFSET, 20.0 + 1.25, atol=1e-4)
    np.testing.assert_allclose(scene.cameras.cy + OPENCV_PIXEL_OFFSET, 15.0 - 0.75, atol=1e-4)
    # A reader that ignored scale_mat would put the cameras hundreds of units away.
    _, unnormalised = decompose_projection(cameras["world_mat_0"][:3])
    assert np.linalg.norm(unnormalised[:3, 3] - scene.cameras.camera_to_world[0, :3, 3]) > 100
    # The object (around the normalised origin) is inside every mask.
    for camera, mask_path in zip(rig, scene.mask_paths or ()):
        (x, y), _ = camera.project(np.zeros(3))
        assert read_dtu_mask(mask_path)[int(y), int(x)]


# ---------------------------------------------------------------------------------------------------------------
# CLI and atomic writes


def test_cli_writes_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "scan"
    args = ["--format", "dtu", "--output", str(output), "--width", "24", "--height", "16", "--num-cameras", "2"]
    assert cli.run([*args, "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "[dtu] image, mask: 2 views of 24x16" in out and "wrote 5 files of format 'dtu'" in out
    assert sorted(p.name for p in output.iterdir()) == ["cameras.npz", "image", "mask"]
    assert not list(output.rglob(".*"))  # no temporary files left behind
    # Writing again into the non-empty folder needs --overwrite.
    with pytest.raises(SystemExit) as exit_info:
        cli.run(args)
    assert exit_info.value.code == 2
    assert cli.run([*args, "--overwrite", "--quiet"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "llff", "--width", "-5"], "image size must be at least"),
        (["--format", "srn", "--num-cameras", "0"], "num_cameras must be at least 1"),
        (["--format", "llff", "--num-frames", "3"], "--num-frames does not apply to format llff"),
        (["--format", "nvidia-dynamic", "--num-cameras", "4", "--num-frames", "5"], "must equal"),
        (["--format", "bogus"], "invalid choice"),
    ],
)
def test_cli_bad_arguments_give_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["--output", str(tmp_path / "out"), *extra])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nerfstudio-methods-scene: error:") and message in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "out").exists()


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "poses_bounds.npy"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_console_entrypoint_exits_2_without_traceback(tmp_path: Path) -> None:
    """The real process (what ``nerfstudio-methods-scene`` runs): status 2 and a single stderr line."""
    command = "from nerfstudio_methods.scenegen.cli import entrypoint; entrypoint()"
    bad = ["--format", "n3dv", "--output", str(tmp_path / "out"), "--width", "50"]
    completed = subprocess.run(
        [sys.executable, "-c", command, *bad], check=False, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert lines == ["nerfstudio-methods-scene: error: image width and height must be multiples of 16, got 50x48"]
    assert completed.stdout == ""


def test_n3dv_room_is_static_but_for_small_moving_objects(tmp_path: Path) -> None:
    """The ``room`` kind, shaped like N3DV's real videos: every primitive but the one or two movers keeps still, and
    on every camera at every frame the moving objects cover between 0 and 5% of the image (seeds 0-2)."""
    from nerfstudio_methods.scenegen.scene import moving_mask, room_scene

    for seed in range(3):
        scene = room_scene(seed)
        movers = [primitive.name for primitive in scene.primitives if primitive.is_moving]
        assert movers == ["mover0", "mover1"]
        rig = forward_facing_rig(6, 64, 48, seed=seed)
        shares = [
            float(moving_mask(scene, render_view(scene, camera, time).primitive_id).mean())
            for camera in rig
            for time in np.linspace(0.0, 1.0, 5)
        ]
        assert 0.0 < max(shares) <= 0.05, (seed, max(shares))
    summary = write_n3dv(tmp_path, width=48, height=32, num_cameras=3, num_frames=3, seed=0, kind="room")
    assert summary.details["kind"] == "room" and 0.0 < summary.details["moving_area_max"] <= 0.05
    with pytest.raises(ValueError, match="unknown n3dv scene kind"):
        write_n3dv(tmp_path / "bad", kind="street")  # type: ignore[arg-type]
