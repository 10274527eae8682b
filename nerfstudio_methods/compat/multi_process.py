"""Multi-process CPU training: ``ns-train --machine.num-devices N --machine.device-type cpu`` spawns nerfstudio's
``_distributed_worker``, which asserts CUDA, and ``VanillaPipeline`` passes ``device_ids=[local_rank]`` to DDP,
which DDP refuses for a CPU module. ``torch.multiprocessing.spawn`` is wrapped (looked up when ``launch`` calls
it; ``nerfstudio.scripts.train`` is still importing when plugins load): for a CPU run nerfstudio's worker is
swapped for :func:`cpu_distributed_worker`, which starts the same gloo process group (and
``comms.LOCAL_PROCESS_GROUP``) without the CUDA checks, lets DDP and ``dist.barrier`` drop ``device_ids`` on CPU,
and gives each process ``cpu_count // N`` torch threads unless ``OMP_NUM_THREADS`` is set. CUDA runs keep
nerfstudio's worker (NCCL). Before spawning, for any device, a trainer, pipeline, data manager or model class
that declares ``multi_process_refusal`` (a reason) stops the run with one line,
``error: <method> cannot train with N processes: <reason>``, and exit status 2.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Optional

from nerfstudio_methods.compat import install
from nerfstudio_methods.compat.run_folder import remove_unused_run_folder

_NERFSTUDIO_WORKER = ("nerfstudio.scripts.train", "_distributed_worker")
_REFUSAL_ATTRIBUTE = "multi_process_refusal"
REFUSAL_EXIT_STATUS = 2


def multi_process_refusal(config: Any) -> Optional[str]:
    """The reason this run's trainer, pipeline, data manager or model gives for not training in several processes.

    Classes declare it as ``multi_process_refusal: ClassVar[Optional[str]] = "<reason>"``; ``None`` when all allow it.
    """
    pipeline = getattr(config, "pipeline", None)
    configs = (config, pipeline, getattr(pipeline, "datamanager", None), getattr(pipeline, "model", None))
    for part in configs:
        reason = getattr(getattr(part, "_target", None), _REFUSAL_ATTRIBUTE, None)
        if reason:
            return str(reason)
    return None


def _is_cpu_module(module: Any) -> bool:
    tensors = [*module.parameters(), *module.buffers()]
    return bool(tensors) and all(t.device.type == "cpu" for t in tensors)


def allow_ddp_on_cpu() -> None:
    """Let ``DDP(cpu_module, device_ids=[rank])`` and ``dist.barrier(device_ids=...)`` on gloo work (idempotent).

    ``device_ids`` name CUDA devices: DDP raises for a module on the CPU and nerfstudio's own ``comms.synchronize``
    passes them to NCCL only. Here they are dropped exactly there; every other call is unchanged.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    if not getattr(DDP.__init__, "_cpu_device_ids_dropped", False):
        ddp_init = DDP.__init__

        @functools.wraps(ddp_init)
        def __init__(self: Any, module: Any, device_ids: Any = None, *args: Any, **kwargs: Any) -> None:
            if device_ids is not None and _is_cpu_module(module):
                device_ids = None
                if kwargs.get("output_device") is not None:
                    kwargs["output_device"] = None
            ddp_init(self, module, device_ids, *args, **kwargs)

        __init__._cpu_device_ids_dropped = True  # type: ignore[attr-defined]
        DDP.__init__ = __init__  # type: ignore[method-assign]

    if not getattr(dist.barrier, "_cpu_device_ids_dropped", False):
        barrier = dist.barrier

        @functools.wraps(barrier)
        def barrier_without_cuda_ids(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("device_ids") is not None:
                group = kwargs.get("group", args[0] if args else None)
                if dist.get_backend(group) != dist.Backend.NCCL:
                    kwargs["device_ids"] = None
            return barrier(*args, **kwargs)

        barrier_without_cuda_ids._cpu_device_ids_dropped = True  # type: ignore[attr-defined]
        dist.barrier = barrier_without_cuda_ids


def cpu_distributed_worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_devices_per_machine: int,
    machine_rank: int,
    dist_url: str,
    config: Any,
    timeout: Any,
    device_type: str = "cpu",
) -> Any:
    """nerfstudio 1.1.5's ``_distributed_worker`` for CPU processes: gloo, no CUDA checks, DDP on CPU allowed."""
    import torch
    import torch.distributed as dist
    from nerfstudio.utils import comms

    install()
    allow_ddp_on_cpu()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_devices_per_machine))
    global_rank = machine_rank * num_devices_per_machine + local_rank
    dist.init_process_group(
        backend="gloo", init_method=dist_url, world_size=world_size, rank=global_rank, timeout=timeout
    )
    num_machines = world_size // num_devices_per_machine
    for machine in range(num_machines):
        group = dist.new_group(list(range(machine * num_devices_per_machine, (machine + 1) * num_devices_per_machine)))
        if machine == machine_rank:
            comms.LOCAL_PROCESS_GROUP = group
    output = main_func(local_rank, world_size, config, global_rank)
    comms.synchronize()
    dist.destroy_process_group()
    return output


def worker_for_spawn(fn: Callable[..., Any], args: Any) -> Callable[..., Any]:
    """What ``torch.multiprocessing.spawn(fn, args)`` should run: :func:`cpu_distributed_worker` for nerfstudio's
    worker on a CPU run, ``fn`` otherwise. A run whose config declares a refusal stops here (one line, exit 2)."""
    import sys

    if (getattr(fn, "__module__", None), getattr(fn, "__name__", None)) != _NERFSTUDIO_WORKER:
        return fn
    if not isinstance(args, tuple) or len(args) != 8:  # not nerfstudio 1.1.5's argument layout: leave it alone
        return fn
    _, world_size, _, _, _, config, _, device_type = args
    reason = multi_process_refusal(config)
    if reason is not None:
        method = getattr(config, "method_name", None) or "this method"
        remove_unused_run_folder()
        print(f"error: {method} cannot train with {world_size} processes: {reason}", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(REFUSAL_EXIT_STATUS)
    return cpu_distributed_worker if device_type == "cpu" else fn


def route_multi_process_training() -> None:
    """Wrap ``torch.multiprocessing.spawn`` with :func:`worker_for_spawn` (idempotent)."""
    import torch.multiprocessing as mp

    if getattr(mp.spawn, "_nerfstudio_methods", False):
        return
    spawn = mp.spawn

    @functools.wraps(spawn)
    def spawn_training(fn: Any, args: Any = (), *rest: Any, **kwargs: Any) -> Any:
        return spawn(worker_for_spawn(fn, args), args, *rest, **kwargs)

    spawn_training._nerfstudio_methods = True  # type: ignore[attr-defined]
    mp.spawn = spawn_training
