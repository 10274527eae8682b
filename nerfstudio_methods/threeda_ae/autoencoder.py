"""The image autoencoder (diffusers' ``AutoencoderKL``) and the latent normaliser.

3Da-AE fine-tunes Stable Diffusion 1.5's VAE (3da-ae.md §1.2), which it fetched from a hub id that no longer exists
(``runwayml/stable-diffusion-v1-5``). Here the weights come from the user: ``--pipeline.model.autoencoder.pretrained``
takes a diffusers folder (``config.json`` and weights, or a whole pipeline folder with ``vae/``) or one SD-1.x VAE
file (``.safetensors`` / ``.ckpt``, in diffusers' or the original LDM key names). Nothing is downloaded. Without
weights the autoencoder is built from ``block_out_channels`` & co. with random weights and first trained as a
plain autoencoder (3da-ae.md §4); the log says which of the two happened, once.

Latents are the encoder's raw ``z`` (not scaled by 0.18215) and are normalised by ``n(z) = tanh(s z)`` with
``s = 0.02`` for SD's VAE (3da-ae.md §1.1, ``WindowNormalizer`` type ``Tanh``); its inverse clips to
``[-1 + 1e-4, 1 - 1e-4]`` before ``atanh``. For an autoencoder trained here, ``s`` is measured from its latents
so that ``n(z)`` has the standard deviation ``latent_target_std``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Tuple

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfstudio_methods.checkpoints import listed, load_state_strictly, load_tensor_file
from nerfstudio_methods.input_errors import DatasetFormatError, first_line

SD_VAE_BLOCK_OUT_CHANNELS = (128, 256, 512, 512)
"""Stable Diffusion 1.x's VAE (its ``vae/config.json``; 83.65 M parameters, 3da-ae.md §1.2)."""
SD_TANH_SCALE = 0.02
"""``tanh_scale`` of 3Da-AE's ``configs/train_default.yaml`` for SD latents (3da-ae.md §1.1)."""
CLIP = 1e-4


@dataclass
class AutoencoderConfig:
    """Architecture and weights of the autoencoder (defaults: SD 1.x's VAE)."""

    pretrained: Optional[Path] = None
    """A diffusers folder or an SD-1.x VAE ``.safetensors``/``.ckpt`` file; None trains one from scratch."""
    block_out_channels: Tuple[int, ...] = SD_VAE_BLOCK_OUT_CHANNELS
    """Channels per resolution level; the image shrinks by ``2 ** (len - 1)`` (8 for SD's VAE)."""
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    tanh_scale: Optional[float] = None
    """``s`` of ``tanh(s z)``; None: 0.02 with pretrained SD weights, measured from the latents otherwise."""
    latent_target_std: float = 0.3
    """Standard deviation of ``tanh(s z)`` that the measured ``s`` aims at (3da-ae.md §4 suggests 0.3-0.5)."""

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    def diffusers_config(self) -> dict[str, Any]:
        levels = len(self.block_out_channels)
        return {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ("DownEncoderBlock2D",) * levels,
            "up_block_types": ("UpDecoderBlock2D",) * levels,
            "block_out_channels": tuple(self.block_out_channels),
            "layers_per_block": self.layers_per_block,
            "act_fn": "silu",
            "latent_channels": self.latent_channels,
            "norm_num_groups": self.norm_num_groups,
            "sample_size": 512,
        }


def _load_diffusers_folder(folder: Path) -> nn.Module:
    from diffusers import AutoencoderKL

    subfolder = "vae" if (folder / "vae" / "config.json").is_file() else None
    config_file = folder / (subfolder or ".") / "config.json"
    if not config_file.is_file():
        raise DatasetFormatError(folder, "is not a diffusers autoencoder folder (no config.json, nor vae/config.json)")
    try:
        # With output_loading_info, a (model, loading info) pair (diffusers' annotation says a model only).
        loaded: Any = AutoencoderKL.from_pretrained(
            folder, subfolder=subfolder, local_files_only=True, output_loading_info=True
        )
        model, info = loaded
    except Exception as error:  # noqa: BLE001 - one line naming the folder, whatever diffusers raises
        raise DatasetFormatError(
            folder, f"cannot load the autoencoder ({type(error).__name__}: {first_line(error)})"
        ) from None
    # diffusers only warns when the weights lack some of the model's tensors and leaves those random: refuse, as
    # the single-file path does (load_state_strictly).
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise DatasetFormatError(
            folder, f"autoencoder weights do not match its config.json: missing keys: {listed(missing)}"
        )
    return model


def _read_weight_file(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:  # noqa: BLE001
            raise DatasetFormatError(path, f"unreadable or truncated safetensors file ({first_line(error)})") from None
    raw = load_tensor_file(path, "autoencoder weights")
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict):
        raise DatasetFormatError(path, "autoencoder weights are not a state dict")
    return raw


def _load_weight_file(path: Path, config: AutoencoderConfig) -> nn.Module:
    from diffusers import AutoencoderKL

    state = _read_weight_file(path)
    model = AutoencoderKL(**config.diffusers_config())
    if not any(key.startswith(("encoder.down_blocks", "decoder.up_blocks")) for key in state):
        # The original LDM names (encoder.down.0.block.0...), bare or under first_stage_model. (a whole SD file).
        from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

        try:
            state = convert_ldm_vae_checkpoint(state, dict(model.config))
        except Exception as error:  # noqa: BLE001
            raise DatasetFormatError(
                path, f"neither diffusers nor LDM autoencoder key names ({type(error).__name__}: {error})"
            ) from None
    load_state_strictly(model, state, path, "autoencoder weights")
    return model


