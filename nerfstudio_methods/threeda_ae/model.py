"""``TriplaneModel``: many scenes as tri-planes, rendered in RGB (``rgb-triplanes``) or in an autoencoder's latent
space and decoded (``3da-ae``, ``3da-ae-exploit``).

Data flow of one training step (3da-ae.md §1.1), for a batch of B whole images ``x`` of different scenes:

    planes  = scenes.planes_of(scene of each image)                       [B, 3, C, R, R]
    RGB:     rgb~ = render(planes, rays at full resolution)                loss_rgb = MSE(rgb~, x)
    latent:  z~   = render(planes, rays at 1/f resolution) * 2 - 1         in [-1, 1], f = the encoder's downscale
             loss_latent  = MSE(n(E(x)), z~)          E(x): cached encoder means while E is frozen, samples otherwise
             loss_decoded = MSE(D(n^-1(z~)), x)       (3Da-AE's alpha_d; x in [-1, 1])
             loss_autoencoder = MSE(D(E(x)), x)       (keeps the autoencoder an autoencoder)
    both:    loss_tv = TV(planes)

Training runs through ``phases`` (an ordered mapping, 3da-ae.md §1.5): each phase has a length in epochs, loss
weights, learning rates per parameter group (a group without one is frozen), an exponential decay per epoch, an
optional point after which the MLP is frozen, and an optional fresh MLP. The stage-1 schedule is ``autoencoder``
(only without pretrained weights: the autoencoder alone, 3da-ae.md §4), ``latent`` (the released "pretrain": frozen
autoencoder, latent loss and TV) and ``joint`` (the released "train": every loss, everything trained). Stage 2 is
``latent`` then ``decoder`` (the decoder learns to decode the new scenes; the encoder stays frozen).

Rendering for the viewer, ``ns-render`` and ``ns-eval`` (:meth:`get_outputs_for_camera`) shows the camera's scene
(``metadata["scene_index"]``), or ``render_scene`` for cameras without one, always as RGB (decoded for latents).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Literal, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps
from nerfstudio.utils.rich_utils import CONSOLE
from nerfstudio.viewer.viewer_elements import ViewerSlider
from torch import Tensor, nn
from torchmetrics.functional import structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

from nerfstudio_methods.checkpoints import load_old_state_names
from nerfstudio_methods.grouped_render import render_grouped
from nerfstudio_methods.input_errors import DatasetFormatError
from nerfstudio_methods.multiscene import (
    broadcast_from_first_process,
    scene_indices_of_cameras,
    scene_indices_of_rays,
)
from nerfstudio_methods.threeda_ae.autoencoder import (
    SD_TANH_SCALE,
    AutoencoderConfig,
    TanhNormalizer,
    autoencoder_downscale,
    build_autoencoder,
    decode_in_tiles,
)
from nerfstudio_methods.threeda_ae.renderer import TriplaneRenderer, rays_of_cameras
from nerfstudio_methods.threeda_ae.triplanes import SceneTriplanes, TriplaneDecoder, scene_id_bytes, total_variation

PARAM_GROUPS = ("planes", "coefficients", "global_bases", "mlp", "encoder", "decoder")
SHARED_GROUPS = ("global_bases", "mlp", "encoder", "decoder")
OLD_STATE_NAMES = {"normaliser.": "normalizer."}
"""State names of checkpoints written before a rename (old prefix: new prefix); such checkpoints load as before."""
"""Groups every scene uses (the rest are per scene): averaged across processes."""


@dataclass
class PhaseConfig:
    """One training phase (see the module doc)."""

    epochs: float = 1.0
    """Length in epochs: passes over the training images of the scenes this process trains."""
    losses: Dict[str, float] = field(default_factory=dict)
    """Weights of ``rgb``, ``latent``, ``decoded``, ``autoencoder`` and ``tv``; absent terms are off."""
    learning_rates: Dict[str, float] = field(default_factory=dict)
    """Adam learning rates of ``planes``, ``coefficients`` (with the biases), ``global_bases``, ``mlp``,
    ``encoder`` and ``decoder``; absent or zero freezes the group."""
    lr_decay_per_epoch: float = 1.0
    """Learning rates are multiplied by this once per epoch (3Da-AE stage 2: 0.94157)."""
    mlp_frozen_after: float = 1.0
    """Fraction of the phase after which the MLP is frozen (3Da-AE stage 1 "pretrain": epoch 45 of 50, 0.9)."""
    reset_mlp: bool = False
    """Start the phase with a fresh MLP (3Da-AE stage 2, ``tinymlp_random_init``)."""


@dataclass
class TriplaneModelConfig(ModelConfig):
    """Tri-plane scenes in RGB or in a latent space (see the module doc). Defaults: 3da-ae.md §1.3-1.4."""

    _target: Type = field(default_factory=lambda: TriplaneModel)
    space: Literal["rgb", "latent"] = "latent"
    """Render RGB images (the RGB tri-plane baseline) or latent images decoded by the autoencoder."""
    triplane_resolution: int = 64
    local_channels: int = 10
    """Per-scene plane channels (3Da-AE ``n_local_features`` 10 with shared bases, 32 without)."""
    global_channels: int = 22
    """Channels of the shared global bases (``n_global_features``)."""
    num_global_bases: int = 50
    """M shared bases mixed per scene (50 in 3Da-AE's run configs; 0 gives plain per-scene tri-planes)."""
    plane_init_scale: float = 1.0
    """Planes start as ``randn * plane_init_scale`` (3Da-AE: randn)."""
    mlp_hidden: int = 64
    near: float = 0.5
    far: float = 2.1
    """Ray interval (3Da-AE ``ray_start`` / ``ray_end`` for SRN cars; cameras at radius 1.3)."""
    num_samples: int = 48
    num_importance_samples: int = 48
    eg3d_plane_axes: bool = False
    """Reproduce EG3D's plane-axis bug (planes XY, XZ, ZX instead of XY, XZ, YZ; 3da-ae.md §1.3)."""
    rgb_background: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    """SRN renders on white."""
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    phases: Dict[str, PhaseConfig] = field(default_factory=dict)
    render_scene: int = 0
    """The scene shown for cameras that carry no scene index: ``ns-render`` camera paths, and the viewer's start
    (its "Scene" slider changes it). To render another scene, set ``render_scene`` in a copy of the run's
    config.yml and pass that copy to ``ns-render --load-config``."""
    plane_seed: int = 0
    """Seed of the planes' initial values (one stream per scene)."""
    calibration_images: int = 256
    """Training images whose encoder latents set the normaliser's scale (autoencoder trained here)."""
    eval_chunk_rays: int = 16384
    """Rays rendered at once for a full image (viewer, ``ns-eval``)."""


@dataclass(frozen=True)
class PhaseState:
    name: str
    config: PhaseConfig
    index: int
    step_in_phase: int
    steps: int
    steps_per_epoch: int


class TriplaneModel(Model):
    """See the module doc."""

    config: TriplaneModelConfig
    normalizer: TanhNormalizer
    background: Tensor
    latent_space_ready: Tensor
    scene_ids: Tensor
    scene_images_trained: Tensor
    scene_train_seconds: Tensor
    scene_trained_by_ranks: Tensor

    def populate_modules(self) -> None:
        super().populate_modules()
        metadata = self.kwargs.get("metadata") or {}
        names = list(metadata.get("scene_names") or [])
        self.num_scenes = int(metadata.get("num_scenes", len(names) or 1))
        if names and len(names) != self.num_scenes:
            raise ValueError(f"{len(names)} scene names for {self.num_scenes} scenes")
        config = self.config
        self.scenes = SceneTriplanes(
            num_scenes=self.num_scenes,
            resolution=config.triplane_resolution,
            local_channels=config.local_channels,
            global_channels=config.global_channels,
            num_global_bases=config.num_global_bases,
            init_scale=config.plane_init_scale,
            seed=config.plane_seed,
        )
        self.latent = config.space == "latent"
        self.autoencoder: Optional[nn.Module] = None
        self.pretrained_autoencoder = False
        out_channels = 3
        if self.latent:
            self.autoencoder, self.pretrained_autoencoder = build_autoencoder(config.autoencoder)
            out_channels = int(self.autoencoder.config.latent_channels)  # type: ignore[attr-defined]
            self.downscale = autoencoder_downscale(self.autoencoder)
            self.normalizer = TanhNormalizer(config.autoencoder.tanh_scale or SD_TANH_SCALE)
            load_old_state_names(self, OLD_STATE_NAMES)
        self.mlp = TriplaneDecoder(self.scenes.channels, out_channels, hidden=config.mlp_hidden)
        self.renderer = TriplaneRenderer(
            self.mlp,
            near=config.near,
            far=config.far,
            num_samples=config.num_samples,
            num_importance_samples=config.num_importance_samples,
            eg3d_plane_axes=config.eg3d_plane_axes,
        )
        # The background in the renderer's [0, 1] units: white for RGB, (n(E(white)) + 1) / 2 for latents, which is
        # measured once the autoencoder is ready (``calibrate_latent_space``).
        background = torch.tensor(config.rgb_background) if not self.latent else torch.full((out_channels,), 0.5)
        self.register_buffer("background", background.float())
        self.register_buffer("latent_space_ready", torch.tensor(False))
        # Per-scene bookkeeping, kept in checkpoints: the scenes' ids (to keep stage-2 scenes apart from stage 1's),
        # the images each scene was trained on, the seconds of training spent on it, and which ranks trained it.
        ids = torch.stack([scene_id_bytes(n) for n in names]) if names else torch.zeros(self.num_scenes, 16)
        self.register_buffer("scene_ids", ids.to(torch.uint8))
        self.register_buffer("scene_images_trained", torch.zeros(self.num_scenes, dtype=torch.float64))
        self.register_buffer("scene_train_seconds", torch.zeros(self.num_scenes, dtype=torch.float64))
        self.register_buffer("scene_trained_by_ranks", torch.zeros(self.num_scenes, dtype=torch.int64))
        if not 0 <= config.render_scene < self.num_scenes:
            raise DatasetFormatError(
                "render_scene", f"{config.render_scene} is not a scene of this run (it has {self.num_scenes})"
            )
        self.latent_cache: dict[int, Tensor] = {}
        # The viewer's "Scene" slider: which scene cameras without a scene index show (the viewer's own camera).
        self.scene_slider = ViewerSlider(
            name="Scene",
            default_value=int(config.render_scene),
            min_value=0,
            max_value=max(self.num_scenes - 1, 1),
            step=1,
            hint="the scene the viewer shows (this run's scene index)",
        )
        self.steps_per_epoch = 1
        self.rank = 0
        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.lpips = LearnedPerceptualImagePatchSimilarity(normalize=True)
        self._step_started = 0.0
        self._last_scenes: Optional[Tensor] = None
        self._current_phase: Optional[PhaseState] = None
        # Set by the pipeline: the training images' size and focal length, and a source of training images (for the
        # normaliser).
        self.calibration_size: Optional[Tuple[int, int]] = None
        self.training_focal: Optional[float] = None
        self.calibration_source: Optional[Callable[[int], Tensor]] = None

    # --- parameters and phases -------------------------------------------------------------------------------

    def parameter_groups(self) -> Dict[str, List[nn.Parameter]]:
        """Every trainable tensor by group name (see :class:`PhaseConfig`), empty groups left out."""
        groups: Dict[str, List[nn.Parameter]] = {
            "planes": list(self.scenes.local_planes),
            "coefficients": list(self.scenes.coefficients) + list(self.scenes.biases),
            "global_bases": [self.scenes.global_bases] if self.scenes.global_bases is not None else [],
            "mlp": list(self.mlp.parameters()),
        }
        if self.autoencoder is not None:
            ae: Any = self.autoencoder
            groups["encoder"] = list(ae.encoder.parameters()) + list(ae.quant_conv.parameters())
            groups["decoder"] = list(ae.decoder.parameters()) + list(ae.post_quant_conv.parameters())
        return {name: params for name, params in groups.items() if params}

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        return self.parameter_groups()

    def shared_parameters(self) -> List[nn.Parameter]:
        """Parameters every scene uses (all-reduced across processes): MLP, global bases, autoencoder."""
        groups = self.parameter_groups()
        return [p for name in SHARED_GROUPS for p in groups.get(name, [])]

    def active_phases(self) -> List[Tuple[str, PhaseConfig]]:
        """The phases that run: ``autoencoder`` only when the autoencoder is trained here; zero-length ones skipped."""
        phases = []
        for name, phase in self.config.phases.items():
            if name == "autoencoder" and (not self.latent or self.pretrained_autoencoder):
                continue
            if phase.epochs > 0:
                phases.append((name, phase))
        if not phases:
            raise ValueError("no training phase has a positive length (--pipeline.model.phases.NAME.epochs)")
        return phases

    def phase_steps(self) -> List[int]:
        # Rounded before ceil: 1.1 epochs of 50 steps is 55.00000000000001 in floating point, and 55 steps.
        return [max(1, math.ceil(round(phase.epochs * self.steps_per_epoch, 6))) for _, phase in self.active_phases()]

    def total_steps(self) -> int:
        return sum(self.phase_steps())

    def phase_at(self, step: int) -> PhaseState:
        """The phase that ``step`` belongs to (steps past the end stay in the last phase)."""
        start = 0
        phases = self.active_phases()
        for index, ((name, phase), steps) in enumerate(zip(phases, self.phase_steps())):
            if step < start + steps or index == len(phases) - 1:
                return PhaseState(name, phase, index, step - start, steps, self.steps_per_epoch)
            start += steps
        raise AssertionError("unreachable")

    def learning_rates_at(self, state: PhaseState) -> Dict[str, float]:
        """Each group's learning rate at a step (0 = frozen): phase rates, epoch decay, the MLP's freeze point."""
        epoch = state.step_in_phase // max(state.steps_per_epoch, 1)
        decay = state.config.lr_decay_per_epoch**epoch
        rates = {name: state.config.learning_rates.get(name, 0.0) * decay for name in PARAM_GROUPS}
        if state.step_in_phase >= round(state.config.mlp_frozen_after * state.steps, 6):  # 0.07 * 100 > 7
            rates["mlp"] = 0.0
        return rates

    def loss_weight(self, name: str) -> float:
        state = self._current_phase or self.phase_at(0)
        return float(state.config.losses.get(name, 0.0))

    def enter_step(self, step: int, optimizers: Any) -> None:
        """Apply the phase of ``step``: learning rates, frozen groups, a fresh MLP or a calibrated latent space."""
        state = self.phase_at(step)
        entering = self._current_phase is None or self._current_phase.name != state.name
        if entering:
            CONSOLE.print(
                f"3Da-AE: phase '{state.name}' ({state.index + 1}/{len(self.active_phases())}) from step {step}: "
                f"{state.steps} steps, losses {state.config.losses}"
            )
            if state.config.reset_mlp and state.step_in_phase == 0:
                self.mlp.reset_parameters(seed=self.config.plane_seed + 17 * (state.index + 1))
                for param in self.mlp.parameters():
                    optimizers.optimizers["mlp"].state.pop(param, None)
            if state.config.learning_rates.get("encoder", 0.0) > 0:
                self.latent_cache.clear()  # cached encoder means are stale once the encoder trains
        self._current_phase = state
        if self.latent and state.name != "autoencoder" and not bool(self.latent_space_ready):
            self.calibrate_latent_space()
        rates = self.learning_rates_at(state)
        for name, params in self.parameter_groups().items():
            trainable = rates.get(name, 0.0) > 0
            for param in params:
                param.requires_grad_(trainable)
            optimizer = optimizers.optimizers.get(name)
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = rates.get(name, 0.0)

    # --- latent space ----------------------------------------------------------------------------------------

    def encoder_trains(self) -> bool:
        state = self._current_phase or self.phase_at(0)
        return self.latent and self.learning_rates_at(state).get("encoder", 0.0) > 0

    def encode(self, images: Float[Tensor, "batch 3 h w"], sample: bool) -> Float[Tensor, "batch c hl wl"]:
        """Raw latents of images in [-1, 1]: posterior samples, or means."""
        assert self.autoencoder is not None
        distribution = self.autoencoder.encode(images).latent_dist  # type: ignore[operator]
        return distribution.sample() if sample else distribution.mean

    def decode(self, latents: Float[Tensor, "batch c hl wl"]) -> Float[Tensor, "batch 3 h w"]:
        assert self.autoencoder is not None
        return self.autoencoder.decode(latents).sample  # type: ignore[operator]

    def decode_view(self, latent: Float[Tensor, "1 c hl wl"]) -> Float[Tensor, "1 3 h w"]:
        """An image in [-1, 1] from a rendered latent image of any size (normalised), decoded in tiles of the training
        images' latent grid, the only size the decoder learned (:func:`decode_in_tiles`)."""
        if self.calibration_size is None:
            return self.decode(self.normalizer.inverse(latent))
        tile = (self.calibration_size[0] // self.downscale, self.calibration_size[1] // self.downscale)
        return decode_in_tiles(
            lambda normalized: self.decode(self.normalizer.inverse(normalized)),
            latent,
            tile,
            fill=self.background * 2 - 1,  # the empty background's latent, in the renderer's [0, 1] units
            factor=self.downscale,
        )

    def encoder_means(self, images: Float[Tensor, "batch 3 h w"], keys: List[int]) -> Tensor:
        """Encoder means of training images, cached by image index while the encoder is frozen."""
        missing = [i for i, key in enumerate(keys) if key not in self.latent_cache]
        if missing:
            with torch.no_grad():
                means = self.encode(images[missing], sample=False)
            for i, mean in zip(missing, means):
                self.latent_cache[keys[i]] = mean
        return torch.stack([self.latent_cache[key] for key in keys])

    @torch.no_grad()
    def calibrate_latent_space(self, images: Optional[Tensor] = None) -> None:
        """Set the normaliser's scale and the latent background, once the autoencoder is final enough.

        The scale: ``tanh_scale`` when given, 0.02 for pretrained SD weights, else measured so that ``n(z)`` of the
        training images' latents has the standard deviation ``latent_target_std`` (3da-ae.md §4). The background:
        ``n(E(white))`` (3Da-AE's latent ``bg_color``, 3da-ae.md §1.3)."""
        assert self.autoencoder is not None
        config = self.config.autoencoder
        if config.tanh_scale is not None:
            scale = config.tanh_scale
        elif self.pretrained_autoencoder:
            scale = SD_TANH_SCALE
        else:
            images = images if images is not None else self.calibration_images()
            if images is None:
                raise RuntimeError("no training images to calibrate the latent normaliser with")
            latents = torch.cat([self.encode(chunk, sample=False) for chunk in images.split(16)])
            scale = TanhNormalizer.scale_for(latents, config.latent_target_std)
        self.normalizer.scale.fill_(scale)
        size = self.calibration_size or (128, 128)
        white = torch.ones(1, 3, *size, device=self.device)
        background = self.normalizer(self.encode(white, sample=False)).mean(dim=(0, 2, 3))
        self.background.copy_((background + 1) / 2)
        # Each process measured its own scenes' latents: all take rank 0's values, as for the shared weights.
        broadcast_from_first_process([self.normalizer.scale, self.background])
        scale = float(self.normalizer.scale)
        background = self.background * 2 - 1
        self.latent_space_ready.fill_(True)
        CONSOLE.print(
            f"3Da-AE: latent normaliser tanh({scale:.4g} z); latent background n(E(white)) = "
            f"{[round(v, 4) for v in background.tolist()]}"
        )

    def calibration_images(self) -> Optional[Tensor]:
        """Up to ``calibration_images`` training images in [-1, 1], from the pipeline's source."""
        source = self.calibration_source
        return None if source is None else source(self.config.calibration_images).to(self.device) * 2 - 1

    # --- rendering -------------------------------------------------------------------------------------------

    def render_cameras(
        self,
        cameras: Cameras,
        scenes: Int[Tensor, " batch"],
        chunk: Optional[int] = None,
        planes: Optional[Float[Tensor, "batch 3 c r r"]] = None,
    ) -> Dict[str, Tensor]:
        """Images of ``cameras[b]`` through scene ``scenes[b]``: ``values`` [B, C, h, w] in [0, 1] units, plus
        ``accumulation`` and ``depth`` [B, 1, h, w]. Latent models render at 1/f of the cameras' resolution.
        ``planes``: the scenes' composed tri-planes when the caller has them already."""
        if self.latent:
            cameras = cameras[torch.arange(cameras.shape[0])]
            cameras.rescale_output_resolution(1.0 / self.downscale)
        height, width = int(cameras.height[0]), int(cameras.width[0])
        planes = self.scenes.planes_of(scenes) if planes is None else planes
        bundle = rays_of_cameras(cameras.to(self.device))
        if chunk is None or bundle.shape[1] <= chunk:
            rendered = [self.renderer(planes, bundle, self.background)]
        else:
            rendered = [
                self.renderer(planes, bundle[:, start : start + chunk], self.background)
                for start in range(0, bundle.shape[1], chunk)
            ]
        batch = cameras.shape[0]

        def image(name: str) -> Tensor:
            values = torch.cat([getattr(r, name) for r in rendered], dim=1)
            return values.reshape(batch, height, width, -1).permute(0, 3, 1, 2)

        return {"values": image("values"), "accumulation": image("accumulation"), "depth": image("depth")}

    def get_train_outputs(self, cameras: Cameras, batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Everything the current phase's losses need for a batch of whole images (module doc): image ``b`` is
        rendered and supervised in the scene its camera ``cameras[b]`` carries."""
        images = batch["image"].permute(0, 3, 1, 2)  # [B, 3, H, W] in [0, 1]
        scenes = self.scenes_of_cameras(cameras).to(self.device)
        self._last_scenes = scenes
        outputs: Dict[str, Tensor] = {"target_rgb": images}
        needs_render = any(self.loss_weight(n) > 0 for n in ("rgb", "latent", "decoded", "tv"))
        if needs_render:
            outputs["planes"] = self.scenes.planes_of(scenes)  # composed once: rendered and regularised (TV)
        if not self.latent:
            rendered = self.render_cameras(cameras, scenes, planes=outputs.get("planes"))
            outputs["rgb"] = rendered["values"]
            return outputs
        signed = images * 2 - 1
        encoder_trains = self.encoder_trains()
        latents = None
        if self.loss_weight("latent") > 0 or self.loss_weight("autoencoder") > 0:
            if encoder_trains:
                latents = self.encode(signed, sample=True)
            else:
                latents = self.encoder_means(signed, [int(i) for i in batch["image_idx"].tolist()])
            outputs["target_latent"] = self.normalizer(latents)
        if self.loss_weight("autoencoder") > 0:
            assert latents is not None
            outputs["reconstruction"] = (self.decode(latents) + 1) / 2
        if self.loss_weight("latent") > 0 or self.loss_weight("decoded") > 0:
            rendered = self.render_cameras(cameras, scenes, planes=outputs.get("planes"))
            outputs["latent"] = rendered["values"] * 2 - 1
            if self.loss_weight("decoded") > 0:
                outputs["decoded"] = (self.decode(self.normalizer.inverse(outputs["latent"])) + 1) / 2
        return outputs

    def get_outputs(self, ray_bundle: RayBundle | Cameras) -> Dict[str, Any]:
        """Per-ray channels of a flat bundle (rays grouped by their scene). Latent channels cannot be decoded per
        ray: whole images go through :meth:`get_outputs_for_camera`."""
        if isinstance(ray_bundle, Cameras):
            return self.get_outputs_for_camera(ray_bundle)
        flat = ray_bundle.flatten()

        def render_scene(scene: int, rows: Tensor) -> Dict[str, Tensor]:
            rendered = self.renderer(self.scenes.planes_of(torch.tensor([scene])), flat[rows][None], self.background)
            return {"values": rendered.values[0], "accumulation": rendered.accumulation[0]}

        merged = render_grouped(scene_indices_of_rays(flat, self.viewer_scene()), render_scene)
        key = "latent" if self.latent else "rgb"
        shape = tuple(ray_bundle.shape)
        return {key: merged["values"].reshape(*shape, -1), "accumulation": merged["accumulation"].reshape(*shape, 1)}

    def viewer_scene(self) -> int:
        """The scene of cameras and rays that carry none: the viewer's Scene slider (it starts at render_scene); a
        one-scene run's slider still spans 0..1."""
        return min(max(int(self.scene_slider.value), 0), self.num_scenes - 1)

    def scenes_of_cameras(self, cameras: Cameras) -> Int[Tensor, " n"]:
        """The scene of each camera of a flat batch: its ``metadata["scene_index"]``, or :meth:`viewer_scene`."""
        return scene_indices_of_cameras(cameras, self.viewer_scene())

    def scene_of_camera(self, camera: Cameras) -> int:
        """The scene one camera shows (:meth:`scenes_of_cameras`)."""
        return int(self.scenes_of_cameras(camera)[0])

    def at_training_focal(self, camera: Cameras) -> Cameras:
        """``camera`` (one) rescaled to the training cameras' focal length, so each latent pixel spans the angle it
        spanned in training: the decoder only learned latents at that scale. The viewer's default Max res of 512 on a
        64 px training run gives latents 8x finer, which decode into jagged shapes and wrong colours (issue 26); the
        decoded image is enlarged back to the camera's size. Its sides stay within [2 f, 4 x the training size],
        f the autoencoder's downscale: at least two latents, and bounded work for a very wide view."""
        if self.training_focal is None or self.calibration_size is None:
            return camera
        height, width = float(camera.height[0]), float(camera.width[0])
        scale = self.training_focal / float(camera.fy[0])
        scale = max(scale, 2 * self.downscale / min(height, width))
        scale = min(scale, 4 * max(self.calibration_size) / max(height, width))
        if abs(scale - 1.0) < 1e-6:
            return camera
        rescaled = camera[torch.arange(1)]  # a copy: rescale_output_resolution changes the cameras in place
        rescaled.rescale_output_resolution(scale)
        return rescaled

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box: Any = None) -> Dict[str, Tensor]:
        """One RGB image ``[H, W, 3]`` of the camera's scene (decoded for latent models), with opacity and depth."""
        camera = camera.reshape((1,)) if camera.shape != (1,) else camera
        scene = torch.tensor([self.scene_of_camera(camera)])
        height, width = int(camera.height[0]), int(camera.width[0])
        rendered_camera = self.at_training_focal(camera) if self.latent else camera
        rendered = self.render_cameras(rendered_camera, scene, chunk=self.config.eval_chunk_rays)
        latent = rendered["values"] * 2 - 1 if self.latent else None
        rgb = (self.decode_view(latent) + 1) / 2 if latent is not None else rendered["values"]

        def full_size(image: Tensor) -> Tensor:
            if image.shape[-2:] != (height, width):
                image = F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False)
            return image[0].permute(1, 2, 0)

        # rgb first: the viewer's "Output type" starts on the first output.
        outputs = {
            "rgb": full_size(rgb).clamp(0, 1),
            "accumulation": full_size(rendered["accumulation"]),
            "depth": full_size(rendered["depth"]),
        }
        if latent is not None:
            # The first three latent channels, enlarged to the image (nearest): what the tri-planes render.
            shown = F.interpolate((latent[:, :3] + 1) / 2, size=(height, width), mode="nearest")
            outputs["latent"] = shown[0].clamp(0, 1).permute(1, 2, 0)
        return outputs

    # --- losses and metrics ----------------------------------------------------------------------------------

    def get_loss_dict(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor], metrics_dict: Optional[Dict[str, Tensor]] = None
    ) -> Dict[str, Tensor]:
        losses: Dict[str, Tensor] = {}
        target = outputs["target_rgb"]
        if self.loss_weight("rgb") > 0 and "rgb" in outputs:
            losses["rgb_loss"] = self.loss_weight("rgb") * F.mse_loss(outputs["rgb"], target)
        if self.loss_weight("latent") > 0:
            losses["latent_loss"] = self.loss_weight("latent") * F.mse_loss(outputs["latent"], outputs["target_latent"])
        # 3Da-AE compares decoded images with x in [-1, 1]: four times the MSE in [0, 1].
        if self.loss_weight("decoded") > 0:
            losses["decoded_loss"] = self.loss_weight("decoded") * 4 * F.mse_loss(outputs["decoded"], target)
        if self.loss_weight("autoencoder") > 0:
            error = F.mse_loss(outputs["reconstruction"], target)
            losses["autoencoder_loss"] = self.loss_weight("autoencoder") * 4 * error
        if self.loss_weight("tv") > 0 and "planes" in outputs:
            losses["tv_loss"] = self.loss_weight("tv") * total_variation(outputs["planes"])
        return losses

    def get_metrics_dict(self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        metrics: Dict[str, Tensor] = {}
        target = outputs["target_rgb"]
        for key in ("rgb", "decoded", "reconstruction"):
            if key in outputs:
                name = "psnr" if key in ("rgb", "decoded") else "autoencoder_psnr"
                metrics[name] = self.psnr(outputs[key].detach().clamp(0, 1), target)
        if "latent" in outputs and "target_latent" in outputs:
            # Latent PSNR on [-1, 1] (peak^2 = 4), as 3Da-AE's evaluator.
            error = F.mse_loss(outputs["latent"].detach(), outputs["target_latent"].detach())
            metrics["latent_psnr"] = 10 * torch.log10(4 / error.clamp_min(1e-12))
        return metrics

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """PSNR, SSIM and LPIPS (when its weights are local) in RGB, after decoding for latent models."""
        image = batch["image"][..., :3].to(outputs["rgb"].device)
        image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        rgb = outputs["rgb"]
        gt, predicted = image.permute(2, 0, 1)[None], rgb.permute(2, 0, 1)[None]
        ssim = structural_similarity_index_measure(predicted, gt, data_range=1.0)
        assert isinstance(ssim, Tensor)
        metrics = {
            "psnr": float(self.psnr(predicted, gt)),
            "ssim": float(ssim),
            "lpips": float(self.lpips(predicted, gt)),
        }
        images = {
            "img": torch.cat([image, rgb], dim=1),
            "accumulation": colormaps.apply_colormap(outputs["accumulation"]),
            "depth": colormaps.apply_depth_colormap(
                outputs["depth"],
                accumulation=outputs["accumulation"],
                near_plane=self.config.near,
                far_plane=self.config.far,
            ),
        }
        return metrics, images

    # --- per-scene bookkeeping and training callbacks --------------------------------------------------------

    def record_trained_images(self, scenes: Int[Tensor, " batch"], seconds: float) -> None:
        """Attribute a step's images and wall time to their scenes (evenly per image)."""
        counts = torch.bincount(scenes.cpu().long(), minlength=self.num_scenes).to(torch.float64)
        self.scene_images_trained += counts.to(self.scene_images_trained.device)
        share = counts * (seconds / max(float(counts.sum()), 1.0))
        self.scene_train_seconds += share.to(self.scene_train_seconds.device)
        trained = (counts > 0).to(self.scene_trained_by_ranks.device)
        self.scene_trained_by_ranks |= trained.long() * (1 << self.rank)

    def scene_memory(self, optimizers: Any = None) -> Dict[str, float]:
        """Bytes of trained state (parameters and Adam moments) per scene and shared (mean over the scenes)."""

        def state_bytes(params: List[nn.Parameter]) -> int:
            total = sum(p.numel() * p.element_size() for p in params)
            if optimizers is not None:
                for optimizer in optimizers.optimizers.values():
                    for p in params:
                        for value in optimizer.state.get(p, {}).values():
                            if isinstance(value, Tensor) and value.dim() > 0:
                                total += value.numel() * value.element_size()
            return total

        per_scene = [state_bytes(self.scenes.scene_parameters(s)) for s in range(self.num_scenes)]
        shared = state_bytes(self.shared_parameters())
        return {
            "per_scene_bytes_mean": float(sum(per_scene) / len(per_scene)),
            "shared_bytes": float(shared),
            "effective_per_scene_bytes": float((sum(per_scene) + shared) / len(per_scene)),
        }

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        optimizers = training_callback_attributes.optimizers

        def before(step: int) -> None:
            self.enter_step(step, optimizers)
            self._step_started = time.perf_counter()

        def after(step: int) -> None:
            if self._last_scenes is not None:
                self.record_trained_images(self._last_scenes, time.perf_counter() - self._step_started)
                self._last_scenes = None

        return [
            TrainingCallback(where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], func=before),
            TrainingCallback(where_to_run=[TrainingCallbackLocation.AFTER_TRAIN_ITERATION], func=after),
        ]


def checksum(params: List[Tensor]) -> str:
    """sha256 of the parameters' bytes: equal across processes exactly when the weights are bit-identical."""
    digest = hashlib.sha256()
    for param in params:
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


__all__ = ["PhaseConfig", "TriplaneModel", "TriplaneModelConfig", "checksum"]
