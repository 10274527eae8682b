"""Per-step cost of soft mining, interleaved: uniform sampling, soft mining, and soft mining without the Langevin drift
(``langevin_drift = 0``: no gradient is requested at the pixel positions, so no backward pass reaches them), in blocks
that take turns so that machine load hits all three.

Uses the convergence benchmark's lego configuration (``soft_mining_convergence.py``). Writes
``<output>/soft_mining_step_cost.json`` with median and mean step times and the ratios to uniform.

Usage: ``python benchmarks/soft_mining_step_cost.py [--blocks 4] [--block-steps 25] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
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
    convergence.add_model_arguments(parser)
    args = parser.parse_args()
    if not convergence.SCENES["lego"].is_dir():
        sys.exit(f"missing dataset: {convergence.SCENES['lego']}")
    torch.set_num_threads(max(1, args.threads))
    import nerfstudio_methods.soft_mining.config  # noqa: F401  (installs the compat fixes: offline LPIPS)

    setups = {variant: build(variant, args) for variant in ("uniform", "soft-mining", "soft-mining-no-drift")}
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
