"""StreamRF's two samplers on one grid: nerfacc's CUDA occupancy-grid sampler against the pure-torch marcher.

Builds a sparse grid of an analytic scene on an anisotropic box (like N3DV's 512x512x128: more voxels across than
in depth) - a coloured sphere with view-dependent SH in front of a back wall, occupancy = density >= 5 dilated twice
as StreamRF keeps it - renders the same NDC rays with ``render_rays_torch`` and ``NerfaccSampler`` (directly, and
through the model's ``render_grid`` with ``--pipeline.model.sampler torch`` / ``nerfacc``), at StreamRF's two stop
thresholds, and writes ``<output>/streamrf_sampler_check.json`` with the largest colour difference. Exit status 1
when it exceeds ``--tolerance`` (1e-3), 2 (one line) when CUDA is absent.

Usage: ``python scripts/streamrf_sampler_check.py --output DIR``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--resolution", type=int, nargs=3, default=(192, 160, 48), help="grid X Y Z")
    parser.add_argument("--rays", type=int, default=8192)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def analytic_grid(resolution: tuple[int, int, int], device: torch.device):
    """The scene of the module doc as a sparse grid (values of the kept voxels only)."""
    from nerfstudio_methods.streamrf import masks
    from nerfstudio_methods.streamrf.grid import GRID_CHANNELS, GridSpec, SparseGrid, occupied_indices

    spec = GridSpec(resolution, (1.05, 1.02, 1.0))
    centres = spec.voxel_centres(device) * torch.tensor(spec.radius, device=device)  # NDC
    x, y, z = centres.unbind(-1)
    sphere = ((x - 0.15) ** 2 + (y + 0.1) ** 2 + (z + 0.1) ** 2).sqrt() < 0.4
    wall = (z > 0.45) & (z < 0.7)
    density = torch.where(sphere, 40.0, 0.0) + torch.where(wall, 25.0, 0.0)
    occupancy = masks.dilate(density >= 5.0, 2)
    flat = occupied_indices(occupancy)
    point = centres.reshape(-1, 3)[flat]
    data = torch.zeros(flat.shape[0], GRID_CHANNELS, device=device)
    data[:, 0] = density.reshape(-1)[flat] - 1.0  # dilated voxels hold a small negative density (relu -> 0)
    for channel in range(3):  # a DC colour that varies in space, plus first-order (view-dependent) terms
        base = 1 + 9 * channel
        data[:, base] = torch.sin(3.0 * point[:, channel] + channel)
        data[:, base + 1 : base + 4] = 0.3 * torch.cos(2.0 * point + channel)
    return SparseGrid(spec, data, occupancy)


def ndc_test_rays(count: int, generator: torch.Generator, device: torch.device):
    """Rays from the near plane (z = -1) towards +z with small tilts, as NDC camera rays are; a few start outside the
    box's x range and enter it through its side."""
    xy = (torch.rand(count, 2, generator=generator) * 2.0 - 1.0) * 1.1
    origins = torch.cat([xy, -torch.ones(count, 1)], dim=1)
    directions = torch.cat([torch.randn(count, 2, generator=generator) * 0.15, torch.ones(count, 1)], dim=1)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return origins.to(device), directions.to(device)


def compare(name: str, torch_out: dict[str, torch.Tensor], nerfacc_out: dict[str, torch.Tensor]) -> dict[str, Any]:
    rgb = (torch_out["rgb"] - nerfacc_out["rgb"]).abs()
    acc = (torch_out["accumulation"] - nerfacc_out["accumulation"]).abs()
    return {
        "case": name,
        "max_abs_rgb_difference": float(rgb.max()),
        "mean_abs_rgb_difference": float(rgb.mean()),
        "max_abs_accumulation_difference": float(acc.max()),
        "mean_samples_per_ray": {
            "torch": float(torch_out["num_samples"].float().mean()),
            "nerfacc": float(nerfacc_out["num_samples"].float().mean()),
        },
        "mean_accumulation": float(torch_out["accumulation"].mean()),
    }


def main() -> int:
    args = parse_args()
    if not torch.cuda.is_available():
        print("streamrf_sampler_check: refused: CUDA is not available (nerfacc's sampler runs on a CUDA GPU only)")
        return 2
    from nerfstudio.data.scene_box import SceneBox

    from nerfstudio_methods import compat

    compat.install()
    from nerfstudio_methods.atomic import write_atomically
    from nerfstudio_methods.streamrf.model import StreamRFModelConfig
    from nerfstudio_methods.streamrf.render import NerfaccSampler, render_rays_torch

    started = time.perf_counter()
    device = torch.device("cuda")
    generator = torch.Generator().manual_seed(args.seed)
    grid = analytic_grid(tuple(args.resolution), device)  # type: ignore[arg-type]
    origins, directions = ndc_test_rays(args.rays, generator, device)
    valid = torch.ones(args.rays, dtype=torch.bool, device=device)
    sampler = NerfaccSampler(grid.spec, device)
    sampler.set_occupancy(grid.occupancy)
    cases = []
    for stop in (1e-7, 0.01):  # frame 0 / Meet Room, and N3DV's later frames
        with torch.no_grad():
            reference = render_rays_torch(grid, origins, directions, valid, 0.5, 0.5, stop)
            fast = sampler.render(grid, origins, directions, valid, 0.5, 0.5, stop)
        cases.append(compare(f"renderers, stop_thresh {stop:g}", reference, fast))

    # the model's own dispatch (world-space camera rays -> NDC -> --pipeline.model.sampler)
    metadata = {"ndc_intrinsics": torch.tensor([60.0, 60.0, 64.0, 64.0]), "num_frames": 1}
    rendered = {}
    for choice in ("torch", "nerfacc"):
        config = StreamRFModelConfig(frame0_resolutions=(tuple(args.resolution),), sampler=choice)  # type: ignore[arg-type]
        model = config.setup(
            scene_box=SceneBox(torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=1, metadata=metadata
        ).to(device)
        pixels = (torch.rand(args.rays, 2, generator=generator) * 64.0 - 32.0) / 60.0
        world_directions = torch.cat([pixels[:, :1], -pixels[:, 1:], -torch.ones(args.rays, 1)], dim=1)
        world_directions = (world_directions / world_directions.norm(dim=-1, keepdim=True)).to(device)
        with torch.no_grad():
            rendered[choice] = model.render_grid(grid, torch.zeros_like(world_directions), world_directions, 0.01)
    cases.append(
        compare("model.render_grid, sampler torch vs nerfacc, stop_thresh 0.01", rendered["torch"], rendered["nerfacc"])
    )

    worst = max(case["max_abs_rgb_difference"] for case in cases)
    report = {
        "device": torch.cuda.get_device_name(0),
        "grid": list(grid.spec.resolution),
        "occupied_fraction": grid.num_occupied / grid.spec.num_voxels,
        "rays": args.rays,
        "tolerance": args.tolerance,
        "max_abs_rgb_difference": worst,
        "passed": worst <= args.tolerance,
        "cases": cases,
        "seconds": time.perf_counter() - started,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "streamrf_sampler_check.json"
    write_atomically(path, json.dumps(report, indent=1).encode())
    verdict = "PASS" if report["passed"] else "FAIL"
    print(
        f"streamrf_sampler_check: {verdict}: max |rgb torch - rgb nerfacc| = {worst:.2e} (tolerance {args.tolerance:g}); wrote {path}"
    )
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
