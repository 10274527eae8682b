"""``StreamRFPipeline``: the whole video in one ``ns-train`` run, within nerfstudio's trainer loop.

The trainer calls one training step after another; this pipeline maps them onto StreamRF's per-frame loop (brief
§1.3, "true streaming" order: the pilot trains frame t just before the full grid does):

    frame 0:   FRAME0 (frame0_steps) -> PILOT0 (pilot_frame0_steps)
    frame t:   PILOT (pilot_steps)   -> FULL (steps_per_frame)

A training-callback before each step starts the next phase when needed (model grid, datamanager frame, batch size);
one after each step applies the masked RMSprop update and, when a phase has had its steps, finishes it: the model
re-sparsifies and encodes the grid, and the record is written atomically to the run's frame store (frame 0 whole,
later frames as deltas; :mod:`.store`). A frame is finished when its last phase is stored; a progress line reports
its time, its delta size and the held-out camera's PSNR.

Resuming: the stores are the source of truth. At start-up (and, with ``--load-dir``, after :class:`.StreamRFTrainer`
copied the earlier run's stores into this run) the pipeline replays the finished frames and continues with the first
unfinished one; the partly trained frame is retrained. Checkpoints hold no grids, only the frame counter.

Evaluation (``ns-eval``): the held-out camera at every frame; ``get_average_eval_image_metrics`` returns the means
over frames plus ``psnr_frame_XXXX`` / ``ssim_frame_XXXX`` per frame.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Literal, Optional, Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from nerfstudio_methods import compat
from nerfstudio_methods.evaluation import evaluate_per_frame
from nerfstudio_methods.input_errors import DatasetFormatError, SettingError
from nerfstudio_methods.streamrf.codec import FrameDelta, encode_grid
from nerfstudio_methods.streamrf.datamanager import StreamRFDataManager, StreamRFDataManagerConfig
from nerfstudio_methods.streamrf.model import Phase, StreamRFModel, StreamRFModelConfig
from nerfstudio_methods.streamrf.store import FrameStore, GridPlayer
from nerfstudio_methods.timeline import write_camera_path_across_time


@dataclass(frozen=True)
class PhaseRun:
    frame: int
    phase: Phase
    steps: int


def check_schedule(num_frames: int, config: StreamRFModelConfig) -> None:
    """Refuse, in one line, a schedule under which some frame would be stored without being trained (it would be a
    copy of the frame before it, shown and evaluated as if it were its own)."""
    needed = [("--pipeline.model.frame0-steps", config.frame0_steps, "frame 0 is trained from scratch")]
    if num_frames > 1:
        needed.append(
            ("--pipeline.model.steps-per-frame", config.steps_per_frame, f"frames 1-{num_frames - 1} are trained")
        )
    if config.use_pilot:
        reason = "the pilot grid finds each frame's changes (--pipeline.model.use-pilot False streams without it)"
        needed.append(("--pipeline.model.pilot-frame0-steps", config.pilot_frame0_steps, reason))
        if num_frames > 1:
            needed.append(("--pipeline.model.pilot-steps", config.pilot_steps, reason))
    for option, steps, reason in needed:
        if steps < 1:
            raise SettingError(
                option, f"{steps} step(s) would store frames that were never trained; needs at least 1 ({reason})"
            )


def frames_stored_after(schedule: list[PhaseRun], position: int, steps: int) -> int:
    """How many frames the store holds after ``steps`` more training steps from ``schedule[position]`` (the frames
    before that phase's frame are stored already; a frame is stored when its last phase has had all its steps)."""
    stored = schedule[position].frame if position < len(schedule) else schedule[-1].frame + 1
    for index in range(position, len(schedule)):
        steps -= schedule[index].steps
        if steps < 0:
            break
        if index + 1 == len(schedule) or schedule[index + 1].frame != schedule[index].frame:
            stored = schedule[index].frame + 1
    return stored


def build_schedule(num_frames: int, config: StreamRFModelConfig) -> list[PhaseRun]:
    """The phases of a whole sequence, in training order (see the module doc)."""
    runs = [PhaseRun(0, Phase.FRAME0, config.frame0_steps)]
    if config.use_pilot:
        runs.append(PhaseRun(0, Phase.PILOT0, config.pilot_frame0_steps))
    for frame in range(1, num_frames):
        if config.use_pilot:
            runs.append(PhaseRun(frame, Phase.PILOT, config.pass_settings(pilot=True).steps))
        runs.append(PhaseRun(frame, Phase.FULL, config.pass_settings(pilot=False).steps))
    return runs


@dataclass
class StreamRFPipelineConfig(VanillaPipelineConfig):
    """Frame schedule, frame store and playback settings of a StreamRF run."""

    _target: Type = field(default_factory=lambda: StreamRFPipeline)
    datamanager: StreamRFDataManagerConfig = field(default_factory=StreamRFDataManagerConfig)
    model: StreamRFModelConfig = field(default_factory=StreamRFModelConfig)
    frame_store: Optional[Path] = None
    """Folder of this run's stored frames; None (the default): <run>/streamrf_frames, beside the config.yml that is
    loaded (StreamRFTrainerConfig), so a moved run reads its own frames."""
    keyframe_every: int = 30
    """Also store a whole grid every this many frames, so seeking replays at most this many deltas (0: never)."""
    heldout_psnr_per_frame: bool = True
    """Render the held-out camera after each frame for the progress line (and log.jsonl)."""


class StreamRFPipeline(VanillaPipeline):
    """See the module doc."""

    config: StreamRFPipelineConfig
    datamanager: StreamRFDataManager
    _model: StreamRFModel

    multi_process_refusal: ClassVar[Optional[str]] = (
        "its voxel grids are plain tensors, re-created at every upsampling and frame and stepped by its own "
        "optimiser, so DDP has no parameters to average across processes; use --machine.num-devices 1"
    )
    """Read by ``ns-train`` before it spawns processes (nerfstudio_methods.compat): why N > 1 cannot train."""

    def __init__(
        self,
        config: StreamRFPipelineConfig,
        device: str,
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        grad_scaler: Optional[Any] = None,
    ) -> None:
        if world_size > 1:
            raise ValueError(f"StreamRF cannot train with {world_size} processes: {self.multi_process_refusal}")
        compat.install()  # ns-render's script has finished importing by now: its fix can go in (compat, 8)
        super().__init__(config, device, test_mode, world_size, local_rank, grad_scaler)
        self.num_frames = int(self.datamanager.train_dataparser_outputs.metadata["num_frames"])
        if test_mode == "val":  # training
            check_schedule(self.num_frames, self.model.config)
        self.schedule = build_schedule(self.num_frames, self.model.config)
        self.position = 0
        self.started = False
        self.frame_started_at = 0.0
        self.frame_cpu_started_at = 0.0
        self.phase_cpu_started_at = 0.0
        self.frame_log: list[dict[str, Any]] = []
        self.trainer: Any = None
        self.full_store: Optional[FrameStore] = None
        self.pilot_store: Optional[FrameStore] = None
        if config.frame_store is not None:
            self.attach_store(Path(config.frame_store), training=test_mode == "val")

    @property
    def model(self) -> StreamRFModel:
        return self._model

    # --- frame store and resume ----------------------------------------------------------------------------

    def store_meta(self, pilot: bool) -> dict[str, Any]:
        model = self.model
        spec = model.pilot_spec if pilot else model.full_spec
        metadata = self.datamanager.train_dataparser_outputs.metadata
        return {
            "resolution": list(spec.resolution),
            "radius": [round(r, 9) for r in spec.radius],
            "num_frames": self.num_frames,
            "frame_numbers": list(metadata.get("frame_numbers", [])),
        }

    def attach_store(self, root: Path, training: bool) -> None:
        """Use ``root`` as the frame store; in training, check it and resume from its finished frames."""
        self.full_store = FrameStore(root)
        self.pilot_store = FrameStore(root / "pilot") if self.model.config.use_pilot else None
        self.model.attach_player(GridPlayer(self.full_store, self.model.device))
        if not training:
            if self.full_store.num_finished() == 0:
                CONSOLE.print(f"[yellow]StreamRF: no stored frames in {root}; renders need a trained run")
            self.model.finished_frames = self.full_store.num_finished()
            return
        self.full_store.ensure_meta(self.store_meta(pilot=False))
        if self.pilot_store is not None:
            self.pilot_store.ensure_meta(self.store_meta(pilot=True))
        self.write_heldout_camera_path(root.parent / "camera_paths" / "heldout_camera.json")
        self.resume_from_store()

    def resume_from_store(self) -> int:
        """Replay the finished frames into the model and continue with the first unfinished one; returns it."""
        assert self.full_store is not None
        finished = self.full_store.num_finished()
        if self.pilot_store is not None:
            finished = min(finished, self.pilot_store.num_finished())
            self.pilot_store.remove_frames_from(finished)
        self.full_store.remove_frames_from(finished)  # frames whose pilot or full pass did not finish are redone
        self.started = False
        if finished == 0:
            self.position = 0
            return 0
        finished = min(finished, self.num_frames)
        device = self.model.device
        full = GridPlayer(self.full_store, device).grid(finished - 1)
        pilot = None if self.pilot_store is None else GridPlayer(self.pilot_store, device).grid(finished - 1)
        self.model.restore(full, pilot, finished)
        self.position = next((i for i, run in enumerate(self.schedule) if run.frame >= finished), len(self.schedule))
        CONSOLE.print(
            f"StreamRF: resuming after {finished} finished frame(s) of {self.num_frames} from {self.full_store.root}"
        )
        return finished

    def remaining_steps(self) -> int:
        return sum(run.steps for run in self.schedule[self.position :])

    def frames_stored_within(self, steps: int) -> int:
        return frames_stored_after(self.schedule, self.position, steps)

    def write_heldout_camera_path(self, path: Path) -> None:
        """A viewer-style camera path: the held-out camera at every frame's time, for ``ns-render camera-path``."""
        fps = float(self.datamanager.train_dataparser_outputs.metadata.get("fps", 30.0))
        write_camera_path_across_time(path, self.datamanager.eval_dataset.cameras, fps)

    # --- the per-frame loop --------------------------------------------------------------------------------

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        self.trainer = training_callback_attributes.trainer
        return [
            *super().get_training_callbacks(training_callback_attributes),
            TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], self.before_step),
            TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], self.after_step),
        ]

    @property
    def done(self) -> bool:
        return self.position >= len(self.schedule)

    def before_step(self, step: int) -> None:
        if self.done or self.started:
            return
        run = self.schedule[self.position]
        if self.position == 0 or self.schedule[self.position - 1].frame != run.frame:
            self.frame_started_at = time.perf_counter()  # first phase of a frame
            self.frame_cpu_started_at = time.process_time()
        if self.full_store is None:
            raise RuntimeError("StreamRF needs a frame store: run it with ns-train (StreamRFTrainer sets one)")
        self.datamanager.set_frame(run.frame)
        if run.phase is not Phase.FRAME0:
            self.datamanager.set_rays_per_batch(self.datamanager.config.train_num_rays_per_batch)
        self.model.start_phase(run.phase, run.frame)
        self.phase_started_at = time.perf_counter()
        self.phase_cpu_started_at = time.process_time()
        self.started = True
        if run.steps == 0:  # nothing to train: store it as it is
            self.finish_current_phase()
            self.before_step(step)

    def after_step(self, step: int) -> None:
        if self.done or not self.started:
            return
        self.model.optimizer_step()
        if self.model.phase_step >= self.schedule[self.position].steps:
            self.finish_current_phase()
            if self.done and self.trainer is not None:
                self.trainer.stop_training = True

    def finish_current_phase(self) -> None:
        run = self.schedule[self.position]
        record = self.model.finish_phase()
        seconds = time.perf_counter() - self.phase_started_at
        # CPU seconds of this process as well: on a shared machine wall-clock time follows the load.
        cpu_seconds = time.process_time() - self.phase_cpu_started_at
        is_pilot = run.phase in (Phase.PILOT0, Phase.PILOT)
        store = self.pilot_store if is_pilot else self.full_store
        assert store is not None
        size = store.write_frame(run.frame, record)
        grid = self.model.grid_of(run.phase)
        entry: dict[str, Any] = {
            "frame": run.frame,
            "phase": run.phase.value,
            "steps": run.steps,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "bytes": size,
            "occupied": int(grid.occupancy.sum()),
        }
        if isinstance(record, FrameDelta):
            entry.update(added=record.num_added, changed=record.num_changed)
        self.frame_log.append(entry)
        self.position += 1
        self.started = False
        last_of_frame = self.done or self.schedule[self.position].frame != run.frame
        if last_of_frame:
            self.finish_frame(run.frame)

    def finish_frame(self, frame: int) -> None:
        assert self.full_store is not None
        self.model.mark_frame_finished(frame)
        if self.config.keyframe_every > 0 and frame > 0 and frame % self.config.keyframe_every == 0:
            full = self.model.grid_of(Phase.FULL)
            self.full_store.write_keyframe(frame, encode_grid(full.occupied_values(), full.occupancy)[0])
        entries = [e for e in self.frame_log if e["frame"] == frame]
        total = time.perf_counter() - self.frame_started_at
        summary: dict[str, Any] = {
            "frame": frame,
            "seconds": total,
            "cpu_seconds": time.process_time() - self.frame_cpu_started_at,
            "phases": {e["phase"]: {k: v for k, v in e.items() if k not in ("frame", "phase")} for e in entries},
            "bytes": sum(e["bytes"] for e in entries if e["phase"] in ("frame0", "full")),
        }
        if self.config.heldout_psnr_per_frame:
            summary["heldout_psnr"] = self.heldout_psnr(frame)
        with open(self.full_store.root / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(summary) + "\n")
        psnr = f" | held-out PSNR {summary['heldout_psnr']:.2f} dB" if "heldout_psnr" in summary else ""
        full_entry = next((e for e in entries if e["phase"] in ("frame0", "full")), {})
        changes = (
            f", {full_entry['added']} added + {full_entry['changed']} changed voxels" if "added" in full_entry else ""
        )
        CONSOLE.print(
            f"[bold]StreamRF frame {frame + 1}/{self.num_frames}[/bold]: {total:.1f} s, "
            f"{summary['bytes'] / 1024:.1f} KB stored{changes}{psnr}"
        )

    @torch.no_grad()
    def heldout_psnr(self, frame: int) -> float:
        """PSNR of the held-out camera at ``frame`` (the first eval image of that frame)."""
        dataset = self.datamanager.eval_dataset
        frame_index = dataset.metadata["frame_index"] if "frame_index" in dataset.metadata else None
        if frame_index is None:
            return math.nan
        matches = torch.nonzero(frame_index == frame)[:, 0]
        if matches.numel() == 0:
            return math.nan
        index = int(matches[0])
        camera = dataset.cameras[index : index + 1].to(self.device)
        was_training = self.model.training
        self.model.eval()
        outputs = self.model.get_outputs_for_camera(camera)
        if was_training:
            self.model.train()
        image = dataset.get_image_float32(index)[..., :3].to(self.device)
        mse = torch.mean((outputs["rgb"].clamp(0, 1) - image) ** 2)
        return float(-10.0 * torch.log10(mse.clamp_min(1e-10)))

    # --- evaluation ----------------------------------------------------------------------------------------

    def get_average_eval_image_metrics(
        self, step: Optional[int] = None, output_path: Optional[Path] = None, get_std: bool = False
    ) -> Dict[str, float]:
        """Mean (and std over frames) of PSNR/SSIM on the held-out camera at every trained frame, plus per-frame
        values; a run whose stream is unfinished is measured on the frames it trained, and says how many are missing
        (``frames_missing``)."""
        trained = self.trained_frames()
        result = evaluate_per_frame(self, output_path=output_path, get_std=get_std, frames_available=trained)
        result["frames_missing"] = float(self.num_frames - trained)
        return result

    def trained_frames(self) -> int:
        """Frames 0 .. N-1 that have their own grid; says in one line when that is not the whole video, and stops
        with one line naming the store when there is none."""
        trained = self.model.newest_trained_frame() + 1
        where = self.full_store.root if self.full_store is not None else "this run"
        if trained <= 0:
            raise DatasetFormatError(Path(str(where)), "no trained frame: the run stopped before frame 0 was stored")
        if trained < self.num_frames:
            missing = self.num_frames - trained
            CONSOLE.print(
                f"[yellow]StreamRF: unfinished run: {trained} of {self.num_frames} frames trained in {where}; "
                f"frames {trained}-{self.num_frames - 1} ({missing}) are missing and left out"
            )
        return trained

    def trained_cameras(self, cameras: Cameras) -> Optional[Tensor]:
        """For ``ns-render``: the indices of ``cameras`` whose time falls on a trained frame (None: all of them), so
        that the video of an unfinished run stops at its last trained frame instead of repeating it."""
        trained = self.trained_frames()
        if trained >= self.num_frames:
            return None
        times = None if cameras.times is None else cameras.times.reshape(-1)
        frames = self.model.frame_of_times(times, len(cameras)).cpu()
        return torch.nonzero(frames < trained)[:, 0]
