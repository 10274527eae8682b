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
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import atomic_write, locked, refuse_other_settings, spread  # noqa: E402

PAPER_FRAME0_STEPS = 128000
PAPER_LR_DECAY_STEPS = 250000
PAPER_LR_DELAY_STEPS = 15000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", type=Path, default=None, help="results folder (benchmarks/results)")
    parser.add_argument("--work", type=Path, default=None, help="scenes and frame stores (bench_results/)")
    parser.add_argument("--ablations", action="store_true", help="run the convergence curve and the ablations")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="add the occupancy analysis of the finished runs (their frame stores in --work)",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny end-to-end run, to a temporary folder")
    parser.add_argument("--kinds", nargs="+", choices=("room", "objects"), default=["room", "objects"],
                        help="generated videos: N3DV-shaped room, and the earlier moving-balls scene")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="a new scene per seed (0 tuned)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--cameras", type=int, default=6, help="cameras including the held-out cam00")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--resolution", type=int, nargs=3, default=(64, 64, 64), help="streaming grid X Y Z")
    parser.add_argument("--rays", type=int, default=1024, help="rays per step, every phase")
    parser.add_argument("--frame0-steps", type=int, default=2000, help="frame 0 and every from-scratch frame")
    parser.add_argument("--pilot0-steps", type=int, default=150)
    # The per-frame schedule (defaults: the benchmark's schedule, see per_frame_schedule and the README).
    parser.add_argument("--pilot-steps", type=int, default=20)
    parser.add_argument("--full-steps", type=int, default=65)
    parser.add_argument("--lr-scale", type=float, default=1.0, help="per-frame rates (pilot and full) x this")
    parser.add_argument("--sh-keep-scale", type=float, default=0.5, help="SH keep thresholds x this")
    parser.add_argument("--scratch-frames", type=int, nargs="+", default=None, help="default: middle and last")
    parser.add_argument("--keyframe-every", type=int, default=10)
    parser.add_argument("--ablation-frames", type=int, default=6, help="frames 0..N-1 in the ablation run")
    parser.add_argument("--convergence-steps", type=int, nargs="+", default=(500, 1000, 2000))
    parser.add_argument("--converged-within", type=float, default=0.2)
    parser.add_argument("--old-schedule", type=int, nargs=2, default=(40, 30), help="the previous pilot + full steps")
    parser.add_argument("--seed", type=int, default=0, help="the ablations' scene")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.frames, args.cameras = [0], 3, 4
        args.width, args.height, args.resolution, args.rays = 32, 32, (16, 16, 16), 256
        args.frame0_steps, args.pilot0_steps, args.pilot_steps, args.full_steps = 40, 8, 4, 6
    if args.output is None:
        args.output = (
            Path(tempfile.mkdtemp(prefix="streamrf_smoke_")) if args.smoke else REPO / "benchmarks" / "results"
        )
    if args.work is None:
        args.work = args.output / "work" if args.smoke else REPO / "bench_results" / "streamrf_stream"
    return args


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

    work = args.work / "ablations"
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
            key: (list(value) if isinstance(value, tuple) else str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        },
        "device": f"cpu, {args.threads} torch thread(s)",
        "frame0_schedule": frame0_schedule(args.frame0_steps),
        "per_frame_schedule": schedule,
        "paper_config": "frame 0: 128k steps x 5000 rays, 128^3 -> 512^2x128; per frame: 750 pilot + 500 full steps "
        "x 20000 rays, lr density 1.0, SH 1e-2 -> 3e-3 (pilot 1e-2 -> 1e-3)",
        "kept_from_paper": "RMSprop, keep/prune thresholds (unless sh_keep_scale != 1), dilations, narrow band, TV "
        "weights, stop threshold",
    }


# --- stream mode ---------------------------------------------------------------------------------------------

N3DV_GRID = (512, 512, 128)
"""StreamRF's N3DV grid, X Y Z (brief §1.2: 128^3 -> 512^2 x 128)."""

PUBLISHED_MB_PER_FRAME = {
    "StreamRF (deltas)": 17.7,
    "StreamRF (incl. frame 0)": 31.4,
    "3DGStream": 7.8,
    "QUEEN-l": 0.75,
}
"""Storage per frame on N3DV in MB (brief §2: 3DGStream Tab. 1; QUEEN-l as transcribed by later work)."""

