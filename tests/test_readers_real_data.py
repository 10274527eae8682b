"""Low-level dataset readers: DTU (IDR and MonoSDF layouts), SRN, N3DV / Meet Room and NVIDIA Dynamic Scenes.

Real data (read-only, ``../shared/data``, see its SOURCES.md) checks the camera conventions on DTU scans and
Balloon1; small fixtures written into ``tmp_path`` check exact numbers, SRN and N3DV (no real copies exist) and
every error path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataparsers._common import DatasetFormatError
from dataparsers.dtu import (
    DtuScene,
    decompose_projection,
    read_dtu_mask,
    read_dtu_scene,
    read_monosdf_dtu_scene,
)
from dataparsers.n3dv import (
    decode_video_frame,
    list_n3dv_videos,
    list_prepared_frames,
    read_n3dv_frame,
    read_n3dv_scene,
    read_prepared_frame,
    video_size,
)
from dataparsers.nvidia_dynamic import (
    read_disparity,
    read_flow,
    read_motion_mask,
    read_nvidia_dynamic_scene,
)
from dataparsers.poses_bounds import write_poses_bounds
from dataparsers.srn import list_srn_instances, read_srn_instance

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SCAN65 = SHARED_DATA / "dtu_idr" / "dtu_scan65"
SCAN24 = SHARED_DATA / "dtu_monosdf" / "scan24"
BALLOON1 = SHARED_DATA / "nvidia_dynamic" / "Balloon1"
FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def _require(path: Path) -> Path:
    # Like conftest.shared_data: the suite needs the real data (CI lays ../shared/data beside the clone).
    if not path.exists():
        raise FileNotFoundError(f"real test data missing: {path} (expected ../shared/data beside the repo)")
    return path


def _save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _look_at_origin_opencv(centre: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world (x right, y down, z forward) at ``centre`` looking at the origin, world +z up."""
    forward = -centre / np.linalg.norm(centre)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, down, forward], axis=1)
    c2w[:3, 3] = centre
    return c2w


def _project_with_reader(scene: DtuScene, view: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and depths of normalised-world points through the reader's K and OpenGL camera-to-world."""
    world_to_camera = np.linalg.inv(scene.cameras.camera_to_world[view] @ FLIP_YZ)  # back to OpenCV axes
    camera = (world_to_camera[:3, :3] @ points.T + world_to_camera[:3, 3:]).T
    u = scene.cameras.fx[view] * camera[:, 0] / camera[:, 2] + scene.cameras.cx[view]
    v = scene.cameras.fy[view] * camera[:, 1] / camera[:, 2] + scene.cameras.cy[view]
    return np.stack([u, v], axis=1), camera[:, 2]


def _rq_intrinsics(projection: np.ndarray) -> np.ndarray:
    """Reference K from a plain numpy RQ decomposition (QR of the row-reversed transpose), K[2,2] = 1."""
    matrix = projection[:, :3] * np.sign(np.linalg.det(projection[:, :3]))
    reverse = np.eye(3)[::-1]
    _, upper = np.linalg.qr((reverse @ matrix).T)
    intrinsics = reverse @ upper.T @ reverse
    intrinsics = intrinsics @ np.diag(np.sign(np.diag(intrinsics)))
    return intrinsics / intrinsics[2, 2]


# ----------------------------------------------------------------------------------------------------- DTU, real


@pytest.mark.parametrize(
    ("read", "folder", "cameras_file"),
    [
        (read_dtu_scene, SCAN65, "cameras.npz"),
        (read_dtu_scene, SCAN65, "cameras_sphere.npz"),
        (read_monosdf_dtu_scene, SCAN24, "cameras.npz"),
    ],
    ids=["scan65", "scan65-sphere", "scan24-monosdf"],
)
def test_dtu_real_cameras_surround_the_unit_sphere_and_look_at_it(read, folder, cameras_file) -> None:
    folder = _require(folder)
    scene = read(folder) if cameras_file == "cameras.npz" else read(folder, cameras_file=cameras_file)
    assert len(scene) == (3 if folder == SCAN65 else 49)
    assert scene.cameras.camera_to_world.shape == (len(scene), 4, 4)
    np.testing.assert_allclose(scene.cameras.cx, scene.cameras.width / 2, rtol=0.05)
    np.testing.assert_allclose(scene.cameras.cy, scene.cameras.height / 2, rtol=0.05)
    np.testing.assert_allclose(scene.cameras.fx, scene.cameras.fy, rtol=0.01)
    rotations = scene.cameras.camera_to_world[:, :3, :3]
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-5
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-5)
    centres = scene.cameras.camera_to_world[:, :3, 3]
    distances = np.linalg.norm(centres, axis=1)
    assert np.all((distances > 1.5) & (distances < 4.5)), distances
    assert distances.max() / distances.min() < 1.2
    # OpenGL cameras look down -z: every view must face the object at the origin.
    viewing = -scene.cameras.camera_to_world[:, :3, 2]
    cosines = np.sum(viewing * (-centres / distances[:, None]), axis=1)
    assert np.all(np.degrees(np.arccos(np.clip(cosines, -1, 1))) < 20)


