"""A scene's encoder outputs and camera tensors, computed once by the frozen encoders and cached by the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
from jaxtyping import Float, Int
from torch import Tensor

from dataparsers.dynamic_scene import SceneVideo
from nerfstudio_methods.mononerf.encoders import ImageEncoder, VideoEncoder
from nerfstudio_methods.mononerf.field import clamp_frames
from nerfstudio_methods.mononerf.projection import induced_flow
from nerfstudio_methods.rays import ndc_coefficients


@dataclass
class SceneFeatures:
    """Cached encoder outputs and camera tensors of one scene, on the model's device."""

    video: Float[Tensor, "t c h2 w2"]
    pooled: Float[Tensor, " p"]
    image: Float[Tensor, "t c h4 w4"]
    camera_to_world: Float[Tensor, "t 3 4"]
    fx: Float[Tensor, " t"]
    fy: Float[Tensor, " t"]
    cx: Float[Tensor, " t"]
    cy: Float[Tensor, " t"]
    width: int
    height: int
    ndc_coeffs: Tuple[float, float]
    num_frames: int
    """The video's frame count (``SceneVideo.num_frames``): the one count that times, frames and the velocity's
    network time are converted with."""

    def cameras_of(self, frames: Int[Tensor, " n"]) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Pose and intrinsics of each entry's frame: the camera arguments of ``project_points`` / ``induced_flow``."""
        return self.camera_to_world[frames], self.fx[frames], self.fy[frames], self.cx[frames], self.cy[frames]

    def flow_into(
        self,
        weights: Float[Tensor, "r s"],
        advected: Float[Tensor, "r s 3"],
        target_frames: Int[Tensor, " r"],
        pixel_uv: Float[Tensor, "r 2"],
    ) -> Float[Tensor, "r 2"]:
        """Optical flow induced by the scene flow into ``target_frames`` (clamped to the video)."""
        frames = clamp_frames(target_frames, self.num_frames)
        return induced_flow(advected, weights, self.ndc_coeffs, *self.cameras_of(frames), pixel_uv)


def encode_scene(
    video: SceneVideo, video_encoder: VideoEncoder, image_encoder: ImageEncoder, device: torch.device | str
) -> SceneFeatures:
    """One encoder pass over the whole video (no gradients), and its cameras, on ``device``."""
    with torch.no_grad():
        frames = video.images.to(device)
        video_features = video_encoder.encode(frames)
        image_features = image_encoder.encode(frames)
    cameras = video.cameras.to(device)
    width, height = int(cameras.width[0, 0]), int(cameras.height[0, 0])
    return SceneFeatures(
        video=video_features.volume,
        pooled=video_features.pooled,
        image=image_features,
        camera_to_world=cameras.camera_to_worlds,
        fx=cameras.fx[:, 0],
        fy=cameras.fy[:, 0],
        cx=cameras.cx[:, 0],
        cy=cameras.cy[:, 0],
        width=width,
        height=height,
        ndc_coeffs=ndc_coefficients(float(cameras.fx[0, 0]), float(cameras.fy[0, 0]), width, height),
        num_frames=video.num_frames,
    )
