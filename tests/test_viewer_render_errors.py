"""A model render that fails in the viewer (compat.viewer_render_errors): nerfstudio's own render thread
(``RenderStateMachine``, run as the viewer runs it, on a stand-in viewer and browser) says the failure in one line on
the terminal and once in the browser, and keeps rendering: the next view that renders reaches the browser."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from nerfstudio.cameras.cameras import CameraType
from nerfstudio.viewer.render_state_machine import RenderAction, RenderStateMachine
from nerfstudio.viewer.utils import CameraState

from nerfstudio_methods import compat
from nerfstudio_methods.compat.viewer_render_errors import failure_line

compat.install()


class FailingModel(torch.nn.Module):
    """Renders a grey image of the camera's size, or raises while ``failing``."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        super().__init__()
        self.failing = True
        self.calls = 0

    def get_outputs_for_camera(self, camera: Any, obb_box: Any = None) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.failing:
            raise ValueError("metadata 'cam_idx' is an int,\n not a tensor")
        return {"rgb": torch.full((int(camera.height), int(camera.width), 3), 0.5)}


class Browser:
    """The viser client handle: records notifications."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.camera = SimpleNamespace(aspect=1.0)

    def add_notification(self, **kwargs: Any) -> None:
        self.notifications.append(kwargs)


def wait_until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_failing_render_is_one_line_and_the_viewer_renders_on(capfd: pytest.CaptureFixture[str]) -> None:
    model = FailingModel()
    state = CameraState(fov=0.9, aspect=1.0, c2w=torch.eye(4)[:3], camera_type=CameraType.PERSPECTIVE)
    viewer = SimpleNamespace(
        ready=True,
        control_panel=SimpleNamespace(crop_viewport=False, max_res=16, layer_depth=False, time=0.0),
        render_tab_state=SimpleNamespace(preview_render=False),
        include_time=False,
        train_lock=None,
        step=0,
        get_model=lambda: model,
        get_camera_state=lambda client: state,
    )
    browser = Browser()
    machine = RenderStateMachine(viewer, 10.0, browser)  # type: ignore[arg-type]
    shown: list[dict[str, torch.Tensor]] = []
    machine._send_output_to_viewer = lambda outputs, static_render=True: shown.append(outputs)  # type: ignore[method-assign]
    machine.start()
    try:
        machine.action(RenderAction("move", state))
        # nerfstudio's loop renders again on its own (static actions every 0.2 s: low_move -> low_static -> high)
        wait_until(lambda: model.calls >= 3)
        assert machine.is_alive() and not shown
        model.failing = False
        machine.action(RenderAction("move", state))
        wait_until(lambda: bool(shown))
        assert machine.is_alive()
        assert shown[0]["rgb"].shape[-1] == 3
    finally:
        machine.running = False
        machine.join(timeout=5)
    errors = capfd.readouterr().err.splitlines()
    said = [line for line in errors if line.startswith("viewer: the render failed")]
    # three failed renders of one failure: said once, in one line, with the exception and where it was raised
    assert len(said) == 1, errors
    assert said[0].startswith("viewer: the render failed: ValueError: metadata 'cam_idx' is an int, not a tensor (")
    assert "test_viewer_render_errors.py:" in said[0] and "in get_outputs_for_camera)" in said[0]
    assert "Traceback" not in "\n".join(errors)
    assert [n["title"] for n in browser.notifications] == ["Render failed"]
    assert browser.notifications[0]["body"] == said[0]


def test_failure_line_names_the_innermost_frame() -> None:
    def inner() -> None:
        raise KeyError("scene_index")

    try:
        inner()
    except KeyError as error:
        line = failure_line(error)
    assert line.startswith("viewer: the render failed: KeyError: 'scene_index' (")
    assert line.endswith(" in inner)") and "\n" not in line
