"""The InfoNeRF benchmark's ``--smoke`` run (few-shot on lego and DTU): it runs end to end at a tiny size on the real
data, so that it cannot silently break, and scores every run on disjoint tuning and report views."""

from __future__ import annotations

import json
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
        # the views the settings were searched on (lego val[::8], DTU every dtu_eval_skip-th of the 46) and the
        # report views are disjoint; the smoke run caps the report views at report_view_cap
        views = run["held_out_views"]
        assert not set(views["tuning"]) & set(views["report"]) and len(views["report"]) == setup["report_view_cap"]
        if run["scene"] == "lego":
            assert views["tuning"] == [f"r_{i}.png" for i in range(0, 100, 8)]
            assert views["report"] == [f"r_{i}.png" for i in range(1, 2 * setup["report_view_cap"], 2)]
        else:
            assert len(views["tuning"]) == len(range(0, 46, setup["dtu_eval_skip"]))
        assert finite(run["held_out_tuning"]["psnr"], run["held_out_tuning"]["ssim"])
    regularized = {f"{r['scene']}:{r['model']}:{r['variant']}" for r in runs if not r["variant"].startswith("baseline")}
    assert set(report["gains"]) == regularized
    for gain in report["gains"].values():
        assert gain["baseline"].startswith("baseline") and set(gain["per_seed"]) == {"0"}
        assert finite(gain["psnr_gain_mean"], *gain["per_seed"]["0"].values()) and gain["psnr_gain_std"] is None
        assert gain["psnr_gain_tuning_views_mean"] == gain["per_seed"]["0"]["psnr_tuning_views"]