def test_dtu_real_projection_reproduces_world_mat() -> None:
    scan65, scan24 = read_dtu_scene(_require(SCAN65)), read_monosdf_dtu_scene(_require(SCAN24))
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(50, 3))
    for scene, folder, monosdf in ((scan65, SCAN65, False), (scan24, SCAN24, True)):
        cameras = np.load(folder / "cameras.npz")
        for view in (0, len(scene) - 1):
            world_mat, scale_mat = cameras[f"world_mat_{view}"], cameras[f"scale_mat_{view}"]
            # Brute force: the file's matrix applied to the points mapped back to DTU's world.
            world_points = (scale_mat @ np.c_[points, np.ones(len(points))].T).T
            projected = (world_mat[:3] @ world_points.T).T
            reference = projected[:, :2] / projected[:, 2:]
            if monosdf:  # 1600x1200 -> centre 1200x1200 crop -> 384x384
                reference = (reference - [200.0, 0.0]) * scene.cameras.width / 1200
            pixels, depth = _project_with_reader(scene, view, points)
            assert np.all(depth > 0)
            np.testing.assert_allclose(pixels, reference, atol=0.05)


def test_dtu_real_cv2_decomposition_agrees_with_numpy_rq() -> None:
    cameras = np.load(_require(SCAN65) / "cameras.npz")
    for view in (0, 20, 48):
        projection = (cameras[f"world_mat_{view}"] @ cameras[f"scale_mat_{view}"])[:3]
        intrinsics, _ = decompose_projection(projection)
        np.testing.assert_allclose(intrinsics, _rq_intrinsics(projection), rtol=1e-6, atol=1e-6)
        # The sign of P is arbitrary; the decoded camera must not depend on it.
        flipped_intrinsics, flipped_pose = decompose_projection(-projection)
        np.testing.assert_allclose(flipped_intrinsics, intrinsics, rtol=1e-9)
        np.testing.assert_allclose(flipped_pose, decompose_projection(projection)[1], atol=1e-9)


def test_dtu_real_cameras_and_cameras_sphere_share_intrinsics() -> None:
    plain = read_dtu_scene(_require(SCAN65))
    sphere = read_dtu_scene(SCAN65, cameras_file="cameras_sphere.npz")
    for name in ("fx", "fy", "cx", "cy"):
        np.testing.assert_allclose(getattr(plain.cameras, name), getattr(sphere.cameras, name), rtol=1e-6)
    # Same rotations; only the normalisation of the world (scale_mat) differs.
    np.testing.assert_allclose(
        plain.cameras.camera_to_world[:, :3, :3], sphere.cameras.camera_to_world[:, :3, :3], atol=1e-6
    )


def test_dtu_real_view_selection_and_masks() -> None:
    full = read_dtu_scene(_require(SCAN65))
    chosen = read_dtu_scene(SCAN65, view_indices=[2, 0])
    assert [p.name for p in chosen.image_paths] == ["000002.png", "000000.png"]
    assert chosen.mask_paths is not None and [p.name for p in chosen.mask_paths] == ["002.png", "000.png"]
    assert chosen.view_indices.tolist() == [2, 0]
    np.testing.assert_allclose(chosen.cameras.camera_to_world, full.cameras.camera_to_world[[2, 0]])
    mask = read_dtu_mask(chosen.mask_paths[0])
    assert mask.shape == (chosen.cameras.height, chosen.cameras.width) and mask.dtype == bool
    assert 0.01 < mask.mean() < 0.99
    with pytest.raises(DatasetFormatError, match=r"view indices \[3\] are out of range for 3 images"):
        read_dtu_scene(SCAN65, view_indices=[0, 3])


# -------------------------------------------------------------------------------------------------- DTU, fixtures

KNOWN_K = np.array([[300.0, 0.0, 158.0], [0.0, 310.0, 122.0], [0.0, 0.0, 1.0]])


def _write_dtu(folder: Path, views: int = 2, images: int = 2, masks: int | None = None, **overrides) -> Path:
    """A 320x240 DTU scan whose cameras look at the origin from distance 3 of a world scaled by 2 (+ offset)."""
    scale_mat = np.diag([2.0, 2.0, 2.0, 1.0])
    scale_mat[:3, 3] = [10.0, -5.0, 1.0]
    arrays: dict[str, np.ndarray] = {}
    for i in range(views):
        c2w = _look_at_origin_opencv(np.array([3.0 * np.cos(i), 3.0 * np.sin(i), 1.0]))
        world_to_camera = np.linalg.inv(c2w)[:3]
        # P maps DTU-world points: undo the normalisation first, then project. Scaled by 7 to check K /= K[2,2].
        arrays[f"world_mat_{i}"] = 7.0 * np.vstack([KNOWN_K @ world_to_camera @ np.linalg.inv(scale_mat), [0, 0, 0, 1]])
        arrays[f"scale_mat_{i}"] = scale_mat
    arrays.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "cameras.npz", **arrays)
    for i in range(images):
        _save_png(folder / "image" / f"{i:06d}.png", np.zeros((240, 320, 3), np.uint8))
    for i in range(masks or 0):
        _save_png(folder / "mask" / f"{i:03d}.png", np.full((240, 320), 255, np.uint8))
    return folder


