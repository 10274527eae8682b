"""nerfstudio plugins for StreamRF, MonoNeRF, Soft Mining, 3Da-AE and InfoNeRF.

Importing the package (nerfstudio does so through the entry points) installs the compatibility fixes in
:mod:`nerfstudio_methods.compat`.
"""

from nerfstudio_methods import compat

compat.install()
