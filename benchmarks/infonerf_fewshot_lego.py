"""Few-shot lego: ``infonerf`` against the same model with both regularizer weights at 0.

Trains both variants in one process, for the same steps and seed, on the 4 standard training views
(26, 86, 2, 55 of transforms_train.json; brief B3) of ../shared/data/nerf_synthetic/lego, downscaled so that the
whole run fits in about 30 minutes on a 2-core CPU. Evaluates PSNR and SSIM (LPIPS when its weights are cached) on
held-out views (the local lego copy has no test split, so every 8th val view), and writes:

- ``<output>/infonerf_fewshot_lego.json``: configuration, per-variant metrics and timings, and the PSNR/SSIM gains;
- ``<output>/infonerf_fewshot_lego.png``: for one held-out view, ground truth, then RGB and depth of each variant;
- ``<output>/infonerf_fewshot_lego_curves.png``: held-out PSNR and mean opacity against step for both variants.

Usage: ``python benchmarks/infonerf_fewshot_lego.py [--size 32] [--steps 1500] [--lr 2e-3] [--output bench_results]``

``--smoke``: the same run at a tiny size (16 px, 2 x 16 MLPs, 8 + 8 samples, 32 rays, 6 steps, one thread), into a
temporary folder unless ``--output`` is given: a check that the benchmark still runs, not a measurement.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import atomic_write, benchmark_trainer_config, seed_everything, train_step  # noqa: E402

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
    data: Path,
    output: Path,
    name: str,
    steps: int,
    seed: int,
    regularized: bool,
    args: argparse.Namespace,
    entropy_lambda: float | None = None,
):
    from nerfstudio_methods.infonerf.config import infonerf

    config = copy.deepcopy(infonerf.config)
    benchmark_trainer_config(config, name, output, steps, seed)
    datamanager: Any = config.pipeline.datamanager
    datamanager.data = data
    datamanager.train_num_rays_per_batch = args.rays
    datamanager.num_unseen_rays = args.rays
    datamanager.precrop_iters = min(datamanager.precrop_iters, steps // 4)
    model: Any = config.pipeline.model
    model.num_coarse_samples = args.coarse_samples
    model.num_importance_samples = args.fine_samples
    model.mlp_layer_width = args.width
    model.coarse_mlp_num_layers = args.layers
    model.fine_mlp_num_layers = args.layers
    model.density_activation = args.density_activation
    model.eval_num_rays_per_chunk = 4096
    config.optimizers["fields"]["optimizer"].lr = args.lr
    if not regularized:
        model.entropy_lambda = 0.0
        model.kl_lambda = 0.0
    elif entropy_lambda is not None:
        model.entropy_lambda = entropy_lambda
    return config


@torch.no_grad()
def held_out_snapshot(pipeline) -> dict[str, float]:
    """Mean PSNR and mean accumulated opacity over the held-out views, rendered in full: how far the scene is from
    the fog stage (lego covers about a quarter of a view, so a foggy field has a far higher opacity)."""
    pipeline.eval()
    dataset = pipeline.datamanager.eval_dataset
    psnrs, opacities = [], []
    for index in range(len(dataset)):
        camera = dataset.cameras[index : index + 1].to(pipeline.device)
        outputs = pipeline.model.get_outputs_for_camera(camera)
        target = dataset[index]["image"][..., :3].to(pipeline.device)
        psnrs.append(float(-10 * torch.log10(torch.mean((outputs["rgb"].clamp(0, 1) - target) ** 2))))
        opacities.append(float(outputs["accumulation"].mean()))
    pipeline.train()
    return {"psnr": float(np.mean(psnrs)), "accumulation": float(np.mean(opacities))}


def train_and_evaluate(config, eval_every: int) -> dict[str, Any]:
    """Train with nerfstudio's own Trainer iteration (logging held-out PSNR and opacity every ``eval_every`` steps),
    then evaluate every held-out view with the pipeline's own metrics (what ns-eval reports)."""
    # ns-train seeds in its launcher, not in TrainerConfig.setup: seed here so both variants start identically.
    seed_everything(config.machine.seed)
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    pipeline = trainer.pipeline
    curve = [{"step": 0, "seconds": 0.0, **held_out_snapshot(pipeline)}]
    train_seconds = 0.0
    for step in range(config.max_num_iterations):
        started = time.perf_counter()
        train_step(trainer, step)
        train_seconds += time.perf_counter() - started
        if (step + 1) % eval_every == 0 or step + 1 == config.max_num_iterations:
            curve.append({"step": step + 1, "seconds": train_seconds, **held_out_snapshot(pipeline)})
            print(
                f"[bench] {config.experiment_name} step {step + 1}: held-out PSNR {curve[-1]['psnr']:.2f} dB, "
                f"opacity {curve[-1]['accumulation']:.3f}, {train_seconds:.0f} s",
                flush=True,
            )
    pipeline.eval()
    metrics = pipeline.get_average_eval_image_metrics(get_std=True)
    return {"pipeline": pipeline, "metrics": metrics, "train_seconds": train_seconds, "curve": curve}


def all_white_psnr(dataset) -> float:
    """Mean PSNR of an empty scene (every pixel the white background) on the held-out views: the floor a trained
    field must beat before its geometry means anything."""
    values = [
        float(-10 * torch.log10(torch.mean((1.0 - dataset[i]["image"][..., :3]) ** 2))) for i in range(len(dataset))
    ]
    return float(np.mean(values))