def build_autoencoder(config: AutoencoderConfig) -> tuple[nn.Module, bool]:
    """The autoencoder and whether it has pretrained weights (:func:`autoencoder_origin` says which, for the log)."""
    from diffusers import AutoencoderKL

    if config.pretrained is None:
        return AutoencoderKL(**config.diffusers_config()), False
    path = Path(config.pretrained)
    if path.is_dir():
        model = _load_diffusers_folder(path)
    elif path.is_file():
        model = _load_weight_file(path, config)
    else:
        raise DatasetFormatError(path, "pretrained autoencoder not found (a diffusers folder or a VAE weights file)")
    return model, True


def autoencoder_origin(model: nn.Module, config: AutoencoderConfig, pretrained: bool) -> str:
    """One line for the training log: where the autoencoder's weights come from."""
    if pretrained:
        return f"3Da-AE: pretrained autoencoder loaded from {config.pretrained}"
    count = sum(p.numel() for p in model.parameters()) / 1e6
    return (
        "3Da-AE: no pretrained autoencoder given (--pipeline.model.autoencoder.pretrained): training one from "
        f"scratch ({count:.2f} M parameters, block_out_channels {tuple(config.block_out_channels)})"
    )


def autoencoder_downscale(model: nn.Module) -> int:
    """How much the encoder shrinks an image (8 for SD's VAE)."""
    return 2 ** (len(model.config.block_out_channels) - 1)  # type: ignore[attr-defined]


class TanhNormalizer(nn.Module):
    """``n(z) = tanh(s z)`` and its clipped inverse; ``s`` is a buffer so checkpoints carry it (module doc)."""

    scale: Tensor

    def __init__(self, scale: float = SD_TANH_SCALE) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, latents: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch"]:
        return torch.tanh(self.scale * latents)

    def inverse(self, normalized: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch"]:
        return torch.atanh(normalized.clamp(-1 + CLIP, 1 - CLIP)) / self.scale

    @staticmethod
    def scale_for(latents: Tensor, target_std: float) -> float:
        """The ``s`` for which ``tanh(s z)`` of these latents has standard deviation ``target_std`` (bisection)."""
        flat = latents.detach().double().reshape(-1)
        low, high = 1e-6, 1e3
        for _ in range(80):
            middle = (low * high) ** 0.5
            if torch.tanh(middle * flat).std() < target_std:
                low = middle
            else:
                high = middle
        return float((low * high) ** 0.5)


def tile_starts(length: int, tile: int) -> list[int]:
    """Starts of tiles of ``tile`` cells covering ``length`` cells (``length >= tile``), half a tile apart, the last
    one ending at ``length``."""
    step = max(tile // 2, 1)
    return sorted(set(range(0, length - tile, step)) | {length - tile})


def tent(size: int) -> Tensor:
    """Blending weights across a decoded tile: highest in its middle, positive to its edges, so the overlap of two
    tiles fades from one to the other and a cell covered by one tile keeps that tile's value."""
    position = torch.arange(size, dtype=torch.float32) + 0.5
    return torch.minimum(position, size - position)


def decode_in_tiles(
    decode: Any,
    latents: Float[Tensor, "1 c hl wl"],
    tile: Tuple[int, int],
    fill: Float[Tensor, " c"],
    factor: int,
) -> Float[Tensor, "1 3 h w"]:
    """``decode`` (latents -> images ``factor`` times larger) applied only to latent grids of the ``tile`` size it
    learned: a convolutional decoder trained on one grid size decodes another (a viewer's wider or larger view) into
    smeared or jagged images. A grid smaller than the tile in a dimension is padded there with ``fill`` (the latent of
    the empty background) and the padding cut off after decoding; a larger one is decoded as overlapping tiles
    blended with :func:`tent` weights."""
    tile_h, tile_w = tile
    height, width = latents.shape[-2:]
    pad_h, pad_w = max(tile_h - height, 0), max(tile_w - width, 0)
    if pad_h or pad_w:
        top, left = pad_h // 2, pad_w // 2
        padded = fill.reshape(1, -1, 1, 1).expand(1, latents.shape[1], height + pad_h, width + pad_w).clone()
        padded[..., top : top + height, left : left + width] = latents
        decoded = decode_in_tiles(decode, padded, tile, fill, factor)
        return decoded[..., top * factor : (top + height) * factor, left * factor : (left + width) * factor]
    if (height, width) == (tile_h, tile_w):
        return decode(latents)
    total: Optional[Tensor] = None
    weights = torch.zeros(height * factor, width * factor, device=latents.device)
    window = tent(tile_h * factor)[:, None].to(latents.device) * tent(tile_w * factor)[None, :].to(latents.device)
    for top in tile_starts(height, tile_h):
        for left in tile_starts(width, tile_w):
            image = decode(latents[..., top : top + tile_h, left : left + tile_w])
            if total is None:
                total = torch.zeros(*image.shape[:2], height * factor, width * factor, device=latents.device)
            rows = slice(top * factor, (top + tile_h) * factor)
            columns = slice(left * factor, (left + tile_w) * factor)
            total[..., rows, columns] += image * window
            weights[rows, columns] += window
    assert total is not None
    return total / weights
