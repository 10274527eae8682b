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

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor, nn

from dataparsers.dynamic_scene import SceneVideo
from nerfstudio_methods.checkpoints import load_tensor_file
from nerfstudio_methods.grouped_render import render_grouped
from nerfstudio_methods.input_errors import DatasetFormatError
from nerfstudio_methods.mononerf import losses
from nerfstudio_methods.mononerf.compositing import composite, composite_dynamic, sample_deltas
from nerfstudio_methods.mononerf.encoders import ImageEncoder, VideoEncoder
from nerfstudio_methods.mononerf.field import DynamicField, SceneVelocity, StaticField, clamp_frames, network_time
from nerfstudio_methods.mononerf.projection import induced_flow, project_points, sample_feature_maps
from nerfstudio_methods.mononerf.released_metrics import released_psnr_ssim
from nerfstudio_methods.mononerf.trajectory import integrate_trajectory
from nerfstudio_methods.multiscene import scene_indices_of_rays
from nerfstudio_methods.rays import ndc_coefficients, ndc_rays, ndc_to_world
from nerfstudio_methods.timeline import continuous_frame, nearest_frame, ray_times

RELEASED_FRAME_COUNT = 12
"""The released ODE branch converts relative time with a hard-coded 12 frames (mononerf.md §1, §5)."""


@dataclass
class MonoNeRFModelConfig(ModelConfig):
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

    # --- velocity field and trajectories ---
    trajectory_solver: Literal["ode", "ode-adjoint", "euler"] = "ode"
    """torchdiffeq ``odeint`` (the paper's Neural ODE), ``odeint_adjoint``, or the released explicit Euler."""
    ode_method: str = "dopri5"
    """torchdiffeq method (``ode_solver``); rtol / atol below are the released ODE defaults."""
    ode_rtol: float = 1e-2
    ode_atol: float = 1e-3
    ode_first_step: Optional[float] = 0.5
    """First step of an adaptive solver, in frames (None: torchdiffeq's estimate, which starts near 1e-6 for a
    still field and spends ~40 evaluations growing it)."""
    euler_steps: int = 2
    """Euler steps per frame (``discrete_steps``)."""
    velocity_scale: Optional[float] = None
    """Largest NDC displacement per frame (``tanh = 1``). None: ``1 / N`` for an ``N``-frame video, as the released
    ODE branch (the paper's Neural ODE) integrates over ``1 / N``; 1.0 is the released discrete branch, with which the
    world-space smoothness terms blew up in CPU runs (gradient norms 1e4-3e5 within 15 stage-2 steps)."""

    # --- stages and losses (weights: mononerf.md §1 "Losses, stage 2") ---
    blending_warmup_steps: int = 0
    """For this many steps after stage 1 the blending weight gets no gradient (it stays at its initial value) while
    the dynamic branch learns colour and motion. 0 is the released schedule; see the README for why a short run needs
    it (measured: the untrained dynamic colour makes the full-image loss drive ``b`` to 0 within ~20 steps)."""
    static_steps: int = 150000
    """Stage 1 (static branch only) lasts this many steps (``N_static_iters``); stage 2 runs until the end."""
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

    # --- the released code's bugs (fixed by default; each flag reproduces one) ---
    released_backward_code_bug: bool = False
    """The released Euler loop overwrites the forward hidden state so the backward trajectory never sees ``c``:
    reproduced as a zero global code for the backward velocity."""
    released_warped_frame_bug: bool = False
    """The released warped-dynamic loss decides whether frame t-1 / t+1 exist from the last scene's frame (the
    ``img_i`` scoping bug); multi-scene only."""
    released_twelve_frames: bool = False
    """The released ODE branch converts time with 12 frames whatever the video's length."""

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


def dilate_mask(mask: Bool[Tensor, "h w"], pixels: int) -> Bool[Tensor, "h w"]:
    """``mask`` grown by ``pixels`` in every direction (a square structuring element)."""
    if pixels <= 0:
        return mask
    grown = F.max_pool2d(mask.float()[None, None], 2 * pixels + 1, stride=1, padding=pixels)
    return grown[0, 0] > 0


@dataclass
class SceneFeatures:
    """Cached encoder outputs and camera tensors of one scene, on the model's device."""

    video: Float[Tensor, "t c h2 w2"]
    pooled: Float[Tensor, " p"]
    image: Float[Tensor, "t c h4 w4"]
    camera_to_world: Float[Tensor, "t 3 4"]
    fx: Float[Tensor, " t"]
    fy: Float[Tensor, " t"]
    cx: Float[Tensor, " t"]
    cy: Float[Tensor, " t"]
    width: int
    height: int
    ndc_coeffs: Tuple[float, float]
    num_frames: int
    """The video's frame count (``SceneVideo.num_frames``): the one count that times, frames and the velocity's
    network time are converted with."""

    def cameras_of(self, frames: Int[Tensor, " n"]) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Pose and intrinsics of each entry's frame: the camera arguments of ``project_points`` / ``induced_flow``."""
        return self.camera_to_world[frames], self.fx[frames], self.fy[frames], self.cx[frames], self.cy[frames]


