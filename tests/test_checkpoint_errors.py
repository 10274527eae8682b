"""A truncated, corrupt or missing checkpoint given to ``ns-eval``, ``ns-render``, ``ns-viewer`` or ``ns-train
--load-dir`` stops with one line naming the file (compat fix 4), not a traceback; any method (infonerf here)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from nerfstudio_methods.compat.errors import checkpoint_error_message
from tests.conftest import assert_succeeded, generate_scene, one_error_line, run_command
from tests.test_infonerf_end_to_end import FEW_SHOT, TINY


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A 4-step infonerf run whose checkpoint is then truncated; returns (work folder, scene, config.yml)."""
    work = tmp_path_factory.mktemp("checkpoint_errors")
    scene = work / "scene"
    generate_scene("blender", scene, "--width", "32", "--height", "32", "--num-cameras", "6")
    train = run_command(
        ["ns-train", "infonerf", *TINY, "--experiment-name", "e2e", "--timestamp", "run", *FEW_SHOT, "--data",
         str(scene)],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(train)
    config = work / "outputs" / "e2e" / "infonerf" / "run" / "config.yml"
    (checkpoint,) = (config.parent / "nerfstudio_models").glob("step-*.ckpt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # an interrupted copy
    return work, scene, config


pytestmark = pytest.mark.slow


def test_ns_eval_names_a_truncated_checkpoint(broken_run: tuple[Path, Path, Path]) -> None:
    work, _, config = broken_run
    result = run_command(["ns-eval", "--load-config", str(config), "--output-path", "m.json"], cwd=work)
    one_error_line(result, "step-000000003.ckpt: cannot load this checkpoint")


def test_ns_render_names_a_truncated_checkpoint(broken_run: tuple[Path, Path, Path]) -> None:
    work, _, config = broken_run
    result = run_command(
        ["ns-render", "interpolate", "--load-config", str(config), "--output-path", str(work / "v.mp4")], cwd=work
    )
    one_error_line(result, "step-000000003.ckpt: cannot load this checkpoint")


def test_ns_viewer_names_a_truncated_checkpoint(broken_run: tuple[Path, Path, Path]) -> None:
    work, _, config = broken_run
    result = run_command(["ns-viewer", "--load-config", str(config)], cwd=work, timeout=300)
    one_error_line(result, "step-000000003.ckpt: cannot load this checkpoint")


def test_load_dir_names_a_truncated_checkpoint_and_an_empty_folder(broken_run: tuple[Path, Path, Path]) -> None:
    work, scene, config = broken_run
    models = config.parent / "nerfstudio_models"
    command = ["ns-train", "infonerf", *TINY, "--experiment-name", "e2e", "--load-dir"]
    result = run_command([*command, str(models), *FEW_SHOT, "--data", str(scene)], cwd=work)
    one_error_line(result, "step-000000003.ckpt: cannot load this checkpoint")
    empty = work / "empty_models"
    empty.mkdir()
    result = run_command([*command, str(empty), *FEW_SHOT, "--data", str(scene)], cwd=work)
    one_error_line(result, f"{empty}: no checkpoint (step-*.ckpt) to load here")
    shutil.rmtree(empty)


def test_errors_outside_checkpoint_loading_are_left_alone() -> None:
    try:
        raise RuntimeError("something else")
    except RuntimeError as error:
        assert checkpoint_error_message(error, sys.exc_info()[2]) is None
