"""The StreamRF stream benchmark: its storage extrapolation and summary arithmetic by hand, the settings guard of its
results file, and its ``--smoke`` run (both scene kinds, tiny sizes) so that it cannot silently break. The README's
table against the committed JSON is checked with the other benchmarks' (test_soft_mining_benchmark.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, run_benchmark_smoke

sys.path.insert(0, str(REPO / "benchmarks"))
import streamrf_stream as bench  # noqa: E402


def entry(kind: str, seed: int, gap: float, time_ratio: float) -> dict:
    return {
        "kind": kind,
        "seed": seed,
        "ratios": {"psnr_gap_db": gap, "time_ratio": time_ratio, "dense_over_delta": 120.0,
                   "sparse_state_over_delta": 8.0, "scratch_last_quarter_gain_db": 0.01},
        "scene_stats": {"occupancy_after_frame0": 0.2, "stored_fraction_of_occupied_per_frame": [0.01, 0.03],
                        "moving_area_max": 0.02},
        "n3dv_extrapolation": {"mb_per_frame": 2.0},
    }  # fmt: skip


def test_n3dv_extrapolation_by_hand() -> None:
    # a 10^3 grid, 200 occupied voxels, 20 stored per frame at 60 B each (1200 B of values), 125 B of occupancy bits,
    # 25 B of changed flags and 50 B of the rest: 1400 B in all
    record = {
        "scene_stats": {"occupied_after_frame0": 200},
        "storage": {
            "grid_voxels": 1000, "mean_stored_voxels": 20.0, "mean_delta_bytes": 1400.0,
            "mean_delta_parts": {"added_values": 200.0, "changed_values": 1000.0, "occupancy_bits": 125.0,
                                 "changed_bits": 25.0, "kind": 10.0, "shape": 10.0},
        },
    }  # fmt: skip
    n3dv = 512 * 512 * 128
    # occupancy 0.2, 10% of the occupied stored at 60 B; 0.125 B per grid voxel; 0.125 B per occupied voxel; 50 B
    expected = (n3dv * 0.2 * 0.1 * 60 + n3dv * 0.125 + n3dv * 0.2 * 0.125 + 50) / 1e6
    result = bench.n3dv_extrapolation(record)
    assert result["mb_per_frame"] == pytest.approx(expected)
    assert f"= {expected:.2f} MB" in result["arithmetic"]


def test_summary_per_scene_kind_with_spread_and_targets() -> None:
    results = {
        "room/seed0": entry("room", 0, -0.2, 25.0),
        "room/seed1": entry("room", 1, -0.6, 15.0),
        "objects/seed0": entry("objects", 0, -0.9, 21.0),
    }
    summary = bench.summarise_stream(results)
    assert list(summary) == ["room", "objects"]  # the N3DV-shaped row first
    room = summary["room"]
    assert room["psnr_gap_db"]["mean"] == pytest.approx(-0.4)
    assert room["psnr_gap_db"]["std"] == pytest.approx(0.28284271, rel=1e-6)  # sample std of -0.2, -0.6
    assert room["time_ratio"]["per_seed"] == {"seed0": 25.0, "seed1": 15.0}
    assert room["stored_fraction_of_occupied"]["mean"] == pytest.approx(0.02)
    assert room["meets"] == {"psnr_gap_db": True, "time_ratio": True, "dense_over_delta": True,
                             "sparse_state_over_delta": False}  # fmt: skip
    assert summary["objects"]["meets"]["psnr_gap_db"] is False


def test_a_results_file_refuses_runs_of_other_settings(tmp_path: Path) -> None:
    args = bench.parse_args(["--output", str(tmp_path)])
    record = entry("room", 0, -0.2, 25.0) | {
        "stream": {"per_frame": []}, "scratch": [], "storage": {"dense_fp32_bytes": 1000, "sparse_state_bytes": 100},
    }  # fmt: skip
    bench.store_stream_entry(args, record)
    bench.store_stream_entry(bench.parse_args(["--output", str(tmp_path), "--seeds", "4", "--kinds", "room"]), record)
    other = bench.parse_args(["--output", str(tmp_path), "--full-steps", "30"])
    with pytest.raises(SystemExit, match=r"streamrf_stream.json: made with other settings \(full_steps\)"):
        bench.store_stream_entry(other, record)
    assert list(json.loads((tmp_path / "streamrf_stream.json").read_text())["results"]) == ["room/seed0"]


def test_octile_sums_and_the_occupancy_summary_by_hand() -> None:
    mask = torch.zeros(16, 2, 2, dtype=torch.bool)
    mask[0, 0, 0] = mask[1] = True  # slab 0: 1 + 4 voxels
    mask[15, 1, 1] = True  # slab 7: 1 voxel
    assert bench.octile_sums(mask).tolist() == [5.0, 0, 0, 0, 0, 0, 0, 1.0]

    def run(near: float, far: float, psnr: float) -> dict:
        return {"occupancy_by_depth_octile": [near] * 4 + [far] * 4, "visible_fraction_of_occupied": 0.9,
                "semi_transparent_fraction": 0.8, "occupancy_of_voxels_at_least_half_opaque": 0.05,
                "heldout_psnr_frame0": psnr, "heldout_psnr_frame0_opaque_voxels_only": psnr - 10,
                "motion_footprint_share_of_occupied": near / 10, "changed_voxels_inside_motion_footprint": 0.25}  # fmt: skip

    rows = bench.summarise_occupancy({"objects/seed1": run(0.5, 0.5, 20), "room/seed1": run(0.1, 0.9, 30),
                                      "room/seed2": run(0.3, 0.7, 32)})  # fmt: skip
    assert list(rows) == ["room", "objects"]
    assert rows["room"]["near_half_occupancy"]["mean"] == pytest.approx(0.2)
    assert rows["room"]["far_half_occupancy"]["per_seed"] == {"seed1": 0.9, "seed2": 0.7}
    assert rows["room"]["heldout_psnr_frame0_opaque_voxels_only"]["mean"] == pytest.approx(21.0)
    assert rows["room"]["motion_footprint_share_of_occupied"]["mean"] == pytest.approx(0.02)
    assert rows["objects"]["semi_transparent_fraction"] == {"mean": 0.8, "std": 0.0, "per_seed": {"seed1": 0.8},
                                                            "missing": 0}  # fmt: skip


@pytest.mark.slow
def test_smoke_run_writes_the_summary_of_both_scene_kinds(tmp_path: Path) -> None:
    run_benchmark_smoke("streamrf_stream.py", "--output", tmp_path, timeout=900)
    report = json.loads((tmp_path / "streamrf_stream.json").read_text())
    assert list(report) == ["summary", "benchmark", "configuration", "results", "occupancy_analysis"]
    assert set(report["summary"]) == {"room", "objects"}
    for row in report["summary"].values():
        for name in ("psnr_gap_db", "time_ratio", "dense_over_delta", "sparse_state_over_delta"):
            assert set(row[name]["per_seed"]) == {"seed0"} and row[name]["mean"] is not None
    room = report["results"]["room/seed0"]
    assert len(room["stream"]["per_frame"]) == 3 and [r["frame"] for r in room["scratch"]] == [1, 2]
    assert 0 < room["scene_stats"]["moving_area_max"] <= 0.05
    assert "MB" in room["n3dv_extrapolation"]["arithmetic"]
    assert (tmp_path / "streamrf_stream.png").is_file()
    analysis = report["occupancy_analysis"]["room/seed0"]
    assert analysis["occupancy"] == pytest.approx(room["scene_stats"]["occupancy_after_frame0"])
    assert analysis["heldout_psnr_frame0"] == pytest.approx(room["stream"]["per_frame"][0]["heldout_psnr"], abs=1e-3)
    assert len(analysis["stored_share_of_occupied_by_depth_octile"]) == 8
    assert "near_half_occupancy" in report["summary"]["room"]["occupancy_explained"]
    assert 0 <= analysis["changed_voxels_inside_motion_footprint"] <= 1
    assert 0 < analysis["motion_footprint_share_of_occupied"] <= 1  # the balls move in every frame
    import render_results

    table = render_results.streamrf_stream(report).splitlines()
    assert [line.split(" | ")[0] for line in table[2:4]] == ["| room", "| objects"]
