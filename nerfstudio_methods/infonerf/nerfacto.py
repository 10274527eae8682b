"""``InfoNeRFNerfactoModel``: nerfacto with InfoNeRF's ray-entropy and information-gain (KL) losses.

The losses (:class:`~nerfstudio_methods.infonerf.losses.InfoNeRFLossMixin`) act on the opacities
``1 - exp(-sigma * delta)`` of nerfacto's *final* samples: the ``num_nerf_samples_per_ray`` (48) samples that the
proposal networks resampled and the nerfacto field rendered (recorded by
:func:`~nerfstudio_methods.infonerf.losses.record_sample_opacities`). InfoNeRF's code spans its 192 fine samples;
with nerfacto the distribution is over 48, concentrated where the proposals put them, so the entropy's scale differs
(brief B7). The proposal networks get no gradient from it (their samples are detached, as in nerfacto); they follow
the field through nerfacto's interlevel loss, which covers the unseen rays too.

Everything else is nerfacto's, except:

- ``keep_near_plane_at_eval`` (on): held-out and viewer rays keep the training near plane. nerfacto's collider drops
  it to 0 outside training, which spreads the proposal samples over [0, far] (measured: ~5 dB on lego at CPU sample
  counts in the soft-mining benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Type

from nerfstudio.cameras.rays import RayBundle
from nerfstudio.model_components.scene_colliders import NearFarCollider
from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig

from nerfstudio_methods.infonerf.losses import InfoNeRFLossConfig, InfoNeRFLossMixin, record_sample_opacities


@dataclass
class InfoNeRFNerfactoModelConfig(NerfactoModelConfig, InfoNeRFLossConfig):
    """nerfacto plus InfoNeRF's losses (their options: :class:`InfoNeRFLossConfig`)."""

    _target: Type = field(default_factory=lambda: InfoNeRFNerfactoModel)
    keep_near_plane_at_eval: bool = True
    """Render evaluation and viewer rays between the training near and far planes (nerfacto's collider otherwise
    resets the near plane to 0 outside training)."""


class InfoNeRFNerfactoModel(InfoNeRFLossMixin, NerfactoModel):
    """nerfacto whose training outputs add ``infonerf_alphas``: the opacities of its final (resampled) samples."""

    config: InfoNeRFNerfactoModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        if isinstance(self.collider, NearFarCollider):
            self.collider.reset_near_plane = not self.config.keep_near_plane_at_eval

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Any]:
        if not self.training:  # full-image renders: [rays, samples] opacities would only cost memory
            return super().get_outputs(ray_bundle)
        with record_sample_opacities(self.field) as record:
            outputs = super().get_outputs(ray_bundle)
        assert record.alphas is not None, "nerfacto's field computed no density"
        outputs[self.alphas_output] = record.alphas
        return outputs


__all__ = ["InfoNeRFNerfactoModel", "InfoNeRFNerfactoModelConfig"]
