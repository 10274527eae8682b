"""Multi-process CPU training (compat fix 5): ``ns-train --machine.num-devices 2 --machine.device-type cpu`` on gloo.

nerfstudio 1.1.5's spawned worker asserts CUDA and its pipeline passes CUDA ``device_ids`` to DDP; the package swaps
in a CPU worker and lets DDP/barrier drop the ids on CPU. Methods that cannot train in several processes say why
before anything is spawned. Programs run in subprocesses are in tests/multiprocess_probe.py.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from nerfstudio.engine.trainer import TrainerConfig
from torch.nn.parallel import DistributedDataParallel as DDP

from nerfstudio_methods import compat
from nerfstudio_methods.compat import multi_process
from tests import test_soft_mining_end_to_end as soft_mining_e2e
from tests.conftest import REPO, assert_succeeded, generate_scene, ns_eval, run_command
from tests.test_infonerf_end_to_end import TINY as INFONERF_E2E_TINY
from tests.test_mononerf_end_to_end import TINY as MONONERF_E2E_TINY

compat.install()

TWO_CPU_PROCESSES = ["--machine.device-type", "cpu", "--machine.num-devices", "2"]


def probe_env() -> dict[str, str]:
    """Small tensors run fastest on one thread (2 shared cores); ``tests`` importable for the probe programs."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {"OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def nerfstudio_worker_arguments(config: object, device_type: str) -> tuple:
    """The ``args`` nerfstudio 1.1.5's ``launch`` passes to ``mp.spawn(_distributed_worker, ...)``."""
    from nerfstudio.scripts.train import train_loop

    return (train_loop, 2, 2, 0, "tcp://127.0.0.1:29500", config, timedelta(minutes=1), device_type)


# --- the worker swap and refusals ------------------------------------------------------------------------------


def test_cpu_runs_spawn_the_package_worker_and_cuda_runs_nerfstudio_s() -> None:
    from nerfstudio.scripts.train import _distributed_worker

    config = TrainerConfig()
    cpu = nerfstudio_worker_arguments(config, "cpu")
    assert multi_process.worker_for_spawn(_distributed_worker, cpu) is multi_process.cpu_distributed_worker
    cuda = nerfstudio_worker_arguments(config, "cuda")
    assert multi_process.worker_for_spawn(_distributed_worker, cuda) is _distributed_worker  # NCCL path untouched
    assert multi_process.worker_for_spawn(print, cpu) is print  # anybody else's spawn untouched
    assert (
        multi_process.worker_for_spawn(_distributed_worker, cpu[:5]) is _distributed_worker
    )  # unknown argument layout


def test_install_wraps_spawn_once() -> None:
    import torch.multiprocessing as mp

    wrapped = mp.spawn
    assert getattr(wrapped, "_nerfstudio_methods", False)
    multi_process.route_multi_process_training()
    compat.install()
    assert mp.spawn is wrapped


def test_refusing_method_stops_before_spawning_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from nerfstudio.scripts.train import _distributed_worker

    from nerfstudio_methods.streamrf.config import streamrf
    from nerfstudio_methods.streamrf.pipeline import StreamRFPipeline

    reason = StreamRFPipeline.multi_process_refusal
    assert reason and multi_process.multi_process_refusal(streamrf.config) == reason
    with pytest.raises(SystemExit) as stopped:
        multi_process.worker_for_spawn(_distributed_worker, nerfstudio_worker_arguments(streamrf.config, "cpu"))
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"error: streamrf cannot train with 2 processes: {reason}\n"


def test_methods_measured_under_two_processes_do_not_refuse() -> None:
    from nerfstudio.configs.method_configs import method_configs

    from nerfstudio_methods.infonerf.config import infonerf, infonerf_dtu
    from nerfstudio_methods.mononerf.config import mononerf, mononerf_cpu
    from nerfstudio_methods.soft_mining.config import soft_mining, soft_mining_llff, soft_mining_vanilla_nerf

    ours = (infonerf, infonerf_dtu, mononerf, mononerf_cpu, soft_mining, soft_mining_llff, soft_mining_vanilla_nerf)
    for config in [spec.config for spec in ours] + [method_configs["nerfacto"]]:
        assert multi_process.multi_process_refusal(config) is None, config.method_name


# --- DDP on CPU --------------------------------------------------------------------------------------------------


