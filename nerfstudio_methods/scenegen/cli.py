"""``nerfstudio-methods-scene``: write a procedurally generated dataset with exact ground truth in one format.

Example::

    nerfstudio-methods-scene --format llff --output /tmp/llff --width 128 --height 96 --num-cameras 8 --seed 3

Bad arguments print one ``error:`` line and exit with status 2 (argparse's convention); I/O failures exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

PROG = "nerfstudio-methods-scene"
FORMAT_NAMES = ("blender", "llff", "n3dv", "nvidia-dynamic", "srn", "dtu")

# Which optional arguments each format accepts (argument dest -> writer keyword).
_COMMON = {"width": "width", "height": "height", "seed": "seed"}
_OPTIONS: dict[str, dict[str, str]] = {
    "blender": {**_COMMON, "num_cameras": "num_cameras", "dynamic": "dynamic"},
    "llff": {**_COMMON, "num_cameras": "num_cameras", "factors": "factors"},
    "n3dv": {
        **_COMMON,
        "num_cameras": "num_cameras",
        "num_frames": "num_frames",
        "missing_cameras": "missing_cameras",
        "kind": "kind",
    },
    "nvidia-dynamic": {
        **_COMMON,
        "num_frames": "num_frames",
        "num_cameras": "num_frames",
        "no_multiview_gt": "multiview_gt",
    },
    "srn": {**_COMMON, "num_cameras": "num_cameras", "num_instances": "num_instances", "split": "split"},
    "dtu": {**_COMMON, "num_cameras": "num_cameras"},
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage block and no traceback.
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Write a procedurally generated scene, rendered exactly, as a dataset in one on-disk format.",
    )
    parser.add_argument("--format", required=True, choices=FORMAT_NAMES, help="dataset format to write")
    parser.add_argument("--output", required=True, type=Path, help="output folder (created; must be empty)")
    parser.add_argument("--width", type=int, help="image width in pixels (full resolution)")
    parser.add_argument("--height", type=int, help="image height in pixels (full resolution)")
    parser.add_argument(
        "--num-cameras", type=int, help="cameras (blender: training views; srn: views per instance; nvidia: = frames)"
    )
    parser.add_argument("--num-frames", type=int, help="frames in time (n3dv, nvidia-dynamic)")
    parser.add_argument("--seed", type=int, help="random seed of the scene and the rig (default 0)")
    parser.add_argument("--factors", type=int, nargs="+", help="llff: downscale factors for images_<k>/")
    parser.add_argument("--missing-cameras", type=int, nargs="+", help="n3dv: camera ids to leave out")
    parser.add_argument(
        "--kind", choices=("objects", "room"), help="n3dv: moving balls among static ones (default) or a static room"
    )
    parser.add_argument("--num-instances", type=int, help="srn: number of object instances")
    parser.add_argument("--split", help="srn: split folder name (default cars_train)")
    parser.add_argument("--dynamic", action="store_true", default=None, help="blender: moving objects + D-NeRF time")
    parser.add_argument(
        "--no-multiview-gt", action="store_true", default=None, help="nvidia-dynamic: skip multiview_GT/"
    )
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty output folder")
    parser.add_argument("--quiet", action="store_true", help="print only the final summary")
    return parser


def writer_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for the format's writer; raises ValueError for options the format does not take."""
    accepted = _OPTIONS[args.format]
    kwargs: dict[str, Any] = {}
    for dest in ("width", "height", "seed", "num_cameras", "num_frames", "factors", "missing_cameras"):
        kwargs_dest = accepted.get(dest)
        value = getattr(args, dest)
        if value is None:
            continue
        if kwargs_dest is None:
            raise ValueError(f"--{dest.replace('_', '-')} does not apply to format {args.format}")
        if kwargs_dest in kwargs and kwargs[kwargs_dest] != value:
            raise ValueError("nvidia-dynamic takes frame i with camera i: --num-cameras must equal --num-frames")
        kwargs[kwargs_dest] = value
    for dest in ("num_instances", "split", "dynamic", "no_multiview_gt"):
        value = getattr(args, dest)
        if value is None:
            continue
        if dest not in accepted:
            raise ValueError(f"--{dest.replace('_', '-')} does not apply to format {args.format}")
        kwargs[accepted[dest]] = (not value) if dest == "no_multiview_gt" else value
    return kwargs


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, write the dataset and return the exit status."""
    from nerfstudio_methods.scenegen.formats import FORMATS

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        kwargs = writer_arguments(args)
        output: Path = args.output
        if output.exists() and not output.is_dir():
            raise ValueError(f"--output {output} exists and is not a folder")
        if output.is_dir() and any(output.iterdir()) and not args.overwrite:
            raise ValueError(f"--output {output} is not empty (pass --overwrite to write into it)")
    except ValueError as err:
        parser.error(str(err))

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[{args.format}] {message}", flush=True)

    try:
        summary = FORMATS[args.format](output, log=log, **kwargs)
    except ValueError as err:
        parser.error(str(err))
    except OSError as err:
        print(f"{PROG}: error: could not write {args.format} dataset: {err}", file=sys.stderr)
        return 1
    print(summary.describe())
    return 0


def entrypoint() -> None:
    """Console-script entry point (``nerfstudio-methods-scene``)."""
    raise SystemExit(run())


if __name__ == "__main__":
    entrypoint()
