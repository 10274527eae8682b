"""StreamRF's sparse grid: training memory at N3DV and Meet Room scale, delta size, and speed against the dense grid.

Three parts, one JSON (``<output>/streamrf_memory.json``):

1. **memory** (``--parts memory``): for N3DV's 512x512x128 and Meet Room's 768x768x128 grids, a fresh child process
   builds the state a later frame trains with and runs the real model code on it: the previous frame's full grid
   (a surface layer whose occupancy, after the frame's dilation, is ``--occupied`` = 15% of the voxels, random
   values), the pilot grid resampled from it at half resolution, a pilot pass (start, one step, delta), the full
   pass's start (snapshot, dilation, narrow band, pilot guidance), **one full-pass training step** (``--rays``
   rays, 20,000 as the paper: render, MSE + both TVs, backward, masked RMSprop; the pilot's keep threshold is set
   to 0 so that every voxel its step moved is trained by the full pass) and the end of the frame
   (re-sparsify, prune, delta). Also frame 0's upsampling from 256x256x128 to the full grid.
   How it is measured: the child's resident set size (``VmRSS``) after importing torch and building a tiny model is
   the baseline; before each stage the kernel's peak counter is reset (``/proc/self/clear_refs`` = 5) and after it
   ``VmHWM`` - baseline is that stage's peak. It counts everything the process holds (values, RMS state, gradients,
   index grid, masks, previous-frame copy, pilot grid, the step's temporaries, allocator slack). The tensor sizes of
   the state are listed too. The dense grid's needs are computed, not allocated (28 fp32 channels x voxels for
   values, gradient, RMS state and the previous frame's copy, plus the pilot grid the same way).
2. **delta** (``--parts delta``): a generated N3DV video (``--cameras`` cameras, cam00 held out, 64x48, 30
   frames written, the first ``--frames`` streamed), the ``streamrf`` pipeline with a ``--resolution`` grid after
   frame 0, then each ``--schedules`` per-frame schedule from that same frame 0 (a copy of the frame store, resumed);
   per frame the stored delta's bytes against one dense fp32 grid, and what the delta is made of (occupied and
   stored fractions, bytes per stored voxel, each array's raw size).
3. **speed** (``--parts speed``): on the grid the delta part trained, sparse and dense storage side by side in this
   process: seconds per training step of a full pass (narrow band), a pilot pass and a frame-0 step on a fully
   occupied grid, ``--rays`` rays each, the same ray batches for both, interleaved rounds, median.

Usage: ``python benchmarks/streamrf_memory.py [--threads 2] [--output bench_results]``

``--smoke`` runs the three parts at a tiny size (``smoke_settings``: the memory part on a 32x32x16 grid with 256
rays, the delta part on 4 cameras x 3 frames with a 16^3 grid, 40 frame-0 steps and two short schedules, the speed
part with 256 rays, one round of 2 steps), into a temporary folder unless ``--output`` is given: a check that the
benchmark still runs, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import atomic_write  # noqa: E402

GB = 1e9
SIZES = {"n3dv": ((512, 512, 128), 3.0), "meetroom": ((768, 768, 128), 6.0)}
"""Grid (X, Y, Z) and the issue's memory bound in GB."""
SMOKE_SIZES = {"smoke": ((32, 32, 16), 1.0)}
"""``--smoke``'s memory part: a tiny grid (not reported by a full run)."""
N3DV_INTRINSICS = (1460.0, 1460.0, 1352.0, 1014.0)
"""fx, fy, W, H of an N3DV camera at StreamRF's half resolution (the NDC box depends only on their ratios)."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", type=Path, default=None, help="results folder (bench_results)")
    parser.add_argument(
        "--parts", nargs="+", default=("memory", "delta", "speed"), choices=("memory", "delta", "speed")
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--occupied", type=float, default=0.15, help="occupied fraction of the trained grid")
    parser.add_argument("--rays", type=int, default=20000, help="rays of the memory part's step (paper: 20,000)")
    parser.add_argument("--sizes", nargs="+", default=tuple(SIZES), choices=tuple(SIZES | SMOKE_SIZES))
    # delta and speed
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--frames", type=int, default=6, help="frames streamed (of 30 generated)")
    parser.add_argument("--resolution", type=int, nargs=3, default=(48, 48, 48))
    parser.add_argument("--frame0-steps", type=int, default=500)
    parser.add_argument("--pilot0-steps", type=int, default=150)
    parser.add_argument(
        "--schedules",
        nargs="+",
        default=("40:30:1", "30:45:5"),
        help="per-frame schedules PILOT_STEPS:FULL_STEPS:LR_SCALE[:KEEP] streamed from the same frame 0 (the paper's "
        "rates x LR_SCALE, SH keep thresholds x KEEP, default 1); the first also times the speed part. Defaults: the "
        "stream benchmark's former schedule and its current candidate",
    )
    parser.add_argument(
        "--reuse-frame0", action="store_true", help="stream the schedules from the frame 0 of the previous run's store"
    )
    parser.add_argument("--speed-rays", type=int, default=1024)
    parser.add_argument("--speed-steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--speed-rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=tuple(SIZES | SMOKE_SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="a tiny run of every part, to a temporary folder")
    args = parser.parse_args()
    if args.smoke:
        for key, value in smoke_settings().items():
            setattr(args, key, value)
    if args.output is None:
        args.output = Path(tempfile.mkdtemp(prefix="streamrf_memory_smoke_")) if args.smoke else REPO / "bench_results"
    return args


def smoke_settings() -> dict[str, Any]:
    """``--smoke``: every part at a tiny size (see the module doc)."""
    return {
        "sizes": tuple(SMOKE_SIZES),
        "rays": 256,
        "cameras": 4,
        "frames": 3,
        "resolution": (16, 16, 16),
        "frame0_steps": 40,
        "pilot0_steps": 8,
        "schedules": ("4:6:1", "3:5:5:0.5"),
        "speed_rays": 256,
        "speed_steps": 2,
        "speed_rounds": 1,
    }


# --------------------------------------------------------------------------------------------------- memory (child)


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


class PeakMeter:
    """Peak resident memory of stages, above a baseline (see the module doc)."""

    def __init__(self) -> None:
        self.baseline = rss_kb("VmRSS") * 1024
        self.stages: dict[str, dict[str, float]] = {}

    def run(self, name: str, work):
        Path("/proc/self/clear_refs").write_text("5")
        begin = time.perf_counter()
        result = work()
        self.stages[name] = {
            "peak_gb": (rss_kb("VmHWM") * 1024 - self.baseline) / GB,
            "after_gb": (rss_kb("VmRSS") * 1024 - self.baseline) / GB,
            "seconds": time.perf_counter() - begin,
        }
        print(f"[memory] {name}: peak {self.stages[name]['peak_gb']:.2f} GB above baseline", flush=True)
        return result


def surface_occupancy(shape: tuple[int, int, int], thickness: int) -> torch.Tensor:
    """A forward-facing scene's occupied voxels: a wavy surface layer ``thickness`` voxels deep along z."""
    depth, height, width = shape
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    top = (depth * (0.35 + 0.2 * torch.sin(2 * math.pi * 2 * x) * torch.cos(2 * math.pi * 3 * y))).long()
    z = torch.arange(depth)[:, None, None]
    return (z >= top) & (z < top + thickness)


