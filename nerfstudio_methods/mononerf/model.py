"""``MonoNeRFModel``: DynamicNeRF's static + dynamic radiance fields, conditioned on video and image features.

Data flow, in the style of nerfstudio's ``nerfacto.py`` (mononerf.md §1 and §6):

1. Rays of the ``dynamic-scene-data`` world go to NDC (near plane 1, unnormalised directions) and are sampled
   uniformly (stratified in training) at ``num_samples`` depths ``z`` in [0, 1].
2. Static branch (:class:`.field.StaticField`): each sample is projected into a frame's camera and reads that frame's
   ResNet-18 features (a random frame in stage 1, the ray's frame otherwise).
3. Dynamic branch (:class:`.field.DynamicField`): the trunk ``G(x, t, c)`` is also the velocity field; integrating it
   one frame forward and backward (torchdiffeq ``odeint``, or the released 2-step Euler) gives each sample's positions
   ``x_f``, ``x_b`` in the neighbouring frames. The sample reads the video features of its frame at ``x`` and of the
   neighbouring frames at ``x_f`` / ``x_b`` (flow-based feature aggregation), then density, colour and the blending
   weight ``b``.
4. DynamicNeRF compositing (:mod:`.compositing`) of the blended, static-only and dynamic-only images. In training
   (stage 2) the dynamic branch is queried again at ``(x_f, f + 1)`` and ``(x_b, f - 1)`` for the warped images,
   the cycle and the second-order terms, and the weighted ``x_f`` / ``x_b`` project to the induced optical flow.

Two stages run in one ``ns-train`` (mononerf.md §1 "Losses"): for ``static_steps`` steps only the static branch
trains (on static pixels); afterwards it is frozen and the dynamic branch and velocity field train with every loss.

Feature volumes are computed once per scene by the frozen encoders (their weights are part of the checkpoint, so a
randomly initialised encoder gives the same features at ``ns-eval`` as in training) and cached; the cache is rebuilt
after a checkpoint is loaded. Rays carry their scene (``metadata["scene_index"]``) and time; rays without either (the
viewer, ``ns-render interpolate``) use ``default_scene`` / ``default_time``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type, Union

import torch
from jaxtyping import Float, Int
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor, nn

from dataparsers.dynamic_scene import SceneVideo
from nerfstudio_methods.evaluation import image_quality
from nerfstudio_methods.grouped_render import render_grouped
from nerfstudio_methods.input_errors import DatasetFormatError
from nerfstudio_methods.mononerf import losses
from nerfstudio_methods.mononerf.compositing import composite, composite_dynamic, sample_deltas
from nerfstudio_methods.mononerf.encoders import ImageEncoder, VideoEncoder
from nerfstudio_methods.mononerf.features import SceneFeatures, encode_scene
from nerfstudio_methods.mononerf.field import (
    DynamicField,
    DynamicQuery,
    SceneVelocity,
    StaticField,
    clamp_frames,
    network_time,
)
from nerfstudio_methods.mononerf.motion_masks import dilate_mask  # noqa: F401 (benchmarks import it from here)
from nerfstudio_methods.mononerf.pretrained import pretrained_weights
from nerfstudio_methods.mononerf.projection import project_points, sample_feature_maps
from nerfstudio_methods.mononerf.released_metrics import released_psnr_ssim
from nerfstudio_methods.mononerf.sampler import ndc_depths
from nerfstudio_methods.mononerf.trajectory import TrajectoryConfig, one_frame_trajectories
from nerfstudio_methods.multiscene import scene_indices_of_rays
from nerfstudio_methods.rays import ndc_rays, ndc_to_world
from nerfstudio_methods.timeline import continuous_frame, nearest_frame, ray_times


@dataclass
class MonoNeRFModelConfig(ModelConfig, TrajectoryConfig, losses.MonoNeRFLossConfig):
    """MonoNeRF; defaults are the released code's (mononerf.md §1 "Schedule / hyper-parameters")."""

    _target: Type = field(default_factory=lambda: MonoNeRFModel)
    enable_collider: bool = False
    """Rays are sampled in NDC z in [0, 1]; no collider."""

    # --- sampling and compositing ---
    num_samples: int = 64
    """Samples per ray, uniform in NDC (``N_samples``; no importance samples)."""
    perturb: bool = True
    """Stratified sampling in training (``perturb=1``)."""
    raw_noise_std: float = 1.0
    """Std of the noise added to raw densities in training (``raw_noise_std``)."""

    # --- encoders ---
    video_encoder: Literal["slowonly-r50", "small"] = "slowonly-r50"
    """SlowOnly ResNet3D-50 (832-channel stem+res2+res3 features) or a small 3D CNN for CPU runs."""
    video_encoder_checkpoint: Optional[Path] = None
    """mmaction2 Kinetics-400 SlowOnly checkpoint (.pth) loaded strictly into the R50; random weights without it."""
    image_encoder: Literal["resnet18", "small"] = "resnet18"
    """torchvision ResNet-18 (ImageNet weights when in the torch hub cache) or a small 2D CNN."""

    # --- networks (mlp_static / mlp_dynamic) ---
    hidden_width: int = 256
    """Width of both MLPs (``d_hidden``)."""
    static_blocks: int = 5
    """Residual blocks of the static MLP (``mlp_static.n_blocks``)."""
    dynamic_global_blocks: int = 2
    """Trunk blocks that see the global code (``n_global_blocks``); the velocity reads the trunk after them."""
    dynamic_blocks: int = 3
    """Residual blocks of the dynamic MLP after the trunk (``mlp_dynamic.n_blocks``)."""
    combine_layer: int = 3
    """Blocks that receive pixel-aligned features."""
    code_channels: int = 256
    """Size of the per-video global code ``c``."""
    code_hidden: int = 4096
    """Hidden width of ``ode_fc`` (pooled res5 -> c)."""
    use_temporal_features: bool = True
    """Flow-based feature aggregation: block 0 also reads the neighbouring frames' features at ``x_f`` / ``x_b``."""
    use_features: bool = True
    """False: no video / image features and no global code; positional encoding only (DynamicNeRF-style), the
    benchmark's baseline."""
    random_static_frame: bool = True
    """Stage 1 reads the static features from a random frame (``random_static_frame``)."""

    # --- stages (the loss weights: losses.MonoNeRFLossConfig) ---
    blending_warmup_steps: int = 0
    """For this many steps after stage 1 the blending weight gets no gradient (it stays at its initial value) while
    the dynamic branch learns colour and motion. 0 is the released schedule; see the README for why a short run needs
    it (measured: the untrained dynamic colour makes the full-image loss drive ``b`` to 0 within ~20 steps)."""
    static_steps: int = 150000
    """Stage 1 (static branch only) lasts this many steps (``N_static_iters``); stage 2 runs until the end."""

    # --- initialisation, viewer and rendering ---
    pretrained_checkpoint: Optional[Path] = None
    """A nerfstudio checkpoint (``step-*.ckpt``, e.g. of a multi-scene run) whose encoders and MLPs initialise this
    model: the unseen-scene setup fine-tunes them on a new scene."""
    pretrained_fresh_blending: bool = True
    """With ``pretrained_checkpoint``: the blending head starts from a fresh initialisation, not the checkpoint's.
    Which pixels move is the one thing that does not carry over to a new scene, and a head whose sigmoid saturated
    at 0 during the multi-scene run gets no gradient on the new one (measured: blending 0.0000 on the new scene's
    moving pixels before and after fine-tuning; README "MonoNeRF benchmark"). False takes every weight."""
    default_time: float = 0.0
    """Time for rays without one (``ns-render interpolate``)."""
    default_scene: int = 0
    """Scene shown for rays without a scene index (viewer, camera paths)."""


