"""A launch that fails before training is set up leaves no run folder: ``ns-train`` saves config.yml before it reads
any data, and compat removes the folders that launch created again, as long as they hold nothing but that file."""

from __future__ import annotations

from pathlib import Path

import pytest
from nerfstudio.engine.trainer import TrainerConfig

from nerfstudio_methods import compat
from nerfstudio_methods.compat import run_folder
from tests.conftest import run_command
from tests.test_input_errors import one_error_line

compat.install()


def saved_run(output_dir: Path) -> Path:
    """Save a config as ns-train does (patched save_config); returns the run folder it made."""
    config = TrainerConfig(output_dir=output_dir, method_name="m", experiment_name="e", timestamp="t")
    config.save_config()
    return output_dir / "e" / "m" / "t"


def test_failed_launch_removes_the_folders_it_created(tmp_path: Path) -> None:
    run = saved_run(tmp_path / "outputs")
    assert (run / "config.yml").is_file()
    assert run_folder.remove_unused_run_folder() == run
    assert not (tmp_path / "outputs").exists()  # outputs/e/m/t, all made by this launch
    assert tmp_path.is_dir()


def test_folders_that_existed_before_the_launch_stay(tmp_path: Path) -> None:
    (tmp_path / "outputs" / "e" / "m" / "earlier_run").mkdir(parents=True)
    run = saved_run(tmp_path / "outputs")
    run_folder.remove_unused_run_folder()
    assert not run.exists()
    assert (tmp_path / "outputs" / "e" / "m" / "earlier_run").is_dir()


def test_a_run_folder_holding_anything_else_stays(tmp_path: Path) -> None:
    run = saved_run(tmp_path / "outputs")
    (run / "events.out.tfevents").write_text("")
    assert run_folder.remove_unused_run_folder() is None
    assert (run / "config.yml").is_file()


def test_a_config_rewritten_since_the_save_stays(tmp_path: Path) -> None:
    run = saved_run(tmp_path / "outputs")
    (run / "config.yml").write_text("edited")
    assert run_folder.remove_unused_run_folder() is None
    assert (run / "config.yml").read_text() == "edited"


def test_a_reused_run_folder_stays(tmp_path: Path) -> None:
    """``--timestamp latest`` twice: the second launch did not create the folder, so it is not its to remove."""
    saved_run(tmp_path / "outputs")
    run_folder.forget_run_folder()
    run = saved_run(tmp_path / "outputs")
    assert run_folder.remove_unused_run_folder() is None
    assert (run / "config.yml").is_file()


def test_once_the_trainer_is_set_up_the_folder_stays(tmp_path: Path) -> None:
    from nerfstudio.engine.trainer import Trainer

    assert getattr(Trainer.setup, "_nerfstudio_methods", False)
    run = saved_run(tmp_path / "outputs")
    run_folder.forget_run_folder()  # what the wrapped Trainer.setup does when it returns
    assert run_folder.remove_unused_run_folder() is None
    assert (run / "config.yml").is_file()


CPU = ["--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", "2"]


@pytest.mark.slow
def test_ns_train_on_a_missing_data_folder_leaves_no_outputs(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_scene"
    result = run_command(["ns-train", "soft-mining-llff", *CPU, "llff-data", "--data", str(missing)], cwd=tmp_path)
    one_error_line(result, f"{missing}: ")
    assert "Saving config to" in result.stdout  # the folder was made, then removed
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_refused_multi_process_launch_leaves_no_outputs(tmp_path: Path) -> None:
    """streamrf refuses several processes before spawning (and before reading data, so none is needed)."""
    result = run_command(
        ["ns-train", "streamrf", *CPU, "--machine.num-devices", "2", "n3dv-data", "--data", str(tmp_path / "x")],
        cwd=tmp_path,
    )
    one_error_line(result, "streamrf cannot train with 2 processes: ")
    assert not (tmp_path / "outputs").exists()
