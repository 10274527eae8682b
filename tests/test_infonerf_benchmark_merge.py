"""``benchmarks/infonerf_fewshot.py --merge``: runs made by several processes (one per seed) become one results file
whose gains pair each seed's runs as one process would; files of other settings, or a run twice, are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SETUP = {"steps": 800, "paper": False, "rays": 256, "lego_scale": 0.125, "dtu_scale": 0.25, "dtu_eval_skip": 4}


def run(variant: str, seed: int, psnr: float, tuning: float) -> dict:
    """A run record as the benchmark writes it (the fields the pairing and the gains read)."""
    return {
        "scene": "lego", "model": "nerfacto", "variant": variant, "seed": seed, "steps": 800, "background": "white",
        "average_init_density": 0.1, "camera_res_scale_factor": 0.125,
        "held_out": {"psnr": psnr, "ssim": 0.5}, "held_out_tuning": {"psnr": tuning, "ssim": 0.5},
    }  # fmt: skip


def results(tmp_path: Path, name: str, runs: list[dict], **setup: object) -> Path:
    path = tmp_path / name
    report = {"benchmark": "b", "setup": SETUP | setup, "device": "cpu", "variants": {"lego": []}, "runs": runs}
    path.write_text(json.dumps(report))
    return path


def merge(tmp_path: Path, *paths: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "benchmarks" / "infonerf_fewshot.py"), "--merge", *map(str, paths)]
    return subprocess.run(
        command + ["--output", str(tmp_path / "out"), "--tag", "m"], capture_output=True, text=True, check=False
    )


def test_merged_gains_pair_each_seed_across_files(tmp_path: Path) -> None:
    first = results(tmp_path, "s0.json", [run("baseline", 0, 17.0, 18.0), run("infonerf", 0, 19.0, 19.5)])
    second = results(tmp_path, "s1.json", [run("baseline", 1, 16.0, 17.0), run("infonerf", 1, 19.0, 18.0)])
    assert merge(tmp_path, first, second).returncode == 0
    merged = json.loads((tmp_path / "out" / "infonerf_fewshot_m.json").read_text())
    gain = merged["gains"]["lego:nerfacto:infonerf"]
    # per seed: 19 - 17 = 2 and 19 - 16 = 3 on the report views, 1.5 and 1.0 on the tuning views
    assert gain["per_seed"]["0"]["psnr"] == pytest.approx(2.0) and gain["per_seed"]["1"]["psnr"] == pytest.approx(3.0)
    assert gain["psnr_gain_mean"] == pytest.approx(2.5) and gain["psnr_gain_std"] == pytest.approx(0.5**0.5)
    assert gain["psnr_gain_tuning_views_mean"] == pytest.approx(1.25)
    assert [r["invocation"] for r in merged["runs"]] == ["s0.json"] * 2 + ["s1.json"] * 2


def test_other_settings_or_a_run_twice_are_refused_in_one_line(tmp_path: Path) -> None:
    first = results(tmp_path, "s0.json", [run("baseline", 0, 17.0, 18.0)])
    other = results(tmp_path, "s1.json", [run("baseline", 1, 17.0, 18.0)], steps=400)
    refused = merge(tmp_path, first, other)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == f"error: {other}: steps = 400, but {first} has 800"
    twice = merge(tmp_path, first, first)
    assert twice.returncode != 0 and twice.stderr.strip().startswith("error: s0.json: run lego:nerfacto:baseline:0")


def test_a_merged_file_merges_again_keeping_its_invocations(tmp_path: Path) -> None:
    """A merged file (lego's seeds) and another scene's file (DTU) merge into one: every run keeps the file it was
    made in, the invocations of both levels are listed, and each scene's gains pair its own runs."""
    first = results(tmp_path, "s0.json", [run("baseline", 0, 17.0, 18.0), run("infonerf", 0, 19.0, 19.5)])
    second = results(tmp_path, "s1.json", [run("baseline", 1, 16.0, 17.0), run("infonerf", 1, 19.0, 18.0)])
    assert merge(tmp_path, first, second).returncode == 0
    lego = tmp_path / "out" / "infonerf_fewshot_m.json"
    dtu_runs = [run("baseline", 0, 9.0, 9.5) | {"scene": "dtu"}, run("infonerf", 0, 6.0, 6.5) | {"scene": "dtu"}]
    dtu = results(tmp_path, "dtu.json", dtu_runs)
    command = [sys.executable, str(REPO / "benchmarks" / "infonerf_fewshot.py"), "--merge", str(lego), str(dtu),
               "--output", str(tmp_path / "all"), "--tag", "all"]  # fmt: skip
    assert subprocess.run(command, capture_output=True, text=True, check=False).returncode == 0
    merged = json.loads((tmp_path / "all" / "infonerf_fewshot_all.json").read_text())
    assert [i["file"] for i in merged["invocations"]] == ["s0.json", "s1.json", "dtu.json"]
    assert [r["invocation"] for r in merged["runs"]] == ["s0.json"] * 2 + ["s1.json"] * 2 + ["dtu.json"] * 2
    assert merged["gains"]["lego:nerfacto:infonerf"]["psnr_gain_mean"] == pytest.approx(2.5)
    assert merged["gains"]["dtu:nerfacto:infonerf"]["per_seed"]["0"]["psnr"] == pytest.approx(-3.0)  # 6 - 9
