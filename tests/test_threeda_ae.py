"""3Da-AE's pieces (``nerfstudio_methods.threeda_ae``, ``nerfstudio_methods.multiscene``) against independently worked
out values: tri-plane lookup against a per-point bilinear loop, plane composition against explicit loops, the latent
normaliser, TV and compositing against hand arithmetic, the renderer against the analytic transmittance of a
constant field, the phase schedule against hand-computed step boundaries, autoencoder loading (diffusers folder,
diffusers and LDM key files, broken inputs), the scene-range helpers and per-scene memory accounting.

Everything is tiny and on the CPU (3da-ae.md §4: "CI: shape/gradient/loss tests only").
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.engine.optimizers import Optimizers
from safetensors.torch import save_file
from torch import Tensor, nn

from dataparsers._common import DatasetFormatError
from dataparsers.srn import SrnDataParserConfig
from nerfstudio_methods import compat
from nerfstudio_methods.multiscene import (
    average_gradients_before_step,
    combine_rank_bits,
    process_rank_and_count,
    scene_range_of_rank,
    share_scene_state,
)
from nerfstudio_methods.scenegen.formats.srn import write_srn
from nerfstudio_methods.threeda_ae.autoencoder import (
    AutoencoderConfig,
    TanhNormalizer,
    autoencoder_downscale,
    build_autoencoder,
)
from nerfstudio_methods.threeda_ae.config import (
    EXPLOIT_DECAY,
    _optimizers,
    rgb_triplanes_config,
    stage_one_phases,
    stage_two_phases,
)
from nerfstudio_methods.threeda_ae.model import PhaseConfig, TriplaneModel, TriplaneModelConfig
from nerfstudio_methods.threeda_ae.renderer import TriplaneRenderer, composite_channels
from nerfstudio_methods.threeda_ae.triplanes import (
    SceneTriplanes,
    TriplaneDecoder,
    sample_triplanes,
    scene_id_bytes,
    total_variation,
)

compat.install()  # as every ns-* command does: LPIPS without its (undownloadable) weights

TINY_AE = dict(block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4)
"""A 2x autoencoder of about 20 k parameters."""
XY_XZ_YZ = ((0, 1), (0, 2), (1, 2))
XY_XZ_ZX = ((0, 1), (0, 2), (2, 0))


def single_line_error(error: DatasetFormatError, path: Path) -> None:
    """One error, one line, naming the path, not chained to the error that caused it."""
    message = str(error)
    assert str(path) in message
    assert "\n" not in message
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


# --- 1. tri-plane lookup ---------------------------------------------------------------------------------------------


def bilinear_reference(plane: Tensor, column: float, row: float) -> Tensor:
    """grid_sample(bilinear, zeros, align_corners=False) of one point, written out: pixel (i, j) has its centre at
    continuous coordinate (i, j); a normalised coordinate c maps to ((c + 1) * size - 1) / 2; neighbours outside the
    plane contribute zero."""
    channels, height, width = plane.shape
    x = ((column + 1) * width - 1) / 2
    y = ((row + 1) * height - 1) / 2
    x0, y0 = math.floor(x), math.floor(y)
    out = torch.zeros(channels, dtype=plane.dtype)
    for j, weight_x in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
        for i, weight_y in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
            if 0 <= i < height and 0 <= j < width:
                out += weight_x * weight_y * plane[:, i, j]
    return out


def triplane_reference(planes: Tensor, points: Tensor, axes: tuple[tuple[int, int], ...]) -> Tensor:
    """Sum over the three planes of the lookup of each point's (column, row) = (axes[p][0], axes[p][1]) pair."""
    batch, num_points, _ = points.shape
    out = torch.zeros(batch, num_points, planes.shape[2], dtype=planes.dtype)
    for b in range(batch):
        for n in range(num_points):
            point = points[b, n].tolist()
            for p, (column_axis, row_axis) in enumerate(axes):
                out[b, n] += bilinear_reference(planes[b, p], point[column_axis], point[row_axis])
    return out


@pytest.fixture(scope="module")
def lookup_case() -> tuple[Tensor, Tensor]:
    """Two tri-planes of three different random planes each, 2 channels, 5x5; points inside and outside [-1, 1]."""
    generator = torch.Generator().manual_seed(11)
    planes = torch.randn(2, 3, 2, 5, 5, generator=generator, dtype=torch.float64)
    random_points = torch.rand(2, 40, 3, generator=generator, dtype=torch.float64) * 2.6 - 1.3  # some outside
    special = torch.tensor(
        [
            [0.0, 0.0, 0.0],
            [-0.6, 0.2, 0.6],  # pixel centres of a 5x5 plane lie at -0.8, -0.4, 0, 0.4, 0.8
            [1.0, -1.0, 0.95],  # borders: half-weighted by the zero padding
            [-1.3, 0.3, 0.5],  # x beyond -1 - 1/5 (half a pixel out): only the YZ plane contributes
            [2.0, -2.0, 3.0],  # outside everywhere
        ],
        dtype=torch.float64,
    )
    points = torch.cat([random_points, special[None].expand(2, -1, -1)], dim=1)
    assert (points.abs() > 1).any(dim=-1).sum() >= 10
    return planes, points


def test_planes_have_distinct_contents(lookup_case: tuple[Tensor, Tensor]) -> None:
    planes, _ = lookup_case
    for b in range(2):
        for p, q in ((0, 1), (0, 2), (1, 2)):
            assert not torch.allclose(planes[b, p], planes[b, q])