TARGETS = {"psnr_gap_db": -0.5, "time_ratio": 20.0, "dense_over_delta": 100.0, "sparse_state_over_delta": 10.0}
"""Issue 24's figures: streamed within 0.5 dB of from scratch, 20x less time per frame, deltas 100x smaller than a
dense fp32 grid and 10x smaller than the sparse grid's own state."""


def results_path(args: argparse.Namespace) -> Path:
    return args.output / "streamrf_stream.json"


def stream_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments that change a number of the stream mode (a results file holds runs of one setting)."""
    names = ("frames", "cameras", "width", "height", "resolution", "rays", "frame0_steps", "pilot0_steps",
             "pilot_steps", "full_steps", "lr_scale", "sh_keep_scale", "keyframe_every", "scratch_frames")  # fmt: skip
    return {name: (list(value) if isinstance(value, tuple) else value) for name, value in vars(args).items()
            if name in names}  # fmt: skip


def delta_parts(path: Path) -> dict[str, int]:
    """Compressed bytes of each member of a stored delta (occupancy bits over the grid, changed flags over the kept
    voxels, values), from the npz's zip directory."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return {Path(info.filename).stem: info.compress_size for info in archive.infolist()}


def n3dv_extrapolation(entry: dict[str, Any]) -> dict[str, Any]:
    """Storage per frame at N3DV's grid size from this run's fractions: the values grow with the stored voxels, the
    occupancy bits with the grid, the changed flags with the occupied voxels, each at this run's compressed bytes
    per voxel; the rest of a file (names, shape, zip headers) stays as it is."""
    storage = entry["storage"]
    voxels = storage["grid_voxels"]
    occupied = entry["scene_stats"]["occupied_after_frame0"]
    stored = storage["mean_stored_voxels"]
    parts = storage["mean_delta_parts"]
    values = parts["added_values"] + parts["changed_values"]
    fixed = storage["mean_delta_bytes"] - values - parts["occupancy_bits"] - parts["changed_bits"]
    n3dv_voxels = N3DV_GRID[0] * N3DV_GRID[1] * N3DV_GRID[2]
    occupancy = occupied / voxels
    stored_fraction = stored / occupied
    per_value_voxel = values / stored if stored > 0 else 0.0
    per_grid_voxel = parts["occupancy_bits"] / voxels
    per_occupied_voxel = parts["changed_bits"] / occupied
    n3dv_occupied = n3dv_voxels * occupancy
    megabytes = (
        n3dv_occupied * stored_fraction * per_value_voxel + n3dv_voxels * per_grid_voxel
        + n3dv_occupied * per_occupied_voxel + fixed
    ) / 1e6  # fmt: skip
    return {
        "mb_per_frame": megabytes,
        "arithmetic": (
            f"{n3dv_voxels} voxels x occupancy {occupancy:.4f} x stored {stored_fraction:.4f} of occupied x "
            f"{per_value_voxel:.1f} B (values) + {n3dv_voxels} x {per_grid_voxel:.4f} B (occupancy bits) + "
            f"{n3dv_occupied:.0f} occupied x {per_occupied_voxel:.4f} B (changed flags) + {fixed:.0f} B = "
            f"{megabytes:.2f} MB"
        ),
    }


