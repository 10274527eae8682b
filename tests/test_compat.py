"""The stack as installed: checkpoints load under torch's weights_only default, LPIPS offline, ffmpeg from pip."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfstudio_methods import compat
from nerfstudio_methods.compat import lpips as lpips_fix

compat.install()


def _checkpoint_like(path: Path) -> None:
    """What nerfstudio's trainer saves: tensors plus numpy scalars (e.g. from schedulers and step counters)."""
    torch.save({"step": np.int64(7), "scale": np.float64(0.5), "pipeline": {"w": torch.ones(2)}}, path)


def test_checkpoint_with_numpy_scalars_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "step-000000007.ckpt"
    _checkpoint_like(path)
    loaded = torch.load(path, map_location="cpu")  # nerfstudio 1.1.5 passes no weights_only: torch's default applies
    assert loaded["step"] == 7 and loaded["scale"] == 0.5
    assert torch.equal(loaded["pipeline"]["w"], torch.ones(2))


def test_without_the_fix_torch_refuses_the_same_checkpoint(tmp_path: Path) -> None:
    """Control: proves the previous test exercises the fix, not a lenient torch."""
    path = tmp_path / "step.ckpt"
    _checkpoint_like(path)
    code = f"import torch; torch.load({str(path)!r}, map_location='cpu')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "weights_only" in result.stderr or "Unsupported global" in result.stderr


def test_safe_loader_still_refuses_arbitrary_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"obj": Path("x")}, path)
    with pytest.raises(Exception, match="Unsupported global|weights_only"):
        torch.load(path, map_location="cpu")


def test_lpips_without_cached_weights_is_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    assert not lpips_fix.lpips_available("alex")
    lpips_fix._warn_lpips_missing.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lpips = LearnedPerceptualImagePatchSimilarity(normalize=True)
    assert [str(w.message) for w in caught if "LPIPS is left out" in str(w.message)]
    assert lpips.net is None  # no backbone was built, random or otherwise
    value = lpips(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert math.isnan(float(value))
    metrics = lpips_fix.drop_nan_lpips({"psnr": 20.0, "lpips": float(value), "lpips_std": float("nan")})
    assert metrics == {"psnr": 20.0}


def test_lpips_with_cached_weights_uses_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a backbone file in the hub cache, LPIPS is built from exactly those weights (no download)."""
    import torchvision
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    weights_path = lpips_fix.lpips_weights_path("alex")
    weights_path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    backbone = torchvision.models.alexnet(weights=None)
    torch.save(backbone.state_dict(), weights_path)
    assert lpips_fix.lpips_available("alex")
    lpips = LearnedPerceptualImagePatchSimilarity(normalize=True)
    assert lpips.net is not None
    first_conv = lpips.net.net.slice1[0].weight  # type: ignore[union-attr]
    assert torch.equal(first_conv, backbone.features[0].weight)  # type: ignore[arg-type]
    image = torch.rand(1, 3, 64, 64)
    assert float(lpips(image, image)) == pytest.approx(0.0, abs=1e-6)
    assert float(lpips(image, torch.rand(1, 3, 64, 64))) > 0


def test_pipeline_metrics_drop_unavailable_lpips() -> None:
    from nerfstudio.pipelines.base_pipeline import VanillaPipeline

    lpips_fix._drop_unavailable_lpips_from_pipeline_metrics()
    wrapped = VanillaPipeline.get_average_image_metrics
    assert getattr(wrapped, "__wrapped__", None) is not None and wrapped.__code__.co_filename == lpips_fix.__file__


def test_ffmpeg_resolves_without_system_ffmpeg(tmp_path: Path) -> None:
    """In a process whose PATH has no ffmpeg, importing the plugin makes one resolvable and usable for video."""
    bare_path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "ffmpeg").exists())
    video = tmp_path / "v.mp4"
    code = f"""
import shutil, numpy as np
assert shutil.which("ffmpeg") is None, "test needs a PATH without ffmpeg"
import nerfstudio.configs.method_configs  # plugin discovery imports our entry points, as every ns-* command does
import mediapy
from nerfstudio.utils import install_checks
install_checks.check_ffmpeg_installed()  # exits the process when ffmpeg is missing
frames = np.zeros((5, 32, 48, 3), np.uint8)
for i in range(5):
    frames[i, :, :, 0] = 40 * i
mediapy.write_video({str(video)!r}, frames, fps=10)
print(shutil.which("ffmpeg"))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PATH": bare_path}, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import imageio.v3 as iio
    import imageio_ffmpeg

    assert Path(result.stdout.strip().splitlines()[-1]).resolve() == Path(imageio_ffmpeg.get_ffmpeg_exe()).resolve()
    frames = iio.imread(video, plugin="pyav")
    assert frames.shape == (5, 32, 48, 3)
    assert np.allclose(frames[:, 16, 24, 0].astype(float), [0, 40, 80, 120, 160], atol=6)
    assert shutil.which("ffmpeg") is not None  # this test process has the plugin imported too