def test_sample_triplanes_matches_bilinear_reference_xy_xz_yz(lookup_case: tuple[Tensor, Tensor]) -> None:
    planes, points = lookup_case
    features = sample_triplanes(planes, points)
    assert features.shape == (2, points.shape[1], 2)
    torch.testing.assert_close(features, triplane_reference(planes, points, XY_XZ_YZ), rtol=1e-12, atol=1e-12)
    # Hand-checked special points: the origin is the centre of pixel (2, 2) of a 5x5 plane, so each plane gives
    # its centre value; a point outside on every axis gives zero.
    origin = points.shape[1] - 5
    torch.testing.assert_close(features[:, origin], planes[:, :, :, 2, 2].sum(dim=1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(features[:, -1], torch.zeros(2, 2, dtype=torch.float64))
    # x = -1.3 maps to pixel coordinate -1.25: both x neighbours are padding, so the XY and XZ lookups vanish and
    # the YZ one is y = 0.3 (column), z = 0.5 (row).
    yz_only = torch.stack([bilinear_reference(planes[b, 2], 0.3, 0.5) for b in range(2)])
    torch.testing.assert_close(features[:, -2], yz_only, rtol=1e-12, atol=1e-12)


def test_sample_triplanes_is_sensitive_to_the_axis_order(lookup_case: tuple[Tensor, Tensor]) -> None:
    """The reference with each plane transposed (row = first axis) disagrees: the check above pins the convention."""
    planes, points = lookup_case
    transposed = ((1, 0), (2, 0), (2, 1))
    assert not torch.allclose(sample_triplanes(planes, points), triplane_reference(planes, points, transposed))


def test_sample_triplanes_eg3d_axes_are_xy_xz_zx(lookup_case: tuple[Tensor, Tensor]) -> None:
    planes, points = lookup_case
    eg3d = sample_triplanes(planes, points, eg3d_plane_axes=True)
    torch.testing.assert_close(eg3d, triplane_reference(planes, points, XY_XZ_ZX), rtol=1e-12, atol=1e-12)
    inside = (points.abs() < 1).all(dim=-1)
    assert (eg3d - sample_triplanes(planes, points))[inside].abs().max() > 1e-3


def test_sample_triplanes_float32_points_on_float64_planes_and_gradient() -> None:
    """The lookup is linear in the planes: d(sum of features)/d(plane cell) is the sum of the bilinear weights."""
    planes = torch.zeros(1, 3, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    points = torch.tensor([[[0.0, 0.0, 0.0], [0.25, 0.75, -0.25]]])  # 4x4: centres at -0.75, -0.25, 0.25, 0.75
    sample_triplanes(planes, points).sum().backward()
    assert planes.grad is not None
    grad = planes.grad[0, :, 0]
    # Origin: the middle of cells 1 and 2 on both axes, weight 1/4 each, on every plane.
    # (0.25, 0.75, -0.25): XY -> column x = 0.25 (cell 2), row y = 0.75 (cell 3): weight 1 at [3, 2];
    # XZ -> column 0.25 (cell 2), row -0.25 (cell 1): [1, 2]; YZ -> column 0.75 (cell 3), row -0.25 (cell 1): [1, 3].
    expected = torch.zeros(3, 4, 4, dtype=torch.float64)
    expected[:, 1:3, 1:3] = 0.25
    expected[0, 3, 2] += 1
    expected[1, 1, 2] += 1
    expected[2, 1, 3] += 1
    torch.testing.assert_close(grad, expected)


# --- 2. latent normaliser --------------------------------------------------------------------------------------------


def test_tanh_normaliser_forward_and_round_trip() -> None:
    normaliser = TanhNormalizer(0.02)
    z = torch.linspace(-150.0, 150.0, 301, dtype=torch.float64)  # |s z| <= 3, tanh <= 0.995: far from the clip
    expected = torch.tensor([math.tanh(0.02 * v) for v in z.tolist()], dtype=torch.float64)
    torch.testing.assert_close(normaliser(z), expected, rtol=1e-7, atol=0)
    torch.testing.assert_close(normaliser.inverse(normaliser(z)), z, rtol=1e-6, atol=1e-9)
    z32 = z.float()
    torch.testing.assert_close(normaliser.inverse(normaliser(z32)), z32, rtol=1e-4, atol=1e-3)
    assert "scale" in normaliser.state_dict()  # checkpoints carry s


def test_tanh_normaliser_clips_saturated_values() -> None:
    normaliser = TanhNormalizer(0.02)
    # atanh(1 - 1e-4) = 0.5 * ln((2 - 1e-4) / 1e-4) = 0.5 * ln(19999) = 4.9517...; / 0.02 = 247.59
    limit = 0.5 * math.log(19999.0) / 0.02
    y = torch.tensor([1.0, -1.0, 0.99995, -0.999999, 1.5], dtype=torch.float64)
    expected = torch.tensor([limit, -limit, limit, -limit, limit], dtype=torch.float64)
    torch.testing.assert_close(normaliser.inverse(y), expected, rtol=1e-6, atol=0)
    # A saturated latent (tanh(0.02 * 1000) rounds to 1) comes back clipped, not infinite.
    saturated = normaliser.inverse(normaliser(torch.tensor([1000.0, -1000.0])))
    torch.testing.assert_close(saturated, torch.tensor([limit, -limit], dtype=torch.float32), rtol=1e-4, atol=0)
    # Just inside the clip: unchanged (atanh(0.9998) / 0.02).
    inside = normaliser.inverse(torch.tensor([0.9998], dtype=torch.float64))
    torch.testing.assert_close(inside, torch.tensor([0.5 * math.log(1.9998 / 0.0002) / 0.02], dtype=torch.float64))


def population_std(values: Tensor) -> float:
    values = values.double().reshape(-1)
    mean = values.sum() / values.numel()
    return float(((values - mean) ** 2).sum().div(values.numel()).sqrt())


def sample_std(values: Tensor) -> float:
    """The n - 1 standard deviation: with the calibration's few latents (3 images x 4 x 4 x 4 = 192 values) it
    differs from the population one by 0.26%, so the convention matters there."""
    values = values.double().reshape(-1)
    mean = values.sum() / values.numel()
    return float(((values - mean) ** 2).sum().div(values.numel() - 1).sqrt())


def test_scale_for_two_point_latents_hand_computed() -> None:
    """Latents +-a in equal numbers: tanh(s z) = +-tanh(s a) has std tanh(s a), so s = atanh(target) / a. The
    tolerance (1e-3) covers both the population and the sample (n - 1) standard deviation (ratio 1 + 2.5e-4)."""
    a, target = 40.0, 0.3
    latents = torch.tensor([a, -a] * 1000)
    s = TanhNormalizer.scale_for(latents, target)
    assert s == pytest.approx(math.atanh(target) / a, rel=1e-3)


def test_scale_for_gives_the_requested_std_on_random_latents() -> None:
    latents = 5.0 * torch.randn(4, 4, 16, 16, generator=torch.Generator().manual_seed(0)) + 1.0
    for target in (0.1, 0.3, 0.5):
        s = TanhNormalizer.scale_for(latents, target)
        assert population_std(torch.tanh(s * latents.double())) == pytest.approx(target, rel=1e-3)


# --- 3. global + local composition -----------------------------------------------------------------------------------


def composed_reference(scenes: SceneTriplanes, scene: int) -> Tensor:
    """concat_C(local[s], sum_m coefs[s, m] * bases[m] + bias[s]), written as loops."""
    local = scenes.local_planes[scene].detach()
    if scenes.global_bases is None:
        return local
    bases = scenes.global_bases.detach()
    mixture = torch.zeros_like(bases[0])
    for m in range(bases.shape[0]):
        mixture += float(scenes.coefficients[scene][m].detach()) * bases[m]
    mixture += float(scenes.biases[scene][0].detach())
    return torch.cat([local, mixture], dim=1)


def test_planes_of_is_local_concat_global_mixture() -> None:
    scenes = SceneTriplanes(num_scenes=4, resolution=3, local_channels=2, global_channels=3, num_global_bases=5)
    with torch.no_grad():
        for s, bias in enumerate(scenes.biases):
            bias.fill_(0.5 * s - 0.7)  # biases start at zero: make them matter
    indices = torch.tensor([2, 0, 2, 3])
    planes = scenes.planes_of(indices)
    assert planes.shape == (4, 3, 5, 3, 3)
    assert scenes.channels == 5
    for row, s in enumerate(indices.tolist()):
        torch.testing.assert_close(planes[row], composed_reference(scenes, s), rtol=1e-5, atol=1e-5)


def test_planes_of_without_bases_is_the_scene_planes() -> None:
    scenes = SceneTriplanes(num_scenes=3, resolution=4, local_channels=6)
    assert scenes.global_bases is None and len(scenes.coefficients) == 0 and scenes.channels == 6
    planes = scenes.planes_of(torch.tensor([1, 2]))
    assert torch.equal(planes[0], scenes.local_planes[1].detach())
    assert torch.equal(planes[1], scenes.local_planes[2].detach())


def test_gradients_reach_only_the_batch_scenes() -> None:
    """d/dc_m sum(planes) = sum(bases[m]); d/dbias = number of global cells; other scenes get no gradient."""
    scenes = SceneTriplanes(num_scenes=3, resolution=3, local_channels=1, global_channels=2, num_global_bases=2)
    scenes.planes_of(torch.tensor([1])).sum().backward()
    assert scenes.local_planes[0].grad is None and scenes.coefficients[2].grad is None
    assert scenes.biases[0].grad is None
    assert torch.equal(scenes.local_planes[1].grad, torch.ones(3, 1, 3, 3))
    assert scenes.global_bases is not None
    bases = scenes.global_bases.detach()
    torch.testing.assert_close(scenes.coefficients[1].grad, torch.stack([bases[0].sum(), bases[1].sum()]))
    torch.testing.assert_close(scenes.biases[1].grad, torch.tensor([3.0 * 2 * 3 * 3]))


def test_per_scene_parameter_counts() -> None:
    # The paper's setting (3da-ae.md §1.4): 3 x 10 x 64 x 64 local floats + 50 coefficients + 1 bias.
    paper = SceneTriplanes(num_scenes=1, resolution=64, local_channels=10, global_channels=22, num_global_bases=50)
    assert paper.scene_parameter_count() == 3 * 10 * 64 * 64 + 50 + 1 == 122_931
    assert paper.shared_parameter_count() == 50 * 3 * 22 * 64 * 64 == 13_516_800
    plain = SceneTriplanes(num_scenes=1, resolution=64, local_channels=32)
    assert plain.scene_parameter_count() == 3 * 32 * 64 * 64 == 393_216
    assert plain.shared_parameter_count() == 0


def test_scenes_are_initialised_independently_of_the_scene_count() -> None:
    options = dict(resolution=4, local_channels=2, global_channels=2, num_global_bases=3, init_scale=0.5, seed=7)
    five = SceneTriplanes(num_scenes=5, **options)
    ten = SceneTriplanes(num_scenes=10, **options)
    for s in range(5):
        assert torch.equal(five.local_planes[s], ten.local_planes[s])
        assert torch.equal(five.coefficients[s], ten.coefficients[s])
    assert torch.equal(five.planes_of(torch.tensor([3])), ten.planes_of(torch.tensor([3])))
    assert five.global_bases is not None and ten.global_bases is not None
    assert torch.equal(five.global_bases, ten.global_bases)
    assert not torch.equal(ten.local_planes[3], ten.local_planes[4])
    other_seed = SceneTriplanes(num_scenes=5, **{**options, "seed": 8})
    assert not torch.equal(other_seed.local_planes[3], five.local_planes[3])


def test_initial_planes_are_randn_times_init_scale() -> None:
    scenes = SceneTriplanes(num_scenes=2, resolution=16, local_channels=8, init_scale=0.1)
    values = torch.cat([p.detach().reshape(-1) for p in scenes.local_planes])  # 12,288 values
    assert population_std(values) == pytest.approx(0.1, rel=0.03)
    assert float(values.mean()) == pytest.approx(0.0, abs=0.005)


def test_scene_triplanes_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="at least one scene"):
        SceneTriplanes(num_scenes=0, resolution=4, local_channels=2)
    with pytest.raises(ValueError, match="global"):
        SceneTriplanes(num_scenes=1, resolution=4, local_channels=2, global_channels=4, num_global_bases=0)


# --- 4. total variation ----------------------------------------------------------------------------------------------


def test_total_variation_hand_computed() -> None:
    # [[1, 2], [4, 8]]: rows (4-1)^2 + (8-2)^2 = 45, columns (2-1)^2 + (8-4)^2 = 17; 62 / (2 + 2) = 15.5
    square = torch.tensor([[1.0, 2.0], [4.0, 8.0]])
    assert float(total_variation(square)) == pytest.approx(15.5)
    # [[0, 1, 3], [2, 2, 5]]: rows 4 + 1 + 4 = 9, columns 1 + 4 + 0 + 9 = 14; 23 / (2 + 3) = 4.6
    wide = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 5.0]])
    assert float(total_variation(wide)) == pytest.approx(4.6)
    # Leading dimensions are summed over (a [B, 3, C, R, R] stack): (45 + 17 + 9 * (45 + 17)) / 4
    stacked = torch.stack([square, 3 * square])[None, :, None]  # [1, 2, 1, 2, 2]
    assert float(total_variation(stacked)) == pytest.approx((62 + 9 * 62) / 4)
    assert float(total_variation(torch.full((3, 4, 4), 2.5))) == 0.0