class MonoNeRFModel(Model):
    """See the module doc."""

    config: MonoNeRFModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        scenes = self.kwargs.get("metadata", {}).get("scenes")
        if not scenes:
            raise ValueError("MonoNeRF needs the dynamic-scene-data dataparser (its metadata carries the videos)")
        self.scenes: List[SceneVideo] = list(scenes)
        self.video_encoder = VideoEncoder(self.config.video_encoder, checkpoint=self.config.video_encoder_checkpoint)
        self.image_encoder = ImageEncoder(self.config.image_encoder)
        for parameter in [*self.video_encoder.parameters(), *self.image_encoder.parameters()]:
            parameter.requires_grad_(False)
        width = self.config.hidden_width
        self.static_field = StaticField(
            self.image_encoder.channels,
            hidden=width,
            num_blocks=self.config.static_blocks,
            combine_layer=self.config.combine_layer,
        )
        self.dynamic_field = DynamicField(
            self.video_encoder.channels,
            self.video_encoder.pooled_channels,
            hidden=width,
            code_channels=self.config.code_channels,
            code_hidden=self.config.code_hidden,
            num_global_blocks=self.config.dynamic_global_blocks,
            num_blocks=self.config.dynamic_blocks,
            combine_layer=self.config.combine_layer,
            use_temporal_features=self.config.use_temporal_features,
        )
        self.velocity = SceneVelocity(self.dynamic_field, use_code=self.config.use_features)
        self.trained_steps: Tensor
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))
        self._features: Dict[int, SceneFeatures] = {}
        self._warned_missing = False
        if self.config.pretrained_checkpoint is not None:
            self.load_pretrained(self.config.pretrained_checkpoint)

        from torchmetrics.functional import structural_similarity_index_measure
        from torchmetrics.image import PeakSignalNoiseRatio
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = structural_similarity_index_measure
        self.lpips = LearnedPerceptualImagePatchSimilarity(normalize=True)

    # --- checkpoints and features ----------------------------------------------------------------------------

    def load_pretrained(self, path: Path) -> None:
        """Initialise encoders and MLPs from another MonoNeRF run's checkpoint (the unseen-scene setup)."""
        path = Path(path)
        fresh = self.config.pretrained_fresh_blending
        self.load_state_dict({**self.state_dict(), **pretrained_weights(path, self.state_dict(), fresh)})
        kept = " (blending head fresh: --pipeline.model.pretrained-fresh-blending)" if fresh else ""
        CONSOLE.print(f"MonoNeRF: encoders and MLPs initialised from {path}{kept}")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        if any(key.endswith("dynamic_field.blend_head.weight") for key in state_dict):
            raise DatasetFormatError(
                "MonoNeRF checkpoint",
                "made before the normalised blending head (blend_head, replaced by blending_head in issue 23): its "
                "blending weights mean something else now; train it again",
            )
        self._features = {}  # features depend on the encoder weights being loaded
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def scene_features(self, scene: int) -> SceneFeatures:
        """The cached features of ``scene``, computed on first use (one encoder pass over the whole video)."""
        if scene not in self._features:
            video = self.scenes[scene]
            if not self._warned_missing:
                self._warned_missing = True
                losses.warn_switched_off_losses(self.scenes)
            self._features[scene] = encode_scene(video, self.video_encoder, self.image_encoder, self.device)
        return self._features[scene]

    switched_off_losses = staticmethod(losses.switched_off_losses)

    # --- stages ----------------------------------------------------------------------------------------------

    @property
    def in_dynamic_stage(self) -> bool:
        return int(self.trained_steps) >= self.config.static_steps

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        def set_step(step: int) -> None:
            if step == self.config.static_steps and int(self.trained_steps) < step:
                CONSOLE.print(f"MonoNeRF: stage 2 from step {step}: static branch frozen, dynamic branch trains")
            self.trained_steps.fill_(step)

        return [TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], set_step)]

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        return {"static": list(self.static_field.parameters()), "dynamic": list(self.dynamic_field.parameters())}

    # --- rendering -------------------------------------------------------------------------------------------

    def lookup(
        self, maps: Float[Tensor, "t c h w"], features: SceneFeatures, frames: Int[Tensor, " n"], points: Tensor
    ) -> Float[Tensor, "n c"]:
        """Pixel-aligned features: NDC ``points`` back to the world, projected into each one's frame camera."""
        if not self.config.use_features:
            return maps.new_zeros((points.shape[0], maps.shape[1]))
        world = ndc_to_world(points, features.ndc_coeffs)
        uv, _ = project_points(world, *features.cameras_of(frames))
        return sample_feature_maps(maps, frames, uv, (features.width, features.height))

    def trajectories(
        self, scene: int, points: Float[Tensor, "n 3"], frames: Float[Tensor, "n 1"]
    ) -> Tuple[Float[Tensor, "n 3"], Float[Tensor, "n 3"]]:
        """Each point's positions one frame later and one frame earlier along the velocity field."""
        features = self.scene_features(scene)
        return one_frame_trajectories(self.config, self.velocity, features.pooled, points, frames, features.num_frames)

    def query_dynamic(
        self, scene: int, points: Float[Tensor, "n 3"], frames: Float[Tensor, "n 1"], current_frame: Int[Tensor, " n"]
    ) -> DynamicQuery:
        """The dynamic branch at NDC ``points`` at (fractional) ``frames``, with flow-based feature aggregation from
        the video features of ``current_frame`` (the frame index of ``frames``, in the video) and its neighbours."""
        features = self.scene_features(scene)
        count = features.num_frames
        forward, backward = self.trajectories(scene, points, frames)
        code = self.velocity.bind(features.pooled, count).code(points.shape[0])
        time = network_time(frames, torch.full_like(frames, float(count)))
        hidden = self.dynamic_field.trunk(points, time, code)
        current = self.lookup(features.video, features, current_frame, points)
        neighbours = []
        if self.config.use_temporal_features:
            for step, advected in ((-1, backward), (1, forward)):
                frame = current_frame + step
                inside = (frame >= 0) & (frame < count)
                feature = self.lookup(features.video, features, frame.clamp(0, count - 1), advected)
                # At the ends of the video the missing neighbour is replaced by the current feature (as released).
                neighbours.append(torch.where(inside[:, None], feature, current))
        density, rgb, blend = self.dynamic_field.radiance(hidden, current, neighbours)
        return DynamicQuery(density=density, rgb=rgb, blend=blend, forward=forward, backward=backward)

    def get_outputs(self, ray_bundle: Union[RayBundle, Cameras]) -> Dict[str, Union[Tensor, List]]:
        assert isinstance(ray_bundle, RayBundle)
        origins = ray_bundle.origins.reshape(-1, 3)
        directions = ray_bundle.directions.reshape(-1, 3)
        count = origins.shape[0]
        times = ray_times(ray_bundle.times, count, self.config.default_time, self.device)
        scenes = scene_indices_of_rays(ray_bundle, self.config.default_scene).clamp(0, len(self.scenes) - 1)
        return dict(
            render_grouped(
                scenes, lambda scene, rows: self.render_scene(scene, origins[rows], directions[rows], times[rows])
            )
        )

    def render_scene(
        self, scene: int, origins: Float[Tensor, "r 3"], directions: Float[Tensor, "r 3"], times: Float[Tensor, " r"]
    ) -> Dict[str, Tensor]:
        """Render rays of one scene (see the module doc); training outputs include what the losses need."""
        features = self.scene_features(scene)
        count = features.num_frames
        rays = origins.shape[0]
        samples = self.config.num_samples
        ndc_origins, ndc_directions, valid = ndc_rays(origins, directions, features.ndc_coeffs, normalize=False)
        z = ndc_depths(rays, samples, origins.device, stratified=self.training and self.config.perturb)
        points = ndc_origins[:, None, :] + ndc_directions[:, None, :] * z[..., None]  # [r, s, 3]
        deltas = sample_deltas(z, ndc_directions.norm(dim=-1))
        flat_points = points.reshape(-1, 3)
        ray_frames = continuous_frame(times, count)  # [r]
        frame_index = nearest_frame(times, count)
        sample_frames = ray_frames[:, None, None].expand(rays, samples, 1).reshape(-1, 1)
        sample_frame_index = frame_index[:, None].expand(rays, samples).reshape(-1)
        view = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        flat_view = view[:, None, :].expand(rays, samples, 3).reshape(-1, 3)
        dynamic_stage = self.in_dynamic_stage

        def noisy(density: Tensor) -> Tensor:
            if self.training and self.config.raw_noise_std > 0:
                density = density + torch.randn_like(density) * self.config.raw_noise_std
            # Rays that never enter the scene (a free viewer camera looking backwards) stay empty.
            return torch.where(
                valid[:, None], density.reshape(rays, samples), torch.zeros_like(density.reshape(rays, samples))
            )

        static_frames = sample_frame_index
        if self.training and not dynamic_stage and self.config.random_static_frame:
            static_frames = torch.full_like(sample_frame_index, int(torch.randint(count, (1,))))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not (self.training and dynamic_stage)):
            static_features = self.lookup(features.image, features, static_frames, flat_points)
            static_density, static_rgb = self.static_field(flat_points, flat_view, static_features)
        static_rgb = static_rgb.reshape(rays, samples, 3)

        if not dynamic_stage:
            static = composite(noisy(static_density), static_rgb, deltas, z)
            return {
                "rgb": static["rgb"],
                "rgb_static": static["rgb"],
                "depth": static["depth"][:, None],
                "accumulation": static["accumulation"][:, None],
                "frame_index": frame_index.float()[:, None],
            }

        dynamic = self.query_dynamic(scene, flat_points, sample_frames, sample_frame_index)
        blend = dynamic.blend.reshape(rays, samples)
        warming_up = (
            self.training and int(self.trained_steps) < self.config.static_steps + self.config.blending_warmup_steps
        )

        def held(blending: Tensor) -> Tensor:
            return blending.detach() if warming_up else blending  # blending_warmup_steps: no loss moves b yet

        blend = held(blend)
        out = composite_dynamic(
            sigma_static=noisy(static_density),
            rgb_static=static_rgb,
            sigma_dynamic=noisy(dynamic.density),
            rgb_dynamic=dynamic.rgb.reshape(rays, samples, 3),
            blending=blend,
            deltas=deltas,
            z=z,
        )
        outputs = {
            "rgb": out["rgb_full"],
            "rgb_static": out["rgb_static"],
            "rgb_dynamic": out["rgb_dynamic"],
            "depth": out["depth_full"][:, None],
            "depth_static": out["depth_static"][:, None],
            "depth_dynamic": out["depth_dynamic"][:, None],
            "accumulation": out["accumulation_full"][:, None],
            "dynamicness": out["dynamicness"][:, None],
            "frame_index": frame_index.float()[:, None],
        }
        if not self.training:
            return outputs
        outputs["scene_index"] = torch.full_like(frame_index, scene)

        # Stage 2 training: everything the losses need.
        shape = (rays, samples, 3)
        forward, backward = dynamic.forward.reshape(shape), dynamic.backward.reshape(shape)
        warped_forward = self.query_dynamic(
            scene, dynamic.forward, sample_frames + 1.0, clamp_frames(sample_frame_index + 1, count)
        )
        warped_backward = self.query_dynamic(
            scene, dynamic.backward, sample_frames - 1.0, clamp_frames(sample_frame_index - 1, count)
        )
        rendered_forward = composite(noisy(warped_forward.density), warped_forward.rgb.reshape(shape), deltas, z)
        rendered_backward = composite(noisy(warped_backward.density), warped_backward.rgb.reshape(shape), deltas, z)
        weights_dynamic = out["weights_dynamic"]
        # The ray's own pixel in its frame: a point on the ray projected by that frame's camera.
        own_pixel, _ = project_points(origins + directions, *features.cameras_of(frame_index))
        outputs.update(
            {
                "weights_dynamic": weights_dynamic,
                "blending": blend,
                "z": z,
                "points": points,
                "points_forward": forward,
                "points_backward": backward,
                "points_forward_backward": warped_forward.backward.reshape(shape),
                "points_forward_forward": warped_forward.forward.reshape(shape),
                "points_backward_forward": warped_backward.forward.reshape(shape),
                "points_backward_backward": warped_backward.backward.reshape(shape),
                "blending_forward": held(warped_forward.blend.reshape(rays, samples)),
                "blending_backward": held(warped_backward.blend.reshape(rays, samples)),
                "rgb_dynamic_forward": rendered_forward["rgb"],
                "rgb_dynamic_backward": rendered_backward["rgb"],
                "induced_flow_forward": features.flow_into(weights_dynamic, forward, frame_index + 1, own_pixel),
                "induced_flow_backward": features.flow_into(weights_dynamic, backward, frame_index - 1, own_pixel),
            }
        )
        return outputs

    # --- losses and metrics --------------------------------------------------------------------------------

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        image = batch["image"][..., :3].to(self.device)
        metrics = {"psnr": self.psnr(outputs["rgb"].detach().clamp(0, 1), image)}
        if "rgb_static" in outputs:
            metrics["psnr_static"] = self.psnr(outputs["rgb_static"].detach().clamp(0, 1), image)
        metrics["stage"] = torch.tensor(2.0 if self.in_dynamic_stage else 1.0)
        return metrics

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        """The photometric loss outside training; in training :func:`.losses.training_losses` (stage 1: the static
        MSE on static pixels; stage 2: every term of mononerf.md §1's table, each with its config weight)."""
        image = batch["image"][..., :3].to(self.device)
        if not self.training or "is_dynamic" not in batch:
            return {"rgb_loss": losses.photometric_loss(outputs["rgb"], image)}
        last = torch.tensor([video.supervised_frames - 1 for video in self.scenes], device=self.device)
        return losses.training_losses(
            self.config, outputs, batch, image, self.in_dynamic_stage, last, lambda s: self.scene_features(s).ndc_coeffs
        )

    @torch.no_grad()
    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        image = batch["image"][..., :3].to(outputs["rgb"].device)
        rgb = outputs["rgb"].clamp(0, 1)
        metrics = image_quality(rgb, image, self.psnr, self.ssim, self.lpips)
        # The released evaluation's 8-bit PSNR and SSIM, to compare with published tables (released_metrics.py).
        metrics["released_psnr"], metrics["released_ssim"] = released_psnr_ssim(rgb, image)
        depth = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
        images = {"img": torch.cat([image, rgb], dim=1), "depth": depth}
        if "rgb_dynamic" in outputs:
            images["static_dynamic"] = torch.cat(
                [outputs["rgb_static"].clamp(0, 1), outputs["rgb_dynamic"].clamp(0, 1)], dim=1
            )
        return metrics, images
