"""Dataset readers and nerfstudio dataparsers, one module per on-disk format.

Importing this package also installs :mod:`nerfstudio_methods.compat`: nerfstudio imports dataparser plugins at
the start of every ``ns-*`` command, and those fixes must be in place before any model is built.
"""

import nerfstudio_methods  # noqa: F401  (installs the compatibility fixes)
from dataparsers._common import DatasetFormatError

__all__ = ["DatasetFormatError"]
