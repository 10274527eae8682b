"""The soft-mining benchmarks: the verdict's arithmetic on hand-made curves, the README's tables against the committed
JSON (``benchmarks/render_results.py --check``), and each benchmark's ``--smoke`` run, so that none can silently
break."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_benchmark_smoke

sys.path.insert(0, str(REPO / "benchmarks"))
import render_results  # noqa: E402
import soft_mining_convergence as convergence  # noqa: E402


def curve(points: list[tuple[int, float, float]]) -> list[dict]:
    return [{"step": step, "cpu_seconds": cpu, "report_psnr": psnr, "tuning_psnr": psnr} for step, cpu, psnr in points]


def test_reach_interpolates_between_evaluations() -> None:
    # 22 dB at step 100 (11 s), 26 dB at step 200 (22 s): 24 dB is half-way, step 150 at 16.5 s
    soft = curve([(0, 0.0, 10.0), (100, 11.0, 22.0), (200, 22.0, 26.0)])
    assert convergence.reach(soft, 24.0, "report_psnr") == {"step": 150.0, "cpu_seconds": 16.5}
    assert convergence.reach(soft, 27.0, "report_psnr") is None


def test_ratios_by_hand() -> None:
    """Uniform ends at 24 dB after 200 steps and 20 s; soft mining reaches 24 dB at step 150, 16.5 s (seed 0) and
    at step 100, 11 s (seed 1, where it is already at 24 at step 100): ratios 200/150, 20/16.5 and 2, 20/11."""
    runs = {}
    for seed, soft_points in ((0, [(0, 0.0, 10.0), (100, 11.0, 22.0), (200, 22.0, 26.0)]),
                              (1, [(0, 0.0, 10.0), (100, 11.0, 24.0), (200, 22.0, 25.0)])):  # fmt: skip
        runs[f"lego/uniform/{seed}"] = {"scene": "lego", "arm": "uniform", "seed": seed,
                                        "curve": curve([(0, 0.0, 10.0), (100, 10.0, 20.0), (200, 20.0, 24.0)])}  # fmt: skip
        arm = convergence.DEFAULT_ARM
        runs[f"lego/{arm}/{seed}"] = {"scene": "lego", "arm": arm, "seed": seed, "curve": curve(soft_points)}
    result = convergence.compare(runs, "lego", convergence.DEFAULT_ARM, "report_psnr")
    assert result is not None
    steps, seconds = result["steps_ratio"], result["time_ratio"]
    assert steps["per_seed"] == pytest.approx({"0": 200 / 150, "1": 2.0})
    assert seconds["per_seed"] == pytest.approx({"0": 20 / 16.5, "1": 20 / 11})
    assert steps["mean"] == pytest.approx((200 / 150 + 2.0) / 2)
    assert steps["std"] == pytest.approx(abs(2.0 - 200 / 150) / 2)  # population std of two values
    assert result["final_psnr"]["per_seed"] == {"0": 26.0, "1": 25.0}
    summary = convergence.summarise(runs)["lego"]
    assert summary["steps_ratio"] == steps
    # uniform: 20 dB at its first evaluation after step 0, 24 at its last, +4 over its last two
    assert summary["uniform_curve"]["0"] == {"rise_db": 4.0, "last_change_db": 4.0, "peak_minus_final_db": 0.0}


def test_a_seed_that_never_reaches_is_missing_not_averaged() -> None:
    entry = convergence.spread({"0": 2.0, "1": None, "2": 3.0})
    assert entry["mean"] == 2.5 and entry["seeds_not_reaching"] == ["1"] and math.isclose(entry["std"], 0.5)


def test_readme_and_docs_tables_match_the_committed_results() -> None:
    """Every results block of the README and the docs is what ``render_results.py`` makes of the JSON in
    benchmarks/results/, and each benchmark with results has its block on its results page."""
    pages = {path.relative_to(REPO).as_posix(): path.read_text() for path in render_results.documents()}
    assert "docs/results/soft_mining.md" in pages and "docs/index.md" in pages
    for name, text in pages.items():
        rendered, changed = render_results.render(text, source=REPO / name)
        assert changed == [], f"{name}: blocks out of date: {changed} (run python benchmarks/render_results.py)"
        assert rendered == text
    for block in render_results.RENDERERS:
        assert sum(f"<!-- results:{block} -->" in text for text in pages.values()) == 1, block


@pytest.mark.slow
def test_convergence_benchmark_smoke() -> None:
    result = run_benchmark_smoke("soft_mining_convergence.py", "--scenes", "lego", "--arms", "uniform", "no-drift")
    written = Path(result.stdout.strip().splitlines()[-1].split()[1])
    report = json.loads(written.read_text())
    assert set(report["runs"]) == {"lego/uniform/0", "lego/no-drift/0"}
    lego = report["summary"]["lego"]
    assert set(lego["arms"]) == {"no-drift"} and set(lego["steps_ratio"]["per_seed"]) == {"0"}
    assert lego["verdict_arm"] == convergence.DEFAULT_ARM
    assert written.with_suffix(".png").is_file()


@pytest.mark.slow
def test_step_cost_benchmark_smoke() -> None:
    result = run_benchmark_smoke("soft_mining_step_cost.py")
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert set(summary["1"]) == {"uniform", "soft-mining", "no-drift"}
    assert summary["1"]["uniform"]["cpu_ratio_to_uniform"] == 1.0


def test_runs_of_other_settings_are_not_merged(tmp_path: Path) -> None:
    """A run made with another size (a smoke run, say) is refused by a results file that holds full-size runs, in one
    line naming the stored run, instead of replacing a real run."""
    path = tmp_path / "results.json"
    full = {"steps": 2000, "eval_every": 100, "rays": 512, "size_factor": 1.0}
    stored = {"scene": "lego", "arm": "uniform", "seed": 0, "settings": full, "curve": curve([(0, 0.0, 8.0)])}
    convergence.merge_run(path, stored)
    smoke = stored | {"settings": full | {"steps": 20, "size_factor": 0.25}}
    with pytest.raises(SystemExit, match="run lego/uniform/0 was made with other settings"):
        convergence.merge_run(path, smoke)
    assert json.loads(path.read_text())["runs"]["lego/uniform/0"]["settings"]["steps"] == 2000