def test_ddp_and_barrier_take_cuda_device_ids_on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """VanillaPipeline's ``DDP(model, device_ids=[local_rank])`` and ``dist.barrier(device_ids=[local_rank])``."""
    monkeypatch.setattr(DDP, "__init__", DDP.__init__)  # restored after the test: the fix belongs to CPU workers
    monkeypatch.setattr(dist, "barrier", dist.barrier)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="device_ids"):  # control: torch refuses without the fix
            DDP(torch.nn.Linear(2, 1), device_ids=[0])
        multi_process.allow_ddp_on_cpu()
        multi_process.allow_ddp_on_cpu()  # idempotent: wrapped once
        assert not getattr(DDP.__init__.__wrapped__, "_cpu_device_ids_dropped", False)  # type: ignore[attr-defined]
        model = DDP(torch.nn.Linear(2, 1), device_ids=[0], find_unused_parameters=True)
        assert model.device_ids is None
        dist.barrier(device_ids=[0])
    finally:
        dist.destroy_process_group()


def test_two_cpu_processes_through_nerfstudio_launch(tmp_path: Path) -> None:
    """nerfstudio's ``launch`` with 2 CPU processes: gloo, nerfstudio's comms, DDP as VanillaPipeline builds it."""
    program = f"from tests.multiprocess_probe import launch_ddp_step; launch_ddp_step({str(tmp_path)!r})"
    assert_succeeded(run_command(["python", "-c", program], cwd=tmp_path, env=probe_env(), timeout=300))
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    for rank, seen in enumerate(ranks):
        assert seen["backend"] == "gloo"
        assert (seen["rank"], seen["local_rank"], seen["local_size"], seen["world_size"]) == (rank, rank, 2, 2)
        assert seen["main"] == (rank == 0)
    torch.manual_seed(0)
    rank0_init = torch.nn.Linear(3, 1).weight.detach()
    for seen in ranks:
        assert torch.equal(seen["weight"], rank0_init)  # rank 1 (seeded 1) starts from rank 0's weights
        assert torch.allclose(seen["grad"], torch.full((1, 3), 1.5))  # mean of the ranks' inputs, 1 and 2


# --- end to end ----------------------------------------------------------------------------------------------------

PROBE = "import sys; from tests.multiprocess_probe import main; main(sys.argv[1:])"


def cpu_flags(flags: list[str]) -> list[str]:
    """An end-to-end suite's tiny settings minus their leading device flag (TWO_CPU_PROCESSES sets it)."""
    assert flags[:2] == ["--machine.device-type", "cpu"], flags[:2]
    return flags[2:]


def train_in_two_processes(work: Path, method: str, settings: list[str], data: list[str]) -> Path:
    """``ns-train <method> <settings> <data>`` in 2 CPU processes through tests/multiprocess_probe.py, which also
    saves each rank's parameters; asserts both ranks ended with the same ones and rank 0's checkpoint holds them;
    returns the run's folder."""
    result = run_command(
        ["python", "-c", PROBE, method, *TWO_CPU_PROCESSES, *settings, "--experiment-name", "mp", "--timestamp", "run",
         *data],
        cwd=work, env=probe_env(), timeout=600,
    )  # fmt: skip
    assert_succeeded(result)
    run = work / "outputs" / "mp" / method / "run"
    (checkpoint,) = (run / "nerfstudio_models").iterdir()
    rank0, rank1 = (torch.load(run / f"rank{rank}_parameters.pt") for rank in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) > 10
    different = [name for name in rank0 if not torch.equal(rank0[name], rank1[name])]
    assert not different, different
    saved = torch.load(checkpoint, map_location="cpu")["pipeline"]
    weight = next(name for name in rank0 if name.endswith("weight"))
    assert torch.equal(saved[f"_model.module.{weight}"], rank0[weight])  # the checkpoint holds those weights
    return run


