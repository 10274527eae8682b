"""Checkpoint files that an interruption or a full disk cannot break (``nerfstudio_methods.compat.checkpoint_files``):
a save goes to a hidden file and is renamed, a failed save is one line naming the checkpoint, the reason and the
last good checkpoint and leaves no file behind, and loading without ``load_step`` skips an incomplete newest file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nerfstudio_methods.compat import checkpoint_files
from nerfstudio_methods.compat.checkpoint_files import CheckpointSaveError, newest_loadable_step, save_atomically
from tests.conftest import REPO, assert_succeeded, generate_scene, run_command
from tests.test_infonerf_end_to_end import FEW_SHOT, TINY


def checkpoint_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "run" / "nerfstudio_models"
    folder.mkdir(parents=True)
    return folder


def test_the_newest_complete_checkpoint_is_chosen_and_each_skipped_one_said(tmp_path: Path) -> None:
    folder = checkpoint_folder(tmp_path)
    for step in (2, 4):
        torch.save({"step": step, "weights": torch.arange(1000.0)}, folder / f"step-{step:09d}.ckpt")
    good = (folder / "step-000000004.ckpt").read_bytes()
    (folder / "step-000000006.ckpt").write_bytes(good[: len(good) // 2])  # an interrupted copy
    (folder / "step-000000008.ckpt").write_bytes(b"")
    said: list[str] = []
    assert newest_loadable_step(folder, said.append) == 4
    assert said == [
        f"warning: skipping {folder}/step-00000000{n}.ckpt: not a complete checkpoint (truncated or corrupt); trying "
        "an older one"
        for n in (8, 6)
    ]
    assert torch.load(folder / "step-000000004.ckpt")["step"] == 4
    for name in ("step-000000004.ckpt", "step-000000002.ckpt"):
        (folder / name).unlink()
    assert newest_loadable_step(folder, said.append) is None


def test_a_save_is_renamed_into_place_and_leaves_nothing_else(tmp_path: Path) -> None:
    folder = checkpoint_folder(tmp_path)
    path = folder / "step-000000003.ckpt"
    seen_during_write: list[list[str]] = []

    def save(target: Path) -> None:
        torch.save({"step": 3}, target)
        seen_during_write.append(sorted(p.name for p in folder.iterdir()))

    save_atomically(save, path)
    assert seen_during_write == [[]]  # nerfstudio's listing of step numbers never sees a partial file
    assert sorted(p.name for p in folder.parent.rglob("*")) == ["nerfstudio_models", "step-000000003.ckpt"]
    assert torch.load(path)["step"] == 3


def test_a_save_on_a_full_disk_is_one_line_with_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = checkpoint_folder(tmp_path)
    torch.save({"step": 2}, folder / "step-000000002.ckpt")
    path = folder / "step-000000004.ckpt"

    def save(target: Path) -> None:
        target.write_bytes(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0\nmore detail")

    class Usage:
        free = 1 << 20

    monkeypatch.setattr(checkpoint_files.shutil, "disk_usage", lambda _: Usage())
    with pytest.raises(CheckpointSaveError) as error:
        save_atomically(save, path)
    assert str(error.value) == (
        f"{path}: could not save the checkpoint: no space left on device (the last good checkpoint: "
        f"{folder / 'step-000000002.ckpt'})"
    )
    assert sorted(p.name for p in folder.parent.rglob("*")) == ["nerfstudio_models", "step-000000002.ckpt"]


def test_a_real_failed_write_names_the_os_reason_and_removes_the_partial_file(tmp_path: Path) -> None:
    """A real write failure: the process may not write files over 64 KB (RLIMIT_FSIZE), torch.save of 4 MB fails
    part-way; the disk has room, so the report gives torch's own first line, not a full disk."""
    folder = checkpoint_folder(tmp_path)
    code = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        import torch
        from nerfstudio_methods.compat.checkpoint_files import CheckpointSaveError, save_atomically
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            save_atomically(lambda target: torch.save({{"w": torch.zeros(1 << 20)}}, target),
                            Path({str(folder / "step-000000001.ckpt")!r}))
        except CheckpointSaveError as error:
            print(error)
            sys.exit(3)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 3, result.stderr[-2000:]
    message = result.stdout.strip()
    assert message.startswith(f"{folder / 'step-000000001.ckpt'}: could not save the checkpoint: ")
    assert "no space left" not in message and message.endswith("(the last good checkpoint: none)")
    assert "\n" not in message
    assert list(folder.parent.rglob("*")) == [folder]


@pytest.mark.slow
def test_ns_eval_and_resume_skip_an_incomplete_newest_checkpoint(tmp_path: Path) -> None:
    scene = generate_scene("blender", tmp_path / "scene", "--width", "32", "--height", "32", "--num-cameras", "6")
    train = run_command(
        ["ns-train", "infonerf", *TINY, "--experiment-name", "e2e", "--timestamp", "run", *FEW_SHOT, "--data",
         str(scene)],
        cwd=tmp_path,
    )  # fmt: skip
    assert_succeeded(train)
    run = tmp_path / "outputs" / "e2e" / "infonerf" / "run"
    models = run / "nerfstudio_models"
    assert [p.name for p in models.iterdir()] == ["step-000000003.ckpt"]
    assert not list(run.glob(".*"))  # no staging file, and the run's lock released
    good = (models / "step-000000003.ckpt").read_bytes()
    (models / "step-000000009.ckpt").write_bytes(good[:1000])  # an interrupted save of an older version
    evaluated = run_command(["ns-eval", "--load-config", str(run / "config.yml"), "--output-path", "m.json"],
                            cwd=tmp_path)  # fmt: skip
    assert_succeeded(evaluated)
    # config.yml stores the run's folder relative to where ns-train ran
    assert "warning: skipping outputs/e2e/infonerf/run/nerfstudio_models/step-000000009.ckpt: not a complete" in (
        evaluated.stdout
    )
    assert '"checkpoint": "' in (tmp_path / "m.json").read_text()
    assert "step-000000003.ckpt" in (tmp_path / "m.json").read_text()
    resumed = run_command(
        ["ns-train", "infonerf", *TINY, "--max-num-iterations", "6", "--experiment-name", "e2e", "--timestamp",
         "resumed", "--load-dir", str(models), *FEW_SHOT, "--data", str(scene)],
        cwd=tmp_path,
    )  # fmt: skip
    assert_succeeded(resumed)
    assert f"warning: skipping {models / 'step-000000009.ckpt'}: not a complete checkpoint" in resumed.stdout
    # continued from step 3: nerfstudio starts at step 4 and runs 6 iterations, steps 4..9, the last one saved
    resumed_models = tmp_path / "outputs" / "e2e" / "infonerf" / "resumed" / "nerfstudio_models"
    assert sorted(p.name for p in resumed_models.iterdir()) == ["step-000000009.ckpt"]
    assert torch.load(resumed_models / "step-000000009.ckpt", weights_only=False)["step"] == 9
