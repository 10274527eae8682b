"""Dataset readers and nerfstudio dataparsers, one module per on-disk format."""

from dataparsers._common import DatasetFormatError

__all__ = ["DatasetFormatError"]