BLENDER_SCENE = ["blender", "--width", "32", "--height", "32", "--num-cameras", "6"]
VIDEO_SCENE = ["nvidia-dynamic", "--width", "24", "--height", "16", "--num-frames", "6"]
SOFT_MINING_TINY = [*cpu_flags(soft_mining_e2e.COMMON), *soft_mining_e2e.TINY_NERFACTO]
TWO_PROCESS_METHODS = {
    # the InfoNeRF suite's 4-step run on 3 views
    "infonerf": (BLENDER_SCENE, ["blender-fewshot-data", "--train-views", "0", "2", "4", "--eval-skip", "1"],
                 cpu_flags(INFONERF_E2E_TINY)),
    # the soft-mining suite's 4-step run (each process keeps its own population of samples)
    "soft-mining": (BLENDER_SCENE, ["blender-data"], [
        *SOFT_MINING_TINY, "--max-num-iterations", "4", "--steps-per-save", "4", "--pipeline.alpha-warmup-steps", "0",
    ]),
    # the soft-mining suite's 2 steps of vanilla NeRF
    "soft-mining-vanilla-nerf": (BLENDER_SCENE, ["blender-data"], [
        *cpu_flags(soft_mining_e2e.COMMON), "--max-num-iterations", "2", "--steps-per-save", "2",
        "--pipeline.model.num-coarse-samples", "8", "--pipeline.model.num-importance-samples", "8",
    ]),
    # the MonoNeRF suite's sizes, 2 static + 2 dynamic steps: both stages (each its own optimiser group)
    "mononerf-cpu": (VIDEO_SCENE, ["dynamic-scene-data"], [
        *cpu_flags(MONONERF_E2E_TINY), "--max-num-iterations", "4", "--steps-per-save", "4",
        "--pipeline.model.static-steps", "2",
    ]),
}  # fmt: skip
"""Methods docs/multi_process.md says train in 2 CPU processes: generated scene, dataparser (and its options), ns-train
settings."""


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(TWO_PROCESS_METHODS))
def test_two_cpu_processes_train_with_identical_weights_and_ns_eval_reads_them(method: str, tmp_path: Path) -> None:
    """Both ranks end with the same parameters and rank 0's checkpoint holds them (train_in_two_processes); ns-eval
    reads the run."""
    (fmt, *size), dataparser, settings = TWO_PROCESS_METHODS[method]
    scene = generate_scene(fmt, tmp_path / "scene", *size)
    run = train_in_two_processes(tmp_path, method, settings, [*dataparser, "--data", str(scene)])
    steps = int(settings[settings.index("--max-num-iterations") + 1])
    assert sorted(p.name for p in (run / "nerfstudio_models").iterdir()) == [f"step-{steps - 1:09d}.ckpt"]
    report, _ = ns_eval(run / "config.yml")
    assert report["method_name"] == method
    assert math.isfinite(report["results"]["psnr"]) and 0 < report["results"]["psnr"] < 60


@pytest.mark.slow
def test_ns_train_nerfacto_with_two_cpu_processes(tmp_path: Path) -> None:
    scene = generate_scene("blender", tmp_path / "scene", "--width", "32", "--height", "32", "--num-cameras", "6")
    result = run_command(
        ["ns-train", "nerfacto", *TWO_CPU_PROCESSES, "--pipeline.model.implementation", "torch",
         "--vis", "tensorboard", "--viewer.quit-on-train-completion", "True",
         "--pipeline.datamanager.train-num-rays-per-batch", "128",
         "--pipeline.datamanager.eval-num-rays-per-batch", "128",
         "--pipeline.model.eval-num-rays-per-chunk", "4096", "--max-num-iterations", "4", "--steps-per-save", "4",
         "--experiment-name", "mp", "--timestamp", "run", "blender-data", "--data", str(scene)],
        cwd=tmp_path, env=probe_env(), timeout=600,
    )  # fmt: skip
    assert_succeeded(result)
    models = tmp_path / "outputs" / "mp" / "nerfacto" / "run" / "nerfstudio_models"
    assert sorted(p.name for p in models.iterdir()) == ["step-000000003.ckpt"]


@pytest.mark.slow
def test_ns_train_streamrf_with_two_processes_refuses_in_one_line(tmp_path: Path) -> None:
    from nerfstudio_methods.streamrf.pipeline import StreamRFPipeline

    scene = generate_scene("n3dv", tmp_path / "scene", "--width", "16", "--height", "16", "--num-cameras", "2",
                           "--num-frames", "2")  # fmt: skip
    result = run_command(
        ["ns-train", "streamrf", *TWO_CPU_PROCESSES, "--vis", "tensorboard", "--experiment-name", "mp",
         "n3dv-data", "--data", str(scene), "--downscale-factor", "1"],
        cwd=tmp_path, env=probe_env(), timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    expected = f"error: streamrf cannot train with 2 processes: {StreamRFPipeline.multi_process_refusal}"
    assert [line for line in result.stderr.splitlines() if line.strip()] == [expected], result.stderr[-2000:]
    assert not list((tmp_path / "outputs").rglob("*.ckpt"))  # refused before any process trained
