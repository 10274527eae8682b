"""MonoNeRF's loss terms, one function each (mononerf.md §1 "Losses, stage 2" table and stage 1's static MSE).

Every function returns a scalar. Masks are per ray (``[rays]``, boolean or float in [0, 1]). A masked mean is
``sum(mask * value) / (sum(mask) * elements per ray)``, i.e. the mean over the selected rays of the per-ray mean (the
released ``img2mse`` / ``img2mae`` / ``L1`` / ``L2`` with a mask); an empty selection gives 0 that is still connected to
the inputs (zero gradient, never NaN). Values of rays outside the mask are never read, so they may be inf or NaN.

The weights ("λ" in the docstrings, from the brief) are :class:`MonoNeRFLossConfig`'s, part of the model config;
the term functions are unweighted, and :func:`training_losses` assembles the weighted terms of a training step.
Point sets are ``[rays, samples, 3]`` in NDC unless said otherwise; scene flow is position minus start point (NDC).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Dict, List

import torch
from jaxtyping import Bool, Float, Int
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from dataparsers.dynamic_scene import SceneVideo
from nerfstudio_methods.mononerf.projection import ndc_points_to_world
from nerfstudio_methods.rays import NDC_NEAR

RayMask = Bool[Tensor, " rays"] | Float[Tensor, " rays"]

ENTROPY_EPS = 1e-19
"""Inside the logarithm of the sparsity entropy (released ``entropy``)."""

TEMPORAL_SMOOTH_FRACTION = 0.9
"""Temporal (and second-order) smoothness looks at the first 90% of a ray's samples (``compute_sf_smooth_loss``)."""

SPATIAL_SMOOTH_FRACTION = 0.95
"""Spatial smoothness looks at the first 95% (``compute_sf_smooth_s_loss``)."""

BLENDING_THICKNESS = 0.03
"""Depth-blending band half-width in NDC depth (``blending_thickness`` in every released config)."""


# --- helpers ---------------------------------------------------------------------------------------------------------


def _zero_like(*tensors: Tensor) -> Tensor:
    """A scalar 0 connected to every input (so ``backward`` works and gives zero gradients)."""
    return sum((tensor.sum() * 0.0 for tensor in tensors), torch.zeros((), device=tensors[0].device))


def masked_mean(values: Float[Tensor, "rays *rest"], mask: RayMask | None = None) -> Float[Tensor, ""]:
    """Mean of ``values`` over the rays selected by ``mask`` (all rays when None) and over every other axis."""
    if mask is None:
        return values.mean() if values.numel() > 0 else _zero_like(values)
    weight = mask.to(values.dtype).reshape(mask.shape[0], *([1] * (values.dim() - 1)))
    selected = torch.where(weight > 0, values * weight, torch.zeros_like(values))
    per_ray = values[0].numel() if values.shape[0] > 0 else 1
    total = weight.sum() * per_ray
    return selected.sum() / total.clamp_min(1e-8)


def _first_samples(points: Float[Tensor, "rays samples 3"], fraction: float) -> Float[Tensor, "rays kept 3"]:
    return points[:, : int(points.shape[1] * fraction)]


def _entropy(values: Float[Tensor, "rays samples"]) -> Float[Tensor, ""]:
    """``-sum x log(x + 1e-19)`` per ray, averaged over rays (released ``entropy``)."""
    if values.shape[0] == 0:
        return _zero_like(values)
    return -(values * torch.log(values + ENTROPY_EPS)).sum() / values.shape[0]


def _groups(count: int, groups: Int[Tensor, " rays"] | None, device: torch.device) -> list[Tensor]:
    if groups is None:
        return [torch.arange(count, device=device)]
    return [torch.nonzero(groups == value).squeeze(-1) for value in torch.unique(groups)]


# --- photometric -----------------------------------------------------------------------------------------------------


def photometric_loss(
    rgb: Float[Tensor, "rays 3"], target: Float[Tensor, "rays 3"], mask: RayMask | None = None
) -> Float[Tensor, ""]:
    """MSE of rendered and target colours over the masked rays.

    Serves the full (``C_full``, λ 3.0) and dynamic (``C_d``, λ 1.0) photometric terms over all rays, and stage 1's
    static term (``C_s`` on static-region rays, λ 1.0; mononerf.md §1 "Stage 1")."""
    return masked_mean((rgb - target) ** 2, mask)


