"""``StreamRFModel``: a Plenoxels voxel grid that is trained frame by frame and played back at any time.

Data flow, in the style of nerfstudio's ``nerfacto.py``: rays (world space of the ``n3dv-data`` parser) -> NDC
(:func:`nerfstudio_methods.rays.ndc_rays`) -> uniform samples in the grid's box with empty-space skipping, or nerfacc's occupancy
grid sampler on CUDA -> trilinear density + SH (:mod:`.grid`, :mod:`.sh`) -> Plenoxels compositing.

The model holds two grids (brief §1.3): the *full* grid and, with ``use_pilot``, the *pilot* grid at
``1 / pilot_factor`` of the resolution. Training a frame is a *phase* of one grid (:class:`Phase`); the pipeline
(:mod:`.pipeline`) schedules phases over the trainer's steps and stores what :meth:`finish_phase` returns. The grids
are plain tensors updated by :class:`.optim.MaskedRMSprop` after the trainer's backward pass, not nerfstudio
parameters: their occupancy and the update masks change every frame.

What the model renders outside training is chosen by ``ray_bundle.times``: frame ``round(time * (T - 1))`` of the
run's frame store, replayed from frame 0 (or a keyframe) plus deltas and cached (:class:`.store.GridPlayer`).
Frames not trained yet show the newest grid. Rays without times (``ns-render interpolate``) use ``default_time``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple, Type, Union

import torch
from jaxtyping import Bool
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps
from torch import Tensor

from nerfstudio_methods.evaluation import image_quality
from nerfstudio_methods.grouped_render import render_grouped
from nerfstudio_methods.rays import ndc_rays
from nerfstudio_methods.streamrf import masks
from nerfstudio_methods.streamrf.codec import EncodedGrid, FrameDelta, encode_delta, encode_grid, sh_change
from nerfstudio_methods.streamrf.grid import (
    GRID_CHANNELS,
    GridLookup,
    GridSpec,
    SparseGrid,
    chunks,
    initial_grid,
    kept_voxels,
    occupied_indices,
    reoccupy,
    resample,
)
from nerfstudio_methods.streamrf.optim import exponential_lr
from nerfstudio_methods.streamrf.passes import PassSettings
from nerfstudio_methods.streamrf.render import NerfaccSampler, render_rays_torch
from nerfstudio_methods.streamrf.state import GridState, GridStorage, make_state
from nerfstudio_methods.streamrf.store import GridPlayer
from nerfstudio_methods.timeline import nearest_frame, ray_times

Resolution = Tuple[int, int, int]


class Phase(enum.Enum):
    """What one stretch of training steps optimises."""

    FRAME0 = "frame0"
    """Frame 0 from scratch on the full grid (Plenoxels, with coarse-to-fine upsampling)."""
    PILOT0 = "pilot0"
    """The pilot grid, downsampled from frame 0, retrained on frame 0."""
    PILOT = "pilot"
    """A later frame on the pilot grid, no narrow band."""
    FULL = "full"
    """A later frame on the full grid, restricted to narrow band AND pilot guidance."""


@dataclass
class StreamRFModelConfig(ModelConfig):
    """StreamRF; defaults are the paper's N3DV settings (brief §1.2-1.3, REPO README / configs)."""

    _target: Type = field(default_factory=lambda: StreamRFModel)
    enable_collider: bool = False
    """The grid's NDC box bounds the rays; no collider."""

    # --- grid and rendering (svox2) ---
    frame0_resolutions: Tuple[Resolution, ...] = ((128, 128, 128), (256, 256, 128), (512, 512, 128))
    """(X, Y, Z) of frame 0's grid, upsampled every ``frame0_upsample_every`` steps; the last one is the streaming
    resolution (configs/n3dv_init.json ``reso``)."""
    frame0_upsample_every: int = 38400
    """Steps between frame-0 upsamplings (opt.py ``upsamp_every``)."""
    grid_padding_px: float = 0.0
    """Pads the NDC box's x/y radius to 1 + 2 * padding / W (resp. H), as opt.py's ``--offset``."""
    init_density: float = 0.1
    """Initial density of every voxel of frame 0 (SH start at 0)."""
    density_threshold: float = 5.0
    """Voxels whose density is below this are dropped when the grid is resampled (``density_thresh``, sigma)."""
    frame0_dilation: int = 2
    """Dilations of the kept voxels when frame 0 is upsampled."""
    step_size: float = 0.5
    """Ray-marching step in voxels (``--step_size``)."""
    background_brightness: float = 0.5
    """Grey fill of the transmittance left at the end of a ray."""
    frame0_stop_thresh: float = 1e-7
    """Transmittance at which rays stop during frame 0 (svox2 default)."""
    stop_thresh: float = 0.01
    """Transmittance at which rays stop for later frames and playback (``--stop_thres 0.01``, N3DV; Meet Room's
    full pass keeps svox2's 1e-7)."""
    pilot_stop_thresh: float = 0.01
    """Transmittance at which rays stop in the pilot passes (0.01 for both datasets)."""
    sampler: Literal["auto", "torch", "nerfacc"] = "auto"
    """"auto": nerfacc's CUDA occupancy-grid sampler when CUDA is present, else the pure-torch marcher."""
    grid_storage: GridStorage = "sparse"
    """"sparse": svox2's index grid + values of occupied voxels only (training state grows with the occupied
    voxels); "dense": one [28, Z, Y, X] tensor (the original path, for comparisons)."""

    # --- losses ---
    tv_density: float = 5e-4
    """Weight of the density total variation (``lambda_tv``; Meet Room 5e-3)."""
    tv_sh: float = 5e-3
    """Weight of the SH total variation (``lambda_tv_sh``; Meet Room 5e-2)."""
    tv_sparsity: float = 0.01
    """Fraction of cells (a random contiguous run) the TV is evaluated on each step."""

    # --- frame 0 (Plenoxels) ---
    frame0_steps: int = 128000
    """Training steps of frame 0 (opt.py ``n_iters``)."""
    frame0_lr_density: float = 30.0
    frame0_lr_density_final: float = 0.05
    frame0_lr_sh: float = 1e-2
    frame0_lr_sh_final: float = 5e-6
    frame0_lr_decay_steps: int = 250000
    """Both frame-0 rates decay log-linearly over this many steps."""
    frame0_lr_density_delay_steps: int = 15000
    """The density rate warms up over these steps ("reverse cosine") from ``delay_mult`` times its value."""
    frame0_lr_density_delay_mult: float = 1e-2

    # --- later frames, full grid ---
    steps_per_frame: int = 500
    """Steps of each later frame on the full grid (``n_iters`` of the full pass)."""
    lr_density: float = 1.0
    """Constant density rate of the full pass."""
    lr_sh: float = 1e-2
    lr_sh_final: float = 3e-3
    lr_sh_decay_steps: int = 300
    """The SH rate decays from ``lr_sh`` to ``lr_sh_final`` over these steps, restarting at every frame."""
    sh_keep_threshold: float = 1.0
    """A kept voxel is stored in the delta only if the L1 change of its 27 SH values exceeds this."""
    sh_prune_threshold: float = 0.2
    """Newly added voxels whose sum |SH| is below this are deleted before encoding (``preprune``)."""
    dilate_before: int = 2
    """Dilations of the occupancy before a frame is trained (new voxels start at 0); also the band's outer width."""
    dilate_after: int = 2
    """Dilations of the kept voxels when the grid is re-sparsified after a frame (and once after frame 0)."""
    narrow_band: bool = True
    """Train only the shell from ``dilate_before`` voxels outside to ``narrow_band_inner`` inside the occupancy."""
    narrow_band_inner: int = masks.NARROW_BAND_INNER

    # --- pilot grid ---
    use_pilot: bool = True
    """Guide each frame by a lower-resolution pilot grid trained on it first (grad mask = band AND pilot change)."""
    pilot_factor: int = 2
    """Full / pilot resolution ratio per axis."""
    pilot_frame0_steps: int = 7500
    """The pilot retrains frame 0 for 10 x its per-frame steps, with its rate schedules stretched 10x."""
    pilot_steps: int = 750
    pilot_lr_density: float = 1.0
    pilot_lr_sh: float = 1e-2
    pilot_lr_sh_final: float = 1e-3
    pilot_lr_sh_decay_steps: int = 750
    pilot_sh_keep_threshold: float = 0.5
    pilot_sh_prune_threshold: float = 0.1
    pilot_dilate_before: int = 1
    pilot_dilate_after: int = 1

    # --- playback ---
    default_time: float = 0.0
    """Time shown for rays that carry none (``ns-render interpolate`` drops camera times)."""

    @property
    def resolution(self) -> Resolution:
        return self.frame0_resolutions[-1]

    def pass_settings(self, pilot: bool) -> PassSettings:
        """The settings of the pilot grid's pass over a later frame (``pilot_*``) or of the full grid's."""
        if pilot:
            return PassSettings(
                steps=self.pilot_steps, lr_density=self.pilot_lr_density, lr_sh=self.pilot_lr_sh,
                lr_sh_final=self.pilot_lr_sh_final, lr_sh_decay_steps=self.pilot_lr_sh_decay_steps,
                sh_keep_threshold=self.pilot_sh_keep_threshold, sh_prune_threshold=self.pilot_sh_prune_threshold,
                dilate_before=self.pilot_dilate_before, dilate_after=self.pilot_dilate_after,
                stop_thresh=self.pilot_stop_thresh,
            )  # fmt: skip
        return PassSettings(
            steps=self.steps_per_frame, lr_density=self.lr_density, lr_sh=self.lr_sh, lr_sh_final=self.lr_sh_final,
            lr_sh_decay_steps=self.lr_sh_decay_steps, sh_keep_threshold=self.sh_keep_threshold,
            sh_prune_threshold=self.sh_prune_threshold, dilate_before=self.dilate_before,
            dilate_after=self.dilate_after, stop_thresh=self.stop_thresh,
        )  # fmt: skip


