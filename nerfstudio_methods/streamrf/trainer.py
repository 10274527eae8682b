"""``StreamRFTrainer``: nerfstudio's trainer, sized to the video and resumable frame by frame.

- The run's frame store is ``<run>/streamrf_frames`` (:data:`.store.FRAMES_DIR`); the config records it before
  ``config.yml`` is written, so ``ns-eval``/``ns-render``/``ns-viewer`` find the frames of the run they load.
- ``--load-dir`` / ``--load-checkpoint`` resume an interrupted run: the finished frames of that run's store are copied
  into this run's store (the earlier run is left untouched) and training continues with the first unfinished frame.
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

from nerfstudio_methods.streamrf.pipeline import StreamRFPipeline, StreamRFPipelineConfig
from nerfstudio_methods.streamrf.store import FRAMES_DIR, FrameStore


@dataclass
class StreamRFTrainerConfig(TrainerConfig):
    """A TrainerConfig whose pipeline streams the frames of a video."""

    _target: Type = field(default_factory=lambda: StreamRFTrainer)
    pipeline: StreamRFPipelineConfig = field(default_factory=StreamRFPipelineConfig)
    max_num_iterations: int = 1_000_000_000
    """Upper bound on training steps; the run takes the steps its frames need (see StreamRFTrainer)."""

    def assign_frame_store(self) -> Path:
        if self.pipeline.frame_store is None:
            self.pipeline.frame_store = self.get_base_dir() / FRAMES_DIR
        return self.pipeline.frame_store

    def save_config(self) -> None:
        # ns-train calls this once, before training: record where this run's frames go.
        self.assign_frame_store()
        super().save_config()


class StreamRFTrainer(Trainer):
    """See the module doc."""

    config: StreamRFTrainerConfig
    pipeline: StreamRFPipeline

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        self.config.assign_frame_store()
        super().setup(test_mode)

    def _load_checkpoint(self) -> None:
        super()._load_checkpoint()
        earlier = None
        if self.config.load_dir is not None:
            earlier = Path(self.config.load_dir).parent / FRAMES_DIR
        elif self.config.load_checkpoint is not None:
            earlier = Path(self.config.load_checkpoint).parent.parent / FRAMES_DIR
        store = self.pipeline.full_store
        assert store is not None
        if earlier is not None:
            if not earlier.is_dir():
                CONSOLE.print(f"[yellow]StreamRF: the loaded run has no frame store at {earlier}; starting at frame 0")
            else:
                copied = store.copy_finished_from(FrameStore(earlier))
                CONSOLE.print(f"StreamRF: {copied} finished frame(s) taken over from {earlier}")
                self.pipeline.resume_from_store()
        remaining = self.pipeline.remaining_steps()
        self.config.max_num_iterations = min(self.config.max_num_iterations, remaining)
        CONSOLE.print(
            f"StreamRF: {self.pipeline.num_frames} frame(s), {self.config.max_num_iterations} training step(s) to go"
        )