def static_photometric_loss(
    rgb_static: Float[Tensor, "rays 3"], target: Float[Tensor, "rays 3"], static_mask: RayMask
) -> Float[Tensor, ""]:
    """Stage 1: ``MSE(C_s, gt)`` on static-region rays (λ 1.0)."""
    return photometric_loss(rgb_static, target, static_mask)


def warped_dynamic_loss(
    rgb_forward: Float[Tensor, "rays 3"],
    rgb_backward: Float[Tensor, "rays 3"],
    target: Float[Tensor, "rays 3"],
    forward_valid: RayMask,
    backward_valid: RayMask,
) -> Float[Tensor, ""]:
    """``MSE(C_d(x_f, t+1), gt) + MSE(C_d(x_b, t-1), gt)`` (λ 1.0 each).

    Each term is averaged over the rays whose frame has that neighbour (``forward_valid``: not the last frame,
    ``backward_valid``: not the first), per ray: the released code skipped a term for the whole batch based on the
    last scene's frame (mononerf.md §5 "img_i scoping bug")."""
    return photometric_loss(rgb_forward, target, forward_valid) + photometric_loss(rgb_backward, target, backward_valid)


# --- motion ----------------------------------------------------------------------------------------------------------


def flow_loss(
    induced: Float[Tensor, "rays 2"], flow: Float[Tensor, "rays 2"], consistency_mask: RayMask
) -> Float[Tensor, ""]:
    """Optical flow: L1 of induced minus (RAFT) flow, masked by the forward/backward consistency mask (λ 0.02).

    Call once per direction with that direction's flow and mask (times the neighbour's existence) and add."""
    return masked_mean((induced - flow).abs(), consistency_mask)


def slow_loss(
    scene_flow_forward: Float[Tensor, "*batch 3"], scene_flow_backward: Float[Tensor, "*batch 3"]
) -> Float[Tensor, ""]:
    """Slow scene flow: ``L1(sf_f) + L1(sf_b)`` (means of absolute NDC components; λ 0.01)."""
    return masked_mean(scene_flow_forward.abs().reshape(-1, 1)) + masked_mean(scene_flow_backward.abs().reshape(-1, 1))


def temporal_smooth_loss(
    points: Float[Tensor, "rays samples 3"],
    points_forward: Float[Tensor, "rays samples 3"],
    points_backward: Float[Tensor, "rays samples 3"],
    ndc_coeffs: tuple[float, float],
    fraction: float = TEMPORAL_SMOOTH_FRACTION,
    near: float = NDC_NEAR,
) -> Float[Tensor, ""]:
    """``L1((X_f - X) + (X_b - X))`` in world space on the first 90% of samples (``compute_sf_smooth_loss``; λ 0.1):
    forward and backward scene flow of a point should be opposite."""
    world = ndc_points_to_world(_first_samples(points, fraction), ndc_coeffs, near)
    world_f = ndc_points_to_world(_first_samples(points_forward, fraction), ndc_coeffs, near)
    world_b = ndc_points_to_world(_first_samples(points_backward, fraction), ndc_coeffs, near)
    return masked_mean(((world_f - world) + (world_b - world)).abs())


def spatial_smooth_loss(
    points: Float[Tensor, "rays samples 3"],
    points_forward: Float[Tensor, "rays samples 3"],
    points_backward: Float[Tensor, "rays samples 3"],
    ndc_coeffs: tuple[float, float],
    fraction: float = SPATIAL_SMOOTH_FRACTION,
    near: float = NDC_NEAR,
) -> Float[Tensor, ""]:
    """World scene flow should vary little between neighbouring samples of a ray: for each direction,
    ``L1(sf[k] - sf[k+1])`` over the first 95% of samples; forward plus backward (``compute_sf_smooth_s_loss``,
    adapted from NSFF; λ 0.1)."""
    world = ndc_points_to_world(_first_samples(points, fraction), ndc_coeffs, near)
    total = _zero_like(points)
    for moved in (points_forward, points_backward):
        flow = ndc_points_to_world(_first_samples(moved, fraction), ndc_coeffs, near) - world
        total = total + masked_mean((flow[:, :-1] - flow[:, 1:]).abs())
    return total


