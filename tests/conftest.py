"""Shared test fixtures: where the real datasets live, and running ns-* commands as a user would."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

pytest.register_assert_rewrite("tests.browser")  # its checks say what they compared, as in the test files

if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    # scripts/test.sh runs two xdist workers on CI's 2 cores: one torch thread per worker and per command it starts
    # (the environment is inherited), not torch's default of one per core, which puts 4 busy threads and more on 2
    # cores. Measured on the idle 2-core machine: the suite 16:48 -> 13:54, the demo test 446 -> 226 s.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BIN = Path(sys.executable).parent


def shared_data(relative: str) -> Path:
    """A folder of ../shared/data; the suite needs it (CI lays it beside the clone)."""
    path = SHARED_DATA / relative
    if not path.exists():
        raise FileNotFoundError(f"real test data missing: {path} (expected ../shared/data beside the repo)")
    return path


@pytest.fixture
def fern() -> Path:
    return shared_data("nerf_llff_data/fern")


def run_command(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run an installed console script (ns-train, ns-eval, ...) from this venv; output captured as text."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore::FutureWarning", **(env or {})}
    executable = BIN / args[0]
    return subprocess.run(
        [str(executable), *args[1:]],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_succeeded(result: subprocess.CompletedProcess) -> None:
    """A command's exit status is 0; otherwise fail showing the end of its output."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """The command stopped with status 2 and one ``error:`` line holding every fragment, without a traceback."""
    assert result.returncode == 2, result.stdout[-1500:] + result.stderr[-1500:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.stderr


def generate_scene(fmt: str, output: Path, *options: str) -> Path:
    """Write a generated dataset with the package's CLI (``nerfstudio-methods-scene``) and return its folder."""
    assert_succeeded(
        run_command(
            ["nerfstudio-methods-scene", "--format", fmt, "--output", str(output), "--quiet", *options],
            cwd=output.parent,
        )
    )
    return output


def run_folder(config: Path) -> Path:
    """The folder ns-train ran in: config.yml sits at outputs/<experiment>/<method>/<timestamp>/ below it."""
    return config.parents[4]


def ns_eval(config: Path) -> tuple[dict, subprocess.CompletedProcess]:
    """Run ``ns-eval`` on a run's config.yml (from the training folder, as nerfstudio requires); returns its JSON."""
    work = run_folder(config)
    result = run_command(["ns-eval", "--load-config", str(config), "--output-path", "metrics.json"], cwd=work)
    assert_succeeded(result)
    return json.loads((work / "metrics.json").read_text()), result


def ns_render_interpolated(config: Path, *options: str) -> np.ndarray:
    """Run ``ns-render interpolate`` between the eval cameras (``--pose-source train`` in ``options``: the training
    cameras) and return the decoded video frames [T, H, W, 3]."""
    import imageio.v3 as iio

    work = run_folder(config)
    video = work / "renders" / "orbit.mp4"
    result = run_command(
        ["ns-render", "interpolate", "--load-config", str(config), "--output-path", str(video),
         "--interpolation-steps", "2", "--frame-rate", "4", *options],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(result)
    return iio.imread(video, plugin="pyav")


def blender_images(scene: Path, split: str = "test") -> list[np.ndarray]:
    """The images of ``transforms_<split>.json`` in [0, 1], H x W x 3, composited on white as nerfstudio's Blender
    reader (``alpha_color`` white) gives them to ns-eval."""
    import imageio.v3 as iio

    frames = json.loads((scene / f"transforms_{split}.json").read_text())["frames"]
    images = []
    for frame in frames:
        rgba = iio.imread(scene / f"{frame['file_path']}.png").astype(np.float64) / 255.0
        images.append(rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:]) if rgba.shape[-1] == 4 else rgba)
    return images


def best_constant_psnr(images: Sequence[np.ndarray]) -> float:
    """ns-eval's PSNR (the mean over the images of each image's PSNR over all its pixels and channels, as its
    torchmetrics PSNR with data range 1) of the best render in one constant colour, every image ``H x W x 3`` in
    [0, 1]. A model that learned no scene renders at most this well.

    The per-channel mean colour of all the images minimises their total squared error; a mean of per-image PSNRs
    (logarithms of each image's error) instead favours a colour nearer the images with small errors, so the mean is
    refined by majorize-minimize: log e <= log e0 + (e - e0) / e0, whose minimiser is the mean of the image means
    weighted by 1 / e0 (each step can only raise the mean PSNR; it settles in a few steps)."""
    pixels = [np.asarray(image, dtype=np.float64).reshape(-1, 3) for image in images]
    image_means = np.stack([p.mean(axis=0) for p in pixels])
    sizes = np.array([len(p) for p in pixels], dtype=np.float64)
    colour = (image_means * sizes[:, None]).sum(axis=0) / sizes.sum()  # the mean colour: least total squared error

    def errors(c: np.ndarray) -> np.ndarray:
        return np.array([np.mean((p - c) ** 2) for p in pixels])

    for _ in range(100):
        weights = 1.0 / errors(colour)  # each image counts once in the mean of PSNRs, whatever its size
        colour = (image_means * weights[:, None]).sum(axis=0) / weights.sum()
    return float(np.mean(-10.0 * np.log10(errors(colour))))


def min_frame_std(frames: np.ndarray) -> float:
    """The smallest, over a video's frames ``[T, H, W, 3]``, of a frame's pixel standard deviation (8-bit units): 0
    for a frame in one colour, and h264 keeps a flat frame within a code or two."""
    return float(min(np.asarray(frame, dtype=np.float64).std() for frame in frames))


LONGEST_FILES_FIRST = (
    "test_multiprocess.py",  # 2-process runs of 4 methods, each with ns-eval: 461 s on the busy shared 2 cores
    "test_viewer_browser.py",
    "test_demo.py",
    "test_threeda_ae_end_to_end.py",
    "test_soft_mining_end_to_end.py",
    "test_infonerf_end_to_end.py",
    "test_streamrf_end_to_end.py",
    "test_end_to_end.py",
    "test_mononerf_end_to_end.py",
    "test_soft_mining_benchmark.py",
)
"""The files with the longest total time (pytest --durations on CI's 2 cores), longest first. scripts/test.sh runs
pytest-xdist with whole files per worker in collection order (``--dist loadfile --no-loadscope-reorder``); starting
these first keeps one of them from being the last file on one worker while the other worker idles (xdist's default
order, most tests first, put the two longest files, which hold 1 and 4 tests, at the very end: 20 minutes)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def run_benchmark_smoke(script: str, *args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``benchmarks/<script> --smoke <args>`` on one thread; fails with the end of its output unless it succeeds."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--smoke", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def finite(*values: object) -> bool:
    """Every value is a finite int or float (what a benchmark's JSON holds for a measured number)."""
    return all(isinstance(value, (int, float)) and math.isfinite(value) for value in values)
