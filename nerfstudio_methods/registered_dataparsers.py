"""The dataparsers this package registers with nerfstudio (entry-point group ``nerfstudio.dataparser_configs``).

The entry points name this module rather than ``dataparsers.<format>``: importing ``nerfstudio_methods`` first binds
the top-level name ``dataparsers`` to the folder installed beside it (see ``nerfstudio_methods/__init__.py``), so a
``dataparsers`` folder in the working directory or on ``sys.path`` (nerfstudio's own ``tests/dataparsers``) cannot
shadow it. The specifications themselves stay in their format's module, where their config classes live.
"""

from __future__ import annotations

from dataparsers.blender import blender_fewshot_dataparser
from dataparsers.dtu import dtu_dataparser
from dataparsers.dynamic_scene import dynamic_scene_dataparser
from dataparsers.llff import llff_dataparser
from dataparsers.n3dv import n3dv_dataparser
from dataparsers.srn import srn_dataparser

__all__ = [
    "blender_fewshot_dataparser",
    "dtu_dataparser",
    "dynamic_scene_dataparser",
    "llff_dataparser",
    "n3dv_dataparser",
    "srn_dataparser",
]
