"""End to end, as a user runs it: generate a scene, ns-train, ns-eval, ns-render, resume, ns-viewer.

Runs nerfstudio's nerfacto with this package installed (the compatibility fixes are what make ns-eval,
ns-render, --load-dir and ns-viewer work on torch >= 2.6 offline). Tiny images and few rays keep it to minutes.
"""

from __future__ import annotations

import math
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import (
    BIN,
    assert_succeeded,
    generate_scene,
    ns_eval,
    ns_render_interpolated,
    run_command,
    run_folder,
)

CPU_FLAGS = [
    "--machine.device-type", "cpu",
    "--pipeline.model.implementation", "torch",
    "--vis", "tensorboard",
    "--viewer.quit-on-train-completion", "True",
    "--pipeline.datamanager.train-num-rays-per-batch", "128",
    "--pipeline.datamanager.eval-num-rays-per-batch", "128",
    "--pipeline.model.eval-num-rays-per-chunk", "4096",
    "--steps-per-save", "4",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained_nerfacto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step nerfacto run on a generated 32x32 Blender scene; returns the run's config.yml (cwd: its parent dir)."""
    work = tmp_path_factory.mktemp("e2e")
    scene = work / "scene"
    generate_scene("blender", scene, "--width", "32", "--height", "32", "--num-cameras", "6")
    train = run_command(
        ["ns-train", "nerfacto", *CPU_FLAGS, "--max-num-iterations", "4", "--experiment-name", "e2e",
         "--timestamp", "run", "blender-data", "--data", str(scene)],
        cwd=work,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    config = work / "outputs" / "e2e" / "nerfacto" / "run" / "config.yml"
    assert config.is_file()
    assert sorted(p.name for p in (config.parent / "nerfstudio_models").iterdir()) == ["step-000000003.ckpt"]
    return config


def test_ns_eval_writes_psnr_and_ssim(trained_nerfacto: Path) -> None:
    report, result = ns_eval(trained_nerfacto)
    assert report["method_name"] == "nerfacto"
    assert report["checkpoint"].endswith("step-000000003.ckpt")
    metrics = report["results"]
    assert 0 < metrics["psnr"] < 60 and math.isfinite(metrics["psnr"])
    assert -1 <= metrics["ssim"] <= 1
    # Offline, without cached AlexNet weights, LPIPS is left out rather than computed with random weights.
    assert "lpips" not in metrics and "lpips_std" not in metrics
    assert "LPIPS is left out" in result.stderr


def test_ns_render_writes_a_video(trained_nerfacto: Path) -> None:
    frames = ns_render_interpolated(trained_nerfacto)
    # Interpolating between the test split's cameras (the generator writes 6 per split), 2 steps each.
    assert frames.ndim == 4 and frames.shape[0] >= 2 and frames.shape[1:] == (32, 32, 3)


def test_training_resumes_from_checkpoint(trained_nerfacto: Path) -> None:
    work = run_folder(trained_nerfacto)
    result = run_command(
        ["ns-train", "nerfacto", *CPU_FLAGS, "--max-num-iterations", "6", "--experiment-name", "e2e",
         "--timestamp", "resumed", "--load-dir", str(trained_nerfacto.parent / "nerfstudio_models"),
         "blender-data", "--data", str(work / "scene")],
        cwd=work,
    )  # fmt: skip
    assert_succeeded(result)
    assert "Done loading Nerfstudio checkpoint" in result.stdout
    saved = sorted(p.name for p in (work / "outputs" / "e2e" / "nerfacto" / "resumed" / "nerfstudio_models").iterdir())
    # Resumed after step 3: 6 more iterations end at step 9 (a run from scratch would end at step 5).
    assert saved == ["step-000000009.ckpt"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ns_viewer_serves_the_checkpoint(trained_nerfacto: Path) -> None:
    work = run_folder(trained_nerfacto)
    port = _free_port()
    viewer = subprocess.Popen(
        [str(BIN / "ns-viewer"), "--load-config", str(trained_nerfacto), "--viewer.websocket-port", str(port),
         "--viewer.websocket-host", "127.0.0.1"],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        page = ""
        while time.monotonic() < deadline and viewer.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    page = response.read().decode("utf-8", "replace")
                    break
            except OSError:
                time.sleep(1)
        assert viewer.poll() is None, viewer.stdout.read() if viewer.stdout else ""
        assert "<html" in page.lower()
    finally:
        viewer.kill()
        viewer.wait(timeout=30)