def second_order_smooth_loss(
    points: Float[Tensor, "rays samples 3"],
    points_forward: Float[Tensor, "rays samples 3"],
    points_backward: Float[Tensor, "rays samples 3"],
    points_forward_forward: Float[Tensor, "rays samples 3"],
    points_backward_backward: Float[Tensor, "rays samples 3"],
    ndc_coeffs: tuple[float, float],
    fraction: float = TEMPORAL_SMOOTH_FRACTION,
    near: float = NDC_NEAR,
) -> Float[Tensor, ""]:
    """Second-order temporal smoothness: the temporal smoothness at ``x_b`` (neighbours ``x``, ``x_bb``) plus at
    ``x_f`` (neighbours ``x_ff``, ``x``), i.e. ``L1(X - 2 X_b + X_bb) + L1(X_ff - 2 X_f + X)`` in world space
    (λ 0.1). ``x_ff`` / ``x_bb`` are ``x_f`` / ``x_b`` moved one more frame the same way."""
    backward = temporal_smooth_loss(points_backward, points, points_backward_backward, ndc_coeffs, fraction, near)
    forward = temporal_smooth_loss(points_forward, points_forward_forward, points, ndc_coeffs, fraction, near)
    return backward + forward


def cycle_consistency_loss(
    scene_flow_forward: Float[Tensor, "*batch 3"],
    scene_flow_forward_backward: Float[Tensor, "*batch 3"],
    scene_flow_backward: Float[Tensor, "*batch 3"],
    scene_flow_backward_forward: Float[Tensor, "*batch 3"],
) -> Float[Tensor, ""]:
    """``L1(sf_f + sf_{f->b}) + L1(sf_b + sf_{b->f})`` (λ 1.0): moving to t+1 and back from there (``sf_{f->b}``, the
    backward flow of ``x_f``) returns to the start, and likewise through t-1."""
    forward = (scene_flow_forward + scene_flow_forward_backward).abs().reshape(-1, 1)
    backward = (scene_flow_backward + scene_flow_backward_forward).abs().reshape(-1, 1)
    return masked_mean(forward) + masked_mean(backward)


def static_flow_loss(
    scene_flow_forward: Float[Tensor, "rays samples 3"],
    scene_flow_backward: Float[Tensor, "rays samples 3"],
    static_mask: RayMask,
) -> Float[Tensor, ""]:
    """``L2(sf_f) + L2(sf_b)`` (mean squared NDC components) on static-region rays (λ 0.5)."""
    return masked_mean(scene_flow_forward**2, static_mask) + masked_mean(scene_flow_backward**2, static_mask)


# --- blending and masks ----------------------------------------------------------------------------------------------


def mask_loss(
    blending: Float[Tensor, "rays samples"], dynamicness: Float[Tensor, " rays"], static_mask: RayMask
) -> Float[Tensor, ""]:
    """``L1(b)`` on static-region rays plus ``MAE(dynamicness, motion mask)`` over all rays (λ 0.1); the motion mask
    is ``1 - static_mask``."""
    motion = 1.0 - static_mask.to(dynamicness.dtype)
    return masked_mean(blending.abs(), static_mask) + masked_mean((dynamicness - motion).abs())


def mask_flow_loss(
    blending_forward: Float[Tensor, "rays samples"],
    blending_backward: Float[Tensor, "rays samples"],
    static_mask: RayMask,
) -> Float[Tensor, ""]:
    """``L1(b(x_f, t+1)) + L1(b(x_b, t-1))`` on static-region rays (λ 0.1 multi-scene, 0.01 fine-tune/unseen
    frames)."""
    return masked_mean(blending_forward.abs(), static_mask) + masked_mean(blending_backward.abs(), static_mask)


def sparsity_loss(
    weights_dynamic: Float[Tensor, "rays samples"], blending: Float[Tensor, "rays samples"]
) -> Float[Tensor, ""]:
    """``entropy(w_d) + entropy(b)``, each ``-sum_k x_k log(x_k + 1e-19)`` per ray averaged over rays (λ 0.001)."""
    return _entropy(weights_dynamic) + _entropy(blending)


# --- depth -----------------------------------------------------------------------------------------------------------


