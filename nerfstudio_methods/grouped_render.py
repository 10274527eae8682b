"""Rendering rays that belong to different scenes or frames: split them by group, render each group, merge back.

A bundle may mix rays of several scenes (MonoNeRF's multi-scene batches, 3Da-AE; the group is the scene index of
:mod:`nerfstudio_methods.multiscene`) or of several frames (StreamRF outside training: one grid per frame). Each
method renders one group at a time with that group's features, tri-planes or grid; :func:`render_grouped` does the
splitting and merging for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from jaxtyping import Int
from torch import Tensor


def render_grouped(
    groups: Int[Tensor, " n"], render: Callable[[int, Int[Tensor, " m"]], Mapping[str, Tensor]]
) -> dict[str, Tensor]:
    """Render ``n`` rays group by group and merge the results in ray order.

    ``groups[i]`` is ray ``i``'s group; ``render(group, rows)`` renders the rays ``rows`` (indices into the ``n``
    rays, ascending) of one group and returns per-ray tensors whose first dimension is ``len(rows)``. Groups are
    rendered in ascending order, each once. Row ``i`` of each returned tensor is ray ``i``'s value (merged with
    ``index_copy``, so gradients flow to every group's render). Needs at least one ray."""
    count = groups.shape[0]
    parts = []
    for group in torch.unique(groups).tolist():
        rows = torch.nonzero(groups == group)[:, 0]
        parts.append((rows, render(int(group), rows)))
    merged: dict[str, Tensor] = {}
    for key, first in parts[0][1].items():
        values = first.new_zeros((count, *first.shape[1:]))
        for rows, part in parts:
            values = values.index_copy(0, rows, part[key])
        merged[key] = values
    return merged
