"""One-command GPU check (run by scripts/gpu_check.sh): on a CUDA machine, train every registered method a few hundred
steps on generated data through its CUDA path, compare with the torch path where both exist, time the steps, run the
benchmarks' paper-setting flags, and write everything to one JSON file.

Per method (``ns-train`` as a user runs it, ``--machine.device-type cuda``, the method's own precision settings):
steps per second (the median of nerfstudio's per-step "Train Iter (time)"), the last logged training loss, and
held-out PSNR from ``ns-eval``. Where a method has a CUDA and a torch path:
- ``streamrf``: nerfacc's occupancy-grid sampler against the pure-torch marcher, trained separately, and the same
  checkpoint rendered by both samplers (mean absolute colour difference over the held-out images);
- ``soft-mining`` (nerfacto): tiny-cuda-nn against torch, when ``tinycudann`` is installed.
Then the benchmarks' paper settings, each a subprocess with its own time limit; missing scripts are recorded.

Each comparison gets a ``verdict`` against its limits (``PSNR_GAP_LIMIT_DB``, ``RENDER_MEAN_ABS_LIMIT``), and the JSON's
``pass`` and the exit status say at once whether every command ran, the CUDA paths agree with the tested torch paths
and every benchmark finished (exit 1 and the failures named otherwise).

Refuses in one line (exit 1) where torch sees no CUDA device: none of this means anything on a CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass
class Case:
    """One ``ns-train`` run: a method, its generated scene and dataparser, and extra flags."""

    name: str
    method: str
    scene: tuple[str, ...]  # nerfstudio-methods-scene arguments
    dataparser: tuple[str, ...]  # dataparser subcommand and its flags (the data folder is appended)
    flags: tuple[str, ...] = ()
    compare_with: Optional[str] = None  # the torch-path case of the same method
    sampler_swap: Optional[tuple[str, str]] = None  # (config.yml text, replacement): render the checkpoint both ways


def cases(steps: int) -> list[Case]:
    blender = ("--format", "blender", "--width", "128", "--height", "128", "--num-cameras", "24")
    llff = ("--format", "llff", "--width", "128", "--height", "96", "--num-cameras", "12")
    n3dv = ("--format", "n3dv", "--width", "128", "--height", "96", "--num-cameras", "6", "--num-frames", "4")
    nvidia = ("--format", "nvidia-dynamic", "--width", "128", "--height", "72", "--num-frames", "12")
    srn = ("--format", "srn", "--width", "128", "--height", "128", "--num-cameras", "24", "--num-instances", "8")
    tcnn = importlib.util.find_spec("tinycudann") is not None
    result = [
        Case(
            "infonerf",
            "infonerf",
            blender,
            ("blender-fewshot-data", "--train-views", "0", "6", "12", "18", "--eval-skip", "4"),
        ),
        Case(
            "soft-mining-torch", "soft-mining", blender, ("blender-data",), ("--pipeline.model.implementation", "torch")
        ),
        Case(
            "soft-mining-ngp",
            "soft-mining-ngp",
            blender,
            ("blender-data",),
            ("--pipeline.model.implementation", "tcnn" if tcnn else "torch"),
        ),
        Case(
            "soft-mining-ngp-uniform",
            "soft-mining-ngp",
            blender,
            ("blender-data",),
            ("--pipeline.model.implementation", "tcnn" if tcnn else "torch", "--pipeline.sampler", "uniform"),
        ),
        Case(
            "soft-mining-llff",
            "soft-mining-llff",
            llff,
            ("llff-data", "--downscale-factor", "1"),
            ("--pipeline.model.implementation", "tcnn" if tcnn else "torch"),
        ),
        Case(
            "streamrf-torch",
            "streamrf",
            n3dv,
            ("n3dv-data", "--downscale-factor", "1"),
            ("--pipeline.model.sampler", "torch"),
        ),
        Case(
            "streamrf-nerfacc",
            "streamrf",
            n3dv,
            ("n3dv-data", "--downscale-factor", "1"),
            ("--pipeline.model.sampler", "nerfacc"),
            compare_with="streamrf-torch",
            sampler_swap=("sampler: nerfacc", "sampler: torch"),
        ),
        Case(
            "mononerf", "mononerf", nvidia, ("dynamic-scene-data",), ("--pipeline.model.static-steps", str(steps // 2))
        ),
        Case("3da-ae", "3da-ae", srn, ("srn-data",)),
        Case("rgb-triplanes", "rgb-triplanes", srn, ("srn-data",)),
    ]
    if tcnn:
        result.append(
            Case(
                "soft-mining-tcnn",
                "soft-mining",
                blender,
                ("blender-data",),
                ("--pipeline.model.implementation", "tcnn"),
                compare_with="soft-mining-torch",
            )
        )
    return result


def run(args: list[str], cwd: Path, log: Path, timeout: float) -> tuple[int, float]:
    """Run a command, output to ``log``; returns (exit status, seconds). A timeout is status 124."""
    start = time.perf_counter()
    with log.open("w") as output:
        try:
            status = subprocess.run(
                args, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, timeout=timeout, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            status = 124
    return status, time.perf_counter() - start


def scalars(run_dir: Path) -> dict[str, list[float]]:
    """Tensorboard scalars of a run (nerfstudio logs "Train Iter (time)" every step, "Train Loss" every 10)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def train_case(case: Case, work: Path, steps: int, timeout: float) -> dict[str, Any]:
    scene = work / "scenes" / case.name
    if not scene.exists():
        status, _ = run([str(BIN / "nerfstudio-methods-scene"), *case.scene, "--output", str(scene), "--quiet"], work,
                        work / f"{case.name}.scene.log", timeout)  # fmt: skip
        if status != 0:
            return {"error": f"scene generation failed (see {case.name}.scene.log)"}
    command = [str(BIN / "ns-train"), case.method, "--machine.device-type", "cuda", "--vis", "tensorboard",
               "--viewer.quit-on-train-completion", "True", "--max-num-iterations", str(steps),
               "--steps-per-save", str(steps), "--steps-per-eval-all-images", str(10 * steps),
               "--logging.steps-per-log", "10", "--experiment-name", "gpu_check", "--timestamp", case.name,
               *case.flags, *case.dataparser, "--data", str(scene)]  # fmt: skip
    status, seconds = run(command, work, work / f"{case.name}.train.log", timeout)
    record: dict[str, Any] = {"method": case.method, "flags": list(case.flags), "train_exit": status,
                              "train_wall_s": round(seconds, 1)}  # fmt: skip
    run_dir = work / "outputs" / "gpu_check" / case.method / case.name
    if status != 0:
        record["error"] = f"ns-train failed (see {case.name}.train.log)"
        return record
    logged = scalars(run_dir)
    iteration = logged.get("Train Iter (time)", [])[5:]  # the first steps include CUDA warm-up and compilation
    if iteration:
        record["steps_per_s"] = round(1.0 / statistics.median(iteration), 2)
    if logged.get("Train Loss"):
        record["train_loss_first"], record["train_loss_last"] = logged["Train Loss"][0], logged["Train Loss"][-1]
    metrics = run_dir / "eval.json"
    status, _ = run([str(BIN / "ns-eval"), "--load-config", str(run_dir / "config.yml"), "--output-path", str(metrics)],
                    work, work / f"{case.name}.eval.log", timeout)  # fmt: skip
    if status == 0:
        results = json.loads(metrics.read_text().replace("NaN", "null"))["results"]
        record["eval"] = {k: v for k, v in results.items() if k in ("psnr", "ssim", "lpips", "num_rays_per_sec")}
    else:
        record["error"] = f"ns-eval failed (see {case.name}.eval.log)"
    return record


