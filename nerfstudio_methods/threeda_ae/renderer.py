"""Volume rendering of tri-plane scenes into C-channel images (RGB, or the autoencoder's latent channels).

Rays come from nerfstudio's cameras; samples from nerfstudio's samplers: ``num_samples`` stratified samples in
``[near, far]`` and ``num_importance_samples`` more drawn from the first pass's weights, merged with the first
ones (3Da-AE: 48 + 48 in [0.5, 2.1], 3da-ae.md §1.3). nerfstudio's ``RGBRenderer`` only knows 3 channels, so the
compositing of C channels over a background is done here: ``sum_i w_i v_i + (1 - sum_i w_i) * background``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.model_components.ray_samplers import PDFSampler, UniformSampler
from torch import Tensor, nn

from nerfstudio_methods.rays import cat_ray_bundles
from nerfstudio_methods.threeda_ae.triplanes import TriplaneDecoder, sample_triplanes


def rays_of_cameras(cameras: Cameras) -> RayBundle:
    """The rays of every pixel of a batch of same-sized cameras, shaped ``[num_cameras, height * width]``."""
    bundles = [cameras.generate_rays(camera_indices=index).flatten() for index in range(cameras.shape[0])]
    bundle = cat_ray_bundles(bundles)
    return bundle.reshape((cameras.shape[0], -1))


def composite_channels(
    weights: Float[Tensor, "*rays samples 1"],
    values: Float[Tensor, "*rays samples channels"],
    background: Float[Tensor, " channels"],
) -> tuple[Float[Tensor, "*rays channels"], Float[Tensor, "*rays 1"]]:
    """Weighted sum of the samples' channels over the background, and the accumulated opacity."""
    accumulation = weights.sum(dim=-2)
    composited = (weights * values).sum(dim=-2) + (1.0 - accumulation) * background
    return composited, accumulation


@dataclass
class RenderedImages:
    """Per ray of ``[B, n]`` rays: channels (in the decoder's [0, 1] units), opacity and expected depth."""

    values: Float[Tensor, "batch rays channels"]
    accumulation: Float[Tensor, "batch rays 1"]
    depth: Float[Tensor, "batch rays 1"]


class TriplaneRenderer(nn.Module):
    """Renders rays through a batch of tri-planes: rays ``[B, n]`` go through tri-plane ``b`` (see the module doc)."""

    def __init__(
        self,
        decoder: TriplaneDecoder,
        near: float,
        far: float,
        num_samples: int,
        num_importance_samples: int,
        eg3d_plane_axes: bool = False,
    ) -> None:
        super().__init__()
        self.decoder = decoder
        self.near = near
        self.far = far
        self.eg3d_plane_axes = eg3d_plane_axes
        self.uniform_sampler = UniformSampler(num_samples=num_samples, single_jitter=False)
        self.pdf_sampler = (
            PDFSampler(num_samples=num_importance_samples, include_original=True, single_jitter=False)
            if num_importance_samples > 0
            else None
        )

    def _query(
        self, planes: Float[Tensor, "batch 3 c r r"], ray_samples: RaySamples, batch: int
    ) -> tuple[Float[Tensor, "batch_rays samples 1"], Float[Tensor, "batch_rays samples channels"]]:
        positions = ray_samples.frustums.get_positions()  # [B * n, S, 3]
        num_rays, num_samples = positions.shape[:2]
        features = sample_triplanes(planes, positions.reshape(batch, -1, 3), self.eg3d_plane_axes)
        density, values = self.decoder(features)
        return density.reshape(num_rays, num_samples, 1), values.reshape(num_rays, num_samples, -1)

    def forward(
        self,
        planes: Float[Tensor, "batch 3 c r r"],
        ray_bundle: RayBundle,
        background: Float[Tensor, " channels"],
    ) -> RenderedImages:
        batch = planes.shape[0]
        flat = ray_bundle.flatten()
        if flat.shape[0] % batch:
            raise ValueError(f"{flat.shape[0]} rays cannot be split evenly over {batch} tri-planes")
        flat.nears = torch.full_like(flat.origins[..., :1], self.near)
        flat.fars = torch.full_like(flat.origins[..., :1], self.far)
        ray_samples = self.uniform_sampler(flat)
        density, values = self._query(planes, ray_samples, batch)
        if self.pdf_sampler is not None:
            weights = ray_samples.get_weights(density)
            ray_samples = self.pdf_sampler(flat, ray_samples, weights)
            density, values = self._query(planes, ray_samples, batch)
        weights = ray_samples.get_weights(density)
        composited, accumulation = composite_channels(weights, values, background.to(values))
        midpoints = (ray_samples.frustums.starts + ray_samples.frustums.ends) / 2
        depth = (weights * midpoints).sum(dim=-2) / accumulation.clamp_min(1e-10)
        return RenderedImages(
            values=composited.reshape(batch, -1, composited.shape[-1]),
            accumulation=accumulation.reshape(batch, -1, 1),
            depth=depth.reshape(batch, -1, 1),
        )
