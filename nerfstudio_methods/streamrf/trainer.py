"""``StreamRFTrainer``: nerfstudio's trainer, sized to the video and resumable frame by frame.

- The run's frame store is ``<run>/streamrf_frames`` (:data:`.store.FRAMES_DIR`). ``config.yml`` records no path:
  ``ns-eval``/``ns-render``/``ns-viewer`` read the frames (and checkpoints) beside the ``config.yml`` they load, so a
  run folder moved or copied elsewhere reads its own.
- ``--load-dir`` / ``--load-checkpoint`` resume an interrupted run: the finished frames of that run's store are copied
  into this run's store (the earlier run is left untouched) and training continues with the first unfinished frame.
  A run killed before it saved a checkpoint (no ``nerfstudio_models/`` yet) is resumed from its store alone.
  Re-running into the same run folder (same ``--timestamp``) resumes from its store directly.
- ``max_num_iterations`` becomes the number of steps the remaining frames need (the configured value is an upper
  bound), so progress and ETA are right and the run ends when the last frame is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Type

from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils.rich_utils import CONSOLE

from nerfstudio_methods.compat.video_frames import config_file_being_loaded
from nerfstudio_methods.input_errors import DatasetFormatError
from nerfstudio_methods.streamrf.pipeline import StreamRFPipeline, StreamRFPipelineConfig
from nerfstudio_methods.streamrf.store import FRAMES_DIR, FrameStore


@dataclass
class StreamRFTrainerConfig(TrainerConfig):
    """A TrainerConfig whose pipeline streams the frames of a video."""

    _target: Type = field(default_factory=lambda: StreamRFTrainer)
    pipeline: StreamRFPipelineConfig = field(default_factory=StreamRFPipelineConfig)
    max_num_iterations: int = 1_000_000_000
    """Upper bound on training steps; the run takes the steps its frames need (see StreamRFTrainer)."""

    def uses_default_frame_store(self) -> bool:
        """No ``--pipeline.frame-store`` of the user's: None, or the path runs before this change wrote into
        config.yml (their first folder's ``streamrf_frames``), which is read as the default."""
        store = self.pipeline.frame_store
        return store is None or Path(store) == self.get_base_dir() / FRAMES_DIR

    def assign_frame_store(self) -> Path:
        """``<run>/streamrf_frames`` unless ``--pipeline.frame-store`` names another folder. config.yml keeps no path,
        so a moved run reads its own frames."""
        if self.uses_default_frame_store():
            self.pipeline.frame_store = self.get_base_dir() / FRAMES_DIR
        assert self.pipeline.frame_store is not None
        return self.pipeline.frame_store

    def get_checkpoint_dir(self) -> Path:
        # ns-eval / ns-render / ns-viewer ask for this just before they build the pipeline: the run is the folder of
        # the config.yml they load, wherever it has been moved or copied to since training.
        loaded = config_file_being_loaded()
        if loaded is not None:
            run = loaded.parent
            if self.uses_default_frame_store():
                self.pipeline.frame_store = run / FRAMES_DIR
            return run / self.relative_model_dir
        return super().get_checkpoint_dir()


class StreamRFTrainer(Trainer):
    """See the module doc."""

    config: StreamRFTrainerConfig
    pipeline: StreamRFPipeline

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        self.config.assign_frame_store()
        super().setup(test_mode)

    def _has_checkpoint(self) -> bool:
        if self.config.load_checkpoint is not None:
            return Path(self.config.load_checkpoint).is_file()
        load_dir = Path(str(self.config.load_dir))
        return load_dir.is_dir() and any(load_dir.glob("step-*.ckpt"))

    def _earlier_run(self) -> Path | None:
        """The run folder that ``--load-dir`` / ``--load-checkpoint`` points into (None when neither is given)."""
        if self.config.load_dir is not None:
            return Path(self.config.load_dir).parent
        if self.config.load_checkpoint is not None:
            return Path(self.config.load_checkpoint).parent.parent
        return None

    def _load_checkpoint(self) -> None:
        """nerfstudio's checkpoint loading when there is a checkpoint; the earlier run's frame store either way.

        The frame store is the run's real state: a run killed before its first checkpoint (``kill -9``) has finished
        frames but no ``nerfstudio_models/`` yet, and resuming it with the README's ``--load-dir`` takes over those
        frames alone."""
        earlier_run = self._earlier_run()
        earlier_store = None if earlier_run is None else earlier_run / FRAMES_DIR
        checkpoint_given = self.config.load_dir is not None or self.config.load_checkpoint is not None
        if checkpoint_given and not self._has_checkpoint():
            given = Path(str(self.config.load_dir or self.config.load_checkpoint))
            if earlier_store is None or not earlier_store.is_dir():
                raise DatasetFormatError(
                    given, f"nothing to resume: no checkpoint there and no frame store at {earlier_store}"
                )
            CONSOLE.print(
                f"StreamRF: no checkpoint at {given} (the run stopped before saving one); resuming from its frame store"
            )
            load_dir, load_checkpoint = self.config.load_dir, self.config.load_checkpoint
            self.config.load_dir = self.config.load_checkpoint = None
            try:
                super()._load_checkpoint()
            finally:
                self.config.load_dir, self.config.load_checkpoint = load_dir, load_checkpoint
        else:
            super()._load_checkpoint()
        store = self.pipeline.full_store
        assert store is not None
        if earlier_store is not None:
            if not earlier_store.is_dir():
                CONSOLE.print(
                    f"[yellow]StreamRF: the loaded run has no frame store at {earlier_store}; starting at frame 0"
                )
            else:
                copied = store.copy_finished_from(FrameStore(earlier_store))
                CONSOLE.print(f"StreamRF: {copied} finished frame(s) taken over from {earlier_store}")
                self.pipeline.resume_from_store()
        remaining = self.pipeline.remaining_steps()
        if self.config.max_num_iterations < remaining:
            stored = self.pipeline.frames_stored_within(self.config.max_num_iterations)
            CONSOLE.print(
                f"[yellow]StreamRF: --max-num-iterations {self.config.max_num_iterations} is fewer than the "
                f"{remaining} steps the video needs: the run will stop with {stored} of {self.pipeline.num_frames} "
                "frames (resume it with --load-dir)"
            )
        self.config.max_num_iterations = min(self.config.max_num_iterations, remaining)
        CONSOLE.print(
            f"StreamRF: {self.pipeline.num_frames} frame(s), {self.config.max_num_iterations} training step(s) to go"
        )
