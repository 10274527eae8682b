"""The viewer's first view: viser starts every browser at a default pose 3 viewer units (0.3 nerfstudio units) from
the origin, inside an object-centred scene (a tiny run shows only background there) and outside a
forward-facing scene's NDC box. Browsers now start at the central training camera (as if its frustum had been
clicked) on forward-facing scenes (llff-data, n3dv-data, dynamic-scene-data) and on any scene of this
collection's methods, with that camera's frustum hidden (from its own pose its photo covers the render), and on a
camera of the scene a multi-scene model shows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Optional

from nerfstudio_methods.compat import FixNotYetPossible

FORWARD_FACING_KEY = "forward_facing"
"""``DataparserOutputs.metadata`` key set by the forward-facing dataparsers (llff-data, n3dv-data,
dynamic-scene-data): their scenes are only seen from in front, within the NDC frustum of the cameras."""


@dataclass(frozen=True)
class StartView:
    """A training camera's pose in the viser viewer's conventions (nerfstudio's ``init_scene`` / frustum click)."""

    camera_index: int
    position: tuple[float, float, float]  # world position x VISER_NERFSTUDIO_SCALE_RATIO
    wxyz: tuple[float, float, float, float]  # camera-to-world rotation, camera looking down +z (OpenCV)
    up_direction: tuple[float, float, float]
    fov: float  # vertical, radians


def start_view(
    dataset: Any, indices: Optional[list[int]] = None, any_scene: bool = False, scene: Optional[int] = None
) -> Optional[StartView]:
    """The view the viewer should open on: the training camera (among ``indices``, default all; with ``scene``,
    among the cameras whose ``metadata["scene_index"]`` is that scene, when they carry one) nearest those cameras'
    mean position, for a forward-facing scene or, with ``any_scene``, for any scene; else None (viser's default pose:
    3 viewer units from the origin, inside a nerfstudio scene box, and outside a forward-facing scene's NDC box)."""
    import numpy as np
    import viser.transforms as vtf
    from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO

    if not any_scene and not (getattr(dataset, "metadata", None) or {}).get(FORWARD_FACING_KEY):
        return None
    cameras = dataset.cameras
    c2w = cameras.camera_to_worlds.detach().cpu().numpy().astype(np.float64)  # [N, 3, 4], OpenGL axes
    candidates = list(range(len(c2w))) if not indices else list(indices)
    centre = c2w[:, :, 3].mean(0)
    if scene is not None and "scene_index" in (cameras.metadata or {}):
        from nerfstudio_methods.multiscene import scene_indices_of_cameras

        in_scene = scene_indices_of_cameras(cameras).cpu().numpy() == scene
        if in_scene[candidates].any():
            candidates = [i for i in candidates if in_scene[i]]
            centre = c2w[in_scene, :, 3].mean(0)
    positions = c2w[candidates, :, 3]
    chosen = candidates[int(np.argmin(np.linalg.norm(positions - centre, axis=1)))]
    rotation = vtf.SO3.from_matrix(c2w[chosen, :, :3]) @ vtf.SO3.from_x_radians(np.pi)  # OpenGL -> OpenCV camera
    height, fy = float(cameras.height[chosen]), float(cameras.fy[chosen])
    return StartView(
        camera_index=chosen,
        position=tuple(float(v) for v in c2w[chosen, :, 3] * VISER_NERFSTUDIO_SCALE_RATIO),  # type: ignore[arg-type]
        wxyz=tuple(float(v) for v in rotation.wxyz),  # type: ignore[arg-type]
        up_direction=tuple(float(v) for v in c2w[chosen, :, 1]),  # type: ignore[arg-type]
        fov=float(2 * np.arctan(height / (2 * fy))),
    )


def move_client_to(client: Any, view: StartView) -> None:
    """Put a viser client's camera at ``view`` (up direction first: setting wxyz keeps the up it finds)."""
    with client.atomic():
        client.camera.up_direction = view.up_direction
        client.camera.position = view.position
        client.camera.wxyz = view.wxyz
        client.camera.fov = view.fov


def start_viewer_at_a_training_camera() -> None:
    """Wrap nerfstudio's ``Viewer.init_scene`` (``ns-train --vis viewer`` and ``ns-viewer``): every browser that
    connects starts at :func:`start_view`, for forward-facing scenes and for any scene of this collection's methods
    (pipeline, data manager or model from this package); nerfstudio's own methods on other data keep viser's
    default (idempotent)."""
    import sys

    Viewer = getattr(sys.modules.get("nerfstudio.viewer.viewer"), "Viewer", None)
    if Viewer is None:  # imported by nerfstudio's trainer, before any method plugin: patched on a later install()
        raise FixNotYetPossible("nerfstudio's viewer is not imported yet")
    if getattr(Viewer.init_scene, "_nerfstudio_methods", False):
        return
    init_scene = Viewer.init_scene

    @functools.wraps(init_scene)
    def init_scene_with_start_view(self: Any, train_dataset: Any, *args: Any, **kwargs: Any) -> None:
        init_scene(self, train_dataset, *args, **kwargs)
        pipeline = getattr(self, "pipeline", None)
        model = getattr(pipeline, "model", None)
        parts = (pipeline, getattr(pipeline, "datamanager", None), model)
        ours = any(type(part).__module__.startswith("nerfstudio_methods.") for part in parts if part is not None)
        handles = getattr(self, "camera_handles", {}) or {}
        # A multi-scene model (3Da-AE) shows one scene at a time (its Scene control): open on a camera of that scene.
        viewer_scene: Any = getattr(model, "viewer_scene", None)
        scene = int(viewer_scene()) if viewer_scene is not None else None
        view = start_view(train_dataset, sorted(handles), any_scene=ours, scene=scene)
        if view is None:
            return
        # Seen from its own pose, that camera's frustum (its training photo) fills the view and hides the render in
        # front of which it is drawn: hide it ("Show Train Cams" shows it again).
        if view.camera_index in handles:
            handles[view.camera_index].visible = False

        def on_connect(client: Any) -> None:
            move_client_to(client, view)
            self.current_camera_idx = view.camera_index

        self.viser_server.on_client_connect(on_connect)

    init_scene_with_start_view._nerfstudio_methods = True  # type: ignore[attr-defined]
    Viewer.init_scene = init_scene_with_start_view  # type: ignore[method-assign]
