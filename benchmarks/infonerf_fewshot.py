"""Few-shot InfoNeRF on real data: each model with and without InfoNeRF's regularizers, same steps and seeds.

Scenes (../shared/data beside the repo):

- ``lego``: the 4 standard views (26, 86, 2, 55 of transforms_train.json; brief B3) of nerf_synthetic/lego, evaluated
  on the val split (the local lego has no test split);
- ``dtu``: DTU scan24 (dtu_monosdf, 49 views), InfoNeRF's 3 views 22, 25, 28, evaluated on the 46 others.

Held-out views come in two disjoint sets (``held_out_views``), both recorded in the JSON: the *tuning* views, on which
the CPU settings (the default variants) were searched (lego val[::8], DTU every ``--dtu-eval-skip``-th of the 46), and
the *report* views, on which the results are reported (lego the odd val views, DTU the other 46 - 12). A run's
``held_out`` holds the report views' metrics, ``held_out_tuning`` the tuning views'.

Models:

- ``nerfacto``: ``infonerf-nerfacto`` (this package's nerfacto + losses) with a CPU-sized torch hash grid;
- ``vanilla``: ``infonerf`` (vanilla NeRF base, the paper's model) at CPU size (4 x 64 MLPs, 32 + 32 samples).

A *variant* is one model with one regularizer setting; ``baseline`` is the same model with both weights at 0 and no
extra rays (so it costs what the plain model costs). Every variant of a scene and seed starts from the same weights
and sees the same seen-ray sequence until the unseen rays' random draws start (global RNG). Both models use the
in-process ``InfoNeRFDataManager`` here (nerfacto's ``ParallelDataManager`` worker would compete for the 2 cores and
draw its rays outside the seeded RNG; the preset ``infonerf-nerfacto`` uses it).

Per run it records held-out PSNR, SSIM (nerfstudio's metrics; LPIPS when its AlexNet weights are cached), the
training-view PSNR and the mean held-out opacity (the fog check: lego covers ~1/4 of a view), and per scene an
image: for one held-out view, the ground truth and, per variant of the first seed, RGB over depth.

Writes ``<output>/infonerf_fewshot.json`` (every run, its settings, the per-seed gains and their mean/std) and
``<output>/infonerf_fewshot_<scene>.png``.

``--paper`` runs the paper's setting (800 px lego, 50k steps, the presets' models and ray counts) for a GPU;
``--steps`` shortens any setting. Variants are given as ``model:name:key=value,...`` (see ``parse_variant``).

Usage::

    python benchmarks/infonerf_fewshot.py [--scenes lego dtu] [--seeds 0 1 2] [--steps 800] [--threads 2]
    python benchmarks/infonerf_fewshot.py --paper --output DIR [--steps 5000]
    python benchmarks/infonerf_fewshot.py --smoke [--output DIR]   # a tiny end-to-end check (temporary folder)

``--smoke`` runs both scenes, seed 0, one baseline and one regularized variant per model (``smoke_variants``), 6
steps at a tiny size (16 px lego, 24 px DTU, 3 DTU held-out views, 32 rays, a 4-level hash grid, 8 + 8 samples),
into a temporary folder unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (  # noqa: E402
    atomic_write,
    benchmark_trainer_config,
    cpu_sized_nerfacto,
    load_results,
    seed_everything,
    train_step,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SCENES = {"lego": DATA / "nerf_synthetic" / "lego", "dtu": DATA / "dtu_monosdf" / "scan24"}

VARIANT_KEYS = {
    "lambda": ("model", "entropy_lambda", float),
    "threshold": ("model", "entropy_acc_threshold", float),
    "seen": ("model", "entropy_on_seen_rays", lambda v: v in ("1", "true", "True")),
    "kl": ("model", "kl_lambda", float),
    "unseen": ("datamanager", "num_unseen_rays", int),
    "pose": ("datamanager", "unseen_pose_source", str),
    "perturb": ("datamanager", "perturb_max_deg", float),
    "neighbour": ("datamanager", "neighbour_rays", lambda v: v in ("1", "true", "True")),
    "background": ("model", "background_color", str),
    "end": ("model", "entropy_end_step", int),
    "init_density": ("model", "average_init_density", float),
    "neighbour_deg": ("datamanager", "neighbour_max_deg", float),
    "dist": ("model", "entropy_distribution", str),
}
"""Short names of the settings a variant may change: ``lambda=0.01,unseen=512,pose=perturb,seen=1``."""


def parse_variant(text: str) -> dict[str, Any]:
    """``model:name[:key=value,...]`` -> {"model", "name", "settings"}; ``baseline`` turns both weights off."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or parts[0] not in ("nerfacto", "vanilla"):
        raise argparse.ArgumentTypeError(f"variant {text!r}: expected model:name[:key=value,...]")
    settings: dict[str, str] = {}
    if len(parts) == 3 and parts[2]:
        for item in parts[2].split(","):
            key, _, value = item.partition("=")
            if key not in VARIANT_KEYS:
                raise argparse.ArgumentTypeError(f"variant {text!r}: unknown key {key!r} ({', '.join(VARIANT_KEYS)})")
            settings[key] = value
    return {"model": parts[0], "name": parts[1], "settings": settings}


