"""Why latent tri-planes save less time than the paper (-86%) in ``threeda_ae_scaling.py``: stage 2's schedule.

Reuses a stage-1 checkpoint and the scenes of a ``threeda_ae_scaling.py`` run and learns the same N new scenes in
its latent space with shorter schedules (``latent`` epochs, ``decoder`` epochs), reporting training seconds per
scene (and per phase) and held-out PSNR for each, in one process. Writes ``bench_results/threeda_ae_schedule.json``.

    python benchmarks/threeda_ae_schedule.py --stage-one /tmp/threeda_ae_bench_XXXX/stage_one.ckpt \
        --data /tmp/bench_final_data/cars_train --scene-start 16 --num-scenes 50
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import atomic_write  # noqa: E402
from threeda_ae_scaling import latent_run, log, settings  # noqa: E402


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage-one", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the scaling run's cars_train folder")
    parser.add_argument("--scene-start", type=int, default=16)
    parser.add_argument("--num-scenes", type=int, default=50)
    parser.add_argument("--schedules", nargs="+", default=["10,5", "10,0", "5,2", "3,1", "2,1"])
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--eval-views", type=int, default=2)
    parser.add_argument("--eval-scenes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--output", type=Path, default=Path("bench_results/threeda_ae_schedule.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.ae_epochs = args.stage_one_epochs = args.rgb_max_epochs = 0  # stage 1 and RGB are not run here
    arguments = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results: dict[str, Any] = {"settings": arguments, "runs": []}
    for schedule in args.schedules:
        latent, decoder = (float(x) for x in schedule.split(","))
        args.exploit_latent_epochs, args.exploit_decoder_epochs = latent, decoder
        setup = settings(args) | {"exploit_epochs": {"latent": latent, "decoder": decoder}}
        label = f"latent {latent:g} + decoder {decoder:g} epochs"
        result = latent_run(label, args.data, args.scene_start, args.num_scenes, setup, args.stage_one, args)
        results["runs"].append({"latent_epochs": latent, "decoder_epochs": decoder} | result)
        atomic_write(args.output, lambda tmp: tmp.write_text(json.dumps(results, indent=2)))
    for run in results["runs"]:
        log(
            f"{run['latent_epochs']:g}+{run['decoder_epochs']:g} epochs: {run['seconds_per_scene']:.2f} s/scene "
            f"({run['phase_seconds']}), PSNR {run['eval']['psnr']:.2f} dB (subset {run['eval_subset']['psnr']:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
