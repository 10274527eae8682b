"""Point trajectories through MonoNeRF's velocity field, in frame units (mononerf.md §1 "Velocity field & trajectories").

A velocity is any ``nn.Module`` with ``forward(points: Float[Tensor, "n 3"], frame: Float[Tensor, "n 1"])`` returning
``dx / d(frame)`` (NDC units per frame) at absolute, continuous frame index ``frame``. A trajectory from frame ``f0``
solves ``dx/ds = v(x, f0 + s)`` from ``s = 0`` to ``s = frames`` (``+1``: the next frame, ``-1``: the previous one).

Solvers:

- ``"ode"`` / ``"ode-adjoint"``: torchdiffeq's ``odeint`` / ``odeint_adjoint`` (the paper's Neural ODE; mononerf.md §6
  "torchdiffeq API"). The absolute frame reaches the velocity through the ODE function's attribute, not through the
  ``f_options`` argument that only Occupancy Flow's vendored torchdiffeq has (the released code's incompatibility,
  mononerf.md §0).
- ``"euler"``: the released explicit Euler loop, ``x += sign * v(x, f0 + sign * i / steps) / steps`` for
  ``i = 0 .. steps - 1`` (``PixelNeRFNet.forward``; ``discrete_steps = 2`` in every released config).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Tuple

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfstudio_methods.mononerf.field import SceneVelocity

TrajectorySolver = Literal["ode", "ode-adjoint", "euler"]

RELEASED_FRAME_COUNT = 12
"""The released ODE branch converts relative time with a hard-coded 12 frames (mononerf.md §1, §5)."""


@dataclass
class TrajectoryConfig:
    """How points follow the velocity field; ``MonoNeRFModelConfig`` inherits these settings
    (``--pipeline.model.<name>``)."""

    trajectory_solver: Literal["ode", "ode-adjoint", "euler"] = "ode"
    """torchdiffeq ``odeint`` (the paper's Neural ODE), ``odeint_adjoint``, or the released explicit Euler."""
    ode_method: str = "dopri5"
    """torchdiffeq method (``ode_solver``); rtol / atol below are the released ODE defaults."""
    ode_rtol: float = 1e-2
    ode_atol: float = 1e-3
    ode_first_step: Optional[float] = 0.5
    """First step of an adaptive solver, in frames (None: torchdiffeq's estimate, which starts near 1e-6 for a
    still field and spends ~40 evaluations growing it)."""
    euler_steps: int = 2
    """Euler steps per frame (``discrete_steps``)."""
    velocity_scale: Optional[float] = None
    """Largest NDC displacement per frame (``tanh = 1``). None: ``1 / N`` for an ``N``-frame video, as the released
    ODE branch (the paper's Neural ODE) integrates over ``1 / N``; 1.0 is the released discrete branch, with which the
    world-space smoothness terms blew up in CPU runs (gradient norms 1e4-3e5 within 15 stage-2 steps)."""
    released_backward_code_bug: bool = False
    """The released Euler loop overwrites the forward hidden state so the backward trajectory never sees ``c``:
    reproduced as a zero global code for the backward velocity."""
    released_twelve_frames: bool = False
    """The released ODE branch converts time with 12 frames whatever the video's length."""


class _SignedFrameODE(nn.Module):
    """The ODE right-hand side ``f(s, x) = sign * v(x, start + sign * s)`` for ``s`` in ``[0, span]``.

    One solve then serves points that move forward (``sign = +1``) and backward (``sign = -1``) at once: substituting
    ``s -> sign * s`` turns the backward problem on ``[0, -span]`` into a forward one on ``[0, span]``. The velocity
    is a registered submodule, so ``odeint_adjoint`` finds its parameters."""

    def __init__(self, velocity: nn.Module, start_frame: Float[Tensor, "n 1"], sign: Float[Tensor, "n 1"]) -> None:
        super().__init__()
        self.velocity = velocity
        self.start_frame = start_frame
        self.sign = sign

    def forward(self, s: Tensor, points: Float[Tensor, "n 3"]) -> Float[Tensor, "n 3"]:
        frame = self.start_frame + self.sign * s.to(points)
        return self.sign * self.velocity(points, frame)


def _integrate_signed(
    velocity: nn.Module,
    points: Float[Tensor, "n 3"],
    start_frame: Float[Tensor, "n 1"],
    sign: Float[Tensor, "n 1"],
    span: float,
    solver: TrajectorySolver,
    method: str,
    rtol: float,
    atol: float,
    euler_steps: int,
    options: dict | None,
) -> Float[Tensor, "n 3"]:
    if span == 0.0 or points.shape[0] == 0:
        return points
    if solver == "euler":
        if euler_steps < 1:
            raise ValueError(f"euler_steps must be at least 1, got {euler_steps}")
        step = span / euler_steps
        x = points
        for i in range(euler_steps):
            x = x + sign * step * velocity(x, start_frame + sign * (i * step))
        return x
    if solver not in ("ode", "ode-adjoint"):
        raise ValueError(f"unknown trajectory solver {solver!r} (expected 'ode', 'ode-adjoint' or 'euler')")
    from torchdiffeq import odeint, odeint_adjoint

    func = _SignedFrameODE(velocity, start_frame, sign)
    # One shared 1-D grid for the whole batch (mononerf.md §6: adaptive solvers take one step size for all points).
    s_grid = torch.tensor([0.0, span], dtype=points.dtype, device=points.device)
    integrate = odeint_adjoint if solver == "ode-adjoint" else odeint
    path = integrate(func, points, s_grid, rtol=rtol, atol=atol, method=method, options=options)
    assert isinstance(path, Tensor)
    return path[-1]


def integrate_trajectory(
    velocity: nn.Module,
    points: Float[Tensor, "n 3"],
    start_frame: Float[Tensor, "n 1"],
    frames: float,
    solver: TrajectorySolver = "ode",
    method: str = "dopri5",
    rtol: float = 1e-2,
    atol: float = 1e-3,
    euler_steps: int = 2,
    options: dict | None = None,
) -> Float[Tensor, "n 3"]:
    """End points of ``dx/ds = v(x, start_frame + s)`` integrated from ``s = 0`` to ``s = frames``.

    Args:
        velocity: module mapping ``(points [n, 3], frame [n, 1])`` to ``dx/d(frame)`` [n, 3].
        points: start positions (NDC) at ``start_frame``.
        start_frame: each point's absolute continuous frame index.
        frames: signed number of frames to move (``+1`` forward, ``-1`` backward; fractions allowed).
        solver: ``"ode"`` (``odeint``), ``"ode-adjoint"`` (``odeint_adjoint``; memory constant in the number of solver
            steps, gradients for ``points`` and the velocity's parameters, not for ``start_frame``) or ``"euler"``
            (the released fixed-step loop).
        method, rtol, atol, options: passed to torchdiffeq (defaults: dopri5, rtol 1e-2, atol 1e-3, as
            ``ResnetFC.from_conf``, mononerf.md §1).
        euler_steps: number of Euler steps over ``|frames|`` (released: 2).
    """
    sign = torch.full_like(start_frame, 1.0 if frames >= 0 else -1.0)
    return _integrate_signed(
        velocity, points, start_frame, sign, abs(frames), solver, method, rtol, atol, euler_steps, options
    )


def integrate_both(
    velocity: nn.Module,
    points: Float[Tensor, "n 3"],
    start_frame: Float[Tensor, "n 1"],
    frames: float = 1.0,
    solver: TrajectorySolver = "ode",
    method: str = "dopri5",
    rtol: float = 1e-2,
    atol: float = 1e-3,
    euler_steps: int = 2,
    options: dict | None = None,
) -> tuple[Float[Tensor, "n 3"], Float[Tensor, "n 3"]]:
    """``(backward_end, forward_end)``: the points moved ``-frames`` and ``+frames`` (MonoNeRF's ``sf = [x_b, x_f]``).

    Both directions are solved in one call (points stacked, per-point direction sign), so an adaptive solver runs
    once per step instead of twice. Arguments as :func:`integrate_trajectory`; ``frames`` must be non-negative."""
    if frames < 0:
        raise ValueError(f"integrate_both takes a non-negative number of frames, got {frames}")
    count = points.shape[0]
    stacked_points = torch.cat([points, points], dim=0)
    stacked_start = torch.cat([start_frame, start_frame], dim=0)
    sign = torch.cat([-torch.ones_like(start_frame), torch.ones_like(start_frame)], dim=0)
    ends = _integrate_signed(
        velocity, stacked_points, stacked_start, sign, frames, solver, method, rtol, atol, euler_steps, options
    )
    return ends[:count], ends[count:]


def one_frame_trajectories(
    config: TrajectoryConfig,
    velocity: SceneVelocity,
    pooled: Float[Tensor, " p"],
    points: Float[Tensor, "n 3"],
    frames: Float[Tensor, "n 1"],
    num_frames: int,
) -> Tuple[Float[Tensor, "n 3"], Float[Tensor, "n 3"]]:
    """Each point's positions one frame later and one frame earlier along ``velocity`` bound to one video (its
    ``pooled`` features, ``num_frames`` frames; ``frames``: each point's continuous frame)."""
    time_frames = RELEASED_FRAME_COUNT if config.released_twelve_frames else num_frames

    def integrate(bound: nn.Module, frames_to_go: float) -> Tensor:
        return integrate_trajectory(
            bound,
            points,
            frames,
            frames_to_go,
            solver=config.trajectory_solver,
            method=config.ode_method,
            rtol=config.ode_rtol,
            atol=config.ode_atol,
            euler_steps=config.euler_steps,
            options=None if config.ode_first_step is None else {"first_step": config.ode_first_step},
        )

    scale = config.velocity_scale if config.velocity_scale is not None else 1.0 / num_frames
    forward = integrate(velocity.bind(pooled, time_frames, scale), 1.0)
    zero_code = config.released_backward_code_bug
    backward = integrate(velocity.bind(pooled, time_frames, scale, zero_code=zero_code), -1.0)
    return forward, backward