def base_config(model_name: str, scene: str, args: argparse.Namespace):
    """The preset's TrainerConfig, resized for this run (CPU size unless ``--paper``)."""
    from nerfstudio_methods.infonerf.config import (
        infonerf_blender_config,
        infonerf_dtu_config,
        infonerf_nerfacto_config,
    )
    from nerfstudio_methods.infonerf.datamanager import InfoNeRFDataManagerConfig

    if model_name == "nerfacto":
        config = infonerf_nerfacto_config("blender" if scene == "lego" else "dtu")
    else:
        config = infonerf_blender_config() if scene == "lego" else infonerf_dtu_config()
    pipeline = config.pipeline
    old: Any = pipeline.datamanager  # the preset's (each preset has its own class)
    fields = {name: getattr(old, name) for name in ("num_unseen_rays", "neighbour_rays", "unseen_pose_source")}
    datamanager = InfoNeRFDataManagerConfig(
        dataparser=old.dataparser,
        train_num_rays_per_batch=old.train_num_rays_per_batch,
        eval_num_rays_per_batch=old.eval_num_rays_per_batch,
        seen_rays_from_one_image=model_name == "vanilla",  # nerf-pytorch's no_batching; nerfacto draws across images
        precrop_iters=getattr(old, "precrop_iters", 0),
        precrop_frac=getattr(old, "precrop_frac", 0.5),
        **fields,
    )
    datamanager.dataparser.data = SCENES[scene]
    if scene == "lego":  # every val view; held_out_views splits them into tuning and report views
        dataparser: Any = datamanager.dataparser  # the preset's BlenderFewShotDataParserConfig
        dataparser.eval_skip = 1
    pipeline.datamanager = datamanager
    model: Any = pipeline.model
    if args.paper:
        return config
    # CPU size
    datamanager.camera_res_scale_factor = args.lego_scale if scene == "lego" else args.dtu_scale
    datamanager.train_num_rays_per_batch = args.rays
    datamanager.num_unseen_rays = args.rays
    datamanager.precrop_iters = min(datamanager.precrop_iters, args.steps // 4)
    if model_name == "nerfacto":
        cpu_sized_nerfacto(
            model, args.hash_levels, args.log2_hashmap_size, args.max_res, args.proposal_samples, args.nerf_samples
        )
    else:
        model.num_coarse_samples = 32
        model.num_importance_samples = 32
        model.mlp_layer_width = 64
        model.coarse_mlp_num_layers = 4
        model.fine_mlp_num_layers = 4
        model.eval_num_rays_per_chunk = 4096
        config.optimizers["fields"]["optimizer"].lr = 2e-3  # 4x64 MLPs leave the fog stage sooner (old benchmark)
    return config


def variant_config(variant: dict[str, Any], scene: str, seed: int, args: argparse.Namespace):
    config = copy.deepcopy(base_config(variant["model"], scene, args))
    steps = args.steps if args.steps is not None else config.max_num_iterations
    benchmark_trainer_config(config, f"{scene}_{variant['model']}_{variant['name']}_s{seed}", args.output, steps, seed)
    datamanager: Any = config.pipeline.datamanager
    model: Any = config.pipeline.model
    if variant["name"].startswith("baseline"):  # the same model without the regularizers or their rays
        model.entropy_lambda = 0.0
        model.kl_lambda = 0.0
        datamanager.num_unseen_rays = 0
        datamanager.neighbour_rays = False
    for key, value in variant["settings"].items():
        where, attribute, convert = VARIANT_KEYS[key]
        target = model if where == "model" else datamanager
        if not hasattr(target, attribute):
            raise ValueError(f"variant {variant['name']!r}: {key}= does not apply to the {variant['model']} model")
        try:
            setattr(target, attribute, convert(value))
        except ValueError as err:
            raise ValueError(f"variant {variant['name']!r}: {key}={value}: {err}") from err
    if model.kl_lambda > 0:
        datamanager.neighbour_rays = True
    return config


BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}