def rendered_difference(case: Case, work: Path, timeout: float) -> dict[str, Any]:
    """Render the same checkpoint's held-out images with the CUDA path and with the torch path (a copy of config.yml
    with the path swapped); the mean and max absolute colour difference in [0, 1]."""
    import imageio.v3 as iio
    import numpy as np

    assert case.sampler_swap is not None
    run_dir = work / "outputs" / "gpu_check" / case.method / case.name
    original, swapped = case.sampler_swap
    config = run_dir / "config.yml"
    text = config.read_text()
    if original not in text:
        return {"error": f"{original!r} not in {config}"}
    other = run_dir / "config_torch_path.yml"
    other.write_text(text.replace(original, swapped))
    images = {}
    for label, path in (("cuda", config), ("torch", other)):
        out = work / "renders" / f"{case.name}_{label}"
        status, _ = run([str(BIN / "ns-render"), "dataset", "--load-config", str(path), "--output-path", str(out),
                         "--split", "test", "--rendered-output-names", "rgb", "--image-format", "png"], work,
                        work / f"{case.name}.render_{label}.log", timeout)  # fmt: skip
        if status != 0:
            return {"error": f"ns-render ({label} path) failed (see {case.name}.render_{label}.log)"}
        images[label] = [iio.imread(p).astype(np.float64) / 255 for p in sorted(out.rglob("*.png"))]
    diffs = [np.abs(a - b) for a, b in zip(images["cuda"], images["torch"])]
    return {"images": len(diffs), "mean_abs": float(np.mean([d.mean() for d in diffs])),
            "max_abs": float(max(d.max() for d in diffs))}  # fmt: skip


