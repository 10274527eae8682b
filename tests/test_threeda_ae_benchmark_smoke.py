"""The 3Da-AE benchmarks' ``--smoke`` runs (the scaling benchmark and the stage-2 schedule diagnostic): each runs end
to end at a tiny size on generated scenes, so that neither can silently break."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, finite, run_benchmark_smoke


def run_smoke(script: str, output: Path) -> dict:
    """``benchmarks/<script> --smoke --output <output>`` (a JSON file) on one thread; the JSON it wrote."""
    run_benchmark_smoke(script, "--output", output)
    return json.loads(output.read_text())


def assert_median_timing(run: dict, repeats: int) -> None:
    """The run's training time is the median of its ``repeats`` timed trainings, its phases those of that one."""
    timings = sorted(run["train_seconds_repeats"])
    assert len(timings) == repeats and run["train_seconds"] == timings[(repeats - 1) // 2] > 0
    assert run["train_seconds"] == pytest.approx(sum(run["phase_seconds"].values()))


def assert_latent_run(run: dict, num_scenes: int, eval_views: int, repeats: int) -> None:
    assert run["eval"]["views"] == num_scenes * eval_views and len(run["eval"]["psnr_per_scene"]) == num_scenes
    assert finite(run["eval"]["psnr"], run["eval"]["ssim"], run["eval_subset"]["psnr"], run["autoencoder_psnr"])
    assert run["seconds_per_scene"] == pytest.approx(run["train_seconds"] / num_scenes)
    assert_median_timing(run, repeats)
    assert 0 < run["per_scene_state_bytes"] <= run["effective_per_scene_state_bytes"]


@pytest.mark.slow
def test_scaling_smoke_runs_every_method_at_every_n(tmp_path: Path) -> None:
    report = run_smoke("threeda_ae_scaling.py", tmp_path / "threeda_ae_scaling.json")
    settings = report["settings"]
    assert settings["smoke"] is True and settings["cpu_preset"] is True
    assert [result["seed"] for result in report["per_seed"]] == settings["seeds"] == [0, 1]
    for result in report["per_seed"]:
        assert finite(result["stage_one"]["train_seconds"], result["stage_one"]["eval"]["psnr"])
        assert result["stage_one"]["autoencoder_phase_steps"] > 0
        assert [entry["num_scenes"] for entry in result["scales"]] == settings["scenes"]
        for entry in result["scales"]:
            n = entry["num_scenes"]
            assert_latent_run(entry["latent_3d_aware"], n, settings["eval_views"], settings["timing_repeats"])
            assert ("latent_scratch" in entry) is (n <= settings["scratch_max_scenes"])
            if "latent_scratch" in entry:
                assert_latent_run(entry["latent_scratch"], n, settings["eval_views"], settings["timing_repeats"])
            rgb = entry["rgb"]
            assert rgb["trained_scenes"] == min(n, settings["rgb_max_scenes"]) and rgb["autoencoder_psnr"] is None
            assert 1 <= len(rgb["curve"]) <= settings["rgb_max_epochs"] and finite(rgb["eval"]["psnr"])
            target = entry["latent_3d_aware"]["eval_subset"]["psnr"]
            assert rgb["reached_target"] is (rgb["curve"][-1]["psnr"] >= target)
            assert_median_timing(rgb, settings["timing_repeats"])
    # across seeds: each value's mean, sample standard deviation and per-seed values, from the per-seed summaries
    rows = report["summary"]["rows"]
    assert [row["num_scenes"] for row in rows] == settings["scenes"]
    for index, row in enumerate(rows):
        seed_rows = [result["summary"]["rows"][index] for result in report["per_seed"]]
        assert ("psnr_gain_3d_aware_over_scratch" in row) is ("psnr_gain_3d_aware_over_scratch" in seed_rows[0])
        for key in ("time_ratio_latent_over_rgb", "psnr_latent_3d_aware", "seconds_per_scene_rgb"):
            values = [seed_row[key] for seed_row in seed_rows]
            assert row[f"{key}_per_seed"] == values
            assert row[key] == pytest.approx((values[0] + values[1]) / 2)
            assert row[f"{key}_std"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
    assert (tmp_path / "threeda_ae_scaling.png").is_file()
    assert len(list(tmp_path.glob("threeda_ae_bench_*/seed*/stage_one.ckpt"))) == 2  # kept for threeda_ae_schedule.py
    assert_merge_gives_the_same_summary(report, tmp_path)


def assert_merge_gives_the_same_summary(report: dict, tmp_path: Path) -> None:
    """``--merge``: the seeds run by two processes give the summary one process gives; a seed twice is refused."""
    parts = []
    for result in report["per_seed"]:
        part = tmp_path / f"seed{result['seed']}.json"
        part.write_text(json.dumps(report | {"per_seed": [result], "settings": report["settings"] | {"seeds": [0]}}))
        parts.append(str(part))
    script = [sys.executable, str(REPO / "benchmarks" / "threeda_ae_scaling.py"), "--merge"]
    merged_path = tmp_path / "merged" / "threeda_ae_scaling.json"
    subprocess.run(script + parts + ["--output", str(merged_path)], check=True, capture_output=True)
    merged = json.loads(merged_path.read_text())
    assert merged["summary"] == report["summary"] and merged["settings"]["seeds"] == [0, 1]
    command = script + [parts[0], parts[0], "--output", str(merged_path)]
    twice = subprocess.run(command, check=False, capture_output=True, text=True)
    assert twice.returncode != 0 and twice.stderr.strip() == f"error: {parts[0]}: seed 0 is also in another file"


@pytest.mark.slow
def test_schedule_smoke_learns_the_scenes_with_each_schedule(tmp_path: Path) -> None:
    report = run_smoke("threeda_ae_schedule.py", tmp_path / "threeda_ae_schedule.json")
    settings = report["settings"]
    assert settings["smoke"] is True and Path(settings["stage_one"]).is_file()
    runs = report["runs"]
    assert [f"{run['latent_epochs']:g},{run['decoder_epochs']:g}" for run in runs] == settings["schedules"]
    for run in runs:
        assert_latent_run(run, settings["num_scenes"], settings["eval_views"], settings["timing_repeats"])
        assert set(run["phase_seconds"]) == ({"latent", "decoder"} if run["decoder_epochs"] else {"latent"})