def _median_mad_normalize(values: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """``(x - median) / (mean |x - median| + 1e-9)``; ``torch.median`` takes the lower middle value of an even count
    (as the released ``compute_depth_loss``). The 1e-9 also guards a constant target (the released code divides the
    target by its MAD without it)."""
    median = values.median()
    return (values - median) / ((values - median).abs().mean() + 1e-9)


def depth_loss(
    depth_dynamic: Float[Tensor, " rays"],
    disparity: Float[Tensor, " rays"],
    groups: Int[Tensor, " rays"] | None = None,
) -> Float[Tensor, ""]:
    """Depth: MSE between median/MAD-normalised NDC ``depth_d`` and median/MAD-normalised ``-disparity`` (MiDaS)
    (``compute_depth_loss``; λ 0.04). NDC depth is affine in ``-disparity`` (``z_ndc = 1 - 2 near / depth``), so
    normalising both removes MiDaS's unknown scale and shift.

    The normalisation is per image batch: per value of ``groups`` (e.g. the scene or frame of each ray) when given,
    over all rays otherwise; the squared error is then averaged over all rays."""
    if depth_dynamic.shape[0] == 0:
        return _zero_like(depth_dynamic, disparity)
    total = _zero_like(depth_dynamic, disparity)
    for index in _groups(depth_dynamic.shape[0], groups, depth_dynamic.device):
        prediction = _median_mad_normalize(depth_dynamic[index])
        target = _median_mad_normalize(-disparity[index])
        total = total + ((prediction - target) ** 2).sum()
    return total / depth_dynamic.shape[0]


def order_loss(
    depth_dynamic: Float[Tensor, " rays"], depth_static: Float[Tensor, " rays"], static_mask: RayMask
) -> Float[Tensor, ""]:
    """``MSE(depth_d - depth_s.detach())`` on static-region rays (λ 0.1): the dynamic branch does not move the static
    surface. Only the dynamic depth gets a gradient."""
    return masked_mean((depth_dynamic - depth_static.detach()) ** 2, static_mask)


def normalize_disparity_to_ndc(
    disparity: Float[Tensor, " rays"], near: float = 0.0, far: float = 1.0
) -> Float[Tensor, " rays"]:
    """Map disparity linearly onto ``[near, far]`` of NDC depth: the largest disparity (closest) to ``near``, the
    smallest to ``far`` (the depth-blending loss's target depth, ``compute_depth_blending_loss`` with
    ``min_depth = max disparity``, ``max_depth = min disparity``). Does not modify its input.

    (The released code does this in place on the batch's disparity, which the later depth loss then reads; feeding
    this function's output to :func:`depth_loss` reproduces that.)"""
    largest = disparity.max()
    span = disparity.min() - largest
    safe = torch.where(span.abs() < 1e-12, torch.full_like(span, -1.0), span)
    return (disparity - largest) / safe * (far - near) + near


def depth_blending_loss(
    disparity: Float[Tensor, " rays"],
    z: Float[Tensor, "rays samples"],
    blending: Float[Tensor, "rays samples"],
    dynamic_mask: RayMask,
    thickness: float = BLENDING_THICKNESS,
    near: float = 0.0,
    far: float = 1.0,
    groups: Int[Tensor, " rays"] | None = None,
) -> Float[Tensor, ""]:
    """Depth-blending (``compute_depth_blending_loss``; λ 1.0, thickness 0.03): on dynamic-region rays the blending
    map ``z b`` should equal ``z`` for samples within ``thickness`` of the normalised MiDaS depth
    (:func:`normalize_disparity_to_ndc`, per value of ``groups`` or over the whole batch) and 0 elsewhere, i.e.
    ``b`` is 1 in a band around the moving surface and 0 off it. MSE over the masked rays' samples."""
    target_depth = torch.empty_like(disparity)
    for index in _groups(disparity.shape[0], groups, disparity.device):
        if index.numel() > 0:
            target_depth[index] = normalize_disparity_to_ndc(disparity[index], near, far)
    in_band = (z - target_depth[:, None]).abs() <= thickness
    target = torch.where(in_band, z, torch.zeros_like(z))
    return masked_mean((target - z * blending) ** 2, dynamic_mask)


# --- a training step's weighted terms --------------------------------------------------------------------------------


@dataclass
class MonoNeRFLossConfig:
    """The loss weights (mononerf.md §1 "Losses, stage 2"); ``MonoNeRFModelConfig`` inherits them, so they are set
    as ``--pipeline.model.<name>`` like every model setting."""

    static_loss_mult: float = 1.0
    """Stage 1: MSE of the static colour on static pixels."""
    full_loss_mult: float = 3.0
    """Stage 2 weights, in the order of mononerf.md §1's table."""
    dynamic_loss_mult: float = 1.0
    warped_loss_mult: float = 1.0
    flow_loss_mult: float = 0.02
    slow_loss_mult: float = 0.01
    temporal_smooth_loss_mult: float = 0.1
    spatial_smooth_loss_mult: float = 0.1
    second_order_smooth_loss_mult: float = 0.1
    cycle_loss_mult: float = 1.0
    mask_loss_mult: float = 0.1
    sparsity_loss_mult: float = 0.001
    depth_loss_mult: float = 0.04
    order_loss_mult: float = 0.1
    depth_blending_loss_mult: float = 1.0
    depth_blending_thickness: float = 0.03
    static_flow_loss_mult: float = 0.5
    mask_flow_loss_mult: float = 0.1
    """0.1 for multi-scene training, 0.01 for fine-tuning and unseen frames (mononerf.md §1)."""
    released_warped_frame_bug: bool = False
    """The released warped-dynamic loss decides whether frame t-1 / t+1 exist from the last scene's frame (the
    ``img_i`` scoping bug); multi-scene only."""


def switched_off_losses(video: SceneVideo) -> List[str]:
    """The loss terms that the scene's missing optional parts switch off."""
    off = []
    if video.flow_forward is None:
        off.append("optical flow loss")
    if video.disparity is None:
        off += ["depth loss", "depth-blending loss"]
    if video.motion_mask is None:
        off += ["mask loss", "order loss", "static flow loss", "mask flow loss", "static/dynamic ray balance"]
        if video.disparity is not None:
            off.append("depth-blending loss")
    return off


def warn_switched_off_losses(videos: List[SceneVideo]) -> None:
    """One warning per scene that lacks optional parts, naming the loss terms they switch off."""
    for video in videos:
        switched_off = switched_off_losses(video)
        if switched_off:
            CONSOLE.print(
                f"[yellow]MonoNeRF: {video.name} has no {', '.join(video.missing)}; "
                f"switched off: {', '.join(switched_off)}[/yellow]"
            )


def training_losses(
    config: MonoNeRFLossConfig,
    outputs: Dict[str, Tensor],
    batch: Dict[str, Tensor],
    image: Float[Tensor, "rays 3"],
    dynamic_stage: bool,
    last_frames: Int[Tensor, " scenes"],
    ndc_coeffs: Callable[[int], tuple[float, float]],
) -> Dict[str, Tensor]:
    """A training step's weighted terms. Stage 1: the static MSE on static pixels. Stage 2: every term of mononerf.md
    §1's table, each with its config weight; terms whose inputs a scene lacks (flow, disparity, motion masks) are left
    out for its rays. ``last_frames``: each scene's last training frame; ``ndc_coeffs``: a scene's NDC coefficients.
    Each ray's frame and scene are those it was rendered at (``outputs``), not the batch's."""
    has_mask = batch["has_motion_mask"]
    is_dynamic = batch["is_dynamic"] & has_mask
    if not dynamic_stage:
        static_pixels = ~is_dynamic  # every pixel of a scene without motion masks
        return {
            "static_rgb_loss": config.static_loss_mult
            * static_photometric_loss(outputs["rgb_static"], image, static_pixels)
        }
    static_mask = has_mask & ~batch["is_dynamic"]
    # The frame and scene each ray was rendered at (from its time and scene index), not the batch's copies.
    frames = outputs["frame_index"][:, 0].long()
    scenes = outputs["scene_index"]
    # The last training frame has no forward neighbour: in the unseen-frames setup the frames after it stay
    # unseen (no warped colour, flow or feature target from them).
    last = last_frames.to(frames.device)[scenes]
    decided_by = frames
    if config.released_warped_frame_bug:
        decided_by = torch.full_like(frames, int(frames[-1]))  # the last scene's frame decides for every ray
        last = torch.full_like(last, int(last[-1]))
    has_forward, has_backward = decided_by < last, decided_by > 0
    points = outputs["points"]
    forward, backward = outputs["points_forward"], outputs["points_backward"]
    flow_forward, flow_backward = forward - points, backward - points
    flow_forward_backward = outputs["points_forward_backward"] - forward
    flow_backward_forward = outputs["points_backward_forward"] - backward
    terms: Dict[str, Tensor] = {
        "full_rgb_loss": config.full_loss_mult * photometric_loss(outputs["rgb"], image),
        "dynamic_rgb_loss": config.dynamic_loss_mult * photometric_loss(outputs["rgb_dynamic"], image),
        "warped_rgb_loss": config.warped_loss_mult
        * warped_dynamic_loss(
            outputs["rgb_dynamic_forward"], outputs["rgb_dynamic_backward"], image, has_forward, has_backward
        ),
        "slow_loss": config.slow_loss_mult * slow_loss(flow_forward, flow_backward),
        "cycle_loss": config.cycle_loss_mult
        * cycle_consistency_loss(flow_forward, flow_forward_backward, flow_backward, flow_backward_forward),
        "sparsity_loss": config.sparsity_loss_mult * sparsity_loss(outputs["weights_dynamic"], outputs["blending"]),
    }
    # World-space smoothness terms need each scene's NDC coefficients.
    smooth: Dict[str, List[Tensor]] = {
        "temporal_smooth_loss": [],
        "spatial_smooth_loss": [],
        "second_order_smooth_loss": [],
    }
    for scene in torch.unique(scenes).tolist():
        rows = torch.nonzero(scenes == scene)[:, 0]
        coeffs = ndc_coeffs(int(scene))
        share = rows.numel() / scenes.numel()
        p, f, b = points[rows], forward[rows], backward[rows]
        smooth["temporal_smooth_loss"].append(share * temporal_smooth_loss(p, f, b, coeffs))
        smooth["spatial_smooth_loss"].append(share * spatial_smooth_loss(p, f, b, coeffs))
        smooth["second_order_smooth_loss"].append(
            share
            * second_order_smooth_loss(
                p,
                f,
                b,
                outputs["points_forward_forward"][rows],
                outputs["points_backward_backward"][rows],
                coeffs,
            )
        )
    terms["temporal_smooth_loss"] = config.temporal_smooth_loss_mult * torch.stack(smooth["temporal_smooth_loss"]).sum()
    terms["spatial_smooth_loss"] = config.spatial_smooth_loss_mult * torch.stack(smooth["spatial_smooth_loss"]).sum()
    terms["second_order_smooth_loss"] = (
        config.second_order_smooth_loss_mult * torch.stack(smooth["second_order_smooth_loss"]).sum()
    )
    has_flow = batch["has_flow"]
    if bool(has_flow.any()):
        forward_mask = batch["flow_forward_mask"] * (has_flow & has_forward)
        backward_mask = batch["flow_backward_mask"] * (has_flow & has_backward)
        terms["flow_loss"] = config.flow_loss_mult * (
            flow_loss(outputs["induced_flow_forward"], batch["flow_forward"], forward_mask)
            + flow_loss(outputs["induced_flow_backward"], batch["flow_backward"], backward_mask)
        )
    has_disparity = batch["has_disparity"]
    if bool(has_disparity.any()):
        rows = torch.nonzero(has_disparity)[:, 0]
        terms["depth_loss"] = config.depth_loss_mult * depth_loss(
            outputs["depth_dynamic"][rows, 0], batch["disparity"][rows], groups=scenes[rows]
        )
        if bool(has_mask[rows].any()):
            terms["depth_blending_loss"] = config.depth_blending_loss_mult * depth_blending_loss(
                batch["disparity"][rows],
                outputs["z"][rows],
                outputs["blending"][rows],
                is_dynamic[rows],
                thickness=config.depth_blending_thickness,
                groups=scenes[rows],
            )
    if bool(has_mask.any()):
        rows = torch.nonzero(has_mask)[:, 0]
        static_rows = static_mask[rows]
        terms["mask_loss"] = config.mask_loss_mult * mask_loss(
            outputs["blending"][rows], outputs["dynamicness"][rows, 0], static_rows
        )
        terms["order_loss"] = config.order_loss_mult * order_loss(
            outputs["depth_dynamic"][rows, 0], outputs["depth_static"][rows, 0], static_rows
        )
        terms["static_flow_loss"] = config.static_flow_loss_mult * static_flow_loss(
            flow_forward[rows], flow_backward[rows], static_rows
        )
        terms["mask_flow_loss"] = config.mask_flow_loss_mult * mask_flow_loss(
            outputs["blending_forward"][rows], outputs["blending_backward"][rows], static_rows
        )
    return terms
