"""The unseen-scene setup: a new model's encoders and MLPs start from another MonoNeRF run's checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

from torch import Tensor

from nerfstudio_methods.checkpoints import load_tensor_file
from nerfstudio_methods.input_errors import DatasetFormatError

PRETRAINED_PARTS = ("video_encoder.", "image_encoder.", "static_field.", "dynamic_field.")
"""The model's parts that a pretrained checkpoint initialises."""

BLENDING_HEAD = "dynamic_field.blending_head."


def pretrained_weights(path: Path, own: Dict[str, Tensor], fresh_blending: bool) -> Dict[str, Tensor]:
    """The weights of ``path`` (a nerfstudio checkpoint) for the encoders and MLPs of a model whose state dict is
    ``own``, without the blending head when ``fresh_blending``; one error naming the file if any is missing or of
    another shape."""
    loaded = load_tensor_file(path, "pretrained MonoNeRF checkpoint (--pipeline.model.pretrained-checkpoint)")
    state = loaded.get("pipeline", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise DatasetFormatError(path, "not a nerfstudio checkpoint (no 'pipeline' state dict)")
    prefix = "_model."
    state = {
        key.removeprefix("module.")[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)
    }
    fresh = (BLENDING_HEAD,) if fresh_blending else ()
    wanted = {
        key: value for key, value in own.items() if key.startswith(PRETRAINED_PARTS) and not key.startswith(fresh)
    }
    missing = sorted(key for key in wanted if key not in state)
    mismatched = sorted(key for key in wanted if key in state and state[key].shape != wanted[key].shape)
    if missing or mismatched:
        problem = (f"{len(missing)} missing keys (e.g. {missing[:2]})" if missing else "") + (
            f" {len(mismatched)} keys of another shape (e.g. {mismatched[:2]}): was it trained with other "
            "--pipeline.model network or encoder settings?"
            if mismatched
            else ""
        )
        raise DatasetFormatError(path, f"does not fit this MonoNeRF model: {problem.strip()}")
    return {key: state[key] for key in wanted}