# --- 5. compositing and rendering ------------------------------------------------------------------------------------


def test_composite_channels_hand_computed() -> None:
    weights = torch.tensor([[0.2, 0.3, 0.1], [0.5, 0.5, 0.0]])[..., None]
    values = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], [[1.0, 1.0], [3.0, -1.0], [9.0, 9.0]]])
    background = torch.tensor([0.5, -1.0])
    composited, accumulation = composite_channels(weights, values, background)
    # ray 0: acc 0.6; sum w v = (0.2 + 0.2, 0.3 + 0.2) = (0.4, 0.5); + 0.4 * (0.5, -1) -> (0.6, 0.1)
    # ray 1: acc 1.0; sum w v = (0.5 + 1.5, 0.5 - 0.5) = (2.0, 0.0); no background
    torch.testing.assert_close(composited, torch.tensor([[0.6, 0.1], [2.0, 0.0]]))
    torch.testing.assert_close(accumulation, torch.tensor([[0.6], [1.0]]))


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


PLANE_VALUES = ((0.1, 0.2, 0.3), (-0.5, 0.25, 1.0))
"""Scene b's three planes are the constants PLANE_VALUES[b] (one channel): every interior point's feature is their
sum, 0.6 for scene 0 and 0.75 for scene 1."""
DENSITY_WEIGHT, DENSITY_BIAS = 2.0, 0.5
VALUE_WEIGHTS, VALUE_BIASES = (1.0, -2.0), (-0.3, 0.7)
BACKGROUND = (0.2, 0.9)
NEAR, FAR = 0.0, 1.6


def constant_field_decoder() -> TriplaneDecoder:
    """hidden = softplus(feature); raw = (2 h + 0.5, h - 0.3, -2 h + 0.7); density softplus(raw0 - 1), values
    sigmoid(raw) * 1.002 - 0.001 (3da-ae.md §1.3)."""
    decoder = TriplaneDecoder(in_channels=1, out_channels=2, hidden=1)
    first, second = decoder.net[0], decoder.net[2]
    assert isinstance(first, nn.Linear) and isinstance(second, nn.Linear)
    with torch.no_grad():
        first.weight.fill_(1.0)
        first.bias.zero_()
        second.weight.copy_(torch.tensor([[DENSITY_WEIGHT], [VALUE_WEIGHTS[0]], [VALUE_WEIGHTS[1]]]))
        second.bias.copy_(torch.tensor([DENSITY_BIAS, VALUE_BIASES[0], VALUE_BIASES[1]]))
    return decoder


def field_of_scene(scene: int) -> tuple[float, list[float]]:
    """(density, channel values) of scene ``scene``'s constant field, by hand."""
    hidden = softplus(sum(PLANE_VALUES[scene]))
    density = softplus(DENSITY_WEIGHT * hidden + DENSITY_BIAS - 1.0)
    values = [sigmoid(w * hidden + b) * 1.002 - 0.001 for w, b in zip(VALUE_WEIGHTS, VALUE_BIASES)]
    return density, values


def constant_planes() -> Tensor:
    planes = torch.zeros(2, 3, 1, 8, 8)
    for b, per_plane in enumerate(PLANE_VALUES):
        for p, value in enumerate(per_plane):
            planes[b, p] = value
    return planes


def rays_through_the_cube() -> RayBundle:
    """[2 scenes, 3 rays]: rays along +z from z = -0.8, so t in [0, 1.6] stays where every coordinate is within
    0.875 = 1 - 1/8 (the outermost pixel centre of an 8x8 plane): the constant planes are read without padding."""
    xy = torch.tensor([[0.1, -0.2], [-0.3, 0.4], [0.5, 0.5]])
    origins = torch.cat([xy, torch.full((3, 1), -0.8)], dim=-1)[None].expand(2, 3, 3).contiguous()
    directions = torch.tensor([0.0, 0.0, 1.0]).expand(2, 3, 3).contiguous()
    return RayBundle(
        origins=origins,
        directions=directions,
        pixel_area=torch.full((2, 3, 1), 1e-4),
        camera_indices=torch.zeros(2, 3, 1, dtype=torch.long),
    )


def expected_render(scene: int, length: float = FAR - NEAR) -> tuple[list[float], float]:
    density, values = field_of_scene(scene)
    opacity = 1 - math.exp(-density * length)
    return [v * opacity + (1 - opacity) * bg for v, bg in zip(values, BACKGROUND)], opacity


@pytest.mark.parametrize("importance", [0, 6])
def test_renderer_constant_field_matches_analytic_transmittance(importance: int) -> None:
    """Without stratification (eval mode) the samples tile [near, far], so the opacity is exactly
    1 - exp(-sigma (far - near)) whatever the sample positions (importance samples included)."""
    renderer = TriplaneRenderer(constant_field_decoder(), NEAR, FAR, num_samples=8, num_importance_samples=importance)
    renderer.eval()
    rendered = renderer(constant_planes(), rays_through_the_cube(), torch.tensor(BACKGROUND))
    assert rendered.values.shape == (2, 3, 2) and rendered.accumulation.shape == (2, 3, 1)
    for scene in range(2):
        values, opacity = expected_render(scene)
        torch.testing.assert_close(rendered.accumulation[scene, :, 0], torch.full((3,), opacity), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rendered.values[scene], torch.tensor([values] * 3), rtol=1e-5, atol=1e-6)
    # The two scenes' fields differ (density 1.763 vs 1.930, opacity 0.9405 vs 0.9544): rays [b] went through
    # tri-plane b.
    assert abs(expected_render(0)[1] - expected_render(1)[1]) > 1e-3