def test_dtu_fixture_recovers_known_cameras(tmp_path: Path) -> None:
    scene = read_dtu_scene(_write_dtu(tmp_path / "scan", views=3, images=2, masks=2))
    assert (scene.cameras.width, scene.cameras.height) == (320, 240) and len(scene) == 2
    np.testing.assert_allclose(scene.cameras.fx, 300.0)
    np.testing.assert_allclose(scene.cameras.fy, 310.0)
    np.testing.assert_allclose(scene.cameras.cx, 158.0)
    np.testing.assert_allclose(scene.cameras.cy, 122.0)
    for i in range(2):
        expected = _look_at_origin_opencv(np.array([3.0 * np.cos(i), 3.0 * np.sin(i), 1.0])) @ FLIP_YZ
        np.testing.assert_allclose(scene.cameras.camera_to_world[i], expected, atol=1e-9)
    # OpenGL: +y of the camera points up in the world, +z away from the object.
    assert np.all(scene.cameras.camera_to_world[:, 2, 1] > 0)
    assert np.all(np.sum(scene.cameras.camera_to_world[:, :3, 2] * scene.cameras.camera_to_world[:, :3, 3], axis=1) > 0)
    assert scene.mask_paths is not None and len(scene.mask_paths) == 2


def test_dtu_fixture_monosdf_crop_and_scale(tmp_path: Path) -> None:
    folder = tmp_path / "scan"
    folder.mkdir()
    original = np.array([[2000.0, 0.0, 810.0], [0.0, 2000.0, 590.0], [0.0, 0.0, 1.0]])
    c2w = _look_at_origin_opencv(np.array([0.0, -3.0, 1.0]))
    world_mat = np.vstack([original @ np.linalg.inv(c2w)[:3], [0, 0, 0, 1]])
    np.savez(folder / "cameras.npz", world_mat_0=world_mat, scale_mat_0=np.eye(4))
    _save_png(folder / "000000_rgb.png", np.zeros((300, 300, 3), np.uint8))
    scene = read_monosdf_dtu_scene(folder)
    scale = 300 / 1200
    np.testing.assert_allclose([scene.cameras.fx[0], scene.cameras.fy[0]], [2000.0 * scale] * 2)
    np.testing.assert_allclose([scene.cameras.cx[0], scene.cameras.cy[0]], [(810.0 - 200.0) * scale, 590.0 * scale])


