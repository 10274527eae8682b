"""``SoftMiningPipeline``: importance-weighted RGB loss and the Langevin feedback loop, for any pixel-sampling model.

Per training step (brief A2, A5):

1. the data manager (:mod:`.datamanager`) casts rays through the population's positions ``x`` (a leaf tensor);
2. the model renders them; its RGB loss, swapped for :class:`~.loss.SoftMiningRGBLoss`, weights each ray's squared
   error ``err`` by ``w = clamp(sg(Q)^-r)``, ``r`` warming up linearly to ``alpha``;
3. nerfstudio's trainer runs the backward pass and the optimiser step;
4. after the step (an ``AFTER_TRAIN_ITERATION`` callback) the population moves by ``grad_px log err``, read from
   ``x.grad``, and re-initialises (:meth:`~.sampler.SoftMiningSampler.step`).

How the drift's gradient is obtained (``drift_gradient``)
    ``"loss"`` (default, free): from the training backward pass itself. The rendered RGB terms contribute
    ``(1/N) sum_t w_t grad err_t`` to ``x.grad``; dividing by ``(1/N) sum_t w_t err_t`` (and the gradient scaler's
    scale) gives ``grad log err``, as the released code does (brief A2.4, after commit ce17cb1). Two deviations,
    both documented in the README: ``err`` is the squared error (the paper writes ``grad log Q`` with the L1 ``Q``),
    and ``x.grad`` also holds the gradient of the model's other losses that depend on ray directions (nerfacto's
    interlevel and distortion losses; the released code detaches the proposal network's directions instead).

    ``"exact"``: ``grad log Q`` of the RGB term only, from a separate ``torch.autograd.grad`` before the backward
    pass (paper Eq. 10 exactly), at the cost of a second backward pass through the field.

Any model that computes its RGB loss as ``self.rgb_loss(gt, pred)`` on per-ray colours works unchanged (nerfacto,
instant-ngp, vanilla-nerf, mip-NeRF); the README explains the other cases.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Sequence, Type

import torch
from jaxtyping import Float
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor, nn
from torch.cuda.amp.grad_scaler import GradScaler

from nerfstudio_methods.soft_mining.datamanager import COORDS_KEY, SoftMiningDataManagerMixin
from nerfstudio_methods.soft_mining.losses import RgbTerm, SoftMiningRGBLoss
from nerfstudio_methods.soft_mining.sampler import importance_exponent

DriftGradient = Literal["loss", "exact"]
PixelSampler = Literal["soft-mining", "uniform"]


@dataclass
class SoftMiningPipelineConfig(VanillaPipelineConfig):
    """Soft-mining loss weighting (defaults: Blender, brief A2.3; see ``config.py`` for the LLFF preset)."""

    _target: Type = field(default_factory=lambda: SoftMiningPipeline)
    sampler: PixelSampler = "soft-mining"
    """Which pixels a training step learns from. "soft-mining": the Langevin population with importance-weighted
    loss. "uniform": for every ray a random training image and a uniform position in it, plain MSE (the released
    code's ``--sampling_type uniform`` baseline, brief A2.7). Model, rays, target lookup, optimisers and schedule
    are the same, so ``--pipeline.sampler uniform`` is every soft-mining preset's uniform twin."""
    alpha: float = 0.6
    """Importance exponent: 0 = hard mining (no re-weighting), 1 = unbiased importance sampling. Released code: 0.6
    Blender, 0.8 LLFF."""
    alpha_warmup_steps: int = 1000
    """Steps over which the exponent rises linearly from 0 to ``alpha`` (paper: 1k; the released code reaches alpha
    at ``1000 * alpha``, i.e. set this to 600 / 800 to reproduce it)."""
    error_floor: float = 2.0**-10
    """``Q`` is floored here before the power (released: float16 epsilon)."""
    weight_clamp_min: Optional[float] = 0.2
    """Lower clamp of the weights (released code); None: no lower clamp."""
    weight_clamp_mean_plus_std: bool = True
    """Upper clamp of the weights at their mean + std over the batch (released code)."""
    drift_gradient: DriftGradient = "loss"
    """"loss": ``grad log err`` from the training backward pass (free, released code's estimator); "exact": ``grad log
    Q`` of the RGB term alone by an extra backward pass (paper Eq. 10; slower). See the module doc."""


def log_error_gradient(
    coords_grad: Float[Tensor, "num 2"], terms: Sequence[RgbTerm], scale: float = 1.0, error_floor: float = 2.0**-10
) -> Float[Tensor, "num 2"]:
    """``grad_px log err`` per sample from ``d loss / d x`` of a finished backward pass (the "loss" estimator).

    Each RGB term ``(1/N) sum_i w_i err_i`` contributes ``(w_i / N) grad err_i`` to sample ``i``'s gradient (times
    the gradient scaler's ``scale``), so ``N * grad / (scale * sum_t w_t err_t)`` is the ``w err``-weighted mean of
    the terms' ``grad log err`` (exact for one term). ``err`` is floored at ``error_floor^2`` against division by
    zero, as ``Q`` is floored for the weights.
    """
    weighted = torch.stack([term.weights * term.squared_error for term in terms]).sum(0)
    floor = torch.stack([term.weights for term in terms]).sum(0) * error_floor**2
    num = coords_grad.shape[0]
    return coords_grad * (num / scale) / torch.maximum(weighted, floor)[:, None]


@dataclass
class _PendingStep:
    """What the Langevin step after the backward pass needs from the forward pass."""

    coords: Tensor
    terms: List[RgbTerm]
    scale: float
    exact_grad: Tensor | None


class SoftMiningPipeline(VanillaPipeline):
    """``VanillaPipeline`` with the soft-mining loss and population update (see module doc)."""

    config: SoftMiningPipelineConfig

    def __init__(
        self,
        config: SoftMiningPipelineConfig,
        device: str,
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        grad_scaler: Optional[GradScaler] = None,
    ) -> None:
        super().__init__(config, device, test_mode, world_size, local_rank, grad_scaler)
        if not isinstance(self.datamanager, SoftMiningDataManagerMixin):
            raise ValueError(
                f"SoftMiningPipeline needs a soft-mining data manager (SoftMiningDataManagerConfig or "
                f"SoftMiningVanillaDataManagerConfig), got {type(self.datamanager).__name__}"
            )
        current = getattr(self.model, "rgb_loss", None)
        if not isinstance(current, (nn.MSELoss, SoftMiningRGBLoss)):
            raise ValueError(
                f"soft mining re-weights the model's RGB loss, expected `self.rgb_loss = MSELoss()` on "
                f"{type(self.model).__name__}, found {type(current).__name__}; see the README (Soft mining, "
                "'your own method') for models that compute their colour loss differently"
            )
        self.rgb_loss = SoftMiningRGBLoss(
            error_floor=config.error_floor,
            clamp_min=config.weight_clamp_min,
            clamp_to_mean_plus_std=config.weight_clamp_mean_plus_std,
        )
        self.model.rgb_loss = self.rgb_loss
        self.soft_mining_datamanager.uniform_sampling = config.sampler == "uniform"
        if config.sampler == "uniform":
            CONSOLE.print("Uniform pixel sampling (--pipeline.sampler uniform): the population is not used")
        self.grad_scaler = grad_scaler
        self._pending: _PendingStep | None = None
        self.last_population_stats: Dict[str, int] = {}

    @property
    def soft_mining_datamanager(self) -> SoftMiningDataManagerMixin:
        return typing.cast(SoftMiningDataManagerMixin, self.datamanager)

    def _scale(self) -> float:
        """The gradient scaler's current scale: the factor in ``x.grad`` after the trainer's backward pass."""
        if self.grad_scaler is None or not self.grad_scaler.is_enabled():
            return 1.0
        return float(self.grad_scaler.get_scale())

    def get_train_loss_dict(self, step: int):
        if self.config.sampler == "uniform":
            return super().get_train_loss_dict(step)  # uniform batches, the model's RGB loss as plain MSE
        ray_bundle, batch = self.datamanager.next_train(step)
        model_outputs = self._model(ray_bundle)
        metrics_dict = self.model.get_metrics_dict(model_outputs, batch)
        exponent = importance_exponent(step, self.config.alpha, self.config.alpha_warmup_steps)
        self.rgb_loss.arm(exponent)
        try:
            loss_dict = self.model.get_loss_dict(model_outputs, batch, metrics_dict)
        finally:
            terms = self.rgb_loss.disarm()
        if not terms:
            raise RuntimeError(f"{type(self.model).__name__}.get_loss_dict never called self.rgb_loss")
        coords: Tensor = batch[COORDS_KEY]
        exact_grad = None
        if self.config.drift_gradient == "exact" and coords.requires_grad:
            log_q = torch.log(terms[-1].l1_error.clamp_min(self.config.error_floor)).sum()
            (exact_grad,) = torch.autograd.grad(log_q, coords, retain_graph=True, allow_unused=True)
        self._pending = _PendingStep(coords, terms, self._scale(), exact_grad)
        metrics_dict["soft_mining_exponent"] = torch.tensor(exponent)
        metrics_dict["soft_mining_mean_weight"] = terms[-1].weights.mean()
        for key, value in self.last_population_stats.items():
            metrics_dict[f"soft_mining_{key}"] = torch.tensor(float(value))
        return model_outputs, loss_dict, metrics_dict

    def update_population(self, step: int) -> None:
        """The Langevin step and re-initialisation, after the trainer's backward pass and optimiser step."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        grad = pending.exact_grad
        if grad is None and pending.coords.grad is not None:
            grad = log_error_gradient(pending.coords.grad, pending.terms, pending.scale, self.config.error_floor)
        self.last_population_stats = self.soft_mining_datamanager.soft_mining_step(
            grad, pending.terms[-1].squared_error
        )

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        callbacks = super().get_training_callbacks(training_callback_attributes)
        if training_callback_attributes.grad_scaler is not None:
            self.grad_scaler = training_callback_attributes.grad_scaler
        callbacks.append(
            TrainingCallback(where_to_run=[TrainingCallbackLocation.AFTER_TRAIN_ITERATION], func=self.update_population)
        )
        return callbacks