def test_renderer_depth_of_a_constant_field() -> None:
    """8 uniform bins of width d = 0.2: w_i = exp(-sigma i d) (1 - exp(-sigma d)) at midpoints (i + 1/2) d."""
    renderer = TriplaneRenderer(constant_field_decoder(), NEAR, FAR, num_samples=8, num_importance_samples=0)
    renderer.eval()
    rendered = renderer(constant_planes(), rays_through_the_cube(), torch.tensor(BACKGROUND))
    for scene in range(2):
        density, _ = field_of_scene(scene)
        delta = (FAR - NEAR) / 8
        weights = [math.exp(-density * i * delta) * (1 - math.exp(-density * delta)) for i in range(8)]
        depth = sum(w * (NEAR + (i + 0.5) * delta) for i, w in enumerate(weights)) / sum(weights)
        torch.testing.assert_close(rendered.depth[scene, :, 0], torch.full((3,), depth), rtol=1e-5, atol=1e-6)
        # The continuous expectation n + 1/sigma - L e^(-sigma L) / (1 - e^(-sigma L)) is close (midpoint rule).
        length = FAR - NEAR
        continuous = NEAR + 1 / density - length * math.exp(-density * length) / (1 - math.exp(-density * length))
        assert depth == pytest.approx(continuous, abs=0.02)


@pytest.mark.parametrize("importance", [0, 6])
def test_renderer_constant_field_with_stratified_samples(importance: int) -> None:
    """Stratified (training) samples cover [near + u d / 2, far - u' d / 2] (u, u' in [0, 1], d the bin width), so the
    opacity lies between 1 - exp(-sigma (L - d)) and 1 - exp(-sigma L); the composite stays v a + (1 - a) bg."""
    torch.manual_seed(5)
    renderer = TriplaneRenderer(constant_field_decoder(), NEAR, FAR, num_samples=8, num_importance_samples=importance)
    renderer.train()
    rendered = renderer(constant_planes(), rays_through_the_cube(), torch.tensor(BACKGROUND))
    length, delta = FAR - NEAR, (FAR - NEAR) / 8
    for scene in range(2):
        density, values = field_of_scene(scene)
        opacity = rendered.accumulation[scene, :, 0]
        assert (opacity >= 1 - math.exp(-density * (length - delta)) - 1e-6).all()
        assert (opacity <= 1 - math.exp(-density * length) + 1e-6).all()
        expected = torch.stack([v * opacity + (1 - opacity) * bg for v, bg in zip(values, BACKGROUND)], dim=-1)
        torch.testing.assert_close(rendered.values[scene], expected, rtol=1e-5, atol=1e-6)


def test_renderer_rejects_rays_that_do_not_split_over_the_planes() -> None:
    renderer = TriplaneRenderer(constant_field_decoder(), NEAR, FAR, num_samples=4, num_importance_samples=0)
    bundle = rays_through_the_cube()
    with pytest.raises(ValueError, match="cannot be split evenly"):
        renderer(constant_planes(), bundle.flatten()[:5], torch.tensor(BACKGROUND))


# --- 6. phase schedule -----------------------------------------------------------------------------------------------


SCENE_BOX = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
SCENE_NAMES = ["0123456789abcdef0123456789abcdef", "car_b", "car_c"]


def schedule() -> dict[str, PhaseConfig]:
    """With 4 steps per epoch: autoencoder 2 epochs = 8 steps (0-7); 'empty' skipped; latent 1.5 epochs = 6 steps
    (8-13), MLP frozen from 0.5 x 6 = 3 steps in (step 11), rates halved from its 2nd epoch (step 12); joint 0.3
    epochs = ceil(1.2) = 2 steps (14-15)."""
    return {
        "autoencoder": PhaseConfig(
            epochs=2, losses={"autoencoder": 1.0}, learning_rates={"encoder": 1e-4, "decoder": 2e-4}
        ),
        "empty": PhaseConfig(epochs=0, losses={"latent": 1.0}, learning_rates={"planes": 1.0}),
        "latent": PhaseConfig(
            epochs=1.5,
            losses={"latent": 1.0, "tv": 1e-4},
            learning_rates={"planes": 1e-2, "coefficients": 2e-2, "mlp": 3e-3},
            lr_decay_per_epoch=0.5,
            mlp_frozen_after=0.5,
        ),
        "joint": PhaseConfig(epochs=0.3, losses={"decoded": 1.0}, learning_rates={"planes": 1e-3, "decoder": 1e-4}),
    }


def make_model(space: str = "latent", phases: dict[str, PhaseConfig] | None = None, **options) -> TriplaneModel:
    config = TriplaneModelConfig(
        space=space,  # type: ignore[arg-type]
        triplane_resolution=4,
        local_channels=2,
        global_channels=2,
        num_global_bases=2,
        mlp_hidden=8,
        num_samples=4,
        num_importance_samples=0,
        autoencoder=AutoencoderConfig(**options.pop("autoencoder", TINY_AE)),
        phases=phases if phases is not None else schedule(),
        **options,
    )
    model = config.setup(scene_box=SCENE_BOX, num_train_data=12, metadata={"num_scenes": 3, "scene_names": SCENE_NAMES})
    assert isinstance(model, TriplaneModel)
    return model


def phase_of(model: TriplaneModel, step: int) -> tuple[str, int, int]:
    state = model.phase_at(step)
    return state.name, state.index, state.step_in_phase


def test_phase_boundaries_hand_computed() -> None:
    model = make_model()
    model.steps_per_epoch = 4
    assert not model.pretrained_autoencoder
    assert [name for name, _ in model.active_phases()] == ["autoencoder", "latent", "joint"]
    assert model.phase_steps() == [8, 6, 2] and model.total_steps() == 16
    assert phase_of(model, 0) == ("autoencoder", 0, 0)
    assert phase_of(model, 7) == ("autoencoder", 0, 7)
    assert phase_of(model, 8) == ("latent", 1, 0)
    assert phase_of(model, 13) == ("latent", 1, 5)
    assert phase_of(model, 14) == ("joint", 2, 0)
    assert phase_of(model, 15) == ("joint", 2, 1)
    assert phase_of(model, 100) == ("joint", 2, 86)  # past the end: the last phase


def test_learning_rates_hand_computed() -> None:
    model = make_model()
    model.steps_per_epoch = 4

    def rates(step: int) -> dict[str, float]:
        return {k: v for k, v in model.learning_rates_at(model.phase_at(step)).items() if v != 0.0}

    assert rates(0) == {"encoder": 1e-4, "decoder": 2e-4}
    assert rates(8) == {"planes": 1e-2, "coefficients": 2e-2, "mlp": 3e-3}
    assert rates(10) == {"planes": 1e-2, "coefficients": 2e-2, "mlp": 3e-3}  # step 2 of 6: before 0.5 x 6
    assert rates(11) == {"planes": 1e-2, "coefficients": 2e-2}  # step 3 of 6: MLP frozen
    assert rates(12) == pytest.approx({"planes": 5e-3, "coefficients": 1e-2})  # 2nd epoch: x 0.5
    assert rates(14) == {"planes": 1e-3, "decoder": 1e-4}
    assert rates(100) == {"planes": 1e-3, "decoder": 1e-4}  # decay 1: none however far
    full = model.learning_rates_at(model.phase_at(8))
    assert set(full) == {"planes", "coefficients", "global_bases", "mlp", "encoder", "decoder"}
    assert full["global_bases"] == 0.0 and full["encoder"] == 0.0


def test_fractional_epochs_and_freeze_points_are_not_off_by_one() -> None:
    """1.1 epochs of 50 steps are 55 steps (1.1 * 50 is 55.00000000000001 in floating point); a freeze after 7% of
    100 steps starts at step 7 (0.07 * 100 is 7.000000000000001)."""
    phases = {
        "a": PhaseConfig(epochs=1.1, learning_rates={"planes": 1.0}),
        "b": PhaseConfig(epochs=2, learning_rates={"mlp": 1.0}, mlp_frozen_after=0.07),
    }
    model = make_model("rgb", phases)
    model.steps_per_epoch = 50
    assert model.phase_steps() == [55, 100]
    assert phase_of(model, 54) == ("a", 0, 54) and phase_of(model, 55) == ("b", 1, 0)
    assert model.learning_rates_at(model.phase_at(55 + 6))["mlp"] == 1.0
    assert model.learning_rates_at(model.phase_at(55 + 7))["mlp"] == 0.0


