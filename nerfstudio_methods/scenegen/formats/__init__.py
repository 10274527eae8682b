"""Writers of complete on-disk datasets in six formats, all rendered exactly from :mod:`scenegen.scene`.

Each writer takes an output folder plus sizes, camera/frame counts and a seed, raises ``ValueError`` (one line) on
bad arguments, writes every file atomically and returns a :class:`WriteSummary`.
"""

from nerfstudio_methods.scenegen.formats._io import WriteSummary
from nerfstudio_methods.scenegen.formats.blender import write_blender
from nerfstudio_methods.scenegen.formats.dtu import write_dtu
from nerfstudio_methods.scenegen.formats.llff import write_llff
from nerfstudio_methods.scenegen.formats.n3dv import write_n3dv
from nerfstudio_methods.scenegen.formats.nvidia_dynamic import write_nvidia_dynamic
from nerfstudio_methods.scenegen.formats.srn import write_srn

FORMATS = {
    "blender": write_blender,
    "llff": write_llff,
    "n3dv": write_n3dv,
    "nvidia-dynamic": write_nvidia_dynamic,
    "srn": write_srn,
    "dtu": write_dtu,
}
"""Format name (as on the command line) -> writer."""

__all__ = [
    "FORMATS",
    "WriteSummary",
    "write_blender",
    "write_dtu",
    "write_llff",
    "write_n3dv",
    "write_nvidia_dynamic",
    "write_srn",
]
