"""InfoNeRF's ray-entropy and information-gain (KL) losses for any nerfstudio model (brief B1, B2, B7).

The pieces, each usable on its own:

- The terms, pure functions of per-sample opacities: the opacities ``alpha_i = 1 - exp(-sigma_i * delta_i)`` of
  the fine pass, shape ``[num_rays, num_samples]``, normalised along each ray into a distribution
  ``p_i = alpha_i / (sum_j alpha_j + 1e-10)``; the epsilons are those of the released code (``utils/loss.py``), so
  values agree with it to float precision (:func:`ray_entropy_loss`, :func:`information_gain_loss`).
- :class:`InfoNeRFLossConfig`: the loss weights and options, a dataclass to mix into a model config
  (``@dataclass class MyModelConfig(NerfactoModelConfig, InfoNeRFLossConfig)``), so they become
  ``--pipeline.model.entropy-lambda`` etc. on the command line.
- :class:`InfoNeRFLossMixin`: put it before the model class (``class MyModel(InfoNeRFLossMixin, NerfactoModel)``).
  On batches from an InfoNeRF data manager (:mod:`.datamanager`; ``n_seen`` in the batch) it

  - cuts the per-ray outputs to the seen rays before the base class's metrics and losses (the RGB loss, PSNR), and
    keeps list outputs whole (nerfacto's ``weights_list``/``ray_samples_list``: the proposal and distortion losses
    then cover the unseen rays too, which the proposal networks need to sample them well);
  - adds ``entropy_loss`` and ``kl_loss`` (and ``ray_entropy``, ``information_gain`` metrics);
  - keeps ``self.step`` up to date for the KL schedule.

  On any other batch (a plain data manager, evaluation) it changes nothing: the base model's outputs, metrics and
  losses come back as they are.
- :func:`record_sample_opacities`: the per-sample opacities the losses need, for a model whose ``get_outputs`` does
  not return them: while it is active, every call of ``field.get_density`` records ``1 - exp(-sigma * delta)`` of
  the samples it was given. For nerfacto that is the final field's pass on the proposal-resampled samples.

What the model must output in training: ``outputs[alphas_output]`` (``[num_rays, num_samples]`` opacities, one row
per ray of the batch) and ``outputs[accumulation_output]`` (``[num_rays, 1]``, the summed weights). The names are
class attributes of the mixin.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Optional

import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RaySamples
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.fields.base_field import Field
from torch import Tensor

EPS = 1e-10
"""The epsilon of the released code, both in the normalisation and inside the logarithms."""

KLDirection = Literal["original-to-neighbour", "neighbour-to-original"]
EntropyDistribution = Literal["opacities", "weights"]


def sample_opacities(
    density: Float[Tensor, "num_rays num_samples"], deltas: Float[Tensor, "num_rays num_samples"]
) -> Float[Tensor, "num_rays num_samples"]:
    """``alpha_i = 1 - exp(-sigma_i * delta_i)``, never negative.

    nerfstudio's PDF sampler maps sorted normalised bins to metric depths with a float affine map, which can swap two
    nearly equal bins: a delta of about -1e-7 (measured). The opacity is then slightly negative, ``p_i`` too, and
    ``log(p_i + 1e-10)`` is NaN, which poisons the fine field within one step. Such deltas are clamped to 0.
    """
    return 1.0 - torch.exp(-density * deltas.clamp_min(0.0))


def render_weights(alphas: Float[Tensor, "num_rays num_samples"]) -> Float[Tensor, "num_rays num_samples"]:
    """Volume-rendering weights ``w_i = alpha_i * prod_{j<i} (1 - alpha_j)``: the share of a ray's colour each sample
    gives (what nerfstudio's ``RaySamples.get_weights`` computes from densities), for the entropy's ``weights``
    option."""
    transmittance = torch.cumprod(1.0 - alphas, dim=-1)
    transmittance = torch.cat([torch.ones_like(alphas[..., :1]), transmittance[..., :-1]], dim=-1)
    return alphas * transmittance


def ray_distribution(alphas: Float[Tensor, "num_rays num_samples"]) -> Float[Tensor, "num_rays num_samples"]:
    """``p_i = alpha_i / (sum_j alpha_j + 1e-10)``: the opacities of a ray normalised to (almost) sum to one."""
    return alphas / (alphas.sum(dim=-1, keepdim=True) + EPS)


def ray_entropy(alphas: Float[Tensor, "num_rays num_samples"], log_base: float = 2.0) -> Float[Tensor, " num_rays"]:
    """Shannon entropy of each ray's normalised opacities, ``-sum_i p_i log(p_i + 1e-10)`` (bits by default, as
    ``entropy_type='log2'`` in the code)."""
    p = ray_distribution(alphas)
    return -(p * torch.log(p + EPS)).sum(dim=-1) / math.log(log_base)


def ray_entropy_loss(
    alphas: Float[Tensor, "num_rays num_samples"],
    accumulation: Float[Tensor, "num_rays 1"] | Float[Tensor, " num_rays"],
    threshold: float,
    log_base: float = 2.0,
) -> Float[Tensor, ""]:
    """Masked ray entropy (B1): mean over all given rays of ``[acc > threshold] * H(ray)``.

    Rays whose accumulated opacity (sum of the fine weights) is at most ``threshold`` contribute zero but still count
    in the denominator, as in ``EntropyLoss.ray_zvals``; the mask is not differentiated.
    """
    if alphas.shape[0] == 0:
        return alphas.sum()
    mask = (accumulation.reshape(-1) > threshold).detach().to(alphas.dtype)
    return (mask * ray_entropy(alphas, log_base=log_base)).mean()


def information_gain_loss(
    alphas_original: Float[Tensor, "num_rays num_samples"],
    alphas_neighbour: Float[Tensor, "num_rays num_samples"],
    direction: KLDirection = "original-to-neighbour",
) -> Float[Tensor, ""]:
    """KL divergence between the sample distributions of rays and of their neighbours (B2), averaged over rays.

    Distributions are ``p = alpha / (sum alpha + 1e-10) + 1e-10`` (``smoothing_activation='norm'``), compared sample
    index by sample index, natural log, neither side detached.

    - ``"original-to-neighbour"``: ``KL(P_original || P_neighbour)``, the paper's formula (Eq. for L_KL).
    - ``"neighbour-to-original"``: ``KL(P_neighbour || P_original)``, what the released code computes with
      ``nn.KLDivLoss(reduction='batchmean')(p.log(), q)`` (github.com/mjmjeong/InfoNeRF issue #10).
    """
    if alphas_original.shape != alphas_neighbour.shape:
        raise ValueError(
            f"original and neighbour rays differ in shape: {alphas_original.shape} vs {alphas_neighbour.shape}"
        )
    if alphas_original.shape[0] == 0:
        return alphas_original.sum()
    p = ray_distribution(alphas_original) + EPS
    q = ray_distribution(alphas_neighbour) + EPS
    if direction == "original-to-neighbour":
        p, q = q, p  # below: KL(q || p)
    elif direction != "neighbour-to-original":
        raise ValueError(f"unknown KL direction {direction!r}")
    return (q * (q.log() - p.log())).sum() / alphas_original.shape[0]


def kl_weight(step: int, initial: float, rate: float, step_size: int) -> float:
    """The decaying KL weight ``initial * rate ** floor(step / step_size)`` (``smoothing_lambda``, ``smoothing_rate``,
    ``smoothing_step_size``)."""
    if step_size <= 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    return initial * rate ** (max(step, 0) // step_size)


# --- the losses on a model: options, batches, mixin ------------------------------------------------------------

INFONERF_BATCH_KEYS = ("n_seen", "n_unseen", "n_near")
"""Ray counts an InfoNeRF data manager puts into each training batch (layout ``[seen | unseen | near...]``)."""


@dataclass
class InfoNeRFLossConfig:
    """InfoNeRF's loss options; mix into a model config. Defaults: the released Blender config (B3)."""

    entropy_lambda: float = 0.001
    """Weight of the ray entropy loss (``entropy_ray_zvals_lambda``; Blender 0.001, DTU 0.002)."""
    entropy_acc_threshold: float = 0.1
    """Rays whose accumulated opacity is at most this get no entropy (still counted in the mean); DTU 0.01."""
    entropy_on_seen_rays: bool = False
    """Also apply the entropy to the seen (training) rays: the paper sums over R_s and R_u; the released code uses
    only the other rays (``computing_entropy_all=False``), which the author reports makes no significant difference
    (InfoNeRF issue #3). Default: the code."""
    entropy_on_neighbour_rays: bool = True
    """Apply the entropy to the neighbour rays too, when there are any (``entropy_ignore_smoothing=False``)."""
    entropy_distribution: EntropyDistribution = "opacities"
    """What the entropy normalises along each ray: "opacities" ``alpha_i`` (the paper and the released code), or
    "weights", the rendering weights ``alpha_i * prod_{j<i} (1 - alpha_j)`` (not the paper's: density hidden behind
    the first surface then costs nothing, so the entropy does not thin a solid object from inside; an option this
    package adds, measured in the README's few-shot benchmark)."""
    entropy_log_base: float = 2.0
    """Logarithm base of the entropy (``entropy_type='log2'``)."""
    entropy_end_step: Optional[int] = None
    """Training step from which the entropy loss is switched off (``entropy_end_iter``; None, as in the released
    configs: on for the whole run)."""
    kl_lambda: float = 0.0
    """Initial weight of the information-gain (KL) loss (``smoothing_lambda``); 0 disables it (the released Blender
    config). The DTU config uses 2e-5. Needs ``--pipeline.datamanager.neighbour-rays True``."""
    kl_rate: float = 0.5
    """The KL weight is multiplied by this every ``kl_step_size`` steps (``smoothing_rate``)."""
    kl_step_size: int = 5000
    """Steps between KL weight decays (``smoothing_step_size``)."""
    kl_direction: KLDirection = "original-to-neighbour"
    """"original-to-neighbour" = KL(P_original || P_neighbour), the paper's formula; "neighbour-to-original" is what
    the released code computes (InfoNeRF issue #10)."""


def is_infonerf_batch(batch: Dict) -> bool:
    """Whether ``batch`` comes from an InfoNeRF data manager (it then holds the seen/unseen/near ray counts)."""
    return "n_seen" in batch


def seen_ray_outputs(outputs: Dict[str, Any], n_seen: int, num_rays: int, skip: tuple[str, ...] = ()) -> Dict:
    """``outputs`` with every per-ray tensor (first dimension ``num_rays``) cut to its first ``n_seen`` rows; other
    values (lists, scalars) and the keys in ``skip`` are left out of the cut and passed through as they are."""
    return {
        key: value[:n_seen]
        if key not in skip and isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == num_rays
        else value
        for key, value in outputs.items()
    }


class _OpacityRecord:
    """What :func:`record_sample_opacities` saw: the opacities and samples of the last ``get_density`` call."""

    def __init__(self) -> None:
        self.alphas: Optional[Tensor] = None
        self.ray_samples: Optional[RaySamples] = None


@contextlib.contextmanager
def record_sample_opacities(field: Field) -> Iterator[_OpacityRecord]:
    """While active, ``field.get_density`` also records ``alpha = 1 - exp(-sigma * delta)`` ``[rays, samples]`` of
    the samples it is called on (the last call wins); the field itself computes exactly what it did before.

    nerfstudio fields compute the density of a pass through ``get_density`` (``Field.forward`` calls it), and
    nerfacto's proposal networks are other modules, so for nerfacto's ``self.field`` this records the final,
    proposal-resampled samples. The patch is an instance attribute, removed on exit.
    """
    record = _OpacityRecord()
    original = field.get_density

    def get_density(ray_samples: RaySamples):
        density, embedding = original(ray_samples)
        if ray_samples.deltas is not None:
            record.alphas = sample_opacities(density[..., 0], ray_samples.deltas[..., 0])
            record.ray_samples = ray_samples
        return density, embedding

    field.get_density = get_density  # type: ignore[method-assign]
    try:
        yield record
    finally:
        del field.get_density  # back to the class's method


class InfoNeRFLossMixin:
    """Adds InfoNeRF's losses to a nerfstudio model (see module doc). Put it first among the bases."""

    config: Any  # the model config, with InfoNeRFLossConfig's fields
    step: int
    alphas_output: str = "infonerf_alphas"
    """Output holding the ``[num_rays, num_samples]`` opacities the losses use."""
    accumulation_output: str = "accumulation"
    """Output holding the ``[num_rays, 1]`` accumulated opacity (the entropy's empty-ray mask)."""

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        def set_step(step: int) -> None:
            self.step = step

        callbacks = super().get_training_callbacks(training_callback_attributes)  # type: ignore[misc]
        return [
            *callbacks,
            TrainingCallback(
                where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], update_every_num_iters=1, func=set_step
            ),
        ]

    def kl_weight(self, step: Optional[int] = None) -> float:
        """``kl_lambda * kl_rate ** floor(step / kl_step_size)`` at ``step`` (default: the current step)."""
        config = self.config
        current = getattr(self, "step", 0) if step is None else step
        return kl_weight(current, config.kl_lambda, config.kl_rate, config.kl_step_size)

    def entropy_weight(self, step: Optional[int] = None) -> float:
        """``entropy_lambda`` before ``entropy_end_step`` (default: the current step), 0 from it on."""
        config = self.config
        current = getattr(self, "step", 0) if step is None else step
        end = config.entropy_end_step
        return config.entropy_lambda if end is None or current < end else 0.0

    def regularizer_terms(self, outputs: Dict[str, Any], batch: Dict) -> Dict[str, Tensor]:
        """Unweighted ``ray_entropy`` and ``information_gain`` (KL) of an InfoNeRF training batch, else ``{}``."""
        if not is_infonerf_batch(batch) or self.alphas_output not in outputs:
            return {}
        config = self.config
        n_seen, n_unseen, n_near = int(batch["n_seen"]), int(batch["n_unseen"]), int(batch.get("n_near", 0))
        alphas, accumulation = outputs[self.alphas_output], outputs[self.accumulation_output]
        if alphas.shape[0] != n_seen + n_unseen + n_near:
            raise ValueError(f"batch has {alphas.shape[0]} rays, expected {n_seen}+{n_unseen}+{n_near}")
        start = 0 if config.entropy_on_seen_rays else n_seen
        stop = n_seen + n_unseen + (n_near if config.entropy_on_neighbour_rays else 0)
        entropy_input = alphas[start:stop]
        if config.entropy_distribution == "weights":
            entropy_input = render_weights(entropy_input)
        elif config.entropy_distribution != "opacities":
            raise ValueError(f"unknown entropy distribution {config.entropy_distribution!r} (opacities or weights)")
        terms = {
            "ray_entropy": ray_entropy_loss(
                entropy_input,
                accumulation[start:stop],
                config.entropy_acc_threshold,
                log_base=config.entropy_log_base,
            )
        }
        if config.kl_lambda > 0:
            if n_near != n_seen + n_unseen:
                raise ValueError(
                    "the KL loss (kl_lambda > 0) needs neighbour rays: add --pipeline.datamanager.neighbour-rays True"
                )
            half = n_seen + n_unseen
            terms["information_gain"] = information_gain_loss(
                alphas[:half], alphas[half:], direction=config.kl_direction
            )
        return terms

    def seen_outputs(self, outputs: Dict[str, Any], batch: Dict) -> Dict[str, Any]:
        """The outputs of the seen rays (all outputs when ``batch`` is not an InfoNeRF batch)."""
        if not is_infonerf_batch(batch) or self.alphas_output not in outputs:
            return outputs
        num_rays = outputs[self.alphas_output].shape[0]
        seen = seen_ray_outputs(outputs, int(batch["n_seen"]), num_rays, skip=(self.alphas_output,))
        seen.pop(self.alphas_output)
        return seen

    def get_metrics_dict(self, outputs: Dict[str, Any], batch: Dict) -> Dict[str, Tensor]:
        metrics = dict(super().get_metrics_dict(self.seen_outputs(outputs, batch), batch))  # type: ignore[misc]
        terms = self.regularizer_terms(outputs, batch)
        metrics.update({name: term.detach() for name, term in terms.items()})
        if "information_gain" in terms:
            metrics["kl_weight"] = torch.tensor(self.kl_weight())
        return metrics

    def get_loss_dict(self, outputs: Dict[str, Any], batch: Dict, metrics_dict=None) -> Dict[str, Tensor]:
        loss_dict = super().get_loss_dict(self.seen_outputs(outputs, batch), batch, metrics_dict)  # type: ignore[misc]
        terms = self.regularizer_terms(outputs, batch)
        # A term whose weight is 0 stays out of the loss: 0 * a non-finite value is NaN, and its gradient would
        # reach the field even though the term is switched off.
        if "ray_entropy" in terms and self.entropy_weight() > 0:
            loss_dict["entropy_loss"] = self.entropy_weight() * terms["ray_entropy"]
        if "information_gain" in terms and self.kl_weight() > 0:
            loss_dict["kl_loss"] = self.kl_weight() * terms["information_gain"]
        return loss_dict


__all__ = [
    "InfoNeRFLossConfig",
    "InfoNeRFLossMixin",
    "is_infonerf_batch",
    "record_sample_opacities",
    "seen_ray_outputs",
]
