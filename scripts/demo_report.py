"""Helpers for scripts/demo.sh: put two renders side by side, plot held-out PSNR against steps from two runs'
tensorboard logs, and print where a demo's files are. Not part of the package."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def side_by_side(left: Path, right: Path, output: Path, fps: float) -> None:
    """One video of ``left`` beside ``right`` (same frame count and size, as two ns-render runs of one path)."""
    import imageio.v3 as iio
    import numpy as np

    a, b = iio.imread(left, plugin="pyav"), iio.imread(right, plugin="pyav")
    count = min(len(a), len(b))
    gap = np.full((count, a.shape[1], 4, 3), 255, dtype=np.uint8)
    iio.imwrite(output, np.concatenate([a[:count], gap, b[:count]], axis=2), fps=fps, codec="libx264", plugin="pyav")


def psnr_curve(run: Path) -> list[tuple[int, float]]:
    """(step, mean held-out PSNR) from nerfstudio's all-images evaluations of a run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    tag = "Eval Images Metrics Dict (all images)/psnr"
    return [(e.step, e.value) for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def curves(runs: list[tuple[str, Path]], output: Path) -> dict[str, list[tuple[int, float]]]:
    """Held-out PSNR against steps of each run: JSON and a PNG plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {label: psnr_curve(run) for label, run in runs}
    output.with_suffix(".json").write_text(json.dumps(data, indent=2))
    figure, axes = plt.subplots(figsize=(6, 4))
    for label, points in data.items():
        axes.plot([s for s, _ in points], [p for _, p in points], marker="o", label=label)
    axes.set_xlabel("training step")
    axes.set_ylabel("held-out PSNR (dB)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(output.with_suffix(".png"), dpi=120)
    return data


def metrics_line(path: Path) -> str:
    results = json.loads(path.read_text().replace("NaN", "null"))["results"]
    parts = [f"PSNR {results['psnr']:.2f} dB", f"SSIM {results['ssim']:.3f}"]
    if isinstance(results.get("lpips"), float) and not math.isnan(results["lpips"]):
        parts.append(f"LPIPS {results['lpips']:.3f}")
    return ", ".join(parts)


def still(
    video: Path, metrics: list[tuple[str, Path]], method: str, output: Path, seconds: float, cpu_seconds: float
) -> dict:
    """The demo's record for the docs: the middle frame of its video as ``<output>.png`` and ``<output>.json``
    (method, video size and length, held-out metrics per arm, the demo's wall-clock and CPU seconds); both written
    through a temporary name, so an interrupted demo leaves the previous pair."""
    import imageio.v3 as iio
    import numpy as np

    frames = iio.imread(video, plugin="pyav")
    middle = len(frames) // 2
    record = {
        "method": method,
        "command": f"bash scripts/demo.sh {method}",
        "video": {"frames": int(len(frames)), "height": int(frames.shape[1]), "width": int(frames.shape[2])},
        "still_frame": middle,
        "metrics": {label: _results(path) for label, path in metrics},
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    image = output.with_name(f".{output.name}.png.partial")
    iio.imwrite(image, np.asarray(frames[middle]), extension=".png")
    image.replace(output.with_suffix(".png"))
    text = output.with_name(f".{output.name}.json.partial")
    text.write_text(json.dumps(record, indent=2) + "\n")
    text.replace(output.with_suffix(".json"))
    return record


def _results(path: Path) -> dict:
    """ns-eval's mean metrics (LPIPS left out where it is NaN: its weights are not cached here)."""
    results = json.loads(path.read_text().replace("NaN", "null"))["results"]
    return {key: value for key, value in results.items() if key in ("psnr", "ssim", "lpips") and value is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    both = commands.add_parser("side-by-side")
    both.add_argument("left", type=Path)
    both.add_argument("right", type=Path)
    both.add_argument("output", type=Path)
    both.add_argument("--fps", type=float, default=12)
    plot = commands.add_parser("curves", help="LABEL=RUN_DIR pairs, then the output stem")
    plot.add_argument("runs", nargs="+")
    plot.add_argument("--output", type=Path, required=True)
    summary = commands.add_parser("summary", help="LABEL=PATH pairs: *.json metrics get their numbers")
    summary.add_argument("items", nargs="+")
    record = commands.add_parser("still", help="the middle frame of VIDEO and the demo's metrics, for the docs")
    record.add_argument("video", type=Path)
    record.add_argument("metrics", nargs="+", help="LABEL=ns-eval JSON pairs")
    record.add_argument("--method", required=True)
    record.add_argument("--output", type=Path, required=True, help="stem: <stem>.png and <stem>.json")
    record.add_argument("--seconds", type=float, required=True, help="the demo's wall-clock seconds")
    record.add_argument("--cpu-seconds", type=float, required=True, help="CPU seconds of the commands it ran")
    args = parser.parse_args()
    if args.command == "side-by-side":
        side_by_side(args.left, args.right, args.output, args.fps)
    elif args.command == "still":
        pairs = [(item.split("=", 1)[0], Path(item.split("=", 1)[1])) for item in args.metrics]
        written = still(args.video, pairs, args.method, args.output, args.seconds, args.cpu_seconds)
        print(f"  still     : {args.output.with_suffix('.png').resolve()} (frame {written['still_frame']})")
    elif args.command == "curves":
        pairs = [(item.split("=", 1)[0], Path(item.split("=", 1)[1])) for item in args.runs]
        for label, points in curves(pairs, args.output).items():
            print(f"  {label}: " + ", ".join(f"{step}: {psnr:.2f}" for step, psnr in points))
    else:
        print("\n[demo] done")
        for item in args.items:
            label, path = item.split("=", 1)
            extra = f"  ({metrics_line(Path(path))})" if path.endswith(".json") and "metrics" in label else ""
            print(f"  {label:<10}: {Path(path).resolve()}{extra}")


if __name__ == "__main__":
    main()
