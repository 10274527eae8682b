"""The InfoNeRF benchmarks' ``--smoke`` runs (few-shot on lego and DTU, few-shot lego, the gradient-ratio
diagnostic): each runs end to end at a tiny size on the real data, so that none can silently break."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import finite, run_benchmark_smoke


def run_smoke(script: str, output: Path) -> dict:
    """``benchmarks/<script> --smoke --output <output>`` on one thread; its JSON ``<output>/<stem>.json``."""
    run_benchmark_smoke(script, "--output", output)
    return json.loads((output / f"{Path(script).stem}.json").read_text())


@pytest.mark.slow
def test_fewshot_smoke_runs_both_scenes_and_models(tmp_path: Path) -> None:
    report = run_smoke("infonerf_fewshot.py", tmp_path)
    assert list(report) == ["benchmark", "setup", "device", "variants", "runs", "gains", "figures"]
    setup = report["setup"]
    assert setup["smoke"] is True and setup["seeds"] == [0] and setup["output"] == str(tmp_path)
    runs = report["runs"]
    assert {run["scene"] for run in runs} == {"lego", "dtu"} == set(report["variants"]) == set(report["figures"])
    for scene in ("lego", "dtu"):
        roles = [(run["model"], run["variant"].startswith("baseline")) for run in runs if run["scene"] == scene]
        # one baseline and one regularized variant per model, each once
        assert sorted(roles) == sorted(
            {(model, baseline) for model in ("nerfacto", "vanilla") for baseline in (False, True)}
        )
        assert len(report["variants"][scene]) == len(roles)
        figure = report["figures"][scene]
        assert Path(figure["path"]).is_file() and len(figure["columns"]) == len(roles) + 1
    for run in runs:
        assert run["steps"] == setup["steps"] and run["seed"] == 0
        assert finite(run["held_out"]["psnr"], run["held_out"]["ssim"], run["train_view_psnr"], run["train_seconds"])
        assert 0.0 <= run["held_out"]["opacity"] <= 1.0 + 1e-6
        if run["variant"].startswith("baseline"):
            assert run["entropy_lambda"] == 0.0 and run["kl_lambda"] == 0.0 and run["num_unseen_rays"] == 0
    regularized = {f"{r['scene']}:{r['model']}:{r['variant']}" for r in runs if not r["variant"].startswith("baseline")}
    assert set(report["gains"]) == regularized
    for gain in report["gains"].values():
        assert gain["baseline"].startswith("baseline") and set(gain["per_seed"]) == {"0"}
        assert finite(gain["psnr_gain_mean"], *gain["per_seed"]["0"].values()) and gain["psnr_gain_std"] is None


@pytest.mark.slow
def test_fewshot_lego_smoke_trains_every_variant(tmp_path: Path) -> None:
    report = run_smoke("infonerf_fewshot_lego.py", tmp_path)
    variants = report["variants"]
    names = list(variants)
    assert names[:2] == ["nerf_no_regularizers", "infonerf"] and len(names) == 3  # and one extra entropy weight
    steps = report["setup"]["steps"]
    for name, run in variants.items():
        assert finite(run["metrics"]["psnr"], run["metrics"]["ssim"], run["train_seconds"])
        curve = run["held_out_curve"]
        assert curve[0]["step"] == 0 and curve[-1]["step"] == steps and len(curve) >= 2
        assert all(finite(point["psnr"], point["accumulation"], point["seconds"]) for point in curve)
        assert 0.0 <= run["view0_mean_accumulation"] <= 1.0 + 1e-6
        assert (run["entropy_lambda"] == 0.0) is (name == "nerf_no_regularizers")
        if name != "nerf_no_regularizers":
            gain = report["infonerf_minus_baseline" if name == "infonerf" else f"{name}_minus_baseline"]
            assert finite(gain["psnr"], gain["ssim"])
    assert finite(report["reference_all_white_psnr"])
    assert (tmp_path / "infonerf_fewshot_lego.png").is_file()
    assert (tmp_path / "infonerf_fewshot_lego_curves.png").is_file()


@pytest.mark.slow
def test_gradient_ratio_smoke_measures_every_interval(tmp_path: Path) -> None:
    report = run_smoke("infonerf_gradient_ratio.py", tmp_path)
    setup = report["setup"]
    assert setup["smoke"] is True
    assert [record["step"] for record in report["records"]] == list(range(0, setup["steps"] + 1, setup["every"]))
    for record in report["records"]:
        assert finite(*record.values())
        assert record["grad_norm_fine_colour"] > 0
        assert record["entropy_to_colour_ratio"] == pytest.approx(
            record["grad_norm_weighted_entropy"] / record["grad_norm_fine_colour"]
        )
        assert 0 <= record["mean_ray_entropy_bits"] <= report["max_entropy_bits"] + 1e-6
    assert report["max_entropy_bits"] == pytest.approx(math.log2(setup["coarse_samples"] + setup["fine_samples"]))
