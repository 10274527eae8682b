"""``n3dv-data`` on generated N3DV scenes: splits, times, the frame cache, frame ranges, Meet Room, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dataparsers._common import DatasetFormatError, read_image
from dataparsers.n3dv import N3dvDataParserConfig, read_n3dv_frame, read_n3dv_scene
from tests.conftest import generate_scene

SIZE = 32
FRAMES = 3


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cam00 (test) + cam01..cam03, 3 frames of 32x32."""
    folder = tmp_path_factory.mktemp("n3dv") / "scene"
    return generate_scene(
        "n3dv", folder, "--width", str(SIZE), "--height", str(SIZE), "--num-cameras", "4", "--num-frames", str(FRAMES)
    )


def parse(data: Path, split: str = "train", **options):
    config = N3dvDataParserConfig(data=data, **options)
    return config.setup().get_dataparser_outputs(split=split)


def copy_scene(scene: Path, target: Path) -> Path:
    shutil.copytree(scene, target, ignore=shutil.ignore_patterns("frames_cache"))
    return target


def test_splits_hold_out_cam00_at_every_frame_with_times(scene: Path) -> None:
    train = parse(scene, downscale_factor=1)
    test = parse(scene, "test", downscale_factor=1)
    assert len(train.image_filenames) == 3 * FRAMES and len(test.image_filenames) == FRAMES
    assert train.metadata["camera_ids"] == [1, 2, 3] * FRAMES and test.metadata["camera_ids"] == [0] * FRAMES
    # frame-major, times t / (T - 1)
    assert train.metadata["frame_index"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert train.cameras.times is not None and test.cameras.times is not None
    torch.testing.assert_close(train.cameras.times[:, 0], torch.tensor([0.0] * 3 + [0.5] * 3 + [1.0] * 3))
    torch.testing.assert_close(test.cameras.times[:, 0], torch.tensor([0.0, 0.5, 1.0]))
    assert train.metadata["num_frames"] == FRAMES and train.metadata["frame_numbers"] == [0, 1, 2]
    assert train.metadata["fps"] == pytest.approx(30.0)
    # llff-data's normalisation: nearest bound 1 / bd_factor, average camera (of all 4) at the origin
    assert float(train.metadata["near_far"].min().item()) >= 1 / 0.75 - 1e-4
    centres = torch.cat([train.cameras.camera_to_worlds[:3, :, 3], test.cameras.camera_to_worlds[:1, :, 3]])
    torch.testing.assert_close(centres.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    assert (train.cameras.width == SIZE).all() and (train.cameras.height == SIZE).all()


def test_frames_are_decoded_once_into_the_cache(scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = copy_scene(scene, tmp_path / "scene")
    outputs = parse(data, downscale_factor=1)
    cached = outputs.image_filenames
    assert all(path.is_file() and path.parent.parent == data / "frames_cache" / "x1" for path in cached)
    decoded = read_n3dv_frame(read_n3dv_scene(data), 2)  # cameras 0..3 at frame 2
    np.testing.assert_array_equal(read_image(cached[6]), decoded[1])  # frame 2, cam01
    from dataparsers import n3dv

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached frame was decoded again")

    monkeypatch.setattr(n3dv, "iter_video_frames", no_decoding)
    again = parse(data, downscale_factor=1)
    assert again.image_filenames == cached
    monkeypatch.undo()
    # a changed video invalidates only its own cached frames
    video = data / "cam02.mp4"
    video.touch()
    calls: list[str] = []
    original = n3dv.iter_video_frames

    def counting(path, numbers, *args, **kwargs):
        calls.append(Path(path).name)
        return original(path, numbers, *args, **kwargs)

    monkeypatch.setattr(n3dv, "iter_video_frames", counting)
    parse(data, downscale_factor=1)
    assert calls == ["cam02.mp4"]


def test_frame_range_fps_and_downscale(scene: Path, tmp_path: Path) -> None:
    data = copy_scene(scene, tmp_path / "scene")
    late = parse(data, downscale_factor=1, frame_start=1, num_frames=2)
    assert late.metadata["frame_numbers"] == [1, 2]
    assert late.cameras.times is not None
    torch.testing.assert_close(late.cameras.times[::3, 0], torch.tensor([0.0, 1.0]))
    assert sorted(p.name for p in (data / "frames_cache" / "x1").iterdir() if p.is_dir()) == ["00001", "00002"]
    half_rate = parse(data, downscale_factor=1, fps=15.0)
    assert half_rate.metadata["frame_numbers"] == [0, 2] and half_rate.metadata["fps"] == pytest.approx(15.0)
    small = parse(data)  # N3DV default: downscale 2
    assert int(small.cameras.width[0]) == SIZE // 2
    full = parse(data, downscale_factor=1)
    torch.testing.assert_close(small.cameras.fx, full.cameras.fx / 2)
    torch.testing.assert_close(small.metadata["ndc_intrinsics"][:2], full.metadata["ndc_intrinsics"][:2] / 2)
    with pytest.raises(DatasetFormatError, match="asks for 3 frames from frame 1"):
        parse(data, frame_start=1, num_frames=3)
    with pytest.raises(DatasetFormatError, match="fps 60 is above the videos' 30 fps"):
        parse(data, fps=60.0)


def test_meet_room_naming_is_detected_or_required(scene: Path, tmp_path: Path) -> None:
    data = copy_scene(scene, tmp_path / "meetroom")
    for camera_id in range(4):
        (data / f"cam{camera_id:02d}.mp4").rename(data / f"cam_{camera_id}.mp4")
    outputs = parse(data)
    assert outputs.metadata["layout"] == "meetroom"
    assert int(outputs.cameras.width[0]) == SIZE  # Meet Room trains at full size
    with pytest.raises(DatasetFormatError, match="Meet Room has 13 cameras"):
        parse(data, layout="meetroom")
    with pytest.raises(DatasetFormatError, match="--layout n3dv expects videos named cam<NN>.mp4"):
        parse(data, layout="n3dv")


def test_clear_errors(scene: Path, tmp_path: Path) -> None:
    missing = copy_scene(scene, tmp_path / "missing")
    (missing / "cam02.mp4").unlink()
    with pytest.raises(DatasetFormatError, match="has 4 cameras but the scene has 3 videos"):
        parse(missing)
    corrupt = copy_scene(scene, tmp_path / "corrupt")
    (corrupt / "cam01.mp4").write_bytes((scene / "cam01.mp4").read_bytes()[:300])
    with pytest.raises(DatasetFormatError, match=r"cam01\.mp4: unreadable video"):
        parse(corrupt)
    shorter = copy_scene(scene, tmp_path / "shorter")
    other = generate_scene("n3dv", tmp_path / "two_frames", "--width", str(SIZE), "--height", str(SIZE),
                           "--num-cameras", "4", "--num-frames", "2")  # fmt: skip
    shutil.copy(other / "cam03.mp4", shorter / "cam03.mp4")
    with pytest.raises(DatasetFormatError, match=r"cam03\.mp4: has 2 frames but cam00\.mp4 has 3"):
        parse(shorter)
    no_test = copy_scene(scene, tmp_path / "no_test")
    (no_test / "cam00.mp4").unlink()
    np.save(no_test / "poses_bounds.npy", np.load(scene / "poses_bounds.npy")[1:])
    with pytest.raises(DatasetFormatError, match="has no camera 0 video"):
        parse(no_test)
