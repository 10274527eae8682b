"""Tri-plane scenes: many scenes' planes (shared global bases plus per-scene local planes), their lookup and decoder.

A tri-plane is three feature planes ``[3, C, R, R]`` spanning the cube ``[-1, 1]^3`` (3Da-AE's ``box_warp`` 2,
3da-ae.md §1.3). A point's feature is the sum over the planes of the bilinear lookup of its projection on each
plane; a tiny MLP turns it into density and ``C_out`` channels (RGB, or the 4 latent channels).

Plane axes. ``grid_sample`` reads ``grid[..., 0]`` as the column (width) coordinate and ``grid[..., 1]`` as the
row. We project a point ``(x, y, z)`` to ``(x, y)``, ``(x, z)`` and ``(y, z)``, so the three planes see three
different pairs of axes. EG3D's ``generate_planes`` / ``project_onto_planes``, which 3Da-AE reuses, instead give
``(x, y)``, ``(x, z)`` and ``(z, x)``: the last plane repeats the x-z pair transposed and no plane sees y and z
together (NVlabs/eg3d#30, #67; 3da-ae.md §1.3). ``eg3d_plane_axes=True`` reproduces that.

Scenes (3Da-AE's ``TriplaneManager``, 3da-ae.md §1.4): scene ``s``'s planes are the channel concatenation of its
local planes ``[3, C_local, R, R]`` and ``sum_m coefs[s, m] * global_bases[m] + bias[s]`` ``[3, C_global, R, R]``.
With no global bases, a scene is a plain ``[3, C_local, R, R]`` tri-plane (the RGB baseline). Every scene's own
tensors are separate parameters, so a step only computes gradients and Adam updates for the scenes in its batch
(the released code's dense ``[N, ...]`` tensors move every scene's Adam state at every step) and each scene's
memory can be counted on its own.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

PLANE_AXES = ((0, 1), (0, 2), (1, 2))
"""The (column, row) coordinates of the XY, XZ and YZ planes."""
EG3D_PLANE_AXES = ((0, 1), (0, 2), (2, 0))
"""EG3D's planes XY, XZ and ZX (the plane-axis bug, 3da-ae.md §1.3)."""


def project_on_planes(
    points: Float[Tensor, "batch num_points 3"], eg3d_plane_axes: bool = False
) -> Float[Tensor, "batch 3 num_points 2"]:
    """Each point's 2D coordinates on the three planes, in ``grid_sample``'s (column, row) order."""
    axes = EG3D_PLANE_AXES if eg3d_plane_axes else PLANE_AXES
    return torch.stack([points[..., list(pair)] for pair in axes], dim=1)


