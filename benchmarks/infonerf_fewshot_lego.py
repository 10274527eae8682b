"""Few-shot lego: ``infonerf`` against the same model with both regularizer weights at 0.

Trains both variants in one process, for the same steps and seed, on the 4 standard training views
(26, 86, 2, 55 of transforms_train.json; brief B3) of ../shared/data/nerf_synthetic/lego, downscaled so that the
whole run fits in about 30 minutes on a 2-core CPU. Evaluates PSNR and SSIM (LPIPS when its weights are cached) on
held-out views (the local lego copy has no test split, so every 8th val view), and writes:

- ``<output>/infonerf_fewshot_lego.json``: configuration, per-variant metrics and timings, and the PSNR/SSIM gains;
- ``<output>/infonerf_fewshot_lego.png``: for one held-out view, ground truth, then RGB and depth of each variant.

Usage: ``python benchmarks/infonerf_fewshot_lego.py [--size 64] [--steps 600] [--output bench_results]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
LEGO = REPO.parent / "shared" / "data" / "nerf_synthetic" / "lego"


def prepare_lego(destination: Path, size: int) -> Path:
    """A downscaled copy of lego (train + val; val doubles as test) in Blender layout, outside the repo."""
    for split in ("train", "val"):
        meta = json.loads((LEGO / f"transforms_{split}.json").read_text())
        (destination / split).mkdir(parents=True, exist_ok=True)
        for frame in meta["frames"]:
            with Image.open(LEGO / f"{frame['file_path']}.png") as image:
                image.resize((size, size), Image.Resampling.LANCZOS).save(destination / f"{frame['file_path']}.png")
        (destination / f"transforms_{split}.json").write_text(json.dumps(meta))
    return destination


def variant_config(
    data: Path, output: Path, name: str, steps: int, seed: int, regularized: bool, args: argparse.Namespace
):
    from nerfstudio_methods.infonerf.config import infonerf

    config = copy.deepcopy(infonerf.config)
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
    datamanager = config.pipeline.datamanager
    datamanager.data = data
    datamanager.train_num_rays_per_batch = args.rays
    datamanager.num_unseen_rays = args.rays
    datamanager.precrop_iters = min(datamanager.precrop_iters, steps // 4)
    model = config.pipeline.model
    model.num_coarse_samples = args.coarse_samples
    model.num_importance_samples = args.fine_samples
    model.mlp_layer_width = args.width
    model.coarse_mlp_num_layers = args.layers
    model.fine_mlp_num_layers = args.layers
    model.density_activation = args.density_activation
    model.eval_num_rays_per_chunk = 4096
    if not regularized:
        model.entropy_lambda = 0.0
        model.kl_lambda = 0.0
    return config


def train_and_evaluate(config) -> dict[str, Any]:
    """Train with nerfstudio's own Trainer, then evaluate every held-out view."""
    # ns-train seeds in its launcher, not in TrainerConfig.setup: seed here so both variants start identically.
    random.seed(config.machine.seed)
    np.random.seed(config.machine.seed)
    torch.manual_seed(config.machine.seed)
    started = time.perf_counter()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()
    train_seconds = time.perf_counter() - started
    pipeline = trainer.pipeline
    pipeline.eval()
    metrics = pipeline.get_average_eval_image_metrics(get_std=True)
    return {"pipeline": pipeline, "metrics": metrics, "train_seconds": train_seconds}


