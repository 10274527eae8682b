"""InfoNeRF's two regularisers, as pure functions of per-sample opacities (brief B1, B2).

Both work on the opacities ``alpha_i = 1 - exp(-sigma_i * delta_i)`` of the fine pass, shape ``[num_rays, num_samples]``,
normalised along each ray into a distribution ``p_i = alpha_i / (sum_j alpha_j + 1e-10)``; the epsilons are those of
the released code (``utils/loss.py``), so values agree with it to float precision.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

EPS = 1e-10
"""The epsilon of the released code, both in the normalisation and inside the logarithms."""

KLDirection = Literal["original-to-neighbour", "neighbour-to-original"]
EntropyDistribution = Literal["opacities", "weights"]


def sample_opacities(
    density: Float[Tensor, "num_rays num_samples"], deltas: Float[Tensor, "num_rays num_samples"]
) -> Float[Tensor, "num_rays num_samples"]:
    """``alpha_i = 1 - exp(-sigma_i * delta_i)``, never negative.

    nerfstudio's PDF sampler maps sorted normalised bins to metric depths with a float affine map, which can swap two
    nearly equal bins: a delta of about -1e-7 (measured). The opacity is then slightly negative, ``p_i`` too, and
    ``log(p_i + 1e-10)`` is NaN, which poisons the fine field within one step. Such deltas are clamped to 0.
    """
    return 1.0 - torch.exp(-density * deltas.clamp_min(0.0))


def render_weights(alphas: Float[Tensor, "num_rays num_samples"]) -> Float[Tensor, "num_rays num_samples"]:
    """Volume-rendering weights ``w_i = alpha_i * prod_{j<i} (1 - alpha_j)``: the share of a ray's colour each sample
    gives (what nerfstudio's ``RaySamples.get_weights`` computes from densities), for the entropy's ``weights``
    option."""
    transmittance = torch.cumprod(1.0 - alphas, dim=-1)
    transmittance = torch.cat([torch.ones_like(alphas[..., :1]), transmittance[..., :-1]], dim=-1)
    return alphas * transmittance


def ray_distribution(alphas: Float[Tensor, "num_rays num_samples"]) -> Float[Tensor, "num_rays num_samples"]:
    """``p_i = alpha_i / (sum_j alpha_j + 1e-10)``: the opacities of a ray normalised to (almost) sum to one."""
    return alphas / (alphas.sum(dim=-1, keepdim=True) + EPS)


def ray_entropy(alphas: Float[Tensor, "num_rays num_samples"], log_base: float = 2.0) -> Float[Tensor, " num_rays"]:
    """Shannon entropy of each ray's normalised opacities, ``-sum_i p_i log(p_i + 1e-10)`` (bits by default, as
    ``entropy_type='log2'`` in the code)."""
    p = ray_distribution(alphas)
    return -(p * torch.log(p + EPS)).sum(dim=-1) / math.log(log_base)


def ray_entropy_loss(
    alphas: Float[Tensor, "num_rays num_samples"],
    accumulation: Float[Tensor, "num_rays 1"] | Float[Tensor, " num_rays"],
    threshold: float,
    log_base: float = 2.0,
) -> Float[Tensor, ""]:
    """Masked ray entropy (B1): mean over all given rays of ``[acc > threshold] * H(ray)``.

    Rays whose accumulated opacity (sum of the fine weights) is at most ``threshold`` contribute zero but still count
    in the denominator, as in ``EntropyLoss.ray_zvals``; the mask is not differentiated.
    """
    if alphas.shape[0] == 0:
        return alphas.sum()
    mask = (accumulation.reshape(-1) > threshold).detach().to(alphas.dtype)
    return (mask * ray_entropy(alphas, log_base=log_base)).mean()


def information_gain_loss(
    alphas_original: Float[Tensor, "num_rays num_samples"],
    alphas_neighbour: Float[Tensor, "num_rays num_samples"],
    direction: KLDirection = "original-to-neighbour",
) -> Float[Tensor, ""]:
    """KL divergence between the sample distributions of rays and of their neighbours (B2), averaged over rays.

    Distributions are ``p = alpha / (sum alpha + 1e-10) + 1e-10`` (``smoothing_activation='norm'``), compared sample
    index by sample index, natural log, neither side detached.

    - ``"original-to-neighbour"``: ``KL(P_original || P_neighbour)``, the paper's formula (Eq. for L_KL).
    - ``"neighbour-to-original"``: ``KL(P_neighbour || P_original)``, what the released code computes with
      ``nn.KLDivLoss(reduction='batchmean')(p.log(), q)`` (github.com/mjmjeong/InfoNeRF issue #10).
    """
    if alphas_original.shape != alphas_neighbour.shape:
        raise ValueError(
            f"original and neighbour rays differ in shape: {alphas_original.shape} vs {alphas_neighbour.shape}"
        )
    if alphas_original.shape[0] == 0:
        return alphas_original.sum()
    p = ray_distribution(alphas_original) + EPS
    q = ray_distribution(alphas_neighbour) + EPS
    if direction == "original-to-neighbour":
        p, q = q, p  # below: KL(q || p)
    elif direction != "neighbour-to-original":
        raise ValueError(f"unknown KL direction {direction!r}")
    return (q * (q.log() - p.log())).sum() / alphas_original.shape[0]


def kl_weight(step: int, initial: float, rate: float, step_size: int) -> float:
    """The decaying KL weight ``initial * rate ** floor(step / step_size)`` (``smoothing_lambda``, ``smoothing_rate``,
    ``smoothing_step_size``)."""
    if step_size <= 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    return initial * rate ** (max(step, 0) // step_size)