def plot_curves(variants: dict, white: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in variants.items():
        steps = [point["step"] for point in run["held_out_curve"]]
        axes[0].plot(steps, [point["psnr"] for point in run["held_out_curve"]], marker=".", label=name)
        axes[1].plot(steps, [point["accumulation"] for point in run["held_out_curve"]], marker=".", label=name)
    axes[0].axhline(white, color="grey", linestyle="--", label="empty scene (all white)")
    axes[0].set(title="held-out PSNR", xlabel="step", ylabel="dB")
    axes[1].set(title="held-out mean opacity (fog)", xlabel="step", ylabel="accumulation")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    plt.close(figure)


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


SMOKE_MODEL = {
    "size": 16,
    "rays": 32,
    "coarse_samples": 8,
    "fine_samples": 8,
    "width": 16,
    "layers": 2,
    "threads": 1,
}
"""``--smoke``'s scene and model sizes (both scripts)."""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The CPU-sized scene and model options, shared with ``infonerf_gradient_ratio.py``."""
    parser.add_argument("--size", type=int, default=32, help="image side after downscaling 800x800 lego")
    parser.add_argument(
        "--lr",
        type=float,
        default=2e-3,
        help="Adam learning rate (paper: 5e-4 for 8x256 MLPs; the 4x64 MLPs here leave the fog stage sooner at 2e-3)",
    )
    parser.add_argument("--rays", type=int, default=256, help="seen rays per step (and as many unseen rays)")
    parser.add_argument("--coarse-samples", type=int, default=32)
    parser.add_argument("--fine-samples", type=int, default=32)
    parser.add_argument("--width", type=int, default=64, help="MLP width (paper: 256)")
    parser.add_argument("--layers", type=int, default=4, help="depth of the coarse and fine MLPs (paper: 8)")
    parser.add_argument("--density-activation", choices=["relu", "softplus"], default="relu", help="paper: relu")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=None, help="results folder (bench_results)")
    parser.add_argument("--smoke", action="store_true", help="a tiny end-to-end run, to a temporary folder")


def finish_model_arguments(args: argparse.Namespace, smoke_prefix: str) -> None:
    """``--smoke``: the tiny sizes of ``SMOKE_MODEL``; the output folder (default ``bench_results``; a temporary
    folder named ``smoke_prefix...`` for a smoke run)."""
    if args.smoke:
        for key, value in SMOKE_MODEL.items():
            setattr(args, key, value)
    if args.output is None:
        args.output = Path(tempfile.mkdtemp(prefix=smoke_prefix)) if args.smoke else REPO / "bench_results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument(
        "--extra-entropy-weights",
        type=float,
        nargs="*",
        default=[],
        help="also train infonerf with these entropy weights (the preset's is 0.001)",
    )
    parser.add_argument("--eval-every", type=int, default=100, help="steps between held-out PSNR/opacity snapshots")
    args = parser.parse_args()
    finish_model_arguments(args, "infonerf_fewshot_lego_smoke_")
    if args.smoke:
        args.steps, args.eval_every, args.extra_entropy_weights = 6, 3, [0.01]
    if not LEGO.is_dir():
        print(f"error: {LEGO}: lego not found (expected ../shared/data beside the repo)", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, args.threads))

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
            "learning_rate": args.lr,
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
        variants: list[tuple[str, bool, float | None]] = [
            ("nerf_no_regularizers", False, None),
            ("infonerf", True, None),
        ]
        variants += [(f"infonerf_entropy_{weight:g}", True, weight) for weight in args.extra_entropy_weights]
        for name, regularized, weight in variants:
            print(f"[bench] training {name} for {args.steps} steps", flush=True)
            config = variant_config(data, args.output, name, args.steps, args.seed, regularized, args, weight)
            run = train_and_evaluate(config, args.eval_every)
            model: Any = config.pipeline.model
            results["variants"][name] = {
                "entropy_lambda": model.entropy_lambda,
                "kl_lambda": model.kl_lambda,
                "train_seconds": round(run["train_seconds"], 1),
                "metrics": run["metrics"],
                "held_out_curve": run["curve"],
            }
            renders[name] = render_view(run["pipeline"], 0)
            if "reference_all_white_psnr" not in results:  # while the downscaled images still exist
                results["reference_all_white_psnr"] = all_white_psnr(run["pipeline"].datamanager.eval_dataset)
            # An empty (collapsed) scene renders pure background: report it rather than a misleading PSNR.
            results["variants"][name]["view0_mean_accumulation"] = float(renders[name]["accumulation"].mean())
            print(f"[bench] {name}: {json.dumps(run['metrics'])}", flush=True)

    base = results["variants"]["nerf_no_regularizers"]["metrics"]
    for name in list(results["variants"])[1:]:
        info = results["variants"][name]["metrics"]
        key_name = "infonerf_minus_baseline" if name == "infonerf" else f"{name}_minus_baseline"
        results[key_name] = {
            key: info[key] - base[key] for key in ("psnr", "ssim", "lpips") if key in base and key in info
        }
    json_path = args.output / "infonerf_fewshot_lego.json"
    atomic_write(json_path, lambda temporary: temporary.write_text(json.dumps(results, indent=2)))

    gt = renders["infonerf"]["gt"]
    rows = [np.concatenate([gt, renders[k]["rgb"], renders[k]["depth"]], axis=1) for k in renders]
    figure = (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).astype(np.uint8)
    figure = np.kron(figure, np.ones((4, 4, 1), dtype=np.uint8))  # enlarge tiny renders for viewing
    png_path = args.output / "infonerf_fewshot_lego.png"
    atomic_write(png_path, lambda temporary: Image.fromarray(figure).save(temporary, format="png"))
    print(f"[bench] rows: {', '.join(renders)}; columns: ground truth, RGB, depth -> {png_path}")
    plot_curves(
        results["variants"], results["reference_all_white_psnr"], args.output / "infonerf_fewshot_lego_curves.png"
    )
    print(f"[bench] results -> {json_path}")
    print(json.dumps(results["infonerf_minus_baseline"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
