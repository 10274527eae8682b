"""DynamicNeRF's static/dynamic volume compositing, as MonoNeRF renders (mononerf.md §1 "Compositing").

Densities are raw (pre-activation) values: ``alpha = 1 - exp(-relu(sigma) * delta)`` (noise, when training, is added by
the caller before this, to both branches alike as the released ``raw2outputs`` does). All functions take any leading
batch shape; the sample axis is the last one of ``sigma`` (``[..., samples]``) and the one before the channel axis of
``rgb`` (``[..., samples, 3]``). Transmittance is an exclusive cumulative product, no loop over samples.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

FAR_DELTA = 1e10
"""Length of the last sample's interval: NeRF's ``raw2outputs`` treats it as reaching infinity."""

TRANSMITTANCE_EPS = 1e-10
"""Added to every transmittance factor before the product, as NeRF's and DynamicNeRF's ``raw2outputs`` do."""


def sample_deltas(
    z: Float[Tensor, "*batch samples"], direction_norm: Float[Tensor, "*batch"]
) -> Float[Tensor, "*batch samples"]:
    """Interval lengths ``(z[i+1] - z[i]) * |d|``, the last one ``1e10 * |d|`` (NeRF's ``raw2outputs``).

    ``direction_norm`` is the length of the (NDC) ray direction the samples ``o + z d`` were taken along."""
    far = torch.full_like(z[..., :1], FAR_DELTA)
    return torch.cat([z[..., 1:] - z[..., :-1], far], dim=-1) * direction_norm[..., None]


def density_to_alpha(
    sigma: Float[Tensor, "*batch samples"], deltas: Float[Tensor, "*batch samples"]
) -> Float[Tensor, "*batch samples"]:
    """``alpha = 1 - exp(-relu(sigma) * delta)``."""
    return 1.0 - torch.exp(-torch.relu(sigma) * deltas)


def exclusive_transmittance(passed: Float[Tensor, "*batch samples"]) -> Float[Tensor, "*batch samples"]:
    """``T_i = prod_{j < i} (passed_j + eps)``, with ``T_0 = 1``: the fraction of light reaching sample ``i``."""
    ones = torch.ones_like(passed[..., :1])
    return torch.cumprod(torch.cat([ones, passed + TRANSMITTANCE_EPS], dim=-1), dim=-1)[..., :-1]


def composite(
    sigma: Float[Tensor, "*batch samples"],
    rgb: Float[Tensor, "*batch samples 3"],
    deltas: Float[Tensor, "*batch samples"],
    z: Float[Tensor, "*batch samples"],
) -> dict[str, Tensor]:
    """Single-branch NeRF compositing (the released ``raw2outputs_d``, used for the warped renders at t +/- 1 and the
    stage-1 static render).

    Returns ``rgb`` [..., 3], ``depth`` (expected ``z``, in the units of ``z``) [...], ``accumulation`` [...],
    ``weights`` [..., samples] and ``alpha`` [..., samples]."""
    alpha = density_to_alpha(sigma, deltas)
    weights = alpha * exclusive_transmittance(1.0 - alpha)
    return {
        "rgb": (weights[..., None] * rgb).sum(dim=-2),
        "depth": (weights * z).sum(dim=-1),
        "accumulation": weights.sum(dim=-1),
        "weights": weights,
        "alpha": alpha,
    }


def composite_dynamic(
    sigma_static: Float[Tensor, "*batch samples"],
    rgb_static: Float[Tensor, "*batch samples 3"],
    sigma_dynamic: Float[Tensor, "*batch samples"],
    rgb_dynamic: Float[Tensor, "*batch samples 3"],
    blending: Float[Tensor, "*batch samples"],
    deltas: Float[Tensor, "*batch samples"],
    z: Float[Tensor, "*batch samples"],
) -> dict[str, Tensor]:
    """DynamicNeRF compositing of a static and a dynamic branch mixed by the blending ``b`` in [0, 1].

    - full: ``T_full = prod_prev (1 - alpha_d b)(1 - alpha_s (1 - b))``,
      ``C_full = sum T_full (alpha_d b c_d + alpha_s (1 - b) c_s)``, ``w_full = T_full (alpha_d b + alpha_s (1 - b))``
      (the released weights, used for ``depth_full``, ``accumulation_full`` and dynamicness);
    - static and dynamic: each branch alone, with its own transmittance;
    - ``dynamicness = sum w_full b``; ``blending_map = z b`` (the depth-blending loss's prediction).

    Returns ``rgb_full``/``rgb_static``/``rgb_dynamic`` [..., 3]; ``depth_*`` and ``accumulation_*`` (``*`` = full,
    static, dynamic) and ``dynamicness`` [...]; ``weights_*``, ``alpha_static``, ``alpha_dynamic`` and
    ``blending_map`` [..., samples]. Depths are expected sample ``z`` in the units of ``z``."""
    alpha_s = density_to_alpha(sigma_static, deltas)
    alpha_d = density_to_alpha(sigma_dynamic, deltas)
    absorbed_d = alpha_d * blending
    absorbed_s = alpha_s * (1.0 - blending)
    transmittance_full = exclusive_transmittance((1.0 - absorbed_d) * (1.0 - absorbed_s))
    weights_full = transmittance_full * (absorbed_d + absorbed_s)
    weights_s = alpha_s * exclusive_transmittance(1.0 - alpha_s)
    weights_d = alpha_d * exclusive_transmittance(1.0 - alpha_d)
    rgb_full = ((transmittance_full * absorbed_d)[..., None] * rgb_dynamic).sum(dim=-2) + (
        (transmittance_full * absorbed_s)[..., None] * rgb_static
    ).sum(dim=-2)
    return {
        "rgb_full": rgb_full,
        "rgb_static": (weights_s[..., None] * rgb_static).sum(dim=-2),
        "rgb_dynamic": (weights_d[..., None] * rgb_dynamic).sum(dim=-2),
        "depth_full": (weights_full * z).sum(dim=-1),
        "depth_static": (weights_s * z).sum(dim=-1),
        "depth_dynamic": (weights_d * z).sum(dim=-1),
        "accumulation_full": weights_full.sum(dim=-1),
        "accumulation_static": weights_s.sum(dim=-1),
        "accumulation_dynamic": weights_d.sum(dim=-1),
        "weights_full": weights_full,
        "weights_static": weights_s,
        "weights_dynamic": weights_d,
        "dynamicness": (weights_full * blending).sum(dim=-1),
        "alpha_static": alpha_s,
        "alpha_dynamic": alpha_d,
        "blending_map": z * blending,
    }