@dataclass
class PilotGuidance:
    """What the pilot saw change in a frame, at pilot resolution."""

    changed: Bool[Tensor, "z y x"]
    added: Bool[Tensor, "z y x"]
    removed: Bool[Tensor, "z y x"]


def snapshot(grid: SparseGrid) -> tuple[Tensor, Tensor]:
    """A copy of a grid's occupied values and occupancy. The values a frame starts from were decoded from fp16
    (the codec), so they are kept in fp16 when that is exact: half the memory of the previous frame's copy."""
    data = grid.data.detach()
    half = data.to(torch.float16)
    exact = all(torch.equal(half[part].to(data.dtype), data[part]) for part in chunks(data.shape[0]))
    return (half if exact else data.clone()), grid.occupancy.clone()


class StreamRFModel(Model):
    """See the module doc."""

    config: StreamRFModelConfig
    frames_done: Tensor

    def populate_modules(self) -> None:
        metadata = self.kwargs.get("metadata") or {}
        intrinsics = metadata.get("ndc_intrinsics")
        if intrinsics is None:
            raise ValueError(
                "StreamRF needs the capture's intrinsics: train it on n3dv-data (metadata 'ndc_intrinsics')"
            )
        fx, fy, width, height = (float(v) for v in intrinsics)
        self.ndc_coeffs = (2.0 * fx / width, 2.0 * fy / height)
        radius = (
            1.0 + 2.0 * self.config.grid_padding_px / width,
            1.0 + 2.0 * self.config.grid_padding_px / height,
            1.0,
        )
        self.num_frames = int(metadata.get("num_frames", 1))
        self.full_spec = GridSpec(tuple(self.config.resolution), radius)  # type: ignore[arg-type]
        self.pilot_spec = self.full_spec.scaled(1.0 / self.config.pilot_factor)
        self.frame0_specs = [GridSpec(tuple(r), radius) for r in self.config.frame0_resolutions]  # type: ignore[arg-type]
        if any(
            self.frame0_specs[i].num_voxels > self.frame0_specs[i + 1].num_voxels
            for i in range(len(self.frame0_specs) - 1)
        ):
            raise ValueError("frame0_resolutions must grow")
        # Set up lazily on the model's device (the trainer moves the model after construction).
        self.full: Optional[GridState] = None
        self.pilot: Optional[GridState] = None
        self.phase: Optional[Phase] = None
        self.phase_frame = -1
        self.phase_step = 0
        self.update_mask: Optional[Tensor] = None
        self.allowed: Optional[Tensor] = None
        """``update_mask`` in the form the active grid's optimiser step takes (rows of a sparse grid)."""
        self.previous: Optional[tuple[Tensor, Tensor]] = None
        self.guidance: Optional[PilotGuidance] = None
        self.player: Optional[GridPlayer] = None
        self.finished_frames = 0
        """Frames of the full grid in the store (0..finished_frames-1); the live full grid is the newest."""
        self.full_frame = -1
        """The frame whose full pass (or frame-0 training) the live full grid last finished; -1 before any."""
        self._nerfacc: dict[GridSpec, NerfaccSampler] = {}
        self._stored: Optional[tuple[Tensor, SparseGrid]] = None
        self.register_buffer("frames_done", torch.zeros((), dtype=torch.long))

        from torchmetrics.functional import structural_similarity_index_measure
        from torchmetrics.image import PeakSignalNoiseRatio
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = structural_similarity_index_measure
        self.lpips = LearnedPerceptualImagePatchSimilarity(normalize=True)

    # --- grids and phases -----------------------------------------------------------------------------------

    def attach_player(self, player: GridPlayer) -> None:
        self.player = player

    def grid_of(self, phase: Phase) -> GridState:
        grid = self.pilot if phase in (Phase.PILOT0, Phase.PILOT) else self.full
        if grid is None:
            raise RuntimeError(f"no grid for phase {phase.value}")
        return grid

    def new_state(self, grid: SparseGrid) -> GridState:
        return make_state(grid, self.config.grid_storage)

    def restore(self, full: tuple[Tensor, Tensor], pilot: tuple[Tensor, Tensor] | None, finished_frames: int) -> None:
        """Continue from stored grids (resume): ``full``/``pilot`` are frame ``finished_frames - 1`` as occupied
        values and occupancy (:class:`.store.GridPlayer`)."""
        device = self.device
        self.full = self.new_state(SparseGrid(self.full_spec, full[0].to(device), full[1].to(device)))
        self.pilot = (
            None
            if pilot is None
            else self.new_state(SparseGrid(self.pilot_spec, pilot[0].to(device), pilot[1].to(device)))
        )
        self.finished_frames = finished_frames
        self.full_frame = finished_frames - 1
        self.frames_done.fill_(finished_frames)
        self.phase = None

    def start_phase(self, phase: Phase, frame: int) -> None:
        """Prepare a grid for ``phase`` of ``frame``: initial grid, snapshot of the previous frame, update mask."""
        config, device = self.config, self.device
        self.phase, self.phase_frame, self.phase_step = phase, frame, 0
        if phase is Phase.FRAME0:
            self.full = self.new_state(initial_grid(self.frame0_specs[0], config.init_density, device=device))
            self.update_mask = None
        elif phase is Phase.PILOT0:
            assert self.full is not None
            self.full.reset_optimizer()  # frame 0 is finished: free its optimiser state
            dilation = config.pass_settings(pilot=True).dilate_after
            pilot_grid = resample(self.full.sparse(), self.pilot_spec, config.density_threshold, dilation)
            self.pilot = self.new_state(pilot_grid)
            self.update_mask = None
        elif phase is Phase.PILOT:
            pilot = self.grid_of(phase)
            current = pilot.sparse()
            self.previous = snapshot(current)
            pilot.set(reoccupy(current, masks.dilate(pilot.occupancy, config.pass_settings(pilot=True).dilate_before)))
            self.update_mask = None  # the pilot trains every occupied voxel
        else:
            full = self.grid_of(phase)
            current = full.sparse()
            self.previous = snapshot(current)
            previous_occupancy = current.occupancy
            dilation = config.pass_settings(pilot=False).dilate_before
            band = (
                masks.narrow_band(previous_occupancy, dilation, config.narrow_band_inner)
                if config.narrow_band
                else None
            )
            occupancy = masks.dilate(previous_occupancy, dilation)
            mask = band
            if config.use_pilot and self.guidance is not None:
                guidance = self.guidance
                added = masks.upsample_mask(guidance.added, self.pilot_spec, self.full_spec) & ~previous_occupancy
                removed = masks.upsample_mask(guidance.removed, self.pilot_spec, self.full_spec) & ~added
                changed = masks.upsample_mask(guidance.changed, self.pilot_spec, self.full_spec)
                occupancy = occupancy | added
                grid = reoccupy(current, occupancy)
                rows = grid.links.reshape(-1)
                added_flat = occupied_indices(added)
                if added_flat.numel():  # new voxels start from the pilot's values there
                    pilot = self.grid_of(Phase.PILOT).lookup()
                    grid.data[rows[added_flat].long()] = pilot.query(self.full_spec.centres_of(added_flat))
                removed_rows = rows[occupied_indices(removed)].long()
                grid.data[removed_rows[removed_rows >= 0]] = 0.0
                student = masks.student_mask(changed)
                mask = student if band is None else band & student
            else:
                grid = reoccupy(current, occupancy)
            full.set(grid)
            self.update_mask = mask
        self.allowed = self.grid_of(phase).allowed(self.update_mask)

    def phase_learning_rates(self) -> tuple[float, float]:
        config, step = self.config, self.phase_step
        if self.phase is Phase.FRAME0:
            density = exponential_lr(
                step,
                config.frame0_lr_density,
                config.frame0_lr_density_final,
                config.frame0_lr_decay_steps,
                config.frame0_lr_density_delay_steps,
                config.frame0_lr_density_delay_mult,
            )
            sh = exponential_lr(step, config.frame0_lr_sh, config.frame0_lr_sh_final, config.frame0_lr_decay_steps)
            return density, sh
        settings = config.pass_settings(pilot=self.phase in (Phase.PILOT0, Phase.PILOT))
        # The pilot's frame 0 has its rate schedule stretched like its steps (pilot_frame0_steps / pilot_steps).
        stretch = max(1, round(config.pilot_frame0_steps / max(settings.steps, 1))) if self.phase is Phase.PILOT0 else 1
        return settings.learning_rates(step, stretch)

    def optimizer_step(self) -> int:
        """Masked RMSprop on the active grid (after the trainer's backward); returns the voxels updated."""
        if self.phase is None:
            return 0
        grid = self.grid_of(self.phase)
        lr_density, lr_sh = self.phase_learning_rates()
        updated = grid.step(self.allowed, lr_density, lr_sh)
        self.phase_step += 1
        if self.phase is Phase.FRAME0 and self.config.frame0_upsample_every > 0:
            level = min(self.phase_step // self.config.frame0_upsample_every, len(self.frame0_specs) - 1)
            if self.frame0_specs[level] != grid.spec:
                grid.set(
                    resample(grid.sparse(), self.frame0_specs[level], self.config.density_threshold,
                             self.config.frame0_dilation)
                )  # fmt: skip
                self.allowed = grid.allowed(self.update_mask)
        return updated

    def _sparsify_and_prune(self, grid: GridState, dilation: int, prune_threshold: float | None) -> None:
        """``sparsify_voxel_grid`` (density >= threshold, dilated) then ``preprune`` (new voxels with small SH)."""
        current = grid.sparse()
        kept = kept_voxels(current, self.config.density_threshold, dilation)
        if prune_threshold is not None and self.previous is not None:
            new = occupied_indices(kept & ~self.previous[1])
            rows = current.rows(new)  # -1 for voxels empty now: their SH is 0
            strength = torch.zeros(new.shape[0], device=new.device)
            present = rows >= 0
            strength[present] = current.data[rows[present], 1:].detach().abs().sum(1)
            kept.reshape(-1)[new[strength < prune_threshold]] = False
        grid.set(reoccupy(current, kept))

    def finish_phase(self) -> EncodedGrid | FrameDelta:
        """End the current phase: re-sparsify, encode (whole grid or delta), continue from what a decoder rebuilds."""
        config = self.config
        phase = self.phase
        assert phase is not None
        grid = self.grid_of(phase)
        grid.reset_optimizer()  # the phase has had its steps: its RMS state is not needed any more
        if phase is Phase.FRAME0:
            if grid.spec != self.full_spec:  # fewer steps than the upsampling schedule: finish at full resolution
                grid.set(resample(grid.sparse(), self.full_spec, config.density_threshold, config.frame0_dilation))
            self.previous = None
            self._sparsify_and_prune(grid, config.dilate_after, None)
            record, decoded = encode_grid(grid.occupied_values(), grid.occupancy)
            grid.set(SparseGrid(grid.spec, *decoded))
        elif phase is Phase.PILOT0:
            self.previous = None
            self._sparsify_and_prune(grid, config.pass_settings(pilot=True).dilate_after, None)
            record, decoded = encode_grid(grid.occupied_values(), grid.occupancy)
            grid.set(SparseGrid(grid.spec, *decoded))
        else:
            is_pilot = phase is Phase.PILOT
            settings = config.pass_settings(pilot=is_pilot)
            assert self.previous is not None
            self._sparsify_and_prune(grid, settings.dilate_after, settings.sh_prune_threshold)
            previous_values, previous_occupancy = self.previous
            record, decoded = encode_delta(
                previous_values,
                previous_occupancy,
                grid.occupied_values(),
                grid.occupancy,
                settings.sh_keep_threshold,
            )
            if is_pilot:
                occupancy = grid.occupancy
                added = occupancy & ~previous_occupancy
                # kept voxels whose SH the stored delta changes (reverted ones are equal to the previous frame)
                kept_now = previous_occupancy.reshape(-1)[occupied_indices(occupancy)]
                kept_before = occupancy.reshape(-1)[occupied_indices(previous_occupancy)]
                rows_now, rows_before = torch.nonzero(kept_now)[:, 0], torch.nonzero(kept_before)[:, 0]
                moved = sh_change(previous_values, rows_before, decoded[0], rows_now) > 0
                changed = added.clone()
                changed.reshape(-1)[occupied_indices(occupancy)[kept_now][moved]] = True
                self.guidance = PilotGuidance(changed=changed, added=added, removed=previous_occupancy & ~occupancy)
            grid.set(SparseGrid(grid.spec, *decoded))
        grid.reset_optimizer()
        if phase in (Phase.FRAME0, Phase.FULL):
            self.full_frame = self.phase_frame
        self.previous = None
        self.phase = None
        self.update_mask = None
        self.allowed = None
        return record

    def mark_frame_finished(self, frame: int) -> None:
        self.finished_frames = frame + 1
        self.frames_done.fill_(frame + 1)

    # --- rendering -----------------------------------------------------------------------------------------

    def frame_of_times(self, times: Optional[Tensor], count: int) -> Tensor:
        """Frame index of each ray: ``round(time * (T - 1))``, clamped; ``default_time`` for rays without times."""
        return nearest_frame(ray_times(times, count, self.config.default_time, self.device), self.num_frames)

    def stored_grid(self, frame: int) -> SparseGrid:
        """A stored frame as a sparse grid on the model's device; the last one is kept, so that rendering it chunk by
        chunk builds its ``links`` once."""
        assert self.player is not None
        values, occupancy = self.player.grid(frame)
        if self._stored is None or self._stored[0] is not values:
            self._stored = (values, SparseGrid(self.full_spec, values.to(self.device), occupancy.to(self.device)))
        return self._stored[1]

    def stored_frames(self) -> int:
        """Frames in the store (each call looks at the folder)."""
        return self.player.store.num_finished() if self.player is not None else 0

    def newest_trained_frame(self, stored: Optional[int] = None) -> int:
        """The last frame with a grid of its own: the frame the live full grid is training or last finished, or the
        newest stored frame; -1 before any. Later frames were never trained (an unfinished or interrupted run).
        ``stored``: :meth:`stored_frames`, when the caller has just read it."""
        stored = self.stored_frames() if stored is None else stored
        newest = max(stored, self.finished_frames) - 1
        if self.full is not None:
            live = self.phase_frame if self.phase in (Phase.FRAME0, Phase.FULL) else self.full_frame
            newest = max(newest, live)
        return newest

    def grid_for_frame(self, frame: int) -> GridLookup:
        """The grid shown at ``frame``: stored frames by replay (or the live grid when it is that frame), the live grid
        for the frame it is training; an empty grid (the background) for a frame never trained, so that an unfinished
        run never shows another frame's grid as this one's."""
        stored = self.stored_frames()
        live = None if self.full is None else self.full.lookup()
        live_is_stored = live is not None and self.phase not in (Phase.FRAME0, Phase.FULL) and self.finished_frames > 0
        if frame < stored and not (live_is_stored and frame == self.finished_frames - 1):
            assert self.player is not None
            return self.stored_grid(frame)
        if frame > self.newest_trained_frame(stored):
            return self.empty_grid()
        if live is not None:
            return live
        raise RuntimeError("StreamRF has no trained frame to render yet")

    def empty_grid(self) -> SparseGrid:
        """No occupied voxel: every ray sees the background."""
        device = self.device
        occupancy = torch.zeros(self.full_spec.shape, dtype=torch.bool, device=device)
        return SparseGrid(self.full_spec, torch.zeros((0, GRID_CHANNELS), device=device), occupancy)

    def render_grid(
        self, grid: GridLookup, origins: Tensor, directions: Tensor, stop_thresh: float
    ) -> Dict[str, Tensor]:
        ndc_origins, ndc_directions, valid = ndc_rays(origins, directions, self.ndc_coeffs)
        use_nerfacc = self.config.sampler == "nerfacc" or (
            self.config.sampler == "auto" and NerfaccSampler.available(origins.device)
        )
        if use_nerfacc:
            spec = grid.spec
            sampler = self._nerfacc.get(spec)
            if sampler is None:
                sampler = self._nerfacc[spec] = NerfaccSampler(spec, origins.device)
            sampler.set_occupancy(grid.occupancy)
            return sampler.render(
                grid, ndc_origins, ndc_directions, valid, self.config.step_size,
                self.config.background_brightness, stop_thresh,
            )  # fmt: skip
        return render_rays_torch(
            grid, ndc_origins, ndc_directions, valid,
            self.config.step_size, self.config.background_brightness, stop_thresh,
        )  # fmt: skip

    def get_outputs(self, ray_bundle: Union[RayBundle, Cameras]) -> Dict[str, Union[Tensor, List]]:
        if not isinstance(ray_bundle, RayBundle):
            raise TypeError("StreamRF renders ray bundles")
        shape = ray_bundle.shape
        origins = ray_bundle.origins.reshape(-1, 3)
        directions = ray_bundle.directions.reshape(-1, 3)
        if self.training and self.phase is not None:
            grid = self.grid_of(self.phase)
            pilot = self.phase in (Phase.PILOT0, Phase.PILOT)
            stop = (
                self.config.frame0_stop_thresh
                if self.phase is Phase.FRAME0
                else self.config.pass_settings(pilot=pilot).stop_thresh
            )
            outputs = self.render_grid(grid, origins, directions, stop)
        else:

            def render_frame(frame: int, rows: Tensor) -> Dict[str, Tensor]:
                grid = self.grid_for_frame(frame)
                stop = self.config.frame0_stop_thresh if frame == 0 else self.config.stop_thresh
                return self.render_grid(grid, origins[rows], directions[rows], stop)

            outputs = render_grouped(self.frame_of_times(ray_bundle.times, origins.shape[0]), render_frame)
        return {key: value.reshape(*shape, *value.shape[1:]) for key, value in outputs.items()}

    # --- losses and metrics --------------------------------------------------------------------------------

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        image = batch["image"].to(self.device)[..., :3]
        metrics = {"psnr": self.psnr(outputs["rgb"].detach(), image)}
        metrics["samples_per_ray"] = outputs["num_samples"].float().mean()
        return metrics

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        image = batch["image"].to(self.device)[..., :3]
        losses = {"rgb_loss": torch.mean((outputs["rgb"] - image) ** 2)}
        if self.training and self.phase is not None:
            grid = self.grid_of(self.phase)
            if self.config.tv_density > 0:
                losses["tv_density_loss"] = self.config.tv_density * grid.total_variation(
                    slice(0, 1), self.config.tv_sparsity
                )
            if self.config.tv_sh > 0:
                losses["tv_sh_loss"] = self.config.tv_sh * grid.total_variation(slice(1, None), self.config.tv_sparsity)
        return losses

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        image = batch["image"].to(outputs["rgb"].device)[..., :3]
        rgb = outputs["rgb"].clamp(0.0, 1.0)
        acc = colormaps.apply_colormap(outputs["accumulation"])
        depth = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
        metrics = image_quality(rgb, image, self.psnr, self.ssim, self.lpips)
        images = {"img": torch.cat([image, rgb], dim=1), "accumulation": acc, "depth": depth}
        return metrics, images

    def get_param_groups(self) -> Dict[str, List[torch.nn.Parameter]]:
        # The grids are stepped by MaskedRMSprop (optimizer_step), not by nerfstudio's optimizers.
        return {}
