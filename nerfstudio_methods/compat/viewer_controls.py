"""The viewer's control panel opens showing only the controls that apply.

nerfstudio 1.1.5's ``ControlPanel`` hides the controls that do not apply (the Time slider for data without time, the
crop box's options while cropping is off, the split view's options while it is off) in ``update_control_panel``, which
only a change of Output type, Colormap, Split or Crop viewport calls: a browser opens on every one of them, so an
image method's viewer shows a Time slider that does nothing (issue 26). Now the panel applies them once when it is
built.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from nerfstudio_methods.compat import FixNotYetPossible


def hide_controls_that_do_not_apply() -> None:
    """Wrap nerfstudio's ``ControlPanel.__init__`` to end with ``update_control_panel()`` (idempotent)."""
    panel = getattr(sys.modules.get("nerfstudio.viewer.control_panel"), "ControlPanel", None)
    if panel is None:  # imported with the viewer, by nerfstudio's trainer and ns-viewer: patched on a later install()
        raise FixNotYetPossible("nerfstudio's viewer is not imported yet")
    if getattr(panel.__init__, "_nerfstudio_methods", False):
        return
    build = panel.__init__

    @functools.wraps(build)
    def build_then_hide(self: Any, *args: Any, **kwargs: Any) -> None:
        build(self, *args, **kwargs)
        self.update_control_panel()

    build_then_hide._nerfstudio_methods = True  # type: ignore[attr-defined]
    panel.__init__ = build_then_hide