def test_dtu_fixture_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"has 2 views \(world_mat_<i>\) but there are 3 images"):
        read_dtu_scene(_write_dtu(tmp_path / "few_views", views=2, images=3))
    with pytest.raises(DatasetFormatError, match="missing key 'scale_mat_1'"):
        read_dtu_scene(_no_scale(tmp_path))
    with pytest.raises(DatasetFormatError, match=r"world_mat_0 must be a numeric array of shape"):
        read_dtu_scene(_write_dtu(tmp_path / "shape", world_mat_0=np.eye(3)))
    with pytest.raises(DatasetFormatError, match=r"world_mat_<i> keys are not numbered 0..3: missing \[2\]"):
        read_dtu_scene(_write_dtu(tmp_path / "gap", views=2, world_mat_3=np.eye(4)[:3], scale_mat_3=np.eye(4)))
    with pytest.raises(DatasetFormatError, match="has 1 masks but there are 2 images"):
        read_dtu_scene(_write_dtu(tmp_path / "masks", masks=1))
    with pytest.raises(DatasetFormatError, match=r"nothing/image: missing folder"):
        read_dtu_scene(tmp_path / "nothing")
    # Matrices for 4x larger images than the stored ones: the principal point falls outside.
    big = KNOWN_K * [[4.0], [4.0], [1.0]]
    with pytest.raises(DatasetFormatError, match="principal point .* lies outside the 320x240 images"):
        read_dtu_scene(_write_dtu(tmp_path / "size", views=1, images=1, world_mat_0=big @ np.eye(4)[:3]))
    corrupt = _write_dtu(tmp_path / "corrupt")
    (corrupt / "cameras.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetFormatError, match=r"cameras\.npz: unreadable camera file"):
        read_dtu_scene(corrupt)
    single = _write_dtu(tmp_path / "single")
    np.save(single / "cameras.npy", np.eye(4))
    (single / "cameras.npy").rename(single / "cameras.npz")
    with pytest.raises(DatasetFormatError, match="must be an .npz archive of named arrays"):
        read_dtu_scene(single)
    bad_image = _write_dtu(tmp_path / "bad_image")
    (bad_image / "image" / "000001.png").write_bytes(b"not a png")
    with pytest.raises(DatasetFormatError, match=r"000001\.png: unreadable image"):
        read_dtu_scene(bad_image)
    with pytest.raises(DatasetFormatError, match="holds no NNNNNN_rgb.png images"):
        read_monosdf_dtu_scene(_write_dtu(tmp_path / "not_monosdf"))


def _no_scale(tmp_path: Path) -> Path:
    folder = _write_dtu(tmp_path / "no_scale")
    arrays = dict(np.load(folder / "cameras.npz"))
    del arrays["scale_mat_1"]
    np.savez(folder / "cameras.npz", **arrays)
    return folder


# ------------------------------------------------------------------------------------------------------------ SRN


def _write_srn(instance: Path, poses: dict[str, str], intrinsics: str, image_size: int = 64) -> Path:
    for stem, text in poses.items():
        _save_png(instance / "rgb" / f"{stem}.png", np.full((image_size, image_size, 3), 255, np.uint8))
        (instance / "pose").mkdir(parents=True, exist_ok=True)
        (instance / "pose" / f"{stem}.txt").write_text(text)
    (instance / "intrinsics.txt").write_text(intrinsics)
    return instance


# An OpenCV camera at (0, -2, 0.5): x right = world +x, y down = world -z, z forward = world +y.
POSE_ONE_LINE = "1 0 0 0 0 0 1 -2 0 -1 0 0.5 0 0 0 1\n"
POSE_FOUR_LINES = "1 0 0 0.1\n0 0 1 -2\n0 -1 0 0.5\n0 0 0 1\n"
INTRINSICS_512 = "525.0 256.0 250.0 0.\n0. 0. 0.\n1.\n512 512\n"


def test_srn_fixture_poses_flip_and_rescaled_intrinsics(tmp_path: Path) -> None:
    instance = _write_srn(
        tmp_path / "cars_train" / "abc", {"000000": POSE_ONE_LINE, "000001": POSE_FOUR_LINES}, INTRINSICS_512
    )
    scene = read_srn_instance(instance)
    assert scene.name == "abc" and [p.name for p in scene.image_paths] == ["000000.png", "000001.png"]
    # The units trap: line 1 is for 512x512, the images are 64x64 -> everything x 1/8.
    k = scene.cameras
    assert (k.fx[0], k.fy[0], k.cx[0], k.cy[0], k.width, k.height) == (525.0 / 8, 525.0 / 8, 32.0, 31.25, 64, 64)
    assert all(np.all(values == values[0]) for values in (k.fx, k.fy, k.cx, k.cy))  # one intrinsics.txt for all views
    opencv = np.array([[1, 0, 0, 0], [0, 0, 1, -2], [0, -1, 0, 0.5], [0, 0, 0, 1]], dtype=float)
    expected = opencv.copy()
    expected[:3, 1:3] *= -1  # OpenGL: y up = -(OpenCV y down), z back = -(OpenCV z forward)
    np.testing.assert_allclose(scene.cameras.camera_to_world[0], expected)
    np.testing.assert_allclose(scene.cameras.camera_to_world[1, :3, 3], [0.1, -2, 0.5])
    assert scene.cameras.camera_to_world[0, 2, 1] == 1.0  # camera up is world +z up
    np.testing.assert_allclose(scene.cameras.camera_to_world[0, :3, 2], [0, -1, 0])  # back = away from the origin


def test_srn_fixture_world2cam_flag_and_instance_listing(tmp_path: Path) -> None:
    split = tmp_path / "cars_val"
    opencv = np.array([[1, 0, 0, 0], [0, 0, 1, -2], [0, -1, 0, 0.5], [0, 0, 0, 1]], dtype=float)
    world_to_camera = " ".join(f"{v:.9g}" for v in np.linalg.inv(opencv).ravel())
    _write_srn(split / "b", {"000000": world_to_camera}, INTRINSICS_512 + "1\n")
    _write_srn(split / "a", {"000000": POSE_ONE_LINE}, INTRINSICS_512 + "0\n")
    (split / "dataset.json").write_text("{}")
    instances = list_srn_instances(split)
    assert [p.name for p in instances] == ["a", "b"]
    np.testing.assert_allclose(read_srn_instance(instances[1]).cameras.camera_to_world[0], opencv @ FLIP_YZ, atol=1e-9)
    np.testing.assert_allclose(read_srn_instance(instances[0]).cameras.camera_to_world[0], opencv @ FLIP_YZ)


@pytest.mark.parametrize(
    ("poses", "intrinsics", "message"),
    [
        ({"000000": "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0"}, INTRINSICS_512, "expected 16 numbers .* found 15"),
        ({"000000": "1 0 0 0 0 1 0 0 0 0 1 0 0 0 2 1"}, INTRINSICS_512, "last row must be 0 0 0 1"),
        ({"000000": "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 x"}, INTRINSICS_512, "must hold only numbers"),
        ({"000000": POSE_ONE_LINE}, "525 256 256 0.\n0 0 0\n1.\n", "expected at least 4 lines"),
        ({"000000": POSE_ONE_LINE}, "525 256\n0 0 0\n1.\n512 512\n", "line 1 must start with 'f cx cy'"),
        ({"000000": POSE_ONE_LINE}, "525 256 256 0.\n0 0 0\n1.\n512\n", "line 4 must be 'height width'"),
        ({"000000": POSE_ONE_LINE}, "525 256 256 0.\n0 0 0\n1.\n512 1024\n", "does not match the 64x64 images' aspect"),
    ],
)
def test_srn_fixture_malformed_files(tmp_path: Path, poses: dict[str, str], intrinsics: str, message: str) -> None:
    with pytest.raises(DatasetFormatError, match=message):
        read_srn_instance(_write_srn(tmp_path / "i", poses, intrinsics))


def test_srn_fixture_layout_errors(tmp_path: Path) -> None:
    mismatch = _write_srn(tmp_path / "count", {"000000": POSE_ONE_LINE, "000001": POSE_ONE_LINE}, INTRINSICS_512)
    (mismatch / "pose" / "000001.txt").unlink()
    with pytest.raises(DatasetFormatError, match=r"pose/000001\.txt: missing pose file for image rgb/000001\.png"):
        read_srn_instance(mismatch)
    renamed = _write_srn(tmp_path / "names", {"000000": POSE_ONE_LINE}, INTRINSICS_512)
    (renamed / "pose" / "000000.txt").rename(renamed / "pose" / "000007.txt")
    with pytest.raises(DatasetFormatError, match=r"pose/000000\.txt: missing pose file for image rgb/000000\.png"):
        read_srn_instance(renamed)
    (renamed / "pose" / "000000.txt").write_text(POSE_ONE_LINE)
    with pytest.raises(DatasetFormatError, match=r"pose: has 2 pose files but rgb/ has 1 images \(000007\.txt has no"):
        read_srn_instance(renamed)
    no_intrinsics = _write_srn(tmp_path / "intr", {"000000": POSE_ONE_LINE}, INTRINSICS_512)
    (no_intrinsics / "intrinsics.txt").unlink()
    with pytest.raises(DatasetFormatError, match=r"intrinsics\.txt: missing intrinsics\.txt"):
        read_srn_instance(no_intrinsics)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match="holds no instance folders"):
        list_srn_instances(tmp_path / "empty")
    with pytest.raises(DatasetFormatError, match="missing folder: SRN instance"):
        read_srn_instance(tmp_path / "absent")


