"""``ns-viewer`` in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright through its
executable path) opens the viewer of a tiny trained run of ``infonerf``, ``soft-mining`` and ``streamrf``; the page
connects and shows a rendered frame that is not just background, on the ``rgb`` output, from the central training
camera (where the viewer starts for this collection's runs).

Slow (one short ns-train and one ns-viewer per method). Skipped, with how to enable them, where Chromium or
Playwright is missing; CI installs both (.ci/run, the dev extra).
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import BIN, assert_succeeded, generate_scene, run_command, run_folder

CHROMIUM = Path(os.environ.get("NSM_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.is_file() or importlib.util.find_spec("playwright") is None:
    pytest.skip(
        f"browser tests need Chromium at {CHROMIUM} and Playwright: `apt-get install chromium` (or set NSM_CHROMIUM "
        "to a Chromium binary) and `pip install -e .[dev]` (playwright); .ci/run does both",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow

# swiftshader: WebGL on the CPU (no GPU in CI); no sandbox: CI runs as root.
CHROMIUM_ARGS = ["--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
CPU = ["--machine.device-type", "cpu", "--vis", "tensorboard", "--viewer.quit-on-train-completion", "True",
       "--experiment-name", "browser", "--timestamp", "run"]  # fmt: skip


def train(work: Path, method: str, *args: str) -> Path:
    result = run_command(["ns-train", method, *CPU, *args], cwd=work, env=ONE_THREAD)
    assert_succeeded(result)
    config = work / "outputs" / "browser" / method / "run" / "config.yml"
    assert config.is_file()
    return config


@pytest.fixture(scope="module")
def infonerf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("browser_infonerf")
    generate_scene("blender", work / "scene", "--width", "32", "--height", "32", "--num-cameras", "6")
    return train(work, "infonerf", "--max-num-iterations", "100", "--steps-per-save", "100",
                 "--pipeline.datamanager.train-num-rays-per-batch", "128",
                 "--pipeline.datamanager.num-unseen-rays", "64", "--pipeline.model.num-coarse-samples", "16",
                 "--pipeline.model.num-importance-samples", "16", "--pipeline.model.mlp-layer-width", "64",
                 "blender-fewshot-data", "--train-views", "0", "2", "4", "--eval-skip", "1",
                 "--data", str(work / "scene"))  # fmt: skip


@pytest.fixture(scope="module")
def soft_mining_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("browser_soft_mining")
    generate_scene("blender", work / "scene", "--width", "32", "--height", "32", "--num-cameras", "6")
    return train(work, "soft-mining", "--max-num-iterations", "60", "--steps-per-save", "60",
                 "--pipeline.datamanager.train-num-rays-per-batch", "128",
                 "--pipeline.model.implementation", "torch", "--pipeline.model.num-proposal-samples-per-ray", "16", "8",
                 "--pipeline.model.num-nerf-samples-per-ray", "8", "--pipeline.model.log2-hashmap-size", "12",
                 "--pipeline.alpha-warmup-steps", "0", "blender-data", "--data", str(work / "scene"))  # fmt: skip


@pytest.fixture(scope="module")
def streamrf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 frames of a generated N3DV video, with its end-to-end test's tiny settings."""
    work = tmp_path_factory.mktemp("browser_streamrf")
    generate_scene("n3dv", work / "scene", "--width", "32", "--height", "32", "--num-cameras", "4",
                   "--num-frames", "3")  # fmt: skip
    return train(work, "streamrf", "--steps-per-save", "1000",
                 "--pipeline.model.frame0-resolutions", "8", "8", "8", "16", "16", "16",
                 "--pipeline.model.frame0-upsample-every", "6", "--pipeline.model.frame0-steps", "12",
                 "--pipeline.model.pilot-frame0-steps", "4", "--pipeline.model.pilot-steps", "3",
                 "--pipeline.model.steps-per-frame", "3", "--pipeline.model.frame0-lr-density-delay-steps", "0",
                 "--pipeline.model.dilate-after", "1", "--pipeline.model.lr-sh", "0.3",
                 "--pipeline.model.lr-sh-final", "0.3", "--pipeline.keyframe-every", "2",
                 "--pipeline.datamanager.train-num-rays-per-batch", "128",
                 "--pipeline.datamanager.frame0-num-rays-per-batch", "128",
                 "n3dv-data", "--data", str(work / "scene"), "--downscale-factor", "1")  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def viewer_page(config: Path) -> Iterator[Any]:
    """``ns-viewer`` on the run (from its training folder, as nerfstudio requires) and a Chromium page on it."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    log = config.parent / f"ns-viewer-{port}.log"
    with log.open("w") as output:
        viewer = subprocess.Popen(
            [str(BIN / "ns-viewer"), "--load-config", str(config), "--viewer.websocket-host", "127.0.0.1",
             "--viewer.websocket-port", str(port)],
            cwd=run_folder(config), env={**os.environ, **ONE_THREAD}, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            assert viewer.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "ns-viewer did not start listening: " + log.read_text()[-3000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 900, "height": 640})
                page.goto(f"http://127.0.0.1:{port}")
                page.get_by_text("Connected").wait_for(timeout=60_000)
                yield page
            finally:
                browser.close()
    finally:
        viewer.terminate()
        try:
            viewer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            viewer.kill()
            viewer.wait()


def control(page: Any, label: str) -> Any:
    """The element of the viewer's control labelled ``label`` (viser: <label for=id>, then the element id)."""
    target = page.locator("label", has_text=re.compile(f"^{label}$")).first.get_attribute("for")
    return page.locator(f'[id="{target}"]')


