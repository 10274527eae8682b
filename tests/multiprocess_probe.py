"""Programs that tests/test_multiprocess.py runs in a subprocess (not a test module itself).

- ``main(argv)``: ``ns-train`` whose every process also saves its model's parameters at the end, to compare the
  ranks. It takes ns-train's arguments and runs what ``ns-train`` runs (``nerfstudio.scripts.train.main``: the
  config is parsed, saved and passed to ``launch``, so the spawn goes through the package's multi-process fix),
  except that each process ends by writing ``rank<global rank>_parameters.pt`` into the run's folder:

      python -c "import sys; from tests.multiprocess_probe import main; main(sys.argv[1:])" nerfacto ... blender-data

- ``launch_ddp_step(folder)``: nerfstudio's ``launch`` with two CPU processes, each of which wraps a small linear
  layer in DDP as ``VanillaPipeline`` does (``device_ids=[local_rank]``, ``dist.barrier(device_ids=...)``), takes
  one backward pass on its own input and saves what it saw to ``<folder>/rank<rank>.pt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PARAMETERS_FILE = "rank{rank}_parameters.pt"


def train_and_save_parameters(local_rank: int, world_size: int, config: Any, global_rank: int = 0) -> None:
    """nerfstudio's ``train_loop``, then this process's model parameters to ``<run>/rank<rank>_parameters.pt``."""
    import torch
    from nerfstudio.scripts.train import _set_random_seed

    _set_random_seed(config.machine.seed + global_rank)
    trainer = config.setup(local_rank=local_rank, world_size=world_size)
    trainer.setup()
    trainer.train()
    parameters = {name: p.detach().cpu().clone() for name, p in trainer.pipeline.model.named_parameters()}
    torch.save(parameters, config.get_base_dir() / PARAMETERS_FILE.format(rank=global_rank))


def main(argv: list[str]) -> None:
    import tyro
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
    from nerfstudio.scripts import train

    config = tyro.cli(AnnotatedBaseConfigUnion, args=argv)
    original_launch = train.launch

    def launch(**kwargs: Any) -> None:
        original_launch(**{**kwargs, "main_func": train_and_save_parameters})

    train.launch = launch  # train.main resolves launch at call time
    train.main(config)


def ddp_step(local_rank: int, world_size: int, config: Any, global_rank: int = 0) -> None:
    """One DDP backward pass per process, as VanillaPipeline sets it up; the result to ``<output_dir>/rank<r>.pt``."""
    import torch
    import torch.distributed as dist
    from nerfstudio.utils import comms
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.manual_seed(global_rank)  # different initial weights on each rank: DDP must start them from rank 0's
    model = DDP(torch.nn.Linear(3, 1), device_ids=[local_rank], find_unused_parameters=True)
    dist.barrier(device_ids=[local_rank])
    model(torch.full((1, 3), float(global_rank + 1))).sum().backward()  # each rank its own input
    seen = {
        "backend": str(dist.get_backend()),
        "rank": comms.get_rank(),
        "local_rank": comms.get_local_rank(),
        "local_size": comms.get_local_size(),
        "world_size": comms.get_world_size(),
        "main": comms.is_main_process(),
        "weight": model.module.weight.detach().clone(),
        "grad": model.module.weight.grad.clone(),
    }
    torch.save(seen, Path(config.output_dir) / f"rank{global_rank}.pt")


def launch_ddp_step(folder: str) -> None:
    from nerfstudio.engine.trainer import TrainerConfig
    from nerfstudio.scripts.train import launch

    launch(ddp_step, num_devices_per_machine=2, config=TrainerConfig(output_dir=Path(folder)), device_type="cpu")
