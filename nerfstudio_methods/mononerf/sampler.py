"""MonoNeRF's samples along a ray: ``num_samples`` depths in NDC ``z`` in [0, 1], uniform, stratified in training
(nerf-pytorch's ``perturb``; no importance samples, mononerf.md §1)."""

from __future__ import annotations

import torch
from jaxtyping import Float


def ndc_depths(rays: int, samples: int, device: torch.device | str, stratified: bool) -> Float[torch.Tensor, "r s"]:
    """``samples`` evenly spaced depths in [0, 1] per ray; with ``stratified``, each moved to a uniform draw within
    its bin (between the midpoints to its neighbours; the first and last bins end at 0 and 1)."""
    z = torch.linspace(0.0, 1.0, samples, device=device).expand(rays, samples)
    if stratified:
        middle = 0.5 * (z[:, 1:] + z[:, :-1])
        upper = torch.cat([middle, z[:, -1:]], dim=-1)
        lower = torch.cat([z[:, :1], middle], dim=-1)
        z = lower + (upper - lower) * torch.rand_like(z)
    return z