@dataclass
class DynamicQuery:
    """The dynamic branch at a set of points: raw density, colour, blending and the one-frame trajectories."""

    density: Float[Tensor, " n"]
    rgb: Float[Tensor, "n 3"]
    blend: Float[Tensor, " n"]
    forward: Float[Tensor, "n 3"]
    backward: Float[Tensor, "n 3"]


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
        loaded = load_tensor_file(path, "pretrained MonoNeRF checkpoint (--pipeline.model.pretrained-checkpoint)")
        state = loaded.get("pipeline", loaded) if isinstance(loaded, dict) else None
        if not isinstance(state, dict):
            raise DatasetFormatError(path, "not a nerfstudio checkpoint (no 'pipeline' state dict)")
        prefix = "_model."
        state = {
            key.removeprefix("module.")[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)
        }
        wanted = ("video_encoder.", "image_encoder.", "static_field.", "dynamic_field.")
        fresh = ("dynamic_field.blending_head.",) if self.config.pretrained_fresh_blending else ()
        own = {
            key: value
            for key, value in self.state_dict().items()
            if key.startswith(wanted) and not key.startswith(fresh)
        }
        missing = sorted(key for key in own if key not in state)
        mismatched = sorted(key for key in own if key in state and state[key].shape != own[key].shape)
        if missing or mismatched:
            problem = (f"{len(missing)} missing keys (e.g. {missing[:2]})" if missing else "") + (
                f" {len(mismatched)} keys of another shape (e.g. {mismatched[:2]}): was it trained with other "
                "--pipeline.model network or encoder settings?"
                if mismatched
                else ""
            )
            raise DatasetFormatError(path, f"does not fit this MonoNeRF model: {problem.strip()}")
        self.load_state_dict({**self.state_dict(), **{key: state[key] for key in own}})
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
            self._warn_missing_parts()
            with torch.no_grad():
                frames = video.images.to(self.device)
                video_features = self.video_encoder.encode(frames)
                image_features = self.image_encoder.encode(frames)
            cameras = video.cameras.to(self.device)
            width, height = int(cameras.width[0, 0]), int(cameras.height[0, 0])
            self._features[scene] = SceneFeatures(
                video=video_features.volume,
                pooled=video_features.pooled,
                image=image_features,
                camera_to_world=cameras.camera_to_worlds,
                fx=cameras.fx[:, 0],
                fy=cameras.fy[:, 0],
                cx=cameras.cx[:, 0],
                cy=cameras.cy[:, 0],
                width=width,
                height=height,
                ndc_coeffs=ndc_coefficients(float(cameras.fx[0, 0]), float(cameras.fy[0, 0]), width, height),
                num_frames=video.num_frames,
            )
        return self._features[scene]

    def _warn_missing_parts(self) -> None:
        if self._warned_missing:
            return
        self._warned_missing = True
        for video in self.scenes:
            switched_off = self.switched_off_losses(video)
            if switched_off:
                CONSOLE.print(
                    f"[yellow]MonoNeRF: {video.name} has no {', '.join(video.missing)}; "
                    f"switched off: {', '.join(switched_off)}[/yellow]"
                )

    @staticmethod
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

    @torch.no_grad()
    def static_error_motion_masks(self, video: SceneVideo, ratio: float, dilation: int) -> Bool[Tensor, "t h w"]:
        """Moving pixels of ``video``'s training frames: where the static branch's render misses the colour (largest
        channel) by more than ``ratio`` times the frame's median miss, grown by ``dilation`` pixels. Frames after the
        training frames are all "moving": nothing is read from frames the run must not see."""
        was_training = self.training
        self.eval()
        images = video.images
        masks = torch.ones(images.shape[:3], dtype=torch.bool, device=images.device)
        for frame in range(video.supervised_frames):
            camera = video.cameras[frame : frame + 1].to(self.device)
            rendered = self.get_outputs_for_camera(camera)["rgb_static"].to(images.device)
            error = (rendered - images[frame]).abs().amax(dim=-1)
            masks[frame] = dilate_mask(error > ratio * error.median(), dilation)
        self.train(was_training)
        return masks

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
        count = features.num_frames
        time_frames = RELEASED_FRAME_COUNT if self.config.released_twelve_frames else count
        config = self.config

        def integrate(velocity: nn.Module, frames_to_go: float) -> Tensor:
            return integrate_trajectory(
                velocity,
                points,
                frames,
                frames_to_go,
                solver=config.trajectory_solver,
                method=config.ode_method,
                rtol=config.ode_rtol,
                atol=config.ode_atol,
                euler_steps=config.euler_steps,
                options=None if config.ode_first_step is None else {"first_step": config.ode_first_step},
            )

        scale = config.velocity_scale if config.velocity_scale is not None else 1.0 / count
        forward = integrate(self.velocity.bind(features.pooled, time_frames, scale), 1.0)
        backward = integrate(
            self.velocity.bind(features.pooled, time_frames, scale, zero_code=config.released_backward_code_bug), -1.0
        )
        return forward, backward

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
        z = torch.linspace(0.0, 1.0, samples, device=origins.device).expand(rays, samples)
        if self.training and self.config.perturb:
            middle = 0.5 * (z[:, 1:] + z[:, :-1])
            upper = torch.cat([middle, z[:, -1:]], dim=-1)
            lower = torch.cat([z[:, :1], middle], dim=-1)
            z = lower + (upper - lower) * torch.rand_like(z)
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
        if warming_up:
            blend = blend.detach()  # blending_warmup_steps: no loss moves b yet
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
                "blending_forward": warped_forward.blend.reshape(rays, samples).detach()
                if warming_up
                else warped_forward.blend.reshape(rays, samples),
                "blending_backward": warped_backward.blend.reshape(rays, samples).detach()
                if warming_up
                else warped_backward.blend.reshape(rays, samples),
                "rgb_dynamic_forward": rendered_forward["rgb"],
                "rgb_dynamic_backward": rendered_backward["rgb"],
                "induced_flow_forward": self.flow_to_frame(
                    features, weights_dynamic, forward, frame_index + 1, own_pixel
                ),
                "induced_flow_backward": self.flow_to_frame(
                    features, weights_dynamic, backward, frame_index - 1, own_pixel
                ),
            }
        )
        return outputs

    def flow_to_frame(
        self,
        features: SceneFeatures,
        weights: Float[Tensor, "r s"],
        advected: Float[Tensor, "r s 3"],
        target_frames: Int[Tensor, " r"],
        pixel_uv: Float[Tensor, "r 2"],
    ) -> Float[Tensor, "r 2"]:
        """Optical flow induced by the scene flow into ``target_frames`` (clamped to the video)."""
        frames = clamp_frames(target_frames, features.num_frames)
        return induced_flow(
            advected,
            weights,
            features.ndc_coeffs,
            *features.cameras_of(frames),
            pixel_uv,
        )

    # --- losses and metrics --------------------------------------------------------------------------------

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        image = batch["image"][..., :3].to(self.device)
        metrics = {"psnr": self.psnr(outputs["rgb"].detach().clamp(0, 1), image)}
        if "rgb_static" in outputs:
            metrics["psnr_static"] = self.psnr(outputs["rgb_static"].detach().clamp(0, 1), image)
        metrics["stage"] = torch.tensor(2.0 if self.in_dynamic_stage else 1.0)
        return metrics

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        """Stage 1: the static MSE on static pixels. Stage 2: every term of mononerf.md §1's table, each with its
        config weight; terms whose inputs a scene lacks (flow, disparity, motion masks) are left out for its rays."""
        config = self.config
        image = batch["image"][..., :3].to(self.device)
        if not self.training or "is_dynamic" not in batch:
            return {"rgb_loss": losses.photometric_loss(outputs["rgb"], image)}
        has_mask = batch["has_motion_mask"]
        is_dynamic = batch["is_dynamic"] & has_mask
        if not self.in_dynamic_stage:
            static_pixels = ~is_dynamic  # every pixel of a scene without motion masks
            return {
                "static_rgb_loss": config.static_loss_mult
                * losses.static_photometric_loss(outputs["rgb_static"], image, static_pixels)
            }
        static_mask = has_mask & ~batch["is_dynamic"]
        # The frame and scene each ray was rendered at (from its time and scene index), not the batch's copies.
        frames = outputs["frame_index"][:, 0].long()
        scenes = outputs["scene_index"]
        # The last training frame has no forward neighbour: in the unseen-frames setup the frames after it stay
        # unseen (no warped colour, flow or feature target from them).
        last = torch.tensor([video.supervised_frames - 1 for video in self.scenes], device=frames.device)[scenes]
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
            "full_rgb_loss": config.full_loss_mult * losses.photometric_loss(outputs["rgb"], image),
            "dynamic_rgb_loss": config.dynamic_loss_mult * losses.photometric_loss(outputs["rgb_dynamic"], image),
            "warped_rgb_loss": config.warped_loss_mult
            * losses.warped_dynamic_loss(
                outputs["rgb_dynamic_forward"], outputs["rgb_dynamic_backward"], image, has_forward, has_backward
            ),
            "slow_loss": config.slow_loss_mult * losses.slow_loss(flow_forward, flow_backward),
            "cycle_loss": config.cycle_loss_mult
            * losses.cycle_consistency_loss(flow_forward, flow_forward_backward, flow_backward, flow_backward_forward),
            "sparsity_loss": config.sparsity_loss_mult
            * losses.sparsity_loss(outputs["weights_dynamic"], outputs["blending"]),
        }
        # World-space smoothness terms need each scene's NDC coefficients.
        smooth: Dict[str, List[Tensor]] = {
            "temporal_smooth_loss": [],
            "spatial_smooth_loss": [],
            "second_order_smooth_loss": [],
        }
        for scene in torch.unique(scenes).tolist():
            rows = torch.nonzero(scenes == scene)[:, 0]
            coeffs = self.scene_features(int(scene)).ndc_coeffs
            share = rows.numel() / scenes.numel()
            p, f, b = points[rows], forward[rows], backward[rows]
            smooth["temporal_smooth_loss"].append(share * losses.temporal_smooth_loss(p, f, b, coeffs))
            smooth["spatial_smooth_loss"].append(share * losses.spatial_smooth_loss(p, f, b, coeffs))
            smooth["second_order_smooth_loss"].append(
                share
                * losses.second_order_smooth_loss(
                    p,
                    f,
                    b,
                    outputs["points_forward_forward"][rows],
                    outputs["points_backward_backward"][rows],
                    coeffs,
                )
            )
        terms["temporal_smooth_loss"] = (
            config.temporal_smooth_loss_mult * torch.stack(smooth["temporal_smooth_loss"]).sum()
        )
        terms["spatial_smooth_loss"] = (
            config.spatial_smooth_loss_mult * torch.stack(smooth["spatial_smooth_loss"]).sum()
        )
        terms["second_order_smooth_loss"] = (
            config.second_order_smooth_loss_mult * torch.stack(smooth["second_order_smooth_loss"]).sum()
        )
        has_flow = batch["has_flow"]
        if bool(has_flow.any()):
            forward_mask = batch["flow_forward_mask"] * (has_flow & has_forward)
            backward_mask = batch["flow_backward_mask"] * (has_flow & has_backward)
            terms["flow_loss"] = config.flow_loss_mult * (
                losses.flow_loss(outputs["induced_flow_forward"], batch["flow_forward"], forward_mask)
                + losses.flow_loss(outputs["induced_flow_backward"], batch["flow_backward"], backward_mask)
            )
        has_disparity = batch["has_disparity"]
        if bool(has_disparity.any()):
            rows = torch.nonzero(has_disparity)[:, 0]
            terms["depth_loss"] = config.depth_loss_mult * losses.depth_loss(
                outputs["depth_dynamic"][rows, 0], batch["disparity"][rows], groups=scenes[rows]
            )
            if bool(has_mask[rows].any()):
                terms["depth_blending_loss"] = config.depth_blending_loss_mult * losses.depth_blending_loss(
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
            terms["mask_loss"] = config.mask_loss_mult * losses.mask_loss(
                outputs["blending"][rows], outputs["dynamicness"][rows, 0], static_rows
            )
            terms["order_loss"] = config.order_loss_mult * losses.order_loss(
                outputs["depth_dynamic"][rows, 0], outputs["depth_static"][rows, 0], static_rows
            )
            terms["static_flow_loss"] = config.static_flow_loss_mult * losses.static_flow_loss(
                flow_forward[rows], flow_backward[rows], static_rows
            )
            terms["mask_flow_loss"] = config.mask_flow_loss_mult * losses.mask_flow_loss(
                outputs["blending_forward"][rows], outputs["blending_backward"][rows], static_rows
            )
        return terms

    @torch.no_grad()
    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        image = batch["image"][..., :3].to(outputs["rgb"].device)
        rgb = outputs["rgb"].clamp(0, 1)
        image_chw, rgb_chw = image.permute(2, 0, 1)[None], rgb.permute(2, 0, 1)[None]
        metrics = {
            "psnr": float(self.psnr(rgb_chw, image_chw)),
            "ssim": float(self.ssim(rgb_chw, image_chw)),  # type: ignore[arg-type]
            "lpips": float(self.lpips(rgb_chw, image_chw)),
        }
        if not math.isfinite(metrics["lpips"]):
            metrics["lpips"] = math.nan
        # The released evaluation's 8-bit PSNR and SSIM, to compare with published tables (released_metrics.py).
        metrics["released_psnr"], metrics["released_ssim"] = released_psnr_ssim(rgb, image)
        depth = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
        images = {"img": torch.cat([image, rgb], dim=1), "depth": depth}
        if "rgb_dynamic" in outputs:
            images["static_dynamic"] = torch.cat(
                [outputs["rgb_static"].clamp(0, 1), outputs["rgb_dynamic"].clamp(0, 1)], dim=1
            )
        return metrics, images
