"""Bad input to nerfstudio's own dataparsers used by this collection's presets (``blender-data`` in ``soft-mining``)
and to ours that build on them (``blender-fewshot-data``): one line naming the path and the problem, exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nerfstudio_methods.compat.errors import dataset_error_message
from tests.conftest import generate_scene, run_command

CPU = ["--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", "2"]


def one_error_line(result, expected: str) -> None:
    assert result.returncode == 2, result.stdout[-1500:] + result.stderr[-1500:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith(f"error: {expected}"), errors[0]
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scene("blender", tmp_path_factory.mktemp("bad_input") / "scene", "--width", "16", "--height",
                          "16", "--num-cameras", "4")  # fmt: skip


@pytest.mark.slow
def test_blender_data_on_a_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_scene"
    result = run_command(["ns-train", "soft-mining", *CPU, "blender-data", "--data", str(missing)], cwd=tmp_path)
    one_error_line(result, f"{missing}: folder not found (looking for transforms_train.json)")
    assert not (tmp_path / "outputs").exists()  # the run folder made before the data was read is gone


@pytest.mark.slow
def test_blender_fewshot_data_on_an_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_command(["ns-train", "infonerf", *CPU, "blender-fewshot-data", "--data", str(empty)], cwd=tmp_path)
    one_error_line(result, f"{empty / 'transforms_train.json'}: No such file or directory")
    assert not (tmp_path / "outputs").exists()  # the run folder made before the data was read is gone


@pytest.mark.slow
def test_blender_data_with_malformed_json(tmp_path: Path, scene: Path) -> None:
    broken = tmp_path / "scene"
    broken.mkdir()
    for item in scene.iterdir():
        (broken / item.name).symlink_to(item)
    (broken / "transforms_train.json").unlink()
    (broken / "transforms_train.json").write_text("{ not json")
    result = run_command(["ns-train", "soft-mining", *CPU, "blender-data", "--data", str(broken)], cwd=tmp_path)
    one_error_line(result, f"{broken / 'transforms_train.json'}: unreadable JSON (JSONDecodeError")
    assert not (tmp_path / "outputs").exists()  # the run folder made before the data was read is gone


@pytest.mark.slow
def test_blender_data_with_an_unreadable_image(tmp_path: Path, scene: Path) -> None:
    broken = tmp_path / "scene"
    (broken / "train").mkdir(parents=True)
    for item in scene.iterdir():
        if item.name != "train":
            (broken / item.name).symlink_to(item)
    images = sorted((scene / "train").glob("*.png"))
    for image in images:
        (broken / "train" / image.name).write_bytes(image.read_bytes())
    (broken / "train" / images[0].name).write_bytes(b"not a png")
    result = run_command(["ns-train", "soft-mining", *CPU, "blender-data", "--data", str(broken)], cwd=tmp_path)
    one_error_line(result, f"{broken / 'train' / images[0].name}: unreadable file")
    assert not (tmp_path / "outputs").exists()  # the run folder made before the data was read is gone


def test_errors_outside_data_reading_are_left_alone() -> None:
    try:
        open("/nonexistent/file.json")  # noqa: SIM115 - not inside a dataparser frame
    except OSError as error:
        assert dataset_error_message(error, sys.exc_info()[2]) is None
