"""Degree-2 real spherical harmonics in svox2's sign convention (StreamRF stores 9 coefficients per colour).

svox2's ``utils.eval_sh_bases`` (brief §1.1) uses ``Y1 = (-C1 y, C1 z, -C1 x)`` and the order below; nerfstudio's
``components_from_spherical_harmonics`` differs in signs, so grids trained here follow svox2's layout: the 27 SH
channels are 9 coefficients for red, then 9 for green, then 9 for blue.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

SH_DEGREE = 2
SH_BASES = (SH_DEGREE + 1) ** 2
"""9 basis functions per colour channel."""
SH_CHANNELS = 3 * SH_BASES
"""27 SH coefficients per voxel (``--sh_dim 9`` x RGB)."""

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)


def sh_bases(directions: Float[Tensor, "*b 3"]) -> Float[Tensor, "*b 9"]:
    """The 9 real SH basis values of unit ``directions`` (svox2's convention and order)."""
    x, y, z = directions.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    return torch.stack(
        [
            torch.full_like(x, C0),
            -C1 * y,
            C1 * z,
            -C1 * x,
            C2[0] * x * y,
            C2[1] * y * z,
            C2[2] * (2.0 * zz - xx - yy),
            C2[3] * x * z,
            C2[4] * (xx - yy),
        ],
        dim=-1,
    )


def sh_to_rgb(coefficients: Float[Tensor, "*b 27"], bases: Float[Tensor, "*b 9"]) -> Float[Tensor, "*b 3"]:
    """Plenoxels' colour: ``relu(sum_k Y_k(d) c_k + 0.5)`` per channel (no sigmoid; brief §1.1)."""
    per_channel = coefficients.unflatten(-1, (3, SH_BASES))
    return torch.relu((per_channel * bases.unsqueeze(-2)).sum(-1) + 0.5)
