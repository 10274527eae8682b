"""Renders the README's results tables from the committed JSON in ``benchmarks/results/``, so that no number in the
README is typed by hand.

Each table lives in README.md between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``; this script rewrites
what stands between the markers from the JSON that ``RENDERERS[NAME]`` reads. ``--check`` rewrites nothing and exits
1 (naming the blocks) when the README differs from what the JSON gives; the test suite runs it.

Usage: ``python benchmarks/render_results.py [--check]``
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"


def _load(name: str) -> dict:
    path = RESULTS / name
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"{path}: cannot read the results ({error})") from None


def _ratio(entry: dict | None) -> str:
    """``2.31x ± 0.12 (2.2, 2.4, 2.3)``; a seed that never reached the target shows as ``-``."""
    if entry is None or entry["mean"] is None:
        return "not reached"
    seeds = ", ".join("-" if value is None else f"{value:.2f}" for value in entry["per_seed"].values())
    return f"{entry['mean']:.2f}x ± {entry['std']:.2f} ({seeds})"


def _psnr(entry: dict) -> str:
    return f"{entry['mean']:.2f} ± {entry['std']:.2f}"


def _scenes(summary: dict) -> dict[str, dict]:
    return {scene: entry for scene, entry in summary.items() if scene != "on_tuning_views"}


def soft_mining_convergence() -> str:
    report = _load("soft_mining_convergence.json")
    summary = report["summary"]
    runs = report["runs"]
    lines = [
        "| scene | image | seeds | uniform final PSNR | soft mining (shipped preset) final PSNR | steps ratio (per seed) "
        "| CPU-time ratio (per seed) | uniform: last change / rise |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scene, entry in _scenes(summary).items():
        arms = entry["arms"]
        if "verdict_arm" not in entry:
            continue
        main = arms[entry["verdict_arm"]]
        size = next(run["image_size"] for run in runs.values() if run["scene"] == scene)
        shape = entry["uniform_curve"].values()
        last = ", ".join(f"{value['last_change_db']:+.2f}" for value in shape)
        rise = ", ".join(f"{value['rise_db']:+.1f}" for value in shape)
        lines.append(
            f"| {scene} | {size[1]} x {size[0]} | {len(main['steps_ratio']['per_seed'])} "
            f"| {_psnr(main['uniform_final_psnr'])} | {_psnr(main['final_psnr'])} | {_ratio(main['steps_ratio'])} "
            f"| {_ratio(main['time_ratio'])} | {last} dB / {rise} dB |"
        )
    lines += [
        "",
        "Every arm against uniform sampling on the report views; in brackets the steps ratio on the tuning views, "
        "where the defaults were chosen:",
        "",
        "| scene | arm | steps ratio (per seed) [tuning views] | CPU-time ratio (per seed) | final PSNR (uniform's) |",
        "| --- | --- | --- | --- | --- |",
    ]
    tuning = summary.get("on_tuning_views", {})
    for scene, entry in _scenes(summary).items():
        for arm, value in entry["arms"].items():
            tuned = tuning.get(scene, {}).get("arms", {}).get(arm)
            tuned_mean = None if tuned is None else tuned["steps_ratio"]["mean"]
            tuned_steps = "" if tuned_mean is None else f" [{tuned_mean:.2f}x]"
            lines.append(
                f"| {scene} | {arm} | {_ratio(value['steps_ratio'])}{tuned_steps} | {_ratio(value['time_ratio'])} "
                f"| {_psnr(value['final_psnr'])} ({_psnr(value['uniform_final_psnr'])}) |"
            )
    return "\n".join(lines)


def soft_mining_step_cost() -> str:
    report = _load("soft_mining_step_cost.json")
    lines = [
        "| torch threads | uniform step (CPU ms) | released drift (soft-mining arm) / uniform "
        "| shipped preset (no drift) / uniform | repeats | load average |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for threads, entry in report["summary"].items():
        repeats = report["threads"][threads]["repeats"]
        load = ", ".join(f"{repeat['load_average']:.1f}" for repeat in repeats if "load_average" in repeat)
        lines.append(
            f"| {threads} | {entry['uniform']['median_cpu_ms']:.0f} "
            f"| {entry['soft-mining']['cpu_ratio_to_uniform']:.3f} | {entry['no-drift']['cpu_ratio_to_uniform']:.3f} "
            f"| {len(repeats)} | {load} |"
        )
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[], str]] = {
    "soft_mining_convergence": soft_mining_convergence,
    "soft_mining_step_cost": soft_mining_step_cost,
}


def render(text: str, renderers: dict[str, Callable[[], str]] = RENDERERS) -> tuple[str, list[str]]:
    """``text`` with every results block regenerated, and the names of the blocks that changed."""
    changed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in renderers:
            raise SystemExit(f"{README}: unknown results block {name!r} (known: {', '.join(renderers)})")
        body = renderers[name]()
        if match.group(2).strip() != body.strip():
            changed.append(name)
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    pattern = re.compile(r"<!-- results:(\w+) -->\n(.*?)<!-- /results:\1 -->", re.DOTALL)
    return pattern.sub(replace, text), changed


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the README differs from the JSON")
    args = parser.parse_args(argv)
    text = README.read_text()
    new, changed = render(text)
    if args.check:
        if changed:
            print(f"README.md: results blocks out of date with benchmarks/results: {', '.join(changed)} "
                  "(run python benchmarks/render_results.py)")  # fmt: skip
            return 1
        return 0
    if new != text:
        README.write_text(new)
    print(f"README.md: {len(changed)} results block(s) updated" + (f" ({', '.join(changed)})" if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
