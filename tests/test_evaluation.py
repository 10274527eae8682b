"""``ns-eval``'s per-scene means (nerfstudio_methods.evaluation) group each image by the scene its camera carries,
the scene the model renders, not by a second copy of it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from nerfstudio.cameras.cameras import Cameras

from nerfstudio_methods.evaluation import evaluate_eval_images


class SceneEchoModel:
    """Renders every pixel at 0.1 x (its camera's scene + 1); the images are all 0.1, so scene s has squared error
    (0.1 s)^2 and PSNR -10 log10(0.01 s^2)."""

    def get_outputs_for_camera(self, camera: Cameras) -> dict[str, torch.Tensor]:
        scene = int(camera.metadata["scene_index"].reshape(-1)[0])  # type: ignore[index]
        return {"rgb": torch.full((2, 2, 3), 0.1 * (scene + 1))}

    def get_image_metrics_and_images(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> tuple:
        error = float(((outputs["rgb"] - batch["image"]) ** 2).mean())
        return {"psnr": -10 * torch.log10(torch.tensor(error)).item() if error > 0 else float("inf")}, {}


def test_per_scene_means_follow_the_cameras_scene() -> None:
    scenes = [1, 2, 2, 1]
    cameras = Cameras(
        camera_to_worlds=torch.eye(4)[None, :3].repeat(4, 1, 1), fx=1.0, fy=1.0, cx=1.0, cy=1.0, width=2, height=2,
        metadata={"scene_index": torch.tensor(scenes)[:, None]},
    )  # fmt: skip
    # a stale copy in the dataset's metadata that disagrees with the cameras: not used
    dataset = SimpleNamespace(cameras=cameras, metadata={"scene_index": torch.tensor([0, 0, 1, 1])})
    batches = [(cameras[i : i + 1], {"image_idx": i, "image": torch.full((2, 2, 3), 0.1)}) for i in range(4)]
    datamanager = SimpleNamespace(eval_dataset=dataset, fixed_indices_eval_dataloader=batches)
    pipeline = SimpleNamespace(datamanager=datamanager, model=SceneEchoModel(), eval=lambda: None, train=lambda: None)
    result = evaluate_eval_images(pipeline, group_key="scene_index")
    psnr = {1: -10 * torch.log10(torch.tensor(0.01)).item(), 2: -10 * torch.log10(torch.tensor(0.04)).item()}
    assert result["psnr_scene_index01"] == pytest.approx(psnr[1], abs=1e-4)  # 20 dB
    assert result["psnr_scene_index02"] == pytest.approx(psnr[2], abs=1e-4)  # 13.98 dB
    assert "psnr_scene_index00" not in result
    assert result["num_images"] == 4