# ----------------------------------------------------------------------------------------------------------- N3DV

SIZE = 32
FRAMES = 3


def _color(camera_id: int, frame: int) -> np.ndarray:
    return np.array([20 + 20 * frame, 200 - 15 * camera_id, 30 + 10 * camera_id], dtype=np.uint8)


def _write_video(path: Path, camera_id: int, frames: int = FRAMES, keyframe_interval: int = 250) -> Path:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(path), (SIZE, SIZE), fps=30, macro_block_size=1, quality=8, output_params=["-g", str(keyframe_interval)]
    )
    writer.send(None)
    for frame in range(frames):
        writer.send(np.ascontiguousarray(np.broadcast_to(_color(camera_id, frame), (SIZE, SIZE, 3))).tobytes())
    writer.close()
    return path


def _write_poses(path: Path, count: int, size: int = 64, focal: float = 50.0) -> None:
    # Camera k sits at x = k (OpenGL identity rotation); full-resolution size 64x64, twice the stored frames.
    c2w = np.tile(np.eye(4)[:3], (count, 1, 1))
    c2w[:, 0, 3] = np.arange(count)
    write_poses_bounds(path, c2w, size, size, focal, np.tile([1.0, 10.0], (count, 1)))


@pytest.fixture(scope="module")
def meet_room(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cam_0, cam_9, cam_10: lexical order would put cam_10 before cam_9."""
    scene = tmp_path_factory.mktemp("meet_room")
    for camera_id in (10, 0, 9):
        _write_video(scene / f"cam_{camera_id}.mp4", camera_id)
    _write_poses(scene / "poses_bounds.npy", 3)
    return scene


def test_n3dv_fixture_sorts_by_camera_id_and_scales_intrinsics(meet_room: Path) -> None:
    assert [p.name for p in list_n3dv_videos(meet_room)] == ["cam_0.mp4", "cam_9.mp4", "cam_10.mp4"]
    scene = read_n3dv_scene(meet_room)
    assert scene.camera_ids.tolist() == [0, 9, 10] and scene.test_camera_index == 0
    np.testing.assert_allclose(scene.cameras.camera_to_world[:, 0, 3], [0, 1, 2])  # rows follow the sorted order
    # poses_bounds says 64x64, f=50; the videos are 32x32 -> f=25, principal point at the centre.
    assert (scene.cameras.width, scene.cameras.height) == (SIZE, SIZE)
    np.testing.assert_allclose(
        [scene.cameras.fx, scene.cameras.fy, scene.cameras.cx, scene.cameras.cy],
        [[25.0] * 3, [25.0] * 3, [16.0] * 3, [16.0] * 3],
    )
    half = read_n3dv_scene(meet_room, downscale=2)
    assert (half.cameras.width, half.cameras.height) == (16, 16)
    np.testing.assert_allclose([half.cameras.fx[0], half.cameras.cx[0]], [12.5, 8.0])


def test_n3dv_fixture_decodes_known_colors(meet_room: Path) -> None:
    scene = read_n3dv_scene(meet_room)
    for frame in range(FRAMES):
        frames = read_n3dv_frame(scene, frame)
        assert frames.shape == (3, SIZE, SIZE, 3) and frames.dtype == np.uint8
        for position, camera_id in enumerate(scene.camera_ids):
            # h264 is lossy; solid colors survive within a few levels.
            np.testing.assert_allclose(frames[position].reshape(-1, 3).mean(0), _color(camera_id, frame), atol=6)
    small = read_n3dv_frame(read_n3dv_scene(meet_room, downscale=2), 1)
    assert small.shape == (3, 16, 16, 3)
    np.testing.assert_allclose(small[2].reshape(-1, 3).mean(0), _color(10, 1), atol=6)


def test_n3dv_fixture_ffmpeg_fallback_matches_pyav(meet_room: Path) -> None:
    video = meet_room / "cam_9.mp4"
    assert video_size(video, use_pyav=False) == video_size(video, use_pyav=True) == (SIZE, SIZE)
    for frame in (0, FRAMES - 1):
        via_ffmpeg = decode_video_frame(video, frame, use_pyav=False).astype(int)
        via_pyav = decode_video_frame(video, frame, use_pyav=True).astype(int)
        assert np.abs(via_ffmpeg - via_pyav).max() <= 3
    for use_pyav in (True, False):
        with pytest.raises(DatasetFormatError, match=f"cam_9.mp4: has no frame {FRAMES}"):
            decode_video_frame(video, FRAMES, use_pyav=use_pyav)


def test_n3dv_fixture_seeking_lands_on_every_frame(tmp_path: Path) -> None:
    import av

    video = _write_video(tmp_path / "cam_3.mp4", 3, frames=10, keyframe_interval=4)
    with av.open(str(video)) as container:
        keyframes = [frame.key_frame for frame in container.decode(video=0)]
    # Frames between keyframes can only be reached by seeking to the keyframe before them and decoding forward.
    assert keyframes[0] and not all(keyframes), keyframes
    for frame in (9, 0, 5, 4, 7, 1):
        np.testing.assert_allclose(decode_video_frame(video, frame).reshape(-1, 3).mean(0), _color(3, frame), atol=6)
    with pytest.raises(DatasetFormatError, match="has no frame 10"):
        decode_video_frame(video, 10)


def test_n3dv_fixture_errors(meet_room: Path, tmp_path: Path) -> None:
    fewer = tmp_path / "count"
    fewer.mkdir()
    for name in ("cam_0.mp4", "cam_9.mp4"):
        (fewer / name).write_bytes((meet_room / name).read_bytes())
    _write_poses(fewer / "poses_bounds.npy", 3)
    with pytest.raises(DatasetFormatError, match="has 3 cameras but the scene has 2 videos"):
        read_n3dv_scene(fewer)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "cam00.mp4").write_bytes((meet_room / "cam_0.mp4").read_bytes()[:200])
    _write_poses(corrupt / "poses_bounds.npy", 1)
    for use_pyav in (True, False):
        with pytest.raises(DatasetFormatError, match=r"cam00\.mp4: unreadable video"):
            decode_video_frame(corrupt / "cam00.mp4", 0, use_pyav=use_pyav)
        with pytest.raises(DatasetFormatError, match=r"cam00\.mp4: unreadable video"):
            video_size(corrupt / "cam00.mp4", use_pyav=use_pyav)
    duplicate = tmp_path / "duplicate"
    duplicate.mkdir()
    for name in ("cam01.mp4", "cam_1.mp4"):
        (duplicate / name).write_bytes(b"")
    with pytest.raises(DatasetFormatError, match=r"camera ids \[1\] appear in more than one file name"):
        list_n3dv_videos(duplicate)
    with pytest.raises(DatasetFormatError, match="holds no cam<id>.mp4"):
        list_n3dv_videos(tmp_path)
    no_poses = tmp_path / "no_poses"
    no_poses.mkdir()
    (no_poses / "cam00.mp4").write_bytes((meet_room / "cam_0.mp4").read_bytes())
    with pytest.raises(DatasetFormatError, match=r"poses_bounds\.npy: missing poses_bounds\.npy"):
        read_n3dv_scene(no_poses)


def test_n3dv_fixture_streamrf_prepared_frames(tmp_path: Path) -> None:
    for t in range(2):
        frame_dir = tmp_path / "frames" / f"{t:04d}"
        for camera_id in (0, 1):
            _save_png(
                frame_dir / "images" / f"cam{camera_id:02d}.png",
                np.broadcast_to(_color(camera_id, t), (8, 8, 3)).copy(),
            )
        _write_poses(frame_dir / "poses_bounds.npy", 2, size=16, focal=20.0)
    frames = list_prepared_frames(tmp_path)
    assert [p.name for p in frames] == ["0000", "0001"]
    scene = read_prepared_frame(frames[1])
    assert scene.camera_ids.tolist() == [0, 1] and (scene.cameras.width, scene.cameras.height) == (8, 8)
    np.testing.assert_allclose(scene.cameras.fx, 10.0)
    images = read_n3dv_frame(scene)
    np.testing.assert_array_equal(images[1, 0, 0], _color(1, 1))


# ----------------------------------------------------------------------------------------------- NVIDIA Dynamic


def test_nvidia_dynamic_real_balloon1() -> None:
    scene = read_nvidia_dynamic_scene(_require(BALLOON1))
    assert len(scene) == 12 and (scene.cameras.width, scene.cameras.height) == (960, 540)
    raw = np.load(BALLOON1 / "poses_bounds.npy")
    assert raw.shape == (12, 17)
    np.testing.assert_allclose(raw[:, 4], 540.0)  # H, W, f sit in the 5th column of the 3x5 pose
    np.testing.assert_allclose(raw[:, 9], 960.0)
    np.testing.assert_allclose(raw[:, 14], 920.68, atol=0.01)
    np.testing.assert_allclose(scene.cameras.fx, raw[:, 14])
    np.testing.assert_allclose([scene.cameras.cx, scene.cameras.cy], [[480.0] * 12, [270.0] * 12])
    np.testing.assert_allclose(scene.times, np.arange(12) / 11)
    assert scene.times[0] == 0.0 and scene.times[-1] == 1.0
    assert scene.flow_forward_paths is None and scene.flow_backward_paths is None and scene.motion_mask_paths is None
    assert scene.disparity_paths is not None and len(scene.disparity_paths) == 12
    # The 12-camera rig faces forward: all cameras look roughly the same way (OpenGL -z).
    viewing = -scene.cameras.camera_to_world[:, :3, 2]
    assert np.all(viewing @ viewing.mean(0) > 0.9)
    np.testing.assert_allclose(scene.near_far[:, 0], raw[:, 15])
    for path in scene.disparity_paths[::11]:
        disparity = read_disparity(path, scene.cameras.height, scene.cameras.width)
        assert disparity.shape == (540, 960) and disparity.dtype == np.float32 and np.all(disparity > 0)
    assert read_disparity(scene.disparity_paths[0], 270, 480).shape == (270, 480)
    # No images_2/ here: factor 2 reads images/ and the cameras are at half size (frames downscaled when loaded).
    half = read_nvidia_dynamic_scene(BALLOON1, factor=2)
    assert (half.cameras.width, half.cameras.height) == (480, 270)
    assert half.image_paths == scene.image_paths
    np.testing.assert_allclose(half.cameras.fx, scene.cameras.fx / 2)


def _write_nvidia(folder: Path, frames: int = 3, flow: bool = True, masks: bool = True) -> Path:
    """A 16x8 scene with images_2/ (8x4), disparity at full size, flow at full size and motion masks."""
    c2w = np.tile(np.eye(4)[:3], (frames, 1, 1))
    folder.mkdir(parents=True)
    write_poses_bounds(folder / "poses_bounds.npy", c2w, 8, 16, 10.0, np.tile([1.0, 5.0], (frames, 1)))
    for i in range(frames):
        _save_png(folder / "images" / f"{i:03d}.png", np.zeros((8, 16, 3), np.uint8))
        _save_png(folder / "images_2" / f"{i:03d}.png", np.zeros((4, 8, 3), np.uint8))
        (folder / "disp").mkdir(exist_ok=True)
        np.save(folder / "disp" / f"{i:03d}.npy", np.full((8, 16), 1.0 + i, np.float32))
        if masks:
            mask = np.zeros((8, 16), np.uint8)
            mask[:, :8] = 1  # 1/255 > 1e-3: DynamicNeRF counts it as moving
            _save_png(folder / "motion_masks" / f"{i:03d}.png", mask)
    if flow:
        (folder / "flow").mkdir()
        vectors = np.zeros((8, 16, 2), np.float32)
        vectors[..., 0], vectors[..., 1] = 4.0, -2.0
        for i in range(frames - 1):
            np.savez(folder / "flow" / f"{i:03d}_fwd.npz", flow=vectors, mask=np.ones((8, 16), np.float32))
            np.savez(folder / "flow" / f"{i + 1:03d}_bwd.npz", flow=-vectors, mask=np.zeros((8, 16), np.float32))
    return folder


def test_nvidia_dynamic_fixture_factor_and_extras(tmp_path: Path) -> None:
    scene = read_nvidia_dynamic_scene(_write_nvidia(tmp_path / "s"), factor=2)
    assert (scene.cameras.width, scene.cameras.height) == (8, 4)
    np.testing.assert_allclose(
        [scene.cameras.fx, scene.cameras.fy, scene.cameras.cx, scene.cameras.cy],
        [[5.0] * 3, [5.0] * 3, [4.0] * 3, [2.0] * 3],
    )
    np.testing.assert_allclose(scene.times, [0.0, 0.5, 1.0])
    assert scene.flow_forward_paths is not None and scene.flow_backward_paths is not None
    assert [p is None for p in scene.flow_forward_paths] == [False, False, True]
    assert [p is None for p in scene.flow_backward_paths] == [True, False, False]
    first_forward = scene.flow_forward_paths[0]
    assert first_forward is not None
    forward = read_flow(first_forward, scene.cameras.height, scene.cameras.width)
    # Stored at 16x8, read at 8x4: vectors halve with the image.
    assert forward.flow.shape == (4, 8, 2) and forward.mask.shape == (4, 8)
    np.testing.assert_allclose(forward.flow[..., 0], 2.0)
    np.testing.assert_allclose(forward.flow[..., 1], -1.0)
    assert scene.disparity_paths is not None
    np.testing.assert_allclose(read_disparity(scene.disparity_paths[2], 4, 8), 3.0)
    assert scene.motion_mask_paths is not None
    moving = read_motion_mask(scene.motion_mask_paths[0], scene.cameras.height, scene.cameras.width)
    assert moving.shape == (4, 8) and moving[:, :4].all() and not moving[:, 4:].any()


def test_nvidia_dynamic_fixture_errors(tmp_path: Path) -> None:
    missing_flow = _write_nvidia(tmp_path / "missing_flow")
    (missing_flow / "flow" / "001_bwd.npz").unlink()
    with pytest.raises(DatasetFormatError, match=r"001_bwd\.npz: missing optical flow file"):
        read_nvidia_dynamic_scene(missing_flow)
    masks = _write_nvidia(tmp_path / "masks")
    (masks / "motion_masks" / "002.png").unlink()
    with pytest.raises(
        DatasetFormatError, match="motion_masks: has 2 motion masks .* but poses_bounds.npy has 3 frames"
    ):
        read_nvidia_dynamic_scene(masks)
    images = _write_nvidia(tmp_path / "images")
    (images / "images" / "002.png").unlink()
    with pytest.raises(DatasetFormatError, match="images: has 2 images but poses_bounds.npy has 3 frames"):
        read_nvidia_dynamic_scene(images)
    with pytest.raises(DatasetFormatError, match="images are 16x8 but poses_bounds.npy's 16x8 / factor 2 is 8x4"):
        _wrong_factor(tmp_path)
    flows = tmp_path / "flows"
    flows.mkdir()
    np.savez(flows / "key.npz", flo=np.zeros((8, 16, 2)), mask=np.zeros((8, 16)))
    np.savez(flows / "shape.npz", flow=np.zeros((8, 16, 3)), mask=np.zeros((8, 16)))
    np.savez(flows / "mask.npz", flow=np.zeros((8, 16, 2)), mask=np.zeros((8, 15)))
    np.savez(flows / "aspect.npz", flow=np.zeros((8, 8, 2)), mask=np.zeros((8, 8)))
    (flows / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DatasetFormatError, match=r"key\.npz: missing keys \['flow'\]"):
        read_flow(flows / "key.npz", 8, 16)
    with pytest.raises(DatasetFormatError, match=r"shape\.npz: flow must have shape \(H, W, 2\)"):
        read_flow(flows / "shape.npz", 8, 16)
    with pytest.raises(DatasetFormatError, match=r"mask\.npz: mask shape \(8, 15\) does not match"):
        read_flow(flows / "mask.npz", 8, 16)
    with pytest.raises(DatasetFormatError, match=r"aspect\.npz: size 8x8 does not have the aspect ratio"):
        read_flow(flows / "aspect.npz", 8, 16)
    with pytest.raises(DatasetFormatError, match=r"junk\.npz: unreadable optical flow archive"):
        read_flow(flows / "junk.npz", 8, 16)
    np.save(flows / "disp.npy", np.zeros((8, 16, 2), np.float32))
    with pytest.raises(DatasetFormatError, match=r"disp\.npy: expected a 2-D float array"):
        read_disparity(flows / "disp.npy", 8, 16)


def _wrong_factor(tmp_path: Path) -> None:
    scene = _write_nvidia(tmp_path / "factor", flow=False)
    # images_2 holding full-size images: poses_bounds / 2 no longer matches.
    for path in (scene / "images_2").iterdir():
        _save_png(path, np.zeros((8, 16, 3), np.uint8))
    read_nvidia_dynamic_scene(scene, factor=2)
