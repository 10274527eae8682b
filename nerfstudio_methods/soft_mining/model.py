"""The released soft-mining code's base model, as a nerfacto configuration: an Instant-NGP hash grid with one
proposal network (brief A2.7), in the scene's box for Blender or in NDC for forward-facing LLFF scenes.

nerfacto already is that model's shape (hash-grid density, geometry feature and spherical-harmonics directions into
a small colour MLP, proposal sampling with an interlevel loss), so :class:`SoftMiningNGPModel` adds only what the
released ``train_ngp_nerf_prop.py`` does differently:

- no scene contraction: the grid covers the scene's box (Blender ``[-1.5, 1.5]^3``, near/far 2/6);
- ``ndc=True`` (LLFF): every ray, training or viewer, goes to NeRF's normalised device coordinates before sampling
  (near plane at depth 1 of the ``bd_factor``-scaled, recentred scene; :func:`~nerfstudio_methods.rays.ndc_rays`), the
  grid covers NDC's ``[-1, 1]^3`` and rays are sampled in ``t`` in ``[0, 1]`` (from the near plane to infinity). The
  NDC map is differentiable, so the soft-mining drift still reaches the pixel positions (the released code detaches
  the origins, the gradient reaching only the directions; here both carry it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.model_components.scene_colliders import NearFarCollider
from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig

from nerfstudio_methods.rays import NDC_COEFFICIENTS_KEY, ndc_rays


@dataclass
class SoftMiningNGPModelConfig(NerfactoModelConfig):
    """nerfacto as the released code's Instant-NGP + proposal network (defaults set by the presets in ``config.py``)."""

    _target: Type = field(default_factory=lambda: SoftMiningNGPModel)
    ndc: bool = False
    """Map rays to NDC before sampling (forward-facing LLFF, as the released code). Needs the dataparser's
    ``ndc_coefficients`` metadata (``llff-data`` provides it)."""


class SoftMiningNGPModel(NerfactoModel):
    """nerfacto with an optional NDC ray map (module doc)."""

    config: SoftMiningNGPModelConfig

    def populate_modules(self) -> None:
        self.ndc_coefficients: tuple[float, float] | None = None
        if self.config.ndc:
            metadata = self.kwargs.get("metadata") or {}
            if NDC_COEFFICIENTS_KEY not in metadata:
                raise ValueError(
                    "--pipeline.model.ndc True needs a forward-facing dataparser that provides the NDC coefficients "
                    f"({NDC_COEFFICIENTS_KEY!r} metadata, e.g. llff-data)"
                )
            self.ndc_coefficients = tuple(float(value) for value in metadata[NDC_COEFFICIENTS_KEY])  # type: ignore
            # NDC x, y, z all lie in [-1, 1]; rays run from t = 0 (near plane) to t = 1 (infinity)
            self.scene_box = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
        super().populate_modules()
        if self.ndc_coefficients is not None:
            self.collider = NearFarCollider(near_plane=0.0, far_plane=1.0)

    def forward(self, ray_bundle: RayBundle | Cameras):
        if self.ndc_coefficients is not None and isinstance(ray_bundle, RayBundle):
            ray_bundle = self.to_ndc(ray_bundle)
        return super().forward(ray_bundle)

    def to_ndc(self, ray_bundle: RayBundle) -> RayBundle:
        """The same rays in NDC (unnormalised directions, so ``t`` in [0, 1] spans near plane to infinity). Rays
        that do not travel into the scene (a viewer camera looking backwards) keep a placeholder direction and fall
        outside the grid, which renders them as background."""
        assert self.ndc_coefficients is not None
        shape = ray_bundle.shape
        flat = ray_bundle.flatten()
        origins, directions, _ = ndc_rays(flat.origins, flat.directions, self.ndc_coefficients, normalize=False)
        flat.origins, flat.directions = origins, directions
        flat.nears, flat.fars = None, None  # the collider sets them to [0, 1]
        return flat.reshape(shape)
