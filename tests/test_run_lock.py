"""One ``ns-train`` per run folder (``nerfstudio_methods.compat.run_folder``): a second launch into a folder whose
lock holder still runs stops in one line before writing anything; a lock left by a killed process is taken over."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nerfstudio_methods.compat.run_folder import LOCK_NAME, RunFolderInUse, release_run_locks, take_run_lock
from tests.conftest import BIN, REPO, generate_scene, one_error_line, run_command
from tests.test_infonerf_end_to_end import FEW_SHOT, TINY


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that takes the folder's lock and keeps running."""
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom nerfstudio_methods.compat.run_folder import take_run_lock\n"
        f"take_run_lock(Path({str(folder)!r}))\nprint('locked', flush=True)\ntime.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_running_holder_refuses_and_a_killed_one_is_taken_over(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "outputs" / "exp" / "method" / "run"
    holder = hold_lock(folder)
    try:
        assert (folder / LOCK_NAME).read_text() == str(holder.pid)
        with pytest.raises(RunFolderInUse) as error:
            take_run_lock(folder)
        assert str(error.value) == (
            f"{folder}: another ns-train (process {holder.pid}) is writing this run folder; choose another "
            "--timestamp or --experiment-name, or wait for it to finish"
        )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    take_run_lock(folder)  # its holder is gone
    assert capsys.readouterr().out.strip() == (
        f"warning: {folder / LOCK_NAME}: taking over the lock of process {holder.pid}, which no longer runs"
    )
    assert (folder / LOCK_NAME).read_text() == str(__import__("os").getpid())
    release_run_locks()
    assert not (folder / LOCK_NAME).exists()


@pytest.mark.slow
def test_a_second_ns_train_into_a_running_runs_folder_is_refused(tmp_path: Path) -> None:
    scene = generate_scene("blender", tmp_path / "scene", "--width", "16", "--height", "16", "--num-cameras", "6")
    long_run = [*TINY, "--max-num-iterations", "100000"]
    command = ["ns-train", "infonerf", *long_run, "--experiment-name", "e2e", "--timestamp", "run", *FEW_SHOT,
               "--data", str(scene)]  # fmt: skip
    first = subprocess.Popen([str(BIN / command[0]), *command[1:]], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    run = tmp_path / "outputs" / "e2e" / "infonerf" / "run"
    try:
        deadline = time.monotonic() + 300
        while not (run / "nerfstudio_models").is_dir() and time.monotonic() < deadline:  # training has started
            time.sleep(1)
        config_before = (run / "config.yml").read_text()
        second = run_command(command, cwd=tmp_path)
        one_error_line(
            second, f"outputs/e2e/infonerf/run: another ns-train (process {first.pid}) is writing this run folder"
        )
        assert (run / "config.yml").read_text() == config_before
        assert first.poll() is None  # the first run trains on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
