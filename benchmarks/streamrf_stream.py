"""StreamRF streaming against per-frame training from scratch, on a generated multi-view video (N3DV layout).

One process, in this order:

1. writes a generated N3DV scene (``nerfstudio-methods-scene``'s n3dv writer: ``--cameras`` cameras, cam00 held out, a
   moving and a circling object in a static forward-facing scene, ``--frames`` frames);
2. **streams** the whole video with the ``streamrf`` pipeline (frame 0 from scratch, then pilot + narrow-band
   full pass per frame, deltas written to a frame store), driving the pipeline's own per-step callbacks as
   ``ns-train`` does;
3. trains **from scratch** on a subset of frames with the same grid and frame 0's recipe (Plenoxels per frame);
4. measures seeking (replaying deltas, with and without keyframes).

Reported (``<output>/streamrf_stream.json`` + ``streamrf_stream.png``): per-frame training time of frames 1+ vs
frame 0 and vs from-scratch frames, held-out (cam00) PSNR per frame for both, storage per frame vs one full grid
(compressed as our frame 0, and dense fp32 as Plenoxels holds it), process peak memory and the grids' state size.

Scaled-down CPU configuration (the paper: 128k frame-0 steps, 750 pilot + 500 full steps per frame at 512^2x128,
5,000 / 20,000 rays): see ``--help`` and the JSON's "config"; StreamRF's learning rates, thresholds and dilations
are kept, iteration counts and lr-decay lengths are scaled down. Runs single-threaded (``torch.set_num_threads(1)``),
since the 2-core machine is shared.

Usage: ``python benchmarks/streamrf_stream.py [--frames 30] [--output bench_results]``
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "bench_results")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--cameras", type=int, default=6, help="cameras including the held-out cam00")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--resolution", type=int, nargs=3, default=(32, 32, 32), help="streaming grid X Y Z")
    parser.add_argument("--frame0-steps", type=int, default=500)
    parser.add_argument("--pilot0-steps", type=int, default=150)
    parser.add_argument("--pilot-steps", type=int, default=40)
    parser.add_argument("--full-steps", type=int, default=30)
    parser.add_argument("--rays", type=int, default=1024, help="rays per step, every phase")
    parser.add_argument("--scratch-frames", type=int, nargs="+", default=(10, 20, 29))
    parser.add_argument("--keyframe-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def make_config(args: argparse.Namespace, scene: Path, store: Path | None):
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
    datamanager.train_num_rays_per_batch = args.rays
    datamanager.frame0_num_rays_per_batch = args.rays
    model = pipeline.model
    x, y, z = args.resolution
    model.frame0_resolutions = ((x // 2, y // 2, z // 2), (x, y, z))
    model.frame0_upsample_every = max(1, args.frame0_steps * 3 // 10)  # svox2 upsamples at 30% / 60% of 128k
    scale = args.frame0_steps / 128000
    model.frame0_steps = args.frame0_steps
    model.frame0_lr_decay_steps = max(1, round(250000 * scale))
    model.frame0_lr_density_delay_steps = max(1, round(15000 * scale))
    model.pilot_frame0_steps = args.pilot0_steps
    model.pilot_steps = args.pilot_steps
    model.pilot_lr_sh_decay_steps = args.pilot_steps  # 750 over 750
    model.steps_per_frame = args.full_steps
    model.lr_sh_decay_steps = max(1, round(args.full_steps * 300 / 500))  # 300 of 500
    model.eval_num_rays_per_chunk = 8192
    return config


def train_steps(pipeline, steps: int, on_step=None) -> None:
    for step in range(steps):
        if on_step is not None:
            on_step("before", step)
        _, loss_dict, _ = pipeline.get_train_loss_dict(step)
        loss = torch.stack(list(loss_dict.values())).sum()
        loss.backward()
        if on_step is not None:
            on_step("after", step)


def grid_state_bytes(model) -> int:
    """Bytes of the grids' training state: values, gradient, RMS state and the previous frame's copy, both grids."""
    total = 0
    for grid in (model.full, model.pilot):
        if grid is not None:
            total += 4 * grid.values.numel() * 3 + grid.occupancy.numel()  # values, grad, rms
            total += 4 * grid.values.numel() + grid.occupancy.numel()  # snapshot of the previous frame
    return total


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    from nerfstudio_methods import compat

    compat.install()
    from nerfstudio_methods.scenegen.formats.n3dv import write_n3dv
    from nerfstudio_methods.streamrf.codec import to_bytes
    from nerfstudio_methods.streamrf.model import Phase
    from nerfstudio_methods.streamrf.store import FrameStore, GridPlayer

    output = args.output
    work = output / "streamrf_work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    scene = work / "scene"
    started = time.perf_counter()
    write_n3dv(
        scene, width=args.width, height=args.height, num_cameras=args.cameras, num_frames=args.frames, seed=args.seed
    )
    print(f"[bench] scene: {args.cameras} cameras x {args.frames} frames of {args.width}x{args.height}", flush=True)

    # --- 1. streaming ----------------------------------------------------------------------------------------
    store_root = work / "streamrf_frames"
    stream = make_config(args, scene, store_root).pipeline.setup(device="cpu", test_mode="val")
    stream.train()
    total_steps = stream.remaining_steps()

    def on_step(where: str, step: int) -> None:
        (stream.before_step if where == "before" else stream.after_step)(step)

    stream_started = time.perf_counter()
    train_steps(stream, total_steps, on_step)
    stream_seconds = time.perf_counter() - stream_started
    assert stream.done, "the schedule did not finish"
    state_bytes = grid_state_bytes(stream.model)
    log = [json.loads(line) for line in (store_root / "log.jsonl").read_text().splitlines()]
    full_store = FrameStore(store_root)
    frame_bytes = [full_store.frame_bytes(t) for t in range(args.frames)]
    pilot_bytes = [FrameStore(store_root / "pilot").frame_bytes(t) for t in range(args.frames)]
    spec = stream.model.full_spec
    dense_fp32_bytes = spec.num_voxels * 28 * 4
    print(f"[bench] streamed {args.frames} frames in {stream_seconds:.0f} s", flush=True)

    # --- 2. per-frame from scratch ----------------------------------------------------------------------------
    scratch = make_config(args, scene, None).pipeline.setup(device="cpu", test_mode="val")
    scratch.train()
    scratch_results = []
    for frame in [f for f in args.scratch_frames if f < args.frames]:
        scratch.datamanager.set_frame(frame)
        scratch.datamanager.set_rays_per_batch(args.rays)
        scratch.model.start_phase(Phase.FRAME0, frame)
        begin = time.perf_counter()

        def scratch_step(where: str, step: int) -> None:
            if where == "after":
                scratch.model.optimizer_step()

        train_steps(scratch, args.frame0_steps, scratch_step)
        record = scratch.model.finish_phase()
        seconds = time.perf_counter() - begin
        psnr = scratch.heldout_psnr(frame)
        scratch_results.append(
            {"frame": frame, "seconds": seconds, "heldout_psnr": psnr, "bytes": len(to_bytes(record))}
        )
        print(f"[bench] scratch frame {frame}: {seconds:.1f} s, PSNR {psnr:.2f}", flush=True)

    # --- 3. seeking --------------------------------------------------------------------------------------------
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

    # --- report ------------------------------------------------------------------------------------------------
    frame0 = log[0]
    later = [entry for entry in log if entry["frame"] > 0]
    mean_later = sum(e["seconds"] for e in later) / max(len(later), 1)
    mean_scratch = sum(r["seconds"] for r in scratch_results) / max(len(scratch_results), 1)
    frame0_train = frame0["phases"]["frame0"]["seconds"]
    mean_delta = sum(frame_bytes[1:]) / max(len(frame_bytes) - 1, 1)
    stream_psnr = {e["frame"]: e["heldout_psnr"] for e in log}
    report: dict[str, Any] = {
        "config": {
            **{
                key: (list(value) if isinstance(value, tuple) else value)
                for key, value in vars(args).items()
                if key != "output"
            },
            "output": str(output),
            "device": "cpu, 1 thread",
            "paper_config": "frame 0: 128k steps x 5000 rays, 128^3 -> 512^2x128; per frame: 750 pilot + 500 full steps x 20000 rays",
            "kept_from_paper": "learning rates, RMSprop, keep/prune thresholds, dilations, narrow band, TV weights, stop threshold",
        },
        "stream": {
            "total_seconds": stream_seconds,
            "frame0_seconds": frame0_train,
            "frame0_with_pilot_seconds": frame0["seconds"],
            "mean_seconds_frames_1plus": mean_later,
            "per_frame": [
                {
                    "frame": e["frame"],
                    "seconds": e["seconds"],
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
            "mean_heldout_psnr": sum(stream_psnr.values()) / len(stream_psnr),
        },
        "scratch": {"per_frame": scratch_results, "mean_seconds": mean_scratch},
        "ratios": {
            "frame0_over_frame": frame0_train / mean_later,
            "scratch_over_stream_frame": mean_scratch / mean_later,
            "paper_scratch_over_stream_frame": 23 * 60 / 15,
            "full_grid_compressed_over_delta": frame_bytes[0] / mean_delta,
            "full_grid_dense_fp32_over_delta": dense_fp32_bytes / mean_delta,
            "paper_full_grid_over_delta": 4106 / 17.7,
            "psnr_stream_minus_scratch_on_scratch_frames": sum(
                stream_psnr[r["frame"]] - r["heldout_psnr"] for r in scratch_results
            )
            / max(len(scratch_results), 1),
        },
        "storage": {
            "full_grid_compressed_bytes": frame_bytes[0],
            "full_grid_dense_fp32_bytes": dense_fp32_bytes,
            "mean_delta_bytes": mean_delta,
            "pilot_mean_delta_bytes": sum(pilot_bytes[1:]) / max(len(pilot_bytes) - 1, 1),
            "grid_voxels": spec.num_voxels,
        },
        "memory": {
            "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "grid_training_state_mb": state_bytes / 2**20,
        },
        "seek_to_last_frame": seek,
        "wall_seconds": time.perf_counter() - started,
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "streamrf_stream.json").write_text(json.dumps(report, indent=1))
    plot(report, output / "streamrf_stream.png")
    print(json.dumps(report["ratios"], indent=1))
    print(f"[bench] wrote {output / 'streamrf_stream.json'} and streamrf_stream.png in {report['wall_seconds']:.0f} s")


def plot(report: dict[str, Any], path: Path) -> None:
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


if __name__ == "__main__":
    main()
