"""Motion masks for a scene without ``motion_masks/``: where the static branch cannot explain the colour."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Bool
from nerfstudio.models.base_model import Model
from torch import Tensor

from dataparsers.dynamic_scene import SceneVideo


def dilate_mask(mask: Bool[Tensor, "h w"], pixels: int) -> Bool[Tensor, "h w"]:
    """``mask`` grown by ``pixels`` in every direction (a square structuring element)."""
    if pixels <= 0:
        return mask
    grown = F.max_pool2d(mask.float()[None, None], 2 * pixels + 1, stride=1, padding=pixels)
    return grown[0, 0] > 0


@torch.no_grad()
def static_error_masks(model: Model, video: SceneVideo, ratio: float, dilation: int) -> Bool[Tensor, "t h w"]:
    """Moving pixels of ``video``'s training frames: where the model's static branch (its ``rgb_static`` output for a
    frame's camera, in eval mode) misses the colour (largest channel) by more than ``ratio`` times the frame's median
    miss, grown by ``dilation`` pixels. Frames after the training frames are all "moving": nothing is read from frames
    the run must not see."""
    was_training = model.training
    model.eval()
    images = video.images
    masks = torch.ones(images.shape[:3], dtype=torch.bool, device=images.device)
    for frame in range(video.supervised_frames):
        camera = video.cameras[frame : frame + 1].to(model.device)
        rendered = model.get_outputs_for_camera(camera)["rgb_static"].to(images.device)
        error = (rendered - images[frame]).abs().amax(dim=-1)
        masks[frame] = dilate_mask(error > ratio * error.median(), dilation)
    model.train(was_training)
    return masks
