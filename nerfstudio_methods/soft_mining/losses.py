"""The soft-mining RGB loss: per-ray squared error re-weighted by the importance weights ``sg(Q)^-r`` (brief A1, A2.3).

:class:`SoftMiningRGBLoss` is a drop-in replacement for the ``self.rgb_loss = MSELoss()`` that nerfacto, instant-ngp,
vanilla-nerf and mip-NeRF call as ``self.rgb_loss(gt, pred)`` on per-ray colours (after blending the background), so
the models stay unchanged: :class:`~nerfstudio_methods.soft_mining.pipeline.SoftMiningPipeline` swaps it in. Outside
a soft-mining training step (evaluation, or before the pipeline arms it) it is exactly ``MSELoss``.

During a training step every call records its per-ray squared error ``err``, L1 error ``Q`` and weights, which the
pipeline turns into the Langevin drift and the re-initialisation ranking after the backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfstudio_methods.soft_mining.sampler import importance_weights


@dataclass
class RgbTerm:
    """What one call of the loss saw, per ray."""

    squared_error: Float[Tensor, " num"]
    """``err``: mean over channels of the squared error (no gradient)."""
    l1_error: Float[Tensor, " num"]
    """``Q``: mean over channels of the absolute error (keeps its graph, for the exact drift)."""
    weights: Float[Tensor, " num"]
    """The importance weights applied to ``err`` (no gradient)."""


class SoftMiningRGBLoss(nn.Module):
    """``mean_i w_i * mean_c (gt - pred)^2`` with ``w = clamp(sg(Q)^-r)``; plain MSE when not armed."""

    def __init__(
        self, error_floor: float = 2.0**-10, clamp_min: float | None = 0.2, clamp_to_mean_plus_std: bool = True
    ) -> None:
        super().__init__()
        self.error_floor = error_floor
        self.clamp_min = clamp_min
        self.clamp_to_mean_plus_std = clamp_to_mean_plus_std
        self.exponent: float | None = None
        self.terms: list[RgbTerm] = []

    def arm(self, exponent: float) -> None:
        """Weight the following calls with exponent ``r`` and record them (one training step)."""
        self.exponent = exponent
        self.terms = []

    def disarm(self) -> list[RgbTerm]:
        """Back to plain MSE; returns what the calls since :meth:`arm` recorded."""
        terms, self.exponent, self.terms = self.terms, None, []
        return terms

    def forward(self, target: Float[Tensor, "*bs 3"], prediction: Float[Tensor, "*bs 3"]) -> Float[Tensor, ""]:
        if self.exponent is None:
            return torch.mean((target - prediction) ** 2)
        difference = (prediction - target).reshape(-1, prediction.shape[-1])
        squared = difference.square().mean(-1)
        l1_error = difference.abs().mean(-1)
        weights = importance_weights(
            l1_error, self.exponent, self.error_floor, self.clamp_min, self.clamp_to_mean_plus_std
        )
        self.terms.append(RgbTerm(squared.detach(), l1_error, weights))
        return torch.mean(weights * squared)