def test_autoencoder_phase_skipped_when_pretrained_or_rgb(tmp_path: Path) -> None:
    torch.manual_seed(0)
    AutoencoderKL(**AutoencoderConfig(**TINY_AE).diffusers_config()).save_pretrained(tmp_path / "vae")
    pretrained = make_model(autoencoder={**TINY_AE, "pretrained": tmp_path / "vae"})
    pretrained.steps_per_epoch = 4
    assert pretrained.pretrained_autoencoder
    assert [name for name, _ in pretrained.active_phases()] == ["latent", "joint"]
    assert pretrained.phase_steps() == [6, 2]
    assert phase_of(pretrained, 0) == ("latent", 0, 0) and phase_of(pretrained, 6) == ("joint", 1, 0)
    # Pretrained weights keep SD's tanh scale (3da-ae.md §1.1) until told otherwise.
    assert float(pretrained.normalizer.scale) == pytest.approx(0.02)
    rgb = make_model("rgb")
    rgb.steps_per_epoch = 4
    assert rgb.autoencoder is None and [name for name, _ in rgb.active_phases()] == ["latent", "joint"]


def test_no_positive_phase_is_an_error() -> None:
    model = make_model("rgb", {"only": PhaseConfig(epochs=0)})
    with pytest.raises(ValueError, match="no training phase"):
        model.phase_steps()


def test_released_stage_one_and_two_schedules() -> None:
    """Stage 1 (3da-ae.md §1.5): 50-epoch phases, MLP lr -> 0 at epoch 45 of 'latent'; stage 2: x 0.94157 per
    epoch. With 390 steps per epoch (the brief's estimate for 500 scenes)."""
    stage_one = make_model("latent", stage_one_phases())
    stage_one.steps_per_epoch = 390
    assert stage_one.phase_steps() == [19_500, 19_500, 19_500]
    latent_start = 19_500
    assert stage_one.learning_rates_at(stage_one.phase_at(latent_start + 45 * 390 - 1))["mlp"] == 1e-2
    assert stage_one.learning_rates_at(stage_one.phase_at(latent_start + 45 * 390))["mlp"] == 0.0
    joint = stage_one.learning_rates_at(stage_one.phase_at(2 * 19_500 + 30 * 390))
    assert joint == {
        "planes": 1e-3,
        "coefficients": 1e-2,
        "global_bases": 1e-2,
        "mlp": 1e-3,
        "encoder": 1e-4,
        "decoder": 1e-4,
    }
    stage_two = make_model("latent", stage_two_phases())
    stage_two.steps_per_epoch = 390
    assert [name for name, _ in stage_two.active_phases()] == ["latent", "decoder"]
    rates = stage_two.learning_rates_at(stage_two.phase_at(10 * 390 + 5))
    assert rates["planes"] == pytest.approx(1e-2 * 0.94157**10)
    assert EXPLOIT_DECAY == 0.94157
    rates = stage_two.learning_rates_at(stage_two.phase_at(19_500 + 3 * 390))
    assert rates["decoder"] == pytest.approx(1e-4 * 0.94157**3) and rates["encoder"] == 0.0


def test_enter_step_sets_rates_freezes_groups_and_calibrates() -> None:
    model = make_model()
    model.steps_per_epoch = 4
    model.calibration_size = (8, 8)
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    model.calibration_source = lambda count: images[:count]
    optimizers = Optimizers(_optimizers(), model.get_param_groups())
    groups = model.parameter_groups()
    assert set(groups) == {"planes", "coefficients", "global_bases", "mlp", "encoder", "decoder"}

    def lr(name: str) -> float:
        return optimizers.optimizers[name].param_groups[0]["lr"]

    def trains(name: str) -> bool:
        return all(p.requires_grad for p in groups[name])

    model.enter_step(0, optimizers)
    assert lr("encoder") == 1e-4 and lr("decoder") == 2e-4 and lr("planes") == 0.0
    assert trains("encoder") and not trains("planes") and not trains("mlp")
    assert not bool(model.latent_space_ready)  # the autoencoder phase comes before calibration

    model.enter_step(11, optimizers)  # latent, MLP frozen
    assert lr("planes") == 1e-2 and lr("coefficients") == 2e-2 and lr("mlp") == 0.0 and lr("encoder") == 0.0
    assert trains("planes") and trains("coefficients") and not trains("mlp") and not trains("encoder")
    # Entering a latent phase calibrated the normaliser from the training images: tanh(s E(x)) has std 0.3 ...
    assert bool(model.latent_space_ready)
    assert model.autoencoder is not None
    with torch.no_grad():
        means = model.autoencoder.encode(images * 2 - 1).latent_dist.mean  # type: ignore[operator]
        white = model.autoencoder.encode(torch.ones(1, 3, 8, 8)).latent_dist.mean  # type: ignore[operator]
    scale = float(model.normalizer.scale)
    assert sample_std(torch.tanh(scale * means.double())) == pytest.approx(0.3, rel=1e-4)
    # ... and the background is n(E(white)) per channel, in [0, 1] units.
    expected = (torch.tanh(scale * white).mean(dim=(0, 2, 3)) + 1) / 2
    torch.testing.assert_close(model.background, expected, rtol=1e-5, atol=1e-6)


def test_reset_mlp_drops_its_adam_state() -> None:
    phases = {
        "first": PhaseConfig(epochs=1, learning_rates={"mlp": 1e-2}),
        "second": PhaseConfig(epochs=1, learning_rates={"mlp": 1e-2}, reset_mlp=True),
    }
    model = make_model("rgb", phases)
    model.steps_per_epoch = 2
    optimizers = Optimizers(_optimizers(), model.get_param_groups())
    model.enter_step(0, optimizers)
    for p in model.mlp.parameters():
        p.grad = torch.ones_like(p)
    optimizers.optimizer_step_all()
    assert all(p in optimizers.optimizers["mlp"].state for p in model.mlp.parameters())
    before = [p.detach().clone() for p in model.mlp.parameters()]
    model.enter_step(1, optimizers)  # still 'first'
    assert all(torch.equal(a, b) for a, b in zip(before, model.mlp.parameters()))
    model.enter_step(2, optimizers)  # 'second' starts with a fresh MLP
    assert not any(p in optimizers.optimizers["mlp"].state for p in model.mlp.parameters())
    assert not any(torch.equal(a, b) for a, b in zip(before, model.mlp.parameters()))


# --- 7. autoencoder loading ------------------------------------------------------------------------------------------


def small_autoencoder(seed: int, block_out_channels: tuple[int, ...] = (8, 8)) -> AutoencoderKL:
    torch.manual_seed(seed)
    config = AutoencoderConfig(**{**TINY_AE, "block_out_channels": block_out_channels})
    return AutoencoderKL(**config.diffusers_config())


def assert_same_weights(loaded: nn.Module, original: nn.Module) -> None:
    expected = original.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def test_scratch_autoencoder_is_the_configured_architecture() -> None:
    model, pretrained = build_autoencoder(AutoencoderConfig(**TINY_AE))
    assert not pretrained and autoencoder_downscale(model) == 2
    assert AutoencoderConfig().downscale == 8  # SD's four levels
    with torch.no_grad():
        latent = model.encode(torch.zeros(1, 3, 8, 8)).latent_dist.mean  # type: ignore[operator]
    assert latent.shape == (1, 4, 4, 4)


@pytest.mark.parametrize("layout", ["folder", "pipeline folder"])
def test_diffusers_folder_loads_identical_weights(tmp_path: Path, layout: str) -> None:
    original = small_autoencoder(1)
    target = tmp_path / "vae" if layout == "pipeline folder" else tmp_path
    original.save_pretrained(target)
    loaded, pretrained = build_autoencoder(AutoencoderConfig(pretrained=tmp_path))
    assert pretrained
    assert_same_weights(loaded, original)


