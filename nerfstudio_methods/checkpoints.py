"""Loading weight files a user hands us: any failure is one line naming the file, never a traceback.

Used by every method that loads pretrained weights or an earlier run's checkpoint (MonoNeRF's encoders and
checkpoints, 3Da-AE's autoencoder and stage-1 runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nerfstudio_methods.input_errors import DatasetFormatError, first_line


def listed(names: list[str], most: int = 4) -> str:
    """``a, b, c, d, ... (N in all)``: the first few of a long list of tensor names, for a one-line error."""
    return ", ".join(names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")


def load_tensor_file(path: Path, what: str) -> object:
    """``torch.load(weights_only=True)`` with any failure turned into one :class:`DatasetFormatError` line."""
    if not path.is_file():
        raise DatasetFormatError(path, f"{what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - every torch.load failure becomes one clear line naming the file
        message = first_line(error)
        if "weights only" in str(error).lower() or "weights_only" in str(error).lower():
            raise DatasetFormatError(
                path,
                f"{what} holds objects other than tensors and plain containers, so it is not loaded "
                f"(torch.load weights_only=True: {message}). If you trust the file, re-save just its state dict: "
                "torch.save(torch.load(src, weights_only=False)['state_dict'], dst)",
            ) from None
        raise DatasetFormatError(path, f"unreadable or truncated {what} ({type(error).__name__}: {message})") from None


def load_state_strictly(model: nn.Module, state: dict[str, Tensor], path: Path, what: str) -> None:
    """Strict load with missing / unexpected / mis-shaped keys reported in one line naming the file."""
    if not all(isinstance(key, str) and isinstance(value, Tensor) for key, value in state.items()):
        raise DatasetFormatError(path, f"{what} is not a state dict (a mapping of names to tensors)")
    expected = model.state_dict()
    state = dict(state)
    for key, value in expected.items():
        # Checkpoints saved before PyTorch 0.4.1 have no BN step counters; it is unused here (momentum is fixed).
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = value.clone()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong = [
        f"{key} {tuple(state[key].shape)} (model {tuple(expected[key].shape)})"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    problems = []
    for label, names in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong)):
        if names:
            problems.append(f"{label}: {listed(names)}")
    if problems:
        raise DatasetFormatError(path, f"{what} does not match the model: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def renamed_state_key(key: str, renames: Mapping[str, str]) -> str:
    """``key`` with a leading ``old`` of ``renames`` (``{old: new}`` name prefixes) replaced by its ``new``."""
    for old, new in renames.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def load_old_state_names(module: nn.Module, renames: Mapping[str, str]) -> None:
    """Let ``module`` load checkpoints written before some of its submodules or buffers were renamed.

    ``renames`` maps old name prefixes (relative to ``module``, e.g. ``"normaliser."``) to the new ones; whenever
    ``module`` (or a model or pipeline holding it) loads a state dict, entries under an old name are moved to the new
    one first, so checkpoints of earlier versions load as before."""

    def rename(state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            new_key = prefix + renamed_state_key(key[len(prefix) :], renames)
            if new_key != key and new_key not in state_dict:
                state_dict[new_key] = state_dict.pop(key)

    module._register_load_state_dict_pre_hook(rename)
