"""Training stops at the first step whose loss is not finite, in one line naming the step, the terms and the last
checkpoint (``nerfstudio_methods.compat.non_finite_loss``), for nerfstudio's own methods and dataparsers too."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nerfstudio_methods.compat.non_finite_loss import NonFiniteLossError, checked
from tests.conftest import generate_scene, one_error_line, run_command


def test_a_non_finite_term_stops_the_step_and_a_finite_step_passes(tmp_path: Path) -> None:
    models = tmp_path / "nerfstudio_models"
    models.mkdir()
    for step in (2, 4):
        torch.save({"step": step}, models / f"step-{step:09d}.ckpt")
    losses = {"rgb_loss": torch.tensor(0.5), "tv_loss": torch.tensor([1.0, math.inf]), "kl": torch.tensor(math.nan)}
    step_fn = checked(lambda trainer, step: (sum(losses.values()), losses, {}))
    with pytest.raises(NonFiniteLossError) as error:
        step_fn(SimpleNamespace(checkpoint_dir=models), 7)
    assert str(error.value) == (
        "step 7: the training loss is not finite (tv_loss=inf, kl=nan); training stopped, the last checkpoint saved "
        f"before it: {models / 'step-000000004.ckpt'}"
    )
    finite = {"rgb_loss": torch.tensor(0.5), "big": torch.tensor(3e38)}  # finite terms whose float32 sum overflows
    assert checked(lambda trainer, step: (None, finite, {}))(SimpleNamespace(), 1)[1] is finite


@pytest.mark.slow
def test_nerfacto_on_a_nan_pose_stops_in_one_line(tmp_path: Path) -> None:
    """nerfstudio's own method and dataparser: one ``transform_matrix`` entry set to NaN gave NaN rays, a NaN loss
    and a NaN model with exit status 0. The pose is now refused before training (the ``blender_poses`` fix), and a
    loss that turns non-finite in training anyway (here from a learning rate of 1e30: the first updates blow the
    parameters up) stops the run at that step in one line, leaving no non-finite checkpoint."""
    scene = generate_scene("blender", tmp_path / "scene", "--width", "24", "--height", "24", "--num-cameras", "4")
    transforms = scene / "transforms_train.json"
    data = json.loads(transforms.read_text())
    good = json.dumps(data)
    data["frames"][1]["transform_matrix"][0][3] = float("nan")
    transforms.write_text(json.dumps(data))
    train = ["ns-train", "nerfacto", "--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations",
             "6", "--steps-per-save", "2", "--pipeline.model.implementation", "torch",
             "--pipeline.datamanager.train-num-rays-per-batch", "256", "--experiment-name", "nan", "--timestamp", "run"]  # fmt: skip
    result = run_command([*train, "blender-data", "--data", str(scene)], cwd=tmp_path)
    one_error_line(result, str(transforms), "frames[1]", "NaN")
    assert not (tmp_path / "outputs").exists()
    transforms.write_text(good)
    result = run_command([*train, "--optimizers.fields.optimizer.lr", "1e30", "blender-data", "--data", str(scene)],
                         cwd=tmp_path)  # fmt: skip
    one_error_line(result, "the training loss is not finite", "training stopped")
    models = tmp_path / "outputs" / "nan" / "nerfacto" / "run" / "nerfstudio_models"
    for checkpoint in models.glob("step-*.ckpt") if models.is_dir() else []:
        state = torch.load(checkpoint, weights_only=False)["pipeline"]
        assert all(torch.isfinite(v).all() for v in state.values() if torch.is_tensor(v) and v.is_floating_point())
