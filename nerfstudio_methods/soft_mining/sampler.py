"""The soft-mining pixel population: Langevin Monte Carlo over continuous pixel positions (brief A1, A2.5-A2.6).

Soft mining (Kheradmand et al., CVPR'24, "Accelerating Neural Field Training via Soft Mining") keeps ``N`` samples
alive across training steps. Each sample belongs to one training image for the whole run and has a continuous
position ``u = (y, x) / (H, W)`` in ``[0, 1]^2``. After every step it moves by one Langevin step toward high
per-pixel error (paper Eq. 10)::

    u <- u + (a / N) * grad_px log err(u) + b * eta,      eta ~ N(0, I)

``grad_px`` is the gradient in pixels and ``u`` is normalised, with the ``1 / N`` of the loss mean left in the drift:
the released code's convention (brief A2.4-A2.5), kept so that its constants ``a = 20`` and ``b = 0.02`` carry over.
Then samples are re-initialised:

- every sample that left the image (or a sampling mask);
- the ``reinit_lowest_fraction`` of samples with the lowest error ("stuck" samples, paper A1);
- another ``uniform_fraction`` of samples, chosen at random among the rest, drawn uniformly over their image.

The first two groups are drawn from ``reinit_distribution``: the Sobel-edge PDF of their own image (paper's 2D
"edge-based re-initialisation", released ``compute_sobel_edge``) or uniform. The released code overwrites the *last*
10% of samples (always the same images) and lets the groups overlap; here the uniform group is random and disjoint,
so the fractions hold exactly.

Pixel coordinates follow nerfstudio's convention: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)`` and its centre is
``(i + 0.5, j + 0.5)`` (``Cameras.get_image_coords(pixel_offset=0.5)``), so a sample at ``u`` is at pixel coordinates
``u * (H, W)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Type

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from nerfstudio.configs.base_config import InstantiateConfig
from torch import Tensor

ReinitDistribution = Literal["edge", "uniform"]

RELEASED_LANGEVIN_DRIFT = 20.0
"""The released code's Langevin drift ``a`` (``LMC`` default 2e1, brief A2.5): ``--pipeline.datamanager.soft-mining.
langevin-drift 20`` restores it."""

EDGE_PDF_FLOOR = 1e-5
"""Lower clip of the max-normalised Sobel magnitude (released ``compute_sobel_edge``): flat regions keep some mass."""


# --- pure functions -------------------------------------------------------------------------------------------


def bilinear_lookup(
    images: Float[Tensor, "num_images height width channels"],
    image_ids: Int[Tensor, " num"],
    coords: Float[Tensor, "num 2"],
) -> Float[Tensor, "num channels"]:
    """Values of ``images`` at continuous pixel coordinates ``(y, x)``, interpolated bilinearly between pixel centres.

    Pixel ``(i, j)``'s value sits at ``(i + 0.5, j + 0.5)``; beyond the outermost centres the border pixels' values
    are extended (the ``align_corners=False``, border-padding convention of ``grid_sample``). Differentiable in
    ``coords`` (piecewise linear), so the target's spatial gradient can reach the sample positions.
    """
    height, width = images.shape[1], images.shape[2]
    y = coords[:, 0] - 0.5
    x = coords[:, 1] - 0.5
    y0 = torch.floor(y).detach()
    x0 = torch.floor(x).detach()
    wy = (y - y0)[:, None]
    wx = (x - x0)[:, None]
    y0, x0 = y0.long(), x0.long()
    rows = (y0.clamp(0, height - 1), (y0 + 1).clamp(0, height - 1))
    cols = (x0.clamp(0, width - 1), (x0 + 1).clamp(0, width - 1))
    top = images[image_ids, rows[0], cols[0]] * (1 - wx) + images[image_ids, rows[0], cols[1]] * wx
    bottom = images[image_ids, rows[1], cols[0]] * (1 - wx) + images[image_ids, rows[1], cols[1]] * wx
    return top * (1 - wy) + bottom * wy


def sobel_edge_pdf(
    images: Float[Tensor, "num_images height width channels"], floor: float = EDGE_PDF_FLOOR
) -> Float[Tensor, "num_images height width"]:
    """Per-image Sobel gradient magnitude of the grey image, divided by its maximum and clipped to ``[floor, 1]``.

    Replicate padding keeps image borders from looking like edges. A flat image becomes uniform (all ``floor``).
    """
    rgb = images[..., :3]
    grey = (rgb * rgb.new_tensor([0.299, 0.587, 0.114])).sum(-1) if rgb.shape[-1] == 3 else rgb.mean(-1)
    grey = F.pad(grey[:, None], (1, 1, 1, 1), mode="replicate")
    kernel_x = grey.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([kernel_x, kernel_x.T])[:, None]
    gradients = F.conv2d(grey, kernels)
    magnitude = gradients.square().sum(1).sqrt()
    peak = magnitude.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return (magnitude / peak).clamp(floor, 1.0)


def importance_exponent(step: int, alpha: float, warmup_steps: int) -> float:
    """The exponent ``r`` of the importance weights: 0 at step 0, rising linearly to ``alpha`` at ``warmup_steps``.

    Paper: warm-up to alpha by 1k iterations. The released code's ``min(step / 1000, alpha)`` is this schedule with
    ``warmup_steps = 1000 * alpha`` (brief A2.3).
    """
    if warmup_steps <= 0:
        return alpha
    return alpha * min(1.0, step / warmup_steps)


def importance_weights(
    l1_error: Float[Tensor, " num"],
    exponent: float,
    error_floor: float = 2.0**-10,
    clamp_min: float | None = 0.2,
    clamp_to_mean_plus_std: bool = True,
) -> Float[Tensor, " num"]:
    """Soft-mining loss weights ``sg(Q)^-r`` (paper Eq. 10's importance correction), no gradient.

    ``Q`` (the L1 error) is floored at ``error_floor`` (float16 epsilon in the released code), then the weights
    are clamped to ``[clamp_min, mean + std]`` as the released code does (brief A2.3); ``None``/False turn the clamps
    off. ``exponent = 0`` gives uniform weights (plain MSE), ``1`` pure importance sampling.
    """
    weights = l1_error.detach().clamp_min(error_floor).pow(-exponent)
    if clamp_min is not None:
        weights = weights.clamp_min(clamp_min)
    if clamp_to_mean_plus_std and weights.numel() > 1:
        weights = torch.minimum(weights, weights.mean() + weights.std())
    return weights


class PixelDistribution:
    """Draws pixels of given images from per-image probability maps: inverse CDF over rows, then over columns.

    Two small searches instead of one over ``num_images * H * W`` entries: the per-row CDFs are ``[M, H, W]`` (the
    size of one image channel) and a draw gathers only the ``[K, H]`` and ``[K, W]`` rows it needs.
    """

    def __init__(self, pdf: Float[Tensor, "num_images height width"]) -> None:
        pdf = pdf.float()
        row_mass = pdf.sum(-1)
        if bool((row_mass.sum(-1) <= 0).any()):
            empty = torch.nonzero(row_mass.sum(-1) <= 0)[:, 0].tolist()
            raise ValueError(f"soft mining: images {empty} have no pixel to sample from (empty mask?)")
        self.row_cdf = torch.cumsum(row_mass, -1) / row_mass.sum(-1, keepdim=True)
        # rows without mass are never selected; give them a harmless uniform CDF
        pdf = torch.where(row_mass[..., None] > 0, pdf, torch.ones_like(pdf))
        self.col_cdf = torch.cumsum(pdf, -1) / pdf.sum(-1, keepdim=True)

    def sample(
        self, image_ids: Int[Tensor, " num"], generator: torch.Generator | None = None
    ) -> tuple[Int[Tensor, " num"], Int[Tensor, " num"]]:
        """Rows and columns of one pixel per entry of ``image_ids``, each drawn from its image's distribution."""
        num = image_ids.shape[0]
        height, width = self.col_cdf.shape[1:]
        device = self.row_cdf.device
        uniform = torch.rand((num, 2), generator=generator, device=device)
        rows = torch.searchsorted(self.row_cdf[image_ids], uniform[:, :1].contiguous(), right=True)[:, 0]
        rows = rows.clamp_max(height - 1)
        cols = torch.searchsorted(self.col_cdf[image_ids, rows], uniform[:, 1:].contiguous(), right=True)[:, 0]
        return rows, cols.clamp_max(width - 1)


# --- the population -------------------------------------------------------------------------------------------


@dataclass
class SoftMiningSamplerConfig(InstantiateConfig):
    """Constants of the Langevin pixel population (defaults: brief A2.5-A2.6, the released code's values)."""

    _target: Type = field(default_factory=lambda: SoftMiningSampler)
    langevin_drift: float = 0.0
    """``a``: drift step, applied as ``(a / N) * grad_px log err`` to positions normalised to [0, 1]. The released
    ``LMC`` default is 2e1 (``RELEASED_LANGEVIN_DRIFT``); off by default here, from the convergence benchmark's
    ablation (README, Soft mining): at the released drift/noise balance the drift changed the speed-up by less than
    the seeds' spread, while the backward pass it needs into the ray positions made a step 14% dearer (one CPU
    thread; benchmarks/soft_mining_step_cost.py)."""
    langevin_noise: float = 0.02
    """``b``: standard deviation of the Gaussian step, as a fraction of the image height/width (released 2e-2)."""
    reinit_lowest_fraction: float = 0.1
    """Fraction of samples with the lowest error re-initialised every step (released ``--lossminpc 0.1``)."""
    uniform_fraction: float = 0.1
    """Fraction of the other samples redrawn uniformly over their image every step (released ``--minpct 0.1``)."""
    reinit_distribution: ReinitDistribution = "edge"
    """Where re-initialised samples go: "edge" (Sobel-edge PDF of their image, paper and code) or "uniform"."""
    continuous_positions: bool = True
    """Rays and colours at continuous positions (paper). False rounds each sample to its pixel centre, as the released
    code does (its bilinear lookup then reduces to nearest-pixel)."""
    drift_through_target: bool = True
    """The error's gradient includes the target colour's (bilinear) spatial gradient: the paper's Q(x) depends on the
    position through the target too. False: only through the rendered colour, as the released code (which fetches
    the target before the position requires grad). Only with continuous positions."""


class SoftMiningSampler:
    """A persistent population of ``num_samples`` continuous pixel positions over ``num_images`` images.

    Samples are spread round-robin over the images (``image_ids[i] = i mod M``) and keep their image for the whole
    run, as the released code does (``const_img_id``); every image holds ``floor`` or ``ceil`` of ``N / M`` samples.
    """

    def __init__(
        self,
        config: SoftMiningSamplerConfig,
        num_samples: int,
        image_size: tuple[int, int],
        num_images: int,
        edge_pdf: Float[Tensor, "num_images height width"] | None = None,
        mask: Bool[Tensor, "num_images height width"] | None = None,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        if num_samples < 1 or num_images < 1:
            raise ValueError(f"soft mining needs at least one sample and one image (got {num_samples}, {num_images})")
        for name in ("reinit_lowest_fraction", "uniform_fraction"):
            value = getattr(config, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"soft mining: {name} must be in [0, 1], got {value}")
        if config.reinit_lowest_fraction + config.uniform_fraction > 1.0:
            raise ValueError("soft mining: reinit_lowest_fraction + uniform_fraction must not exceed 1")
        self.config = config
        self.num_samples = num_samples
        self.height, self.width = image_size
        self.device = torch.device(device)
        self.generator = generator
        self.num_images = num_images
        self.image_ids = torch.arange(num_samples, device=self.device) % num_images
        self.mask = None if mask is None else mask.to(self.device, torch.bool)
        uniform_pdf = None if self.mask is None else self.mask.float()
        self.uniform_distribution = None if uniform_pdf is None else PixelDistribution(uniform_pdf)
        if config.reinit_distribution == "edge":
            if edge_pdf is None:
                raise ValueError("soft mining: reinit_distribution 'edge' needs the images' edge PDF")
            pdf = edge_pdf.to(self.device)
            self.reinit_distribution = PixelDistribution(pdf if uniform_pdf is None else pdf * uniform_pdf)
        else:
            self.reinit_distribution = self.uniform_distribution
        self.scale = torch.tensor([float(self.height), float(self.width)], device=self.device)
        everyone = torch.arange(num_samples, device=self.device)
        self.positions = self._draw(everyone, self.uniform_distribution)
        """``[N, 2]`` normalised ``(y, x)`` positions in ``[0, 1]``."""

    # --- positions ----------------------------------------------------------------------------------------

    def _rand(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self.generator, device=self.device)

    def _draw(self, indices: Tensor, distribution: PixelDistribution | None) -> Float[Tensor, "num 2"]:
        """New normalised positions for the samples ``indices`` (in their own images)."""
        return self._draw_in(self.image_ids[indices], distribution)

    def _draw_in(self, image_ids: Tensor, distribution: PixelDistribution | None) -> Float[Tensor, "num 2"]:
        """Normalised positions in the images ``image_ids``: a pixel from ``distribution`` (uniform when None), then a
        uniform point inside it (its centre when positions are discrete)."""
        num = image_ids.shape[0]
        if distribution is None:
            return self._rand(num, 2)
        rows, cols = distribution.sample(image_ids, self.generator)
        offset = self._rand(num, 2) if self.config.continuous_positions else torch.full((num, 2), 0.5)
        pixel = torch.stack([rows, cols], -1).float() + offset.to(self.device)
        return pixel / self.scale

    def uniform_batch(self) -> tuple[Int[Tensor, " num"], Float[Tensor, "num 2"]]:
        """``N`` fresh positions that do not touch the population: for each, a random image and a uniform position in
        it (in its mask, if any). The released code's ``--sampling_type uniform`` baseline (brief A2.7), drawn through
        the same position convention as the population so that the two samplers differ in nothing else.

        Returns the image of each position and the normalised positions."""
        image_ids = torch.randint(self.num_images, (self.num_samples,), generator=self.generator, device=self.device)
        return image_ids, self._draw_in(image_ids, self.uniform_distribution)

    def pixel_coords(self, positions: Float[Tensor, "num 2"] | None = None) -> Float[Tensor, "num 2"]:
        """Pixel coordinates ``(y, x)`` to cast rays through, of ``positions`` (default: the population's): continuous,
        or the centre of the pixel holding each one when ``continuous_positions`` is False."""
        coords = (self.positions if positions is None else positions) * self.scale
        if self.config.continuous_positions:
            return coords
        pixel = torch.minimum(torch.floor(coords), self.scale - 1)
        return pixel + 0.5

    def pixel_indices(self, positions: Float[Tensor, "num 2"] | None = None) -> Int[Tensor, "num 2"]:
        """Integer ``(row, column)`` of the pixel holding each of ``positions`` (default: the population's)."""
        pixel = torch.floor((self.positions if positions is None else positions) * self.scale)
        return torch.minimum(pixel, self.scale - 1).long()

    def _outside_mask(self) -> Bool[Tensor, " num"]:
        if self.mask is None:
            return torch.zeros(self.num_samples, dtype=torch.bool, device=self.device)
        rows, cols = self.pixel_indices().unbind(-1)
        return ~self.mask[self.image_ids, rows, cols]

    # --- the Langevin step --------------------------------------------------------------------------------

    def step(
        self,
        log_error_grad: Float[Tensor, "num 2"] | None,
        error: Float[Tensor, " num"],
    ) -> dict[str, int]:
        """Move every sample by one Langevin step, then re-initialise (see module doc).

        Args:
            log_error_grad: ``grad_px log err`` at each sample (pixel units), or None for a pure-noise step. Non-finite
                entries (a skipped mixed-precision step) count as zero drift.
            error: the per-sample error of the last step, which ranks samples for the lowest-error re-initialisation.

        Returns:
            How many samples left the image, were re-initialised for low error and were redrawn uniformly.
        """
        config = self.config
        num = self.num_samples
        drift = torch.zeros_like(self.positions)
        if log_error_grad is not None:
            drift = torch.nan_to_num(log_error_grad.to(self.positions), nan=0.0, posinf=0.0, neginf=0.0)
            drift = drift * (config.langevin_drift / num)
        noise = torch.randn(self.positions.shape, generator=self.generator, device=self.device)
        self.positions = self.positions + drift + config.langevin_noise * noise

        left = ((self.positions < 0) | (self.positions > 1)).any(-1)
        self.positions = self.positions.clamp(0.0, 1.0)  # to look up the mask; re-initialised below
        left = left | self._outside_mask()

        # lowest error among the samples that stayed; no sample is counted twice
        num_lowest = int(config.reinit_lowest_fraction * num)
        ranking = torch.where(left, torch.full_like(error, math.inf), error.detach().to(self.device).float())
        ranking = torch.nan_to_num(ranking, nan=math.inf)
        stuck = torch.zeros_like(left)
        num_lowest = min(num_lowest, int((~left).sum()))
        if num_lowest > 0:
            stuck[torch.topk(ranking, num_lowest, largest=False).indices] = True
        reinit = left | stuck

        # a random disjoint share redrawn uniformly
        num_uniform = min(int(config.uniform_fraction * num), int((~reinit).sum()))
        redraw_uniform = torch.zeros_like(left)
        if num_uniform > 0:
            candidates = torch.nonzero(~reinit)[:, 0]
            order = torch.randperm(candidates.shape[0], generator=self.generator, device=self.device)
            redraw_uniform[candidates[order[:num_uniform]]] = True

        reinit_ids = torch.nonzero(reinit)[:, 0]
        uniform_ids = torch.nonzero(redraw_uniform)[:, 0]
        if reinit_ids.numel():
            self.positions[reinit_ids] = self._draw(reinit_ids, self.reinit_distribution)
        if uniform_ids.numel():
            self.positions[uniform_ids] = self._draw(uniform_ids, self.uniform_distribution)
        return {"left_image": int(left.sum()), "lowest_error": int(stuck.sum()), "uniform": num_uniform}
