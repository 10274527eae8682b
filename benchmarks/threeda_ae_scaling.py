"""3Da-AE at growing scene counts: per-scene time and memory of latent vs RGB tri-planes, and the 3D-aware latent
space against the from-scratch one (../shared/papers/3da-ae.md; the paper: -86% time, -44% memory per scene at
1000 scenes).

On generated SRN-layout scenes (one procedural category, ``nerfstudio_methods.scenegen`` ``srn`` format):

1. Stage 1 (``3da-ae``) on ``--stage-one-scenes`` scenes, in two parts: the autoencoder trained from scratch
   (phase ``autoencoder``: the "scratch" latent space), then the latent and joint phases (the 3D-aware one).
2. For each N in ``--scenes``, N new scenes (never seen in stage 1) learned
   - as latent tri-planes in the 3D-aware latent space (``3da-ae-exploit``),
   - as latent tri-planes in the scratch latent space (same schedule; for N <= ``--scratch-max-scenes``),
   - as RGB tri-planes (``rgb-triplanes``), trained epoch by epoch until their held-out PSNR on the first
     ``--eval-scenes`` scenes reaches the 3D-aware latent tri-planes' there (or ``--rgb-max-epochs``), on the same
     scenes (the first ``--rgb-max-scenes`` of them: RGB tri-planes share no per-scene state, so their cost per scene
     does not depend on N, which the rows below that size measure).
   Per method: training seconds per scene (evaluation excluded), trained state per scene (parameters and Adam
   moments of the scene's own tensors; and "effective": plus the shared tensors divided by N; stage 1's time
   amortised over N is reported beside), and held-out PSNR / SSIM after decoding.

Writes ``bench_results/threeda_ae_scaling.json`` (every setting, every measurement, PSNR curves) and a plot over
N. The CPU settings are reduced (stated in the JSON); ``--gpu`` switches to the paper's (128 px, SD-sized
autoencoder, 64^2 planes with 50 bases, 48 + 48 samples, batch 32, 50 epochs per phase) on CUDA.

``--smoke`` runs every part at a tiny size (``SMOKE_SETTINGS``: N = 1 and 2, 2 stage-1 scenes of 3 views, one
epoch per phase, the scratch comparison and the RGB tri-planes on 1 scene only, so both cut-offs are taken), writing
``threeda_ae_scaling.json`` to a temporary folder unless ``--output`` is given, the scenes and checkpoints beside it.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import apply_smoke_settings, atomic_write, load_results, seed_everything  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.gpu:
        return {
            "device": "cuda",
            "image_size": 128,
            "views_per_scene": 50,
            "eval_views": 10,
            "stage_one_epochs": {"autoencoder": 50, "latent": 50, "joint": 50},
            "exploit_epochs": {"latent": 50, "decoder": 50},
            "rgb_max_epochs": 100,
            "cpu_preset": False,
        }
    return {
        "device": "cpu",
        "image_size": 64,
        "views_per_scene": args.views,
        "eval_views": args.eval_views,
        "stage_one_epochs": {
            "autoencoder": args.ae_epochs,
            "latent": args.stage_one_epochs,
            "joint": args.stage_one_epochs,
        },
        "exploit_epochs": {"latent": args.exploit_latent_epochs, "decoder": args.exploit_decoder_epochs},
        "rgb_max_epochs": args.rgb_max_epochs,
        "cpu_preset": True,
    }


def make_config(
    kind: str, data: Path, scene_start: int, num_scenes: int, setup: dict[str, Any], epochs: dict[str, float]
):
    from nerfstudio_methods.threeda_ae.config import rgb_triplanes_config, threeda_ae_config, threeda_ae_exploit_config

    cpu = setup["cpu_preset"]
    builder = {"stage1": threeda_ae_config, "exploit": threeda_ae_exploit_config, "rgb": rgb_triplanes_config}[kind]
    config = builder(cpu=cpu)
    pipeline: Any = config.pipeline  # a TriplanePipelineConfig
    parser = pipeline.datamanager.dataparser
    parser.data = data
    parser.scene_start = scene_start
    parser.num_scenes = num_scenes
    parser.num_eval_views = setup["eval_views"]
    pipeline.datamanager.data = data
    config.machine.device_type = setup["device"]
    for name, phase in pipeline.model.phases.items():
        phase.epochs = float(epochs.get(name, 0.0))
    return config


class Run:
    """One pipeline trained step by step in this process, as ``ns-train`` would (phases applied every step)."""

    def __init__(self, label: str, config, device: str, seed: int, stage_one: Optional[Path] = None) -> None:
        from nerfstudio.engine.optimizers import Optimizers

        self.label = label
        seed_everything(seed)
        config.pipeline.stage_one_checkpoint = stage_one
        self.config = config
        self.pipeline = config.pipeline.setup(device=device, test_mode="val", world_size=1, local_rank=0)
        self.model = self.pipeline.model
        self.optimizers = Optimizers(config.optimizers, self.pipeline.get_param_groups())
        self.step = 0
        self.train_seconds = 0.0
        self.phase_seconds: dict[str, float] = {}
        self.total_steps = self.model.total_steps()

    @property
    def epoch(self) -> float:
        return self.step / self.model.steps_per_epoch

    def train_steps(self, count: int) -> None:
        model, optimizers = self.model, self.optimizers
        for _ in range(count):
            if self.step >= self.total_steps:
                return
            started = time.process_time()  # CPU seconds of this one-thread process: other jobs do not count
            model.enter_step(self.step, optimizers)
            optimizers.zero_grad_all()
            _, losses, _ = self.pipeline.get_train_loss_dict(self.step)
            torch.stack(list(losses.values())).sum().backward()
            optimizers.optimizer_step_all()
            seconds = time.process_time() - started
            model.record_trained_images(model._last_scenes, seconds)
            self.train_seconds += seconds
            phase = model.phase_at(self.step).name
            self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + seconds
            self.step += 1

    def train_all(self) -> None:
        while self.step < self.total_steps:
            self.train_steps(self.model.steps_per_epoch)
            log(f"{self.label}: epoch {self.epoch:.1f}, {self.train_seconds:.0f} s training")

    def evaluate(self, scenes: Optional[int] = None) -> dict[str, Any]:
        """Held-out PSNR/SSIM in RGB (decoded), over every held-out view of the first ``scenes`` scenes."""
        from nerfstudio_methods.threeda_ae.datamanager import scene_of_images

        dataset = self.pipeline.datamanager.eval_dataset
        scene_of = scene_of_images(dataset).tolist()
        chosen = [i for i, s in enumerate(scene_of) if scenes is None or s < scenes]
        self.model.eval()
        psnrs, ssims, per_scene = [], [], {}
        for index in chosen:
            camera = dataset.cameras[index : index + 1].to(self.model.device)
            outputs = self.model.get_outputs_for_camera(camera)
            metrics, _ = self.model.get_image_metrics_and_images(outputs, {"image": dataset.get_image_float32(index)})
            psnrs.append(metrics["psnr"])
            ssims.append(metrics["ssim"])
            per_scene.setdefault(scene_of[index], []).append(metrics["psnr"])
        self.model.train()
        return {
            "psnr": sum(psnrs) / len(psnrs),
            "ssim": sum(ssims) / len(ssims),
            "views": len(chosen),
            "psnr_per_scene": [sum(v) / len(v) for _, v in sorted(per_scene.items())],
        }

    @torch.no_grad()
    def autoencoder_psnr(self, scenes: Optional[int] = None) -> Optional[float]:
        """PSNR of the autoencoder's reconstruction D(E(x)) of the held-out images (the ceiling of decoded renders)."""
        if not self.model.latent:
            return None
        from nerfstudio_methods.threeda_ae.datamanager import scene_of_images

        dataset = self.pipeline.datamanager.eval_dataset
        scene_of = scene_of_images(dataset).tolist()
        chosen = [i for i, s in enumerate(scene_of) if scenes is None or s < scenes]
        images = torch.stack([dataset.get_image_float32(i)[..., :3] for i in chosen]).permute(0, 3, 1, 2)
        images = images.to(self.model.device)
        errors = []
        for chunk in images.split(16):
            reconstruction = (self.model.decode(self.model.encode(chunk * 2 - 1, sample=False)) + 1) / 2
            errors += ((reconstruction.clamp(0, 1) - chunk) ** 2).mean(dim=(1, 2, 3)).tolist()
        return sum(-10 * math.log10(max(e, 1e-12)) for e in errors) / len(errors)

    def record(self, num_scenes: int) -> dict[str, Any]:
        memory = self.model.scene_memory(self.optimizers)
        return {
            "train_seconds": self.train_seconds,
            "phase_seconds": dict(self.phase_seconds),
            "seconds_per_scene": self.train_seconds / num_scenes,
            "steps": self.step,
            "epochs": self.epoch,
            "per_scene_state_bytes": memory["per_scene_bytes_mean"],
            "shared_state_bytes": memory["shared_bytes"],
            "effective_per_scene_state_bytes": memory["effective_per_scene_bytes"],
            "per_scene_parameter_floats": self.model.scenes.scene_parameter_count(),
            "autoencoder_psnr": self.autoencoder_psnr(),
        }

    def save(self, path: Path) -> Path:
        state = {"step": self.step, "pipeline": self.pipeline.state_dict()}
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        return path

    def close(self) -> None:
        del self.pipeline, self.model, self.optimizers
        gc.collect()


