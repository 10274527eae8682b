"""The MonoNeRF generalisation benchmark: its verdict arithmetic on hand-made curves, the settings guard of its
results file, and its ``--smoke`` run (every comparison, tiny sizes) so that it cannot silently break. The README's
tables against the committed JSON are checked with the other benchmarks' (test_soft_mining_benchmark.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_benchmark_smoke

sys.path.insert(0, str(REPO / "benchmarks"))
import mononerf_generalization as bench  # noqa: E402


def curve(points: list[tuple[int, float]]) -> list[dict]:
    return [{"step": step, "psnr": psnr} for step, psnr in points]


def test_adaptation_summary_by_hand() -> None:
    """Scratch: 900 steps, 20 dB at step 675 (3/4), 21 dB at the end. Fine-tuning: 19 dB at step 0, 20 at 100,
    22 at 200: it reaches 21 dB half-way between 100 and 200, at step 150, i.e. 150 / 900 of scratch's steps."""
    scratch = curve([(0, 9.0), (300, 18.0), (675, 20.0), (900, 21.0)])
    fine_tuned = curve([(0, 19.0), (100, 20.0), (200, 22.0), (300, 22.5)])
    summary = bench.adaptation_summary(fine_tuned, scratch)
    assert summary["fine_tuned_reaches_scratch_final_at_step"] == pytest.approx(150.0)
    assert summary["step_ratio"] == pytest.approx(150 / 900)
    assert summary["fine_tuned_minus_scratch_final_db"] == pytest.approx(1.5)
    assert summary["scratch_last_quarter_gain_db"] == pytest.approx(1.0)
    never = bench.adaptation_summary(curve([(0, 10.0), (300, 20.5)]), scratch)
    assert never["step_ratio"] is None and never["fine_tuned_minus_scratch_final_db"] == pytest.approx(-0.5)


def test_spread_is_the_sample_std_and_skips_missing_seeds() -> None:
    entry = bench.spread({"seed0": 1.0, "seed1": 3.0, "seed2": None})
    assert entry["mean"] == 2.0 and entry["std"] == pytest.approx(2**0.5) and entry["missing"] == 1
    assert bench.spread({"seed0": None})["mean"] is None


def test_a_results_file_refuses_runs_of_other_settings(tmp_path: Path) -> None:
    """Shared settings (scene size, rays) must match every stored run; a comparison's own settings only its own."""
    args = bench.parse_args(["--output", str(tmp_path), "--work", str(tmp_path / "work"), "--balloon", ""])
    path = tmp_path / "results.json"
    cell = {"ratio": 2.0, "dilation": 1, "iou": 0.25, "precision": 0.3, "recall": 0.6, "derived_fraction": 0.3}
    entry = {"true_moving_fraction": 0.15, "grid": [cell]}
    bench.store(path, args, "mask-tuning", "seed3", entry)
    other_schedule = argparse.Namespace(**{**vars(args), "scratch_dynamic_steps": 7})
    bench.store(path, other_schedule, "mask-tuning", "seed4", entry)  # not a mask-tuning setting: kept
    selection = bench.parse_args(
        ["--output", str(tmp_path), "--work", str(tmp_path / "work"), "--balloon", "", "--seeds", "9",
         "--frames-scenes", "generated", "--comparisons", "unseen-frames", "--summarise"]
    )  # fmt: skip
    bench.store(path, selection, "mask-tuning", "seed4", entry)  # which runs a process makes is not a setting
    smaller = argparse.Namespace(**{**vars(args), "rays": 32})
    with pytest.raises(SystemExit, match=r"results.json: made with other settings \(rays\)"):
        bench.store(path, smaller, "mask-tuning", "seed5", entry)
    fewer_ratios = argparse.Namespace(**{**vars(args), "mask_ratios": [2.0]})
    with pytest.raises(SystemExit, match=r"other settings \(mask_ratios\)"):
        bench.store(path, fewer_ratios, "mask-tuning", "seed5", entry)
    assert set(json.loads(path.read_text())["results"]["mask-tuning"]) == {"seed3", "seed4"}


