"""Many scenes in one run: the scene index each camera carries, rays split over scenes, scene ranges per rank.

Multi-scene methods (MonoNeRF's multi-scene training, mononerf.md §1 "Schedule"; 3Da-AE) list the cameras of every
scene in one dataset. Each camera carries its scene's index in ``Cameras.metadata["scene_index"]`` (shape
``[num_cameras, 1]``), which nerfstudio copies into ``RayBundle.metadata["scene_index"]`` for every ray: the cameras
are the one carrier of the scene index from the dataparser to the model, which renders and supervises each image or
ray with the scene its camera names (:func:`scene_indices_of_cameras`, :func:`scene_indices_of_rays`). Cameras built
outside the dataset (the viewer, ``ns-render`` camera paths) carry none: they show a configured scene.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
from jaxtyping import Int
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from torch import Tensor

SCENE_INDEX_KEY = "scene_index"


def _scene_indices(metadata: Optional[Mapping[str, Any]], count: int, default_scene: int, device: Any) -> Tensor:
    value = (metadata or {}).get(SCENE_INDEX_KEY)
    if value is None:
        return torch.full((count,), int(default_scene), dtype=torch.long, device=device)
    return value.reshape(-1).round().long()


def scene_indices_of_rays(ray_bundle: RayBundle, default_scene: int = 0) -> Int[Tensor, " n"]:
    """The scene index of every ray of a flat bundle; ``default_scene`` for rays whose camera carries none."""
    count = ray_bundle.origins.reshape(-1, 3).shape[0]
    return _scene_indices(ray_bundle.metadata, count, default_scene, ray_bundle.origins.device)


def scene_indices_of_cameras(cameras: Cameras, default_scene: int = 0) -> Int[Tensor, " n"]:
    """The scene index of every camera of a flat batch ``[N]`` (``metadata["scene_index"]``, ``[N, 1]``);
    ``default_scene`` for every camera when they carry none (cameras built outside the dataset)."""
    count = cameras.camera_to_worlds.reshape(-1, 3, 4).shape[0]
    return _scene_indices(cameras.metadata, count, default_scene, cameras.device)


def rays_per_scene(total_rays: int, num_scenes: int) -> list[int]:
    """``total_rays`` divided across scenes as evenly as possible (MonoNeRF divides ``N_rand`` across scenes)."""
    if num_scenes <= 0:
        raise ValueError(f"need at least one scene, got {num_scenes}")
    if total_rays < num_scenes:
        raise ValueError(f"{total_rays} rays per batch cannot cover {num_scenes} scenes (at least one ray each)")
    base, extra = divmod(total_rays, num_scenes)
    return [base + (1 if scene < extra else 0) for scene in range(num_scenes)]


def scene_range_of_rank(num_scenes: int, world_size: int, rank: int) -> range:
    """The contiguous, disjoint range of scenes that process ``rank`` of ``world_size`` owns (sizes differ by <= 1)."""
    if not 0 <= rank < max(world_size, 1):
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
    world_size = max(world_size, 1)
    base, extra = divmod(num_scenes, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


# --- scenes spread over processes (torch.distributed) ---------------------------------------------------------


def process_rank_and_count() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 outside a ``torch.distributed`` run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def broadcast_from_first_process(tensors: Sequence[Tensor]) -> None:
    """Give every process rank 0's values of these tensors (shared weights start equal on every rank)."""
    import torch.distributed as dist

    if process_rank_and_count()[1] == 1:
        return
    with torch.no_grad():
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)


def _summed_over_processes(tensors: Sequence[Tensor]) -> Sequence[Tensor]:
    """Each tensor summed over the processes, in one all-reduce of their concatenation (new tensors)."""
    import torch.distributed as dist
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    flat = _flatten_dense_tensors(list(tensors))
    dist.all_reduce(flat)
    return _unflatten_dense_tensors(flat, list(tensors))


def average_gradients_before_step(optimizer: torch.optim.Optimizer) -> None:
    """Before each ``optimizer.step()``, replace its parameters' gradients by their mean over the processes.

    For weights every process trains (an autoencoder shared by all scenes) while each process sees other scenes:
    the step then uses the gradient of the whole batch, and the weights stay bit-identical on every rank. All ranks
    must step this optimizer at the same steps with gradients on the same parameters, as DDP requires."""
    world_size = process_rank_and_count()[1]
    if world_size == 1:
        return

    def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        for grad, summed in zip(grads, _summed_over_processes(grads)):
            grad.copy_(summed / world_size)

    optimizer.register_step_pre_hook(hook)


def share_scene_state(per_scene: Sequence[Sequence[Tensor]], owned: range) -> None:
    """Make every process hold every scene's tensors as trained by the process that owns it.

    ``per_scene[s]`` are scene ``s``'s tensors (views into per-scene counters work too); each process contributes
    its owned scenes and zeros elsewhere, and the sum over processes is the result (one all-reduce). Used before
    rank 0 writes a checkpoint or evaluates."""
    if process_rank_and_count()[1] == 1:
        return
    with torch.no_grad():
        tensors = [t for scene in per_scene for t in scene]
        masked = [
            t.detach().clone() if index in owned else torch.zeros_like(t)
            for index, scene in enumerate(per_scene)
            for t in scene
        ]
        for tensor, value in zip(tensors, _summed_over_processes(masked)):
            tensor.data.copy_(value)


def combine_rank_bits(bits: Tensor) -> None:
    """Per-scene bit masks in which each process sets only its own bit (``1 << rank``): OR them over processes."""
    import torch.distributed as dist

    rank, world_size = process_rank_and_count()
    if world_size == 1:
        return
    own = bits & (1 << rank)
    dist.all_reduce(own)  # a sum of distinct bits is their OR
    bits.copy_(own)
