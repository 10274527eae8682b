"""The viewer in a real browser, shared by the browser tests: ``ns-viewer`` on a trained run, headless Chromium
(Debian's ``chromium``, driven by Playwright through its executable path) on its page, and what a user does there
(sliders moved with the keyboard, screenshots of the 3D view)."""

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
from typing import Any, Optional

import numpy as np

from tests.conftest import BIN, run_folder

CHROMIUM = Path(os.environ.get("NSM_CHROMIUM", "/usr/bin/chromium"))
# swiftshader: WebGL on the CPU (no GPU in CI); no sandbox: CI runs as root.
CHROMIUM_ARGS = ["--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def missing_browser() -> Optional[str]:
    """Why the browser tests cannot run here (None when they can)."""
    if CHROMIUM.is_file() and importlib.util.find_spec("playwright") is not None:
        return None
    return (
        f"browser tests need Chromium at {CHROMIUM} and Playwright: `apt-get install chromium` (or set NSM_CHROMIUM "
        "to a Chromium binary) and `pip install -e .[dev]` (playwright); .ci/run does both"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def viewer_page(config: Path, viewport: tuple[int, int] = (900, 640)) -> Iterator[Any]:
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
                page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
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


def choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in the viewer's dropdown labelled ``label``, as a user does (open it, click the option)."""
    control(page, label).click()
    page.get_by_role("option", name=option, exact=True).click()
    assert control(page, label).input_value() == option


def shows_control(page: Any, label: str) -> bool:
    """Whether the viewer shows a control labelled ``label``."""
    labels = page.locator("label", has_text=re.compile(f"^{label}$"))
    return labels.count() > 0 and labels.first.is_visible()


def slider(page: Any, label: str) -> Any:
    """The thumb of the viewer's slider labelled ``label``."""
    return control(page, label).locator('[role="slider"]')


def set_slider(page: Any, label: str, key: str) -> None:
    """Move a slider to an end with the keyboard (``Home`` / ``End``), as a user can."""
    thumb = slider(page, label)
    thumb.focus()
    page.keyboard.press(key)


def visible_view(page: Any) -> tuple[dict[str, float], float]:
    """The 3D canvas's box and the x where the control panel, docked over the canvas's right side, begins: the 3D
    view is the canvas left of it (its camera's aspect and centre are that part's)."""
    box = page.locator("canvas").first.bounding_box()
    panel = page.get_by_role("button", name=re.compile("Train Cams")).first.locator(
        "xpath=ancestor::div[contains(@class, 'mantine-Paper-root')][1]"
    )
    return box, panel.bounding_box()["x"]


def canvas(page: Any) -> np.ndarray:
    """The 3D view as RGB floats in [0, 255] (the canvas left of the control panel)."""
    box, right = visible_view(page)
    return screenshot(page, box["x"], box["y"], right - box["x"], box["height"])


def screenshot(page: Any, x: float, y: float, width: float, height: float) -> np.ndarray:
    from PIL import Image

    shot = page.screenshot(clip={"x": x, "y": y, "width": width, "height": height})
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.float64)


def shows_full_resolution(page: Any) -> bool:
    """Whether the viewer's last render is its static full-resolution one: the "Resolution: WxHpx" it reports has
    its larger side at the Max res slider's value (nerfstudio's render state machine renders a changed view at a
    resolution fitted to its measured speed first, then at Max res)."""
    found = re.search(r"Resolution: (\d+)x(\d+)px", page.inner_text("body"))
    max_res = float(slider(page, "Max res").get_attribute("aria-valuenow"))
    return found is not None and max(int(found[1]), int(found[2])) == max_res


def settled_canvas(page: Any, timeout: float = 120) -> np.ndarray:
    """The 3D view once the viewer shows its full-resolution render and two screenshots 1.5 s apart agree. (The
    viewer renders a changed view at low resolution first, then refines; on a loaded CPU the low-resolution image
    can stay for longer than 1.5 s, which once made two screenshots of it agree.)"""
    page.wait_for_function("() => /Resolution: [1-9]/.test(document.body.innerText)", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    previous = canvas(page)
    while True:
        time.sleep(1.5)
        current = canvas(page)
        if np.abs(current - previous).mean() < 0.5 and shows_full_resolution(page):
            return current
        assert time.monotonic() < deadline, "the viewer's image kept changing or never reached Max res"
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


def changed_canvas(page: Any, before: np.ndarray, timeout: float = 60) -> np.ndarray:
    """The 3D view once it changed from ``before`` (the server re-renders after a control moved) and settled; the
    unchanged view if nothing changed within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if np.abs(canvas(page) - before).mean() > 0.5:
            return settled_canvas(page)
    return canvas(page)


def training_view(page: Any, height: int, width: int) -> np.ndarray:
    """The central training camera's image as the viewer shows it, at that image's size. The viewer opened at that
    camera's pose and vertical field of view (compat.start_view) and renders the 3D view's aspect around its centre,
    so the image spans the view's height and ``width / height`` times it across, centred."""
    from PIL import Image

    box, right = visible_view(page)
    scale = box["height"] / height  # screen pixels per image pixel
    left = (box["x"] + right) / 2 - width * scale / 2
    assert left >= box["x"], "the 3D view is narrower than the training camera's image"
    shot = screenshot(page, left, box["y"], width * scale, box["height"])
    small = Image.fromarray(shot.astype(np.uint8)).resize((width, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64)
