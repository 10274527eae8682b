"""Renders the results tables of the README and the docs (``docs/**/*.md``) from the committed JSON in
``benchmarks/results/``, so that no number in them is typed by hand.

Each table lives between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``; this script rewrites what stands
between the markers from the JSON that ``RENDERERS[NAME]`` reads. ``--check`` rewrites nothing and exits 1 (naming
the files and blocks) when a page differs from what the JSON gives; the test suite and ``scripts/docs.sh`` run it.

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
DOCS = REPO / "docs"


def documents() -> list[Path]:
    """The README and every Markdown page of the docs (not their build folder)."""
    return [README] + sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.relative_to(DOCS).parts)


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


def _mean(entry: dict | None, digits: int = 2, unit: str = "") -> str:
    """``21.40 ± 0.31`` (the spread over seeds); ``-`` for no value."""
    if entry is None or entry.get("mean") is None:
        return "-"
    return f"{entry['mean']:.{digits}f}{unit} ± {entry['std']:.{digits}f}"


def _per_seed(entry: dict | None, digits: int = 2) -> str:
    if entry is None:
        return "-"
    return ", ".join("-" if v is None else f"{v:.{digits}f}" for v in entry["per_seed"].values())


MONONERF_RESULTS = "mononerf_generalization.json"


def _mononerf(section: str) -> tuple[dict, Any]:
    """The MonoNeRF results file and one section of its summary (None when that comparison has no runs yet)."""
    report = _load(MONONERF_RESULTS)
    return report, report["summary"].get(section)


def _no_runs(comparison: str) -> str:
    return f"(no {comparison} runs in benchmarks/results/{MONONERF_RESULTS})"


def mononerf_unseen_scene() -> str:
    report, summary = _mononerf("unseen_scene")
    if summary is None:
        return _no_runs("unseen-scene")
    settings = report["configuration"]["comparison_settings"]["unseen-scene"]
    scratch_steps = settings["scratch_static_steps"] + settings["scratch_dynamic_steps"]
    finetune_steps = settings["finetune_static_steps"] + settings["finetune_dynamic_steps"]
    blending = summary["blending_on_moving_pixels"]
    kept = summary["kept_blending"]
    verdict = summary["verdict"]
    lines = [
        f"| | scratch ({scratch_steps} steps) | fine-tuned, fresh blending ({finetune_steps} steps) "
        "| fine-tuned, checkpoint's blending |",
        "| --- | --- | --- | --- |",
        f"| final held-out PSNR (dB), mean ± std | {_mean(summary['scratch_final_psnr'])} "
        f"| {_mean(summary['fine_tuned_final_psnr'])} | {_mean(kept['final_psnr'])} |",
        f"| per seed | {_per_seed(summary['scratch_final_psnr'])} | {_per_seed(summary['fine_tuned_final_psnr'])} "
        f"| {_per_seed(kept['final_psnr'])} |",
        f"| steps to scratch's final / scratch's steps (per seed) | 1 | {_mean(summary['step_ratio'])} "
        f"({_per_seed(summary['step_ratio'])}) | {_mean(kept['step_ratio'])} ({_per_seed(kept['step_ratio'])}) |",
        f"| blending on moving pixels, before -> after | - -> {_mean(blending['scratch_after'], 3)} "
        f"| {_mean(blending['fresh_head_before'], 3)} -> {_mean(blending['fresh_head_after'], 3)} "
        f"| {_mean(blending['checkpoint_head_before'], 3)} -> {_mean(blending['checkpoint_head_after'], 3)} |",
        "",
        f"Scratch's last quarter of steps added {_mean(summary['scratch_last_quarter_gain_db'])} dB "
        f"({_per_seed(summary['scratch_last_quarter_gain_db'])}). Fine-tuned minus scratch at the end: "
        f"{_mean(summary['fine_tuned_minus_scratch_final_db'])} dB "
        f"({_per_seed(summary['fine_tuned_minus_scratch_final_db'])}). Verdict: reaches scratch's final PSNR within "
        f"a third of its steps on every seed: **{verdict['reaches_scratch_final_within_a_third_every_seed']}**; "
        f"ends at or above it on every seed: **{verdict['ends_at_or_above_scratch_every_seed']}**.",
    ]
    diagnostic = report["summary"].get("blending_diagnostic")
    if diagnostic:

        def logits(trunk: str) -> str:
            means = diagnostic[trunk]["released_head_logit_mean"]["per_seed"].values()
            spreads = diagnostic[trunk]["released_head_logit_std"]["per_seed"].values()
            return ", ".join(f"{mean:.2f} ± {std:.2f}" for mean, std in zip(means, spreads))

        lines.append(
            "A released-style blending head (Kaiming-initialised, on the raw state) on each new scene, logits (mean ± "
            f"spread over the scene's samples): through the checkpoint's trunk {logits('checkpoint_trunk')}; through "
            f"a fresh trunk {logits('fresh_trunk')}. Norm of the state it reads: "
            f"{_mean(diagnostic['checkpoint_trunk']['state_norm_mean'], 1)} against "
            f"{_mean(diagnostic['fresh_trunk']['state_norm_mean'], 1)}."
        )
    own = summary.get("multi_scene_blending_own_scenes")
    if own:
        lines.append(
            f"The multi-scene run's blending on its own scenes: {own['moving']:.3f} on moving, "
            f"{own['static']:.3f} on static pixels."
        )
    return "\n".join(lines)


def _scene_label(scene: str) -> str:
    return "generated (a new scene per seed)" if scene == "generated" else scene


def mononerf_unseen_frames() -> str:
    _, rows = _mononerf("unseen_frames")
    if rows is None:
        return _no_runs("unseen-frames")
    lines = [
        "| scene | MonoNeRF (dB) | no features (dB) | gain (dB), mean ± std | gain per seed "
        "| MonoNeRF without derived masks (dB) | derived masks' gain (dB) | derived moving fraction |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scene, row in rows.items():
        lines.append(
            f"| {_scene_label(scene)} | {_mean(row['mononerf_psnr'])} | {_mean(row['no_features_psnr'])} | {_mean(row['gain_db'])} "
            f"| {_per_seed(row['gain_db'])} | {_mean(row.get('mononerf_no_derived_masks_psnr'))} "
            f"| {_mean(row.get('derived_masks_gain_db'))} | {_mean(row.get('derived_moving_fraction'), 2)} |"
        )
    lines += [
        "",
        "Where the features' gain comes from (MonoNeRF minus no features, dB, mean over seeds): after the static stage, "
        "on the training frames, on each unseen frame, and what the trained MonoNeRF loses when every feature map is "
        "replaced by its mean:",
        "",
        "| scene | after the static stage | training frames | unseen frames, one by one | mean-features drop |",
        "| --- | --- | --- | --- | --- |",
    ]
    for scene, row in rows.items():
        by_frame = ", ".join(f"{frame}: {gain:+.2f}" for frame, gain in row["gain_by_unseen_frame_db"].items())
        lines.append(
            f"| {_scene_label(scene)} | {_mean(row['gain_after_static_stage_db'])} | {_mean(row['gain_training_frames_db'])} "
            f"| {by_frame} | {_mean(row['mean_features_drop_db'])} |"
        )
    lines += [
        "",
        "Whether the dynamic branch enters the image: what the dynamic stage adds to the held-out PSNR (dB), and the "
        "share of the pixel the dynamic branch paints on the training frames, moving / static pixels (Balloon1: "
        "on the masks the MonoNeRF run derived):",
        "",
        "| scene | arm | dynamic stage adds (dB) | per seed | dynamic share, moving / static |",
        "| --- | --- | --- | --- | --- |",
    ]
    for scene, row in rows.items():
        for arm, added in row.get("dynamic_stage_db", {}).items():
            share = row["blending_moving_pixels_training_frames"].get(arm)
            static = row.get("blending_static_pixels_training_frames", {}).get(arm)
            lines.append(
                f"| {_scene_label(scene)} | {arm} | {_mean(added)} | {_per_seed(added)} "
                f"| {_mean(share, 3)} / {_mean(static, 3)} |"
            )
    return "\n".join(lines)


def mononerf_preprocessing() -> str:
    report, rows = _mononerf("preprocessing")
    if rows is None:
        return _no_runs("preprocessing")
    lines = [
        "| trained with | held-out PSNR (dB) | on moving pixels (dB) | against all parts (dB), per seed |",
        "| --- | --- | --- | --- |",
    ]
    for arm, row in rows.items():
        lines.append(
            f"| {arm} | {_mean(row['psnr'])} | {_mean(row['psnr_moving_pixels'])} "
            f"| {_mean(row['minus_all_parts_db'])} ({_per_seed(row['minus_all_parts_db'])}) |"
        )
    tuning = report["summary"].get("mask_tuning")
    if tuning:
        ious = tuning["mean_iou"]
        shipped = "ratio 2, dilation 1"
        lines += [
            "",
            f"Derived masks against the true ones on the tuning scenes ({', '.join(tuning['scenes'])}; mean IoU): "
            + ", ".join(f"{cell} {iou:.3f}" for cell, iou in ious.items())
            + f". Best: {tuning['best']}; shipped: {shipped} ({ious.get(shipped, float('nan')):.3f}).",
        ]
        cell = tuning.get("best_cell")
        if cell:
            lines.append(
                f"The best cell's masks flag {cell['derived_fraction']:.2f} of the frame where {cell['true_moving_fraction']:.2f} "
                f"moves: precision {cell['precision']:.2f}, recall {cell['recall']:.2f}."
            )
    return "\n".join(lines)


def streamrf_stream(report: dict | None = None) -> str:
    """Per scene kind (issue 24): PSNR gap, time ratio, the two storage ratios against their targets, the scene's
    occupancy and stored share, and the storage per frame at N3DV's size beside the published figures."""
    report = report if report is not None else _optional("streamrf_stream.json")
    if report is None or "summary" not in report:
        return "(no runs of the current benchmark in benchmarks/results/streamrf_stream.json)"
    targets = report["configuration"]["targets"]

    def cell(row: dict, name: str, digits: int = 2, unit: str = "") -> str:
        met = "met" if row["meets"][name] else "not met"
        return f"{_mean(row[name], digits, unit)} ({_per_seed(row[name], digits)}; {met})"

    lines = [
        f"| scene | seeds | streamed - from scratch (dB; target >= {targets['psnr_gap_db']}) "
        f"| time per frame, scratch / streamed (CPU s; target >= {targets['time_ratio']:g}) "
        f"| dense fp32 grid / delta (target >= {targets['dense_over_delta']:g}) "
        f"| sparse grid state / delta (target >= {targets['sparse_state_over_delta']:g}) "
        "| occupancy after frame 0 (asked: 0.10-0.25) | stored share of occupied voxels per frame | moving area, max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, row in report["summary"].items():
        lines.append(
            f"| {kind} | {len(row['psnr_gap_db']['per_seed'])} | {cell(row, 'psnr_gap_db')} "
            f"| {cell(row, 'time_ratio', 1)} | {cell(row, 'dense_over_delta', 0)} "
            f"| {cell(row, 'sparse_state_over_delta', 1)} | {_mean(row['occupancy_after_frame0'], 3)} "
            f"| {_mean(row['stored_fraction_of_occupied'], 3)} | {_mean(row['moving_area_max'], 3)} |"
        )
    published = ", ".join(f"{name} {mb:g} MB" for name, mb in report["configuration"]["published_mb_per_frame"].items())
    extrapolated = ", ".join(
        f"{kind} {_mean(row['n3dv_mb_per_frame'], 2)} MB" for kind, row in report["summary"].items()
    )
    lines += [
        "",
        f"Storage per frame extrapolated to N3DV's {' x '.join(map(str, report['configuration']['n3dv_grid']))} grid "
        f"from each run's occupancy and stored share: {extrapolated}; published on N3DV: {published}. From-scratch "
        "frames' last quarter of steps added "
        + ", ".join(
            f"{kind} {_mean(row['scratch_last_quarter_gain_db'])} dB" for kind, row in report["summary"].items()
        )
        + ".",
    ]
    for kind, row in report["summary"].items():
        explained = row.get("occupancy_explained")
        if explained is None:
            continue
        lines += [
            "",
            f"Why {kind}'s frame 0 occupies what it does: the near half of NDC depth is "
            f"{_mean(explained['near_half_occupancy'], 3)} occupied, the far half "
            f"{_mean(explained['far_half_occupancy'], 3)}; {_mean(explained['visible_fraction_of_occupied'], 3)} of the "
            "occupied voxels are seen by a training camera, and "
            f"{_mean(explained['semi_transparent_fraction'], 3)} of them are semi-transparent (under half opaque "
            "across one voxel). The voxels at least half opaque fill "
            f"{_mean(explained['occupancy_of_voxels_at_least_half_opaque'], 3)} of the grid, but frame 0's held-out "
            f"view drops from {_mean(explained['heldout_psnr_frame0'])} dB to "
            f"{_mean(explained['heldout_psnr_frame0_opaque_voxels_only'])} dB when rendered from them alone. "
            "Per frame, the voxels that a training pixel whose colour changed can see (the motion footprint) are "
            f"{_mean(explained['motion_footprint_share_of_occupied'], 3)} of the occupied ones, and "
            f"{_mean(explained['changed_voxels_inside_motion_footprint'], 3)} of the voxels a delta stores as changed "
            "lie inside it: the rest moved beyond the SH keep threshold where nothing in the images changed.",
        ]
    return "\n".join(lines)


def _optional(name: str) -> dict | None:
    """A results file, or None while its benchmark has not written it."""
    return _load(name) if (RESULTS / name).is_file() else None


def headlines() -> str:
    """The README's method table: per method its paper, data, one headline number from its JSON, and its pages."""
    rows = []
    stream = _optional("streamrf_stream.json")
    room = (stream or {}).get("summary", {}).get("room")
    rows.append((
        "`streamrf`, `streamrf-meetroom`", "Streaming Radiance Fields for 3D Video Synthesis (NeurIPS'22)",
        "N3DV, Meet Room",
        "N3DV-shaped room video: streamed - from scratch " + _mean(room["psnr_gap_db"], 2, " dB")
        + f", {_mean(room['time_ratio'], 1)}x less time per frame, deltas {_mean(room['dense_over_delta'], 0)}x "
        "smaller than a dense grid" if room else "(benchmark not yet run)",
        "streamrf",
    ))  # fmt: skip
    unseen = _load(MONONERF_RESULTS)["summary"]["unseen_scene"]
    rows.append((
        "`mononerf`, `mononerf-cpu`", "MonoNeRF (ICCV'23)", "NVIDIA Dynamic Scenes (DynamicNeRF layout)",
        "unseen scene: fine-tuning reaches scratch's final PSNR in "
        f"{_mean(unseen['step_ratio'], 2)} of its steps", "mononerf",
    ))  # fmt: skip
    mining = _load("soft_mining_convergence.json")["summary"]
    rows.append((
        "`soft-mining-ngp`, `soft-mining-llff`, `soft-mining`, `soft-mining-vanilla-nerf`",
        "Accelerating Neural Field Training via Soft Mining (CVPR'24)", "Blender, LLFF",
        "steps to uniform sampling's PSNR: " + ", ".join(
            f"{scene} {_ratio(mining[scene]['steps_ratio'])}" for scene in ("lego", "fern") if scene in mining
        ) + " fewer", "soft_mining",
    ))  # fmt: skip
    largest = max(_load("threeda_ae_scaling.json")["summary"]["rows"], key=lambda row: row["num_scenes"])
    rows.append((
        "`3da-ae`, `3da-ae-exploit`, `rgb-triplanes` (each with `-cpu`)",
        "3D-aware latent spaces for numerous scenes (CVPR'24 W)", "ShapeNet SRN cars",
        f"{largest['num_scenes']} scenes: time per scene {largest['time_ratio_latent_over_rgb']:.2f}x of RGB "
        f"tri-planes ({largest['time_ratio_with_stage_one']:.2f}x with stage 1 shared out; one run)", "3da_ae",
    ))  # fmt: skip
    gain = _load("infonerf_fewshot.json")["gains"]["lego:nerfacto:infonerf"]
    seeds = [value["psnr"] for value in gain["per_seed"].values()]
    rows.append((
        "`infonerf`, `infonerf-dtu`, `infonerf-nerfacto`, `infonerf-nerfacto-dtu`",
        "InfoNeRF: ray entropy minimization (CVPR'22)", "Blender, DTU",
        f"lego, 4 views, nerfacto base: {gain['psnr_gain_mean']:+.2f} ± {gain['psnr_gain_std']:.2f} dB "
        f"({len(seeds)} seeds; chosen on the views it is reported on)", "infonerf",
    ))  # fmt: skip
    lines = ["| `ns-train` methods | paper | data | headline result | docs |", "| --- | --- | --- | --- | --- |"]
    for methods, paper, data, headline, page in rows:
        lines.append(f"| {methods} | {paper} | {data} | {headline} "
                     f"| [method](docs/methods/{page}.md), [results](docs/results/{page}.md) |")  # fmt: skip
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[], str]] = {
    "soft_mining_convergence": soft_mining_convergence,
    "soft_mining_step_cost": soft_mining_step_cost,
    "mononerf_unseen_scene": mononerf_unseen_scene,
    "mononerf_unseen_frames": mononerf_unseen_frames,
    "mononerf_preprocessing": mononerf_preprocessing,
    "streamrf_stream": streamrf_stream,
    "headlines": headlines,
}


def render(
    text: str, renderers: dict[str, Callable[[], str]] = RENDERERS, source: Path = README
) -> tuple[str, list[str]]:
    """``text`` with every results block regenerated, and the names of the blocks that changed."""
    changed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in renderers:
            raise SystemExit(f"{source}: unknown results block {name!r} (known: {', '.join(renderers)})")
        body = renderers[name]()
        if match.group(2).strip() != body.strip():
            changed.append(name)
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    pattern = re.compile(r"<!-- results:(\w+) -->\n(.*?)<!-- /results:\1 -->", re.DOTALL)
    return pattern.sub(replace, text), changed


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a page differs from the JSON")
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        text = path.read_text()
        new, changed = render(text, source=path)
        name = path.relative_to(REPO)
        if changed:
            stale.append(f"{name} ({', '.join(changed)})")
        if not args.check and new != text:
            path.write_text(new)
    if args.check and stale:
        print(f"results blocks out of date with benchmarks/results: {'; '.join(stale)} "
              "(run python benchmarks/render_results.py)")  # fmt: skip
        return 1
    if not args.check:
        print(f"{len(stale)} page(s) updated" + (f": {'; '.join(stale)}" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
