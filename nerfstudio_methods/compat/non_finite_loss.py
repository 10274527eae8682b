"""Training stops at a non-finite loss.

nerfstudio 1.1.5's trainer keeps stepping when a loss becomes NaN or infinite (a NaN pose, a degenerate camera, a
diverging setting): the run finishes with exit status 0 and every later checkpoint holds NaN parameters. Now the
step whose loss is not finite stops the run with one line naming the step, the loss terms that are not finite and
the last checkpoint saved before it (whose parameters were still finite), before anything else is written.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any, Callable

from nerfstudio_methods.compat import FixNotYetPossible
from nerfstudio_methods.compat.checkpoint_files import last_good_checkpoint
from nerfstudio_methods.input_errors import InputError


class NonFiniteLossError(InputError):
    """Training produced a NaN or infinite loss; the message names the step, the terms and the last checkpoint."""


def non_finite_terms(loss_dict: dict[str, Any]) -> list[str]:
    """``name=value`` of every loss term whose value is not finite."""
    bad = []
    for name, value in loss_dict.items():
        number = float(value.detach().sum()) if hasattr(value, "detach") else float(value)
        if not math.isfinite(number):
            bad.append(f"{name}={number}")
    return bad


def checked(train_iteration: Callable[[Any, int], Any]) -> Callable[[Any, int], Any]:
    """``train_iteration`` that raises :class:`NonFiniteLossError` when a loss term of its step is not finite."""

    @functools.wraps(train_iteration)
    def train_iteration_checked(self: Any, step: int) -> Any:
        loss, loss_dict, metrics_dict = train_iteration(self, step)
        # One device sync per step: the sum over every term is finite exactly when every term is.
        total = sum(value.detach().float().sum() for value in loss_dict.values() if hasattr(value, "detach"))
        bad = [] if math.isfinite(float(total)) else non_finite_terms(loss_dict)
        if bad:
            raise NonFiniteLossError(
                f"step {step}: the training loss is not finite ({', '.join(bad)}); training stopped, the last "
                f"checkpoint saved before it: {last_good_checkpoint(getattr(self, 'checkpoint_dir', None))}"
            )
        return loss, loss_dict, metrics_dict

    train_iteration_checked._nerfstudio_methods = True  # type: ignore[attr-defined]
    return train_iteration_checked


def stop_at_non_finite_loss() -> None:
    """Wrap ``Trainer.train_iteration`` with :func:`checked` (idempotent)."""
    Trainer = getattr(sys.modules.get("nerfstudio.engine.trainer"), "Trainer", None)
    if Trainer is None:
        raise FixNotYetPossible("nerfstudio's trainer is not imported yet")
    if not getattr(Trainer.train_iteration, "_nerfstudio_methods", False):
        Trainer.train_iteration = checked(Trainer.train_iteration)  # type: ignore[method-assign]
