"""``InfoNeRFModel``: nerfstudio's vanilla NeRF (64 coarse + 128 fine samples) plus InfoNeRF's losses (brief B1-B3, B7).

Differences from nerfstudio's ``vanilla-nerf`` that follow nerf-pytorch, which InfoNeRF builds on:

- density ``relu(raw + noise)`` instead of ``softplus(raw)``, with ``density_noise_std`` (``raw_noise_std``) Gaussian
  noise on the raw density during training (``density_activation="softplus"`` restores nerfstudio's);
- separate depths for the coarse and fine MLPs (InfoNeRF's DTU config uses a 4-layer coarse MLP).

Kept from nerfstudio (documented differences to nerf-pytorch): the positional encoding (``2*pi*x`` scaling,
frequencies up to 2^8), the last sample's delta (``far - t_last``, not 1e10) and the PDF sampler, which merges its
129 new bin edges with the 65 coarse ones, so the fine pass (and the entropy) spans 193 intervals, not 192 points.

Outputs ``rgb``, ``accumulation`` and ``depth`` are the fine pass's (nerfstudio's default names for ns-render and the
viewer), next to vanilla NeRF's ``*_coarse``/``*_fine``.

Training batches from :class:`~nerfstudio_methods.infonerf.datamanager.InfoNeRFDataManager` are laid out as
``[seen | unseen | near-seen | near-unseen]`` with ``n_seen``, ``n_unseen``, ``n_near`` in the batch. Losses:

- ``rgb_loss_coarse``/``rgb_loss_fine``: MSE on the seen rays only;
- ``entropy_loss`` = ``entropy_lambda`` * masked ray entropy (:func:`.losses.ray_entropy_loss`) over the unseen rays,
  plus the neighbour rays (``entropy_on_neighbour_rays``) and the seen rays (``entropy_on_seen_rays``);
- ``kl_loss`` = ``kl_lambda * kl_rate ** (step // kl_step_size)`` * KL between [seen | unseen] and
  [near-seen | near-unseen] (:func:`.losses.information_gain_loss`).

Batches without ``n_seen`` (evaluation batches) get only the RGB losses. ``get_outputs_for_camera`` (ns-eval,
ns-render, the viewer) renders like vanilla NeRF and never needs the extra rays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Literal, Tuple, Type

import torch
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.field_components.encodings import NeRFEncoding
from nerfstudio.field_components.field_heads import DensityFieldHead, FieldHeadNames
from nerfstudio.fields.vanilla_nerf_field import NeRFField
from nerfstudio.model_components.scene_colliders import NearFarCollider
from nerfstudio.models.vanilla_nerf import NeRFModel, VanillaModelConfig
from nerfstudio.utils import colormaps
from torch import Tensor, nn

from nerfstudio_methods.infonerf.losses import InfoNeRFLossConfig, InfoNeRFLossMixin, sample_opacities

RELU_INITIAL_DENSITY = 0.05
"""Raw density of a fresh relu field everywhere: the magnitude the default initialisation gives when it is alive
(measured: |raw| ~ 0.01-0.15 at init), i.e. a faint haze (about 0.18 opacity across Blender's 2-6 depth range)."""


class InfoNeRFField(NeRFField):
    """nerfstudio's NeRF field with nerf-pytorch's density: ``activation(raw + N(0, noise_std^2))`` in training.

    With ``relu``, the density head's weights start at zero and its bias at :data:`RELU_INITIAL_DENSITY`. At the
    default initialisation the raw density of a deep NeRF MLP is nearly the same at every point, with a sign that
    depends on the seed: in about half the seeds it is negative everywhere (tests measure this), relu passes no
    gradient, and the field stays empty for the whole run (the renders are pure background). Starting every point
    at a small positive raw density keeps relu differentiable everywhere without changing what the field can learn.
    """

    def __init__(
        self, *args, density_activation: Literal["relu", "softplus"] = "relu", density_noise_std: float = 0.0, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.field_output_density = DensityFieldHead(in_dim=self.mlp_base.get_out_dim(), activation=None)
        if density_activation == "relu":
            assert isinstance(self.field_output_density.net, nn.Linear)
            nn.init.zeros_(self.field_output_density.net.weight)
            nn.init.constant_(self.field_output_density.net.bias, RELU_INITIAL_DENSITY)
        self.density_activation = nn.ReLU() if density_activation == "relu" else nn.Softplus()
        self.density_noise_std = density_noise_std

    def get_density(self, ray_samples: RaySamples) -> Tuple[Tensor, Tensor]:
        raw_density, base_mlp_out = super().get_density(ray_samples)
        if self.training and self.density_noise_std > 0:
            raw_density = raw_density + torch.randn_like(raw_density) * self.density_noise_std
        return self.density_activation(raw_density), base_mlp_out


@dataclass
class InfoNeRFModelConfig(VanillaModelConfig, InfoNeRFLossConfig):
    """InfoNeRF: vanilla NeRF with the ray entropy and information-gain (KL) losses (their options:
    :class:`~nerfstudio_methods.infonerf.losses.InfoNeRFLossConfig`)."""

    _target: Type = field(default_factory=lambda: InfoNeRFModel)
    keep_near_plane_at_eval: bool = True
    """Render evaluation and viewer rays between the same near and far planes as training, as nerf-pytorch (and so
    InfoNeRF) renders its test views. nerfstudio's collider otherwise resets the near plane to 0 outside training,
    which spreads the coarse samples over [0, far] (for Blender, a third of them in front of the 2-6 range the
    fields were trained on) and costs held-out PSNR."""
    coarse_mlp_num_layers: int = 8
    """Depth of the coarse field's base MLP (``netdepth``; DTU uses 4)."""
    fine_mlp_num_layers: int = 8
    """Depth of the fine field's base MLP (``netdepth_fine``)."""
    position_encoding_frequencies: int = 10
    """Frequencies of the positional encoding of positions (NeRF: 10)."""
    position_encoding_max_freq_exp: float = 8.0
    """log2 of the highest positional-encoding frequency (nerfstudio's vanilla NeRF: 8). Lower it with the image
    resolution: frequencies far above what the training pixels resolve let each training ray be fitted on its own
    (no multi-view consistency), which at low resolution turns novel views into noise."""
    mlp_layer_width: int = 256
    """Width of both base MLPs (``netwidth``)."""
    density_activation: Literal["relu", "softplus"] = "relu"
    """Density activation: nerf-pytorch's relu, or nerfstudio's softplus."""
    density_noise_std: float = 0.0
    """Std of the noise added to the raw density during training (``raw_noise_std``; DTU 1.0)."""


class InfoNeRFModel(InfoNeRFLossMixin, NeRFModel):
    """Vanilla NeRF whose training outputs include the fine pass's per-sample opacities (``alphas_fine``), with
    InfoNeRF's losses from :class:`~nerfstudio_methods.infonerf.losses.InfoNeRFLossMixin`."""

    config: InfoNeRFModelConfig
    alphas_output = "alphas_fine"
    accumulation_output = "accumulation_fine"

    def populate_modules(self) -> None:
        super().populate_modules()
        if isinstance(self.collider, NearFarCollider):
            self.collider.reset_near_plane = not self.config.keep_near_plane_at_eval
        position_encoding = NeRFEncoding(
            in_dim=3,
            num_frequencies=self.config.position_encoding_frequencies,
            min_freq_exp=0.0,
            max_freq_exp=self.config.position_encoding_max_freq_exp,
            include_input=True,
        )
        direction_encoding = NeRFEncoding(
            in_dim=3, num_frequencies=4, min_freq_exp=0.0, max_freq_exp=4.0, include_input=True
        )

        def make_field(num_layers: int) -> InfoNeRFField:
            return InfoNeRFField(
                position_encoding=position_encoding,
                direction_encoding=direction_encoding,
                base_mlp_num_layers=num_layers,
                base_mlp_layer_width=self.config.mlp_layer_width,
                density_activation=self.config.density_activation,
                density_noise_std=self.config.density_noise_std,
            )

        self.field_coarse = make_field(self.config.coarse_mlp_num_layers)
        self.field_fine = make_field(self.config.fine_mlp_num_layers)
        self.step = 0

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:
        assert self.field_coarse is not None and self.field_fine is not None
        samples_coarse = self.sampler_uniform(ray_bundle)
        coarse = self.field_coarse.forward(samples_coarse)
        weights_coarse = samples_coarse.get_weights(coarse[FieldHeadNames.DENSITY])

        samples_fine = self.sampler_pdf(ray_bundle, samples_coarse, weights_coarse)
        fine = self.field_fine.forward(samples_fine)
        weights_fine = samples_fine.get_weights(fine[FieldHeadNames.DENSITY])

        rgb_fine = self.renderer_rgb(rgb=fine[FieldHeadNames.RGB], weights=weights_fine)
        accumulation_fine = self.renderer_accumulation(weights_fine)
        depth_fine = self.renderer_depth(weights_fine, samples_fine)
        # nerfstudio's default names (ns-render's --rendered-output-names rgb) show the fine pass, and come first:
        # the viewer's "Output type" starts on the first output the model returns.
        outputs = {
            "rgb": rgb_fine,
            "accumulation": accumulation_fine,
            "depth": depth_fine,
            "rgb_coarse": self.renderer_rgb(rgb=coarse[FieldHeadNames.RGB], weights=weights_coarse),
            "rgb_fine": rgb_fine,
            "accumulation_coarse": self.renderer_accumulation(weights_coarse),
            "accumulation_fine": accumulation_fine,
            "depth_coarse": self.renderer_depth(weights_coarse, samples_coarse),
            "depth_fine": depth_fine,
        }
        if self.training:  # [rays, samples]; left out of full-image renders, where it would be huge
            assert samples_fine.deltas is not None
            outputs["alphas_fine"] = sample_opacities(fine[FieldHeadNames.DENSITY][..., 0], samples_fine.deltas[..., 0])
        return outputs

    # --- evaluation ---------------------------------------------------------------------------------------

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """nerfstudio's usual ``psnr``/``ssim``/``lpips`` (fine pass) plus ``coarse_psnr``, and comparison images."""
        image = self.renderer_rgb.blend_background(batch["image"].to(outputs["rgb_fine"].device))
        rgb_coarse, rgb_fine = outputs["rgb_coarse"], outputs["rgb_fine"]
        assert self.config.collider_params is not None
        near, far = self.config.collider_params["near_plane"], self.config.collider_params["far_plane"]
        depths = [
            colormaps.apply_depth_colormap(
                outputs[f"depth_{level}"], accumulation=outputs[f"accumulation_{level}"], near_plane=near, far_plane=far
            )
            for level in ("coarse", "fine")
        ]
        images = {
            "img": torch.cat([image, rgb_coarse, rgb_fine], dim=1),
            "accumulation": torch.cat(
                [colormaps.apply_colormap(outputs[f"accumulation_{level}"]) for level in ("coarse", "fine")], dim=1
            ),
            "depth": torch.cat(depths, dim=1),
        }

        def to_metric_layout(rgb: Tensor) -> Tensor:  # [H, W, 3] -> [1, 3, H, W]
            return torch.moveaxis(rgb, -1, 0)[None, ...]

        gt, coarse, fine = to_metric_layout(image), to_metric_layout(rgb_coarse), to_metric_layout(rgb_fine)
        ssim = self.ssim(gt, fine)
        assert isinstance(ssim, Tensor)
        metrics = {
            "psnr": float(self.psnr(gt, fine).item()),
            "ssim": float(ssim.item()),
            "lpips": float(self.lpips(gt, fine).item()),
            "coarse_psnr": float(self.psnr(gt, coarse).item()),
        }
        return metrics, images


__all__ = ["InfoNeRFField", "InfoNeRFModel", "InfoNeRFModelConfig"]
