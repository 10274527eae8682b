"""Blender poses checked as they are read. nerfstudio 1.1.5's Blender reader (``blender-data``, and this package's
``blender-fewshot-data`` built on it) stacks each frame's ``transform_matrix`` unchecked: a NaN pose trains to an
all-NaN model with exit status 0, and a 3x4 matrix fails in numpy, which the one-line error report then blamed on the
last image the reader had named (``train/r_5.png: unreadable file``). Now every frame of ``transforms_<split>.json``
is checked first (:func:`~nerfstudio_methods.pose_checks.check_blender_transforms`): one line naming the file and
the frame.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from nerfstudio_methods.compat import FixNotYetPossible
from nerfstudio_methods.pose_checks import check_blender_transforms


def check_blender_poses() -> None:
    """Wrap ``Blender._generate_dataparser_outputs`` to check the split's transforms file first (idempotent)."""
    Blender = getattr(sys.modules.get("nerfstudio.data.dataparsers.blender_dataparser"), "Blender", None)
    if Blender is None:
        raise FixNotYetPossible("nerfstudio's Blender dataparser is not imported yet")
    if getattr(Blender._generate_dataparser_outputs, "_nerfstudio_methods", False):
        return
    generate = Blender._generate_dataparser_outputs

    @functools.wraps(generate)
    def generate_checked(self: Any, split: str = "train", *args: Any, **kwargs: Any) -> Any:
        check_blender_transforms(Path(self.data) / f"transforms_{split}.json")
        return generate(self, split, *args, **kwargs)

    generate_checked._nerfstudio_methods = True  # type: ignore[attr-defined]
    Blender._generate_dataparser_outputs = generate_checked  # type: ignore[method-assign]
