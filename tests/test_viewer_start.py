"""What the viewer opens on: the fine/decoded ``rgb`` output (nerfstudio's viser viewer selects the first output a
model returns), and for forward-facing scenes a training camera's view rather than viser's default pose, which
looks at the origin from outside the scene's NDC box."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.viewer.viewer import Viewer

from dataparsers.blender import BlenderFewShotDataParserConfig
from dataparsers.llff import LLFFDataParserConfig
from nerfstudio_methods import compat
from nerfstudio_methods.compat import viewer_start
from tests.browser import free_port
from tests.conftest import generate_scene

compat.install()


@pytest.fixture(scope="module")
def llff_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scene("llff", tmp_path_factory.mktemp("viewer") / "llff", "--width", "32", "--height", "24",
                          "--num-cameras", "9")  # fmt: skip


def llff_train_dataset(scene: Path) -> InputDataset:
    outputs = LLFFDataParserConfig(data=scene, downscale_factor=1).setup().get_dataparser_outputs(split="train")
    return InputDataset(outputs)


def test_forward_facing_start_view_is_the_central_training_camera(llff_scene: Path) -> None:
    dataset = llff_train_dataset(llff_scene)
    view = viewer_start.start_view(dataset)
    assert view is not None
    c2w = dataset.cameras.camera_to_worlds.double().numpy()
    distances = np.linalg.norm(c2w[:, :, 3] - c2w[:, :, 3].mean(0), axis=1)
    assert view.camera_index == int(np.argmin(distances))

    # nerfstudio's viewer turns the browser's camera back into the pose it renders from (Viewer.get_camera_state):
    # at the start view, that is the training camera's pose, and the field of view is the camera's.
    client = SimpleNamespace(camera=SimpleNamespace(wxyz=np.array(view.wxyz), position=np.array(view.position),
                                                    fov=view.fov, aspect=1.0))  # fmt: skip
    state = Viewer.get_camera_state(SimpleNamespace(ready=False, current_camera_idx=0), client)  # type: ignore[arg-type]
    np.testing.assert_allclose(state.c2w.numpy(), c2w[view.camera_index], atol=1e-6)
    camera = dataset.cameras[view.camera_index]
    assert view.fov == pytest.approx(2 * np.arctan(float(camera.height) / 2 / float(camera.fy)))


def test_the_start_view_is_chosen_among_the_drawn_cameras(llff_scene: Path) -> None:
    dataset = llff_train_dataset(llff_scene)
    drawn = [0, len(dataset) - 1]
    view = viewer_start.start_view(dataset, drawn)
    assert view is not None and view.camera_index in drawn


def test_object_centred_scenes_start_at_a_camera_only_for_this_collection(tmp_path: Path) -> None:
    """nerfstudio's own methods on object-centred data keep viser's default view; ours start at a training camera."""
    scene = generate_scene("blender", tmp_path / "blender", "--width", "16", "--height", "16", "--num-cameras", "4")
    outputs = BlenderFewShotDataParserConfig(data=scene, num_train_views=2).setup().get_dataparser_outputs("train")
    dataset = InputDataset(outputs)
    assert viewer_start.start_view(dataset) is None
    view = viewer_start.start_view(dataset, any_scene=True)
    assert view is not None
    c2w = dataset.cameras.camera_to_worlds.double().numpy()
    assert view.camera_index == int(np.argmin(np.linalg.norm(c2w[:, :, 3] - c2w[:, :, 3].mean(0), axis=1)))


def test_a_multi_scene_run_starts_on_a_camera_of_the_scene_it_shows(tmp_path: Path) -> None:
    """srn-data (one scene per SRN instance, cameras on each instance's own sphere rig): the start view is the
    camera of the shown scene nearest that scene's cameras' mean position, not a camera of another scene."""
    from dataparsers.srn import SrnDataParserConfig

    scene = generate_scene("srn", tmp_path / "srn", "--width", "16", "--height", "16", "--num-cameras", "5",
                           "--num-instances", "3")  # fmt: skip
    outputs = (
        SrnDataParserConfig(data=scene / "cars_train", min_camera_height=-2, num_eval_views=1)
        .setup()
        .get_dataparser_outputs("train")
    )
    dataset = InputDataset(outputs)
    scene_index = dataset.cameras.metadata["scene_index"].reshape(-1).numpy()
    assert sorted(set(scene_index.tolist())) == [0, 1, 2]
    c2w = dataset.cameras.camera_to_worlds.double().numpy()
    for shown in (0, 1, 2):
        view = viewer_start.start_view(dataset, any_scene=True, scene=shown)
        assert view is not None
        own = np.flatnonzero(scene_index == shown)
        centre = c2w[own, :, 3].mean(0)
        assert view.camera_index == own[int(np.argmin(np.linalg.norm(c2w[own, :, 3] - centre, axis=1)))]


class RecordingCamera:
    """A viser camera handle that records what is assigned to it, in order."""

    def __init__(self) -> None:
        object.__setattr__(self, "assigned", [])

    def __setattr__(self, name: str, value: Any) -> None:
        self.assigned.append((name, value))


def test_viewer_moves_each_new_browser_to_the_start_view(llff_scene: Path) -> None:
    """nerfstudio's own ``init_scene`` on a real viser server, patched by compat: each connecting client is moved."""
    import viser

    assert getattr(Viewer.init_scene, "_nerfstudio_methods", False)
    dataset = llff_train_dataset(llff_scene)
    server = viser.ViserServer(host="127.0.0.1", port=free_port(), verbose=False)
    try:
        viewer = SimpleNamespace(config=ViewerConfig(), viser_server=server, current_camera_idx=0)
        viewer._pick_drawn_image_idxs = lambda total: Viewer._pick_drawn_image_idxs(viewer, total)  # type: ignore[arg-type]
        before = len(server._client_connect_cb)
        Viewer.init_scene(viewer, train_dataset=dataset, train_state="completed")  # type: ignore[arg-type]
        assert len(viewer.camera_handles) == len(dataset)
        assert len(server._client_connect_cb) == before + 1
        client = SimpleNamespace(camera=RecordingCamera(), atomic=contextlib.nullcontext)
        server._client_connect_cb[-1](client)
        view = viewer_start.start_view(dataset)
        assert view is not None
        assert client.camera.assigned == [("up_direction", view.up_direction), ("position", view.position),
                                          ("wxyz", view.wxyz), ("fov", view.fov)]  # fmt: skip
        assert viewer.current_camera_idx == view.camera_index
        # nerfstudio's own frustum for that camera (what a click on it does) has the same pose
        handle = viewer.camera_handles[view.camera_index]
        np.testing.assert_allclose(handle.position, view.position, atol=1e-5)
        np.testing.assert_allclose(np.abs(np.dot(handle.wxyz, view.wxyz)), 1.0, atol=1e-6)
        # From there its photo would cover the render: that frustum alone is hidden.
        hidden = [index for index, other in viewer.camera_handles.items() if not other.visible]
        assert hidden == [view.camera_index]
    finally:
        server.stop()


@pytest.mark.parametrize("time_enabled", [False, True])
def test_the_control_panel_opens_with_a_time_slider_only_for_data_with_time(time_enabled: bool) -> None:
    """nerfstudio's own ControlPanel on a real viser server (the viewer builds it with the data manager's
    ``includes_time``): the Time slider shows only for data with time, and the crop box's options (cropping starts
    off) do not show, from the start."""
    import viser
    from nerfstudio.viewer.control_panel import ControlPanel

    server = viser.ViserServer(host="127.0.0.1", port=free_port(), verbose=False)
    try:
        panel = ControlPanel(server, time_enabled, 10.0, lambda: None, lambda _: None, lambda _: None)
        assert panel._time.gui_handle is not None and panel._crop_center.gui_handle is not None
        assert panel._time.gui_handle.visible == time_enabled
        assert not panel._crop_center.gui_handle.visible
    finally:
        server.stop()


def test_infonerf_outputs_start_with_the_fine_rgb() -> None:
    from nerfstudio.cameras.rays import RayBundle
    from nerfstudio.data.scene_box import SceneBox

    from nerfstudio_methods.infonerf.config import infonerf

    config = copy.deepcopy(infonerf.config.pipeline.model)
    config.num_coarse_samples, config.num_importance_samples = 4, 4
    model = config.setup(scene_box=SceneBox(torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=1).eval()
    rays = RayBundle(origins=torch.zeros(2, 3), directions=torch.tensor([[0.0, 0, 1], [0, 1, 0]]),
                     pixel_area=torch.ones(2, 1), nears=torch.full((2, 1), 2.0), fars=torch.full((2, 1), 6.0))  # fmt: skip
    with torch.no_grad():
        outputs = model.get_outputs(rays)
    assert next(iter(outputs)) == "rgb"
    assert outputs["rgb"] is outputs["rgb_fine"]
