"""Per-step cost of soft mining, interleaved: uniform sampling, soft mining, and soft mining with the rays detached
from the pixel positions (no backward pass into them), in blocks that take turns so that machine load hits all three.

Uses the convergence benchmark's lego configuration (``soft_mining_convergence.py``). Writes
``<output>/soft_mining_step_cost.json`` with median and mean step times and the ratios to uniform.

Usage: ``python benchmarks/soft_mining_step_cost.py [--blocks 4] [--block-steps 25] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soft_mining_convergence as convergence  # noqa: E402


def build(variant: str, args: argparse.Namespace):
    from nerfstudio.engine.callbacks import TrainingCallbackAttributes
    from nerfstudio.engine.optimizers import Optimizers

    convergence.seed_everything(args.seed)
    config, trainer = convergence.scene_config("lego", variant, args)
    pipeline = config.setup(device="cpu", test_mode="val")
    optimizers = Optimizers(trainer.optimizers, pipeline.get_param_groups())
    callbacks = pipeline.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=optimizers, grad_scaler=None, pipeline=pipeline, trainer=None)
    )
    return pipeline, optimizers, callbacks


def detach_rays_from_positions(pipeline) -> None:
    """Soft mining without the gradient at the positions: the same batches, rays and targets cut from them."""
    original = pipeline.datamanager.next_train

    def next_train(step: int):
        rays, batch = original(step)
        rays.origins = rays.origins.detach()
        rays.directions = rays.directions.detach()
        batch["image"] = batch["image"].detach()
        return rays, batch

    pipeline.datamanager.next_train = next_train


def timed_steps(pipeline, optimizers, callbacks, first: int, count: int) -> list[float]:
    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    seconds = []
    for step in range(first, first + count):
        start = time.perf_counter()
        for callback in callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        optimizers.zero_grad_all()
        _, loss_dict, _ = pipeline.get_train_loss_dict(step)
        sum(loss_dict.values()).backward()
        optimizers.optimizer_step_all()
        for callback in callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
        optimizers.scheduler_step_all(step)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--block-steps", type=int, default=25)
    parser.add_argument("--skip", type=int, default=10, help="first steps of each setup left out (warm-up)")
    parser.add_argument("--rays", type=int, default=512)
    parser.add_argument("--lego-scale", type=float, default=0.125)
    parser.add_argument("--hash-levels", type=int, default=8)
    parser.add_argument("--log2-hashmap-size", type=int, default=15)
    parser.add_argument("--max-res", type=int, default=256)
    parser.add_argument("--proposal-samples", type=int, default=32)
    parser.add_argument("--nerf-samples", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=convergence.REPO / "bench_results")
    args = parser.parse_args()
    args.fern_scale = 0.25  # unused (lego only), read by scene_config's signature
    if not convergence.SCENES["lego"].is_dir():
        sys.exit(f"missing dataset: {convergence.SCENES['lego']}")
    torch.set_num_threads(max(1, args.threads))
    import nerfstudio_methods.soft_mining.config  # noqa: F401  (installs the compat fixes: offline LPIPS)

    setups = {
        "uniform": build("uniform", args),
        "soft-mining": build("soft-mining", args),
        "soft-mining-rays-detached": build("soft-mining", args),
    }
    detach_rays_from_positions(setups["soft-mining-rays-detached"][0])
    seconds: dict[str, list[float]] = {name: [] for name in setups}
    for block in range(args.blocks):
        for name, setup in setups.items():
            seconds[name] += timed_steps(*setup, block * args.block_steps, args.block_steps)
        print(f"block {block + 1}/{args.blocks} done", flush=True)
    summary = {}
    for name, values in seconds.items():
        kept = values[args.skip :]
        summary[name] = {"median_ms": 1000 * float(np.median(kept)), "mean_ms": 1000 * float(np.mean(kept))}
    for entry in summary.values():
        entry["median_ratio_to_uniform"] = entry["median_ms"] / summary["uniform"]["median_ms"]
    report = {"configuration": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    report["steps_per_setup"] = args.blocks * args.block_steps - args.skip
    report["summary"] = summary
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "soft_mining_step_cost.json"
    convergence.atomic_write(path, lambda temporary: temporary.write_text(json.dumps(report, indent=2)))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