def test_diffusers_key_files_load_identical_weights(tmp_path: Path) -> None:
    original = small_autoencoder(2)
    state = {k: v.contiguous() for k, v in original.state_dict().items()}
    save_file(state, str(tmp_path / "vae.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "vae.ckpt")
    for name in ("vae.safetensors", "vae.ckpt"):
        loaded, pretrained = build_autoencoder(AutoencoderConfig(pretrained=tmp_path / name, **TINY_AE))
        assert pretrained
        assert_same_weights(loaded, original)


def ldm_key(key: str, levels: int) -> str:
    """The original LDM (CompVis) name of a diffusers AutoencoderKL key: ``down.{i}.block.{j}``,
    ``down.{i}.downsample``, ``up.{level}.block.{j}`` with the decoder's levels counted from the full resolution
    (diffusers counts up_blocks from the lowest), ``mid.block_{1,2}``, ``mid.attn_1.{norm,q,k,v,proj_out}``,
    ``nin_shortcut``, ``norm_out``."""
    key = re.sub(r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block.", key)
    key = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample.", key)
    key = re.sub(r"up_blocks\.(\d+)\.resnets\.", lambda m: f"up.{levels - 1 - int(m.group(1))}.block.", key)
    key = re.sub(r"up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"up.{levels - 1 - int(m.group(1))}.upsample.", key)
    key = re.sub(r"mid_block\.resnets\.(\d)\.", lambda m: f"mid.block_{int(m.group(1)) + 1}.", key)
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    for new, old in attention.items():
        key = key.replace(f"mid_block.attentions.0.{new}.", f"mid.attn_1.{old}.")
    return key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")


def ldm_state(original: AutoencoderKL) -> dict[str, Tensor]:
    state = {}
    for key, value in original.state_dict().items():
        name = ldm_key(key, levels=len(original.config.block_out_channels))  # type: ignore[attr-defined]
        is_attention_matrix = re.search(r"mid\.attn_1\.(q|k|v|proj_out)\.weight$", name) is not None
        state[name] = value[:, :, None, None].contiguous() if is_attention_matrix else value.contiguous()  # 1x1 conv
    return state


def test_ldm_key_files_load_identical_weights(tmp_path: Path) -> None:
    """Two levels of different widths (8, 16), so a mix-up of the decoder's level order cannot go unnoticed."""
    original = small_autoencoder(3, block_out_channels=(8, 16))
    state = ldm_state(original)
    assert "decoder.up.0.block.0.nin_shortcut.weight" in state  # 16 -> 8 channels at the full resolution
    assert "decoder.up.1.upsample.conv.weight" in state and state["encoder.mid.attn_1.q.weight"].dim() == 4
    whole_sd_file = {f"first_stage_model.{k}": v for k, v in state.items()}
    whole_sd_file["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(2, 4, 3, 3)
    torch.save({"state_dict": whole_sd_file}, tmp_path / "sd.ckpt")
    save_file(state, str(tmp_path / "vae_ldm.safetensors"))
    config = {**TINY_AE, "block_out_channels": (8, 16)}
    for name in ("sd.ckpt", "vae_ldm.safetensors"):
        loaded, pretrained = build_autoencoder(AutoencoderConfig(pretrained=tmp_path / name, **config))
        assert pretrained
        assert_same_weights(loaded, original)


def test_missing_path_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "vae.safetensors"
    with pytest.raises(DatasetFormatError) as error:
        build_autoencoder(AutoencoderConfig(pretrained=path, **TINY_AE))
    single_line_error(error.value, path)
    assert "not found" in str(error.value)


@pytest.mark.parametrize("name", ["vae.safetensors", "vae.ckpt"])
def test_truncated_file_is_one_error(tmp_path: Path, name: str) -> None:
    state = {k: v.contiguous() for k, v in small_autoencoder(4).state_dict().items()}
    whole = tmp_path / f"whole_{name}"
    if name.endswith(".safetensors"):
        save_file(state, str(whole))
    else:
        torch.save(state, whole)
    path = tmp_path / name
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFormatError) as error:
        build_autoencoder(AutoencoderConfig(pretrained=path, **TINY_AE))
    single_line_error(error.value, path)
    assert "truncated" in str(error.value)


def test_wrong_shapes_are_one_error(tmp_path: Path) -> None:
    """Weights of a (8, 16) autoencoder given to the (8, 8) architecture."""
    state = {k: v.contiguous() for k, v in small_autoencoder(5, block_out_channels=(8, 16)).state_dict().items()}
    path = tmp_path / "vae.safetensors"
    save_file(state, str(path))
    with pytest.raises(DatasetFormatError) as error:
        build_autoencoder(AutoencoderConfig(pretrained=path, **TINY_AE))
    single_line_error(error.value, path)
    assert "shape mismatches" in str(error.value)


def test_not_a_state_dict_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "vae.ckpt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(DatasetFormatError) as error:
        build_autoencoder(AutoencoderConfig(pretrained=path, **TINY_AE))
    single_line_error(error.value, path)


def test_broken_diffusers_folders_are_one_error(tmp_path: Path) -> None:
    """No config.json; weights cut in half; weights lacking some tensors (which diffusers would leave random)."""
    original = small_autoencoder(6)
    original.save_pretrained(tmp_path / "good")
    weights = (tmp_path / "good" / "diffusion_pytorch_model.safetensors").read_bytes()
    config_text = (tmp_path / "good" / "config.json").read_text()

    empty = tmp_path / "empty"
    empty.mkdir()
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "config.json").write_text(config_text)
    (truncated / "diffusion_pytorch_model.safetensors").write_bytes(weights[: len(weights) // 2])
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text(config_text)
    state = {k: v.contiguous() for k, v in original.state_dict().items() if not k.startswith("decoder.conv_out.")}
    save_file(state, str(partial / "diffusion_pytorch_model.safetensors"))

    for folder, words in ((empty, "config.json"), (truncated, "cannot load"), (partial, "decoder.conv_out.weight")):
        with pytest.raises(DatasetFormatError) as error:
            build_autoencoder(AutoencoderConfig(pretrained=folder))
        single_line_error(error.value, folder)
        assert words in str(error.value)


# --- 8. multi-scene helpers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_scenes", "world_size"), [(10, 3), (7, 7), (3, 5), (1, 4), (0, 2), (100, 8), (5, 1), (500, 6)]
)
def test_scene_ranges_are_disjoint_and_cover(num_scenes: int, world_size: int) -> None:
    ranges = [scene_range_of_rank(num_scenes, world_size, rank) for rank in range(world_size)]
    covered = [scene for r in ranges for scene in r]
    assert covered == list(range(num_scenes))  # disjoint, in order, every scene once
    sizes = [len(r) for r in ranges]
    assert max(sizes) - min(sizes) <= 1
    assert all(r.step == 1 for r in ranges)


def test_scene_ranges_hand_computed() -> None:
    assert [scene_range_of_rank(10, 3, r) for r in range(3)] == [range(0, 4), range(4, 7), range(7, 10)]
    assert [scene_range_of_rank(3, 5, r) for r in range(5)] == [
        range(0, 1),
        range(1, 2),
        range(2, 3),
        range(3, 3),
        range(3, 3),
    ]
    assert scene_range_of_rank(5, 1, 0) == range(0, 5)
    for rank in (-1, 3):
        with pytest.raises(ValueError, match="outside a world"):
            scene_range_of_rank(10, 3, rank)


def test_single_process_helpers() -> None:
    assert process_rank_and_count() == (0, 1)
    tensors = [torch.tensor([1.0, 2.0]), torch.tensor([3.0])]
    share_scene_state([[tensors[0]], [tensors[1]]], owned=range(0, 1))  # one process owns everything: no-op
    assert torch.equal(tensors[0], torch.tensor([1.0, 2.0])) and torch.equal(tensors[1], torch.tensor([3.0]))
    bits = torch.tensor([1, 0, 1])
    combine_rank_bits(bits)
    assert torch.equal(bits, torch.tensor([1, 0, 1]))
    parameter = nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    average_gradients_before_step(optimizer)
    parameter.grad = torch.tensor([1.0, -2.0])
    optimizer.step()  # no averaging hook: the plain SGD step
    assert torch.equal(parameter.detach(), torch.tensor([-1.0, 2.0]))


def test_scene_id_bytes() -> None:
    shapenet = scene_id_bytes("0123456789abcdef0123456789abcdef")
    assert shapenet.dtype == torch.uint8 and shapenet.shape == (16,)
    assert shapenet.tolist() == [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF] * 2
    for name in ("car_b", "ab" * 15, "ab" * 17, "0123456789abcdef0123456789abcdeg"):
        assert scene_id_bytes(name).tolist() == list(hashlib.sha256(name.encode()).digest()[:16])
    model = make_model("rgb")
    assert model.scene_ids.dtype == torch.uint8
    assert torch.equal(model.scene_ids, torch.stack([scene_id_bytes(n) for n in SCENE_NAMES]))
    assert model.scene_ids[0].tolist() == shapenet.tolist()


# --- 9. per-scene memory and attribution -----------------------------------------------------------------------------


def test_scene_memory_hand_computed() -> None:
    """RGB model, 3 scenes: per scene 3 x 2 x 4 x 4 local + 2 coefficients + 1 bias = 99 floats = 396 bytes;
    shared: bases 2 x 3 x 2 x 4 x 4 = 192 floats, MLP Linear(4, 8) + Linear(8, 1 + 3) = 40 + 36 = 76 floats;
    268 floats = 1072 bytes. Adam adds exp_avg and exp_avg_sq (2x the bytes) for the tensors it has stepped."""
    model = make_model("rgb")
    assert model.scenes.scene_parameter_count() == 99
    assert model.autoencoder is None
    memory = model.scene_memory()
    assert memory == {
        "per_scene_bytes_mean": 396.0,
        "shared_bytes": 1072.0,
        "effective_per_scene_bytes": (3 * 396 + 1072) / 3,
    }
    optimizers = Optimizers(_optimizers(), model.get_param_groups())
    assert model.scene_memory(optimizers) == memory  # no step yet: no Adam state
    # One step with gradients on scene 0 and the MLP only: their moments exist, the others' do not.
    for p in [*model.scenes.scene_parameters(0), *model.mlp.parameters()]:
        p.grad = torch.ones_like(p)
    optimizers.optimizer_step_all()
    per_scene = [3 * 396, 396, 396]
    shared = 1072 + 2 * 76 * 4
    assert model.scene_memory(optimizers) == {
        "per_scene_bytes_mean": sum(per_scene) / 3,
        "shared_bytes": float(shared),
        "effective_per_scene_bytes": (sum(per_scene) + shared) / 3,
    }
    # A step on everything: every tensor has its two moments.
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizers.optimizer_step_all()
    assert model.scene_memory(optimizers) == {
        "per_scene_bytes_mean": 3 * 396.0,
        "shared_bytes": 3 * 1072.0,
        "effective_per_scene_bytes": (3 * 3 * 396 + 3 * 1072) / 3,
    }


def test_scene_and_shared_parameters_partition_the_latent_model() -> None:
    """Every trained tensor of a latent model is one scene's or shared (autoencoder included), none twice."""
    model = make_model("latent")
    per_scene = [p for s in range(3) for p in model.scenes.scene_parameters(s)]
    shared = model.shared_parameters()
    ids = [id(p) for p in per_scene + shared]
    assert len(ids) == len(set(ids))
    # nerfstudio's Model holds an empty ``device_indicator_param``; everything else is counted.
    trained = [p for name, p in model.named_parameters() if name != "device_indicator_param"]
    assert set(ids) == {id(p) for p in trained}
    total_bytes = 4 * sum(p.numel() for p in trained)
    memory = model.scene_memory()
    assert memory["effective_per_scene_bytes"] * 3 == pytest.approx(total_bytes)
    assert memory["per_scene_bytes_mean"] == 4 * 99


def test_record_trained_images_hand_computed() -> None:
    model = make_model("rgb")
    model.rank = 2
    model.record_trained_images(torch.tensor([2, 0, 2, 2]), seconds=2.0)
    # counts (1, 0, 3); 2 s over 4 images = 0.5 s each; rank 2 sets bit 4 on the scenes it trained
    assert model.scene_images_trained.tolist() == [1.0, 0.0, 3.0]
    assert model.scene_train_seconds.tolist() == [0.5, 0.0, 1.5]
    assert model.scene_trained_by_ranks.tolist() == [4, 0, 4]
    model.rank = 0
    model.record_trained_images(torch.tensor([1, 1]), seconds=1.0)
    assert model.scene_images_trained.tolist() == [1.0, 2.0, 3.0]
    assert model.scene_train_seconds.tolist() == [0.5, 1.0, 1.5]
    assert model.scene_trained_by_ranks.tolist() == [4, 1, 4]
    model.record_trained_images(torch.tensor([2]), seconds=0.25)
    assert model.scene_train_seconds.tolist() == [0.5, 1.0, 1.75]
    assert model.scene_trained_by_ranks.tolist() == [4, 1, 5]


# --- pipeline set-up ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srn_12px(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 generated SRN scenes x 12 views of 12 x 12."""
    root = tmp_path_factory.mktemp("srn") / "shapenet"
    write_srn(root, width=12, height=12, num_cameras=12, num_instances=3, seed=3, intrinsics_resolution=512)
    return root


def test_rgb_pipeline_sets_up(srn_12px: Path) -> None:
    """rgb-triplanes has no autoencoder (no downscale): the image-size check must not touch one."""
    config = rgb_triplanes_config(cpu=True).pipeline
    config.datamanager.dataparser = SrnDataParserConfig(data=srn_12px, num_eval_views=2)
    config.datamanager.images_per_batch = 2
    config.model.triplane_resolution = 4
    pipeline = config.setup(device="cpu", test_mode="val")
    model = pipeline.model
    assert isinstance(model, TriplaneModel) and not model.latent
    images = len(pipeline.datamanager.train_dataset)
    assert model.steps_per_epoch == math.ceil(images / 2)
    assert model.phase_steps() == [math.ceil(40 * model.steps_per_epoch)]  # rgb-triplanes-cpu: 40 epochs


def test_latent_pipeline_rejects_images_the_autoencoder_cannot_encode(srn_12px: Path) -> None:
    """12 x 12 images through an 8x autoencoder (four levels): 12 is not a multiple of 8."""
    config = rgb_triplanes_config(cpu=True).pipeline
    config.datamanager.dataparser = SrnDataParserConfig(data=srn_12px, num_eval_views=2)
    config.model = TriplaneModelConfig(
        space="latent",
        triplane_resolution=4,
        local_channels=2,
        global_channels=2,
        num_global_bases=2,
        autoencoder=AutoencoderConfig(**{**TINY_AE, "block_out_channels": (8, 8, 8, 8)}),
        phases=schedule(),
    )
    with pytest.raises(DatasetFormatError, match="12x12 cannot be encoded by an autoencoder that shrinks by 8"):
        config.setup(device="cpu", test_mode="val")
    config.model.autoencoder = AutoencoderConfig(**{**TINY_AE, "block_out_channels": (8, 8, 8)})  # 4x: fine
    pipeline = config.setup(device="cpu", test_mode="val")
    assert isinstance(pipeline.model, TriplaneModel) and pipeline.model.downscale == 4


def test_exploit_refuses_to_train_without_a_stage_one_run() -> None:
    """``3da-ae-exploit`` without ``--pipeline.stage-one-checkpoint``: one line naming the flag, before any data."""
    from nerfstudio_methods.threeda_ae.config import threeda_ae_exploit_config

    config = threeda_ae_exploit_config(cpu=True)
    config.pipeline.datamanager.data = Path("/nonexistent")  # never read: the check comes first
    with pytest.raises(DatasetFormatError, match=r"^--pipeline.stage-one-checkpoint: missing: stage 2"):
        config.pipeline.setup(device="cpu", test_mode="val")


def test_cameras_without_a_scene_show_the_viewer_scene_slider() -> None:
    """Dataset cameras carry their scene; the viewer's (and ns-render's) cameras show the Scene slider's scene,
    which starts at ``render_scene``; a ``render_scene`` outside the run is one clear error."""
    from nerfstudio.cameras.cameras import Cameras

    model = make_model(space="rgb", render_scene=1)
    assert model.num_scenes == 3 and model.scene_slider.value == 1

    def camera(scene: int | None) -> Cameras:
        metadata = None if scene is None else {"scene_index": torch.tensor([[scene]])}
        return Cameras(
            camera_to_worlds=torch.eye(4)[None, :3], fx=8.0, fy=8.0, cx=4.0, cy=4.0, width=8, height=8,
            metadata=metadata,
        )  # fmt: skip

    assert model.scene_of_camera(camera(None)) == 1
    assert model.scene_of_camera(camera(2)) == 2
    model.scene_slider.value = 0
    assert model.scene_of_camera(camera(None)) == 0
    with pytest.raises(DatasetFormatError, match=r"^render_scene: 3 is not a scene of this run \(it has 3\)"):
        make_model(space="rgb", render_scene=3)


@pytest.mark.parametrize("space", ["latent", "rgb"])
def test_the_viewer_camera_renders_the_scene_slider_scene(space: str) -> None:
    """The camera nerfstudio's viewer builds (``viewer.utils.get_camera``: ``metadata={"cam_idx": <int>}``) renders,
    and each Scene slider position shows the same image as a dataset camera of that scene at the same pose."""
    from nerfstudio.cameras.cameras import Cameras, CameraType
    from nerfstudio.viewer.utils import CameraState, get_camera

    model = make_model(space=space).eval()
    pose = torch.eye(4)[:3].clone()
    pose[2, 3] = 2.5  # outside the unit scene, looking at it along -z
    state = CameraState(fov=0.9, aspect=1.0, c2w=pose, camera_type=CameraType.PERSPECTIVE, idx=3)
    viewer_camera = get_camera(state, image_height=8, image_width=8)
    assert viewer_camera.metadata == {"cam_idx": 3}
    renders = []
    for scene in range(model.num_scenes):
        model.scene_slider.value = scene
        shown = model.get_outputs_for_camera(viewer_camera)["rgb"]
        dataset_camera = Cameras(
            camera_to_worlds=viewer_camera.camera_to_worlds, fx=viewer_camera.fx, fy=viewer_camera.fy,
            cx=viewer_camera.cx, cy=viewer_camera.cy, width=8, height=8,
            metadata={"scene_index": torch.tensor([[scene]])},
        )  # fmt: skip
        torch.testing.assert_close(shown, model.get_outputs_for_camera(dataset_camera)["rgb"])
        renders.append(shown)
    assert not torch.allclose(renders[0], renders[1])  # the scenes' tri-planes differ, so the slider matters


def test_a_larger_view_decodes_latents_at_the_training_scale() -> None:
    """A camera 4x the training resolution (the viewer at a larger Max res): the decoder still gets the latent grid
    of a training image (8 px training images, 2x autoencoder: 4x4 latents), and the image is that render enlarged
    (bilinear) to the camera's 32x32; a camera at the training focal length renders as before."""
    import torch.nn.functional as F
    from nerfstudio.cameras.cameras import Cameras

    model = make_model(space="latent").eval()
    model.calibration_size, model.training_focal = (8, 8), 8.0
    decoded_sizes: list[tuple[int, int]] = []
    decoded: list[Tensor] = []
    decode = model.decode

    def recording_decode(latents: Tensor) -> Tensor:
        decoded_sizes.append(tuple(latents.shape[-2:]))
        decoded.append(decode(latents))
        return decoded[-1]

    model.decode = recording_decode  # type: ignore[method-assign]
    pose = torch.eye(4)[None, :3].clone()
    pose[0, 2, 3] = 2.5

    def camera(size: int) -> Cameras:
        focal = 8.0 * size / 8  # the training camera's field of view at ``size`` pixels
        return Cameras(camera_to_worlds=pose, fx=focal, fy=focal, cx=size / 2, cy=size / 2, width=size, height=size)

    model.get_outputs_for_camera(camera(8))
    large_view = model.get_outputs_for_camera(camera(32))["rgb"]
    assert decoded_sizes == [(4, 4), (4, 4)]
    torch.testing.assert_close(decoded[1], decoded[0])  # the same latents: the same pose, the same scale
    enlarged = F.interpolate((decoded[0] + 1) / 2, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(large_view, enlarged[0].permute(1, 2, 0).clamp(0, 1))
    # A view twice as wide (the viewer's 3D view): latents 4x8 at the training focal length, decoded as 4x4 tiles.
    decoded_sizes.clear()
    wide = Cameras(camera_to_worlds=pose, fx=32.0, fy=32.0, cx=32.0, cy=16.0, width=64, height=32)
    assert model.get_outputs_for_camera(wide)["rgb"].shape == (32, 64, 3)
    assert decoded_sizes and set(decoded_sizes) == {(4, 4)}


def test_tile_starts_hand_computed() -> None:
    from nerfstudio_methods.threeda_ae.autoencoder import tile_starts

    assert tile_starts(4, 4) == [0]
    assert tile_starts(10, 4) == [0, 2, 4, 6]  # half a tile apart, the last one ending at 10
    assert tile_starts(5, 4) == [0, 1]


class PointwiseDecoder:
    """A decoder whose every output pixel depends on its own latent cell only (a per-cell linear map, enlarged by
    ``factor`` with nearest neighbours), so decoding in tiles must give exactly the whole grid's decode; it records
    the grids it is given."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.weight = torch.tensor([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])
        self.seen: list[tuple[int, int]] = []

    def __call__(self, latents: Tensor) -> Tensor:
        self.seen.append(tuple(latents.shape[-2:]))
        image = torch.einsum("oc,bchw->bohw", self.weight, latents)
        return image.repeat_interleave(self.factor, -2).repeat_interleave(self.factor, -1)


@pytest.mark.parametrize("grid", [(4, 10), (7, 9), (2, 3), (2, 9), (4, 4)])
def test_decode_in_tiles_feeds_the_decoder_only_its_grid_size(grid: tuple[int, int]) -> None:
    """Wider, larger, smaller and mixed grids against a 4x4 tile: the decoder only ever sees 4x4 grids, and for a
    per-cell decoder the blended tiles (or the cropped padding) equal decoding the whole grid at once."""
    from nerfstudio_methods.threeda_ae.autoencoder import decode_in_tiles

    decoder = PointwiseDecoder(factor=2)
    latents = torch.randn(1, 2, *grid, generator=torch.Generator().manual_seed(0))
    tiled = decode_in_tiles(decoder, latents, (4, 4), fill=torch.tensor([0.3, -0.2]), factor=2)
    assert set(decoder.seen) == {(4, 4)}
    torch.testing.assert_close(tiled, PointwiseDecoder(factor=2)(latents))


@pytest.mark.parametrize("space", ["latent", "rgb"])
def test_camera_outputs_start_with_the_decoded_rgb(space: str) -> None:
    """nerfstudio's viewer opens on the first output a model returns: the decoded image, not the latent channels."""
    from nerfstudio.cameras.cameras import Cameras

    model = make_model(space=space).eval()
    camera = Cameras(camera_to_worlds=torch.eye(4)[None, :3], fx=8.0, fy=8.0, cx=4.0, cy=4.0, width=8, height=8)
    outputs = model.get_outputs_for_camera(camera)
    assert list(outputs)[:3] == ["rgb", "accumulation", "depth"]
    assert ("latent" in outputs) == (space == "latent")


def test_stage_one_checkpoint_is_the_newest_complete_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A run folder (or its nerfstudio_models/) gives its newest checkpoint that is a complete archive, by step number;
    a newer truncated one is skipped in one line; a file is taken as it is; nothing found is one error."""
    from nerfstudio_methods.threeda_ae.pipeline import find_checkpoint

    models = tmp_path / "run" / "nerfstudio_models"
    models.mkdir(parents=True)
    for step in (2, 9, 10):
        torch.save({"pipeline": {}}, models / f"step-{step}.ckpt")
    (models / "step-11.ckpt").write_bytes((models / "step-10.ckpt").read_bytes()[:50])  # a save that was cut off
    assert find_checkpoint(tmp_path / "run") == models / "step-10.ckpt"
    assert "skipping" in capsys.readouterr().out
    assert find_checkpoint(models) == models / "step-10.ckpt"
    assert find_checkpoint(models / "step-2.ckpt") == models / "step-2.ckpt"
    with pytest.raises(DatasetFormatError, match="no stage-1 checkpoint"):
        find_checkpoint(tmp_path)