def slider(page: Any, label: str) -> Any:
    """The thumb of the viewer's slider labelled ``label``."""
    return control(page, label).locator('[role="slider"]')


def set_slider(page: Any, label: str, key: str) -> None:
    """Move a slider to an end with the keyboard (``Home`` / ``End``), as a user can."""
    thumb = slider(page, label)
    thumb.focus()
    page.keyboard.press(key)


def canvas(page: Any) -> np.ndarray:
    """The 3D view as RGB floats in [0, 255] (the canvas left of the control panel)."""
    from PIL import Image

    box = page.locator("canvas").first.bounding_box()
    panel_button = page.get_by_role("button", name=re.compile("Train Cams")).first.bounding_box()
    width = min(box["width"], panel_button["x"] - box["x"] - 16)  # the control panel's buttons span it, inset
    shot = page.screenshot(clip={"x": box["x"], "y": box["y"], "width": width, "height": box["height"]})
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.float64)


def settled_canvas(page: Any, timeout: float = 120) -> np.ndarray:
    """The 3D view once a frame was rendered and two screenshots 1.5 s apart agree (the viewer renders a moved
    camera at low resolution first, then refines)."""
    page.wait_for_function("() => /Resolution: [1-9]/.test(document.body.innerText)", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    previous = canvas(page)
    while True:
        time.sleep(1.5)
        current = canvas(page)
        if np.abs(current - previous).mean() < 0.5:
            return current
        assert time.monotonic() < deadline, "the viewer's image kept changing"
        previous = current


def assert_rendered(image: np.ndarray) -> None:
    """Not just background: the viewer's empty canvas is one dark colour but for a small logo and axes gizmo (99% of
    it is one colour), and a render of only the scene's background is one colour too. A rendered object covers a
    tenth of the view or more (the generated objects, seen from a training camera)."""
    quantised = (image // 16).astype(np.int64)
    codes = quantised[..., 0] * 256 + quantised[..., 1] * 16 + quantised[..., 2]
    dominant = np.bincount(codes.ravel()).max() / codes.size
    assert dominant < 0.9, f"{dominant:.0%} of the view is one colour"
    assert image.std() > 8.0, f"pixel standard deviation {image.std():.1f}"


def open_and_check(page: Any) -> np.ndarray:
    set_slider(page, "Max res", "Home")  # the smallest renders (64 px): CPU rendering
    image = settled_canvas(page)
    assert_rendered(image)
    assert control(page, "Output type").input_value() == "rgb"  # the output the viewer opened on
    return image


@pytest.mark.parametrize("run", ["infonerf_run", "soft_mining_run", "streamrf_run"])
def test_viewer_renders_the_scene(run: str, request: pytest.FixtureRequest) -> None:
    with viewer_page(request.getfixturevalue(run)) as page:
        open_and_check(page)
