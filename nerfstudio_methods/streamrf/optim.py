"""Plenoxels' optimiser: a per-voxel masked RMSprop (svox2 ``rmsprop_once``) and its learning-rate schedules.

svox2 updates only voxels touched by the current batch (``sparse_grad_indexer``), and StreamRF multiplies that
indexer by its gradient mask (narrow band and pilot guidance, brief §1.3 step 3). Its RMS state starts from the
first squared gradient instead of 0 (``rms = rms == 0 ? g^2 : lerp``), so the first step of a voxel is
``lr * sign(g)``; ``torch.optim.RMSprop`` starts from 0 and differs, hence this re-implementation.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float
from torch import Tensor

RMSPROP_BETA = 0.95
RMSPROP_EPS = 1e-8


def exponential_lr(
    step: int, lr_init: float, lr_final: float, max_steps: int, delay_steps: int = 0, delay_mult: float = 1.0
) -> float:
    """svox2's ``get_expon_lr_func``: log-linear decay from ``lr_init`` to ``lr_final`` over ``max_steps``, optionally
    scaled by a "reverse cosine" warm-up from ``delay_mult`` to 1 over ``delay_steps`` steps."""
    if lr_init == lr_final or max_steps <= 0:
        rate = lr_init
    else:
        t = min(max(step / max_steps, 0.0), 1.0)
        rate = math.exp(math.log(lr_init) * (1 - t) + math.log(lr_final) * t)
    if delay_steps > 0:
        rate *= delay_mult + (1 - delay_mult) * math.sin(0.5 * math.pi * min(max(step / delay_steps, 0.0), 1.0))
    return rate


class MaskedRMSprop:
    """RMSprop over a ``[28, Z, Y, X]`` grid, updating only voxels that are allowed (``mask``) and touched (any
    non-zero gradient); channel 0 (density) and channels 1.. (SH) take their own learning rates."""

    def __init__(self, shape: tuple[int, ...], device: torch.device | str, beta: float = RMSPROP_BETA) -> None:
        self.rms = torch.zeros(shape, device=device)
        self.beta = beta

    def reset(self) -> None:
        self.rms.zero_()

    @torch.no_grad()
    def step(
        self,
        values: Float[Tensor, "c z y x"],
        grad: Float[Tensor, "c z y x"],
        mask: Bool[Tensor, "z y x"],
        lr_density: float,
        lr_sh: float,
    ) -> int:
        """Update ``values`` in place; returns the number of voxels updated."""
        flat_grad = grad.reshape(grad.shape[0], -1)
        update = mask.reshape(-1) & (flat_grad != 0).any(0)
        index = torch.nonzero(update)[:, 0]
        if index.numel() == 0:
            return 0
        g = flat_grad[:, index]
        rms_flat = self.rms.view(self.rms.shape[0], -1)
        previous = rms_flat[:, index]
        rms = torch.where(previous == 0, g * g, torch.lerp(g * g, previous, self.beta))
        rms_flat[:, index] = rms
        lr = torch.full((g.shape[0], 1), lr_sh, device=g.device, dtype=g.dtype)
        lr[0] = lr_density
        flat_values = values.view(values.shape[0], -1)
        flat_values[:, index] -= lr * g / (rms.sqrt() + RMSPROP_EPS)
        return int(index.numel())
