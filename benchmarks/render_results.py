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


def streamrf_ablations() -> str:
    """The settings search behind the stream benchmark (one run, seed 0's objects scene: tuning, not a reported
    effect): frame 0's schedule against steps, then the per-frame schedule's factors one at a time."""
    report = _load("streamrf_ablations.json")
    lines = [
        "| frame-0 schedule | held-out PSNR along the run (step: dB) | final (dB) | training time (s) |",
        "| --- | --- | --- | --- |",
    ]
    for run in report["convergence"]:
        curve = ", ".join(f"{point['step']}: {point['heldout_psnr']:.2f}" for point in run["curve"])
        lines.append(f"| {run['steps']:,} steps | {curve} | {run['heldout_psnr']:.2f} | {run['seconds']:.0f} |")
    scratch = report["scratch_reference"]
    lines += [
        "",
        f"Taken as converged: {report['converged_steps']:,} steps ({report['converged_rule']}). A from-scratch frame "
        f"{scratch['frame']} at {scratch['steps']:,} steps reaches {scratch['heldout_psnr']:.2f} dB "
        f"({scratch['seconds']:.0f} s).",
        "",
        f"Streaming frames 1-{report['frames'] - 1} from the same frame 0, one factor changed at a time:",
        "",
        f"| variant | mean held-out PSNR (dB; change) | frame {scratch['frame']} - from scratch (dB) | s / frame "
        "| delta / frame (KB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    reference = report["variants"][0]["mean_heldout_psnr"]
    for variant in report["variants"]:
        change = variant["mean_heldout_psnr"] - reference
        shift = "" if variant is report["variants"][0] else f" ({change:+.2f})"
        lines.append(
            f"| {variant['change']} | {variant['mean_heldout_psnr']:.2f}{shift} "
            f"| {variant['last_frame_psnr_minus_scratch']:+.2f} | {variant['mean_seconds_per_frame']:.1f} "
            f"| {variant['mean_delta_bytes'] / 1e3:.0f} |"
        )
    lines += ["", f"The run's own note: {report['note']}"]
    return "\n".join(lines)


def streamrf_memory() -> str:
    """Peak memory of a later frame's training at N3DV and Meet Room size, the delta sizes of two per-frame schedules,
    and the sparse against the dense grid's step time (``streamrf_memory.py``)."""
    report = _load("streamrf_memory.json")
    memory, before = report["memory"], report.get("memory_at_df7b9d9_before_the_fixes", {})
    sizes = list(memory)
    names = {"n3dv": "N3DV", "meetroom": "Meet Room"}
    header = " | ".join(f"{names.get(size, size)} {'x'.join(map(str, memory[size]['grid']))}" for size in sizes)

    def row(label: str, cell: Callable[[dict, str], str]) -> str:
        return f"| {label} | " + " | ".join(cell(memory[size], size) for size in sizes) + " |"

    def largest_stage(entry: dict) -> str:
        stage, value = max(entry["stages"].items(), key=lambda item: item[1]["peak_gb"])
        return f"{value['peak_gb']:.2f} GB ({stage.replace('_', ' ')})"

    lines = [
        f"| | {header} |",
        "| --- |" + " --- |" * len(sizes),
        row("occupied voxels while training", lambda e, _: f"{100 * e['occupied_fraction']:.1f}%"),
        row("state tensors (" + ", ".join(memory[sizes[0]]["state_tensors_gb"]) + ")",
            lambda e, _: f"{e['state_tensors_total_gb']:.2f} GB"),
        row("peak memory growth during one full-pass step", lambda e, _: f"**{e['one_step_peak_gb']:.2f} GB**"),
        row("largest peak of any stage", lambda e, _: largest_stage(e)),
        row("bound", lambda e, _: f"{e['bound_gb']:g} GB ({'within' if e['within_bound'] else 'over'})"),
        row("dense grid (values, gradient, RMS state, previous frame; pilot likewise)",
            lambda e, _: f"{e['dense_grid_total_gb']:.1f} GB"),
    ]  # fmt: skip
    if before:
        lines.append(row(
            "before the memory fixes (commit df7b9d9): one step / largest stage",
            lambda _, size: f"{before[size]['one_step_peak_gb']:.2f} / {largest_stage(before[size]).split(' (')[0]}",
        ))  # fmt: skip
    delta = report["delta"]
    lines += [
        "",
        f"Deltas on a {'x'.join(map(str, delta['grid']))} grid (one dense fp32 grid: "
        f"{delta['dense_fp32_grid_bytes'] / 1e6:.1f} MB), per-frame schedule given as pilot steps : full steps : "
        "rate multiple:",
        "",
        "| per-frame schedule | mean delta | dense fp32 / delta | occupied | stored voxels / occupied "
        "| bytes per stored voxel |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, schedule in delta["schedules"].items():
        frames = schedule["per_frame"]

        def spread(key: str, frames: list[dict] = frames) -> str:
            values = [100 * frame[key] for frame in frames]
            return f"{min(values):.1f}%-{max(values):.1f}%"

        per_voxel = sum(frame["bytes_per_stored_voxel"] for frame in frames) / len(frames)
        lines.append(
            f"| {name} | {schedule['mean_delta_bytes'] / 1e3:.0f} KB | **{schedule['dense_fp32_over_mean_delta']:.0f}x** "
            f"| {spread('occupied_fraction')} | {spread('stored_voxel_fraction_of_occupied')} | {per_voxel:.0f} B |"
        )
    speed = report["speed"]
    lines += [
        "",
        f"Seconds per training step ({speed['rays_per_step']} rays, {speed['threads']} threads, median of "
        f"{speed['rounds']} interleaved blocks of {speed['steps_per_block']} steps, "
        f"{'x'.join(map(str, speed['grid']))} grid), sparse against the dense path:",
        "",
        "| step | occupied | sparse | dense | dense / sparse |",
        "| --- | --- | --- | --- | --- |",
    ]
    for step, times in speed["seconds_per_step_median"].items():
        lines.append(
            f"| {step.replace('_', ' ')} | {100 * speed['occupied_fraction'][step]:.0f}% | {1e3 * times['sparse']:.0f} ms "
            f"| {1e3 * times['dense']:.0f} ms | **{speed['dense_over_sparse_time'][step]:.2f}x** |"
        )
    return "\n".join(lines)


INFONERF_REPORT = "infonerf_fewshot_split.json"
"""The few-shot benchmark's reported runs: settings chosen on the tuning views, results on the disjoint report views."""


def _spread(values: list[float], digits: int = 2, sign: str = "") -> str:
    """``mean ± sample std (v1, v2, v3)`` of a few per-seed values."""
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return _spread_text(mean, std, values, digits, sign)


def _spread_text(mean: float, std: float | None, values: list[float], digits: int = 2, sign: str = "") -> str:
    seeds = ", ".join(f"{v:{sign}.{digits}f}" for v in values)
    return f"{mean:{sign}.{digits}f} ± {std or 0.0:.{digits}f} ({seeds})"


def _infonerf_setting(run: dict) -> str:
    """A run's regularizer setting in words, from the values it recorded (not from its variant's name)."""
    parts = []
    if run["entropy_lambda"] > 0:
        rays = "seen + unseen" if run["entropy_on_seen_rays"] else "unseen"
        parts.append(f"entropy {run['entropy_lambda']:g} on {rays} rays")
        if run.get("entropy_end_step"):
            parts.append(f"until step {run['entropy_end_step']}")
        if run["num_unseen_rays"] != run["train_num_rays_per_batch"]:
            parts.append(f"{run['num_unseen_rays']} unseen rays")
        if run["unseen_pose_source"] != "orbit":
            parts.append(f"unseen poses `{run['unseen_pose_source']}`")
        if run["entropy_acc_threshold"] != 0.1:
            parts.append(f"opacity threshold {run['entropy_acc_threshold']:g}")
        if run.get("entropy_distribution", "opacities") != "opacities":
            parts.append(f"entropy of the {run['entropy_distribution']}")
    if run["kl_lambda"] > 0:
        parts.append(f"KL {run['kl_lambda']:g}, neighbours up to {run['neighbour_max_deg']:g} degrees")
    if not parts:
        parts.append("no regularizer")
    return ", ".join(parts)


def _infonerf_conditions(run: dict, base_steps: int = 800) -> str:
    """What a run shares with its baseline beyond the regularizer: background, initial density, steps, size."""
    parts = [f"{run['background']} background"]
    if run.get("average_init_density") is not None:
        parts.append(f"initial density {run['average_init_density']:g}")
    if run["steps"] != base_steps:
        parts.append(f"{run['steps']} steps")
    if run["camera_res_scale_factor"] != INFONERF_CPU_SCALE[run["scene"]]:
        parts.append(f"images at {run['camera_res_scale_factor']:g} of full size")
    return ", ".join(parts)


INFONERF_CPU_SCALE = {"lego": 0.125, "dtu": 0.25}
"""The few-shot benchmark's CPU image sizes (``--lego-scale``, ``--dtu-scale``): lego 100 px, DTU 96 px."""


def infonerf_fewshot() -> str:
    """Per scene, model and regularized variant of the reported runs: both arms' held-out PSNR / SSIM / opacity on
    the report views, the gain per seed, and the gain on the tuning views beside it."""
    report = _optional(INFONERF_REPORT)
    if report is None:
        return f"(no reported runs yet: benchmarks/results/{INFONERF_REPORT})"
    runs = report["runs"]
    lines = [
        "| scene, model | regularizer (both arms: conditions) | seeds | no regularizer: PSNR / SSIM / opacity "
        "| regularized: PSNR / SSIM / opacity | gain on the report views (dB) | gain on the tuning views (dB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, gain in report["gains"].items():
        scene, model, variant = key.split(":")
        seeds = sorted(gain["per_seed"], key=int)
        arms = {}
        for arm in (variant, gain["baseline"]):
            arms[arm] = [
                next(
                    r for r in runs if (r["scene"], r["model"], r["variant"], str(r["seed"])) == (scene, model, arm, s)
                )
                for s in seeds
            ]

        def metrics(arm_runs: list[dict]) -> str:
            psnr = [r["held_out"]["psnr"] for r in arm_runs]
            ssim = sum(r["held_out"]["ssim"] for r in arm_runs) / len(arm_runs)
            opacity = sum(r["held_out"]["opacity"] for r in arm_runs) / len(arm_runs)
            return f"{_spread(psnr)} / {ssim:.3f} / {opacity:.2f}"

        regularized = arms[variant][0]
        tuning = [gain["per_seed"][s].get("psnr_tuning_views") for s in seeds]
        tuned = _spread([t for t in tuning if t is not None], sign="+") if None not in tuning else "-"
        lines.append(
            f"| {scene}, {model} | {_infonerf_setting(regularized)} ({_infonerf_conditions(regularized)}) "
            f"| {len(seeds)} | {metrics(arms[gain['baseline']])} | {metrics(arms[variant])} "
            f"| **{_spread([gain['per_seed'][s]['psnr'] for s in seeds], sign='+')}** | {tuned} |"
        )
    views = {}
    for run in runs:
        views.setdefault(run["scene"], run["held_out_views"])
    lines.append("")
    for scene, split in views.items():
        # the empty render's PSNR, where a run measured it (the lego runs, DTU's vanilla ones)
        empty = [r["held_out"]["empty_render_psnr"] for r in runs if r["scene"] == scene and "empty_render_psnr" in
                 r["held_out"]]  # fmt: skip
        lines.append(
            f"- {scene}: tuning views {len(split['tuning'])} ({', '.join(split['tuning'][:3])}, ...), "
            f"report views {len(split['report'])} ({', '.join(split['report'][:3])}, ...)"
            + (f"; an empty render scores {empty[0]:.2f} dB on the report views." if empty else ".")
        )
    return "\n".join(lines)


def infonerf_search() -> str:
    """The settings search (``infonerf_fewshot.json``, every run on the tuning views): per regularized variant, the
    gain over its paired baseline per seed, and the first seed's held-out numbers, split into object and background
    on lego, with how the object's rays hold their opacity where the run measured it."""
    report = _load("infonerf_fewshot.json")
    runs = [run for run in report["runs"] if run.get("training_callbacks", True)]
    lines = [
        "| scene, model | setting (conditions) | seeds | gain (dB) | first seed: PSNR / SSIM | object PSNR / opacity "
        "| background PSNR / opacity | train-view PSNR | object rays: opaque samples / entropy (bits) / behind |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    chosen: dict[tuple, tuple[dict, list[str], dict]] = {}  # one row per setting: the variant with the most seeds
    for key, gain in report["gains"].items():
        scene, model, variant = key.split(":")
        seeds = sorted(gain["per_seed"], key=int)
        arm = [r for r in runs if (r["scene"], r["model"], r["variant"]) == (scene, model, variant)]
        if not arm:  # made before the training callbacks ran (the JSON's note): left out
            continue
        first = min(arm, key=lambda r: r["seed"])
        setting = (scene, model, _infonerf_setting(first), _infonerf_conditions(first))
        if setting not in chosen or len(seeds) > len(chosen[setting][1]):
            chosen[setting] = (gain, seeds, first)
    for _, (gain, seeds, first) in sorted(chosen.items(), key=lambda item: item[0][:2]):
        held = first["held_out"]
        obj = f"{held['object_psnr']:.2f} / {held['object_opacity']:.2f}" if "object_psnr" in held else "-"
        bg = f"{held['background_psnr']:.2f} / {held['background_opacity']:.3f}" if "background_psnr" in held else "-"
        rays = held.get("object_rays")
        probe = (
            f"{rays['opaque_samples']:.2f} / {rays['entropy_of_opacities']:.2f} / {100 * rays['hidden_opacity_share']:.1f}%"
            if rays
            else "-"
        )
        gains = [gain["per_seed"][s]["psnr"] for s in seeds]
        lines.append(
            f"| {first['scene']}, {first['model']} | {_infonerf_setting(first)} ({_infonerf_conditions(first)}) "
            f"| {len(seeds)} "
            f"| {_spread(gains, sign='+') if len(gains) > 1 else f'{gains[0]:+.2f}'} "
            f"| {held['psnr']:.2f} / {held['ssim']:.3f} | {obj} | {bg} | {first['train_view_psnr']:.1f} | {probe} |"
        )
    return "\n".join(lines)


def _seeds(row: dict, key: str, digits: int = 2, sign: str = "") -> str:
    """A 3Da-AE summary value: ``mean ± std (per seed)``, as the benchmark's summary over the seeds stores them."""
    return _spread_text(row[key], row[f"{key}_std"], row[f"{key}_per_seed"], digits, sign)


def threeda_ae_scaling(report: dict | None = None) -> str:
    """Per N: time per scene of latent tri-planes (3D-aware space) against RGB tri-planes trained to the same held-out
    PSNR, with stage 1 shared out, state per scene, and the 3D-aware against the scratch latent space; then the same
    measured sizes carried to larger N (arithmetic)."""
    report = report if report is not None else _load("threeda_ae_scaling.json")
    if "per_seed" not in report:
        return "(benchmarks/results/threeda_ae_scaling.json is from before the benchmark ran several seeds)"
    settings = report["settings"]
    rows = report["summary"]["rows"]
    exploit = settings["exploit_epochs"]
    tuning = settings.get("tuning_seed")
    lines = [
        f"Stage 2's {exploit['latent']:g} + {exploit['decoder']:g} epochs were chosen on "
        + ("scenes of a seed not recorded" if tuning is None else f"seed {tuning}'s scenes")
        + f" (the schedule search below); the reported seeds are {', '.join(map(str, settings['seeds']))}, each with "
        "its own scenes.",
        "",
        "| N | seeds | latent s/scene (stage 2) | RGB s/scene (to the latent PSNR) | latent / RGB time "
        "| latent + stage 1 / N, over RGB | effective state per scene: latent / RGB (MB) "
        "| PSNR: latent 3D-aware / latent scratch / RGB (dB) | 3D-aware - scratch (dB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        scratch = row.get("psnr_latent_scratch")
        gain = _seeds(row, "psnr_gain_3d_aware_over_scratch", sign="+") if scratch is not None else "-"
        reached = sum(row["rgb_reached_latent_psnr"])
        lines.append(
            f"| {row['num_scenes']} | {row['seeds']} | {_seeds(row, 'seconds_per_scene_latent')} "
            f"| {_seeds(row, 'seconds_per_scene_rgb')} | **{_seeds(row, 'time_ratio_latent_over_rgb')}** "
            f"| {_seeds(row, 'time_ratio_with_stage_one')} "
            f"| {row['effective_state_bytes_per_scene_latent'] / 1e6:.2f} / "
            f"{row['effective_state_bytes_per_scene_rgb'] / 1e6:.2f} ({row['memory_ratio_effective']:.2f}) "
            f"| {row['psnr_latent_3d_aware']:.2f} / {'-' if scratch is None else f'{scratch:.2f}'} / "
            f"{row['psnr_rgb']:.2f} | {gain} |"
            + ("" if reached == row["seeds"] else f" (RGB reached the latent PSNR in {reached} of {row['seeds']})")
        )
    largest = rows[-1]
    stage_one = report["summary"]["stage_one_seconds_per_seed"]
    first = report["per_seed"][0]
    entry = first["scales"][-1]["latent_3d_aware"]
    own, shared = entry["per_scene_state_bytes"], entry["shared_state_bytes"]
    rgb_own, rgb_effective = largest["state_bytes_per_scene_rgb"], largest["effective_state_bytes_per_scene_rgb"]
    latent_seconds, rgb_seconds = largest["seconds_per_scene_latent"], largest["seconds_per_scene_rgb"]
    stage_mean = sum(stage_one) / len(stage_one)
    projected = []
    for n in (200, 1000):
        time_ratio = (latent_seconds + stage_mean / n) / rgb_seconds
        memory_ratio = (own + shared / n) / rgb_effective
        projected.append(f"N = {n}: time with stage 1 {time_ratio:.2f}x, effective state {memory_ratio:.2f}x of RGB")
    lines += [
        "",
        f"Stage 1 ({settings['stage_one_scenes']} scenes) took {_spread(stage_one, 0)} CPU s. A scene's own state: "
        f"{own / 1e6:.2f} MB latent, {rgb_own / 1e6:.2f} MB RGB; shared by all scenes (autoencoder, bases, MLP, the "
        f"decoder's Adam moments): {shared / 1e6:.1f} MB. Carried to larger N with N = {largest['num_scenes']}'s "
        f"measured times (arithmetic, not run): {'; '.join(projected)}.",
    ]
    return "\n".join(lines)


def threeda_ae_schedule() -> str:
    """Stage 2's schedule (``threeda_ae_schedule.py``): seconds per scene and held-out PSNR per epochs split, the
    settings search behind the scaling benchmark's 5 + 2 epochs."""
    report = _load("threeda_ae_schedule.json")
    runs = report["runs"]
    lines = [
        "| stage 2 epochs (latent + decoder) | " + " | ".join(
            f"{run['latent_epochs']:g} + {run['decoder_epochs']:g}" for run in runs) + " |",
        "| --- |" + " --- |" * len(runs),
        "| s/scene | " + " | ".join(f"{run['seconds_per_scene']:.2f}" for run in runs) + " |",
        "| of which the decoder phase | " + " | ".join(
            f"{run['phase_seconds'].get('decoder', 0.0) / run['train_seconds']:.0%}" for run in runs) + " |",
        "| held-out PSNR (dB) | " + " | ".join(f"{run['eval']['psnr']:.2f}" for run in runs) + " |",
    ]  # fmt: skip
    settings = report["settings"]
    lines += [
        "",
        f"One run: {settings['num_scenes']} new scenes of the seed-{settings['seed']} scaling run's scenes, its "
        f"stage-1 checkpoint, {settings['threads']} threads, wall-clock seconds (before the benchmarks timed CPU "
        "seconds).",
    ]
    return "\n".join(lines)


def demo(method: str) -> str:
    """A method page's demo: the still that ``DEMO_RECORD=1 bash scripts/demo.sh METHOD`` committed, with its held-out
    metrics (ns-eval), its video's size and length, and how long the demo took."""
    record = _optional(f"demo_{method}.json")
    if record is None:
        return f"(no demo record yet: `DEMO_RECORD=1 bash scripts/demo.sh {method}` writes it)"
    video = record["video"]
    arms = "; ".join(
        f"{label}: PSNR {values['psnr']:.2f} dB, SSIM {values['ssim']:.3f}"
        for label, values in record["metrics"].items()
    )
    return (
        f"![{method} demo, frame {record['still_frame']} of its video](../../benchmarks/results/demo_{method}.png)\n\n"
        f"`{record['command']}` on a generated scene: held-out {arms} (ns-eval). Its video is {video['width']} x "
        f"{video['height']} px, {video['frames']} frames; above, frame {record['still_frame']}. The demo took "
        f"{record['seconds'] / 60:.1f} minutes ({record['cpu_seconds'] / 60:.1f} CPU minutes) on an idle 2-core CPU "
        "machine."
    )


def demos() -> str:
    """The installation page's table of every demo: how long it took here, its held-out metrics and its video."""
    lines = [
        "| demo | minutes (CPU minutes) | held-out PSNR / SSIM (ns-eval) | video |",
        "| --- | --- | --- | --- |",
    ]
    for method in DEMOS:
        record = _optional(f"demo_{method}.json")
        if record is None:
            lines.append(f"| `{method}` | - | (no record yet) | - |")
            continue
        arms = "; ".join(
            f"{label} {values['psnr']:.2f} / {values['ssim']:.3f}" for label, values in record["metrics"].items()
        )
        video = record["video"]
        lines.append(
            f"| `{method}` | {record['seconds'] / 60:.1f} ({record['cpu_seconds'] / 60:.1f}) | {arms} "
            f"| {video['width']} x {video['height']} px, {video['frames']} frames |"
        )
    return "\n".join(lines)


DEMOS = ("streamrf", "mononerf", "soft-mining", "3da-ae", "infonerf")
"""The methods of ``scripts/demo.sh``, each with a ``demo_<method>`` results block (``-`` as ``_``) on its method
page."""


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
        f"{largest['num_scenes']} scenes: time per scene {_seeds(largest, 'time_ratio_latent_over_rgb')}x "
        f"of RGB tri-planes at the same PSNR ({largest['seeds']} seeds)", "3da_ae",
    ) if "seeds" in largest else (
        "`3da-ae`, `3da-ae-exploit`, `rgb-triplanes` (each with `-cpu`)",
        "3D-aware latent spaces for numerous scenes (CVPR'24 W)", "ShapeNet SRN cars", "(being rerun)", "3da_ae",
    ))  # fmt: skip
    reported = _optional(INFONERF_REPORT)
    gain = (reported or _load("infonerf_fewshot.json"))["gains"]["lego:nerfacto:infonerf"]
    seeds = [value["psnr"] for value in gain["per_seed"].values()]
    rows.append((
        "`infonerf`, `infonerf-dtu`, `infonerf-nerfacto`, `infonerf-nerfacto-dtu`",
        "InfoNeRF: ray entropy minimization (CVPR'22)", "Blender, DTU",
        f"lego, 4 views, nerfacto base: {_spread(seeds, sign='+')} dB ({len(seeds)} seeds; "
        + ("on views disjoint from those it was chosen on)" if reported else "chosen on the views it is reported on)"),
        "infonerf",
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
    "streamrf_ablations": streamrf_ablations,
    "streamrf_memory": streamrf_memory,
    "infonerf_fewshot": infonerf_fewshot,
    "infonerf_search": infonerf_search,
    "threeda_ae_scaling": threeda_ae_scaling,
    "threeda_ae_schedule": threeda_ae_schedule,
    "demos": demos,
    **{f"demo_{method.replace('-', '_')}": (lambda method=method: demo(method)) for method in DEMOS},
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
