"""MonoNeRF's generalisation (issue 23): a new scene from a multi-scene checkpoint, unseen frames, and what each
preprocessing part of a user's video is worth.

Comparisons (``--comparisons``, any subset; several processes may each run some and merge into one results file):

- ``mask-tuning``: scenes without ``motion_masks/`` get masks from the static branch's colour error halfway through
  the static stage (``MonoNeRFPipeline``). On generated tuning scenes (true masks withheld from training) the
  agreement (IoU) of such masks with the true ones for a grid of thresholds, which chose the shipped
  ``--pipeline.static-error-ratio`` and ``--pipeline.motion-mask-dilation``. Tuning scenes are not report scenes.
- ``unseen-scene``: one multi-scene run on two generated scenes (its checkpoint saved), then each report seed's new
  scene trained three ways, as ``ns-train mononerf-cpu --pipeline.model.pretrained-checkpoint CKPT
  --pipeline.model.static-steps S --max-num-iterations N`` configures it: ``scratch`` (no checkpoint, a schedule
  long enough for its held-out PSNR to flatten), ``fine-tuned`` (the checkpoint with a fresh blending head, the
  default, on a third of scratch's steps) and ``fine-tuned-kept-blending`` (the checkpoint's blending head too,
  ``--pipeline.model.pretrained-fresh-blending False``: the behaviour measured in issue 10). The blending weight on
  the new scene's moving pixels is measured before and after.
- ``blending-diagnostic``: the logits a released-style blending head (Kaiming-initialised, on the raw trunk state)
  would produce on each new scene through the multi-scene checkpoint's trunk and through a fresh one.
- ``unseen-frames``: train on the first 5 frames, evaluate frames 5..11 at their own cameras: MonoNeRF against the
  same model without features (``use_features=False``) on real Balloon1 (disparity only, so with derived motion
  masks; and MonoNeRF with the derivation off, to measure it) and on generated scenes (all parts).
- ``preprocessing``: on generated scenes, which have every part, held-out views (rig camera 0 at every time) of the
  model trained with everything, then without optical flow, without disparity, without motion masks (derived
  instead, and not at all) and without features: what a user's video loses without each part.

Every run trains in this process through the Python API (pipeline + optimisers from the same config ``ns-train``
builds), seeded with the run's seed, so arms with the same architecture start from identical weights. The default
settings are a CPU-sized reduction recorded under ``configuration``; ``--paper`` switches to the released settings
for a GPU. Results merge (under a lock) into ``<output>/mononerf_generalization.json``, whose ``summary`` gives each
verdict with its mean, spread and per-seed values; plots: ``..._adaptation.png`` (held-out PSNR against step) and
``..._grid.png`` (renders).

Usage::

    python benchmarks/mononerf_generalization.py [--comparisons unseen-scene ...] [--seeds 0 1 2] [--threads 1]
    python benchmarks/mononerf_generalization.py --smoke          # a ~1-minute end-to-end check (temporary output)
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
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import atomic_write, locked, refuse_other_settings, seed_everything, spread  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BALLOON1 = REPO.parent / "shared" / "data" / "nvidia_dynamic" / "Balloon1"
STEM = "mononerf_generalization"
COMPARISONS = ("mask-tuning", "unseen-scene", "blending-diagnostic", "unseen-frames", "preprocessing")

REPORT_SEEDS = (0, 1, 2)
"""Generated report scenes (and the torch seed of their runs)."""
TUNING_SEEDS = (3, 4)
"""Generated scenes on which the mask threshold was chosen (never reported)."""
MULTI_SCENE_SEEDS = (10, 11)
"""Generated scenes of the multi-scene run whose checkpoint the new scenes start from."""
PILOT = (
    "the fine-tuning schedule (a third of scratch's steps, 1/3 of them static) and the fresh blending head were chosen "
    "in a pilot on generated scene 7 (multi-scene run on scenes 0 and 1), which is not reported"
)

ARMS = {
    "mononerf": "MonoNeRF: video features, image features, flow-based feature aggregation, the per-video code",
    "no-features": "the same model with use_features=False: every feature lookup and the global code are zero, so "
    "both MLPs see the positional encoding only (DynamicNeRF-style baseline); same parameters, seed and steps",
    "mononerf-no-derived-masks": "MonoNeRF on a scene without motion masks, the derivation switched off "
    "(--pipeline.motion-masks-from-static-error False): every pixel static, mask terms and ray balance off",
    "scratch": "MonoNeRF on the new scene from random initialisation",
    "fine-tuned": "MonoNeRF initialised from the multi-scene checkpoint with a fresh blending head (the default)",
    "fine-tuned-kept-blending": "the same with the checkpoint's blending head too "
    "(--pipeline.model.pretrained-fresh-blending False)",
    "all-parts": "MonoNeRF with disparity, optical flow and motion masks",
    "no-flow": "without optical flow (--ignore-parts flow): no flow loss",
    "no-disparity": "without disparity (--ignore-parts disparity): no depth and depth-blending losses",
    "derived-masks": "without motion masks, derived from the static branch's error (--ignore-parts motion-masks)",
    "no-masks": "without motion masks and without the derivation: every pixel static, mask terms and balance off",
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

    path = args.work / "scenes" / f"seed{seed}_{args.width}x{args.height}_{args.frames}f"
    if (path / "poses_bounds.npy").is_file() and (path / "multiview_GT").is_dir():
        return path
    # Several benchmark processes may ask for the same scene: each writes its own staging folder; the first rename
    # wins and the others keep its result.
    staging = path.with_name(f"{path.name}.partial{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    write_nvidia_dynamic(staging, width=args.width, height=args.height, num_frames=args.frames, seed=seed)
    try:
        os.replace(staging, path)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
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
    fresh_blending: bool = True,
    mask_flow_loss_mult: Optional[float] = None,
    ignore_parts: tuple[str, ...] = (),
    derive_masks: bool = True,
):
    from dataparsers.dynamic_scene import DynamicSceneDataParserConfig
    from nerfstudio_methods.mononerf.config import mononerf_config, mononerf_cpu_config
    from nerfstudio_methods.mononerf.datamanager import MonoNeRFDataManagerConfig
    from nerfstudio_methods.mononerf.model import MonoNeRFModelConfig
    from nerfstudio_methods.mononerf.pipeline import MonoNeRFPipelineConfig

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
    dataparser.ignore_parts = ignore_parts  # type: ignore[assignment]
    pipeline = config.pipeline
    assert isinstance(pipeline, MonoNeRFPipelineConfig)
    pipeline.motion_masks_from_static_error = derive_masks
    if args.rays is not None:
        datamanager.train_num_rays_per_batch = args.rays
    model = config.pipeline.model
    assert isinstance(model, MonoNeRFModelConfig)
    if args.samples is not None:
        model.num_samples = args.samples
    if args.solver is not None:
        model.trajectory_solver = args.solver
    if args.video_encoder_checkpoint is not None:
        model.video_encoder_checkpoint = args.video_encoder_checkpoint
    model.use_features = use_features
    model.static_steps = static_steps
    model.pretrained_checkpoint = pretrained
    model.pretrained_fresh_blending = fresh_blending
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
                if (
                    view["frame"] == view["rig_camera"]
                    and video.motion_mask is not None
                    and not video.motion_mask_derived
                ):
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
                    "moving": None
                    if video.motion_mask is None or video.motion_mask_derived
                    else video.motion_mask[frame].bool(),
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

    def __init__(self, label: str, config, args: argparse.Namespace, seed: int) -> None:
        from nerfstudio.engine.optimizers import Optimizers

        self.label = label
        self.config = config
        self.args = args
        self.seed = seed
        seed_everything(seed)
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
        "description": ARMS.get(run.label.split(":")[-1], run.label),
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


@torch.no_grad()
def blending_on_pixels(pipeline, views: list[dict[str, Any]]) -> dict[str, Optional[float]]:
    """The mean dynamicness (sum over the ray of its weight times the blending weight: the share of the pixel the
    dynamic branch paints) on moving and on static pixels of ``views``, rendered as in stage 2 whatever the run's
    step (so that a checkpoint's blending can be read before any step on a new scene)."""
    model = pipeline.model
    saved = int(model.trained_steps)
    model.trained_steps.fill_(max(saved, model.config.static_steps))
    pipeline.eval()
    sums = {"moving": [0.0, 0], "static": [0.0, 0]}
    for view in views:
        if view["moving"] is None:
            continue
        dynamicness = model.get_outputs_for_camera(view["camera"].to(pipeline.device))["dynamicness"][..., 0].cpu()
        for name, mask in (("moving", view["moving"]), ("static", ~view["moving"])):
            sums[name][0] += float(dynamicness[mask].sum())
            sums[name][1] += int(mask.sum())
    pipeline.train()
    model.trained_steps.fill_(saved)
    return {name: (total / count if count else None) for name, (total, count) in sums.items()}


class Benchmark:
    """The comparisons; each stores its entries in the results file as soon as they are done."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.path = args.output / f"{args.stem}.json"

    def store(self, comparison: str, key: str, entry: dict[str, Any]) -> None:
        store(self.path, self.args, comparison, key, entry)

    def config(self, data: Path, **kwargs):
        return make_config(self.args, data, **kwargs)

    # --- mask tuning ---

    def mask_tuning(self) -> None:
        """IoU of derived masks with the generated scenes' true masks, for a grid of ratios and dilations."""
        from dataparsers.dynamic_scene import DynamicSceneDataParserConfig
        from nerfstudio_methods.mononerf.model import dilate_mask

        args = self.args
        for seed in args.tuning_seeds:
            path = generated_scene(args, seed)
            truth = (
                DynamicSceneDataParserConfig(data=path).setup().get_dataparser_outputs("train").metadata["scenes"][0]
            ).motion_mask
            config = self.config(
                path,
                use_features=True,
                static_steps=args.static_steps,
                total_steps=args.static_steps,
                ignore_parts=("motion-masks",),
                derive_masks=False,
            )
            run = Run(f"mask-tuning:seed{seed}", config, args, seed)
            run.train_to(args.static_steps // 2)  # where the pipeline derives them
            model = run.pipeline.model
            video = model.scenes[0]
            errors = []
            model.eval()
            with torch.no_grad():
                for frame in range(video.num_frames):
                    rendered = model.get_outputs_for_camera(video.cameras[frame : frame + 1])["rgb_static"]
                    errors.append((rendered.cpu() - video.images[frame]).abs().amax(dim=-1))
            model.train()
            grid = []
            for ratio in args.mask_ratios:
                for dilation in (0, 1, 2):
                    masks = torch.stack([dilate_mask(e > ratio * e.median(), dilation) for e in errors])
                    intersection = int((masks & truth).sum())
                    union = int((masks | truth).sum())
                    grid.append(
                        {
                            "ratio": ratio,
                            "dilation": dilation,
                            "iou": intersection / max(union, 1),
                            "recall": intersection / max(int(truth.sum()), 1),
                            "precision": intersection / max(int(masks.sum()), 1),
                            "derived_fraction": float(masks.float().mean()),
                        }
                    )
            run.close()
            self.store(
                "mask-tuning",
                f"seed{seed}",
                {
                    "scene": str(path),
                    "true_moving_fraction": float(truth.float().mean()),
                    "step": args.static_steps // 2,
                    "grid": grid,
                },
            )
            log(f"mask tuning seed {seed}: best IoU {max(g['iou'] for g in grid):.3f}")

    # --- unseen scene ---

    def multi_scene_checkpoint(self) -> Path:
        """The multi-scene run (trained once per settings; its record stored under ``unseen-scene/multi-scene``)."""
        args = self.args
        checkpoint = args.work / f"multiscene_{settings_fingerprint(args)}.ckpt"
        if checkpoint.is_file():
            return checkpoint
        first, *others = [generated_scene(args, seed) for seed in args.multi_scene_seeds]
        config = self.config(
            first,
            use_features=True,
            static_steps=args.multi_static_steps,
            total_steps=args.multi_static_steps + args.multi_dynamic_steps,
            extra_scenes=tuple(others),
        )
        run = Run("unseen-scene:multi-scene", config, args, 0)
        views = held_out_views(run.pipeline, args.motion_threshold)
        curve = train_with_evals(run, [], lambda: subset(views, args.curve_views * len(args.multi_scene_seeds)))
        record = variant_record(run, curve, {"blending_own_scenes": blending_on_pixels(run.pipeline, views)})
        record["scenes"] = [f"generated-seed{seed}" for seed in args.multi_scene_seeds]
        atomic_write(
            checkpoint,
            lambda temporary: torch.save({"pipeline": run.pipeline.state_dict(), "step": run.step}, temporary),
        )
        run.close()
        self.store("unseen-scene", "multi-scene", record)
        return checkpoint

    def unseen_scene(self) -> None:
        args = self.args
        checkpoint = self.multi_scene_checkpoint()
        scratch_total = args.scratch_static_steps + args.scratch_dynamic_steps
        finetune_total = args.finetune_static_steps + args.finetune_dynamic_steps
        for seed in args.seeds:
            path = generated_scene(args, seed)
            entry: dict[str, Any] = {"scene": f"generated-seed{seed}", "data": str(path), "seed": seed, "arms": {}}
            arms = (
                ("scratch", None, True, args.scratch_static_steps, scratch_total, args.scratch_curve_every),
                ("fine-tuned", checkpoint, True, args.finetune_static_steps, finetune_total, args.finetune_curve_every),
                (
                    "fine-tuned-kept-blending",
                    checkpoint,
                    False,
                    args.finetune_static_steps,
                    finetune_total,
                    args.finetune_curve_every,
                ),
            )
            for arm, pretrained, fresh, static_steps, total, every in arms:
                config = self.config(
                    path,
                    use_features=True,
                    static_steps=static_steps,
                    total_steps=total,
                    pretrained=pretrained,
                    fresh_blending=fresh,
                    mask_flow_loss_mult=0.01,
                )
                run = Run(f"unseen-scene:seed{seed}:{arm}", config, args, seed)
                views = subset(held_out_views(run.pipeline, args.motion_threshold), args.curve_views)
                before = blending_on_pixels(run.pipeline, views)
                curve = train_with_evals(run, list(range(0, total + 1, every)), lambda: views)
                after = blending_on_pixels(run.pipeline, views)
                log(f"{run.label}: blending on moving pixels {before['moving']} -> {after['moving']}")
                entry["arms"][arm] = variant_record(
                    run,
                    curve,
                    {
                        "cli": ns_train_command(config, pretrained, fresh),
                        "blending_before": before,
                        "blending_after": after,
                    },
                )
                run.close()
            entry["adaptation"] = adaptation_summary(
                entry["arms"]["fine-tuned"]["curve"], entry["arms"]["scratch"]["curve"]
            )
            entry["adaptation_kept_blending"] = adaptation_summary(
                entry["arms"]["fine-tuned-kept-blending"]["curve"], entry["arms"]["scratch"]["curve"]
            )
            self.store("unseen-scene", f"seed{seed}", entry)

    # --- why the released blending head dies on a new scene ---

    def blending_diagnostic(self) -> None:
        """What the released blending head (``weight_linear``: Kaiming-initialised, on the raw state relu(h)) would
        output on each new scene: through the multi-scene checkpoint's trunk, and through a fresh trunk (a scratch
        run at its first step). Logits far from 0 mean a saturated sigmoid with no gradient; the shipped head reads
        the layer-normalised state instead and starts at 0 (b = 0.5)."""
        from nerfstudio_methods.mononerf.field import _linear

        args = self.args
        checkpoint = self.multi_scene_checkpoint()
        for seed in args.seeds:
            path = generated_scene(args, seed)
            entry: dict[str, Any] = {"scene": f"generated-seed{seed}", "seed": seed}
            for name, pretrained in (("checkpoint_trunk", checkpoint), ("fresh_trunk", None)):
                config = self.config(path, use_features=True, static_steps=1, total_steps=1, pretrained=pretrained)
                run = Run(f"blending-diagnostic:seed{seed}:{name}", config, args, seed)
                model = run.pipeline.model
                states: list[torch.Tensor] = []
                hook = model.dynamic_field.output_head.register_forward_hook(
                    lambda module, inputs, output: states.append(inputs[0].detach())
                )
                views = subset(held_out_views(run.pipeline, args.motion_threshold), args.curve_views)
                blending = blending_on_pixels(run.pipeline, views)
                hook.remove()
                state = torch.cat(states)
                torch.manual_seed(seed)
                released_head = _linear(state.shape[-1], 1)
                with torch.no_grad():
                    logits = released_head(state)[:, 0]
                entry[name] = {
                    "released_head_logit_mean": float(logits.mean()),
                    "released_head_logit_std": float(logits.std()),
                    "released_head_saturated_fraction": float((logits.abs() > 5).float().mean()),
                    "released_head_mean_blending": float(torch.sigmoid(logits).mean()),
                    "state_norm_mean": float(state.norm(dim=-1).mean()),
                    "shipped_head_blending_on_pixels": blending,
                }
                log(f"{run.label}: released head logits {float(logits.mean()):.2f} +- {float(logits.std()):.2f}")
                run.close()
            self.store("blending-diagnostic", f"seed{seed}", entry)

    # --- unseen frames ---

    def unseen_frames(self) -> None:
        args = self.args
        scenes: list[tuple[str, Path, int, tuple[str, ...]]] = []
        if args.balloon is not None and "balloon1" in args.frames_scenes:
            scenes.append(
                (
                    "Balloon1",
                    args.balloon,
                    args.balloon_factor,
                    ("mononerf", "no-features", "mononerf-no-derived-masks"),
                )
            )
        for seed in args.seeds if "generated" in args.frames_scenes else []:
            scenes.append((f"generated-seed{seed}", generated_scene(args, seed), 1, ("mononerf", "no-features")))
        for name, path, factor, arms in scenes:
            # Balloon1's seeds are the torch seed of its runs; a generated scene's seed is also its scene.
            seeds = args.seeds if name == "Balloon1" else [int(name.removeprefix("generated-seed"))]
            for seed in seeds:
                entry: dict[str, Any] = {"scene": name, "data": str(path), "seed": seed, "arms": {}}
                # A scene without motion masks (Balloon1) reads the blending on the masks the first arm derived, so
                # that every arm of the seed is measured on the same pixels.
                derived: Optional[torch.Tensor] = None
                for arm in arms:
                    config = self.config(
                        path,
                        use_features=arm != "no-features",
                        static_steps=args.static_steps,
                        total_steps=args.static_steps + args.dynamic_steps,
                        factor=factor,
                        training_frames=args.training_frames,
                        eval_split="unseen-frames",
                        mask_flow_loss_mult=0.01,
                        derive_masks=arm != "mononerf-no-derived-masks",
                    )
                    run = Run(f"unseen-frames:{name}:seed{seed}:{arm}", config, args, seed)
                    views = held_out_views(run.pipeline, args.motion_threshold)
                    curve = train_with_evals(run, [args.static_steps], lambda: views)
                    train_eval = evaluate(run.pipeline, training_views(run.pipeline))
                    video = run.pipeline.model.scenes[0]
                    extra: dict[str, Any] = {
                        "training_frames_eval": strip_images(train_eval),
                        "unseen_psnr_by_frame": {str(v["frame"]): v["psnr"] for v in curve[-1]["per_view"]},
                        "derived_moving_fraction": float(video.motion_mask[: video.supervised_frames].float().mean())
                        if video.motion_mask_derived
                        else None,
                    }
                    if video.motion_mask_derived and derived is None:
                        derived = video.motion_mask[: video.supervised_frames].bool().clone()
                    blending_views = training_views(run.pipeline)
                    if derived is not None:
                        for view in blending_views:
                            if view["moving"] is None:
                                view["moving"] = derived[view["frame"]]
                        extra["blending_on"] = f"the masks derived by the {arms[0]} arm"
                    extra["blending"] = blending_on_pixels(run.pipeline, blending_views)
                    if arm == "mononerf":
                        with MeanFeatures(run.pipeline.model):
                            extra["mean_features_psnr"] = evaluate(run.pipeline, views)["psnr"]
                    log(f"{run.label}: training frames {train_eval['psnr']:.2f} dB, unseen {curve[-1]['psnr']:.2f} dB")
                    entry["arms"][arm] = variant_record(run, curve, extra)
                    run.close()
                self.store("unseen-frames", f"{name}/seed{seed}", entry)

    # --- preprocessing parts ---

    def preprocessing(self) -> None:
        args = self.args
        arms = {
            "all-parts": {},
            "no-flow": {"ignore_parts": ("flow",)},
            "no-disparity": {"ignore_parts": ("disparity",)},
            "derived-masks": {"ignore_parts": ("motion-masks",)},
            "no-masks": {"ignore_parts": ("motion-masks",), "derive_masks": False},
            "no-features": {"use_features": False},
        }
        for seed in args.seeds:
            path = generated_scene(args, seed)
            entry: dict[str, Any] = {"scene": f"generated-seed{seed}", "data": str(path), "seed": seed, "arms": {}}
            for arm, overrides in arms.items():
                settings: dict[str, Any] = {"use_features": True} | overrides
                config = self.config(
                    path,
                    static_steps=args.static_steps,
                    total_steps=args.static_steps + args.preprocessing_dynamic_steps,
                    **settings,
                )
                run = Run(f"preprocessing:seed{seed}:{arm}", config, args, seed)
                views = subset(held_out_views(run.pipeline, args.motion_threshold), args.curve_views)
                curve = train_with_evals(run, [args.static_steps], lambda: views)
                entry["arms"][arm] = variant_record(
                    run, curve, {"blending": blending_on_pixels(run.pipeline, views), "overrides": settings}
                )
                run.close()
            self.store("preprocessing", f"seed{seed}", entry)


def ns_train_command(config, pretrained: Optional[Path], fresh_blending: bool) -> str:
    """The ``ns-train`` line that builds the same configuration as an unseen-scene arm."""
    model = config.pipeline.model
    parts = ["ns-train mononerf-cpu"]
    if pretrained is not None:
        parts.append(f"--pipeline.model.pretrained-checkpoint {pretrained}")
        if not fresh_blending:
            parts.append("--pipeline.model.pretrained-fresh-blending False")
    parts += [
        f"--pipeline.model.static-steps {model.static_steps}",
        f"--max-num-iterations {config.max_num_iterations}",
        f"--pipeline.model.mask-flow-loss-mult {model.mask_flow_loss_mult}",
        f"--pipeline.datamanager.train-num-rays-per-batch {config.pipeline.datamanager.train_num_rays_per_batch}",
        f"dynamic-scene-data --data {config.pipeline.datamanager.data}",
    ]
    return " ".join(parts)


# ------------------------------------------------------------------------------------------------- summaries


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
    """Where fine-tuning reaches scratch's final held-out PSNR, as a fraction of scratch's steps."""
    target = scratch[-1]["psnr"]
    total = scratch[-1]["step"]
    hit = reach(fine_tuned, target)
    quarter = min(scratch, key=lambda point: abs(point["step"] - 0.75 * total))
    return {
        "scratch_final_psnr": target,
        "fine_tuned_final_psnr": fine_tuned[-1]["psnr"],
        "fine_tuned_minus_scratch_final_db": fine_tuned[-1]["psnr"] - target,
        "fine_tuned_psnr_at_step_0": fine_tuned[0]["psnr"],
        "scratch_psnr_at_step_0": scratch[0]["psnr"],
        "fine_tuned_reaches_scratch_final_at_step": hit,
        "step_ratio": None if hit is None else hit / total,
        "scratch_last_quarter_gain_db": target - quarter["psnr"],
        "note": "step_ratio = (fine-tuning's first step at scratch's final held-out PSNR, linear between evaluations) "
        "/ (scratch's total steps); scratch_last_quarter_gain_db = scratch's final PSNR minus its PSNR at 3/4 of "
        "its steps (how flat its curve is at the end)",
    }


def difference(first: Optional[float], second: Optional[float]) -> Optional[float]:
    return None if first is None or second is None else first - second


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The verdicts: each a mean over seeds with its spread and per-seed values."""
    summary: dict[str, Any] = {}
    scene_runs = {key: entry for key, entry in results.get("unseen-scene", {}).items() if key.startswith("seed")}
    if scene_runs:

        def over_seeds(read: Callable[[dict[str, Any]], Optional[float]]) -> dict[str, Any]:
            return spread({key: read(entry) for key, entry in sorted(scene_runs.items())})

        def blending(arm: str, when: str) -> dict[str, Any]:
            return over_seeds(lambda entry: entry["arms"][arm][when]["moving"])

        ratios = [entry["adaptation"]["step_ratio"] for entry in scene_runs.values()]
        gains = [entry["adaptation"]["fine_tuned_minus_scratch_final_db"] for entry in scene_runs.values()]
        summary["unseen_scene"] = {
            "step_ratio": over_seeds(lambda entry: entry["adaptation"]["step_ratio"]),
            "fine_tuned_final_psnr": over_seeds(lambda entry: entry["adaptation"]["fine_tuned_final_psnr"]),
            "scratch_final_psnr": over_seeds(lambda entry: entry["adaptation"]["scratch_final_psnr"]),
            "fine_tuned_minus_scratch_final_db": over_seeds(
                lambda entry: entry["adaptation"]["fine_tuned_minus_scratch_final_db"]
            ),
            "scratch_last_quarter_gain_db": over_seeds(
                lambda entry: entry["adaptation"]["scratch_last_quarter_gain_db"]
            ),
            "kept_blending": {
                "step_ratio": over_seeds(lambda entry: entry["adaptation_kept_blending"]["step_ratio"]),
                "final_psnr": over_seeds(lambda entry: entry["adaptation_kept_blending"]["fine_tuned_final_psnr"]),
            },
            "blending_on_moving_pixels": {
                "checkpoint_head_before": blending("fine-tuned-kept-blending", "blending_before"),
                "checkpoint_head_after": blending("fine-tuned-kept-blending", "blending_after"),
                "fresh_head_before": blending("fine-tuned", "blending_before"),
                "fresh_head_after": blending("fine-tuned", "blending_after"),
                "scratch_after": blending("scratch", "blending_after"),
            },
            "multi_scene_blending_own_scenes": results["unseen-scene"]
            .get("multi-scene", {})
            .get("blending_own_scenes"),
            "verdict": {
                "reaches_scratch_final_within_a_third_every_seed": all(r is not None and r <= 1 / 3 for r in ratios),
                "ends_at_or_above_scratch_every_seed": all(g >= 0 for g in gains),
            },
        }
    diagnostic = results.get("blending-diagnostic", {})
    if diagnostic:
        summary["blending_diagnostic"] = {
            trunk: {
                key: spread({seed: entry[trunk][key] for seed, entry in sorted(diagnostic.items())})
                for key in (
                    "released_head_logit_mean",
                    "released_head_logit_std",
                    "released_head_saturated_fraction",
                    "state_norm_mean",
                )
            }
            for trunk in ("checkpoint_trunk", "fresh_trunk")
        }
    frames = results.get("unseen-frames", {})
    if frames:
        by_scene: dict[str, dict[str, Any]] = {}
        for key, entry in sorted(frames.items()):
            # Each generated seed is its own scene: the three form one row, a mean over scenes.
            scene = "generated" if entry["scene"].startswith("generated-") else entry["scene"]
            by_scene.setdefault(scene, {})[f"seed{entry['seed']}"] = entry["arms"]
        rows = {}
        for scene, seeds in by_scene.items():

            def psnr(arm: str) -> dict[str, Optional[float]]:
                return {seed: arms[arm]["final"]["psnr"] if arm in arms else None for seed, arms in seeds.items()}

            mono, plain = psnr("mononerf"), psnr("no-features")
            row = {
                "gain_db": spread({s: difference(mono[s], plain[s]) for s in seeds}),
                "mononerf_psnr": spread(mono),
                "no_features_psnr": spread(plain),
            }
            underived = psnr("mononerf-no-derived-masks")
            if any(value is not None for value in underived.values()):
                row["derived_masks_gain_db"] = spread({s: difference(mono[s], underived[s]) for s in seeds})
                row["mononerf_no_derived_masks_psnr"] = spread(underived)
                row["derived_moving_fraction"] = spread(
                    {s: arms["mononerf"].get("derived_moving_fraction") for s, arms in seeds.items()}
                )

            # Where the gain comes from: already after the static stage? on the training frames too? on the frames
            # next to the training ones or everywhere? and how much the trained model uses its features.
            def gain(read: Callable[[dict[str, Any]], Optional[float]]) -> dict[str, Any]:
                return spread(
                    {
                        s: difference(read(arms["mononerf"]), read(arms["no-features"]))
                        if "mononerf" in arms and "no-features" in arms
                        else None
                        for s, arms in seeds.items()
                    }
                )

            row["gain_after_static_stage_db"] = gain(lambda record: record["curve"][0]["psnr"])
            # What the dynamic stage adds to each arm's held-out PSNR: whether the dynamic branch enters the image.
            row["dynamic_stage_db"] = {
                arm: spread(
                    {
                        s: difference(arms[arm]["final"]["psnr"], arms[arm]["curve"][0]["psnr"])
                        if arm in arms
                        else None
                        for s, arms in seeds.items()
                    }
                )
                for arm in next(iter(seeds.values()))
            }
            row["gain_training_frames_db"] = gain(lambda record: record["training_frames_eval"]["psnr"])
            frames = sorted(next(iter(seeds.values()))["mononerf"]["unseen_psnr_by_frame"], key=int)
            row["gain_by_unseen_frame_db"] = {
                frame: gain(lambda record, frame=frame: record["unseen_psnr_by_frame"][frame])["mean"]
                for frame in frames
            }
            row["mean_features_drop_db"] = spread(
                {
                    s: difference(arms["mononerf"]["final"]["psnr"], arms["mononerf"].get("mean_features_psnr"))
                    for s, arms in seeds.items()
                }
            )
            for pixels in ("moving", "static"):
                row[f"blending_{pixels}_pixels_training_frames"] = {
                    arm: spread({s: (arms[arm].get("blending") or {}).get(pixels) for s, arms in seeds.items()})
                    for arm in next(iter(seeds.values()))
                }
            rows[scene] = row
        summary["unseen_frames"] = rows
    parts = results.get("preprocessing", {})
    if parts:
        arms = list(next(iter(parts.values()))["arms"])
        rows = {}
        for arm in arms:

            def final(name: str, key: str) -> dict[str, Optional[float]]:
                return {
                    seed: entry["arms"][name]["final"][key]
                    for seed, entry in sorted(parts.items())
                    if name in entry["arms"]
                }

            rows[arm] = {
                "psnr": spread(final(arm, "psnr")),
                "psnr_moving_pixels": spread(final(arm, "psnr_moving_pixels")),
                "minus_all_parts_db": spread(
                    {
                        seed: entry["arms"][arm]["final"]["psnr"] - entry["arms"]["all-parts"]["final"]["psnr"]
                        for seed, entry in sorted(parts.items())
                        if arm in entry["arms"] and "all-parts" in entry["arms"]
                    }
                ),
            }
        summary["preprocessing"] = rows
    tuning = results.get("mask-tuning", {})
    if tuning:
        cells: dict[tuple[float, int], list[float]] = {}
        for entry in tuning.values():
            for cell in entry["grid"]:
                cells.setdefault((cell["ratio"], cell["dilation"]), []).append(cell["iou"])
        means = {f"ratio {ratio:g}, dilation {dilation}": float(np.mean(v)) for (ratio, dilation), v in cells.items()}
        best = max(means, key=lambda key: means[key])
        # The chosen cell's precision and recall against the true masks, and how much of the frame it flags.
        ratio, dilation = (float(part.split()[-1]) for part in best.split(", "))
        chosen = [
            cell
            for entry in tuning.values()
            for cell in entry["grid"]
            if cell["ratio"] == ratio and cell["dilation"] == dilation
        ]
        summary["mask_tuning"] = {
            "mean_iou": means,
            "best": best,
            "best_cell": {
                key: float(np.mean([cell[key] for cell in chosen]))
                for key in ("precision", "recall", "derived_fraction")
            }
            | {"true_moving_fraction": float(np.mean([entry["true_moving_fraction"] for entry in tuning.values()]))},
            "scenes": sorted(tuning),
        }
    return summary


# ---------------------------------------------------------------------------------------------------------- output


COMPARISON_SETTINGS = {
    "mask-tuning": ("tuning_seeds", "mask_ratios", "static_steps"),
    "unseen-scene": (
        "multi_scene_seeds",
        "multi_static_steps",
        "multi_dynamic_steps",
        "scratch_static_steps",
        "scratch_dynamic_steps",
        "finetune_static_steps",
        "finetune_dynamic_steps",
        "scratch_curve_every",
        "finetune_curve_every",
        "curve_views",
    ),
    "blending-diagnostic": ("multi_scene_seeds", "multi_static_steps", "multi_dynamic_steps", "curve_views"),
    "unseen-frames": ("static_steps", "dynamic_steps", "training_frames", "balloon", "balloon_factor"),
    "preprocessing": ("static_steps", "preprocessing_dynamic_steps", "curve_views"),
}
"""The arguments each comparison's numbers depend on besides the shared ones (scene size, rays, model)."""


def settings_of(args: argparse.Namespace, comparison: Optional[str] = None) -> dict[str, Any]:
    """The arguments that change a number: the shared ones (``comparison`` None) or one comparison's own. A results
    file holds runs of one setting only."""
    # Selections (which comparisons, seeds and scenes run) and how a run is carried out change no number.
    ignored = {"comparisons", "seeds", "frames_scenes", "threads", "output", "work", "stem", "log_every", "device"}
    ignored |= {"smoke", "summarise"}
    own = {name for names in COMPARISON_SETTINGS.values() for name in names}
    wanted = set(COMPARISON_SETTINGS[comparison]) if comparison else set(vars(args)) - ignored - own
    return {
        key: (str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value)
        for key, value in sorted(vars(args).items())
        if key in wanted
    }


def settings_fingerprint(args: argparse.Namespace) -> str:
    """Names the multi-scene checkpoint: the shared settings and the multi-scene run's own."""
    import hashlib

    multi = {key: value for key, value in settings_of(args, "unseen-scene").items() if key.startswith("multi_")}
    return hashlib.sha256(json.dumps(settings_of(args) | multi, sort_keys=True).encode()).hexdigest()[:12]


def configuration(args: argparse.Namespace) -> dict[str, Any]:
    reduced = None
    if not args.paper:
        reduced = {
            "preset": "mononerf_cpu_config(): small random frozen 3D/2D CNN encoders (no SlowOnly R50 / ResNet-18, no "
            "pretrained weights), 64-wide MLPs, 32-d global code, 2-step Euler trajectories (the released discrete "
            "mode), 150-step blending warm-up",
            "rays_per_step": f"{args.rays} (paper 1024)",
            "scenes": f"generated, {args.width}x{args.height}, {args.frames} frames (paper: NVIDIA scenes at 480x270); "
            f"Balloon1 at 1/{args.balloon_factor} ({960 // args.balloon_factor}x{540 // args.balloon_factor})",
            "steps": f"unseen frames {args.static_steps} static + {args.dynamic_steps} dynamic; preprocessing "
            f"{args.static_steps} + {args.preprocessing_dynamic_steps}; multi-scene {args.multi_static_steps} + "
            f"{args.multi_dynamic_steps}; new scene from scratch {args.scratch_static_steps} + "
            f"{args.scratch_dynamic_steps}, fine-tuned {args.finetune_static_steps} + {args.finetune_dynamic_steps} "
            "(paper: 150k + 150k, fine-tuning 2,000 + 2,000 from a step-10,000 checkpoint)",
            "learning_rate": "5e-4 decaying by 0.1 over 300k steps, as released (so effectively constant here)",
        }
    return {
        "settings": settings_of(args),
        "comparison_settings": {comparison: settings_of(args, comparison) for comparison in COMPARISONS},
        "scenes": {
            "report_seeds": list(REPORT_SEEDS),
            "tuning_seeds_motion_mask_threshold": list(TUNING_SEEDS),
            "multi_scene_seeds": list(MULTI_SCENE_SEEDS),
            "pilot": PILOT,
            "balloon1": str(BALLOON1),
        },
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "reduced_settings": reduced,
        "paper_settings": PAPER_SETTINGS,
        "protocol": {
            "unseen-scene": "held-out = rig camera 0 at every time (multiview_GT, DynamicNeRF protocol), "
            f"{args.curve_views} of the 12 views evenly spread, at every curve point",
            "unseen-frames": f"train on frames [0, {args.training_frames}), evaluate frames {args.training_frames}.."
            f"{args.frames - 1} at their own cameras, full images",
            "preprocessing": f"held-out = {args.curve_views} of the 12 rig-camera-0 views",
            "moving_pixels": "fixed held-out camera: |GT - per-pixel median over time| > motion_threshold in any "
            "channel; unseen frames of generated scenes: the generator's motion masks",
            "blending": "dynamicness (sum of weight x blending along the ray) averaged over moving / static pixels of "
            "the held-out views, rendered as in stage 2",
        },
    }


def store(path: Path, args: argparse.Namespace, comparison: str, key: str, entry: dict[str, Any]) -> None:
    """Add one entry to the results file under a lock (refusing a file made with other settings), recompute the
    summary, write atomically, redraw the figure."""
    with locked(path):
        report = json.loads(path.read_text()) if path.is_file() else {}
        stored = report.get("configuration", {})
        mine = configuration(args)
        results = report.get("results", {})
        pairs = [(stored.get("settings"), mine["settings"])]
        if comparison in results:  # runs of this comparison already stored: its own settings must match too
            pairs.append(
                (stored.get("comparison_settings", {}).get(comparison), mine["comparison_settings"][comparison])
            )
        for before, now in pairs:
            refuse_other_settings(path, before, now)
        # Comparisons not run by this process keep the settings they were made with.
        for other, settings in stored.get("comparison_settings", {}).items():
            if other != comparison and other in results:
                mine["comparison_settings"][other] = settings
        results.setdefault(comparison, {})[key] = entry
        report = {
            "benchmark": "MonoNeRF generalisation (issue 23): unseen scene, unseen frames, preprocessing parts",
            "summary": summarise(results),
            "configuration": mine,
            "arms": ARMS,
            "results": results,
        }
        atomic_write(path, lambda temporary: temporary.write_text(json.dumps(report, indent=1)))
        plot_adaptation(report, path.with_name(f"{path.stem}_adaptation.png"))
    log(f"stored {comparison}/{key} in {path}")


def resummarise(path: Path) -> None:
    """The summary and the figure of a results file recomputed from its runs (after a change to ``summarise``)."""
    with locked(path):
        report = json.loads(path.read_text())
        report["summary"] = summarise(report["results"])
        report = {"benchmark": report["benchmark"], "summary": report["summary"]} | report
        atomic_write(path, lambda temporary: temporary.write_text(json.dumps(report, indent=1)))
        plot_adaptation(report, path.with_name(f"{path.stem}_adaptation.png"))
    log(f"summary of {path} recomputed")


def plot_adaptation(report: dict[str, Any], path: Path) -> None:
    """One panel per new scene: held-out PSNR against step for scratch and both fine-tuned arms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = {k: v for k, v in report["results"].get("unseen-scene", {}).items() if k.startswith("seed")}
    if not entries:
        return
    figure, axes = plt.subplots(1, len(entries), figsize=(5 * len(entries), 3.8), squeeze=False)
    for axis, (key, entry) in zip(axes[0], sorted(entries.items())):
        for arm, record in entry["arms"].items():
            curve = record["curve"]
            axis.plot([p["step"] for p in curve], [p["psnr"] for p in curve], marker=".", label=arm)
        scratch = entry["arms"]["scratch"]
        axis.axhline(scratch["final"]["psnr"], color="grey", linestyle="--", label="scratch final")
        axis.axvline(scratch["steps"]["total"] / 3, color="black", linestyle=":", label="1/3 of scratch's steps")
        axis.set(title=f"new scene {entry['scene']}", xlabel="step", ylabel="held-out PSNR (dB)")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=100))
    plt.close(figure)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paper", action="store_true", help="the released settings (mononerf_config) on CUDA")
    parser.add_argument("--smoke", action="store_true", help="a ~1-minute end-to-end check, to a temporary folder")
    parser.add_argument(
        "--summarise", action="store_true", help="only recompute the summary and the figure from the stored runs"
    )
    parser.add_argument("--comparisons", nargs="+", choices=COMPARISONS, default=list(COMPARISONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(REPORT_SEEDS), help="report seeds")
    parser.add_argument(
        "--frames-scenes", nargs="+", choices=["balloon1", "generated"], default=["balloon1", "generated"],
        help="the scenes the unseen-frames comparison runs (a selection, like --seeds)",
    )  # fmt: skip
    parser.add_argument("--tuning-seeds", nargs="+", type=int, default=list(TUNING_SEEDS))
    parser.add_argument("--multi-scene-seeds", nargs="+", type=int, default=list(MULTI_SCENE_SEEDS))
    parser.add_argument("--mask-ratios", nargs="+", type=float, default=[1.5, 2.0, 3.0, 4.0])
    parser.add_argument("--width", type=int, default=None, help="generated scene width (CPU 64, paper 480)")
    parser.add_argument("--height", type=int, default=None, help="generated scene height (CPU 36, paper 270)")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--balloon", type=Path, default=BALLOON1, help="Balloon1 (unseen frames); '' to skip")
    parser.add_argument("--balloon-factor", type=int, default=None, help="Balloon1 downscale (CPU 16, paper 2)")
    parser.add_argument("--rays", type=int, default=None, help="rays per step (CPU 128, paper 1024)")
    parser.add_argument("--samples", type=int, default=None, help="samples per ray (preset: CPU 32, paper 64)")
    parser.add_argument("--solver", choices=["ode", "ode-adjoint", "euler"], default=None, help="preset's by default")
    parser.add_argument("--video-encoder-checkpoint", type=Path, default=None, help="SlowOnly K400 .pth (--paper)")
    parser.add_argument("--static-steps", type=int, default=None)
    parser.add_argument("--dynamic-steps", type=int, default=None, help="unseen frames")
    parser.add_argument("--preprocessing-dynamic-steps", type=int, default=None)
    parser.add_argument("--training-frames", type=int, default=5)
    parser.add_argument("--multi-static-steps", type=int, default=None)
    parser.add_argument("--multi-dynamic-steps", type=int, default=None)
    parser.add_argument("--scratch-static-steps", type=int, default=None)
    parser.add_argument("--scratch-dynamic-steps", type=int, default=None)
    parser.add_argument("--finetune-static-steps", type=int, default=None)
    parser.add_argument("--finetune-dynamic-steps", type=int, default=None)
    parser.add_argument("--scratch-curve-every", type=int, default=None)
    parser.add_argument("--finetune-curve-every", type=int, default=None)
    parser.add_argument("--curve-views", type=int, default=None, help="held-out views per curve point")
    parser.add_argument("--motion-threshold", type=float, default=0.06)
    parser.add_argument("--log-every", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu (default) or cuda (--paper)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=None, help="results folder (benchmarks/results)")
    parser.add_argument("--work", type=Path, default=None, help="generated scenes, checkpoints (bench_results/)")
    args = parser.parse_args(argv)

    # name: (CPU default, smoke, paper); the smoke run trains a few dynamic steps per arm (each costs ~0.2 s at its
    # size, most of the run), enough to pass every stage switch and evaluation point
    defaults = {
        "width": (64, 32, 480),
        "height": (36, 18, 270),
        "balloon_factor": (16, 32, 2),
        "rays": (128, 64, 1024),
        "static_steps": (600, 20, 150001),
        "dynamic_steps": (400, 4, 150001),
        "preprocessing_dynamic_steps": (300, 4, 150001),
        "multi_static_steps": (600, 20, 150001),
        "multi_dynamic_steps": (600, 4, 150001),
        "scratch_static_steps": (300, 8, 150001),
        "scratch_dynamic_steps": (600, 8, 150001),
        "finetune_static_steps": (100, 4, 2000),
        "finetune_dynamic_steps": (200, 4, 2000),
        "scratch_curve_every": (75, 8, 10000),
        "finetune_curve_every": (25, 4, 500),
        "curve_views": (6, 2, 12),
        "log_every": (50, 10, 1000),
    }
    column = 2 if args.paper else (1 if args.smoke else 0)
    for name, values in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, values[column])
    if args.smoke:
        args.seeds = args.seeds[:1]
        args.tuning_seeds = args.tuning_seeds[:1]
        args.mask_ratios = args.mask_ratios[:2]
    if args.output is None:
        args.output = (
            Path(tempfile.mkdtemp(prefix="mononerf_smoke_")) if args.smoke else REPO / "benchmarks" / "results"
        )
    if args.work is None:
        args.work = args.output / "work" if args.smoke else REPO / "bench_results" / "mononerf"
    if args.device is None:
        args.device = "cuda" if args.paper else "cpu"
    args.balloon = args.balloon if args.balloon and str(args.balloon) not in ("", ".") else None
    args.stem = STEM
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --paper / --device cuda needs a CUDA device", file=sys.stderr)
        return 2
    if args.balloon is not None and not (args.balloon / "poses_bounds.npy").is_file():
        print(f"error: {args.balloon}: no poses_bounds.npy (pass --balloon '' to skip Balloon1)", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)

    import nerfstudio_methods.mononerf.config  # noqa: F401  (installs the compat fixes)

    started = time.perf_counter()
    bench = Benchmark(args)
    if args.summarise:
        resummarise(bench.path)
        return 0
    log(f"threads {torch.get_num_threads()}, device {args.device}, comparisons {args.comparisons}, seeds {args.seeds}")
    for comparison in args.comparisons:
        {
            "mask-tuning": bench.mask_tuning,
            "unseen-scene": bench.unseen_scene,
            "blending-diagnostic": bench.blending_diagnostic,
            "unseen-frames": bench.unseen_frames,
            "preprocessing": bench.preprocessing,
        }[comparison]()
    report = json.loads(bench.path.read_text())
    print(json.dumps(report["summary"], indent=1))
    log(f"wrote {bench.path} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
