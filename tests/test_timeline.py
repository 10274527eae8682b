"""``nerfstudio_methods.timeline``: the one conversion between a frame and its time, on every kind of value the
package passes it, and light enough for the scene generator (no torch)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from nerfstudio_methods.timeline import continuous_frame, nearest_frame, time_of_frame
from tests.conftest import REPO


def test_time_of_frame_on_ints_arrays_and_tensors() -> None:
    assert time_of_frame(0, 1) == 0.0 and time_of_frame(3, 5) == 0.75 and time_of_frame(4, 5) == 1.0
    assert np.array_equal(time_of_frame(np.arange(5, dtype=np.float64), 5), np.arange(5) / 4)
    assert np.array_equal(time_of_frame(np.arange(1, dtype=np.float64), 1), np.zeros(1))
    frames = torch.arange(7, dtype=torch.float32)
    assert torch.equal(time_of_frame(frames, 7), frames / 6)


def test_nearest_frame_inverts_time_of_frame() -> None:
    for count in (1, 2, 6, 31):
        frames = torch.arange(count)
        times = time_of_frame(frames.float(), count)
        assert torch.equal(nearest_frame(times, count), frames)
        assert torch.allclose(continuous_frame(times, count), frames.float())


def test_the_scene_generator_uses_timeline_without_torch() -> None:
    code = "import sys, nerfstudio_methods.scenegen.formats; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
