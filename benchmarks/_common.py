"""Helpers every benchmark script shares (scripts import it from their own folder)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerfstudio_methods.atomic import replace_atomically as atomic_write  # noqa: F401 - the benchmarks import it from here


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` while several benchmark processes merge their runs into it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_results(path: Path) -> dict[str, Any]:
    """A results file another process wrote (``--merge``), or a one-line stop naming it when it cannot be read."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"error: {path}: cannot read the results ({error})") from None


def refuse_other_settings(path: Path, stored: dict[str, Any] | None, now: dict[str, Any]) -> None:
    """Stop, naming the settings that differ, when the results file at ``path`` was made with settings other than
    ``now`` (``stored`` None: nothing stored yet)."""
    if stored is not None and stored != now:
        changed = sorted(name for name in now if now[name] != stored.get(name))
        raise SystemExit(f"{path}: made with other settings ({', '.join(changed)}); write to another --output")


def spread(per_seed: dict[str, float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds (None when a seed has no value: then the mean is over the
    others and ``missing`` counts them)."""
    values = [value for value in per_seed.values() if value is not None]
    return {
        "mean": float(np.mean(values)) if values else None,
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0 if values else None,
        "per_seed": per_seed,
        "missing": len(per_seed) - len(values),
    }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_sized_nerfacto(
    model: Any, hash_levels: int, log2_hashmap_size: int, max_res: int, proposal_samples: int, nerf_samples: int
) -> None:
    """Shrinks a ``NerfactoModelConfig`` in place to a size that trains on a CPU in minutes: the torch hash grid
    (no tiny-cuda-nn here) with ``hash_levels`` levels of ``2**log2_hashmap_size`` entries up to ``max_res``, one
    proposal network with ``proposal_samples`` samples (the soft-mining code's 1 x NGPDensityField, 5 levels, max
    res 128; brief A2.7) and ``nerf_samples`` final samples per ray."""
    model.implementation = "torch"
    model.num_levels = hash_levels
    model.log2_hashmap_size = log2_hashmap_size
    model.max_res = max_res
    model.num_proposal_iterations = 1
    model.proposal_net_args_list = [
        {"hidden_dim": 16, "log2_hashmap_size": 15, "num_levels": 5, "max_res": 128, "use_linear": False}
    ]
    model.num_proposal_samples_per_ray = (proposal_samples,)
    model.num_nerf_samples_per_ray = nerf_samples
    model.eval_num_rays_per_chunk = 4096


def benchmark_trainer_config(config: Any, name: str, output: Path, steps: int, seed: int) -> None:
    """Sets a ``TrainerConfig`` up in place for an in-process benchmark run: ``steps`` steps, seed ``seed``, one
    checkpoint at the end under ``output/runs/name/.../bench``, no evaluation during training, tensorboard instead
    of the viewer, CUDA when there is one."""
    config.experiment_name = name
    config.timestamp = "bench"
    config.output_dir = output / "runs"
    config.vis = "tensorboard"
    config.max_num_iterations = steps
    config.steps_per_save = steps
    config.steps_per_eval_batch = steps + 1
    config.steps_per_eval_image = steps + 1
    config.steps_per_eval_all_images = steps + 1
    config.save_only_latest_checkpoint = True
    config.machine.device_type = "cuda" if torch.cuda.is_available() else "cpu"
    config.machine.seed = seed
    config.viewer.quit_on_train_completion = True


def train_step(trainer: Any, step: int) -> None:
    """One training iteration as ``Trainer.train`` runs it: the pipeline's callbacks before and after
    ``train_iteration`` (nerfacto's proposal-weight annealing and proposal update schedule, the InfoNeRF losses'
    step counter for the KL schedule and the entropy end step)."""
    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    trainer.pipeline.train()
    for callback in trainer.callbacks:
        callback.run_callback_at_location(step, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
    trainer.train_iteration(step)
    for callback in trainer.callbacks:
        callback.run_callback_at_location(step, location=TrainingCallbackLocation.AFTER_TRAIN_ITERATION)


def train_step_callbacks(pipeline: Any, optimizers: Any) -> Callable[[int, bool], None]:
    """The pipeline's training callbacks (nerfacto's proposal-weight annealing, soft mining's population update), as
    ``run(step, before)`` to call before and after each step of a hand-written training loop, as ``Trainer.train``
    runs them."""
    from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation

    callbacks = pipeline.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=optimizers, grad_scaler=None, pipeline=pipeline, trainer=None)
    )

    def run(step: int, before: bool) -> None:
        location = (
            TrainingCallbackLocation.BEFORE_TRAIN_ITERATION
            if before
            else TrainingCallbackLocation.AFTER_TRAIN_ITERATION
        )
        for callback in callbacks:
            callback.run_callback_at_location(step, location)

    return run


def timed_train_step(
    pipeline: Any, optimizers: Any, run_callbacks: Callable[[int, bool], None], step: int
) -> tuple[float, float]:
    """One step of a hand-written training loop (callbacks from :func:`train_step_callbacks`, as ``Trainer.train``
    runs them); returns its (CPU, wall-clock) seconds."""
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    run_callbacks(step, True)
    optimizers.zero_grad_all()
    _, loss_dict, _ = pipeline.get_train_loss_dict(step)
    functools.reduce(torch.add, loss_dict.values()).backward()
    optimizers.optimizer_step_all()
    run_callbacks(step, False)
    optimizers.scheduler_step_all(step)
    return time.process_time() - cpu_start, time.perf_counter() - wall_start


def apply_smoke_settings(parser: Any, args: Any, settings: dict[str, Any], name: str) -> None:
    """``--smoke``: refuse ``--gpu``, take the tiny ``settings`` and write ``<temporary folder>/<name>.json`` unless
    ``--output`` names a file; without it, ``--output`` defaults to ``bench_results/<name>.json``."""
    if args.smoke:
        if getattr(args, "gpu", False):
            parser.error("--smoke and --gpu exclude each other")
        for key, value in settings.items():
            setattr(args, key, value)
    if args.output is None:
        folder = Path(tempfile.mkdtemp(prefix=f"{name}_smoke_")) if args.smoke else Path("bench_results")
        args.output = folder / f"{name}.json"
