"""Impossible settings and bad inputs that used to end in a traceback: each is one ``error:`` line naming the option or
the file and the problem, exit status 2, and no run folder left behind.

The settings (``nerfstudio_methods.compat.settings``) are checked in process for every method preset of this package,
and through the real ``ns-train`` for one case of each kind; none of those launches reads data or trains, as the
check runs before the run folder is created. The data-dependent cases (a view past the last frame, a 3x4
``transform_matrix``, a NaN disparity) are refused while the data is read, and the run folder is removed again.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nerfstudio_methods.compat.settings import check_settings
from nerfstudio_methods.input_errors import SettingError
from tests.conftest import generate_scene, one_error_line, run_command
from tests.test_infonerf_end_to_end import FEW_SHOT, TINY

CPU = ["--machine.device-type", "cpu", "--vis", "tensorboard"]


def package_presets() -> dict[str, Any]:
    """This package's method presets (its ``nerfstudio.method_configs`` entry points): name -> TrainerConfig."""
    return {entry.name: entry.load().config for entry in entry_points(group="nerfstudio.method_configs")
            if entry.value.startswith("nerfstudio_methods.")}  # fmt: skip


def fields_named(config: Any, suffix: str, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the integer fields of ``config`` (nested dataclasses) whose name ends with ``suffix``."""
    found = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):  # not a `_target` class
            found += fields_named(value, suffix, (*path, field.name))
        elif field.name.endswith(suffix) and isinstance(value, int):
            found.append((*path, field.name))
    return found


def with_setting(config: Any, path: tuple[str, ...], value: Any) -> Any:
    """A copy of ``config`` with the field at ``path`` set to ``value`` (frozen dataclasses included)."""
    config = copy.deepcopy(config)
    owner = config
    for name in path[:-1]:
        owner = getattr(owner, name)
    object.__setattr__(owner, path[-1], value)
    return config


def refusal(config: Any) -> str:
    with pytest.raises(SettingError) as error:
        check_settings(config)
    return str(error.value)


def test_every_preset_and_dataparser_passes_with_its_defaults() -> None:
    from nerfstudio.configs.dataparser_configs import all_dataparsers
    from nerfstudio.configs.method_configs import all_methods

    for config in [*all_methods.values(), *all_dataparsers.values()]:  # nerfstudio's and this package's
        check_settings(config)


def test_every_preset_of_this_package_refuses_impossible_batch_and_step_counts() -> None:
    presets = package_presets()
    assert len(presets) == 18
    for name, config in presets.items():
        # rays per batch, or whole images per batch (3Da-AE and the RGB tri-planes)
        batch_sizes = fields_named(config, "num_rays_per_batch") + fields_named(config, "images_per_batch")
        training = {
            ("pipeline", "datamanager", "train_num_rays_per_batch"),
            ("pipeline", "datamanager", "images_per_batch"),
        }
        assert training & set(batch_sizes), name
        for path in batch_sizes:
            option = "--" + ".".join(path).replace("_", "-")
            for value in (0, -64):
                assert refusal(with_setting(config, path, value)) == f"{option}: must be at least 1, got {value}", name
        for value in (0, -1):
            message = refusal(with_setting(config, ("max_num_iterations",), value))
            assert message == f"--max-num-iterations: must be at least 1, got {value}", name
        message = refusal(with_setting(config, ("steps_per_save",), -1))
        assert message == "--steps-per-save: must not be negative, got -1", name
        check_settings(with_setting(config, ("steps_per_eval_image",), 0))  # nerfstudio's "never"


def test_every_preset_refuses_a_nan_or_negative_learning_rate() -> None:
    """Every optimizer group of every preset (ours and nerfstudio's): its learning rate NaN, infinite or negative is
    refused, naming the option as nerfstudio's command line spells it; a learning rate of 0 (a frozen group) is not."""
    import copy

    from nerfstudio.configs.method_configs import all_methods

    for name, preset in all_methods.items():
        # (nerfstudio lists external methods it does not ship, e.g. pynerf, as dummies without optimizers)
        for group in getattr(preset, "optimizers", {}):
            option = f"--optimizers.{group}.optimizer.lr".replace("_", "-")
            for value, problem in ((math.nan, "must be a finite number, got nan"),
                                   (math.inf, "must be a finite number, got inf"),
                                   (-1e-3, "a learning rate must not be negative, got -0.001")):  # fmt: skip
                config = copy.deepcopy(preset)
                config.optimizers[group]["optimizer"].lr = value
                assert refusal(config) == f"{option}: {problem}", (name, group)
            config = copy.deepcopy(preset)
            config.optimizers[group]["optimizer"].lr = 0.0
            check_settings(config)


def test_every_dataparser_of_this_package_refuses_impossible_views_and_counts() -> None:
    dataparsers = {entry.name: entry.load().config for entry in entry_points(group="nerfstudio.dataparser_configs")
                   if entry.value.startswith("nerfstudio_methods.")}  # fmt: skip
    cases = {
        "blender-fewshot-data": [
            ("train_views", (0, 0, 4), "--train-views: view(s) [0] given more than once; list each view once"),
            ("train_views", (), "--train-views: no view given: the training set would be empty"),
            ("train_views", (-1, 2), "--train-views: view(s) [-1] are negative; views are numbered from 0"),
            ("num_train_views", 0, "--num-train-views: must be at least 1, got 0"),
        ],
        "dtu-data": [
            ("train_views", (22, 25, 22), "--train-views: view(s) [22] given more than once; list each view once"),
            ("num_train_views", -2, "--num-train-views: must be at least 1, got -2"),
        ],
        "dynamic-scene-data": [("training_frames", -1, "--training-frames: must not be negative, got -1")],
        "n3dv-data": [
            ("num_frames", 0, "--num-frames: must be at least 1, got 0"),
            ("frame_start", -5, "--frame-start: must not be negative, got -5"),
        ],
        "srn-data": [
            ("num_scenes", 0, "--num-scenes: must be at least 1, got 0"),
            ("scene_start", -1, "--scene-start: must not be negative, got -1"),
        ],
    }
    assert set(cases) <= set(dataparsers)
    for name, rows in cases.items():
        # inside a method, the dataparser's option is named after its subcommand
        method = with_setting(
            package_presets()["infonerf"], ("pipeline", "datamanager", "dataparser"), dataparsers[name]
        )
        for field, value, expected in rows:
            assert refusal(with_setting(dataparsers[name], (field,), value)) == expected
            inside = with_setting(method, ("pipeline", "datamanager", "dataparser", field), value)
            assert refusal(inside) == f"{name} {expected}"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("impossible_settings")
    return generate_scene("blender", root / "scene", "--width", "16", "--height", "16", "--num-cameras", "6")


def refused_before_any_folder(command: list[str], tmp_path: Path, *fragments: str) -> None:
    result = run_command(command, cwd=tmp_path)
    one_error_line(result, *fragments)
    assert not (tmp_path / "outputs").exists()


SETTINGS = {
    "negative rays": (["ns-train", "soft-mining-vanilla-nerf", *CPU, "--pipeline.datamanager.train-num-rays-per-batch",
                       "-8", "blender-data"],
                      "error: --pipeline.datamanager.train-num-rays-per-batch: must be at least 1, got -8"),
    "zero steps": (["ns-train", "infonerf-nerfacto", *CPU, "--max-num-iterations", "0", *FEW_SHOT],
                   "error: --max-num-iterations: must be at least 1, got 0"),
    "repeated view": (["ns-train", "infonerf", *CPU, "blender-fewshot-data", "--train-views", "0", "0", "4"],
                      "error: blender-fewshot-data --train-views: view(s) [0] given more than once"),
    "no training view": (["ns-train", "infonerf", *CPU, "blender-fewshot-data", "--num-train-views", "0"],
                         "error: blender-fewshot-data --num-train-views: must be at least 1, got 0"),
    "nan learning rate": (["ns-train", "infonerf", *CPU, "--optimizers.fields.optimizer.lr", "nan", *FEW_SHOT],
                          "error: --optimizers.fields.optimizer.lr: must be a finite number, got nan"),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SETTINGS))
def test_ns_train_refuses_an_impossible_setting_before_the_run_folder(case: str, scene: Path, tmp_path: Path) -> None:
    command, expected = SETTINGS[case]
    refused_before_any_folder([*command, "--data", str(scene)], tmp_path, expected)


@pytest.mark.slow
def test_a_view_past_the_last_frame_is_refused_and_no_run_folder_left(scene: Path, tmp_path: Path) -> None:
    command = ["ns-train", "infonerf", *TINY, "blender-fewshot-data", "--train-views", "0", "2", "9"]
    refused_before_any_folder([*command, "--data", str(scene)], tmp_path,
                              f"error: {scene / 'transforms_train.json'}: train view(s) [9] out of range: the split "
                              "has 6 frames")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("reader", ["blender-fewshot-data", "blender-data"])  # this package's, and nerfstudio's
def test_a_3x4_transform_matrix_names_the_json_and_the_frame(reader: str, scene: Path, tmp_path: Path) -> None:
    broken = tmp_path / "scene"
    broken.mkdir()
    for item in scene.iterdir():
        if item.name != "transforms_train.json":
            (broken / item.name).symlink_to(item)
    data = json.loads((scene / "transforms_train.json").read_text())
    data["frames"][2]["transform_matrix"] = data["frames"][2]["transform_matrix"][:3]
    (broken / "transforms_train.json").write_text(json.dumps(data))
    method = ["infonerf", *TINY, *FEW_SHOT] if reader == "blender-fewshot-data" else ["soft-mining", *CPU, reader]
    refused_before_any_folder(["ns-train", *method, "--data", str(broken)], tmp_path,
                              f"error: {broken / 'transforms_train.json'}: frames[2] (./train/r_2): transform_matrix "
                              "is 3x4, expected 4x4")  # fmt: skip


@pytest.mark.slow
def test_a_nan_disparity_names_the_file(tmp_path: Path) -> None:
    scene = generate_scene(
        "nvidia-dynamic", tmp_path / "nvidia", "--width", "16", "--height", "16", "--num-frames", "3"
    )
    disparity_path = sorted((scene / "disp").glob("*.npy"))[1]
    disparity = np.load(disparity_path)
    disparity[2, 5] = np.nan
    np.save(disparity_path, disparity)
    refused_before_any_folder(["ns-train", "mononerf-cpu", *CPU, "dynamic-scene-data", "--data", str(scene)], tmp_path,
                              f"error: {disparity_path}: the disparity map holds 1 NaN or infinite value(s)")  # fmt: skip


@pytest.mark.slow
def test_ns_eval_on_a_run_without_checkpoints(scene: Path, tmp_path: Path) -> None:
    """A run whose nerfstudio_models/ is empty (written here without training: the config as ns-train saves it)."""
    from nerfstudio.configs.method_configs import all_methods

    config = copy.deepcopy(all_methods["infonerf"])
    config.output_dir, config.experiment_name, config.timestamp = tmp_path / "outputs", "e", "run"
    config.machine.device_type = "cpu"
    config.pipeline.datamanager.data = scene
    config.pipeline.datamanager.dataparser = dataclasses.replace(
        config.pipeline.datamanager.dataparser, train_views=(0, 2, 4), eval_skip=1
    )
    models = config.get_checkpoint_dir()
    models.mkdir(parents=True)
    (models.parent / "config.yml").write_text(yaml.dump(config), "utf8")
    result = run_command(["ns-eval", "--load-config", str(models.parent / "config.yml"), "--output-path", "m.json"],
                         cwd=tmp_path)  # fmt: skip
    one_error_line(result, f"error: {models}: no checkpoint (step-*.ckpt) to load here")
    assert not (tmp_path / "m.json").exists()