@torch.no_grad()
def render_metrics(pipeline, dataset, indices: list[int]) -> dict[str, Any]:
    """nerfstudio's image metrics (PSNR, SSIM, LPIPS when available) averaged over ``indices`` of ``dataset``,
    plus the mean rendered opacity; keeps the renders of the first index."""
    model = pipeline.model
    values: dict[str, list[float]] = {}
    opacities, first = [], None
    for index in indices:
        camera = dataset.cameras[index : index + 1].to(pipeline.device)
        outputs = model.get_outputs_for_camera(camera)
        batch = {"image": dataset[index]["image"].to(pipeline.device)}
        metrics, _ = model.get_image_metrics_and_images(outputs, batch)
        for key, value in metrics.items():
            if math.isfinite(float(value)):  # LPIPS is NaN when its weights are not cached (compat layer)
                values.setdefault(key, []).append(float(value))
        opacities.append(float(outputs["accumulation"].mean()))
        target = model.renderer_rgb.blend_background(batch["image"])
        background = BACKGROUNDS.get(str(model.config.background_color))
        if background is not None:  # the fog reference: an empty scene renders the background everywhere
            empty_mse = ((target[..., :3] - torch.tensor(background).to(target)) ** 2).mean()
            values.setdefault("empty_render_psnr", []).append(float(-10 * torch.log10(empty_mse)))
        white = str(model.config.background_color) == "white"
        for key, value in object_and_background_errors(outputs, target, white).items():
            values.setdefault(key, []).append(value)
        if first is None:
            first = {"outputs": outputs, "image": target}
    summary: dict[str, Any] = {key: float(np.mean(v)) for key, v in values.items()}
    summary["opacity"] = float(np.mean(opacities))
    summary["_first"] = first
    return summary


def object_and_background_errors(outputs: dict[str, Any], target: torch.Tensor, white_background: bool) -> dict:
    """Where the held-out error sits on a white-background scene (lego): PSNR and mean rendered opacity over the
    object's pixels and over the empty background's. nerfstudio composites lego's alpha onto white when it loads the
    images, so background is "every channel above 0.98" (as in soft_mining_convergence.py; lego's own surfaces are
    yellow, grey and black). Background opacity is density where the scene is empty (fog, floaters); object PSNR is
    the shape and colour. ``{}`` for other backgrounds (DTU: no empty background to split off)."""
    if not white_background:
        return {}
    on_object = target[..., :3].min(dim=-1).values <= 0.98
    squared_error = ((outputs["rgb"].clamp(0, 1) - target[..., :3]) ** 2).mean(dim=-1)
    accumulation = outputs["accumulation"][..., 0]
    errors = {}
    for name, mask in (("object", on_object), ("background", ~on_object)):
        if bool(mask.any()):
            errors[f"{name}_psnr"] = float(-10 * torch.log10(squared_error[mask].mean()))
            errors[f"{name}_opacity"] = float(accumulation[mask].mean())
    errors["object_share"] = float(on_object.float().mean())
    return errors


OPAQUE_SAMPLE = 0.5
"""A final sample counts as opaque in :func:`object_ray_samples` when its opacity ``alpha_i`` exceeds this."""