@pytest.mark.slow
def test_smoke_run_gives_every_verdict(tmp_path: Path) -> None:
    run_benchmark_smoke("mononerf_generalization.py", "--output", tmp_path, timeout=900)
    report = json.loads((tmp_path / "mononerf_generalization.json").read_text())
    summary = report["summary"]
    assert set(summary) == {"unseen_scene", "blending_diagnostic", "unseen_frames", "preprocessing", "mask_tuning"}
    assert set(summary["unseen_scene"]["step_ratio"]["per_seed"]) == {"seed0"}
    assert set(summary["unseen_frames"]) == {"Balloon1", "generated"}
    assert set(summary["unseen_frames"]["generated"]["gain_db"]["per_seed"]) == {"seed0"}
    assert "derived_masks_gain_db" in summary["unseen_frames"]["Balloon1"]
    assert set(summary["preprocessing"]) == {"all-parts", "no-flow", "no-disparity", "derived-masks", "no-masks",
                                             "no-features"}  # fmt: skip
    assert summary["preprocessing"]["all-parts"]["minus_all_parts_db"]["mean"] == 0.0
    arms = report["results"]["unseen-scene"]["seed0"]["arms"]
    assert "--pipeline.model.pretrained-checkpoint" in arms["fine-tuned"]["cli"]
    assert "--pipeline.model.pretrained-fresh-blending False" in arms["fine-tuned-kept-blending"]["cli"]
    assert (tmp_path / "mononerf_generalization_adaptation.png").is_file()


@pytest.mark.parametrize("fresh_blending", [True, False])
def test_the_recorded_ns_train_line_builds_the_measured_configuration(tmp_path: Path, fresh_blending: bool) -> None:
    """The unseen-scene arms record an ``ns-train`` line: parsed as ns-train parses it, it gives the model, the
    dataparser, the rays and the steps the benchmark trained with, so the README's command is the path measured."""
    import shlex

    import tyro
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion

    checkpoint = tmp_path / "step-000001200.ckpt"
    config = bench.make_config(
        bench.parse_args([]), tmp_path / "scene", use_features=True, static_steps=100, total_steps=300,
        pretrained=checkpoint, fresh_blending=fresh_blending, mask_flow_loss_mult=0.01,
    )  # fmt: skip
    line = bench.ns_train_command(config, checkpoint, fresh_blending)
    assert line.startswith("ns-train mononerf-cpu ")
    parsed = tyro.cli(AnnotatedBaseConfigUnion, args=shlex.split(line)[1:])
    assert parsed.pipeline.model == config.pipeline.model
    assert parsed.pipeline.model.pretrained_fresh_blending is fresh_blending
    assert parsed.pipeline.datamanager.dataparser == config.pipeline.datamanager.dataparser
    assert parsed.pipeline.datamanager.train_num_rays_per_batch == config.pipeline.datamanager.train_num_rays_per_batch
    assert parsed.max_num_iterations == config.max_num_iterations == 300


def test_mask_tuning_summary_picks_the_best_mean_iou_and_reports_its_precision() -> None:
    def cell(ratio: float, iou: float, precision: float, fraction: float) -> dict:
        return {"ratio": ratio, "dilation": 0, "iou": iou, "precision": precision, "recall": 0.5,
                "derived_fraction": fraction}  # fmt: skip

    results = {
        "mask-tuning": {
            "seed3": {"true_moving_fraction": 0.1, "grid": [cell(2.0, 0.4, 0.2, 0.3), cell(3.0, 0.2, 0.6, 0.1)]},
            "seed4": {"true_moving_fraction": 0.2, "grid": [cell(2.0, 0.1, 0.4, 0.5), cell(3.0, 0.2, 0.8, 0.2)]},
        }
    }
    tuning = bench.summarise(results)["mask_tuning"]
    # mean IoU: ratio 2 -> (0.4 + 0.1) / 2 = 0.25, ratio 3 -> 0.2
    assert tuning["mean_iou"] == pytest.approx({"ratio 2, dilation 0": 0.25, "ratio 3, dilation 0": 0.2})
    assert tuning["best"] == "ratio 2, dilation 0"
    assert tuning["best_cell"] == pytest.approx(
        {"precision": 0.3, "recall": 0.5, "derived_fraction": 0.4, "true_moving_fraction": 0.15}
    )