def generate(folder: Path, count: int, setup: dict[str, Any], seed: int) -> Path:
    from nerfstudio_methods.scenegen.formats.srn import write_srn

    log(f"generating {count} SRN-layout scenes of {setup['views_per_scene']} views at {setup['image_size']} px")
    write_srn(
        folder,
        width=setup["image_size"],
        height=setup["image_size"],
        num_cameras=setup["views_per_scene"],
        num_instances=count,
        seed=seed,
    )
    return folder


def median_timing(result: dict[str, Any], repeat: Callable[[], "Run"], repeats: int, num_scenes: int) -> dict:
    """``result``'s training time replaced by the median over ``repeats`` trainings (``result``'s own and
    ``repeats - 1`` more from the same seed, same steps): one CPU-time measurement varies by tens of percent."""
    timings = [(result["train_seconds"], result["phase_seconds"])]
    for _ in range(repeats - 1):
        run = repeat()
        timings.append((run.train_seconds, dict(run.phase_seconds)))
        run.close()
    seconds, phases = sorted(timings, key=lambda timing: timing[0])[(len(timings) - 1) // 2]
    return result | {
        "train_seconds": seconds,
        "phase_seconds": phases,
        "seconds_per_scene": seconds / num_scenes,
        "train_seconds_repeats": [timing[0] for timing in timings],
    }


def latent_run(label: str, data: Path, start: int, n: int, setup: dict, stage_one: Path, args) -> dict[str, Any]:
    def trained() -> Run:
        config = make_config("exploit", data, start, n, setup, setup["exploit_epochs"])
        run = Run(label, config, setup["device"], args.seed, stage_one)
        run.train_all()
        return run

    run = trained()
    result = run.record(n) | {"eval": run.evaluate(), "eval_subset": run.evaluate(args.eval_scenes)}
    run.close()
    result = median_timing(result, trained, args.timing_repeats, n)
    log(f"{label}: {result['seconds_per_scene']:.2f} s/scene, held-out PSNR {result['eval']['psnr']:.2f} dB")
    return result


def rgb_run(data: Path, start: int, n: int, setup: dict, target: float, args) -> dict[str, Any]:
    """RGB tri-planes trained epoch by epoch until the eval subset's PSNR reaches ``target``."""
    epochs = {"rgb": float(setup["rgb_max_epochs"])}
    run = Run(f"rgb N={n}", make_config("rgb", data, start, n, setup, epochs), setup["device"], args.seed)
    curve = []
    reached_at: Optional[dict[str, Any]] = None
    while run.step < run.total_steps:
        run.train_steps(run.model.steps_per_epoch)
        point = {"epoch": run.epoch, "train_seconds": run.train_seconds} | run.evaluate(args.eval_scenes)
        point.pop("psnr_per_scene")
        curve.append(point)
        log(
            f"rgb N={n}: epoch {run.epoch:.0f}, {run.train_seconds:.0f} s, subset PSNR {point['psnr']:.2f} dB (target {target:.2f})"
        )
        if point["psnr"] >= target:
            reached_at = point
            break
    result = run.record(n) | {"curve": curve, "reached_target": reached_at is not None, "eval": run.evaluate()}
    run.close()

    def trained() -> Run:  # the same epochs again, without the evaluations in between
        again = Run(
            f"rgb N={n} (timing)", make_config("rgb", data, start, n, setup, epochs), setup["device"], args.seed
        )
        again.train_steps(result["steps"])
        return again

    return median_timing(result, trained, args.timing_repeats, n)


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    rows = []
    stage_one_seconds = results["stage_one"]["train_seconds"]
    for entry in results["scales"]:
        n, aware, rgb = entry["num_scenes"], entry["latent_3d_aware"], entry["rgb"]
        row = {
            "num_scenes": n,
            "rgb_reached_latent_psnr": rgb["reached_target"],
            "psnr_latent_3d_aware": aware["eval"]["psnr"],
            "psnr_rgb": rgb["eval"]["psnr"],
            "seconds_per_scene_latent": aware["seconds_per_scene"],
            "seconds_per_scene_latent_with_stage_one": aware["seconds_per_scene"] + stage_one_seconds / n,
            "seconds_per_scene_rgb": rgb["seconds_per_scene"],
            "time_ratio_latent_over_rgb": aware["seconds_per_scene"] / rgb["seconds_per_scene"],
            "time_ratio_with_stage_one": (aware["seconds_per_scene"] + stage_one_seconds / n)
            / rgb["seconds_per_scene"],
            "state_bytes_per_scene_latent": aware["per_scene_state_bytes"],
            "state_bytes_per_scene_rgb": rgb["per_scene_state_bytes"],
            "effective_state_bytes_per_scene_latent": aware["effective_per_scene_state_bytes"],
            "effective_state_bytes_per_scene_rgb": rgb["effective_per_scene_state_bytes"],
            "memory_ratio_effective": aware["effective_per_scene_state_bytes"] / rgb["effective_per_scene_state_bytes"],
            "memory_ratio_own": aware["per_scene_state_bytes"] / rgb["per_scene_state_bytes"],
        }
        if "latent_scratch" in entry:
            row["psnr_latent_scratch"] = entry["latent_scratch"]["eval"]["psnr"]
            row["psnr_gain_3d_aware_over_scratch"] = row["psnr_latent_3d_aware"] - row["psnr_latent_scratch"]
        rows.append(row)
    return {"rows": rows}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["summary"]["rows"]
    if not rows:
        return

    def line(ax: Any, key: str, label: str, style: str = "o-", scale: float = 1.0) -> None:
        """Mean over the seeds, the bars their standard deviation (none for one seed)."""
        points = [(r["num_scenes"], r[key] / scale, (r.get(f"{key}_std") or 0.0) / scale) for r in rows if key in r]
        if points:
            x, y, err = zip(*points)
            ax.errorbar(x, y, yerr=err, fmt=style, capsize=3, label=label)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    line(axes[0], "seconds_per_scene_rgb", "RGB tri-planes (to the latent PSNR)")
    line(axes[0], "seconds_per_scene_latent", "latent (3D-aware), stage 2")
    line(axes[0], "seconds_per_scene_latent_with_stage_one", "latent + stage 1 / N", "o--")
    axes[0].set(xscale="log", xlabel="scenes N", ylabel="training CPU seconds per scene", title="time per scene")
    line(axes[1], "effective_state_bytes_per_scene_rgb", "RGB tri-planes", scale=1e6)
    line(axes[1], "effective_state_bytes_per_scene_latent", "latent (shared / N)", scale=1e6)
    line(axes[1], "state_bytes_per_scene_latent", "latent, scene's own", "o--", scale=1e6)
    axes[1].set(
        xscale="log", yscale="log", xlabel="scenes N", ylabel="MB of trained state per scene", title="memory per scene"
    )
    line(axes[2], "psnr_rgb", "RGB tri-planes")
    line(axes[2], "psnr_latent_3d_aware", "latent, 3D-aware AE")
    line(axes[2], "psnr_latent_scratch", "latent, scratch AE")
    axes[2].set(xscale="log", xlabel="scenes N", ylabel="held-out PSNR (dB)", title="quality")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


SMOKE_SETTINGS = {
    "scenes": [1, 2],
    "stage_one_scenes": 2,
    "views": 3,
    "eval_views": 1,
    "ae_epochs": 1.0,
    "stage_one_epochs": 1.0,
    "exploit_latent_epochs": 1.0,
    "exploit_decoder_epochs": 1.0,
    "rgb_max_epochs": 2,
    "rgb_max_scenes": 1,
    "scratch_max_scenes": 1,
    "eval_scenes": 1,
    "threads": 1,
    "seeds": [0, 1],
    "timing_repeats": 2,
}
"""``--smoke``: one epoch per phase on 1-2 scenes of 3 views (2 in stage 1), the cut-offs of the scratch comparison
and of the RGB tri-planes below the largest N, two seeds and two timing repeats."""


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, nargs="+", default=[10, 50, 200], help="N values")
    parser.add_argument("--stage-one-scenes", type=int, default=16)
    parser.add_argument("--views", type=int, default=10, help="views per generated scene (CPU)")
    parser.add_argument("--eval-views", type=int, default=2, help="held-out views per scene (CPU; paper 10)")
    parser.add_argument("--ae-epochs", type=float, default=30)
    parser.add_argument("--stage-one-epochs", type=float, default=15, help="latent and joint phases (CPU)")
    parser.add_argument("--exploit-latent-epochs", type=float, default=5)
    parser.add_argument("--exploit-decoder-epochs", type=float, default=2)
    parser.add_argument("--rgb-max-epochs", type=int, default=12)
    parser.add_argument(
        "--rgb-max-scenes", type=int, default=50, help="RGB tri-planes on the first this many of the N scenes"
    )
    parser.add_argument("--scratch-max-scenes", type=int, default=50, help="scratch-AE comparison up to this N")
    parser.add_argument("--eval-scenes", type=int, default=10, help="scenes whose held-out views decide 'same PSNR'")
    parser.add_argument("--gpu", action="store_true", help="the paper's settings on CUDA")
    parser.add_argument(
        "--pretrained-vae",
        type=Path,
        default=None,
        help="SD VAE weights (diffusers folder or .safetensors) for stage 1; the 'scratch' variant is then that VAE",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (timings are CPU seconds)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one run per seed (its own scenes)")
    parser.add_argument("--timing-repeats", type=int, default=3, help="a timing is the median of this many trainings")
    parser.add_argument(
        "--tuning-seed", type=int, default=0, help="the seed whose scenes stage 2's epochs were chosen on "
        "(threeda_ae_schedule.py --seed); recorded, and refused among --seeds: results are reported on other scenes",
    )  # fmt: skip
    parser.add_argument("--data", type=Path, default=None, help="where to write the scenes (default: a temp dir)")
    parser.add_argument(
        "--output", type=Path, default=None, help="results JSON (bench_results/threeda_ae_scaling.json)"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny end-to-end run, to a temporary folder")
    parser.add_argument(
        "--merge", type=Path, nargs="+", default=None, help="merge these results files (one seed per process, say) "
        "into --output instead of training",
    )  # fmt: skip
    args = parser.parse_args(argv)
    apply_smoke_settings(parser, args, SMOKE_SETTINGS, "threeda_ae_scaling")
    if not (args.smoke or args.merge or args.gpu) and args.tuning_seed in args.seeds:
        parser.error(
            f"--seeds {' '.join(map(str, args.seeds))} includes --tuning-seed {args.tuning_seed}: stage 2's epochs "
            "were chosen on that seed's scenes, so report other seeds"
        )
    return args


def run_seed(
    results: dict[str, Any], args: argparse.Namespace, setup: dict[str, Any], workdir: Path, save: Callable[[], None]
) -> None:
    """Stage 1 and every N for ``args.seed``, on scenes generated with that seed, into ``results`` (already part of
    the JSON, so that ``save`` after each part keeps what is done)."""
    seed = args.seed
    data = (
        generate((args.data or workdir) / f"srn_seed{seed}", args.stage_one_scenes + max(args.scenes), setup, seed)
        / "cars_train"
    )
    s1 = args.stage_one_scenes
    results.update({"seed": seed, "scales": []})

    # Stage 1, part 1: the autoencoder from scratch (the "scratch" latent space); part 2: latent + joint phases.
    config = make_config("stage1", data, 0, s1, setup, setup["stage_one_epochs"])
    model_config: Any = config.pipeline.model  # a TriplaneModelConfig
    model_config.autoencoder.pretrained = args.pretrained_vae
    run = Run(f"seed {seed}: stage 1", config, setup["device"], seed)
    # With pretrained weights there is no autoencoder phase: "before stage 1" is the pretrained autoencoder itself.
    ae_steps = run.model.phase_steps()[0] if run.model.active_phases()[0][0] == "autoencoder" else 0
    run.train_steps(ae_steps)
    scratch = run.save(workdir / "scratch_ae.ckpt")
    log(f"seed {seed}: stage 1: autoencoder phase done ({run.train_seconds:.0f} s)")
    run.train_all()
    aware = run.save(workdir / "stage_one.ckpt")
    results["stage_one"] = run.record(s1) | {"eval": run.evaluate(), "autoencoder_phase_steps": ae_steps}
    run.close()
    log(f"seed {seed}: stage 1 done: {results['stage_one']['train_seconds']:.0f} s")
    save()

    for n in args.scenes:
        entry: dict[str, Any] = {"num_scenes": n, "scene_start": s1}
        entry["latent_3d_aware"] = latent_run(f"seed {seed}: latent 3D-aware N={n}", data, s1, n, setup, aware, args)
        if n <= args.scratch_max_scenes:
            entry["latent_scratch"] = latent_run(
                f"seed {seed}: latent scratch N={n}", data, s1, n, setup, scratch, args
            )
        target = entry["latent_3d_aware"]["eval_subset"]["psnr"]
        # RGB tri-planes share nothing but a 2k-parameter MLP, so their cost per scene does not depend on N (the
        # N <= rgb_max_scenes rows measure it at two N); above that, they are trained on the first rgb_max_scenes.
        rgb_scenes = min(n, args.rgb_max_scenes)
        entry["rgb"] = rgb_run(data, s1, rgb_scenes, setup, target, args) | {"trained_scenes": rgb_scenes}
        results["scales"].append(entry)
        results["summary"] = summarise(results)
        save()


def across_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Per N, each summary value's mean over the seeds (under its own name, which the plot and the docs read), its
    sample standard deviation (``<name>_std``) and the per-seed values (``<name>_per_seed``)."""
    rows = []
    scales = [result["summary"]["rows"] for result in per_seed if "summary" in result]
    for index in range(min((len(r) for r in scales), default=0)):
        seed_rows = [r[index] for r in scales]
        row: dict[str, Any] = {"num_scenes": seed_rows[0]["num_scenes"], "seeds": len(seed_rows)}
        row["rgb_reached_latent_psnr"] = [r["rgb_reached_latent_psnr"] for r in seed_rows]
        for key in seed_rows[0]:
            values = [r[key] for r in seed_rows if key in r]
            if key in row or not all(isinstance(v, (int, float)) for v in values) or len(values) < len(seed_rows):
                continue
            row[key] = sum(values) / len(values)
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
            row[f"{key}_per_seed"] = values
        rows.append(row)
    stage_one = [result["stage_one"]["train_seconds"] for result in per_seed if "stage_one" in result]
    return {"rows": rows, "stage_one_seconds_per_seed": stage_one}


MERGE_IGNORED_SETTINGS = ("seeds", "seed", "output", "data", "smoke", "merge")
"""Settings that differ between the processes of one run (one seed each); every other setting must agree."""


def merge_results(paths: list[Path]) -> dict[str, Any]:
    """One results file from several processes' (e.g. one seed each): their finished seeds (a seed whose process
    stopped before its last N is left out), the summary over all of them. Refuses, in one line, a file made with
    other settings or a seed that two files hold."""
    merged: dict[str, Any] = {"per_seed": [], "merged_from": []}
    for path in paths:
        report = load_results(path)
        settings = {k: v for k, v in report["settings"].items() if k not in MERGE_IGNORED_SETTINGS}
        if "settings" not in merged:
            merged["settings"] = settings
        for key in sorted(set(settings) | set(merged["settings"])):
            if settings.get(key) != merged["settings"].get(key):
                raise SystemExit(
                    f"error: {path}: {key} = {settings.get(key)!r}, but {paths[0]} has {merged['settings'].get(key)!r}"
                )
        finished = [r for r in report["per_seed"] if len(r.get("scales", [])) == len(settings["scenes"])]
        for result in finished:
            if result["seed"] in [r["seed"] for r in merged["per_seed"]]:
                raise SystemExit(f"error: {path}: seed {result['seed']} is also in another file")
        merged["per_seed"] += finished
        merged["merged_from"].append({"file": str(path), "seeds": [r["seed"] for r in finished]})
    merged["settings"]["seeds"] = [r["seed"] for r in merged["per_seed"]]
    merged["summary"] = across_seeds(merged["per_seed"])
    return merged


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.merge:
        merged = merge_results(args.merge)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.output, lambda tmp: tmp.write_text(json.dumps(merged, indent=2)))
        plot(merged, args.output.with_suffix(".png"))
        log(f"seeds {merged['settings']['seeds']} of {len(args.merge)} files -> {args.output}")
        return 0
    torch.set_num_threads(args.threads)
    setup = settings(args)
    started = time.perf_counter()
    arguments = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results: dict[str, Any] = {
        "settings": setup | arguments | {"threads": torch.get_num_threads(), "clock": "process CPU seconds"},
        "per_seed": [],
    }
    # the stage-1 checkpoints stay for threeda_ae_schedule.py (a smoke run's beside its output)
    if args.smoke:
        args.output.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="threeda_ae_bench_", dir=args.output.parent if args.smoke else None))

    def save() -> None:
        results["summary"] = across_seeds(results["per_seed"])
        results["elapsed_seconds"] = time.perf_counter() - started
        atomic_write(args.output, lambda tmp: tmp.write_text(json.dumps(results, indent=2)))
        plot(results, args.output.with_suffix(".png"))

    for seed in args.seeds:
        args.seed = seed
        results["per_seed"].append({"seed": seed})
        seed_dir = workdir / f"seed{seed}"
        seed_dir.mkdir()
        run_seed(results["per_seed"][-1], args, setup, seed_dir, save)
    log(f"done in {time.perf_counter() - started:.0f} s: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