@torch.no_grad()
def object_ray_samples(pipeline, dataset, indices: list[int], chunk: int = 4096) -> dict[str, float]:
    """How the final samples of the rays through the object (lego's pixels of views ``indices``) hold their
    opacity: mean count of opaque samples (``alpha > 0.5``), the entropy (bits) of the opacities (InfoNeRF's) and of
    the rendering weights, and the share of the opacity sum that sits behind the visible surface (transmittance
    below 0.01, so it changes no pixel). The measurement behind the README's "why the object thins". ``{}`` without
    a white background."""
    from nerfstudio_methods.infonerf.losses import ray_entropy, record_sample_opacities, render_weights

    model = pipeline.model
    if str(model.config.background_color) != "white" or not hasattr(model, "field"):
        return {}
    sums: dict[str, float] = {}
    count = 0
    for index in indices:
        camera = dataset.cameras[index : index + 1].to(pipeline.device)
        target = model.renderer_rgb.blend_background(dataset[index]["image"].to(pipeline.device))
        on_object = target[..., :3].min(dim=-1).values <= 0.98
        rays = camera.generate_rays(camera_indices=0, keep_shape=True)[on_object]
        for start in range(0, len(rays), chunk):
            with record_sample_opacities(model.field) as record:
                model(rays[start : start + chunk])  # forward: the collider sets the near and far planes
            alphas = record.alphas
            assert alphas is not None
            weights = render_weights(alphas)
            transmittance = 1.0 - weights.cumsum(dim=-1) + weights  # T_i = 1 - sum_{j<i} w_j
            hidden = (alphas * (transmittance < 0.01)).sum(dim=-1) / (alphas.sum(dim=-1) + 1e-10)
            values = {
                "opaque_samples": (alphas > OPAQUE_SAMPLE).float().sum(dim=-1),
                "entropy_of_opacities": ray_entropy(alphas),
                "entropy_of_weights": ray_entropy(weights),
                "hidden_opacity_share": hidden,
                "accumulation": weights.sum(dim=-1),
            }
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + float(value.sum())
            count += len(alphas)
    return {key: value / max(count, 1) for key, value in sums.items()} | {"rays": count}


def render_panel(first: dict[str, Any], near: float, far: float) -> tuple[np.ndarray, np.ndarray]:
    from nerfstudio.utils import colormaps

    outputs = first["outputs"]
    depth = colormaps.apply_depth_colormap(
        outputs["depth"], accumulation=outputs["accumulation"], near_plane=near, far_plane=far
    )
    return outputs["rgb"].clamp(0, 1).cpu().numpy(), depth.cpu().numpy()


