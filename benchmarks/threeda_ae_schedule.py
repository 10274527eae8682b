"""Why latent tri-planes save less time than the paper (-86%) in ``threeda_ae_scaling.py``: stage 2's schedule.

Reuses a stage-1 checkpoint and the scenes of a ``threeda_ae_scaling.py`` run and learns the same N new scenes in
its latent space with shorter schedules (``latent`` epochs, ``decoder`` epochs), reporting training seconds per
scene (and per phase) and held-out PSNR for each, in one process. Writes ``bench_results/threeda_ae_schedule.json``.

    python benchmarks/threeda_ae_schedule.py --stage-one /tmp/threeda_ae_bench_XXXX/stage_one.ckpt \
        --data /tmp/bench_final_data/cars_train --scene-start 16 --num-scenes 50

``--smoke`` learns 2 scenes of 3 views with two one-epoch schedules (``SMOKE_SETTINGS``), writing
``threeda_ae_schedule.json`` to a temporary folder unless ``--output`` is given. Without ``--stage-one`` and
``--data`` it first makes what a scaling run leaves, at the scaling benchmark's smoke size, beside the output
(``smoke_stage_one``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import apply_smoke_settings, atomic_write  # noqa: E402
from threeda_ae_scaling import Run, generate, latent_run, log, make_config, settings  # noqa: E402

SMOKE_SETTINGS = {
    "scene_start": 2,
    "num_scenes": 2,
    "schedules": ["1,1", "1,0"],
    "views": 3,
    "eval_views": 1,
    "eval_scenes": 1,
    "threads": 1,
    "timing_repeats": 1,
}
"""``--smoke``: 2 new scenes of 3 views (after 2 stage-1 scenes), one schedule with and one without a decoder phase."""


def smoke_stage_one(args: argparse.Namespace, folder: Path) -> tuple[Path, Path]:
    """``--smoke`` without a scaling run: generated scenes (``args.scene_start`` for stage 1, then
    ``args.num_scenes`` new ones) and a stage-1 checkpoint trained one epoch per phase on the first, as
    ``threeda_ae_scaling.py`` makes them. Returns the checkpoint and the ``cars_train`` folder."""
    stage_one_args = argparse.Namespace(
        **{**vars(args), "ae_epochs": 1.0, "stage_one_epochs": 1.0, "rgb_max_epochs": 0}
        | {"exploit_latent_epochs": 0.0, "exploit_decoder_epochs": 0.0}
    )
    setup = settings(stage_one_args)
    data = generate(folder / "srn", args.scene_start + args.num_scenes, setup, args.seed) / "cars_train"
    config = make_config("stage1", data, 0, args.scene_start, setup, setup["stage_one_epochs"])
    run = Run("stage 1", config, setup["device"], args.seed)
    run.train_all()
    checkpoint = run.save(folder / "stage_one.ckpt")
    run.close()
    return checkpoint, data


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage-one", type=Path, default=None, help="a scaling run's stage_one.ckpt (required)")
    parser.add_argument("--data", type=Path, default=None, help="the scaling run's cars_train folder (required)")
    parser.add_argument("--scene-start", type=int, default=16)
    parser.add_argument("--num-scenes", type=int, default=50)
    parser.add_argument("--schedules", nargs="+", default=["10,5", "10,0", "5,2", "3,1", "2,1"])
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--eval-views", type=int, default=2)
    parser.add_argument("--eval-scenes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-repeats", type=int, default=3, help="a timing is the median of this many trainings")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument(
        "--output", type=Path, default=None, help="results JSON (bench_results/threeda_ae_schedule.json)"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny end-to-end run, to a temporary folder")
    args = parser.parse_args(argv)
    given = (args.stage_one is not None) + (args.data is not None)
    if given == 1 or (given == 0 and not args.smoke):
        parser.error("the following arguments are required: --stage-one, --data (both, or neither with --smoke)")
    apply_smoke_settings(parser, args, SMOKE_SETTINGS, "threeda_ae_schedule")
    torch.set_num_threads(args.threads)
    if args.stage_one is None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.stage_one, args.data = smoke_stage_one(
            args, Path(tempfile.mkdtemp(prefix="work_", dir=args.output.parent))
        )
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
