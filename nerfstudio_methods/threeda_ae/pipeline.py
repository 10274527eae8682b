"""``TriplanePipeline``: batches of whole images, phases in epochs, scenes spread over processes, per-scene eval.

- Training: the datamanager's image batch goes to :meth:`TriplaneModel.get_train_outputs`. The phases' lengths are
  given in epochs; the pipeline turns them into steps once the data is known and sets the trainer's number of
  iterations to match (logged).
- Several processes (``--machine.num-devices N``): no DDP wrapper. Each process trains its own range of scenes
  (the datamanager); weights every scene uses (MLP, global bases, autoencoder) start from rank 0's values and their
  gradients are averaged before every optimizer step, so they stay identical on all ranks. Before a checkpoint is
  written or the run ends, every process receives every scene's planes and counters from the process that owns it,
  so rank 0's checkpoint holds all scenes.
- Stage 2 (``stage_one_checkpoint``): the autoencoder, the latent normaliser and the global bases come from a
  stage-1 run; its scenes must not overlap this run's.
- ``ns-eval``: PSNR, SSIM (and LPIPS when its weights are local) in RGB over every held-out image, their mean and
  the mean per scene (``psnr_scene_index00`` ...).
- Each process writes ``scene_stats/rank{r}.json`` at the end of training: per-scene images trained, training
  seconds and memory, and a checksum of the shared weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Type

import torch
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE
from torch.cuda.amp.grad_scaler import GradScaler

from nerfstudio_methods.atomic import write_atomically
from nerfstudio_methods.checkpoints import load_tensor_file, renamed_state_key
from nerfstudio_methods.compat.checkpoint_files import newest_complete_checkpoint
from nerfstudio_methods.evaluation import evaluate_eval_images
from nerfstudio_methods.input_errors import DatasetFormatError
from nerfstudio_methods.multiscene import (
    SCENE_INDEX_KEY,
    average_gradients_before_step,
    broadcast_from_first_process,
    combine_rank_bits,
    process_rank_and_count,
    share_scene_state,
)
from nerfstudio_methods.threeda_ae.autoencoder import autoencoder_origin
from nerfstudio_methods.threeda_ae.datamanager import MultiSceneImageDataManager, MultiSceneImageDataManagerConfig
from nerfstudio_methods.threeda_ae.model import (
    OLD_STATE_NAMES,
    SHARED_GROUPS,
    TriplaneModel,
    TriplaneModelConfig,
    checksum,
)


@dataclass
class TriplanePipelineConfig(VanillaPipelineConfig):
    """See the module doc."""

    _target: Type = field(default_factory=lambda: TriplanePipeline)
    datamanager: MultiSceneImageDataManagerConfig = field(default_factory=MultiSceneImageDataManagerConfig)
    model: TriplaneModelConfig = field(default_factory=TriplaneModelConfig)
    stage_one_checkpoint: Optional[Path] = None
    """Stage 2: a stage-1 (``3da-ae``) run folder, its ``nerfstudio_models`` folder or one ``step-*.ckpt``; its
    autoencoder, latent normaliser and global bases are taken over."""
    requires_stage_one: bool = False
    """Refuse to train without ``stage_one_checkpoint`` (``3da-ae-exploit``: a random latent space is no use)."""


def find_checkpoint(path: Path) -> Path:
    """The file itself, or the newest complete ``step-N.ckpt`` of a run folder's ``nerfstudio_models`` folder or of
    the folder itself (:func:`~nerfstudio_methods.compat.checkpoint_files.newest_complete_checkpoint`, as nerfstudio's
    loaders choose: a newer truncated one is skipped, in one line)."""
    path = Path(path)
    if path.is_file():
        return path
    for folder in (path / "nerfstudio_models", path):
        found = newest_complete_checkpoint(folder, say=CONSOLE.print)
        if found is not None:
            return found[1]
    raise DatasetFormatError(path, "no stage-1 checkpoint (step-*.ckpt) found here or in nerfstudio_models/")


STAGE_ONE_PREFIXES = ("autoencoder.", "normalizer.", "scenes.global_bases", "background", "latent_space_ready")


class TriplanePipeline(VanillaPipeline):
    """See the module doc."""

    config: TriplanePipelineConfig
    datamanager: MultiSceneImageDataManager
    _model: TriplaneModel

    def __init__(
        self,
        config: TriplanePipelineConfig,
        device: str,
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        grad_scaler: Optional[GradScaler] = None,
    ) -> None:
        if test_mode == "val" and config.requires_stage_one and config.stage_one_checkpoint is None:
            raise DatasetFormatError(
                "--pipeline.stage-one-checkpoint",
                "missing: stage 2 learns new scenes in the latent space of a stage-1 (3da-ae) run; give its folder",
            )
        # No DDP: the model is not wrapped; processes share work through the datamanager's scene ranges instead.
        super().__init__(config, device, test_mode, world_size=1, local_rank=local_rank, grad_scaler=grad_scaler)
        self.rank, self.world_size = process_rank_and_count()
        model = self.model
        assert isinstance(model, TriplaneModel)
        model.rank = self.rank
        model.steps_per_epoch = self.datamanager.steps_per_epoch
        height, width = self.datamanager.image_size()
        model.calibration_size = (height, width)
        model.training_focal = float(self.datamanager.train_dataset.cameras.fy.median())
        model.calibration_source = self.datamanager.sample_training_images
        if model.latent and (height % model.downscale or width % model.downscale):
            raise DatasetFormatError(
                self.datamanager.get_datapath(),
                f"images of {width}x{height} cannot be encoded by an autoencoder that shrinks by {model.downscale}",
            )
        if test_mode == "val" and config.stage_one_checkpoint is not None:
            self.load_stage_one(Path(config.stage_one_checkpoint))
        elif test_mode == "val" and model.autoencoder is not None and self.rank == 0:
            CONSOLE.print(autoencoder_origin(model.autoencoder, config.model.autoencoder, model.pretrained_autoencoder))
        broadcast_from_first_process(model.shared_parameters() + list(model.buffers()))

    @property
    def triplane_model(self) -> TriplaneModel:
        model = self.model
        assert isinstance(model, TriplaneModel)
        return model

    def load_stage_one(self, path: Path) -> None:
        """Take over a stage-1 run's autoencoder, normaliser and global bases; refuse overlapping scenes."""
        model = self.triplane_model
        checkpoint_path = find_checkpoint(path)
        loaded = load_tensor_file(checkpoint_path, "stage-1 checkpoint")
        if not isinstance(loaded, dict) or not isinstance(loaded.get("pipeline"), dict):
            raise DatasetFormatError(checkpoint_path, "is not a nerfstudio checkpoint (no 'pipeline' state)")
        state = {k.removeprefix("_model.").removeprefix("module."): v for k, v in loaded["pipeline"].items()}
        state = {renamed_state_key(k, OLD_STATE_NAMES): v for k, v in state.items()}
        taken = {k: v for k, v in state.items() if k.startswith(STAGE_ONE_PREFIXES)}
        if not any(k.startswith("autoencoder.") for k in taken):
            raise DatasetFormatError(checkpoint_path, "holds no autoencoder: is it a 3da-ae (stage 1) run?")
        own = model.state_dict()
        wrong = [
            f"{k} {tuple(v.shape)} (here {tuple(own[k].shape)})"
            for k, v in taken.items()
            if k in own and own[k].shape != v.shape
        ]
        missing = [k for k in own if k.startswith(STAGE_ONE_PREFIXES) and k not in taken]
        if wrong or missing:
            detail = "; ".join(wrong[:3] + [f"missing {k}" for k in missing[:3]])
            raise DatasetFormatError(
                checkpoint_path,
                f"does not match this run's autoencoder / global planes ({detail}); use the same settings as the "
                "stage-1 run (e.g. 3da-ae-exploit-cpu after 3da-ae-cpu)",
            )
        stage_one_ids = state.get("scene_ids")
        if isinstance(stage_one_ids, torch.Tensor):
            # All-zero ids are scenes without names (datasets that give none): they cannot be compared.
            seen = {bytes(row.tolist()) for row in stage_one_ids.to(torch.uint8) if row.any()}
            overlap = [i for i, row in enumerate(model.scene_ids) if row.any() and bytes(row.tolist()) in seen]
            if overlap:
                names = self.datamanager.train_dataset.metadata.get("scene_names") or []
                shown = ", ".join(str(names[i]) if i < len(names) else str(i) for i in overlap[:3])
                raise DatasetFormatError(
                    self.datamanager.get_datapath(),
                    f"{len(overlap)} of this run's scenes ({shown}{', ...' if len(overlap) > 3 else ''}) were trained "
                    f"in stage 1 ({checkpoint_path}); choose scenes outside that run's range "
                    "(--pipeline.datamanager.dataparser.scene-start / --num-scenes)",
                )
        model.load_state_dict(taken, strict=False)
        CONSOLE.print(f"3Da-AE stage 2: autoencoder, latent normaliser and global planes taken from {checkpoint_path}")

    # --- training --------------------------------------------------------------------------------------------

    def get_train_loss_dict(self, step: int):
        cameras, batch = self.datamanager.next_train(step)
        model = self.triplane_model
        outputs = model.get_train_outputs(cameras, batch)
        metrics = model.get_metrics_dict(outputs, batch)
        losses = model.get_loss_dict(outputs, batch, metrics)
        return outputs, losses, metrics

    @torch.no_grad()
    def get_eval_loss_dict(self, step: int):
        self.eval()
        cameras, batch = self.datamanager.next_eval_batch(step)
        model = self.triplane_model
        outputs = model.get_train_outputs(cameras, {**batch, "image_idx": -1 - batch["image_idx"]})
        metrics = model.get_metrics_dict(outputs, batch)
        losses = model.get_loss_dict(outputs, batch, metrics)
        self.train()
        return outputs, losses, metrics

    def share_scenes(self) -> None:
        """Every process gets every scene's planes and counters from its owner (before checkpoints / the end)."""
        if self.world_size == 1:
            return
        model = self.triplane_model
        per_scene = [
            model.scenes.scene_parameters(s)
            + [model.scene_images_trained[s : s + 1], model.scene_train_seconds[s : s + 1]]
            for s in range(model.num_scenes)
        ]
        share_scene_state(per_scene, self.datamanager.owned_scenes)
        combine_rank_bits(model.scene_trained_by_ranks)

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        model = self.triplane_model
        trainer = training_callback_attributes.trainer
        optimizers = training_callback_attributes.optimizers
        start = int(getattr(trainer, "_start_step", 0)) if trainer is not None else 0
        total = model.total_steps()
        if trainer is not None:
            trainer.config.max_num_iterations = max(total - start, 0)
        phases = ", ".join(f"{name} {steps}" for (name, _), steps in zip(model.active_phases(), model.phase_steps()))
        CONSOLE.print(
            f"3Da-AE: {total} steps ({phases}; {model.steps_per_epoch} steps per epoch of "
            f"{len(self.datamanager.train_dataset)} images, {self.datamanager.config.images_per_batch} per step"
            + (f" on each of {self.world_size} processes" if self.world_size > 1 else "")
            + ")"
        )
        if self.world_size > 1 and optimizers is not None:
            for name in SHARED_GROUPS:
                if name in optimizers.optimizers:
                    average_gradients_before_step(optimizers.optimizers[name])
        steps_per_save = trainer.config.steps_per_save if trainer is not None else 0
        last_step = start + total - 1

        def share_before_save(step: int) -> None:
            if step == last_step or (steps_per_save and step % steps_per_save == 0 and step != 0):
                self.share_scenes()

        def write_scene_stats(step: int) -> None:
            self.share_scenes()
            if trainer is not None:
                self.write_scene_stats(Path(trainer.base_dir), optimizers)

        callbacks = model.get_training_callbacks(training_callback_attributes)
        callbacks.append(
            TrainingCallback(where_to_run=[TrainingCallbackLocation.AFTER_TRAIN_ITERATION], func=share_before_save)
        )
        callbacks.append(TrainingCallback(where_to_run=[TrainingCallbackLocation.AFTER_TRAIN], func=write_scene_stats))
        return callbacks

    def write_scene_stats(self, run_dir: Path, optimizers: Any) -> Path:
        """``scene_stats/rank{r}.json``: this process's view of per-scene time and memory (module doc)."""
        model = self.triplane_model
        owned = self.datamanager.owned_scenes
        stats = {
            "rank": self.rank,
            "world_size": self.world_size,
            "owned_scenes": [owned.start, owned.stop],
            "scene_images_trained": model.scene_images_trained.tolist(),
            "scene_train_seconds": model.scene_train_seconds.tolist(),
            "scene_trained_by_ranks": model.scene_trained_by_ranks.tolist(),
            "memory": model.scene_memory(optimizers),
            "scene_parameter_floats": model.scenes.scene_parameter_count(),
            "shared_parameter_floats": sum(p.numel() for p in model.shared_parameters()),
            "shared_weights_sha256": checksum(list(model.shared_parameters())),
            "owned_scene_sha256": {str(s): checksum(list(model.scenes.scene_parameters(s))) for s in owned},
            "latent_scale": float(model.normalizer.scale) if model.latent else None,
            "latent_background": model.background.tolist(),
        }
        path = run_dir / "scene_stats" / f"rank{self.rank}.json"
        write_atomically(path, json.dumps(stats, indent=2).encode())
        return path

    # --- evaluation ------------------------------------------------------------------------------------------

    def get_average_eval_image_metrics(
        self, step: Optional[int] = None, output_path: Optional[Path] = None, get_std: bool = False
    ) -> Dict[str, float]:
        return evaluate_eval_images(self, output_path=output_path, get_std=get_std, group_key=SCENE_INDEX_KEY)
