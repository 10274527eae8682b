"""How strong is InfoNeRF's entropy term next to the colour loss? A diagnostic for the few-shot lego benchmark.

Trains ``infonerf`` in the benchmark's CPU-sized configuration (``infonerf_fewshot_lego.py``, same defaults) and,
every ``--every`` steps, on one fresh training batch, measures the gradient norm of the fine colour loss and of the
weighted entropy loss with respect to the fine field's parameters, and their ratio. Writes
``<output>/infonerf_gradient_ratio.json``.

Usage: ``python benchmarks/infonerf_gradient_ratio.py [--steps 800] [--every 200] [--entropy-lambda 0.001]``

``--smoke``: 4 steps, measured every 2, at the few-shot benchmark's smoke size (``SMOKE_MODEL``), into a temporary
folder unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import infonerf_fewshot_lego as fewshot  # noqa: E402


def gradient_norm(loss: torch.Tensor, parameters: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum(((grad**2).sum() for grad in grads if grad is not None), torch.zeros(()))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fewshot.add_model_arguments(parser)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--entropy-lambda", type=float, default=0.001)
    args = parser.parse_args()
    fewshot.finish_model_arguments(args, "infonerf_gradient_ratio_smoke_")
    if args.smoke:
        args.steps, args.every = 4, 2
    if not fewshot.LEGO.is_dir():
        print(f"error: {fewshot.LEGO}: lego not found (expected ../shared/data beside the repo)", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    records = []
    with tempfile.TemporaryDirectory(prefix="lego_gradient_ratio_") as tmp:
        data = fewshot.prepare_lego(Path(tmp) / "lego", args.size)
        config = fewshot.variant_config(
            data, Path(tmp), "gradient_ratio", args.steps, args.seed, True, args, args.entropy_lambda
        )
        random.seed(args.seed)
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)
        trainer = config.setup(local_rank=0, world_size=1)
        trainer.setup()
        pipeline = trainer.pipeline
        model = pipeline.model
        parameters = [p for p in model.field_fine.parameters() if p.requires_grad]
        for step in range(args.steps + 1):
            if step % args.every == 0:
                ray_bundle, batch = pipeline.datamanager.next_train(step)
                outputs = model(ray_bundle)
                losses = model.get_loss_dict(outputs, batch)
                entropy_bits = float(model.regulariser_terms(outputs, batch)["ray_entropy"])
                colour = gradient_norm(losses["rgb_loss_fine"], parameters)
                entropy = gradient_norm(losses["entropy_loss"], parameters)
                records.append(
                    {
                        "step": step,
                        "fine_colour_loss": float(losses["rgb_loss_fine"]),
                        "mean_ray_entropy_bits": entropy_bits,
                        "grad_norm_fine_colour": colour,
                        "grad_norm_weighted_entropy": entropy,
                        "entropy_to_colour_ratio": entropy / colour,
                    }
                )
                print(json.dumps(records[-1]), flush=True)
            if step < args.steps:
                fewshot.train_step(trainer, step)
    report = {
        "diagnostic": "gradient norms on the fine field: fine colour loss vs weighted ray entropy",
        "setup": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "max_entropy_bits": float(np.log2(args.coarse_samples + args.fine_samples)),
        "records": records,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "infonerf_gradient_ratio.json"
    path.with_suffix(".tmp").write_text(json.dumps(report, indent=2))
    os.replace(path.with_suffix(".tmp"), path)
    print(f"results -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
