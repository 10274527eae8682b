"""MonoNeRF's three generalisation claims (issue 10), each against a measured baseline.

1. Novel views at seen times: ``mononerf`` (pixel-aligned video + image features and the per-video code) against the
   same model with ``use_features=False`` (positional encoding only, DynamicNeRF-style), equal steps and seed, on
   generated dynamic scenes (one scene per seed; held-out = rig camera 0 at every time from ``multiview_GT/``, the
   DynamicNeRF protocol). Balloon1 has no multi-view ground truth, so there only training-frame reconstruction is
   measured (camera i at time i, from the runs of comparison 2).
2. Unseen frames: train on the first k frames (``--training-frames``), PSNR on frames k..N-1 at their own cameras
   (both variants), on a generated scene and on Balloon1.
3. Unseen scene: a multi-scene run on the generated scenes of comparison 1 (``extra_scenes``), its checkpoint
   saved; a new scene (another seed) fine-tuned from it (``pretrained_checkpoint``, short static + dynamic schedule)
   against the same model trained on that scene from scratch with the same schedule: held-out PSNR against steps and
   the step ratio at which fine-tuning reaches scratch's final PSNR (the paper's "fast novel scene adaptation").

Diagnostics measured alongside (eval-only, no extra training): training-view PSNR against held-out PSNR, PSNR on
static and on moving pixels (moving = where the fixed held-out camera's ground truth changes over time, or the
generator's motion masks for unseen frames), the static branch alone on static pixels, and a feature ablation (the
trained feature model evaluated with every feature map replaced by its per-channel mean, i.e. with the spatial and
temporal information of the features removed).

Every variant is trained in this one process through the Python API (no ``ns-train`` subprocesses), seeded
identically, so that variants with the same architecture start from identical weights (``use_features`` only zeroes
the features; the parameters are the same). The default settings are a CPU-sized reduction stated in the JSON under
``configuration.reduced_settings``; ``--paper`` switches to the released settings for a GPU.

Outputs (atomically): ``<output>/mononerf_generalization.json``, ``<output>/mononerf_generalization_grid.png``
(held-out renders against ground truth for each variant) and ``<output>/mononerf_generalization_adaptation.png``
(comparison 3: held-out PSNR against step).

Usage::

    python benchmarks/mononerf_generalization.py [--threads 2] [--comparisons 1 2 3] [--output bench_results]
    python benchmarks/mononerf_generalization.py --smoke          # ~2-minute end-to-end check
    python benchmarks/mononerf_generalization.py --paper --scenes DATA/Balloon1 DATA/Balloon2 DATA/Umbrella
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import atomic_write, seed_everything  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BALLOON1 = REPO.parent / "shared" / "data" / "nvidia_dynamic" / "Balloon1"
STEM = "mononerf_generalization"

VARIANTS = {
    "mononerf": "MonoNeRF: video features (small 3D CNN / SlowOnly R50), image features (small 2D CNN / ResNet-18), "
    "flow-based feature aggregation and the per-video global code",
    "no-features": "the same model with use_features=False: every feature lookup and the global code are zero, so "
    "both MLPs see the positional encoding only (DynamicNeRF-style baseline); same parameters, seed and steps",
}

PAPER_SETTINGS = {
    "preset": "mononerf_config(): SlowOnly R50 (Kinetics-400 checkpoint if --video-encoder-checkpoint) + ResNet-18 "
    "(ImageNet weights if in the torch hub cache), 256-wide MLPs, 1024 rays, 64 samples, torchdiffeq dopri5 ODE",
    "steps": "150,001 static + 150,001 dynamic per scene and for the multi-scene run; fine-tuning 2,000 + 2,000",
    "unseen_frames": "5 training frames of 12 (Balloon2; 3 for Truck)",
    "resolution": "images_2 (270 x 480) of the NVIDIA scenes",
    "evaluation": "rig camera 0 at all 12 times (DynamicNeRF) or the 12 x 12 grid (MonoNeRF), full images",
}


# ----------------------------------------------------------------------------------------------------- helpers


def psnr_of(squared_error_sum: float, count: int) -> Optional[float]:
    if count == 0:
        return None
    mse = squared_error_sum / count
    return float(-10.0 * math.log10(max(mse, 1e-12)))


def log(message: str) -> None:
    print(f"[mononerf-bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def generated_scene(args: argparse.Namespace, seed: int) -> Path:
    """A generated DynamicNeRF-layout scene (exact flow, disparity, motion masks, multiview_GT), cached by size."""
    from nerfstudio_methods.scenegen.formats.nvidia_dynamic import write_nvidia_dynamic

    path = args.output / "mononerf_scenes" / f"seed{seed}_{args.width}x{args.height}_{args.frames}f"
    if (path / "poses_bounds.npy").is_file() and (path / "multiview_GT").is_dir():
        return path
    staging = path.with_name(path.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    write_nvidia_dynamic(staging, width=args.width, height=args.height, num_frames=args.frames, seed=seed)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(staging, path)
    log(f"generated scene seed {seed}: {args.width}x{args.height}, {args.frames} frames -> {path}")
    return path


# ----------------------------------------------------------------------------------------------- configuration


def make_config(
    args: argparse.Namespace,
    data: Path,
    *,
    use_features: bool,
    static_steps: int,
    total_steps: int,
    extra_scenes: tuple[Path, ...] = (),
    factor: int = 1,
    training_frames: int = 0,
    eval_split: str = "auto",
    pretrained: Optional[Path] = None,
    mask_flow_loss_mult: Optional[float] = None,
):
    from dataparsers.dynamic_scene import DynamicSceneDataParserConfig
    from nerfstudio_methods.mononerf.config import mononerf_config, mononerf_cpu_config
    from nerfstudio_methods.mononerf.datamanager import MonoNeRFDataManagerConfig
    from nerfstudio_methods.mononerf.model import MonoNeRFModelConfig

    config = mononerf_config() if args.paper else mononerf_cpu_config()
    datamanager = config.pipeline.datamanager
    assert isinstance(datamanager, MonoNeRFDataManagerConfig)
    datamanager.data = data
    dataparser = datamanager.dataparser
    assert isinstance(dataparser, DynamicSceneDataParserConfig)
    dataparser.data = data
    dataparser.extra_scenes = tuple(extra_scenes)
    dataparser.downscale_factor = factor
    dataparser.training_frames = training_frames
    dataparser.eval_split = eval_split  # type: ignore[assignment]  (a str from the caller; the parser checks it)
    if args.rays is not None:
        datamanager.train_num_rays_per_batch = args.rays
    model = config.pipeline.model
    assert isinstance(model, MonoNeRFModelConfig)
    if args.samples is not None:
        model.num_samples = args.samples
    if args.solver is not None:
        model.trajectory_solver = args.solver
    if args.depth_blending_weight is not None:
        model.depth_blending_loss_mult = args.depth_blending_weight
    if args.video_encoder_checkpoint is not None:
        model.video_encoder_checkpoint = args.video_encoder_checkpoint
    model.use_features = use_features
    model.static_steps = static_steps
    model.pretrained_checkpoint = pretrained
    if mask_flow_loss_mult is not None:
        model.mask_flow_loss_mult = mask_flow_loss_mult
    config.max_num_iterations = total_steps
    return config


def effective_settings(config) -> dict[str, Any]:
    model = config.pipeline.model
    return {
        "rays_per_step": config.pipeline.datamanager.train_num_rays_per_batch,
        "samples_per_ray": model.num_samples,
        "video_encoder": model.video_encoder,
        "image_encoder": model.image_encoder,
        "hidden_width": model.hidden_width,
        "code_channels": model.code_channels,
        "trajectory_solver": model.trajectory_solver,
        "euler_steps": model.euler_steps,
        "learning_rate": config.optimizers["dynamic"]["optimizer"].lr,
        "velocity_scale": "1/N" if model.velocity_scale is None else model.velocity_scale,
        "blending_warmup_steps": model.blending_warmup_steps,
    }


# ---------------------------------------------------------------------------------------------------- evaluation


def held_out_views(pipeline, motion_threshold: float) -> list[dict[str, Any]]:
    """The eval split's views with their ground truth and a moving-pixel mask.

    Moving pixels: for a rig camera seen at several times (view0 / grid splits) the pixels whose ground truth differs
    from that camera's per-pixel median over time by more than ``motion_threshold`` (any channel); for a view that
    is a frame of the training video (unseen-frames split) the scene's motion mask of that frame, when it has one.
    """
    dataset = pipeline.datamanager.eval_dataset
    metadata = dataset.metadata
    scenes = pipeline.model.scenes
    views = []
    for index in range(len(dataset)):
        views.append(
            {
                "camera": dataset.cameras[index : index + 1],
                "image": dataset[index]["image"][..., :3].float(),
                "scene": int(metadata["scene_index"][index]),
                "frame": int(metadata["frame_index"][index]),
                "rig_camera": int(metadata["camera_index"][index]),
                "moving": None,
            }
        )
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for view in views:
        groups.setdefault((view["scene"], view["rig_camera"]), []).append(view)
    for members in groups.values():
        if len({view["frame"] for view in members}) >= 3:
            stack = torch.stack([view["image"] for view in members])
            median = stack.median(dim=0).values
            for view in members:
                view["moving"] = (view["image"] - median).abs().amax(dim=-1) > motion_threshold
        else:
            for view in members:
                video = scenes[view["scene"]]
                if view["frame"] == view["rig_camera"] and video.motion_mask is not None:
                    view["moving"] = video.motion_mask[view["frame"]].bool()
    return views


def training_views(pipeline, frames: Optional[list[int]] = None) -> list[dict[str, Any]]:
    """Frames of the training video (camera i at time i) of every scene, with the motion masks when present."""
    views = []
    for scene, video in enumerate(pipeline.model.scenes):
        chosen = range(video.supervised_frames) if frames is None else [f for f in frames if f < video.num_frames]
        for frame in chosen:
            views.append(
                {
                    "camera": video.cameras[frame : frame + 1],
                    "image": video.images[frame].float(),
                    "scene": scene,
                    "frame": frame,
                    "rig_camera": frame,
                    "moving": None if video.motion_mask is None else video.motion_mask[frame].bool(),
                }
            )
    return views


def subset(views: list[dict[str, Any]], count: Optional[int]) -> list[dict[str, Any]]:
    """``count`` views spread evenly over the list (all when ``count`` is None or large enough)."""
    if count is None or count >= len(views):
        return views
    picks = sorted({round(i * (len(views) - 1) / max(count - 1, 1)) for i in range(count)})
    return [views[i] for i in picks]


@torch.no_grad()
def evaluate(pipeline, views: list[dict[str, Any]], keep: tuple[int, ...] = ()) -> dict[str, Any]:
    """PSNR / SSIM over ``views`` rendered in full with ``model.get_outputs_for_camera``; PSNR on static and moving
    pixels (squared errors pooled over the views); the static branch alone on static pixels (stage 2 only); the
    renders of the views at positions ``keep``."""
    from torchmetrics.functional import structural_similarity_index_measure

    started = time.perf_counter()
    pipeline.eval()
    device = pipeline.device
    psnrs, ssims, per_view, images = [], [], [], {}
    pooled = {
        "static": [0.0, 0],
        "moving": [0.0, 0],
        "static_branch_static": [0.0, 0],
        "dynamic_branch_moving": [0.0, 0],
    }
    for position, view in enumerate(views):
        outputs = pipeline.model.get_outputs_for_camera(view["camera"].to(device))
        rgb = outputs["rgb"].clamp(0, 1).cpu()
        target = view["image"]
        error = ((rgb - target) ** 2).mean(dim=-1)
        psnr = float(-10 * torch.log10(error.mean().clamp_min(1e-12)))
        ssim_value = structural_similarity_index_measure(rgb.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None])
        ssim = float(ssim_value[0] if isinstance(ssim_value, tuple) else ssim_value)
        psnrs.append(psnr)
        ssims.append(ssim)
        per_view.append({"scene": view["scene"], "frame": view["frame"], "camera": view["rig_camera"], "psnr": psnr})
        if view["moving"] is not None:
            moving = view["moving"]
            pooled["moving"][0] += float(error[moving].sum())
            pooled["moving"][1] += int(moving.sum())
            pooled["static"][0] += float(error[~moving].sum())
            pooled["static"][1] += int((~moving).sum())
            if "rgb_dynamic" in outputs:  # stage 2: the static branch is rendered on its own as well
                static_error = ((outputs["rgb_static"].clamp(0, 1).cpu() - target) ** 2).mean(dim=-1)
                pooled["static_branch_static"][0] += float(static_error[~moving].sum())
                pooled["static_branch_static"][1] += int((~moving).sum())
                dynamic_error = ((outputs["rgb_dynamic"].clamp(0, 1).cpu() - target) ** 2).mean(dim=-1)
                pooled["dynamic_branch_moving"][0] += float(dynamic_error[moving].sum())
                pooled["dynamic_branch_moving"][1] += int(moving.sum())
        if position in keep:
            images[position] = {
                "rgb": rgb.numpy(),
                "gt": target.numpy(),
                "label": f"f{view['frame']} c{view['rig_camera']}",
            }
    pipeline.train()
    result: dict[str, Any] = {
        "psnr": float(np.mean(psnrs)),
        "ssim": float(np.mean(ssims)),
        "psnr_static_pixels": psnr_of(*pooled["static"]),
        "psnr_moving_pixels": psnr_of(*pooled["moving"]),
        "moving_pixel_fraction": (
            pooled["moving"][1] / (pooled["moving"][1] + pooled["static"][1])
            if pooled["moving"][1] + pooled["static"][1]
            else None
        ),
        "static_branch_psnr_static_pixels": psnr_of(*pooled["static_branch_static"]),
        "dynamic_branch_psnr_moving_pixels": psnr_of(*pooled["dynamic_branch_moving"]),
        "num_views": len(views),
        "per_view": per_view,
        "seconds": time.perf_counter() - started,
    }
    if keep:
        result["_images"] = images
    return result


class MeanFeatures:
    """Context: every cached feature map replaced by its per-channel mean over frames and pixels (the global code is
    kept), so the model sees features of the right scale but without spatial or temporal information."""

    def __init__(self, model) -> None:
        self.model = model
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> "MeanFeatures":
        for scene in range(len(self.model.scenes)):
            features = self.model.scene_features(scene)
            self.saved[scene] = features
            self.model._features[scene] = dataclasses.replace(
                features,
                video=features.video.mean(dim=(0, 2, 3), keepdim=True).expand_as(features.video).contiguous(),
                image=features.image.mean(dim=(0, 2, 3), keepdim=True).expand_as(features.image).contiguous(),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.model._features.update(self.saved)


def strip_images(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "_images"}


# ------------------------------------------------------------------------------------------------------ training


class Run:
    """One pipeline trained step by step in this process (what ``ns-train`` does, without the trainer)."""

    def __init__(self, label: str, config, args: argparse.Namespace) -> None:
        from nerfstudio.engine.optimizers import Optimizers

        self.label = label
        self.config = config
        self.args = args
        seed_everything(args.seed)
        started = time.perf_counter()
        self.pipeline = config.pipeline.setup(device=args.device, test_mode="val", world_size=1, local_rank=0)
        self.optimizers = Optimizers(config.optimizers, self.pipeline.get_param_groups())
        self.setup_seconds = time.perf_counter() - started
        self.step = 0
        self.train_seconds = 0.0
        self.recent: dict[str, list[float]] = {"loss": [], "psnr": []}
        self.log: list[dict[str, Any]] = []

    @property
    def static_steps(self) -> int:
        return self.config.pipeline.model.static_steps

    def train_to(self, target: int) -> None:
        pipeline, optimizers = self.pipeline, self.optimizers
        while self.step < target:
            step = self.step
            started = time.perf_counter()
            pipeline.model.trained_steps.fill_(step)  # the model's stage switch (ns-train sets it in a callback)
            optimizers.zero_grad_all()
            _, loss_dict, metrics = pipeline.get_train_loss_dict(step)
            loss = torch.stack(list(loss_dict.values())).sum()
            loss.backward()
            optimizers.optimizer_step_all()
            optimizers.scheduler_step_all(step)
            self.train_seconds += time.perf_counter() - started
            self.recent["loss"].append(float(loss))
            self.recent["psnr"].append(float(metrics["psnr"]))
            self.step += 1
            if self.step % self.args.log_every == 0 or self.step == target:
                stage = "static" if step < self.static_steps else "dynamic"
                point = {
                    "step": self.step,
                    "stage": stage,
                    "train_seconds": round(self.train_seconds, 2),
                    "loss": float(np.mean(self.recent["loss"])),
                    "train_batch_psnr": float(np.mean(self.recent["psnr"])),
                }
                self.log.append(point)
                log(
                    f"{self.label}: step {self.step}/{self.config.max_num_iterations} ({stage}) loss {point['loss']:.4f} "
                    f"batch PSNR {point['train_batch_psnr']:.2f} dB, {self.train_seconds:.0f} s training"
                )
                self.recent = {"loss": [], "psnr": []}

    def close(self) -> None:
        del self.pipeline, self.optimizers
        gc.collect()


def train_with_evals(
    run: Run, eval_steps: list[int], views: Callable[[], list[dict[str, Any]]], keep: tuple[int, ...] = ()
) -> list[dict[str, Any]]:
    """Train ``run`` to its last step, evaluating ``views()`` after each step count in ``eval_steps`` (0 = before
    training). Returns the curve; the last point keeps its renders."""
    curve = []
    total = run.config.max_num_iterations
    for target in sorted(set(eval_steps) | {total}):
        run.train_to(target)
        last = target == total
        result = evaluate(run.pipeline, views(), keep=keep if last else ())
        point = {"step": target, "stage": "static" if target <= run.static_steps else "dynamic"}
        point |= {"train_seconds": run.train_seconds} | result
        curve.append(point)
        log(
            f"{run.label}: held-out PSNR {result['psnr']:.2f} dB SSIM {result['ssim']:.3f} after {target} steps "
            f"({result['num_views']} views, {result['seconds']:.0f} s)"
        )
    return curve


def variant_record(run: Run, curve: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    final = curve[-1]
    return {
        "description": VARIANTS.get(run.label.split(":")[-1], run.label),
        "steps": {"static": run.static_steps, "total": run.config.max_num_iterations},
        "settings": effective_settings(run.config),
        "eval_split": run.pipeline.datamanager.eval_dataset.metadata.get("eval_split"),
        "final": strip_images(final),
        "curve": [
            {
                key: point[key]
                for key in (
                    "step",
                    "stage",
                    "train_seconds",
                    "psnr",
                    "ssim",
                    "psnr_static_pixels",
                    "psnr_moving_pixels",
                )
            }
            for point in curve
        ],
        "train_seconds": run.train_seconds,
        "seconds_per_step": {
            "static": _stage_rate(run.log, "static"),
            "dynamic": _stage_rate(run.log, "dynamic"),
        },
        "train_log": run.log,
        **extra,
    }


def _stage_rate(points: list[dict[str, Any]], stage: str) -> Optional[float]:
    previous = {"step": 0, "train_seconds": 0.0}
    spans = []
    for point in points:
        if point["stage"] == stage:
            spans.append((point["step"] - previous["step"], point["train_seconds"] - previous["train_seconds"]))
        previous = point
    steps = sum(s for s, _ in spans)
    return sum(t for _, t in spans) / steps if steps else None


# --------------------------------------------------------------------------------------------------- comparisons


class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.perf_counter()
        self.results: dict[str, Any] = {}
        self.grid_rows: list[dict[str, Any]] = []
        self.curves: dict[str, list[dict[str, Any]]] = {}
        self.finished = False

    # --- output ---

    def save(self) -> None:
        args = self.args
        report = {
            "benchmark": "MonoNeRF generalisation (issue 10): novel views at seen times, unseen frames, unseen scene",
            "configuration": configuration(args),
            "summary": summarise(self.results),
            "results": self.results,
            "total_seconds": time.perf_counter() - self.started,
            "finished": self.finished,
        }
        atomic_write(args.output / f"{args.stem}.json", lambda p: p.write_text(json.dumps(report, indent=2)))

    def grid_row(self, title: str, evaluations: dict[str, dict[str, Any]]) -> None:
        """One grid row per kept view: ground truth, then each variant's render."""
        first = next(iter(evaluations.values()))
        for position, image in first.get("_images", {}).items():
            self.grid_rows.append(
                {
                    "title": f"{title} {image['label']}",
                    "gt": image["gt"],
                    "renders": {
                        name: (result["_images"][position]["rgb"], result["per_view"][position]["psnr"])
                        for name, result in evaluations.items()
                        if position in result.get("_images", {})
                    },
                }
            )

    # --- 1. novel views at seen times ---

    def novel_views(self, scenes: list[tuple[str, Path, int]]) -> None:
        args = self.args
        section = self.results.setdefault("1_novel_views_seen_times", {})
        for name, path, factor in scenes:
            section[name] = {"data": str(path), "downscale_factor": factor, "variants": {}}
            finals = {}
            for variant in VARIANTS:
                config = make_config(
                    args,
                    path,
                    use_features=variant == "mononerf",
                    static_steps=args.static_steps,
                    total_steps=args.static_steps + args.dynamic_steps,
                    factor=factor,
                )
                run = Run(f"1:{name}:{variant}", config, args)
                eval_steps = [args.static_steps, args.static_steps + args.dynamic_steps // 2]
                all_views = held_out_views(run.pipeline, args.motion_threshold)
                keep = (len(all_views) // 2,)
                curve = train_with_evals(run, eval_steps, lambda: all_views, keep=keep)
                extra: dict[str, Any] = {}
                train_eval = evaluate(run.pipeline, training_views(run.pipeline))
                extra["training_views"] = strip_images(train_eval)
                extra["generalisation_gap_db"] = train_eval["psnr"] - curve[-1]["psnr"]
                log(f"{run.label}: training views {train_eval['psnr']:.2f} dB, held-out {curve[-1]['psnr']:.2f} dB")
                if variant == "mononerf":
                    with MeanFeatures(run.pipeline.model):
                        ablated = evaluate(run.pipeline, all_views)
                    extra["ablation_mean_features"] = strip_images(ablated)
                    extra["ablation_psnr_drop_db"] = curve[-1]["psnr"] - ablated["psnr"]
                    log(f"{run.label}: with mean features {ablated['psnr']:.2f} dB")
                section[name]["variants"][variant] = variant_record(run, curve, extra)
                finals[variant] = curve[-1]
                run.close()
                self.save()
            self.grid_row(f"1 {name}", finals)

    # --- 2. unseen frames ---

    def unseen_frames(self, scenes: list[tuple[str, Path, int, bool]]) -> None:
        args = self.args
        section = self.results.setdefault("2_unseen_frames", {})
        for name, path, factor, has_masks in scenes:
            # The data manager's static stage uses every frame only for scenes with motion masks (without them every
            # pixel counts as static, and it would fit the held-out frames themselves).
            all_frames = has_masks
            section[name] = {
                "data": str(path),
                "downscale_factor": factor,
                "training_frames": args.training_frames,
                "static_stage_all_frames": all_frames,
                "variants": {},
            }
            finals = {}
            for variant in VARIANTS:
                config = make_config(
                    args,
                    path,
                    use_features=variant == "mononerf",
                    static_steps=args.static_steps,
                    total_steps=args.static_steps + args.dynamic_steps,
                    factor=factor,
                    training_frames=args.training_frames,
                    eval_split="unseen-frames",
                    mask_flow_loss_mult=0.01,
                )
                run = Run(f"2:{name}:{variant}", config, args)
                all_views = held_out_views(run.pipeline, args.motion_threshold)
                keep = (0, len(all_views) - 1)
                curve = train_with_evals(run, [args.static_steps], lambda: all_views, keep=keep)
                train_eval = evaluate(run.pipeline, training_views(run.pipeline))
                extra: dict[str, Any] = {
                    "training_frames_eval": strip_images(train_eval),
                    "unseen_psnr_by_frame": {str(v["frame"]): v["psnr"] for v in curve[-1]["per_view"]},
                }
                log(
                    f"{run.label}: training frames {train_eval['psnr']:.2f} dB, unseen frames {curve[-1]['psnr']:.2f} dB"
                )
                if variant == "mononerf":
                    with MeanFeatures(run.pipeline.model):
                        ablated = evaluate(run.pipeline, all_views)
                    extra["ablation_mean_features"] = strip_images(ablated)
                    extra["ablation_psnr_drop_db"] = curve[-1]["psnr"] - ablated["psnr"]
                section[name]["variants"][variant] = variant_record(run, curve, extra)
                finals[variant] = curve[-1]
                run.close()
                self.save()
            self.grid_row(f"2 {name}", finals)

    # --- 3. unseen scene ---

    def unseen_scene(self, training_scenes: list[tuple[str, Path, int]], new_scene: tuple[str, Path, int]) -> None:
        args = self.args
        section = self.results.setdefault("3_unseen_scene", {})
        first, *others = training_scenes
        factor = first[2]
        checkpoint = args.output / f"{args.stem}_multiscene.ckpt"
        config = make_config(
            args,
            first[1],
            use_features=True,
            static_steps=args.multi_static_steps,
            total_steps=args.multi_static_steps + args.multi_dynamic_steps,
            extra_scenes=tuple(p for _, p, _ in others),
            factor=factor,
        )
        run = Run("3:multi-scene:mononerf", config, args)
        all_views = held_out_views(run.pipeline, args.motion_threshold)
        curve = train_with_evals(run, [], lambda: subset(all_views, args.multi_eval_views))
        torch.save({"pipeline": run.pipeline.state_dict(), "step": run.step}, checkpoint)
        section["multi_scene"] = {
            "scenes": [name for name, _, _ in training_scenes],
            "checkpoint": str(checkpoint),
            **variant_record(run, curve, {}),
        }
        pretrained_encoders = {
            key: value.clone()
            for key, value in run.pipeline.model.state_dict().items()
            if key.startswith(("video_encoder.", "image_encoder."))
        }
        run.close()
        self.save()

        name, path, new_factor = new_scene
        section["new_scene"] = {"name": name, "data": str(path), "downscale_factor": new_factor}
        total = args.finetune_static_steps + args.finetune_dynamic_steps
        eval_steps = list(range(0, total + 1, args.curve_every))
        finals = {}
        for variant, pretrained in (("fine-tuned", checkpoint), ("scratch", None)):
            config = make_config(
                args,
                path,
                use_features=True,
                static_steps=args.finetune_static_steps,
                total_steps=total,
                factor=new_factor,
                pretrained=pretrained,
                mask_flow_loss_mult=0.01,
            )
            run = Run(f"3:{name}:{variant}", config, args)
            encoders_match = all(
                torch.equal(value, run.pipeline.model.state_dict()[key]) for key, value in pretrained_encoders.items()
            )
            views = subset(held_out_views(run.pipeline, args.motion_threshold), args.curve_views)
            curve = train_with_evals(run, eval_steps, lambda: views, keep=(len(views) // 2,))
            self.curves[variant] = curve
            section[variant] = variant_record(
                run,
                curve,
                {
                    "description": (
                        f"MonoNeRF initialised from the multi-scene checkpoint, then {args.finetune_static_steps} "
                        f"static + {args.finetune_dynamic_steps} dynamic steps"
                        if pretrained
                        else f"MonoNeRF from random initialisation, {args.finetune_static_steps} static + "
                        f"{args.finetune_dynamic_steps} dynamic steps"
                    ),
                    "frozen_encoders_identical_to_multiscene_run": encoders_match,
                },
            )
            finals[variant] = curve[-1]
            run.close()
            self.save()
        self.grid_row(f"3 {name}", finals)
        section["adaptation"] = adaptation_summary(section["fine-tuned"]["curve"], section["scratch"]["curve"])


def reach(curve: list[dict[str, Any]], target: float) -> Optional[float]:
    """The (linearly interpolated) step at which a curve first reaches ``target`` PSNR."""
    if curve and curve[0]["psnr"] >= target:
        return float(curve[0]["step"])
    for before, after in zip(curve, curve[1:]):
        if after["psnr"] >= target:
            span = after["psnr"] - before["psnr"]
            t = 1.0 if span <= 0 else min(max((target - before["psnr"]) / span, 0.0), 1.0)
            return before["step"] + t * (after["step"] - before["step"])
    return None


def adaptation_summary(fine_tuned: list[dict[str, Any]], scratch: list[dict[str, Any]]) -> dict[str, Any]:
    target = scratch[-1]["psnr"]
    total = scratch[-1]["step"]
    hit = reach(fine_tuned, target)
    # Where fine-tuning does not get there: the step at which scratch reaches fine-tuning's final PSNR instead.
    reverse = reach(scratch, fine_tuned[-1]["psnr"])
    return {
        "scratch_final_psnr": target,
        "fine_tuned_final_psnr": fine_tuned[-1]["psnr"],
        "fine_tuned_minus_scratch_final_db": fine_tuned[-1]["psnr"] - target,
        "fine_tuned_psnr_at_step_0": fine_tuned[0]["psnr"],
        "scratch_psnr_at_step_0": scratch[0]["psnr"],
        "fine_tuned_reaches_scratch_final_at_step": hit,
        "step_ratio": None if hit is None else hit / total,
        "speedup": None if hit is None or hit <= 0 else total / hit,
        "scratch_reaches_fine_tuned_final_at_step": reverse,
        "note": "step_ratio = (step at which fine-tuning first reaches scratch's final held-out PSNR, linear between "
        "evaluations) / (scratch's total steps); 0 when the checkpoint already beats it before any step",
    }


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in ("1_novel_views_seen_times", "2_unseen_frames"):
        section = results.get(key, {})
        rows = {}
        for scene, entry in section.items():
            variants = entry.get("variants", {})
            row: dict[str, Any] = {}
            for variant, record in variants.items():
                row[variant] = {
                    "held_out_psnr": record["final"]["psnr"],
                    "held_out_ssim": record["final"]["ssim"],
                    "psnr_static_pixels": record["final"]["psnr_static_pixels"],
                    "psnr_moving_pixels": record["final"]["psnr_moving_pixels"],
                    "training_views_psnr": (
                        record.get("training_views") or record.get("training_frames_eval") or {}
                    ).get("psnr"),
                }
                if "ablation_psnr_drop_db" in record:
                    row[variant]["mean_features_psnr_drop_db"] = record["ablation_psnr_drop_db"]
            if "mononerf" in row and "no-features" in row:
                row["mononerf_minus_no_features_db"] = (
                    row["mononerf"]["held_out_psnr"] - row["no-features"]["held_out_psnr"]
                )
            rows[scene] = row
        gains = [
            row["mononerf_minus_no_features_db"] for row in rows.values() if "mononerf_minus_no_features_db" in row
        ]
        if gains:
            rows["mean_gain_db"] = float(np.mean(gains))
        if rows:
            summary[key] = rows
    adaptation = results.get("3_unseen_scene", {}).get("adaptation")
    if adaptation:
        summary["3_unseen_scene"] = adaptation
    return summary


# ---------------------------------------------------------------------------------------------------------- plots


def plot_grid(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    columns = 1 + max(len(row["renders"]) for row in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(2.6 * columns, 1.7 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        axes[r, 0].imshow(np.clip(row["gt"], 0, 1), interpolation="nearest")
        axes[r, 0].set_title(f"{row['title']}\nground truth", fontsize=7)
        for c, (name, (image, psnr)) in enumerate(row["renders"].items(), start=1):
            axes[r, c].imshow(np.clip(image, 0, 1), interpolation="nearest")
            axes[r, c].set_title(f"{name}\n{psnr:.2f} dB", fontsize=7)
        for axis in axes[r]:
            axis.axis("off")
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=110))
    plt.close(figure)


def plot_adaptation(curves: dict[str, list[dict[str, Any]]], static_steps: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        return
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for name, curve in curves.items():
        axis.plot([p["step"] for p in curve], [p["psnr"] for p in curve], marker=".", label=name)
    if "scratch" in curves:
        axis.axhline(curves["scratch"][-1]["psnr"], color="grey", linestyle="--", label="scratch final")
    axis.axvline(static_steps, color="black", linestyle=":", label="static -> dynamic stage")
    axis.set(title="Unseen scene: held-out PSNR against step", xlabel="step", ylabel="PSNR (dB)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=100))
    plt.close(figure)


# ------------------------------------------------------------------------------------------------ configuration


def configuration(args: argparse.Namespace) -> dict[str, Any]:
    plain = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    plain["scenes"] = [str(p) for p in args.scenes] if args.scenes else None
    reduced = None
    if not args.paper:
        reduced = {
            "preset": "mononerf_cpu_config(): small random frozen 3D/2D CNN encoders (no SlowOnly R50 / ResNet-18, no "
            "pretrained weights), 64-wide MLPs, 32-d global code, 2-step Euler trajectories (the released "
            "discrete mode) instead of the ODE",
            "rays_per_step": f"{args.rays or 256} (paper 1024)",
            "samples_per_ray": f"{args.samples or 32} (paper 64)",
            "steps_per_scene": f"{args.static_steps} static + {args.dynamic_steps} dynamic (paper 150,001 + 150,001)",
            "multi_scene_steps": f"{args.multi_static_steps} static + {args.multi_dynamic_steps} dynamic (paper: "
            "checkpoint of a 150k-step run; the released fine-tuning script loads step 10,000)",
            "fine_tuning_steps": f"{args.finetune_static_steps} static + {args.finetune_dynamic_steps} dynamic "
            "(paper 2,000 + 2,000)",
            "scenes": f"generated, {args.width}x{args.height}, {args.frames} frames, seeds {args.seeds} "
            f"(comparison 1 and the multi-scene run), new scene seed {args.unseen_seed}; Balloon1 at 1/"
            f"{args.balloon_factor} ({960 // args.balloon_factor}x{540 // args.balloon_factor}) (paper: NVIDIA "
            "scenes at 480x270)",
            "training_frames": f"{args.training_frames} of {args.frames} (paper: 5 of 12)",
            "learning_rate": "5e-4 decaying by 0.1 over 300k steps, as released (so effectively constant here)",
            "evaluation": "comparison 1: all 12 camera-0 views; comparison 2: every unseen frame; comparison 3 curve: "
            f"{args.curve_views} of the 12 camera-0 views (evenly spread); multi-scene run: {args.multi_eval_views} "
            "views over its scenes. Full-image renders, PSNR and SSIM (no LPIPS: its weights are not local)",
        }
    return {
        "arguments": plain,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "variants": VARIANTS,
        "reduced_settings": reduced,
        "paper_settings": PAPER_SETTINGS,
        "protocol": {
            "1": "held-out = rig camera 0 at every time (multiview_GT, DynamicNeRF protocol); training-view PSNR = "
            "camera i at time i; Balloon1 has no multiview_GT, so it appears under comparison 2 only (its "
            "training-frame PSNR is the reconstruction measurement)",
            "2": "train on frames [0, k), evaluate frames k..N-1 at their own cameras (dynamic stage samples only "
            "the first k frames; the static stage every frame's static pixels as released, except on scenes "
            "without motion masks, where it would fit the held-out frames themselves)",
            "3": "multi-scene run on the comparison-1 scenes -> checkpoint -> new scene: fine-tune vs scratch with "
            "the same schedule (mask-flow weight 0.01 as the released fine-tuning configs)",
            "moving_pixels": "fixed held-out camera: |GT - per-pixel median over time| > motion_threshold in any "
            "channel; unseen frames of generated scenes: the generator's motion masks",
            "ablation_mean_features": "the trained mononerf model evaluated with every feature map replaced by its "
            "per-channel mean (no spatial/temporal information); PSNR drop = how much the renders use the features",
        },
    }


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paper", action="store_true", help="the released settings (mononerf_config) on CUDA")
    parser.add_argument("--smoke", action="store_true", help="a ~2-minute end-to-end check with tiny settings")
    parser.add_argument("--comparisons", nargs="+", type=int, default=[1, 2, 3], choices=[1, 2, 3])
    parser.add_argument(
        "--scenes",
        nargs="+",
        type=Path,
        default=None,
        help="real DynamicNeRF-layout scenes instead of generated ones: comparisons 1 and 2 on each, "
        "comparison 3 trains on all but the last and adapts to the last",
    )
    parser.add_argument("--scenes-factor", type=int, default=None, help="downscale of --scenes (CPU 16, paper 2)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="generated scenes (one per seed)")
    parser.add_argument("--unseen-seed", type=int, default=7, help="generated scene of comparison 3's new scene")
    parser.add_argument("--width", type=int, default=None, help="generated scene width (CPU 64, paper 480)")
    parser.add_argument("--height", type=int, default=None, help="generated scene height (CPU 36, paper 270)")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--balloon", type=Path, default=BALLOON1, help="Balloon1 (comparison 2); '' to skip")
    parser.add_argument("--balloon-factor", type=int, default=None, help="Balloon1 downscale (CPU 16, paper 2)")
    parser.add_argument("--rays", type=int, default=None, help="rays per step (CPU default 128, paper 1024)")
    parser.add_argument("--samples", type=int, default=None, help="samples per ray (preset: CPU 32, paper 64)")
    parser.add_argument("--solver", choices=["ode", "ode-adjoint", "euler"], default=None, help="preset's by default")
    parser.add_argument(
        "--depth-blending-weight",
        type=float,
        default=None,
        help="override the depth-blending loss weight (released 1.0); 0 is the diagnostic of the README's finding",
    )
    parser.add_argument("--video-encoder-checkpoint", type=Path, default=None, help="SlowOnly K400 .pth (--paper)")
    parser.add_argument("--static-steps", type=int, default=None)
    parser.add_argument("--dynamic-steps", type=int, default=None)
    parser.add_argument("--training-frames", type=int, default=5)
    parser.add_argument("--multi-static-steps", type=int, default=None)
    parser.add_argument("--multi-dynamic-steps", type=int, default=None)
    parser.add_argument("--finetune-static-steps", type=int, default=None)
    parser.add_argument("--finetune-dynamic-steps", type=int, default=None)
    parser.add_argument("--curve-every", type=int, default=None, help="comparison 3: steps between evaluations")
    parser.add_argument("--curve-views", type=int, default=None, help="comparison 3: held-out views per evaluation")
    parser.add_argument(
        "--multi-eval-views", type=int, default=None, help="multi-scene run: views evaluated at the end"
    )
    parser.add_argument("--motion-threshold", type=float, default=0.06)
    parser.add_argument("--seed", type=int, default=0, help="torch seed before every variant")
    parser.add_argument("--log-every", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu (default) or cuda (--paper)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=REPO / "bench_results")
    parser.add_argument("--tag", default="", help="suffix for the output file names")
    args = parser.parse_args(argv)

    # name: (CPU default, smoke, paper)
    defaults = {
        "width": (64, 32, 480),
        "height": (36, 18, 270),
        "balloon_factor": (16, 32, 2),
        "scenes_factor": (16, 16, 2),
        "rays": (128, 64, None),
        "static_steps": (600, 20, 150001),
        "dynamic_steps": (400, 10, 150001),
        "multi_static_steps": (600, 20, 150001),
        "multi_dynamic_steps": (500, 10, 150001),
        "finetune_static_steps": (150, 10, 2000),
        "finetune_dynamic_steps": (250, 10, 2000),
        "curve_every": (50, 10, 250),
        "curve_views": (6, 2, None),
        "multi_eval_views": (6, 2, None),
        "log_every": (50, 10, 1000),
    }
    column = 2 if args.paper else (1 if args.smoke else 0)
    for name, values in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, values[column])
    if args.smoke and args.seeds == [0, 1]:
        args.seeds = [0]
    if args.device is None:
        args.device = "cuda" if args.paper else "cpu"
    args.stem = f"{STEM}{args.tag}"
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    args.output.mkdir(parents=True, exist_ok=True)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --paper / --device cuda needs a CUDA device", file=sys.stderr)
        return 2

    import nerfstudio_methods.mononerf.config  # noqa: F401  (installs the compat fixes)

    bench = Benchmark(args)
    balloon = args.balloon if args.balloon and str(args.balloon) not in ("", ".") else None
    if balloon is not None and not (balloon / "poses_bounds.npy").is_file():
        print(f"error: {balloon}: no poses_bounds.npy (pass --balloon '' to skip Balloon1)", file=sys.stderr)
        return 2
    if args.scenes:
        scenes = [(p.name, p, args.scenes_factor) for p in args.scenes]
        new_scene = scenes[-1]
        multi = scenes[:-1] if len(scenes) > 1 else scenes
        with_masks = [(n, p, f, (p / "motion_masks").is_dir()) for n, p, f in scenes]
    else:
        scenes = [(f"generated-seed{s}", generated_scene(args, s), 1) for s in args.seeds]
        new_scene = (f"generated-seed{args.unseen_seed}", generated_scene(args, args.unseen_seed), 1)
        multi = scenes
        with_masks = [(scenes[0][0], scenes[0][1], 1, True)]
    if balloon is not None:
        with_masks.append((balloon.name, balloon, args.balloon_factor, (balloon / "motion_masks").is_dir()))
    log(f"threads {torch.get_num_threads()}, device {args.device}, comparisons {args.comparisons}")
    try:
        if 1 in args.comparisons:
            bench.novel_views(scenes)
        if 2 in args.comparisons:
            bench.unseen_frames(with_masks)
        if 3 in args.comparisons:
            bench.unseen_scene(multi, new_scene)
        bench.finished = True
    finally:
        bench.save()
        plot_grid(bench.grid_rows, args.output / f"{args.stem}_grid.png")
        plot_adaptation(bench.curves, args.finetune_static_steps, args.output / f"{args.stem}_adaptation.png")
    print(json.dumps(summarise(bench.results), indent=2))
    log(f"wrote {args.output / (args.stem + '.json')} and the PNGs in {time.perf_counter() - bench.started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
