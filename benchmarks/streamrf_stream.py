"""StreamRF streaming against per-frame training from scratch to convergence, on a generated multi-view video.

Two modes, each one process:

**Stream** (default): ``python benchmarks/streamrf_stream.py``

1. writes a generated N3DV scene (``nerfstudio-methods-scene``'s n3dv writer: ``--cameras`` cameras, cam00 held
   out, a drifting and a circling object in a static forward-facing scene, ``--frames`` frames);
2. **streams** the whole video with the ``streamrf`` pipeline (frame 0 from scratch, then pilot + narrow-band full
   pass per frame, deltas written to a frame store), driving the pipeline's own per-step callbacks as ``ns-train``
   does;
3. trains **from scratch** (frame 0's Plenoxels recipe, ``--frame0-steps``, which the ablation run's convergence
   curve shows to be converged) on ``--scratch-frames``, a subset spread over the stream;
4. measures seeking (replaying deltas, with and without keyframes) and storage per frame.

Reported (``<output>/streamrf_stream.json`` + ``.png``): held-out (cam00) PSNR per frame for both, their means over
the scratch frames and the streamed mean over all frames 1+, training time per frame (streamed frames 1+ against a
converged from-scratch frame), storage per frame against one dense fp32 grid and one compressed grid, memory.

**Ablations**: ``python benchmarks/streamrf_stream.py --ablations`` (on the first ``--ablation-frames`` frames)

1. convergence of a frame trained from scratch: frame 0 with the recipe scaled to each of ``--convergence-steps``
   (held-out PSNR along each run too); the converged step count is the smallest whose PSNR is within
   ``--converged-within`` dB of the longest run;
2. a converged from-scratch reference on the last ablation frame;
3. streaming variants, each from the same stored frame 0 (the converged one, except the frame-0 variant): today's
   old schedule, then one factor changed at a time (more full steps, no narrow band, no pilot, higher rates, no SH
   keep threshold, an unconverged frame 0), and the benchmark's schedule with one part of it undone.

Writes ``<output>/streamrf_ablations.json`` + ``.png``.

Scale (the paper: frame 0 128k steps x 5,000 rays at 128^3 -> 512^2x128, later frames 750 pilot + 500 full steps x
20,000 rays). Here: 64x48 pixels, a 24^3 -> 48^3 grid, 1,024 rays per step, StreamRF's thresholds, dilations, TV and
narrow band. Frame 0 and the from-scratch frames use the paper's frame-0 recipe with every step count and decay
length scaled by ``steps / 128000``. Later frames use :func:`per_frame_schedule`: far fewer steps per frame than the
paper's 750 + 500, so the per-frame learning rates are raised (measured in the ablations; README). Runs with
``--threads`` torch threads (default 1: the 2-core machine is shared).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import atomic_write  # noqa: E402

PAPER_FRAME0_STEPS = 128000
PAPER_LR_DECAY_STEPS = 250000
PAPER_LR_DELAY_STEPS = 15000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "bench_results")
    parser.add_argument("--ablations", action="store_true", help="run the convergence curve and the ablations")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--cameras", type=int, default=6, help="cameras including the held-out cam00")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--resolution", type=int, nargs=3, default=(48, 48, 48), help="streaming grid X Y Z")
    parser.add_argument("--rays", type=int, default=1024, help="rays per step, every phase")
    parser.add_argument("--frame0-steps", type=int, default=2000, help="frame 0 and every from-scratch frame")
    parser.add_argument("--pilot0-steps", type=int, default=150)
    # The per-frame schedule (defaults: the benchmark's schedule, see per_frame_schedule and the README).
    parser.add_argument("--pilot-steps", type=int, default=20)
    parser.add_argument("--full-steps", type=int, default=65)
    parser.add_argument("--lr-scale", type=float, default=1.0, help="per-frame rates (pilot and full) x this")
    parser.add_argument("--sh-keep-scale", type=float, default=0.5, help="SH keep thresholds x this")
    parser.add_argument("--scratch-frames", type=int, nargs="+", default=(29, 15))
    parser.add_argument("--keyframe-every", type=int, default=10)
    parser.add_argument("--ablation-frames", type=int, default=6, help="frames 0..N-1 in the ablation run")
    parser.add_argument("--convergence-steps", type=int, nargs="+", default=(500, 1000, 2000))
    parser.add_argument("--converged-within", type=float, default=0.2)
    parser.add_argument("--old-schedule", type=int, nargs=2, default=(40, 30), help="the previous pilot + full steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


# --- configuration -------------------------------------------------------------------------------------------


def frame0_schedule(steps: int) -> dict[str, Any]:
    """Frame 0's Plenoxels recipe (brief §1.2) with every step count scaled by ``steps / 128000``."""
    scale = steps / PAPER_FRAME0_STEPS
    return {
        "frame0_steps": steps,
        "frame0_upsample_every": max(1, steps * 3 // 10),  # svox2 upsamples at 30% / 60% of 128k
        "frame0_lr_decay_steps": max(1, round(PAPER_LR_DECAY_STEPS * scale)),
        "frame0_lr_density_delay_steps": max(1, round(PAPER_LR_DELAY_STEPS * scale)),
    }


def per_frame_schedule(pilot_steps: int, full_steps: int, lr_scale: float, sh_keep_scale: float) -> dict[str, Any]:
    """A later frame: ``pilot_steps`` + ``full_steps`` with the paper's N3DV rates times ``lr_scale`` (pilot SH
    1e-2 -> 1e-3 over all its steps, full SH 1e-2 -> 3e-3 over 3/5 of them, density 1.0; REPO README) and its SH keep
    thresholds (pilot 0.5, full 1.0) times ``sh_keep_scale``."""
    return {
        "pilot_steps": pilot_steps,
        "pilot_lr_sh_decay_steps": max(1, pilot_steps),
        "pilot_lr_density": 1.0 * lr_scale,
        "pilot_lr_sh": 1e-2 * lr_scale,
        "pilot_lr_sh_final": 1e-3 * lr_scale,
        "steps_per_frame": full_steps,
        "lr_sh_decay_steps": max(1, round(full_steps * 300 / 500)),
        "lr_density": 1.0 * lr_scale,
        "lr_sh": 1e-2 * lr_scale,
        "lr_sh_final": 3e-3 * lr_scale,
        "sh_keep_threshold": 1.0 * sh_keep_scale,
        "pilot_sh_keep_threshold": 0.5 * sh_keep_scale,
    }


def make_pipeline(args: argparse.Namespace, scene: Path, store: Path | None, overrides: dict[str, Any], frames: int):
    """The ``streamrf`` method's config at the benchmark's scale, ``overrides`` applied to the model config."""
    from nerfstudio_methods.streamrf.config import streamrf_n3dv_config

    config = streamrf_n3dv_config()
    config.machine.device_type = "cpu"
    pipeline = config.pipeline
    pipeline.frame_store = store
    pipeline.keyframe_every = args.keyframe_every
    datamanager = pipeline.datamanager
    datamanager.data = scene
    datamanager.dataparser.data = scene  # type: ignore[attr-defined]
    datamanager.dataparser.downscale_factor = 1  # type: ignore[attr-defined]
    datamanager.dataparser.num_frames = frames  # type: ignore[attr-defined]
    datamanager.train_num_rays_per_batch = args.rays
    datamanager.frame0_num_rays_per_batch = args.rays
    model = pipeline.model
    x, y, z = args.resolution
    model.frame0_resolutions = ((x // 2, y // 2, z // 2), (x, y, z))
    model.pilot_frame0_steps = args.pilot0_steps
    model.eval_num_rays_per_chunk = 8192
    for key, value in overrides.items():
        if not hasattr(model, key):
            raise ValueError(f"StreamRFModelConfig has no field {key!r}")
        setattr(model, key, value)
    built = pipeline.setup(device="cpu", test_mode="val")
    built.train()
    return built


def train_steps(pipeline, steps: int, on_step: Callable[[str, int], None] | None = None) -> None:
    for step in range(steps):
        if on_step is not None:
            on_step("before", step)
        _, loss_dict, _ = pipeline.get_train_loss_dict(step)
        loss = torch.stack(list(loss_dict.values())).sum()
        loss.backward()
        if on_step is not None:
            on_step("after", step)


def drive(pipeline, stop: Callable[[], bool] | None = None) -> float:
    """Run the pipeline's schedule through its own step callbacks (as ``ns-train`` does) until it is done or
    ``stop()``; returns the seconds."""
    begin = time.perf_counter()
    step = 0
    while not pipeline.done and not (stop is not None and stop()):
        pipeline.before_step(step)
        _, loss_dict, _ = pipeline.get_train_loss_dict(step)
        torch.stack(list(loss_dict.values())).sum().backward()
        pipeline.after_step(step)
        step += 1
    return time.perf_counter() - begin


def read_log(store: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (store / "log.jsonl").read_text().splitlines()]


def scratch_frame(pipeline, frame: int, steps: int, probe_every: int = 0) -> dict[str, Any]:
    """Train ``frame`` from scratch (frame 0's recipe) on a pipeline without a store; held-out PSNR at the end (and
    every ``probe_every`` steps, not counted in the time)."""
    from nerfstudio_methods.streamrf.codec import to_bytes
    from nerfstudio_methods.streamrf.model import Phase

    pipeline.datamanager.set_frame(frame)
    pipeline.datamanager.set_rays_per_batch(pipeline.datamanager.config.frame0_num_rays_per_batch)
    pipeline.model.start_phase(Phase.FRAME0, frame)
    curve: list[dict[str, float]] = []
    probe_seconds = 0.0

    def on_step(where: str, step: int) -> None:
        nonlocal probe_seconds
        if where != "after":
            return
        pipeline.model.optimizer_step()
        if probe_every and (step + 1) % probe_every == 0 and step + 1 < steps:
            begin = time.perf_counter()
            curve.append({"step": step + 1, "heldout_psnr": pipeline.heldout_psnr(frame)})
            probe_seconds += time.perf_counter() - begin

    begin, cpu_begin = time.perf_counter(), time.process_time()
    train_steps(pipeline, steps, on_step)
    record = pipeline.model.finish_phase()
    seconds = time.perf_counter() - begin - probe_seconds
    cpu_seconds = time.process_time() - cpu_begin - probe_seconds
    psnr = pipeline.heldout_psnr(frame)
    curve.append({"step": steps, "heldout_psnr": psnr})
    return {"frame": frame, "steps": steps, "seconds": seconds, "cpu_seconds": cpu_seconds, "heldout_psnr": psnr, "bytes": len(to_bytes(record)),
            "curve": curve}  # fmt: skip


def mean(values: list[float]) -> float:
    return sum(values) / max(len(values), 1)


def write_json(path: Path, report: dict[str, Any]) -> None:
    atomic_write(path, lambda temporary: temporary.write_text(json.dumps(report, indent=1)))


def setup(args: argparse.Namespace) -> tuple[Path, Path]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from nerfstudio_methods import compat

    compat.install()
    from nerfstudio_methods.scenegen.formats.n3dv import write_n3dv

    work = args.output / ("streamrf_ablation_work" if args.ablations else "streamrf_work")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    scene = work / "scene"
    write_n3dv(
        scene, width=args.width, height=args.height, num_cameras=args.cameras, num_frames=args.frames, seed=args.seed
    )
    print(f"[bench] scene: {args.cameras} cameras x {args.frames} frames of {args.width}x{args.height}", flush=True)
    return work, scene


def config_report(args: argparse.Namespace, schedule: dict[str, Any]) -> dict[str, Any]:
    return {
        **{
            key: (list(value) if isinstance(value, tuple) else value)
            for key, value in vars(args).items()
            if key != "output"
        },
        "output": str(args.output),
        "device": f"cpu, {args.threads} torch thread(s)",
        "frame0_schedule": frame0_schedule(args.frame0_steps),
        "per_frame_schedule": schedule,
        "paper_config": "frame 0: 128k steps x 5000 rays, 128^3 -> 512^2x128; per frame: 750 pilot + 500 full steps "
        "x 20000 rays, lr density 1.0, SH 1e-2 -> 3e-3 (pilot 1e-2 -> 1e-3)",
        "kept_from_paper": "RMSprop, keep/prune thresholds (unless sh_keep_scale != 1), dilations, narrow band, TV "
        "weights, stop threshold",
    }


# --- stream mode ---------------------------------------------------------------------------------------------


def run_stream(args: argparse.Namespace) -> None:
    from nerfstudio_methods.streamrf.store import FrameStore, GridPlayer

    started = time.perf_counter()
    work, scene = setup(args)
    schedule = per_frame_schedule(args.pilot_steps, args.full_steps, args.lr_scale, args.sh_keep_scale)
    overrides = {**frame0_schedule(args.frame0_steps), **schedule}

    # --- 1. streaming ----------------------------------------------------------------------------------------
    store_root = work / "streamrf_frames"
    stream = make_pipeline(args, scene, store_root, overrides, args.frames)
    stream_seconds = drive(stream)
    assert stream.done, "the schedule did not finish"
    state_bytes = grid_state_bytes(stream.model)
    log = read_log(store_root)
    full_store = FrameStore(store_root)
    frame_bytes = [full_store.frame_bytes(t) for t in range(args.frames)]
    pilot_bytes = [FrameStore(store_root / "pilot").frame_bytes(t) for t in range(args.frames)]
    spec = stream.model.full_spec
    dense_fp32_bytes = spec.num_voxels * 28 * 4
    print(f"[bench] streamed {args.frames} frames in {stream_seconds:.0f} s", flush=True)

    # --- 2. seeking --------------------------------------------------------------------------------------------
    last = args.frames - 1
    plain = work / "no_keyframes"
    plain.mkdir()
    for t in range(args.frames):
        shutil.copy(full_store.frame_path(t), plain / full_store.frame_path(t).name)
    seek = {}
    for name, root in (("with_keyframes", store_root), ("without_keyframes", plain)):
        player = GridPlayer(FrameStore(root))
        begin = time.perf_counter()
        player.grid(last)
        seek[name] = {"seconds": time.perf_counter() - begin, "deltas_replayed": player.deltas_applied}

    def write_report(scratch_results: list[dict[str, Any]]) -> None:
        report = stream_report(
            args, schedule, log, scratch_results, frame_bytes, pilot_bytes, dense_fp32_bytes, spec.num_voxels,
            stream_seconds, state_bytes, seek, started,
        )  # fmt: skip
        args.output.mkdir(parents=True, exist_ok=True)
        write_json(args.output / "streamrf_stream.json", report)
        plot_stream(report, args.output / "streamrf_stream.png")
        print(json.dumps(report["ratios"], indent=1), flush=True)

    # --- 3. per-frame from scratch (the report is rewritten after each frame) -----------------------------------
    write_report([])
    scratch = make_pipeline(args, scene, None, overrides, args.frames)
    scratch_results = []
    for frame in [f for f in args.scratch_frames if f < args.frames]:
        result = scratch_frame(scratch, frame, args.frame0_steps)
        scratch_results.append(result)
        print(
            f"[bench] scratch frame {frame}: {result['seconds']:.1f} s, PSNR {result['heldout_psnr']:.2f}", flush=True
        )
        write_report(scratch_results)
    print(f"[bench] wrote {args.output / 'streamrf_stream.json'} and streamrf_stream.png")


def stream_report(
    args: argparse.Namespace,
    schedule: dict[str, Any],
    log: list[dict[str, Any]],
    scratch_results: list[dict[str, Any]],
    frame_bytes: list[int],
    pilot_bytes: list[int],
    dense_fp32_bytes: int,
    num_voxels: int,
    stream_seconds: float,
    state_bytes: int,
    seek: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    # --- report ------------------------------------------------------------------------------------------------
    frame0 = log[0]
    later = [entry for entry in log if entry["frame"] > 0]
    mean_later = mean([e["seconds"] for e in later])
    mean_scratch = mean([r["seconds"] for r in scratch_results])
    # CPU seconds (one torch thread): robust to the shared machine's load, which wall-clock seconds follow.
    mean_later_cpu = mean([e["cpu_seconds"] for e in later])
    mean_scratch_cpu = mean([r["cpu_seconds"] for r in scratch_results])
    frame0_train = frame0["phases"]["frame0"]["seconds"]
    mean_delta = mean([float(b) for b in frame_bytes[1:]])
    stream_psnr = {e["frame"]: e["heldout_psnr"] for e in log}
    on_scratch_frames = [stream_psnr[r["frame"]] for r in scratch_results]
    scratch_psnr = [r["heldout_psnr"] for r in scratch_results]
    report: dict[str, Any] = {
        "config": config_report(args, schedule),
        "stream": {
            "total_seconds": stream_seconds,
            "frame0_seconds": frame0_train,
            "frame0_with_pilot_seconds": frame0["seconds"],
            "mean_seconds_frames_1plus": mean_later,
            "mean_cpu_seconds_frames_1plus": mean_later_cpu,
            "mean_full_pass_seconds_frames_1plus": mean([e["phases"]["full"]["seconds"] for e in later]),
            "mean_pilot_pass_seconds_frames_1plus": mean(
                [e["phases"].get("pilot", {}).get("seconds", 0.0) for e in later]
            ),
            "per_frame": [
                {
                    "frame": e["frame"],
                    "seconds": e["seconds"],
                    "cpu_seconds": e["cpu_seconds"],
                    "heldout_psnr": e["heldout_psnr"],
                    "bytes": frame_bytes[e["frame"]],
                    "pilot_bytes": pilot_bytes[e["frame"]],
                    **(
                        {"added": e["phases"]["full"]["added"], "changed": e["phases"]["full"]["changed"]}
                        if e["frame"]
                        else {}
                    ),
                    "occupied": e["phases"]["full" if e["frame"] else "frame0"]["occupied"],
                }
                for e in log
            ],
            "mean_heldout_psnr_all_frames": mean(list(stream_psnr.values())),
            "mean_heldout_psnr_frames_1plus": mean([stream_psnr[t] for t in stream_psnr if t > 0]),
            "mean_heldout_psnr_on_scratch_frames": mean(on_scratch_frames),
        },
        "scratch": {
            "frames": [r["frame"] for r in scratch_results],
            "steps": args.frame0_steps,
            "per_frame": scratch_results,
            "mean_seconds": mean_scratch if scratch_results else None,
            "mean_cpu_seconds": mean_scratch_cpu if scratch_results else None,
            "mean_heldout_psnr": mean(scratch_psnr) if scratch_results else None,
            "frames_planned": [f for f in args.scratch_frames if f < args.frames],
            "frame0_heldout_psnr": stream_psnr[0],
        },
        "ratios": {
            "scratch_over_stream_frame_time": mean_scratch / mean_later if scratch_results else None,
            "scratch_over_stream_frame_cpu_time": mean_scratch_cpu / mean_later_cpu if scratch_results else None,
            "frame0_over_stream_frame_time": frame0_train / mean_later,
            "paper_scratch_over_stream_frame_time": 23 * 60 / 15,
            "psnr_stream_minus_scratch_on_scratch_frames": mean(on_scratch_frames) - mean(scratch_psnr)
            if scratch_results
            else None,
            "psnr_stream_frames_1plus_minus_scratch_mean": mean([stream_psnr[t] for t in stream_psnr if t > 0])
            - mean(scratch_psnr)
            if scratch_results
            else None,
            "full_grid_compressed_over_delta": frame_bytes[0] / mean_delta,
            "full_grid_dense_fp32_over_delta": dense_fp32_bytes / mean_delta,
            "paper_full_grid_over_delta": 4106 / 17.7,
        },
        "storage": {
            "full_grid_compressed_bytes": frame_bytes[0],
            "full_grid_dense_fp32_bytes": dense_fp32_bytes,
            "mean_delta_bytes": mean_delta,
            "max_delta_bytes": max(frame_bytes[1:]),
            "pilot_mean_delta_bytes": mean([float(b) for b in pilot_bytes[1:]]),
            "grid_voxels": num_voxels,
        },
        "memory": {
            "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "grid_training_state_mb": state_bytes / 2**20,
        },
        "seek_to_last_frame": seek,
        "wall_seconds": time.perf_counter() - started,
    }
    return report


def grid_state_bytes(model) -> int:
    """Bytes of the grids' training state: values, gradient, RMS state and the previous frame's copy, both grids."""
    total = 0
    for grid in (model.full, model.pilot):
        if grid is not None:
            total += 4 * grid.values.numel() * 3 + grid.occupancy.numel()  # values, grad, rms
            total += 4 * grid.values.numel() + grid.occupancy.numel()  # snapshot of the previous frame
    return total


# --- ablation mode -------------------------------------------------------------------------------------------


def ablation_variants(args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any], str]]:
    """(name, what changes, model overrides, frame-0 base: "converged" or "short")."""
    pilot, full = args.old_schedule  # the previous benchmark's schedule: paper rates, 40 + 30 steps
    old = per_frame_schedule(pilot, full, 1.0, 1.0)
    new = per_frame_schedule(args.pilot_steps, args.full_steps, args.lr_scale, args.sh_keep_scale)
    old_more = per_frame_schedule(pilot, 4 * full, 1.0, 1.0)
    return [
        ("old", f"previous schedule: {pilot} pilot + {full} full steps, paper rates", old, "converged"),
        ("old_full_x4", f"old, {4 * full} full steps", old_more, "converged"),
        ("old_no_band", "old, no narrow band (whole occupied grid trainable)", {**old, "narrow_band": False}, "converged"),
        ("old_no_pilot", "old, no pilot (no pilot mask, no pilot init)", {**old, "use_pilot": False}, "converged"),
        ("old_lr_x5", "old, per-frame rates x5", per_frame_schedule(pilot, full, 5.0, 1.0), "converged"),
        ("old_no_keep", "old, SH keep thresholds 0 (every change stored)", per_frame_schedule(pilot, full, 1.0, 0.0), "converged"),
        ("old_short_frame0", f"old, frame 0 at {min(args.convergence_steps)} steps", old, "short"),
        ("new", "this benchmark's schedule", new, "converged"),
        ("new_x2_steps", "this schedule with twice the steps", per_frame_schedule(2 * args.pilot_steps, 2 * args.full_steps, args.lr_scale, args.sh_keep_scale), "converged"),
        ("new_no_pilot", "this schedule without the pilot", {**new, "use_pilot": False}, "converged"),
        ("new_paper_keep", "this schedule with the paper's SH keep thresholds", {**new, **per_frame_schedule(args.pilot_steps, args.full_steps, args.lr_scale, 1.0)}, "converged"),
    ]  # fmt: skip


def run_ablations(args: argparse.Namespace) -> None:
    from nerfstudio_methods.streamrf.store import FrameStore

    started = time.perf_counter()
    work, scene = setup(args)
    frames = args.ablation_frames
    new = per_frame_schedule(args.pilot_steps, args.full_steps, args.lr_scale, args.sh_keep_scale)
    report: dict[str, Any] = {"config": config_report(args, new), "frames": frames}
    path = args.output / "streamrf_ablations.json"

    # --- 1. convergence of frame 0 from scratch (each run is also a frame-0 base for the streams) -------------
    convergence = []
    bases: dict[int, Path] = {}
    for steps in sorted(args.convergence_steps):
        store = work / f"frame0_{steps}"
        pipeline = make_pipeline(args, scene, store, frame0_schedule(steps), frames)
        curve: list[dict[str, float]] = []
        probe_seconds = 0.0
        probe_every = max(1, steps // 4)
        original_after = pipeline.after_step

        def after(step: int, pipeline=pipeline, curve=curve, probe_every=probe_every, original=original_after) -> None:
            nonlocal probe_seconds
            original(step)
            model = pipeline.model
            if model.phase is not None and model.phase.value == "frame0" and model.phase_step % probe_every == 0:
                begin = time.perf_counter()
                curve.append({"step": model.phase_step, "heldout_psnr": pipeline.heldout_psnr(0)})
                probe_seconds += time.perf_counter() - begin

        pipeline.after_step = after  # type: ignore[method-assign]
        drive(pipeline, stop=lambda pipeline=pipeline: pipeline.model.finished_frames >= 1)
        entry = read_log(store)[0]
        curve.append({"step": steps, "heldout_psnr": entry["heldout_psnr"]})
        convergence.append(
            {"steps": steps, "seconds": entry["phases"]["frame0"]["seconds"] - probe_seconds,
             "heldout_psnr": entry["heldout_psnr"], "curve": curve}
        )  # fmt: skip
        bases[steps] = store
        print(f"[bench] frame 0 from scratch, {steps} steps: PSNR {entry['heldout_psnr']:.2f}", flush=True)
        report["convergence"] = convergence
        write_json(path, report)
    best = convergence[-1]["heldout_psnr"]
    converged = next(c["steps"] for c in convergence if c["heldout_psnr"] >= best - args.converged_within)
    report["converged_steps"] = converged
    report["converged_rule"] = f"fewest steps within {args.converged_within} dB of the longest run"

    # --- 2. from-scratch reference on the last ablation frame --------------------------------------------------
    scratch = make_pipeline(args, scene, None, frame0_schedule(converged), frames)
    reference = scratch_frame(scratch, frames - 1, converged)
    report["scratch_reference"] = reference
    print(f"[bench] frame {frames - 1} from scratch: PSNR {reference['heldout_psnr']:.2f}", flush=True)

    # --- 3. streaming variants from a shared frame 0 ----------------------------------------------------------
    variants = []
    for name, what, overrides, base in ablation_variants(args):
        base_steps = converged if base == "converged" else min(args.convergence_steps)
        store = work / f"variant_{name}"
        FrameStore(store).copy_finished_from(FrameStore(bases[base_steps]))
        (store / "log.jsonl").unlink(missing_ok=True)
        pipeline = make_pipeline(args, scene, store, {**frame0_schedule(base_steps), **overrides}, frames)
        seconds = drive(pipeline)
        log = read_log(store)
        psnr = [e["heldout_psnr"] for e in log]
        variants.append(
            {
                "name": name,
                "change": what,
                "frame0_steps": base_steps,
                "overrides": overrides,
                "seconds": seconds,
                "mean_seconds_per_frame": mean([e["seconds"] for e in log]),
                "mean_full_pass_seconds": mean([e["phases"]["full"]["seconds"] for e in log]),
                "heldout_psnr_per_frame": psnr,
                "mean_heldout_psnr": mean(psnr),
                "last_frame_psnr_minus_scratch": psnr[-1] - reference["heldout_psnr"],
                "mean_delta_bytes": mean([float(e["bytes"]) for e in log]),
            }
        )
        print(
            f"[bench] {name}: mean PSNR frames 1-{frames - 1} {mean(psnr):.2f}, last {psnr[-1]:.2f} "
            f"(scratch {reference['heldout_psnr']:.2f}), {mean([e['seconds'] for e in log]):.1f} s/frame",
            flush=True,
        )
        report["variants"] = variants
        write_json(path, report)
    report["wall_seconds"] = time.perf_counter() - started
    write_json(path, report)
    plot_ablations(report, args.output / "streamrf_ablations.png")
    print(f"[bench] wrote {path} in {report['wall_seconds']:.0f} s")


# --- plots ---------------------------------------------------------------------------------------------------


def plot_stream(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stream = report["stream"]["per_frame"]
    scratch = report["scratch"]["per_frame"]
    frames = [e["frame"] for e in stream]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].bar(frames, [e["seconds"] for e in stream], label="StreamRF (frame 0: from scratch + pilot)")
    axes[0].scatter(
        [r["frame"] for r in scratch], [r["seconds"] for r in scratch], color="C3", label="from scratch", zorder=3
    )
    axes[0].set(xlabel="frame", ylabel="training seconds", yscale="log", title="training time per frame")
    axes[1].plot(frames, [e["heldout_psnr"] for e in stream], marker="o", label="StreamRF")
    axes[1].scatter(
        [r["frame"] for r in scratch], [r["heldout_psnr"] for r in scratch], color="C3", label="from scratch", zorder=3
    )
    axes[1].set(xlabel="frame", ylabel="held-out PSNR (dB)", title="cam00 PSNR per frame")
    storage = report["storage"]
    axes[2].bar(frames, [e["bytes"] / 1024 for e in stream], label="stored per frame")
    axes[2].axhline(storage["full_grid_dense_fp32_bytes"] / 1024, color="C3", label="dense fp32 grid")
    axes[2].set(xlabel="frame", ylabel="KB", yscale="log", title="storage per frame")
    for axis in axes:
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def plot_ablations(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for run in report["convergence"]:
        axes[0].plot(
            [p["step"] for p in run["curve"]], [p["heldout_psnr"] for p in run["curve"]], marker="o",
            label=f"schedule of {run['steps']} steps",
        )  # fmt: skip
    axes[0].set(xlabel="step", ylabel="held-out PSNR (dB)", title="frame 0 from scratch")
    for run in report["variants"]:
        psnr = run["heldout_psnr_per_frame"]
        axes[1].plot(range(1, len(psnr) + 1), psnr, marker=".", label=run["name"])
    reference = report["scratch_reference"]
    axes[1].scatter([reference["frame"]], [reference["heldout_psnr"]], color="k", zorder=3, label="from scratch")
    axes[1].set(xlabel="frame", ylabel="held-out PSNR (dB)", title="streamed variants")
    for axis in axes:
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    args = parse_args()
    if args.ablations:
        run_ablations(args)
    else:
        run_stream(args)


if __name__ == "__main__":
    main()
