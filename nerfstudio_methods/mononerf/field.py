"""MonoNeRF's two pixel-aligned MLPs: the static NeRF and the dynamic NeRF whose trunk is also the velocity field.

Both are pixelNeRF-style residual MLPs (mononerf.md §1): a positional encoding enters ``lin_in``, then residual
fully-connected blocks, each of the first ``combine_layer`` preceded by adding a linear map of the point's
pixel-aligned feature (``lin_z``). Points are in NDC; the time ``t`` the networks see is MonoNeRF's ``f / N * 2 - 1``
for the (fractional) frame ``f`` of an ``N``-frame video.

- :class:`StaticField` (``ResnetFC_static``): PE(xyz) -> 5 blocks, ResNet-18 image features added in blocks 0-2;
  density from the trunk, colour from the trunk and PE(view direction).
- :class:`DynamicField` (``ResnetFC``): PE(x, t) -> trunk ``G(x, t, c)`` (``lin_in``, then per global block
  ``lin_global_z([h, c])`` and a residual block), where ``c`` is the video's global code (``ode_fc`` of the pooled
  res5 features). ``tanh(sf_linear(G))`` is the velocity. On top of ``G``: 3 blocks with video features added
  (block 0 fuses the current frame's feature with the mean of its neighbours' at the flow-advected points), then
  colour + density (``lin_out``) and the blending weight (``weight_linear``, sigmoid).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from nerfstudio_methods.checkpoints import load_old_state_names


def positional_encoding(values: Float[Tensor, "*batch d"], num_frequencies: int) -> Float[Tensor, "*batch e"]:
    """NeRF's encoding as in nerf-pytorch (no factor pi): ``[x, sin(2^k x), cos(2^k x)]`` for k < ``num_frequencies``;
    ``d * (1 + 2 * num_frequencies)`` outputs."""
    frequencies = 2.0 ** torch.arange(num_frequencies, device=values.device, dtype=values.dtype)
    scaled = values[..., None, :] * frequencies[:, None]  # [..., F, d]
    encoded = torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=-1).flatten(-2)
    return torch.cat([values, encoded], dim=-1)


def encoding_size(dimensions: int, num_frequencies: int) -> int:
    return dimensions * (1 + 2 * num_frequencies)


def network_time(frame: Float[Tensor, "*batch 1"], num_frames: Float[Tensor, "*batch 1"]) -> Float[Tensor, "*batch 1"]:
    """MonoNeRF's time ``t = f / N * 2 - 1`` of frame ``f`` in an ``N``-frame video (mononerf.md §1 "Conventions")."""
    return frame / num_frames * 2.0 - 1.0


