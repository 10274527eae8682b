"""``scripts/demo_report.py still``: the docs' record of a demo is its video's middle frame and the held-out metrics
of ns-eval's JSON, as they are (checked on a video made here, frame by frame known)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from tests.conftest import REPO


def test_still_is_the_middle_frame_and_the_metrics_are_ns_eval_s(tmp_path: Path) -> None:
    # 5 frames of 64 x 32, each a flat grey of its own level: the middle one (index 2) is 120
    frames = np.stack([np.full((32, 64, 3), level, dtype=np.uint8) for level in (0, 60, 120, 180, 240)])
    video = tmp_path / "video.mp4"
    iio.imwrite(video, frames, fps=5, codec="libx264", plugin="pyav")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"results": {"psnr": 23.5, "ssim": 0.81, "lpips": float("nan"), "fps": 2.0}}))
    stem = tmp_path / "record" / "demo_x"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo_report.py"), "still", str(video), f"arm={metrics}"]
        + ["--method", "x", "--output", str(stem), "--seconds", "12.34", "--cpu-seconds", "9.87"],
        check=True,
        capture_output=True,
    )
    record = json.loads(stem.with_suffix(".json").read_text())
    assert record["video"] == {"frames": 5, "height": 32, "width": 64} and record["still_frame"] == 2
    assert record["metrics"] == {"arm": {"psnr": 23.5, "ssim": 0.81}}  # NaN LPIPS left out, fps not a metric
    assert record["method"] == "x" and record["command"] == "bash scripts/demo.sh x" and record["seconds"] == 12.3
    assert record["cpu_seconds"] == 9.9
    still = iio.imread(stem.with_suffix(".png"))
    assert still.shape == (32, 64, 3) and abs(float(still.mean()) - 120) < 4  # x264's rounding of a flat grey
    assert sorted(path.name for path in stem.parent.iterdir()) == ["demo_x.json", "demo_x.png"]  # no partial left
