"""PSNR and SSIM as MonoNeRF's released evaluation computes them (``train/evaluation.py``; mononerf.md §3).

The released script compares 8-bit images: the render as saved by nerf-pytorch's ``to8b`` (``255 * clip(x, 0, 1)``
truncated to uint8) against the uint8 ground truth, with ``cv2.PSNR`` and scikit-image's SSIM over the colour channels
(7 x 7 uniform window, sample covariance, data range 255 from the dtype). nerfstudio's own ``psnr`` / ``ssim`` work on
floats with an 11 x 11 Gaussian window, so the two differ by a few hundredths of a dB and of SSIM; these are the ones
to set beside published tables.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
from jaxtyping import Float, UInt8
from skimage.metrics import structural_similarity
from torch import Tensor


def render_to_uint8(rgb: Float[Tensor, "h w 3"]) -> UInt8[np.ndarray, "h w 3"]:
    """A render as the released code saves it: ``to8b`` truncates rather than rounds."""
    return (255.0 * rgb.detach().clamp(0, 1).cpu().numpy()).astype(np.uint8)


def ground_truth_to_uint8(image: Float[Tensor, "h w 3"]) -> UInt8[np.ndarray, "h w 3"]:
    """Ground truth read from 8-bit files back to its 8-bit values (rounded: ``k / 255`` gives back ``k``)."""
    return np.round(255.0 * image.detach().clamp(0, 1).cpu().numpy()).astype(np.uint8)


def released_psnr_ssim(rgb: Float[Tensor, "h w 3"], image: Float[Tensor, "h w 3"]) -> tuple[float, float]:
    """(PSNR in dB, SSIM) of a render against its ground truth, as ``train/evaluation.py`` computes them."""
    prediction, target = render_to_uint8(rgb), ground_truth_to_uint8(image)
    psnr = float(cv2.PSNR(prediction, target))
    ssim = float(cast(float, structural_similarity(prediction, target, channel_axis=-1)))
    return psnr, ssim