def stream_one(args: argparse.Namespace, kind: str, seed: int, work: Path) -> dict[str, Any]:
    """Stream one generated video and train ``--scratch-frames`` of it from scratch; one results entry."""
    from nerfstudio_methods.scenegen.formats.n3dv import write_n3dv
    from nerfstudio_methods.streamrf.store import FrameStore

    torch.manual_seed(seed)
    scene = work / f"{kind}_seed{seed}" / "scene"
    if scene.exists():
        shutil.rmtree(scene.parent)
    written = write_n3dv(scene, width=args.width, height=args.height, num_cameras=args.cameras,
                         num_frames=args.frames, seed=seed, kind=kind)  # type: ignore[arg-type]  # fmt: skip
    log(f"{kind} seed {seed}: {args.cameras} cameras x {args.frames} frames of {args.width}x{args.height}, "
        f"moving objects cover at most {written.details['moving_area_max']:.1%} of a frame")  # fmt: skip
    schedule = per_frame_schedule(args.pilot_steps, args.full_steps, args.lr_scale, args.sh_keep_scale)
    overrides = {**frame0_schedule(args.frame0_steps), **schedule}

    store_root = scene.parent / "streamrf_frames"
    stream = make_pipeline(args, scene, store_root, overrides, args.frames)
    stream_seconds = drive(stream)
    assert stream.done, "the schedule did not finish"
    frames_log = read_log(store_root)
    store = FrameStore(store_root)
    frame_bytes = [store.frame_bytes(t) for t in range(args.frames)]
    later = [e for e in frames_log if e["frame"] > 0]
    voxels = stream.model.full_spec.num_voxels
    occupied0 = frames_log[0]["phases"]["frame0"]["occupied"]
    stored_voxels = [e["phases"]["full"]["added"] + e["phases"]["full"]["changed"] for e in later]
    parts = [delta_parts(store.frame_path(t)) for t in range(1, args.frames)]
    log(f"{kind} seed {seed}: streamed in {stream_seconds:.0f} s; frame 0 occupies {occupied0 / voxels:.1%}")

    scratch = make_pipeline(args, scene, None, overrides, args.frames)
    scratch_results = []
    for frame in scratch_frames(args):
        result = scratch_frame(scratch, frame, args.frame0_steps, probe_every=max(1, args.frame0_steps // 4))
        scratch_results.append(result)
        log(f"{kind} seed {seed}: frame {frame} from scratch {result['heldout_psnr']:.2f} dB "
            f"(streamed {frames_log[frame]['heldout_psnr']:.2f}), {result['cpu_seconds']:.0f} CPU s")  # fmt: skip
    streamed_psnr = {e["frame"]: e["heldout_psnr"] for e in frames_log}
    mean_delta = mean([float(b) for b in frame_bytes[1:]])
    sparse_state = occupied0 * 28 * 4 + voxels / 8  # fp32 values of the occupied voxels + an occupancy bit per voxel
    entry: dict[str, Any] = {
        "kind": kind,
        "seed": seed,
        "scene_stats": {
            "moving_area_max": written.details["moving_area_max"],
            "occupied_after_frame0": occupied0,
            "occupancy_after_frame0": occupied0 / voxels,
            "stored_fraction_of_occupied_per_frame": [
                s / e["phases"]["full"]["occupied"] for s, e in zip(stored_voxels, later)
            ],  # fmt: skip
        },
        "stream": {
            "seconds": stream_seconds,
            "per_frame": [
                {
                    "frame": e["frame"],
                    "cpu_seconds": e["cpu_seconds"],
                    "seconds": e["seconds"],
                    "heldout_psnr": e["heldout_psnr"],
                    "bytes": frame_bytes[e["frame"]],
                    **(
                        {"added": e["phases"]["full"]["added"], "changed": e["phases"]["full"]["changed"]}
                        if e["frame"]
                        else {}
                    ),
                }
                for e in frames_log
            ],  # fmt: skip
            "mean_cpu_seconds_frames_1plus": mean([e["cpu_seconds"] for e in later]),
        },
        "scratch": scratch_results,
        "storage": {
            "grid_voxels": voxels,
            "dense_fp32_bytes": voxels * 28 * 4,
            "sparse_state_bytes": sparse_state,
            "frame0_compressed_bytes": frame_bytes[0],
            "mean_delta_bytes": mean_delta,
            "mean_stored_voxels": mean([float(s) for s in stored_voxels]),
            "mean_delta_parts": {key: mean([float(p[key]) for p in parts]) for key in parts[0]},
        },
    }
    scratch_cpu = mean([r["cpu_seconds"] for r in scratch_results])
    entry["ratios"] = {
        "psnr_gap_db": mean([streamed_psnr[r["frame"]] for r in scratch_results])
        - mean([r["heldout_psnr"] for r in scratch_results]),
        "time_ratio": scratch_cpu / entry["stream"]["mean_cpu_seconds_frames_1plus"],
        "dense_over_delta": entry["storage"]["dense_fp32_bytes"] / mean_delta,
        "sparse_state_over_delta": sparse_state / mean_delta,
        "scratch_last_quarter_gain_db": mean(
            [r["curve"][-1]["heldout_psnr"] - r["curve"][-2]["heldout_psnr"] for r in scratch_results]
        ),
    }
    entry["n3dv_extrapolation"] = n3dv_extrapolation(entry)
    return entry


def scratch_frames(args: argparse.Namespace) -> list[int]:
    """``--scratch-frames``, or the middle and the last frame (two frames spread over the stream)."""
    chosen = args.scratch_frames if args.scratch_frames else [args.frames // 2, args.frames - 1]
    return sorted({frame for frame in chosen if 0 < frame < args.frames})


def octile_sums(mask: Tensor) -> Tensor:
    """Voxels of ``mask`` in each eighth of the grid's NDC depth (z slabs, near to far)."""
    slabs = mask.shape[0]
    return torch.stack([mask[k * slabs // 8 : (k + 1) * slabs // 8].float().sum() for k in range(8)])


def explain_occupancy(args: argparse.Namespace, kind: str, seed: int) -> dict[str, Any]:
    """Where frame 0's occupied voxels and each frame's stored voxels lie, and what the held-out view loses when the
    semi-transparent voxels are dropped: measures why the occupancy is what it is (issue 24 asks 10-25%)."""
    from nerfstudio_methods.streamrf.codec import unpack_mask
    from nerfstudio_methods.streamrf.grid import SparseGrid
    from nerfstudio_methods.streamrf.store import FrameStore, GridPlayer

    folder = args.work / f"{kind}_seed{seed}"
    store = FrameStore(folder / "streamrf_frames")
    pipeline = make_pipeline(args, folder / "scene", None, frame0_schedule(args.frame0_steps), args.frames)
    model, spec = pipeline.model, pipeline.model.full_spec
    values, occupancy = GridPlayer(store).grid(0)
    voxel_depth = 2.0 / spec.shape[0]  # NDC z runs over [-1, 1]
    opacity = 1.0 - torch.exp(-torch.relu(values[:, 0]) * voxel_depth)
    # Visibility: a voxel whose value moves no training pixel is hidden from every training camera.
    data = values.clone().requires_grad_(True)
    grid = SparseGrid(spec, data, occupancy)
    cameras = pipeline.datamanager.train_dataset.cameras
    frame_index = pipeline.datamanager.train_dataset.metadata["frame_index"]
    for index in torch.nonzero(frame_index == 0)[:, 0].tolist():
        rays = cameras.generate_rays(camera_indices=index).flatten()
        out = model.render_grid(grid, rays.origins, rays.directions, model.config.frame0_stop_thresh)
        (out["rgb"].sum() + out["accumulation"].sum()).backward()
    assert data.grad is not None
    visible = data.grad.abs().amax(dim=1) > 1e-6

    # The held-out camera at frame 0 rendered from the whole grid and from its opaque voxels only.
    eval_data = pipeline.datamanager.eval_dataset
    heldout = int(torch.nonzero(eval_data.metadata["frame_index"] == 0)[0, 0])
    rays = eval_data.cameras.generate_rays(camera_indices=heldout).flatten()
    image = eval_data.get_image_float32(heldout)[..., :3].reshape(-1, 3)

    def heldout_psnr(keep: Tensor) -> float:
        kept = occupancy.clone()
        kept[occupancy] = keep
        with torch.no_grad():
            rgb = model.render_grid(SparseGrid(spec, values[keep], kept), rays.origins, rays.directions,
                                    model.config.frame0_stop_thresh)["rgb"]  # fmt: skip
        return float(-10.0 * torch.log10(torch.mean((rgb.clamp(0, 1) - image) ** 2)))

    everything = torch.ones_like(visible)
    # Voxels stored by each later frame's delta (added, or kept with changed SH), by depth, and against the frame's
    # motion footprint: the previous grid's voxels seen by a training pixel whose colour changed between the frames.
    stored_octiles, footprint_shares, stored_in_footprint = [], [], []
    player = GridPlayer(store)
    train = pipeline.datamanager.train_dataset
    frames_of = torch.as_tensor(train.metadata["frame_index"]).reshape(-1)
    camera_ids = torch.as_tensor(train.metadata["camera_ids"]).reshape(-1)
    for frame in range(1, store.num_finished()):
        values_before, before = player.grid(frame - 1)
        delta = store.read_delta(frame)
        now = unpack_mask(delta.occupancy_bits, before.numel()).reshape(before.shape)
        kept = before & now
        stored = now & ~before
        stored[kept] = unpack_mask(delta.changed_bits, int(kept.sum()))
        stored_octiles.append(octile_sums(stored) / octile_sums(now).clamp_min(1))
        footprint = motion_footprint(model, spec, values_before, before, train, frames_of, camera_ids, frame)
        footprint_shares.append(float(footprint.sum() / before.sum()))
        changed_kept = stored & kept
        stored_in_footprint.append(float((changed_kept & footprint).sum() / changed_kept.sum().clamp_min(1)))
    return {
        "occupancy": float(occupancy.float().mean()),
        "occupancy_by_depth_octile": (octile_sums(occupancy) / (spec.num_voxels / 8)).tolist(),
        "visible_fraction_of_occupied": float(visible.float().mean()),
        "voxel_opacity_quantiles_10_50_90": torch.quantile(opacity, torch.tensor([0.1, 0.5, 0.9])).tolist(),
        "semi_transparent_fraction": float((opacity < 0.5).float().mean()),
        "occupancy_of_voxels_at_least_half_opaque": float((opacity >= 0.5).float().sum() / spec.num_voxels),
        "heldout_psnr_frame0": heldout_psnr(everything),
        "heldout_psnr_frame0_opaque_voxels_only": heldout_psnr(opacity >= 0.5),
        "stored_share_of_occupied_by_depth_octile": torch.stack(stored_octiles).mean(dim=0).tolist(),
        "motion_footprint_share_of_occupied": mean(footprint_shares),
        "changed_voxels_inside_motion_footprint": mean(stored_in_footprint),
    }


def motion_footprint(model, spec, values: Tensor, occupancy: Tensor, train, frames_of: Tensor, camera_ids: Tensor,
                     frame: int, color_step: float = 2.0 / 255) -> Tensor:  # fmt: skip
    """Occupied voxels of the grid (frame ``frame - 1``) that a training ray of a pixel whose colour changes from
    ``frame - 1`` to ``frame`` (by more than ``color_step`` in a channel) reaches with non-zero weight: where the
    scene's motion can ask the stream to change something."""
    from nerfstudio_methods.streamrf.grid import SparseGrid

    data = values.clone().requires_grad_(True)
    grid = SparseGrid(spec, data, occupancy)
    for index in torch.nonzero(frames_of == frame)[:, 0].tolist():
        previous = torch.nonzero((frames_of == frame - 1) & (camera_ids == camera_ids[index]))[0, 0]
        moved = (train.get_image_float32(index)[..., :3] - train.get_image_float32(int(previous))[..., :3]).abs()
        pixels = torch.nonzero(moved.amax(dim=-1) > color_step).float() + 0.5
        if pixels.shape[0] == 0:
            continue
        rays = train.cameras.generate_rays(camera_indices=index, coords=pixels)
        out = model.render_grid(grid, rays.origins, rays.directions, model.config.stop_thresh)
        (out["rgb"].sum() + out["accumulation"].sum()).backward()
    footprint = torch.zeros_like(occupancy)
    if data.grad is not None:
        footprint[occupancy] = data.grad.abs().amax(dim=1) > 1e-6
    return footprint


def summarise_occupancy(analysis: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scene kind, over seeds: occupancy of the near and far halves of NDC depth, the semi-transparent share,
    the held-out PSNR of frame 0 with every voxel and with the at-least-half-opaque voxels only, and how the changed
    voxels relate to the motion footprint."""
    rows: dict[str, dict[str, Any]] = {}
    for kind in sorted({name.split("/seed")[0] for name in analysis}, key=lambda k: (k != "room", k)):
        runs = {name.split("/")[1]: entry for name, entry in analysis.items() if name.startswith(f"{kind}/")}
        rows[kind] = {
            "near_half_occupancy": spread({s: mean(e["occupancy_by_depth_octile"][:4]) for s, e in runs.items()}),
            "far_half_occupancy": spread({s: mean(e["occupancy_by_depth_octile"][4:]) for s, e in runs.items()}),
            "visible_fraction_of_occupied": spread({s: e["visible_fraction_of_occupied"] for s, e in runs.items()}),
            "semi_transparent_fraction": spread({s: e["semi_transparent_fraction"] for s, e in runs.items()}),
            "occupancy_of_voxels_at_least_half_opaque": spread(
                {s: e["occupancy_of_voxels_at_least_half_opaque"] for s, e in runs.items()}
            ),
            "heldout_psnr_frame0": spread({s: e["heldout_psnr_frame0"] for s, e in runs.items()}),
            "heldout_psnr_frame0_opaque_voxels_only": spread(
                {s: e["heldout_psnr_frame0_opaque_voxels_only"] for s, e in runs.items()}
            ),
            "motion_footprint_share_of_occupied": spread(
                {s: e["motion_footprint_share_of_occupied"] for s, e in runs.items()}
            ),
            "changed_voxels_inside_motion_footprint": spread(
                {s: e["changed_voxels_inside_motion_footprint"] for s, e in runs.items()}
            ),
        }
    return rows


def run_explain(args: argparse.Namespace) -> None:
    """Add ``occupancy_analysis`` (:func:`explain_occupancy`) for every run in the results file."""
    torch.set_num_threads(args.threads)
    from nerfstudio_methods import compat

    compat.install()
    path = results_path(args)
    names = list(json.loads(path.read_text())["results"])
    analysis = {}
    for name in names:
        kind, seed = name.split("/seed")
        analysis[name] = explain_occupancy(args, kind, int(seed))
        log(f"{name}: {json.dumps(analysis[name])}")
    with locked(path):
        report = json.loads(path.read_text())
        report["occupancy_analysis"] = analysis
        for kind, row in summarise_occupancy(analysis).items():
            report["summary"][kind]["occupancy_explained"] = row
        atomic_write(path, lambda temporary: temporary.write_text(json.dumps(report, indent=1)))


def summarise_stream(results: dict[str, Any]) -> dict[str, Any]:
    """Per scene kind: each ratio's mean, std and per-seed values, and whether it meets issue 24's figure."""
    summary: dict[str, Any] = {}
    for kind in sorted({entry["kind"] for entry in results.values()}, key=lambda k: (k != "room", k)):
        entries = {f"seed{e['seed']}": e for e in results.values() if e["kind"] == kind}
        row: dict[str, Any] = {
            name: spread({seed: e["ratios"][name] for seed, e in entries.items()})
            for name in ("psnr_gap_db", "time_ratio", "dense_over_delta", "sparse_state_over_delta",
                         "scratch_last_quarter_gain_db")
        }  # fmt: skip
        row["occupancy_after_frame0"] = spread(
            {seed: e["scene_stats"]["occupancy_after_frame0"] for seed, e in entries.items()}
        )
        row["stored_fraction_of_occupied"] = spread(
            {seed: mean(e["scene_stats"]["stored_fraction_of_occupied_per_frame"]) for seed, e in entries.items()}
        )
        row["moving_area_max"] = spread({seed: e["scene_stats"]["moving_area_max"] for seed, e in entries.items()})
        row["n3dv_mb_per_frame"] = spread(
            {seed: e["n3dv_extrapolation"]["mb_per_frame"] for seed, e in entries.items()}
        )
        row["meets"] = {
            name: row[name]["mean"] is not None and row[name]["mean"] >= target for name, target in TARGETS.items()
        }
        summary[kind] = row
    return summary


def store_stream_entry(args: argparse.Namespace, entry: dict[str, Any]) -> None:
    """Merge one entry into the results file under a lock (refusing a file made with other settings)."""
    path = results_path(args)
    with locked(path):
        report = json.loads(path.read_text()) if path.is_file() else {}
        settings = stream_settings(args)
        refuse_other_settings(path, report.get("configuration", {}).get("settings"), settings)
        results = report.get("results", {})
        results[f"{entry['kind']}/seed{entry['seed']}"] = entry
        schedule = per_frame_schedule(args.pilot_steps, args.full_steps, args.lr_scale, args.sh_keep_scale)
        report = {
            "summary": summarise_stream(results),
            "benchmark": "StreamRF streaming against per-frame training from scratch (issue 24)",
            "configuration": {
                "settings": settings,
                "frame0_schedule": frame0_schedule(args.frame0_steps),
                "per_frame_schedule": schedule,
                "scratch_frames": scratch_frames(args),
                "device": f"cpu, {args.threads} torch thread(s); times in CPU seconds of the process",
                "targets": TARGETS,
                "n3dv_grid": list(N3DV_GRID),
                "published_mb_per_frame": PUBLISHED_MB_PER_FRAME,
                "paper_config": "frame 0: 128k steps x 5000 rays, 128^3 -> 512^2x128; per frame: 750 pilot + 500 "
                "full steps x 20000 rays (brief §1)",
                "settings_chosen_on": "the per-frame schedule (pilot + full steps, rates, SH keep scale) was chosen by "
                "the ablations (streamrf_ablations.json, objects scene of seed 0, frames 1-5) and a pilot room run of "
                "seed 0; the reported scenes are seeds 1-3 of each kind",
                "scenes": "room: a static textured room, table and objects with a drifting and a circling small "
                "ball (scenegen n3dv --kind room); objects: the earlier benchmark scene, balls among balls, most of "
                "the view in motion (--kind objects)",
            },
            "results": results,
        }
        atomic_write(path, lambda temporary: temporary.write_text(json.dumps(report, indent=1)))
        plot_stream(report, path.with_suffix(".png"))
    log(f"stored {entry['kind']}/seed{entry['seed']} in {path}")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_stream(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    from nerfstudio_methods import compat

    compat.install()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds:
        for seed in args.seeds:
            entry = stream_one(args, kind, seed, work)
            store_stream_entry(args, entry)
            print(json.dumps(entry["ratios"], indent=1), flush=True)


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
    """Per scene kind: held-out PSNR per frame (streamed, each seed; from scratch as points) and storage per frame
    against the dense and the sparse grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(report["summary"])
    figure, axes = plt.subplots(len(kinds), 2, figsize=(12, 3.8 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        entries = [e for e in report["results"].values() if e["kind"] == kind]
        for index, entry in enumerate(sorted(entries, key=lambda e: e["seed"])):
            frames = entry["stream"]["per_frame"]
            color = f"C{index}"
            axes[row][0].plot([f["frame"] for f in frames], [f["heldout_psnr"] for f in frames], marker=".",
                              color=color, label=f"streamed, seed {entry['seed']}")  # fmt: skip
            axes[row][0].scatter([r["frame"] for r in entry["scratch"]], [r["heldout_psnr"] for r in entry["scratch"]],
                                 color=color, marker="x", s=60, label=f"from scratch, seed {entry['seed']}")  # fmt: skip
            axes[row][1].plot([f["frame"] for f in frames[1:]], [f["bytes"] / 1024 for f in frames[1:]], marker=".",
                              color=color, label=f"delta, seed {entry['seed']}")  # fmt: skip
        storage = entries[0]["storage"]
        axes[row][1].axhline(storage["dense_fp32_bytes"] / 1024, color="k", label="dense fp32 grid")
        axes[row][1].axhline(storage["sparse_state_bytes"] / 1024, color="k", linestyle="--", label="sparse grid state")
        axes[row][0].set(xlabel="frame", ylabel="held-out PSNR (dB)", title=f"{kind}: cam00 per frame")
        axes[row][1].set(xlabel="frame", ylabel="KB", yscale="log", title=f"{kind}: storage per frame")
        for axis in axes[row]:
            axis.legend(fontsize=7)
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.ablations:
        run_ablations(args)
    elif args.explain:
        run_explain(args)
    elif args.smoke:
        run_stream(args)
        run_explain(args)
    else:
        run_stream(args)


if __name__ == "__main__":
    main()