@dataclass
class Benchmark:
    name: str
    args: list[str] = field(default_factory=list)


def benchmarks(output: Path, steps: int) -> list[Benchmark]:
    return [
        Benchmark("benchmarks/threeda_ae_scaling.py", ["--gpu", "--output", str(output / "threeda_ae_scaling.json")]),
        Benchmark("benchmarks/threeda_ae_schedule.py", ["--gpu", "--output", str(output / "threeda_ae_schedule.json")]),
        Benchmark("benchmarks/mononerf_generalization.py", ["--paper", "--device", "cuda", "--output", str(output)]),
        Benchmark("benchmarks/infonerf_fewshot.py", ["--paper", "--steps", str(steps), "--output", str(output)]),
        Benchmark("scripts/streamrf_sampler_check.py", ["--output", str(output)]),
    ]


RENDER_MEAN_ABS_LIMIT = 1e-3
"""The same checkpoint rendered by both samplers: mean absolute colour difference in [0, 1] (as
streamrf_sampler_check.py: the two marchers take the same samples, so only float rounding may differ)."""
PSNR_GAP_LIMIT_DB = 1.0
"""The CUDA path and the torch path trained separately from the same seed: held-out PSNR within this (different
kernels and precision make the runs diverge a little; a broken path loses far more in a few hundred steps)."""


def verdict(comparison: dict[str, Any]) -> dict[str, Any]:
    """Each check of one CUDA-vs-torch comparison against its limit, and whether all pass (a missing value fails)."""
    checks: dict[str, dict[str, Any]] = {}
    cuda_psnr, torch_psnr = comparison.get("psnr", [None, None])
    gap = abs(cuda_psnr - torch_psnr) if isinstance(cuda_psnr, float) and isinstance(torch_psnr, float) else None
    checks["psnr_gap_db"] = {
        "value": gap,
        "limit": PSNR_GAP_LIMIT_DB,
        "pass": gap is not None and gap <= PSNR_GAP_LIMIT_DB,
    }
    if "same_checkpoint_render" in comparison:
        mean_abs = comparison["same_checkpoint_render"].get("mean_abs")
        checks["same_checkpoint_mean_abs"] = {"value": mean_abs, "limit": RENDER_MEAN_ABS_LIMIT,
                                              "pass": mean_abs is not None and mean_abs <= RENDER_MEAN_ABS_LIMIT}  # fmt: skip
    return {"checks": checks, "pass": all(check["pass"] for check in checks.values())}


