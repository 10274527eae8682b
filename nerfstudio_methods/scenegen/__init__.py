"""Procedural scenes with exact ground truth, and writers for the dataset formats the plugins read.

- :mod:`.scene`: analytic sphere scenes, rendered exactly (closed-form volume rendering of piecewise-constant fields).
- :mod:`.cameras`: pinhole cameras (OpenGL camera-to-world), rigs, rays and projection.
- :mod:`.groundtruth`: per-pixel renders, disparity, optical flow with visibility masks, motion masks.
- :mod:`.formats`: Blender, LLFF, N3DV, NVIDIA-dynamic (DynamicNeRF), SRN and DTU (IDR) writers.
- :mod:`.cli`: the ``nerfstudio-methods-scene`` command.
"""

from nerfstudio_methods.scenegen.cameras import PinholeCamera, forward_facing_rig, look_at, sphere_rig
from nerfstudio_methods.scenegen.groundtruth import FlowResult, disparity, motion_mask, optical_flow, render_view
from nerfstudio_methods.scenegen.scene import (
    RenderResult,
    Scene,
    Sphere,
    Texture,
    forward_facing_scene,
    object_scene,
    room_scene,
)

__all__ = [
    "FlowResult",
    "PinholeCamera",
    "RenderResult",
    "Scene",
    "Sphere",
    "Texture",
    "disparity",
    "forward_facing_rig",
    "forward_facing_scene",
    "room_scene",
    "look_at",
    "motion_mask",
    "object_scene",
    "optical_flow",
    "render_view",
    "sphere_rig",
]
