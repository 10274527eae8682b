"""Checkpoints: torch >= 2.6 loads with ``weights_only=True``; nerfstudio's checkpoints hold numpy scalars, which
that unpickler refuses ("Unsupported global: numpy.core.multiarray.scalar"). We allow-list exactly the numpy
scalar reconstructor and dtypes, keeping every other protection of the safe loader.
"""

from __future__ import annotations


def allow_numpy_in_checkpoints() -> None:
    """Allow-list numpy scalars and dtypes for ``torch.load(weights_only=True)``."""
    import numpy as np
    import torch

    if not hasattr(torch.serialization, "add_safe_globals"):
        return  # torch < 2.4 loads without weights_only by default
    from numpy.core.multiarray import scalar  # type: ignore[attr-defined]

    dtype_classes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSUV"] + [type(np.dtype("O"))]
    torch.serialization.add_safe_globals([scalar, np.dtype, *dtype_classes])