def sample_triplanes(
    planes: Float[Tensor, "batch 3 channels res res"],
    points: Float[Tensor, "batch num_points 3"],
    eg3d_plane_axes: bool = False,
) -> Float[Tensor, "batch num_points channels"]:
    """Sum over the three planes of the bilinear lookup (``align_corners=False``, zeros outside ``[-1, 1]``)."""
    batch, _, channels, res, _ = planes.shape
    coordinates = project_on_planes(points, eg3d_plane_axes)  # [B, 3, P, 2]
    sampled = F.grid_sample(
        planes.reshape(batch * 3, channels, res, res),
        coordinates.reshape(batch * 3, 1, -1, 2).to(planes.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # [B * 3, C, 1, P]
    return sampled.reshape(batch, 3, channels, -1).sum(dim=1).permute(0, 2, 1)


def total_variation(planes: Float[Tensor, "*batch res res"]) -> Float[Tensor, ""]:
    """Squared differences of neighbouring plane cells, summed, over ``(H + W)`` (3Da-AE's ``compute_tv``, l2)."""
    rows = (planes[..., 1:, :] - planes[..., :-1, :]).square().sum()
    columns = (planes[..., :, 1:] - planes[..., :, :-1]).square().sum()
    return (rows + columns) / (planes.shape[-2] + planes.shape[-1])


def scene_id_bytes(name: str) -> Tensor:
    """A scene's name as 16 bytes: a ShapeNet id (32 hex digits) itself, any other name its sha256 prefix.

    Checkpoints keep these (uint8 ``[N, 16]``), so stage 2 can tell whether its scenes were seen in stage 1."""
    try:
        raw = bytes.fromhex(name)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raw = hashlib.sha256(name.encode()).digest()[:16]
    return torch.tensor(list(raw), dtype=torch.uint8)


class SceneTriplanes(nn.Module):
    """The tri-planes of ``num_scenes`` scenes (see the module doc). Initialised with ``randn`` as 3Da-AE does, each
    scene from its own seed, so a scene starts the same whatever the number of processes."""

    def __init__(
        self,
        num_scenes: int,
        resolution: int,
        local_channels: int,
        global_channels: int = 0,
        num_global_bases: int = 0,
        init_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_scenes < 1:
            raise ValueError(f"need at least one scene, got {num_scenes}")
        if (num_global_bases > 0) != (global_channels > 0):
            raise ValueError("global planes need both global channels and at least one global basis")
        self.num_scenes = num_scenes
        self.resolution = resolution
        self.local_channels = local_channels
        self.global_channels = global_channels if num_global_bases > 0 else 0
        self.num_global_bases = num_global_bases
        self.init_scale = init_scale
        self.seed = seed
        self.local_planes = nn.ParameterList()
        self.coefficients = nn.ParameterList()
        self.biases = nn.ParameterList()
        for scene in range(num_scenes):
            generator = torch.Generator().manual_seed(seed * 1_000_003 + scene)
            self.local_planes.append(
                nn.Parameter(init_scale * torch.randn(3, local_channels, resolution, resolution, generator=generator))
            )
            if num_global_bases > 0:
                self.coefficients.append(nn.Parameter(torch.randn(num_global_bases, generator=generator)))
                self.biases.append(nn.Parameter(torch.zeros(1)))
        if num_global_bases > 0:
            generator = torch.Generator().manual_seed(seed * 1_000_003 - 1)
            self.global_bases = nn.Parameter(
                init_scale
                * torch.randn(num_global_bases, 3, global_channels, resolution, resolution, generator=generator)
            )
        else:
            self.register_parameter("global_bases", None)

    @property
    def channels(self) -> int:
        return self.local_channels + self.global_channels

    def planes_of(self, scenes: Int[Tensor, " batch"]) -> Float[Tensor, "batch 3 channels res res"]:
        """The composed tri-planes of the given scenes (local planes, then the global mixture)."""
        indices = [int(s) for s in scenes.reshape(-1).tolist()]
        local = torch.stack([self.local_planes[s] for s in indices])
        if self.global_bases is None:
            return local
        coefficients = torch.stack([self.coefficients[s] for s in indices])  # [B, M]
        biases = torch.stack([self.biases[s] for s in indices])  # [B, 1]
        mixture = torch.einsum("bm,mpcij->bpcij", coefficients, self.global_bases)
        mixture = mixture + biases[:, :, None, None, None]
        return torch.cat([local, mixture], dim=2)

    def scene_parameters(self, scene: int) -> list[nn.Parameter]:
        """The parameters only this scene uses."""
        params = [self.local_planes[scene]]
        if self.global_bases is not None:
            params += [self.coefficients[scene], self.biases[scene]]
        return params

    def scene_parameter_count(self) -> int:
        """Floats per scene: its local planes, plus its coefficients and bias when bases are shared."""
        return sum(p.numel() for p in self.scene_parameters(0))

    def shared_parameter_count(self) -> int:
        return 0 if self.global_bases is None else self.global_bases.numel()


class TriplaneDecoder(nn.Module):
    """3Da-AE's ``OSGDecoder`` (3da-ae.md §1.3): Linear(C, 64) - Softplus - Linear(64, 1 + C_out), no positions or
    view directions. Channels come out in ``[-1e-3, 1 + 1e-3]`` (``sigmoid * (1 + 2e-3) - 1e-3``) and the density
    as ``softplus(raw - 1)`` (EG3D's ``MipRayMarcher2``)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.net = nn.Sequential(nn.Linear(in_channels, hidden), nn.Softplus(), nn.Linear(hidden, 1 + out_channels))

    def forward(
        self, features: Float[Tensor, "*batch in_channels"]
    ) -> tuple[Float[Tensor, "*batch 1"], Float[Tensor, "*batch out_channels"]]:
        raw = self.net(features)
        density = F.softplus(raw[..., :1] - 1.0)
        values = torch.sigmoid(raw[..., 1:]) * (1 + 2e-3) - 1e-3
        return density, values

    def reset_parameters(self, seed: int) -> None:
        """Fresh random weights (stage 2 starts its MLP anew, 3Da-AE's ``tinymlp_random_init``)."""
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        torch.random.set_rng_state(generator_state)