def render_view(pipeline, index: int) -> dict[str, np.ndarray]:
    from nerfstudio.utils import colormaps

    dataset = pipeline.datamanager.eval_dataset
    camera = dataset.cameras[index : index + 1].to(pipeline.device)
    with torch.no_grad():
        outputs = pipeline.model.get_outputs_for_camera(camera)
    depth = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
    return {
        "rgb": outputs["rgb"].cpu().numpy(),
        "depth": depth.cpu().numpy(),
        "accumulation": outputs["accumulation"].cpu().numpy(),
        "gt": dataset[index]["image"][..., :3].numpy(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32, help="image side after downscaling 800x800 lego")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--rays", type=int, default=256, help="seen rays per step (and as many unseen rays)")
    parser.add_argument("--coarse-samples", type=int, default=32)
    parser.add_argument("--fine-samples", type=int, default=32)
    parser.add_argument("--width", type=int, default=64, help="MLP width (paper: 256)")
    parser.add_argument("--layers", type=int, default=4, help="depth of the coarse and fine MLPs (paper: 8)")
    parser.add_argument("--density-activation", choices=["relu", "softplus"], default="relu", help="paper: relu")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=REPO / "bench_results")
    args = parser.parse_args()
    if not LEGO.is_dir():
        print(f"error: {LEGO}: lego not found (expected ../shared/data beside the repo)", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    results: dict[str, Any] = {
        "benchmark": "infonerf few-shot lego (4 views: 26, 86, 2, 55)",
        "setup": {
            "image_size": args.size,
            "steps": args.steps,
            "seen_rays_per_step": args.rays,
            "unseen_rays_per_step": args.rays,
            "samples": [args.coarse_samples, args.fine_samples],
            "mlp_width": args.width,
            "mlp_layers": args.layers,
            "density_activation": args.density_activation,
            "seed": args.seed,
            "device": "cuda" if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
            "eval_views": "val[::8] (the local lego has no test split)",
            "note": "scaled down from the paper (800 px, 50k steps, 1024+1024 rays, 64+128 samples, 8x256 MLPs) to fit ~30 min on CPU",
        },
        "variants": {},
    }
    renders = {}
    with tempfile.TemporaryDirectory(prefix="lego_fewshot_") as tmp:
        data = prepare_lego(Path(tmp) / "lego", args.size)
        for name, regularized in (("nerf_no_regularizers", False), ("infonerf", True)):
            print(f"[bench] training {name} for {args.steps} steps", flush=True)
            config = variant_config(data, args.output, name, args.steps, args.seed, regularized, args)
            run = train_and_evaluate(config)
            results["variants"][name] = {
                "entropy_lambda": config.pipeline.model.entropy_lambda,
                "kl_lambda": config.pipeline.model.kl_lambda,
                "train_seconds": round(run["train_seconds"], 1),
                "metrics": run["metrics"],
            }
            renders[name] = render_view(run["pipeline"], 0)
            # An empty (collapsed) scene renders pure background: report it rather than a misleading PSNR.
            results["variants"][name]["view0_mean_accumulation"] = float(renders[name]["accumulation"].mean())
            print(f"[bench] {name}: {json.dumps(run['metrics'])}", flush=True)

    base, info = (results["variants"][k]["metrics"] for k in ("nerf_no_regularizers", "infonerf"))
    results["infonerf_minus_baseline"] = {
        key: info[key] - base[key] for key in ("psnr", "ssim", "lpips") if key in base and key in info
    }
    json_path = args.output / "infonerf_fewshot_lego.json"
    json_path.with_suffix(".tmp").write_text(json.dumps(results, indent=2))
    os.replace(json_path.with_suffix(".tmp"), json_path)

    gt = renders["infonerf"]["gt"]
    rows = [
        np.concatenate([gt, renders[k]["rgb"], renders[k]["depth"]], axis=1)
        for k in ("nerf_no_regularizers", "infonerf")
    ]
    figure = (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).astype(np.uint8)
    figure = np.kron(figure, np.ones((4, 4, 1), dtype=np.uint8))  # enlarge tiny renders for viewing
    png_path = args.output / "infonerf_fewshot_lego.png"
    Image.fromarray(figure).save(png_path)
    print(f"[bench] rows: no regularizers / infonerf; columns: ground truth, RGB, depth -> {png_path}")
    print(f"[bench] results -> {json_path}")
    print(json.dumps(results["infonerf_minus_baseline"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
