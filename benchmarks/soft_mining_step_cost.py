"""What a soft-mining step costs over a uniform step at the same ray count, interleaved so that machine load hits
every arm alike.

The arms are the convergence benchmark's (``soft_mining_convergence.py``, lego, its CPU size, built by its
``setup_arm``): ``uniform`` (the preset with ``--pipeline.sampler uniform``), ``soft-mining`` (the preset as shipped)
and ``no-drift`` (soft mining without the Langevin drift: no backward pass reaches the ray positions; with the drift,
it goes through the hash grid's input gradient). Each repeat builds the arms afresh, then runs them in
blocks that take turns; a step's cost is its process CPU time (and wall-clock time, reported too). Per repeat and
thread count: the median step of each arm and its ratio to uniform; the verdict is the median of the repeats.

Writes ``<output>/soft_mining_step_cost.json``.

Usage: ``python benchmarks/soft_mining_step_cost.py [--repeats 3] [--thread-counts 1 2] [--blocks 4]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soft_mining_convergence as convergence  # noqa: E402
from _common import atomic_write, timed_train_step  # noqa: E402

ARMS = ("uniform", "soft-mining", "no-drift")


def timed_steps(pipeline, optimizers, run_callbacks, first: int, count: int) -> tuple[list[float], list[float]]:
    cpu, wall = [], []
    for step in range(first, first + count):
        step_cpu, step_wall = timed_train_step(pipeline, optimizers, run_callbacks, step)
        cpu.append(step_cpu)
        wall.append(step_wall)
    return cpu, wall


def one_repeat(args: argparse.Namespace) -> dict:
    setups = {arm: convergence.setup_arm("lego", arm, 0, args) for arm in ARMS}
    cpu: dict[str, list[float]] = {arm: [] for arm in ARMS}
    wall: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for block in range(args.blocks):
        for arm, setup in setups.items():
            block_cpu, block_wall = timed_steps(*setup, block * args.block_steps, args.block_steps)
            # the first steps of each arm warm its caches up
            skip = args.skip if block == 0 else 0
            cpu[arm] += block_cpu[skip:]
            wall[arm] += block_wall[skip:]
    result = {}
    for arm in ARMS:
        result[arm] = {
            "median_cpu_ms": 1000 * float(np.median(cpu[arm])),
            "median_wall_ms": 1000 * float(np.median(wall[arm])),
        }
    for arm in ARMS:
        result[arm]["cpu_ratio_to_uniform"] = result[arm]["median_cpu_ms"] / result["uniform"]["median_cpu_ms"]
        result[arm]["wall_ratio_to_uniform"] = result[arm]["median_wall_ms"] / result["uniform"]["median_wall_ms"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--thread-counts", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--block-steps", type=int, default=25)
    parser.add_argument("--skip", type=int, default=10, help="first steps of each arm left out (warm-up)")
    parser.add_argument("--output", type=Path, default=convergence.RESULTS)
    parser.add_argument("--smoke", action="store_true", help="one short repeat, one thread, to a temporary folder")
    convergence.add_model_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        import tempfile

        args.repeats, args.thread_counts, args.blocks, args.block_steps, args.skip = 1, [1], 1, 4, 1
        args.size_factor = 0.25
        args.output = Path(tempfile.mkdtemp(prefix="soft_mining_step_cost_smoke_"))
    if not Path(convergence.SCENES["lego"]["data"]).is_dir():
        sys.exit(f"missing dataset: {convergence.SCENES['lego']['data']}")
    import nerfstudio_methods.soft_mining.config  # noqa: F401  (installs the compat fixes: offline LPIPS)

    report: dict = {"configuration": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    per_threads: dict[str, dict] = {}
    for threads in args.thread_counts:
        torch.set_num_threads(threads)
        repeats = []
        for repeat in range(args.repeats):
            repeats.append(one_repeat(args) | {"load_average": os.getloadavg()[0]})
            print(f"threads {threads}, repeat {repeat + 1}/{args.repeats}: "
                  + ", ".join(f"{arm} {repeats[-1][arm]['median_cpu_ms']:.0f} ms" for arm in ARMS), flush=True)  # fmt: skip
        per_threads[str(threads)] = {
            "repeats": repeats,
            "median_of_repeats": {
                arm: {
                    key: float(np.median([repeat[arm][key] for repeat in repeats]))
                    for key in ("median_cpu_ms", "median_wall_ms", "cpu_ratio_to_uniform", "wall_ratio_to_uniform")
                }
                for arm in ARMS
            },
        }
    report["summary"] = {threads: entry["median_of_repeats"] for threads, entry in per_threads.items()}
    report["load_average_at_end"] = os.getloadavg()  # other jobs on the machine (the ratios are interleaved)
    report["threads"] = per_threads
    path = args.output / "soft_mining_step_cost.json"
    atomic_write(path, lambda temporary: temporary.write_text(json.dumps(report, indent=1)))
    print(json.dumps(report["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