class ResnetBlock(nn.Module):
    """pixelNeRF's ``ResnetBlockFC`` at constant width: ``h + fc1(relu(fc0(relu(h))))``; ``fc1`` starts at zero so
    each block starts as the identity."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc0 = nn.Linear(width, width)
        self.fc1 = nn.Linear(width, width)
        nn.init.kaiming_normal_(self.fc0.weight, a=0.0, mode="fan_in")
        nn.init.zeros_(self.fc0.bias)
        nn.init.zeros_(self.fc1.weight)
        nn.init.zeros_(self.fc1.bias)

    def forward(self, hidden: Float[Tensor, "n w"]) -> Float[Tensor, "n w"]:
        return hidden + self.fc1(torch.relu(self.fc0(torch.relu(hidden))))


def _linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.kaiming_normal_(layer.weight, a=0.0, mode="fan_in")
    nn.init.zeros_(layer.bias)
    return layer


class StaticField(nn.Module):
    """The static NeRF (``mlp_static``: 5 blocks of 256, features in blocks 0-2, view-dependent colour)."""

    def __init__(
        self,
        feature_channels: int,
        hidden: int = 256,
        num_blocks: int = 5,
        combine_layer: int = 3,
        position_frequencies: int = 10,
        direction_frequencies: int = 4,
    ) -> None:
        super().__init__()
        self.position_frequencies = position_frequencies
        self.direction_frequencies = direction_frequencies
        self.lin_in = _linear(encoding_size(3, position_frequencies), hidden)
        self.lin_z = nn.ModuleList([_linear(feature_channels, hidden) for _ in range(min(combine_layer, num_blocks))])
        self.blocks = nn.ModuleList([ResnetBlock(hidden) for _ in range(num_blocks)])
        self.density_head = _linear(hidden, 1)
        self.color_head = nn.Sequential(
            _linear(hidden + encoding_size(3, direction_frequencies), hidden // 2), nn.ReLU(), _linear(hidden // 2, 3)
        )
        load_old_state_names(self, {"colour_head.": "color_head."})  # checkpoints before the rename

    def forward(
        self, points: Float[Tensor, "n 3"], directions: Float[Tensor, "n 3"], features: Float[Tensor, "n c"]
    ) -> tuple[Float[Tensor, " n"], Float[Tensor, "n 3"]]:
        """Raw density (before relu) and colour in [0, 1] of NDC ``points`` seen along unit world ``directions``."""
        hidden = self.lin_in(positional_encoding(points, self.position_frequencies))
        for index, block in enumerate(self.blocks):
            if index < len(self.lin_z):
                hidden = hidden + self.lin_z[index](features)
            hidden = block(hidden)
        density = self.density_head(torch.relu(hidden))[:, 0]
        view = positional_encoding(directions, self.direction_frequencies)
        color = torch.sigmoid(self.color_head(torch.cat([torch.relu(hidden), view], dim=-1)))
        return density, color


class DynamicField(nn.Module):
    """The dynamic NeRF and velocity field (``mlp_dynamic``; see the module doc)."""

    def __init__(
        self,
        feature_channels: int,
        pooled_channels: int,
        hidden: int = 256,
        code_channels: int = 256,
        code_hidden: int = 4096,
        num_global_blocks: int = 2,
        num_blocks: int = 3,
        combine_layer: int = 3,
        frequencies: int = 10,
        use_temporal_features: bool = True,
    ) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.use_temporal_features = use_temporal_features
        self.code_mlp = nn.Sequential(
            _linear(pooled_channels, code_hidden), nn.ReLU(), _linear(code_hidden, code_channels)
        )
        self.lin_in = _linear(encoding_size(4, frequencies), hidden)
        self.lin_global_z = nn.ModuleList([_linear(hidden + code_channels, hidden) for _ in range(num_global_blocks)])
        self.global_blocks = nn.ModuleList([ResnetBlock(hidden) for _ in range(num_global_blocks)])
        self.velocity_head = nn.Linear(hidden, 3)
        # Start with no motion: a zero velocity is smooth for the adaptive ODE solver (a random head on a
        # 10-frequency encoding is stiff enough to make dopri5's step underflow) and means "static" until trained.
        nn.init.zeros_(self.velocity_head.weight)
        nn.init.zeros_(self.velocity_head.bias)
        self.lin_z = nn.ModuleList([_linear(feature_channels, hidden) for _ in range(min(combine_layer, num_blocks))])
        self.temporal_linear = _linear(feature_channels, hidden)
        self.temporal_fuse = _linear(2 * hidden, hidden)
        self.blocks = nn.ModuleList([ResnetBlock(hidden) for _ in range(num_blocks)])
        self.output_head = _linear(hidden, 4)
        # The blending weight reads the layer-normalised state through a zero-initialised head: b starts at 0.5,
        # where its sigmoid's gradient is largest, and one Adam step moves the logit by ~lr x width whatever the
        # trunk's scale. With a plain Kaiming head on the raw state (the released ``weight_linear``) the logits of a
        # trained trunk were -16 +- 2.7 on a new scene (b = 1e-7, no gradient), and a scratch run's b saturated at 0
        # within ~20 steps of stage 2 (README "MonoNeRF benchmark").
        self.blending_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.blending_head.weight)
        nn.init.zeros_(self.blending_head.bias)

    def codes(self, pooled: Float[Tensor, "s p"]) -> Float[Tensor, "s c"]:
        """Each video's global code ``c`` (``ode_fc`` of its pooled res5 features)."""
        return self.code_mlp(pooled)

    def trunk(
        self, points: Float[Tensor, "n 3"], time: Float[Tensor, "n 1"], code: Float[Tensor, "n c"]
    ) -> Float[Tensor, "n w"]:
        """``G(x, t, c)``: shared by the velocity and the radiance heads."""
        hidden = self.lin_in(positional_encoding(torch.cat([points, time], dim=-1), self.frequencies))
        for lin_global, block in zip(self.lin_global_z, self.global_blocks):
            hidden = block(lin_global(torch.cat([hidden, code], dim=-1)))
        return hidden

    def velocity(self, hidden: Float[Tensor, "n w"]) -> Float[Tensor, "n 3"]:
        """NDC displacement per frame, ``tanh(sf_linear(G))`` (at most 1 per axis and frame)."""
        return torch.tanh(self.velocity_head(hidden))

    def radiance(
        self,
        hidden: Float[Tensor, "n w"],
        current: Float[Tensor, "n c"],
        neighbours: list[Float[Tensor, "n c"]],
    ) -> tuple[Float[Tensor, " n"], Float[Tensor, "n 3"], Float[Tensor, " n"]]:
        """Raw density, colour in [0, 1] and blending weight in [0, 1] from the trunk state and the video features
        at the point (``current``) and at its flow-advected positions in the neighbouring frames (``neighbours``)."""
        for index, block in enumerate(self.blocks):
            if index < len(self.lin_z):
                injected = self.lin_z[index](current)
                if index == 0 and self.use_temporal_features and neighbours:
                    temporal = torch.stack([self.temporal_linear(feature) for feature in neighbours]).mean(0)
                    injected = self.temporal_fuse(torch.cat([injected, temporal], dim=-1))
                hidden = hidden + injected
            hidden = block(hidden)
        raw = self.output_head(torch.relu(hidden))
        state = torch.relu(hidden)
        blend = torch.sigmoid(self.blending_head(F.layer_norm(state, state.shape[-1:])))[:, 0]
        return raw[:, 3], torch.sigmoid(raw[:, :3]), blend