def write_figure(path: Path, gt: np.ndarray, columns: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Ground truth (top left, black below), then per variant RGB over depth; labels in the JSON/README."""
    from PIL import Image

    top = [gt] + [rgb for _, rgb, _ in columns]
    bottom = [np.zeros_like(gt)] + [depth for _, _, depth in columns]
    grid = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    image = Image.fromarray((np.clip(grid, 0, 1) * 255).astype(np.uint8))
    atomic_write(path, lambda temporary: image.save(temporary, format="png"))


INFONERF_CPU_BEST = "lambda=0.003,seen=1,kl=3e-3,neighbour_deg=10"
"""The CPU search's best regularizer weights (entropy on the seen rays too, KL against 10-degree neighbours), without
the settings tied to the CPU run's length and model (entropy end step, initial density)."""

LEGO_NERFACTO_CPU = f"{INFONERF_CPU_BEST},init_density=0.1,end=650"
"""The CPU benchmark's nerfacto setting on lego (the best of the search recorded in the README and the JSON): entropy
weight 0.003 on the seen rays and 256 orbit-pose unseen rays for the first 650 of the 800 steps (the released code's
``entropy_end_iter``: the last 150 steps let the RGB loss restore the object the entropy thins), the information-gain
(KL) loss at weight 0.003 between every seen and unseen ray and its neighbour, a camera rotated by up to 10 degrees
per axis about the origin (the released code's ``near_c2w_rot`` is 5: +1.76 dB against +2.07 at 10; the entropy
covers the neighbour rays too), and nerfacto's initial density at 0.1 in both arms, with which the plain nerfacto
baseline leaves the fog stage in every seed (at the preset's 1.0 it does not in seed 0). Without the KL (the released
Blender config) the same entropy gained 1.0 dB; the KL alone makes fog."""


DEFAULT_VARIANTS = {
    "lego": [
        "nerfacto:baseline:init_density=0.1",
        f"nerfacto:infonerf:{LEGO_NERFACTO_CPU}",
        "vanilla:baseline",
        "vanilla:infonerf:lambda=0.01",
    ],
    "dtu": [  # the preset's learned ("last_sample") background, and nerf-pytorch's black
        "nerfacto:baseline",
        "nerfacto:infonerf:kl=0,neighbour=0",
        "nerfacto:baseline-black:background=black",
        "nerfacto:infonerf-black:kl=0,neighbour=0,background=black",
        "vanilla:baseline",  # the DTU preset's black background
        "vanilla:infonerf:kl=0,neighbour=0",
    ],
}
"""What the default (CPU) invocation runs per scene; ``--variants`` replaces it for every scene."""

PAPER_VARIANTS = [
    "nerfacto:baseline",
    "nerfacto:infonerf",
    f"nerfacto:infonerf-cpu-best:{INFONERF_CPU_BEST}",
    "vanilla:baseline",
    "vanilla:infonerf",
]
"""``--paper``: each preset as it is (the released configs' weights) against its baseline, and nerfacto with the CPU
search's best weights (``INFONERF_CPU_BEST``), to see whether they carry over to the paper's size."""


SMOKE_SETTINGS = {
    "steps": 6,
    "seeds": [0],
    "rays": 32,
    "lego_scale": 0.02,
    "dtu_scale": 0.0625,
    "dtu_eval_skip": 16,
    "report_view_cap": 3,
    "hash_levels": 4,
    "log2_hashmap_size": 12,
    "max_res": 64,
    "proposal_samples": 8,
    "nerf_samples": 8,
    "threads": 1,
}
"""``--smoke``: 6 steps at 16 px (lego) and 24 px (DTU, 3 held-out views), a tiny hash grid and few samples."""


def smoke_variants(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``--smoke``: the first baseline and the first regularized variant of each model."""
    kept, roles = [], set()
    for variant in variants:
        role = (variant["model"], variant["name"].startswith("baseline"))
        if role not in roles:
            roles.add(role)
            kept.append(variant)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=["lego", "dtu"], choices=sorted(SCENES))
    parser.add_argument("--variants", nargs="+", type=parse_variant, default=None, help="model:name[:key=value,...]")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default 0 1 2 (--paper: 0)")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (CPU default 800; --paper: the presets', 50k for infonerf on lego)",
    )
    parser.add_argument("--paper", action="store_true", help="the paper's setting (800 px, 50k steps): for a GPU")
    parser.add_argument("--rays", type=int, default=256, help="CPU: seen rays per step (and as many unseen rays)")
    parser.add_argument("--lego-scale", type=float, default=0.125, help="CPU: lego 800 px -> 100 px")
    parser.add_argument("--dtu-scale", type=float, default=0.25, help="CPU: scan24 384 px -> 96 px")
    parser.add_argument("--dtu-eval-skip", type=int, default=4, help="DTU tuning views: every k-th of the 46")
    parser.add_argument("--report-view-cap", type=int, default=0, help="evaluate only the first k report views")
    parser.add_argument("--hash-levels", type=int, default=8)
    parser.add_argument("--log2-hashmap-size", type=int, default=15)
    parser.add_argument("--max-res", type=int, default=256)
    parser.add_argument("--proposal-samples", type=int, default=32)
    parser.add_argument("--nerf-samples", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=None, help="results folder (bench_results)")
    parser.add_argument("--tag", default="", help="suffix of the output file names")
    parser.add_argument("--smoke", action="store_true", help="a tiny end-to-end run, to a temporary folder")
    parser.add_argument(
        "--merge", nargs="+", type=Path, default=None, help="merge these results files (runs of one setting, e.g. one "
        "process per seed) into <output>/infonerf_fewshot<_tag>.json instead of training",
    )  # fmt: skip
    args = parser.parse_args()
    if args.merge:
        merged = merge_results(args.merge)
        output = (args.output or REPO / "bench_results") / f"infonerf_fewshot{'_' + args.tag if args.tag else ''}.json"
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(output, lambda temporary: temporary.write_text(json.dumps(merged, indent=2)))
        print(f"[bench] {len(merged['runs'])} runs of {len(args.merge)} files -> {output}")
        return 0
    if args.smoke:
        if args.paper:
            parser.error("--smoke and --paper exclude each other")
        for key, value in SMOKE_SETTINGS.items():
            setattr(args, key, value)
    if args.output is None:
        args.output = Path(tempfile.mkdtemp(prefix="infonerf_fewshot_smoke_")) if args.smoke else REPO / "bench_results"
    variants_by_scene = {
        scene: args.variants
        or [parse_variant(text) for text in (PAPER_VARIANTS if args.paper else DEFAULT_VARIANTS[scene])]
        for scene in args.scenes
    }
    if args.smoke and not args.variants:
        variants_by_scene = {scene: smoke_variants(variants) for scene, variants in variants_by_scene.items()}
    if args.steps is None and not args.paper:
        args.steps = 800
    if args.seeds is None:
        args.seeds = [0] if args.paper else [0, 1, 2]
    for scene in args.scenes:
        if not SCENES[scene].is_dir():
            print(
                f"error: {SCENES[scene]}: dataset not found (expected ../shared/data beside the repo)", file=sys.stderr
            )
            return 2
    for scene, variants in variants_by_scene.items():  # a bad variant fails before any training
        for variant in variants:
            try:
                variant_config(variant, scene, args.seeds[0], args)
            except ValueError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
    torch.set_num_threads(max(1, args.threads))
    args.output.mkdir(parents=True, exist_ok=True)
    tag = f"_{args.tag}" if args.tag else ""
    json_path = args.output / f"infonerf_fewshot{tag}.json"
    results: dict[str, Any] = {
        "benchmark": "InfoNeRF few-shot: lego 4 views (26, 86, 2, 55), DTU scan24 3 views (22, 25, 28)",
        "setup": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
            if key != "variants"
        },
        "device": "cuda" if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores, {args.threads} threads)",
        "variants": {
            scene: [f"{v['model']}:{v['name']}:{v['settings']}" for v in variants]
            for scene, variants in variants_by_scene.items()
        },
        "runs": [],
    }

    def save() -> None:
        atomic_write(json_path, lambda temporary: temporary.write_text(json.dumps(results, indent=2)))

    for scene in args.scenes:
        columns: list[tuple[str, np.ndarray, np.ndarray]] = []
        gt = None
        for seed in args.seeds:
            for variant in variants_by_scene[scene]:
                config = variant_config(variant, scene, seed, args)
                print(f"[bench] {config.experiment_name}: {variant['settings']}", flush=True)
                run = run_variant(config, scene, args)
                model: Any = config.pipeline.model
                entry = {
                    "scene": scene,
                    "model": variant["model"],
                    "variant": variant["name"],
                    "seed": seed,
                    "steps": config.max_num_iterations,
                    "settings": variant["settings"],
                    **run_settings(config),
                    "train_seconds": run["train_seconds"],
                    "train_cpu_seconds": run["train_cpu_seconds"],
                    "held_out": run["held_out"],
                    "held_out_tuning": run["held_out_tuning"],
                    "held_out_views": run["held_out_views"],
                    "train_view_psnr": run["train_view_psnr"],
                }
                results["runs"].append(entry)
                print(f"[bench] {json.dumps(entry)}", flush=True)
                if seed == args.seeds[0]:
                    render = run["render"]
                    gt = render["image"].clamp(0, 1).cpu().numpy()
                    near = getattr(model, "near_plane", None) or model.collider_params["near_plane"]
                    far = getattr(model, "far_plane", None) or model.collider_params["far_plane"]
                    rgb, depth = render_panel(render, near, far)
                    columns.append((f"{variant['model']}:{variant['name']}", rgb, depth))
                summarise(results)
                save()
        if gt is not None:
            figure_path = args.output / f"infonerf_fewshot_{scene}{tag}.png"
            write_figure(figure_path, gt, columns)
            results.setdefault("figures", {})[scene] = {
                "path": str(figure_path),
                "columns": ["ground truth"] + [c[0] for c in columns],
            }
            save()
    print(f"[bench] results -> {json_path}")
    print(json.dumps(results.get("gains", {}), indent=2))
    return 0


MERGED_SETUP_KEYS = ("steps", "paper", "rays", "lego_scale", "dtu_scale", "dtu_eval_skip", "report_view_cap")
"""Settings that every merged file must share (``hash_levels`` and the other model sizes are in each run's own
record): runs made at different sizes do not pair."""


def merge_results(paths: list[Path]) -> dict[str, Any]:
    """One results file from several (e.g. one process per seed, or a merged file and another scene's): each run
    tagged with its file, the files' invocations kept, the gains recomputed over every run. Refuses files made with other settings, in one line."""
    reports = [(path, load_results(path)) for path in paths]
    first_path, first = reports[0]
    merged: dict[str, Any] = {
        "benchmark": first["benchmark"],
        "invocations": [],
        "device": first["device"],
        "variants": {},
        "runs": [],
    }
    for path, report in reports:
        setup = report["setup"]
        for key in MERGED_SETUP_KEYS:
            if setup.get(key) != first["setup"].get(key):
                raise SystemExit(
                    f"error: {path}: {key} = {setup.get(key)!r}, but {first_path} has {first['setup'].get(key)!r}"
                )
        # a file merged before keeps the invocations it was merged from
        merged["invocations"] += report.get("invocations") or [{"file": path.name, "setup": setup}]
        for scene, variants in report["variants"].items():
            merged["variants"].setdefault(scene, [])
            merged["variants"][scene] += [v for v in variants if v not in merged["variants"][scene]]
        merged["runs"] += [{"invocation": path.name} | run for run in report["runs"]]
    seen: dict[tuple, str] = {}
    for run in merged["runs"]:
        key = (run["scene"], run["model"], run["variant"], run["seed"])
        if key in seen:
            raise SystemExit(f"error: {run['invocation']}: run {':'.join(map(str, key))} is also in {seen[key]}")
        seen[key] = run["invocation"]
    merged["setup"] = {key: first["setup"].get(key) for key in MERGED_SETUP_KEYS}
    summarise(merged)
    return merged


def run_settings(config) -> dict[str, Any]:
    """Every regularizer, ray and size setting of a run (what the JSON records beside its metrics)."""
    datamanager, model = config.pipeline.datamanager, config.pipeline.model
    settings = {name: getattr(model, name) for name in REGULARIZER_FIELDS}
    settings.update({name: getattr(datamanager, name) for name in RAY_FIELDS})
    settings["background"] = str(model.background_color)
    settings["average_init_density"] = getattr(model, "average_init_density", None)
    return settings


REGULARIZER_FIELDS = (
    "entropy_lambda",
    "entropy_acc_threshold",
    "entropy_on_seen_rays",
    "entropy_on_neighbour_rays",
    "entropy_end_step",
    "entropy_distribution",
    "kl_lambda",
    "kl_rate",
    "kl_step_size",
    "kl_direction",
)
RAY_FIELDS = (
    "train_num_rays_per_batch",
    "num_unseen_rays",
    "unseen_pose_source",
    "orbit_elevation_margin_deg",
    "perturb_max_deg",
    "neighbour_rays",
    "neighbour_max_deg",
    "camera_res_scale_factor",
)


def held_out_views(scene: str, count: int, args: argparse.Namespace) -> dict[str, list[int]]:
    """Indices into the scene's evaluation dataset (lego: the 100 val views; DTU: the 46 views that are not InfoNeRF's
    training views), split into the views the CPU settings were searched on and the disjoint ones reported."""
    skip = 8 if scene == "lego" else args.dtu_eval_skip  # the search's held-out views: val[::8], DTU's every 4th
    tuning = list(range(0, count, skip))
    report = list(range(1, count, 2)) if scene == "lego" else [i for i in range(count) if i % skip != 0]
    if args.report_view_cap:
        report = report[: args.report_view_cap]
    assert not set(tuning) & set(report)
    return {"tuning": tuning, "report": report}


def run_variant(config, scene: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build, train and evaluate one configuration on the scene's report and tuning views and all training views."""
    seed_everything(config.machine.seed)  # ns-train seeds in its launcher, not in TrainerConfig.setup
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    pipeline = trainer.pipeline
    started = time.perf_counter()
    cpu_started = time.process_time()  # CPU seconds: other jobs on the 2 cores do not count
    for step in range(config.max_num_iterations):
        train_step(trainer, step)
        if (step + 1) % 200 == 0:
            print(
                f"[bench] {config.experiment_name} step {step + 1} ({time.perf_counter() - started:.0f} s)", flush=True
            )
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = time.process_time() - cpu_started
    pipeline.eval()
    datamanager = pipeline.datamanager
    views = held_out_views(scene, len(datamanager.eval_dataset), args)
    held_out_indices = views["report"]
    held_out = render_metrics(pipeline, datamanager.eval_dataset, held_out_indices)
    held_out_tuning = render_metrics(pipeline, datamanager.eval_dataset, views["tuning"])
    held_out_tuning.pop("_first")
    train_views = render_metrics(pipeline, datamanager.train_dataset, list(range(len(datamanager.train_dataset))))
    object_rays = object_ray_samples(pipeline, datamanager.eval_dataset, held_out_indices)
    if object_rays:
        held_out["object_rays"] = object_rays
    first = held_out.pop("_first")
    train_views.pop("_first")
    return {
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "held_out": held_out,
        "held_out_tuning": held_out_tuning,
        "held_out_views": {
            part: [str(datamanager.eval_dataset.image_filenames[i].name) for i in indices]
            for part, indices in views.items()
        },
        "train_view_psnr": train_views["psnr"],
        "render": first,
    }


def summarise(results: dict[str, Any]) -> None:
    """Per scene, model and regularized variant: the held-out gain over the baseline (``baseline*`` variants) of the
    same seed, background, initial density, steps and resolution, and its mean/std over seeds."""

    def pairing(run: dict[str, Any]) -> tuple:
        background = run.get("background", PRESET_BACKGROUND[run["scene"]])
        density = run.get("average_init_density")
        # runs merged from before train_step ran the training callbacks carry training_callbacks = False
        return (
            run["scene"],
            run["model"],
            run["seed"],
            background,
            density,
            run.get("training_callbacks", True),
            run["steps"],
            run.get("camera_res_scale_factor"),
        )

    runs = results["runs"]
    baselines = {pairing(r): r for r in runs if r["variant"].startswith("baseline")}
    gains: dict[str, Any] = {}
    for run in runs:
        base = baselines.get(pairing(run))
        if run["variant"].startswith("baseline") or base is None:
            continue
        key = f"{run['scene']}:{run['model']}:{run['variant']}"
        entry = gains.setdefault(key, {"baseline": base["variant"], "per_seed": {}})
        entry["per_seed"][str(run["seed"])] = {
            metric: run["held_out"][metric] - base["held_out"][metric]
            for metric in ("psnr", "ssim", "lpips")
            if metric in run["held_out"] and metric in base["held_out"]
        }
        if "held_out_tuning" in run and "held_out_tuning" in base:
            tuning_gain = run["held_out_tuning"]["psnr"] - base["held_out_tuning"]["psnr"]
            entry["per_seed"][str(run["seed"])]["psnr_tuning_views"] = tuning_gain
        psnr = [value["psnr"] for value in entry["per_seed"].values()]
        entry["psnr_gain_mean"] = float(np.mean(psnr))
        entry["psnr_gain_std"] = float(np.std(psnr, ddof=1)) if len(psnr) > 1 else None
        tuning = [value["psnr_tuning_views"] for value in entry["per_seed"].values() if "psnr_tuning_views" in value]
        if tuning:
            entry["psnr_gain_tuning_views_mean"] = float(np.mean(tuning))
    results["gains"] = gains


PRESET_BACKGROUND = {"lego": "white", "dtu": "black"}
"""The presets' backgrounds (runs written before the JSON recorded the background used these)."""


if __name__ == "__main__":
    raise SystemExit(main())
