"""The StreamRF memory benchmark's ``--smoke`` run: its three parts (the memory child on a tiny grid, the deltas of
two schedules from one frame 0, sparse against dense speed) end to end at a tiny size, so that it cannot silently
break."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import finite, run_benchmark_smoke


@pytest.mark.slow
def test_smoke_run_writes_every_part(tmp_path: Path) -> None:
    run_benchmark_smoke("streamrf_memory.py", "--output", tmp_path)
    report = json.loads((tmp_path / "streamrf_memory.json").read_text())
    assert list(report) == ["config", "memory", "delta", "speed", "wall_seconds"]
    config = report["config"]
    assert config["smoke"] is True and config["output"] == str(tmp_path)

    memory = report["memory"]
    assert set(memory) == set(config["sizes"])
    for size in memory.values():
        assert "error" not in size, size.get("error")
        assert size["voxels"] == math.prod(size["grid"]) and 0 < size["occupied_fraction"] <= 1
        assert size["rays_per_step"] == config["rays"]
        assert list(size["stages"]) == ["previous_frame_and_pilot_grid", "pilot_pass", "full_pass_start",
                                        "full_pass_step", "full_pass_second_step", "full_pass_end_and_delta",
                                        "frame0_upsampling_to_full"]  # fmt: skip
        assert all(finite(*stage.values()) for stage in size["stages"].values())
        assert finite(size["one_step_peak_gb"], size["dense_grid_total_gb"])
        assert size["state_tensors_total_gb"] == pytest.approx(sum(size["state_tensors_gb"].values()))
        assert 0 < size["state_tensors_total_gb"] < size["dense_grid_total_gb"]

    delta = report["delta"]
    assert delta["grid"] == config["resolution"] and delta["frame0_bytes"] > 0
    assert list(delta["schedules"]) == config["schedules"]
    for schedule in delta["schedules"].values():
        assert [frame["frame"] for frame in schedule["per_frame"]] == list(range(1, config["frames"]))
        for frame in schedule["per_frame"]:
            assert frame["bytes"] > 0 and frame["dense_fp32_over_delta"] == pytest.approx(
                delta["dense_fp32_grid_bytes"] / frame["bytes"]
            )
            assert 0 <= frame["occupied_fraction"] <= 1 and finite(frame["bytes_per_stored_voxel"])
        assert schedule["mean_delta_bytes"] > 0 and finite(schedule["stream_seconds"])

    speed = report["speed"]
    kinds = {"full_pass", "pilot_pass", "frame0_fully_occupied"}
    assert set(speed["seconds_per_step_median"]) == kinds == set(speed["dense_over_sparse_time"])
    for kind, by_storage in speed["all_block_times"].items():
        assert {storage: len(times) for storage, times in by_storage.items()} == {
            "sparse": config["speed_rounds"], "dense": config["speed_rounds"],
        }  # fmt: skip
        assert all(value > 0 for value in speed["seconds_per_step_median"][kind].values())
        assert finite(speed["dense_over_sparse_time"][kind])
    assert speed["occupied_fraction"]["frame0_fully_occupied"] == 1.0