class SceneVelocity(nn.Module):
    """The velocity field of one video as an ODE right-hand side in frame units: ``dx/df = v(x, t(f), c)``.

    An ``nn.Module`` holding the dynamic field, so that ``odeint_adjoint`` finds the parameters (the global code is
    recomputed inside from the pooled features, a buffer, rather than captured as a tensor)."""

    def __init__(self, field: DynamicField, use_code: bool = True) -> None:
        super().__init__()
        self.field = field
        self.use_code = use_code
        self.velocity_scale = 1.0
        self.pooled: Tensor | None = None
        self.num_frames = 1
        self.zero_code = False

    def bind(
        self, pooled: Float[Tensor, " p"], num_frames: int, velocity_scale: float = 1.0, zero_code: bool = False
    ) -> SceneVelocity:
        """This velocity for one video: its pooled features, the frame count its time uses, the largest displacement
        per frame (``velocity_scale``) and ``zero_code`` (the released backward-branch bug). Returns a new module sharing the field, so that each trajectory keeps its own video:
        ``odeint_adjoint`` evaluates the velocity again during the backward pass, after other videos were bound."""
        bound = copy.copy(self)
        bound.pooled = pooled
        bound.num_frames = num_frames
        bound.zero_code = zero_code
        bound.velocity_scale = velocity_scale
        return bound

    def code(self, count: int) -> Float[Tensor, "n c"]:
        assert self.pooled is not None, "SceneVelocity.bind() first"
        code = self.field.codes(self.pooled[None])
        if self.zero_code or not self.use_code:
            code = torch.zeros_like(code)
        return code.expand(count, -1)

    def forward(self, points: Float[Tensor, "n 3"], frame: Float[Tensor, "n 1"]) -> Float[Tensor, "n 3"]:
        time = network_time(frame, torch.full_like(frame, float(self.num_frames)))
        hidden = self.field.trunk(points, time, self.code(points.shape[0]))
        return self.velocity_scale * self.field.velocity(hidden)


def clamp_frames(frames: Int[Tensor, "*batch"], num_frames: int) -> Int[Tensor, "*batch"]:
    return frames.clamp(0, num_frames - 1)


@dataclass
class DynamicQuery:
    """The dynamic branch at a set of points: raw density, colour, blending and the one-frame trajectories."""

    density: Float[Tensor, " n"]
    rgb: Float[Tensor, "n 3"]
    blend: Float[Tensor, " n"]
    forward: Float[Tensor, "n 3"]
    backward: Float[Tensor, "n 3"]
