"""Soft mining against uniform sampling on the released code's base model, on real lego (Blender) and fern (LLFF).

Each (scene, seed) trains its arms back to back in one process, one torch thread, the same model, seed, steps and
schedule: ``uniform`` is the preset with ``--pipeline.sampler uniform``, ``no-drift`` the preset as shipped (soft
mining without the Langevin drift, the default since this benchmark's ablation), ``soft-mining`` the released
code's constants with the drift, and the other ablations each change one soft-mining setting (``ARMS``). Every run
logs held-out PSNR against step and against training CPU seconds of the process (evaluation excluded; CPU time, so that other jobs on the machine do not enter
the ratios) on two disjoint sets of held-out views:

- **tuning views**, on which settings (the defaults, the step budget) were chosen;
- **report views**, on which the verdict is read and which nothing was tuned on.

The verdict (``summary``, on the report views): for each seed, the step and the CPU seconds at which the shipped
preset (``DEFAULT_ARM``) first reaches the uniform arm's final PSNR (linear between evaluations), and the ratios
``steps_ratio`` and ``time_ratio`` (uniform's over soft mining's), with their mean, std and per-seed values; the same for every ablation.
Whether the uniform arm's curve still rises at the end (its last evaluation above the one before it by more than
the noise) is recorded per seed, as is its rise from the first evaluation to the last.

CPU size (each run's ``settings`` in the JSON): the presets ``soft-mining-ngp`` (lego) and ``soft-mining-llff`` (fern,
NDC) shrunk to an 8-level torch hash grid, one proposal network, 32 + 16 samples per ray; lego at 100 x 100 px (100
training views), fern images_8 at 1/4 (126 x 94 px, 17 training views); 512 rays per step; the released schedule
(cosine to lr / 10, alpha warm-up over 5% of the run, as 1k of 20k) scaled to the run's length; the Langevin drift
scaled to keep the released drift/noise balance (``released_balance_drift``).

Runs are merged into ``<output>/soft_mining_convergence.json`` under a lock, so several processes (one per scene or
seed) can fill it side by side; the figure ``soft_mining_convergence.png`` shows held-out PSNR against steps and
against CPU seconds per scene (mean over seeds, every seed faint).

Usage::

    python benchmarks/soft_mining_convergence.py                       # both scenes, 3 seeds, REPORTED_ARMS
    python benchmarks/soft_mining_convergence.py --scenes lego --seeds 0 --arms uniform no-drift
    python benchmarks/soft_mining_convergence.py --smoke                # a few steps at tiny size, to a temporary folder
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    atomic_write,
    cpu_sized_nerfacto,
    locked,
    seed_everything,
    timed_train_step,
    train_step_callbacks,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
STEM = "soft_mining_convergence"


SCENES: dict[str, dict[str, Any]] = {
    "lego": {
        "data": DATA / "nerf_synthetic" / "lego",
        "preset": "blender",
        "scale": 0.125,  # 800 -> 100 px
        # lego's val split (100 views): tune on views of its first half, report on views of its second half
        "tuning_views": [0, 12, 25, 37],
        "report_views": [50, 62, 75, 87],
    },
    "fern": {
        "data": DATA / "nerf_llff_data" / "fern",
        "preset": "llff",
        "downscale_factor": 8,
        "scale": 0.25,  # images_8 (504 x 378) -> 126 x 94 px
        # the held-out images are every 8th (0, 8, 16): tune on the first, report on the other two
        "tuning_views": [0],
        "report_views": [1, 2],
    },
}

ARMS: dict[str, str] = {
    "uniform": "the preset with --pipeline.sampler uniform: a random image and position per ray, plain MSE",
    "soft-mining": "soft mining with the released code's constants, the Langevin drift included (a = 20, scaled to "
    "the released drift/noise balance): Langevin population, importance weights, edge re-initialisation",
    "no-drift": "the preset as shipped: soft mining without the Langevin drift (a = 0): noise and re-initialisation "
    "only, no backward pass into the ray positions",
    "hard": "soft mining with alpha 0 (hard mining: the population, no loss re-weighting)",
    "no-reinit": "soft mining without the lowest-error re-initialisation (reinit_lowest_fraction 0)",
    "uniform-reinit": "soft mining re-initialising uniformly instead of from the Sobel-edge PDF",
    "weights-only": "uniform sampling (a fresh random image and position per ray) with soft mining's importance "
    "weights on the loss: the re-weighting without the population",
}

REPORTED_ARMS = ("uniform", "no-drift", "soft-mining", "hard", "weights-only")
"""The arms of the default invocation (the README's tables; ``no-reinit`` and ``uniform-reinit`` on request)."""
DEFAULT_ARM = "no-drift"
"""The arm that is the preset as shipped (the drift is off by default since this benchmark's ablation); the summary's
``steps_ratio`` and ``time_ratio`` are its."""

RELEASED_SCALE = {"blender": (4100, 800), "llff": (4097, 756)}
"""Population size N and image height H of the released code's runs (brief A2: Blender 800 px, LLFF factor 4)."""


def released_balance_drift(preset: str, rays: int, height: int) -> float:
    """The drift ``a`` that keeps the released code's balance of drift and noise at this N and resolution.

    The drift moves a normalised position by ``(a / N) grad_px log err``, i.e. ``a / (N H)`` times the gradient in
    normalised coordinates, while the noise ``b`` is already normalised; the population's stationary density is
    ``err ** (2 a / (N H b^2))``. Keeping that exponent (0.03 for Blender in the released code) means
    ``a = 20 * N H / (N_code H_code)``.
    """
    population, code_height = RELEASED_SCALE[preset]
    return 20.0 * rays * height / (population * code_height)


def scene_config(scene: str, arm: str, args: argparse.Namespace):
    """The trainer config of one arm on one scene: the preset, CPU-sized, with the arm's one change."""
    from nerfstudio_methods.soft_mining.config import released_optimizers, soft_mining_ngp_config
    from nerfstudio_methods.soft_mining.datamanager import SoftMiningDataManagerConfig
    from nerfstudio_methods.soft_mining.pipeline import SoftMiningPipelineConfig
    from nerfstudio_methods.soft_mining.sampler import RELEASED_LANGEVIN_DRIFT

    spec = SCENES[scene]
    trainer = soft_mining_ngp_config(spec["preset"])
    pipeline = trainer.pipeline
    assert isinstance(pipeline, SoftMiningPipelineConfig)
    cpu_sized_nerfacto(
        pipeline.model, args.hash_levels, args.log2_hashmap_size, args.max_res, args.proposal_samples, args.nerf_samples
    )
    datamanager = pipeline.datamanager
    assert isinstance(datamanager, SoftMiningDataManagerConfig)
    datamanager.data = spec["data"]
    if "downscale_factor" in spec:
        datamanager.dataparser.downscale_factor = spec["downscale_factor"]  # type: ignore[attr-defined]
    datamanager.camera_res_scale_factor = spec["scale"] * args.size_factor
    datamanager.train_num_rays_per_batch = args.rays
    # the released schedule scaled to this run: cosine over the whole run, alpha warm-up over its first 5%
    decay = trainer.optimizers["fields"]["optimizer"].weight_decay
    trainer.optimizers = released_optimizers(decay, max_steps=args.steps)
    pipeline.alpha_warmup_steps = max(1, round(args.steps * 1000 / 20000))
    sampler = datamanager.soft_mining
    # every arm but no-drift (the shipped default) starts from the released drift, scaled in setup_arm
    sampler.langevin_drift = 0.0 if arm == "no-drift" else RELEASED_LANGEVIN_DRIFT
    if arm == "uniform":
        pipeline.sampler = "uniform"
    elif arm == "hard":
        pipeline.alpha = 0.0
    elif arm == "no-reinit":
        sampler.reinit_lowest_fraction = 0.0
    elif arm == "uniform-reinit":
        sampler.reinit_distribution = "uniform"
    elif arm not in ("soft-mining", "no-drift", "weights-only"):
        raise ValueError(f"unknown arm {arm!r} (choose from {', '.join(ARMS)})")
    return trainer


@torch.no_grad()
def view_psnrs(pipeline, views: list[int]) -> list[float]:
    """PSNR of each eval view, rendered in full with the training near plane."""
    pipeline.eval()
    dataset = pipeline.datamanager.eval_dataset
    values = []
    for index in views:
        camera = dataset.cameras[index : index + 1].to(pipeline.device)
        outputs = pipeline.model.get_outputs_for_camera(camera)
        target = pipeline.model.renderer_rgb.blend_background(dataset[index]["image"].to(pipeline.device))
        mse = torch.mean((outputs["rgb"].clamp(0, 1) - target[..., :3]) ** 2)
        values.append(float(-10 * torch.log10(mse)))
    pipeline.train()
    return values


def setup_arm(scene: str, arm: str, seed: int, args: argparse.Namespace):
    """The pipeline, optimisers and training callbacks of one arm, seeded; returns ``(pipeline, optimizers,
    run_callbacks)``."""
    from nerfstudio.engine.optimizers import Optimizers

    from nerfstudio_methods.soft_mining.pipeline import SoftMiningPipeline

    seed_everything(seed)
    trainer = scene_config(scene, arm, args)
    pipeline = trainer.pipeline.setup(device="cpu", test_mode="val")
    assert isinstance(pipeline, SoftMiningPipeline)
    # nerfacto's collider drops the near plane to 0 outside training (for the viewer); evaluate with the near plane
    # the field was trained with (lego: 2; in NDC it is 0 either way).
    pipeline.model.collider.reset_near_plane = False  # type: ignore[union-attr]
    sampler = pipeline.soft_mining_datamanager.soft_mining_sampler
    if arm == "weights-only":
        # batches drawn as the uniform arm's, the loss still weighted (the population runs on, unused)
        pipeline.soft_mining_datamanager.uniform_sampling = True
    if arm != "uniform" and sampler.config.langevin_drift != 0.0:
        sampler.config.langevin_drift = released_balance_drift(SCENES[scene]["preset"], args.rays, sampler.height)
    optimizers = Optimizers(trainer.optimizers, pipeline.get_param_groups())
    return pipeline, optimizers, train_step_callbacks(pipeline, optimizers)


def train_arm(scene: str, arm: str, seed: int, args: argparse.Namespace) -> dict:
    pipeline, optimizers, run_callbacks = setup_arm(scene, arm, seed, args)
    sampler = pipeline.soft_mining_datamanager.soft_mining_sampler
    spec = SCENES[scene]
    num_eval = len(pipeline.datamanager.eval_dataset)  # type: ignore[arg-type]
    tuning = [view for view in spec["tuning_views"] if view < num_eval]
    report = [view for view in spec["report_views"] if view < num_eval]

    def evaluate(step: int, cpu: float, wall: float) -> dict:
        psnrs = view_psnrs(pipeline, tuning + report)
        return {
            "step": step,
            "cpu_seconds": cpu,
            "wall_seconds": wall,
            "tuning_psnr": float(np.mean(psnrs[: len(tuning)])),
            "report_psnr": float(np.mean(psnrs[len(tuning) :])),
            "view_psnrs": psnrs,
        }

    curve = [evaluate(0, 0.0, 0.0)]
    cpu = wall = 0.0
    step_cpu: list[float] = []
    for step in range(args.steps):
        step_seconds, step_wall = timed_train_step(pipeline, optimizers, run_callbacks, step)
        step_cpu.append(step_seconds)
        cpu += step_seconds
        wall += step_wall
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            curve.append(evaluate(step + 1, cpu, wall))
            point = curve[-1]
            print(
                f"[{scene}/{arm}/seed {seed}] step {step + 1}/{args.steps}  cpu {cpu:.0f} s  "
                f"PSNR tuning {point['tuning_psnr']:.2f}  report {point['report_psnr']:.2f} dB",
                flush=True,
            )
    return {
        "scene": scene,
        "arm": arm,
        "seed": seed,
        "description": ARMS[arm],
        "image_size": [sampler.height, sampler.width],
        "tuning_views": tuning,
        "report_views": report,
        "langevin_drift": None if arm == "uniform" else sampler.config.langevin_drift,
        "curve": curve,
        "cpu_seconds": cpu,
        "median_step_cpu_seconds": float(np.median(step_cpu)),
    }


# --- the verdict --------------------------------------------------------------------------------------------------


def reach(curve: list[dict], target: float, key: str) -> dict | None:
    """Step and CPU seconds at which a curve first reaches ``target`` PSNR (linear between evaluations)."""
    for before, after in zip(curve, curve[1:]):
        if after[key] >= target:
            span = after[key] - before[key]
            t = 1.0 if span <= 0 else min(max((target - before[key]) / span, 0.0), 1.0)
            return {
                "step": before["step"] + t * (after["step"] - before["step"]),
                "cpu_seconds": before["cpu_seconds"] + t * (after["cpu_seconds"] - before["cpu_seconds"]),
            }
    return None


def spread(values: dict[str, float | None]) -> dict:
    """Mean, std (population) and the per-seed values; a seed that never reached counts as missing."""
    present = [value for value in values.values() if value is not None]
    return {
        "mean": float(np.mean(present)) if present else None,
        "std": float(np.std(present)) if present else None,
        "min": float(np.min(present)) if present else None,
        "per_seed": values,
        "seeds_not_reaching": [seed for seed, value in values.items() if value is None],
    }


def compare(runs: dict[str, dict], scene: str, arm: str, key: str) -> dict | None:
    """``arm`` against ``uniform`` on ``scene`` for every seed both ran, on the views of ``key``."""
    seeds = sorted(
        {run["seed"] for run in runs.values() if run["scene"] == scene and run["arm"] == arm}
        & {run["seed"] for run in runs.values() if run["scene"] == scene and run["arm"] == "uniform"}
    )
    if not seeds:
        return None
    steps, seconds, finals, uniform_finals = {}, {}, {}, {}
    for seed in seeds:
        uniform = runs[f"{scene}/uniform/{seed}"]
        other = runs[f"{scene}/{arm}/{seed}"]
        target = uniform["curve"][-1][key]
        hit = reach(other["curve"], target, key)
        last = uniform["curve"][-1]
        steps[str(seed)] = None if hit is None else last["step"] / max(hit["step"], 1e-9)
        seconds[str(seed)] = None if hit is None else last["cpu_seconds"] / max(hit["cpu_seconds"], 1e-9)
        finals[str(seed)] = other["curve"][-1][key]
        uniform_finals[str(seed)] = target
    return {
        "steps_ratio": spread(steps),
        "time_ratio": spread(seconds),
        "final_psnr": spread(finals),
        "uniform_final_psnr": spread(uniform_finals),
    }


def uniform_shape(runs: dict[str, dict], scene: str, key: str) -> dict:
    """Is the uniform arm still learning at the end? Its rise from the first evaluation after step 0 to the last, and
    the change over its last two evaluations, per seed."""
    shape = {}
    for run in runs.values():
        if run["scene"] == scene and run["arm"] == "uniform":
            curve = run["curve"]
            shape[str(run["seed"])] = {
                "rise_db": curve[-1][key] - curve[1][key],
                "last_change_db": curve[-1][key] - curve[-2][key],
                "peak_minus_final_db": max(point[key] for point in curve) - curve[-1][key],
            }
    return shape


def summarise_views(runs: dict[str, dict], key: str) -> dict:
    """Per scene: soft mining's ``steps_ratio`` and ``time_ratio`` against uniform, the uniform arm's curve shape,
    and every arm's comparison, on the views of ``key``."""
    block: dict[str, Any] = {}
    for scene in SCENES:
        arms = sorted({run["arm"] for run in runs.values() if run["scene"] == scene} - {"uniform"})
        comparisons = {arm: compare(runs, scene, arm, key) for arm in arms}
        comparisons = {arm: value for arm, value in comparisons.items() if value is not None}
        if not comparisons:
            continue
        entry: dict[str, Any] = {}
        if DEFAULT_ARM in comparisons:
            entry["verdict_arm"] = DEFAULT_ARM
            entry["steps_ratio"] = comparisons[DEFAULT_ARM]["steps_ratio"]
            entry["time_ratio"] = comparisons[DEFAULT_ARM]["time_ratio"]
        entry["uniform_curve"] = uniform_shape(runs, scene, key)
        entry["arms"] = comparisons
        block[scene] = entry
    return block


def summarise(runs: dict[str, dict]) -> dict:
    """The verdict per scene on the report views, then the same on the tuning views (``on_tuning_views``)."""
    return summarise_views(runs, "report_psnr") | {"on_tuning_views": summarise_views(runs, "tuning_psnr")}


# --- output -------------------------------------------------------------------------------------------------------


COMPARED_SETTINGS = (
    "steps",
    "eval_every",
    "rays",
    "size_factor",
    "hash_levels",
    "log2_hashmap_size",
    "max_res",
    "proposal_samples",
    "nerf_samples",
)
"""Settings every run of one results file shares (a smoke or a differently sized run goes to another ``--output``)."""


def merge_run(path: Path, run: dict | None) -> dict:
    """Add (or replace) one run in the results file (None: none), recompute the summary, write atomically; returns
    the report."""
    with locked(path):
        report = json.loads(path.read_text()) if path.is_file() else {}
        runs = report.get("runs", {})
        if run is not None:
            for other_key, other in runs.items():
                mismatch = {
                    name: (run["settings"].get(name), other["settings"].get(name))
                    for name in COMPARED_SETTINGS
                    if run["settings"].get(name) != other["settings"].get(name)
                }
                if mismatch:
                    raise SystemExit(
                        f"{path}: run {other_key} was made with other settings {mismatch} (new, stored); write to "
                        "another --output"
                    )
            runs[f"{run['scene']}/{run['arm']}/{run['seed']}"] = run
        report = {
            "summary": summarise(runs),
            "description": (__doc__ or "").split("\n\n")[0],
            "views": "summary: on the report views; summary.on_tuning_views: the same on the tuning views",
            "arms": ARMS,
            "scenes": {name: {k: str(v) for k, v in spec.items()} for name, spec in SCENES.items()},
            "runs": dict(sorted(runs.items())),
        }
        atomic_write(path, lambda temporary: temporary.write_text(json.dumps(report, indent=1)))
    return report


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    scenes = [scene for scene in SCENES if any(run["scene"] == scene for run in runs.values())]
    if not scenes:
        return
    figure, axes = plt.subplots(2, len(scenes), figsize=(6.5 * len(scenes), 8.5), squeeze=False)
    colors = dict(zip(ARMS, plt.get_cmap("tab10").colors))  # type: ignore[attr-defined]
    for column, scene in enumerate(scenes):
        for arm in ARMS:
            mine = [run for run in runs.values() if run["scene"] == scene and run["arm"] == arm]
            if not mine:
                continue
            main = arm in ("uniform", DEFAULT_ARM)
            for row, x_key in enumerate(("step", "cpu_seconds")):
                axis = axes[row, column]
                for run in mine:
                    xs = [point[x_key] for point in run["curve"]]
                    axis.plot(
                        xs, [point["report_psnr"] for point in run["curve"]], color=colors[arm], alpha=0.2, lw=0.8
                    )
                length = min(len(run["curve"]) for run in mine)
                xs = np.mean([[point[x_key] for point in run["curve"][:length]] for run in mine], axis=0)
                ys = np.mean([[point["report_psnr"] for point in run["curve"][:length]] for run in mine], axis=0)
                axis.plot(
                    xs, ys, color=colors[arm], lw=2.2 if main else 1.2, ls="-" if main else "--",
                    label=f"{arm} ({len(mine)} seeds)",
                )  # fmt: skip
        uniform = [run for run in runs.values() if run["scene"] == scene and run["arm"] == "uniform"]
        if uniform:
            # the target: uniform's final PSNR; the step axis starts at the first evaluation after step 0
            target = float(np.mean([run["curve"][-1]["report_psnr"] for run in uniform]))
            floor = min(run["curve"][1]["report_psnr"] for run in runs.values() if run["scene"] == scene) - 1.0
            for axis in axes[:, column]:
                axis.axhline(target, color=colors["uniform"], ls=":", lw=1, label="uniform's final (mean)")
                axis.set_ylim(bottom=floor)
        axes[0, column].set(title=f"{scene}: held-out PSNR (report views) vs step", xlabel="step", ylabel="PSNR (dB)")
        axes[1, column].set(title=f"{scene}: vs training CPU seconds", xlabel="CPU seconds", ylabel="PSNR (dB)")
        for axis in axes[:, column]:
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=90))
    plt.close(figure)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The CPU-sized model and run options read by :func:`scene_config` (shared with ``soft_mining_step_cost.py``)."""
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rays", type=int, default=512)
    parser.add_argument("--size-factor", type=float, default=1.0, help="multiplies each scene's image scale")
    parser.add_argument("--hash-levels", type=int, default=8)
    parser.add_argument("--log2-hashmap-size", type=int, default=15)
    parser.add_argument("--max-res", type=int, default=256)
    parser.add_argument("--proposal-samples", type=int, default=32)
    parser.add_argument("--nerf-samples", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--arms", nargs="+", default=list(REPORTED_ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=100)
    add_model_arguments(parser)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="20 steps at 1/4 size into a temporary folder")
    parser.add_argument("--summarise", action="store_true", help="only recompute the summary and the figure")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.eval_every, args.size_factor, args.seeds = 20, 10, 0.25, args.seeds[:1]
        args.output = Path(tempfile.mkdtemp(prefix="soft_mining_smoke_"))
    path = args.output / f"{STEM}.json"
    if args.summarise:
        report = merge_run(path, None)
        plot(report, args.output / f"{STEM}.png")
        print(
            json.dumps(
                {
                    scene: report["summary"][scene]["steps_ratio"]
                    for scene in SCENES
                    if "steps_ratio" in report["summary"].get(scene, {})
                }
            )
        )
        return
    for scene in args.scenes:
        if not Path(SCENES[scene]["data"]).is_dir():
            sys.exit(f"missing dataset: {SCENES[scene]['data']}")
    torch.set_num_threads(max(1, args.threads))
    import nerfstudio_methods.soft_mining.config  # noqa: F401  (installs the compat fixes: offline LPIPS)

    settings = {
        key: value for key, value in vars(args).items() if key not in ("scenes", "arms", "seeds", "output", "smoke")
    } | {"torch_threads": torch.get_num_threads(), "device": "cpu"}
    started = time.perf_counter()
    report: dict = {}
    for scene in args.scenes:
        for seed in args.seeds:
            for arm in args.arms:
                run = train_arm(scene, arm, seed, args) | {"settings": settings}
                report = merge_run(path, run)
    plot(report, args.output / f"{STEM}.png")
    print(json.dumps({scene: report["summary"][scene] for scene in args.scenes}, indent=1)[:4000])
    print(f"wrote {path} and .png in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