def failures(report: dict[str, Any]) -> list[str]:
    """What makes the check fail: a method whose command errored, a comparison whose verdict fails, a benchmark
    that exited non-zero."""
    failed = [f"{name} (error)" for name, record in report["methods"].items() if "error" in record]
    failed += [f"{name} (CUDA and torch paths disagree)" for name, comparison in report["comparisons"].items()
               if not comparison["verdict"]["pass"]]  # fmt: skip
    failed += [f"{name} (exit {record['exit']})" for name, record in report["benchmarks"].items()
               if record.get("exit", 0) != 0]  # fmt: skip
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=REPO / "bench_results" / "gpu_check")
    parser.add_argument("--steps", type=int, default=300, help="training steps per method")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per command")
    parser.add_argument("--benchmark-timeout", type=float, default=4 * 3600, help="seconds allowed per benchmark")
    parser.add_argument("--skip-benchmarks", action="store_true", help="only the per-method training checks")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("error: gpu_check needs a CUDA GPU and torch sees none (torch.cuda.is_available() is False); "
              "nothing was run", file=sys.stderr)  # fmt: skip
        return 1
    work = args.output.resolve()
    (work / "scenes").mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "tinycudann": importlib.util.find_spec("tinycudann") is not None,
        "nerfacc": importlib.util.find_spec("nerfacc") is not None,
        "steps": args.steps,
        "methods": {},
        "comparisons": {},
        "benchmarks": {},
    }

    def save() -> None:
        path = work / "gpu_check.json"
        staging = path.with_suffix(".json.tmp")
        staging.write_text(json.dumps(report, indent=2))
        staging.replace(path)

    all_cases = cases(args.steps)
    for case in all_cases:
        print(f"[gpu_check] {case.name}: ns-train {case.method} {' '.join(case.flags)}", flush=True)
        report["methods"][case.name] = train_case(case, work, args.steps, args.timeout)
        print(f"[gpu_check]   {report['methods'][case.name]}", flush=True)
        save()
    for case in all_cases:
        if case.compare_with is None:
            continue
        mine, theirs = report["methods"][case.name], report["methods"][case.compare_with]
        comparison: dict[str, Any] = {"cuda_path": case.name, "torch_path": case.compare_with}
        for key in ("steps_per_s", "train_loss_last"):
            comparison[key] = [mine.get(key), theirs.get(key)]
        comparison["psnr"] = [mine.get("eval", {}).get("psnr"), theirs.get("eval", {}).get("psnr")]
        if isinstance(comparison["steps_per_s"][0], float) and isinstance(comparison["steps_per_s"][1], float):
            comparison["speedup"] = round(comparison["steps_per_s"][0] / comparison["steps_per_s"][1], 2)
        if case.sampler_swap is not None and mine.get("train_exit") == 0:
            comparison["same_checkpoint_render"] = rendered_difference(case, work, args.timeout)
        comparison["verdict"] = verdict(comparison)
        report["comparisons"][case.name] = comparison
        save()
    if not args.skip_benchmarks:
        for bench in benchmarks(work / "benchmarks", args.steps):
            script = REPO / bench.name
            if not script.is_file():
                report["benchmarks"][bench.name] = {"skipped": "script not in this checkout"}
                continue
            print(f"[gpu_check] {bench.name} {' '.join(bench.args)}", flush=True)
            log = work / f"{Path(bench.name).stem}.log"
            status, seconds = run([sys.executable, str(script), *bench.args], REPO, log, args.benchmark_timeout)
            report["benchmarks"][bench.name] = {"args": bench.args, "exit": status, "wall_s": round(seconds, 1),
                                                "log": str(log)}  # fmt: skip
            save()
    save()
    failed = failures(report)
    report["pass"] = not failed
    save()
    print(
        f"[gpu_check] wrote {work / 'gpu_check.json'}: "
        + (f"FAILED: {', '.join(failed)}" if failed else "every check passed")
    )
    shutil.rmtree(work / "renders", ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
