"""Plenoxels' optimiser: a per-voxel masked RMSprop (svox2 ``rmsprop_once``) and its learning-rate schedules.

svox2 updates only voxels touched by the current batch (``sparse_grad_indexer``), and StreamRF multiplies that
indexer by its gradient mask (narrow band and pilot guidance, brief §1.3 step 3). Its RMS state starts from the
first squared gradient instead of 0 (``rms = rms == 0 ? g^2 : lerp``), so the first step of a voxel is
``lr * sign(g)``; ``torch.optim.RMSprop`` starts from 0 and differs, hence this re-implementation.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from nerfstudio_methods.streamrf.grid import chunks

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


def rmsprop_update(
    values: Float[Tensor, "m c"],
    rms: Float[Tensor, "m c"],
    grad: Float[Tensor, "m c"],
    lr_density: float,
    lr_sh: float,
    beta: float = RMSPROP_BETA,
) -> tuple[Float[Tensor, "m c"], Float[Tensor, "m c"]]:
    """One svox2 ``rmsprop_once`` on gathered rows (channel 0 density, the rest SH): new values and new RMS state."""
    new_rms = torch.where(rms == 0, grad * grad, torch.lerp(grad * grad, rms, beta))
    lr = torch.full((1, grad.shape[1]), lr_sh, device=grad.device, dtype=grad.dtype)
    lr[0, 0] = lr_density
    return values - lr * grad / (new_rms.sqrt() + RMSPROP_EPS), new_rms


class SparseRMSprop:
    """The same RMSprop on a sparse grid's rows ``[N, 28]``: the RMS state exists only for occupied voxels, and only
    while a phase trains (:meth:`reset` frees it). The step takes the gradient of the rows a batch touched, as
    svox2's ``sparse_grad_indexer`` does, instead of a gradient over the whole grid."""

    def __init__(self, beta: float = RMSPROP_BETA) -> None:
        self.rms: Tensor | None = None
        self.beta = beta

    def reset(self) -> None:
        self.rms = None

    @torch.no_grad()
    def step(
        self,
        data: Float[Tensor, "n c"],
        rows: Int[Tensor, " m"],
        grad: Float[Tensor, "m c"],
        allowed: Bool[Tensor, " n"] | None,
        lr_density: float,
        lr_sh: float,
    ) -> int:
        """Update ``data`` in place at the distinct ``rows`` (with their summed gradients) that are ``allowed`` and
        have a non-zero gradient; returns the number of voxels updated."""
        updated = 0
        for part in chunks(rows.shape[0]):  # bounded temporaries however many voxels a step touches
            part_grad = grad[part]
            update = (part_grad != 0).any(1)
            if allowed is not None:
                update &= allowed[rows[part]]
            index = rows[part][update]
            if index.numel() == 0:
                continue
            if self.rms is None:
                self.rms = torch.zeros_like(data)
            data[index], self.rms[index] = rmsprop_update(
                data[index], self.rms[index], part_grad[update], lr_density, lr_sh, self.beta
            )
            updated += int(index.numel())
        return updated


class MaskedRMSprop:
    """RMSprop over a dense ``[28, Z, Y, X]`` grid (``--pipeline.model.grid-storage dense``), updating only voxels that are allowed (``mask``) and touched (any
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
        rms_flat = self.rms.view(self.rms.shape[0], -1)
        flat_values = values.view(values.shape[0], -1)
        new_values, new_rms = rmsprop_update(
            flat_values[:, index].T, rms_flat[:, index].T, flat_grad[:, index].T, lr_density, lr_sh, self.beta
        )
        rms_flat[:, index] = new_rms.T
        flat_values[:, index] = new_values.T
        return int(index.numel())
