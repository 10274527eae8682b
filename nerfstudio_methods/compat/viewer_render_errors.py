"""A render that fails in the viewer is said in one line.

nerfstudio 1.1.5's viewer renders each browser's view in a thread of its own (``RenderStateMachine.run``). An
exception raised while the model renders ends that thread: the terminal shows a traceback among the training log,
and the browser keeps "Connected" with "Resolution: 0x0px" and a blank or frozen view, whatever control is moved
(issue 26: the tri-plane model's viewer camera did this). Now the failure is one line on the terminal and a
notification in that browser (each distinct failure once per browser), naming the exception and where in the code it
was raised; the render thread lives on, so the next view or setting that renders is shown.
"""

from __future__ import annotations

import functools
import sys
import traceback
from typing import Any

from nerfstudio_methods.compat import FixNotYetPossible


def failure_line(error: BaseException) -> str:
    """``viewer: the render failed: <type>: <message> (<file>:<line> in <function>)``, the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    message = " ".join(str(error).split()) or "(no message)"
    return f"viewer: the render failed: {type(error).__name__}: {message}{where}"


def said_once(render_img: Any, interrupted: type[BaseException]) -> Any:
    """``RenderStateMachine._render_img`` that turns a failure into :func:`failure_line` on the terminal and in the
    browser, then raises ``interrupted`` (nerfstudio's own "this render was cut short" signal: the render loop skips
    the frame and waits for the next action instead of dying)."""

    @functools.wraps(render_img)
    def render_img_or_say_why(self: Any, camera_state: Any) -> Any:
        try:
            return render_img(self, camera_state)
        except interrupted:
            raise
        except Exception as error:  # noqa: BLE001 - any failure of a model's render, said instead of killing the thread
            line = failure_line(error)
            said = self.__dict__.setdefault("_nerfstudio_methods_said", set())
            if line not in said:
                said.add(line)
                print(line, file=sys.stderr, flush=True)
                client = getattr(self, "client", None)
                if client is not None and hasattr(client, "add_notification"):
                    client.add_notification(title="Render failed", body=line, with_close_button=True, color="red")
            raise interrupted from error

    render_img_or_say_why._nerfstudio_methods = True  # type: ignore[attr-defined]
    return render_img_or_say_why


def say_viewer_render_failures() -> None:
    """Wrap nerfstudio's ``RenderStateMachine._render_img`` with :func:`said_once` (idempotent)."""
    module = sys.modules.get("nerfstudio.viewer.render_state_machine")
    machine = getattr(module, "RenderStateMachine", None)
    if machine is None:  # imported with the viewer, by nerfstudio's trainer and ns-viewer: patched on a later install()
        raise FixNotYetPossible("nerfstudio's viewer is not imported yet")
    if getattr(machine._render_img, "_nerfstudio_methods", False):
        return
    machine._render_img = said_once(machine._render_img, module.viewer_utils.IOChangeException)  # type: ignore[union-attr]