def make_model(resolution: tuple[int, int, int], **overrides: Any):
    from nerfstudio.data.scene_box import SceneBox

    from nerfstudio_methods.streamrf.model import StreamRFModelConfig

    frame0 = ((resolution[0] // 2, resolution[1] // 2, resolution[2]), tuple(resolution))
    config = StreamRFModelConfig(frame0_resolutions=frame0, **overrides)  # type: ignore[arg-type]
    metadata = {"ndc_intrinsics": torch.tensor(N3DV_INTRINSICS), "num_frames": 3}
    return config.setup(scene_box=SceneBox(torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=1, metadata=metadata)


def camera_rays(count: int, generator: torch.Generator):
    """Rays of random pixels of a camera at the origin looking down -z (OpenGL), as the n3dv parser's cameras."""
    from nerfstudio.cameras.rays import RayBundle

    fx, fy, width, height = N3DV_INTRINSICS
    u = torch.rand(count, generator=generator) * width
    v = torch.rand(count, generator=generator) * height
    directions = torch.stack([(u - width / 2) / fx, -(v - height / 2) / fy, -torch.ones(count)], -1)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return RayBundle(
        origins=torch.zeros(count, 3),
        directions=directions,
        pixel_area=torch.ones(count, 1),
        times=torch.zeros(count, 1),
    )


def tensor_bytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def memory_child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One grid size in this (fresh) process; see the module doc."""
    torch.set_num_threads(args.threads)
    from nerfstudio_methods import compat

    compat.install()
    from nerfstudio_methods.streamrf import masks
    from nerfstudio_methods.streamrf.grid import GRID_CHANNELS, SparseGrid, resample
    from nerfstudio_methods.streamrf.model import Phase

    resolution, bound = (SIZES | SMOKE_SIZES)[name]
    # keep threshold 0: every voxel the pilot's step moved counts as changed, so the full pass trains all of them
    # that lie in the narrow band (more than a real frame, where most pilot changes are reverted)
    model = make_model(resolution, pilot_sh_keep_threshold=0.0)
    model.train()
    spec, pilot_spec = model.full_spec, model.pilot_spec
    config = model.config
    # the surface's depth such that the trained (dilated) grid has the requested occupied fraction
    thickness = 1
    while masks.dilate(surface_occupancy(spec.shape, thickness), config.dilate_before).float().mean() < args.occupied:
        thickness += 1
    generator = torch.Generator().manual_seed(args.seed)
    image = torch.rand(args.rays, 3, generator=generator)
    rays = camera_rays(args.rays, generator)
    meter = PeakMeter()

    def build_previous_frame():
        occupancy = surface_occupancy(spec.shape, thickness)
        count = int(occupancy.sum())
        data = torch.randn(count, GRID_CHANNELS, generator=generator) * 0.3
        data[:, 0] = 10.0 + 20.0 * torch.rand(count, generator=generator)
        data = data.half().float()  # a stored frame's values (fp16, as the codec keeps them)
        full = SparseGrid(spec, data, occupancy)
        pilot = resample(full, pilot_spec, config.density_threshold, config.pilot_dilate_after)
        model.restore((full.data, full.occupancy), (pilot.data.half().float(), pilot.occupancy), 1)

    def step() -> None:
        outputs = model.get_outputs(rays)
        losses = model.get_loss_dict(outputs, {"image": image})
        torch.stack(list(losses.values())).sum().backward()
        model.optimizer_step()

    def pilot_pass() -> None:
        model.start_phase(Phase.PILOT, 1)
        step()
        model.finish_phase()

    meter.run("previous_frame_and_pilot_grid", build_previous_frame)
    meter.run("pilot_pass", pilot_pass)
    meter.run("full_pass_start", lambda: model.start_phase(Phase.FULL, 1))
    meter.run("full_pass_step", step)
    full, pilot = model.full, model.pilot
    assert full is not None and pilot is not None and model.previous is not None
    occupied = int(full.occupancy.sum())
    state = {
        "values": tensor_bytes(full.values),
        "rms_state": tensor_bytes(full.optimizer.rms),  # type: ignore[union-attr]
        "index_grid_links": tensor_bytes(full.grid.links),  # type: ignore[union-attr]
        "occupancy": tensor_bytes(full.occupancy),
        "update_mask_and_rows": tensor_bytes(model.update_mask, model.allowed),
        "previous_frame_copy": tensor_bytes(*model.previous),
        "pilot_grid": tensor_bytes(pilot.values, pilot.grid.links, pilot.occupancy),  # type: ignore[union-attr]
    }
    meter.run("full_pass_second_step", step)
    meter.run("full_pass_end_and_delta", model.finish_phase)

    def frame0_upsample() -> None:
        low_spec = model.frame0_specs[0]
        low = surface_occupancy(low_spec.shape, thickness)
        data = torch.randn(int(low.sum()), GRID_CHANNELS, generator=generator)
        data[:, 0] = 10.0
        upsampled = resample(SparseGrid(low_spec, data, low), spec, config.density_threshold, config.frame0_dilation)
        print(f"[memory] frame-0 upsampling kept {upsampled.num_occupied / spec.num_voxels:.1%} of the voxels")

    model.full = model.pilot = None
    model.previous = None
    meter.run("frame0_upsampling_to_full", frame0_upsample)
    voxels, pilot_voxels = spec.num_voxels, pilot_spec.num_voxels
    dense_per_copy = voxels * GRID_CHANNELS * 4
    dense = {
        "values_gradient_rms_previous": 4 * dense_per_copy,
        "pilot_values_gradient_rms_previous": 4 * pilot_voxels * GRID_CHANNELS * 4,
        "occupancy_masks": 3 * voxels,
    }
    return {
        "grid": list(resolution),
        "voxels": voxels,
        "occupied_voxels": occupied,
        "occupied_fraction": occupied / voxels,
        "surface_thickness_voxels": thickness,
        "frame0_upsampling_from": list(model.frame0_specs[0].resolution),
        "rays_per_step": args.rays,
        "threads": args.threads,
        "baseline_rss_gb": meter.baseline / GB,
        "stages": meter.stages,
        "one_step_peak_gb": max(
            meter.stages["full_pass_step"]["peak_gb"], meter.stages["full_pass_second_step"]["peak_gb"]
        ),
        "bound_gb": bound,
        "within_bound": max(s["peak_gb"] for s in meter.stages.values()) <= bound,
        "state_tensors_gb": {key: value / GB for key, value in state.items()},
        "state_tensors_total_gb": sum(state.values()) / GB,
        "dense_grid_needs_gb": {key: value / GB for key, value in dense.items()},
        "dense_grid_total_gb": sum(dense.values()) / GB,
        "process_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB,
    }


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    results = {}
    for name in args.sizes:
        command = [sys.executable, __file__, "--child", name, "--threads", str(args.threads),
                   "--occupied", str(args.occupied), "--rays", str(args.rays), "--seed", str(args.seed),
                   "--output", str(args.output)]  # fmt: skip
        print(f"[memory] {name}: {' '.join(command[1:])}", flush=True)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        sys.stdout.write(result.stdout)
        if result.returncode != 0:
            results[name] = {"error": result.stderr[-3000:]}
            print(result.stderr[-3000:], flush=True)
            continue
        results[name] = json.loads(result.stdout.strip().splitlines()[-1])
    return results


# --------------------------------------------------------------------------------------------------- delta and speed


def parse_schedule(text: str) -> tuple[int, int, float, float]:
    pilot, full, scale, *keep = text.split(":")
    return int(pilot), int(full), float(scale), float(keep[0]) if keep else 1.0


def make_pipeline_config(
    args: argparse.Namespace, scene: Path, store: Path | None, schedule: str, storage: str = "sparse"
):
    from nerfstudio_methods.streamrf.config import streamrf_n3dv_config

    config = streamrf_n3dv_config()
    config.machine.device_type = "cpu"
    pipeline = config.pipeline
    pipeline.frame_store = store
    pipeline.keyframe_every = 0
    pipeline.heldout_psnr_per_frame = False
    datamanager = pipeline.datamanager
    datamanager.data = scene
    datamanager.dataparser.data = scene  # type: ignore[attr-defined]
    datamanager.dataparser.downscale_factor = 1  # type: ignore[attr-defined]
    datamanager.dataparser.num_frames = args.frames  # type: ignore[attr-defined]
    datamanager.train_num_rays_per_batch = args.speed_rays
    datamanager.frame0_num_rays_per_batch = args.speed_rays
    model = pipeline.model
    model.grid_storage = storage  # type: ignore[assignment]
    x, y, z = args.resolution
    model.frame0_resolutions = ((x // 2, y // 2, z // 2), (x, y, z))
    # the stream benchmark's scaled-down schedule (benchmarks/streamrf_stream.py)
    model.frame0_upsample_every = max(1, args.frame0_steps * 3 // 10)
    scale = args.frame0_steps / 128000
    model.frame0_steps = args.frame0_steps
    model.frame0_lr_decay_steps = max(1, round(250000 * scale))
    model.frame0_lr_density_delay_steps = max(1, round(15000 * scale))
    model.pilot_frame0_steps = args.pilot0_steps
    pilot_steps, full_steps, lr_scale, keep_scale = parse_schedule(schedule)
    model.sh_keep_threshold *= keep_scale
    model.pilot_sh_keep_threshold *= keep_scale
    model.pilot_steps = pilot_steps
    model.pilot_lr_sh_decay_steps = pilot_steps
    model.steps_per_frame = full_steps
    model.lr_sh_decay_steps = max(1, round(full_steps * 300 / 500))
    model.pilot_lr_density, model.pilot_lr_sh, model.pilot_lr_sh_final = (
        1.0 * lr_scale,
        1e-2 * lr_scale,
        1e-3 * lr_scale,
    )
    model.lr_density, model.lr_sh, model.lr_sh_final = 1.0 * lr_scale, 1e-2 * lr_scale, 3e-3 * lr_scale
    return config


def train_step(pipeline, step: int) -> None:
    _, loss_dict, _ = pipeline.get_train_loss_dict(step)
    torch.stack(list(loss_dict.values())).sum().backward()


def stream(pipeline) -> float:
    """Train the pipeline's remaining schedule as ``ns-train`` does (callbacks around each step); seconds."""
    pipeline.train()
    begin = time.perf_counter()
    for step in range(pipeline.remaining_steps()):
        pipeline.before_step(step)
        train_step(pipeline, step)
        pipeline.after_step(step)
    assert pipeline.done
    return time.perf_counter() - begin


def delta_report(store_root: Path, spec, frames: int) -> dict[str, Any]:
    import numpy as np

    from nerfstudio_methods.streamrf.codec import FrameDelta, read_record
    from nerfstudio_methods.streamrf.grid import GRID_CHANNELS
    from nerfstudio_methods.streamrf.store import FrameStore

    store = FrameStore(store_root)
    dense_bytes = spec.num_voxels * GRID_CHANNELS * 4
    per_frame = []
    for frame in range(1, frames):
        delta = read_record(store.frame_path(frame))
        assert isinstance(delta, FrameDelta)
        size = store.frame_bytes(frame)
        occupied = int(np.unpackbits(delta.occupancy_bits)[: spec.num_voxels].sum())
        stored = delta.num_added + delta.num_changed
        per_frame.append(
            {
                "frame": frame,
                "bytes": size,
                "dense_fp32_over_delta": dense_bytes / size,
                "occupied_fraction": occupied / spec.num_voxels,
                "added": delta.num_added,
                "changed": delta.num_changed,
                "stored_voxel_fraction_of_occupied": stored / max(occupied, 1),
                "bytes_per_stored_voxel": size / max(stored, 1),
                "raw_array_bytes": {k: int(v.nbytes) for k, v in delta.arrays().items() if k not in ("kind", "shape")},
                # each array deflated alone (what savez_compressed does per member): where the bytes go
                "deflated_array_bytes": {
                    k: len(zlib.compress(v.tobytes(), 6))
                    for k, v in delta.arrays().items()
                    if k not in ("kind", "shape")
                },
            }
        )
        print(f"[delta] frame {frame}: {size} B, dense fp32 / delta = {dense_bytes / size:.0f}x", flush=True)
    mean = sum(f["bytes"] for f in per_frame) / len(per_frame)
    return {"mean_delta_bytes": mean, "dense_fp32_over_mean_delta": dense_bytes / mean, "per_frame": per_frame}


def run_delta(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from nerfstudio_methods.scenegen.formats.n3dv import write_n3dv
    from nerfstudio_methods.streamrf.grid import GRID_CHANNELS
    from nerfstudio_methods.streamrf.store import FrameStore

    scene = work / "scene"
    frame0 = work / "frame0"
    if not (args.reuse_frame0 and (frame0 / "frame_00000.npz").is_file()):
        for stale in [scene, frame0, *work.glob("streamrf_frames*")]:
            if stale.exists():
                shutil.rmtree(stale)
        write_n3dv(scene, width=64, height=48, num_cameras=args.cameras, num_frames=30, seed=args.seed)
        args_frame0 = argparse.Namespace(**{**vars(args), "frames": 1})
        config = make_pipeline_config(args_frame0, scene, frame0, args.schedules[0])
        stream(config.pipeline.setup(device="cpu", test_mode="val"))
    seconds, roots = {}, []
    pipeline: Any = None
    for index, schedule in enumerate(args.schedules):  # the same frame 0, each per-frame schedule
        root = work / f"streamrf_frames_{index}"
        if root.exists():
            shutil.rmtree(root)
        for name in ("frame_00000.npz", "pilot/frame_00000.npz"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(frame0 / name, root / name)
        pipeline = make_pipeline_config(args, scene, root, schedule).pipeline.setup(device="cpu", test_mode="val")
        seconds[schedule] = stream(pipeline)
        roots.append(root)
    spec = pipeline.model.full_spec
    store = FrameStore(roots[0])
    return {
        "grid": list(spec.resolution),
        "dense_fp32_grid_bytes": spec.num_voxels * GRID_CHANNELS * 4,
        "frame0_bytes": store.frame_bytes(0),
        "frame0_steps": args.frame0_steps,
        "rays_per_step": args.speed_rays,
        "schedules": {
            schedule: {**delta_report(root, spec, args.frames), "stream_seconds": seconds[schedule]}
            for schedule, root in zip(args.schedules, roots)
        },
    }


def run_speed(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from nerfstudio_methods.streamrf.grid import initial_grid
    from nerfstudio_methods.streamrf.model import Phase

    scene, store_root = work / "scene", work / "streamrf_frames_0"
    pipelines = {}
    for storage in ("sparse", "dense"):
        copy = work / f"speed_{storage}"
        shutil.copytree(store_root, copy)
        config = make_pipeline_config(args, scene, copy, args.schedules[0], storage)
        pipeline = config.pipeline.setup(device="cpu", test_mode="val")
        pipeline.train()
        pipeline.datamanager.set_frame(args.frames - 1)
        pipeline.datamanager.set_rays_per_batch(args.speed_rays)
        pipelines[storage] = pipeline
    kinds = {"full_pass": Phase.FULL, "pilot_pass": Phase.PILOT, "frame0_fully_occupied": Phase.FRAME0}
    times: dict[str, dict[str, list[float]]] = {kind: {"sparse": [], "dense": []} for kind in kinds}
    occupancy: dict[str, float] = {}
    for kind, phase in kinds.items():
        for storage, pipeline in pipelines.items():
            model = pipeline.model
            model.start_phase(phase, args.frames - 1)
            if phase is Phase.FRAME0:  # frame 0's first steps, but at the full resolution: every voxel occupied
                model.full = model.new_state(initial_grid(model.full_spec, model.config.init_density))
                model.allowed = model.full.allowed(None)
                model.config.frame0_upsample_every = 0
            grid = model.grid_of(phase)
            occupancy[kind] = float(grid.occupancy.float().mean())
        for round_index in range(args.speed_rounds + 1):  # round 0 warms up
            for storage, pipeline in pipelines.items():
                torch.manual_seed(1000 * round_index)  # the same ray batches for both
                begin = time.perf_counter()
                for step in range(args.speed_steps):
                    train_step(pipeline, step)
                    pipeline.model.optimizer_step()
                if round_index:
                    times[kind][storage].append((time.perf_counter() - begin) / args.speed_steps)
        for pipeline in pipelines.values():
            pipeline.model.phase = None
        median = {storage: statistics.median(values) for storage, values in times[kind].items()}
        print(f"[speed] {kind}: sparse {median['sparse'] * 1e3:.1f} ms, dense {median['dense'] * 1e3:.1f} ms per step")
    return {
        "grid": list(args.resolution),
        "rays_per_step": args.speed_rays,
        "threads": args.threads,
        "steps_per_block": args.speed_steps,
        "rounds": args.speed_rounds,
        "seconds_per_step_median": {
            kind: {storage: statistics.median(values) for storage, values in by.items()} for kind, by in times.items()
        },
        "dense_over_sparse_time": {
            kind: statistics.median(by["dense"]) / statistics.median(by["sparse"]) for kind, by in times.items()
        },
        "occupied_fraction": occupancy,
        "all_block_times": times,
    }


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(memory_child(args.child, args)))
        return
    torch.set_num_threads(args.threads)
    from nerfstudio_methods import compat

    compat.install()
    started = time.perf_counter()
    output = args.output
    path = output / "streamrf_memory.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    report["config"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items() if k != "child"}
    report["config"]["output"] = str(output)

    def save() -> None:
        atomic_write(path, lambda temporary: temporary.write_text(json.dumps(report, indent=1)))

    if "memory" in args.parts:
        report["memory"] = run_memory(args)
        save()
    work = output / "streamrf_memory_work"
    if "delta" in args.parts or "speed" in args.parts:
        if "delta" in args.parts or not (work / "streamrf_frames_0").is_dir():
            work.mkdir(parents=True, exist_ok=True)
            report["delta"] = run_delta(args, work)
            save()
        if "speed" in args.parts:
            for stale in work.glob("speed_*"):
                shutil.rmtree(stale)
            report["speed"] = run_speed(args, work)
    report["wall_seconds"] = time.perf_counter() - started
    save()
    print(f"[bench] wrote {path} in {report['wall_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    main()
