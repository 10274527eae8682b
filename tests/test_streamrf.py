"""StreamRF's building blocks against hand-computed values and brute-force references.

SH against values worked out by hand and orthonormality on the sphere; trilinear lookup against an 8-corner loop;
dilation, erosion, narrow band and mask upsampling on small grids against hand-drawn masks; the delta codec's exact
replay (also through the on-disk store, keyframes and an interrupted write); svox2's RMSprop step; NDC rays and the
renderer against closed-form volume rendering.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfstudio_methods.rays import ndc_rays
from nerfstudio_methods.streamrf import masks
from nerfstudio_methods.streamrf.codec import (
    apply_delta,
    decode_grid,
    encode_delta,
    encode_grid,
    read_record,
    to_bytes,
)
from nerfstudio_methods.streamrf.grid import GRID_CHANNELS, DenseGrid, GridSpec, SparseGrid, resample, trilinear
from nerfstudio_methods.streamrf.optim import MaskedRMSprop, exponential_lr
from nerfstudio_methods.streamrf.render import composite_packed, ray_box, ray_groups, render_rays_torch
from nerfstudio_methods.streamrf.sh import C0, C1, SH_BASES, sh_bases, sh_to_rgb
from nerfstudio_methods.streamrf.store import FrameStore, GridPlayer

# ----------------------------------------------------------------------------------------------- spherical harmonics

C2_ZZ = 0.31539156525252005  # (1/4) sqrt(5/pi)
C2_XY = 1.0925484305920792  # (1/2) sqrt(15/pi)
C2_XX_YY = 0.5462742152960396  # (1/4) sqrt(15/pi)


def test_sh_bases_match_hand_values_on_the_axes() -> None:
    directions = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    expected = torch.tensor(
        [
            # svox2: [C0, -C1 y, C1 z, -C1 x, C2 xy, -C2 yz, C2' (2zz - xx - yy), -C2 xz, C2'' (xx - yy)]
            [C0, 0, C1, 0, 0, 0, 2 * C2_ZZ, 0, 0],
            [C0, 0, 0, -C1, 0, 0, -C2_ZZ, 0, C2_XX_YY],
            [C0, -C1, 0, 0, 0, 0, -C2_ZZ, 0, -C2_XX_YY],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(sh_bases(directions), expected)
    diagonal = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64) / math.sqrt(3)
    s = 1 / 3  # every product of two coordinates
    torch.testing.assert_close(
        sh_bases(diagonal)[0],
        torch.tensor(
            [C0, -C1 / 3**0.5, C1 / 3**0.5, -C1 / 3**0.5, C2_XY * s, -C2_XY * s, 0, -C2_XY * s, 0], dtype=torch.float64
        ),
    )


def test_sh_bases_are_orthonormal_on_the_sphere() -> None:
    # Gauss-Legendre in cos(theta) x uniform phi integrates polynomials of degree <= 4 exactly.
    nodes, weights = np.polynomial.legendre.leggauss(8)
    phi = np.arange(16) * 2 * np.pi / 16
    cos_t, ph = np.meshgrid(nodes, phi, indexing="ij")
    sin_t = np.sqrt(1 - cos_t**2)
    dirs = torch.from_numpy(np.stack([sin_t * np.cos(ph), sin_t * np.sin(ph), cos_t], -1).reshape(-1, 3))
    w = torch.from_numpy(np.repeat(weights, 16) * (2 * np.pi / 16))
    bases = sh_bases(dirs)
    gram = (bases * w[:, None]).T @ bases
    torch.testing.assert_close(gram, torch.eye(SH_BASES, dtype=torch.float64), atol=1e-10, rtol=0)


def test_sh_colour_is_relu_of_the_sh_sum_plus_half() -> None:
    direction = torch.tensor([[0.0, 0.0, 1.0]])
    coefficients = torch.zeros(1, 27)
    coefficients[0, 0] = 1.0  # red DC
    coefficients[0, 9 + 2] = 2.0  # green, Y1_0 = C1 z
    coefficients[0, 18] = -5.0  # blue DC, clipped by the relu
    rgb = sh_to_rgb(coefficients, sh_bases(direction))
    torch.testing.assert_close(rgb, torch.tensor([[C0 + 0.5, 2 * C1 + 0.5, 0.0]]))


# ----------------------------------------------------------------------------------------------- trilinear


def brute_force_trilinear(values: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Voxel centres at (i + 0.5) / n of [-1, 1], positions clamped to the outer centres, 8 corners by hand."""
    channels, depth, height, width = values.shape
    out = torch.zeros(coords.shape[0], channels, dtype=values.dtype)
    for n, (x, y, z) in enumerate(coords.tolist()):
        u = [min(max((c + 1) / 2 * size - 0.5, 0.0), size - 1.0) for c, size in ((x, width), (y, height), (z, depth))]
        base = [min(int(math.floor(c)), size - 2) if size > 1 else 0 for c, size in zip(u, (width, height, depth))]
        frac = [c - b for c, b in zip(u, base)]
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    weight = (
                        (frac[0] if dx else 1 - frac[0])
                        * (frac[1] if dy else 1 - frac[1])
                        * (frac[2] if dz else 1 - frac[2])
                    )
                    out[n] += weight * values[:, base[2] + dz, base[1] + dy, base[0] + dx]
    return out


def test_trilinear_matches_brute_force_inside_and_at_the_border() -> None:
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(5, 4, 5, 6, generator=generator, dtype=torch.float64)
    coords = torch.rand(200, 3, generator=generator, dtype=torch.float64) * 2.2 - 1.1  # some beyond the outer centres
    coords[:3] = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(trilinear(values, coords), brute_force_trilinear(values, coords))


def test_trilinear_at_a_voxel_centre_returns_that_voxel() -> None:
    spec = GridSpec((6, 5, 4), (2.0, 1.5, 1.0))
    values = torch.arange(120, dtype=torch.float32).reshape(1, 4, 5, 6)
    centres = spec.voxel_centres()
    torch.testing.assert_close(trilinear(values, centres.reshape(-1, 3))[:, 0], values.reshape(-1))


# ----------------------------------------------------------------------------------------------- masks


def cube(shape: tuple[int, int, int], low: int, high: int) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[low : high + 1, low : high + 1, low : high + 1] = True
    return mask


def test_dilation_is_the_26_neighbourhood_clamped_at_the_border() -> None:
    centre = torch.zeros(5, 5, 5, dtype=torch.bool)
    centre[2, 2, 2] = True
    assert torch.equal(masks.dilate(centre, 1), cube((5, 5, 5), 1, 3))  # 3x3x3
    assert torch.equal(masks.dilate(centre, 2), torch.ones(5, 5, 5, dtype=torch.bool))
    corner = torch.zeros(5, 5, 5, dtype=torch.bool)
    corner[0, 0, 0] = True
    assert torch.equal(masks.dilate(corner, 1), cube((5, 5, 5), 0, 1))  # 2x2x2: no wrap-around
    assert int(masks.dilate(corner, 3).sum()) == 4**3


def test_erosion_counts_outside_neighbours_as_occupied() -> None:
    full = torch.ones(4, 4, 4, dtype=torch.bool)
    assert torch.equal(masks.erode(full, 2), full)
    block = cube((9, 9, 9), 1, 7)
    assert torch.equal(masks.erode(block, 1), cube((9, 9, 9), 2, 6))
    assert torch.equal(masks.erode(block, 3), cube((9, 9, 9), 4, 4))
    assert not masks.erode(block, 4).any()


def test_narrow_band_is_the_shell_between_dilation_and_erosion() -> None:
    block = cube((11, 11, 11), 2, 8)  # 7^3 occupied
    band = masks.narrow_band(block, outer=1, inner=2)
    expected = cube((11, 11, 11), 1, 9) & ~cube((11, 11, 11), 4, 6)  # 9^3 minus 3^3
    assert torch.equal(band, expected)
    assert int(band.sum()) == 9**3 - 3**3
    # StreamRF's defaults (outer 2, inner 6): a 7^3 block has no interior deeper than 6, so all of it is in the band
    assert torch.equal(masks.narrow_band(block, outer=2), cube((11, 11, 11), 0, 10))


def test_student_mask_drops_specks_and_grows_blocks() -> None:
    speck = torch.zeros(9, 9, 9, dtype=torch.bool)
    speck[4, 4, 4] = True
    assert not masks.student_mask(speck).any()
    assert torch.equal(masks.student_mask(cube((9, 9, 9), 3, 5)), cube((9, 9, 9), 2, 6))  # erode to 1 voxel, +2


def test_upsampled_mask_covers_the_full_voxels_the_pilot_voxel_touches() -> None:
    low = torch.zeros(2, 2, 2, dtype=torch.bool)
    low[0, 0, 0] = True
    # full centres in pilot index space: -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1); the weight of pilot
    # voxel 0 is 1 - u: 1, 0.75, 0.25, 0 -> the first three full voxels on each axis.
    up = masks.upsample_mask(low, GridSpec((2, 2, 2), (1.0, 1.0, 1.0)), GridSpec((4, 4, 4), (1.0, 1.0, 1.0)))
    assert torch.equal(up, cube((4, 4, 4), 0, 2))


def test_resample_keeps_dense_voxels_dilated_and_zeroes_the_rest() -> None:
    spec = GridSpec((5, 5, 5), (1.0, 1.0, 1.0))
    values = torch.zeros(GRID_CHANNELS, 5, 5, 5)
    values[:, 2, 2, 2] = 10.0
    values[:, 0, 0, 0] = 3.0  # below the density threshold 5: dropped
    occupancy = values[0] > 0
    resampled = resample(SparseGrid.from_dense(spec, values, occupancy), spec, density_threshold=5.0, dilation=1)
    kept = resampled.to_dense()
    assert torch.equal(resampled.occupancy, cube((5, 5, 5), 1, 3))
    assert float(kept[:, 0, 0, 0].abs().sum()) == 0.0 and float(kept[0, 2, 2, 2]) == 10.0
    assert float(kept[:, 1:4, 1:4, 1:4].abs().sum()) == 28 * 10.0  # the dilated neighbours were empty: zeros


# ----------------------------------------------------------------------------------------------- delta codec


def random_grid(generator: torch.Generator, shape: tuple[int, int, int] = (6, 7, 8), fill: float = 0.5):
    occupancy = torch.rand(shape, generator=generator) < fill
    values = torch.randn(GRID_CHANNELS, *shape, generator=generator) * occupancy
    return values, occupancy


def sparse(values: torch.Tensor, occupancy: torch.Tensor) -> torch.Tensor:
    """The occupied voxels' values in flat (z, y, x) order: a sparse grid's rows, as the codec takes them."""
    return values.reshape(values.shape[0], -1)[:, occupancy.reshape(-1)].T.contiguous()


def dense(data: torch.Tensor, occupancy: torch.Tensor) -> torch.Tensor:
    values = torch.zeros(data.shape[1], occupancy.numel(), dtype=data.dtype)
    values[:, occupancy.reshape(-1)] = data.T
    return values.reshape(-1, *occupancy.shape)


def encode_dense_grid(values: torch.Tensor, occupancy: torch.Tensor):
    record, (data, decoded_occupancy) = encode_grid(sparse(values, occupancy), occupancy)
    assert torch.equal(decoded_occupancy, occupancy)
    return record, dense(data, occupancy)


def encode_dense_delta(previous, previous_occupancy, current, occupancy, threshold):
    record, (data, decoded_occupancy) = encode_delta(
        sparse(previous, previous_occupancy), previous_occupancy, sparse(current, occupancy), occupancy, threshold
    )
    assert torch.equal(decoded_occupancy, occupancy)
    return record, dense(data, occupancy)


def apply_dense_delta(previous, previous_occupancy, delta):
    data, occupancy = apply_delta(sparse(previous, previous_occupancy), previous_occupancy, delta)
    return dense(data, occupancy), occupancy


def test_delta_encode_then_decode_is_exact_and_reverts_small_changes(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(1)
    previous, previous_occupancy = random_grid(generator)
    _, previous = encode_dense_grid(previous, previous_occupancy)  # frame 0 as the decoder has it (fp16 values)
    occupancy = previous_occupancy.clone()
    occupancy[0] = ~occupancy[0]  # voxels added and removed
    current = previous.clone()
    current[:, ~previous_occupancy & occupancy] = torch.randn(
        GRID_CHANNELS, int((~previous_occupancy & occupancy).sum()), generator=generator
    )
    kept = previous_occupancy & occupancy
    big = kept.clone()
    big[:3] = False  # z < 3: small changes, reverted; z >= 3: SH moved by 0.1 on each of 27 channels = 2.7 > 1.0
    current[1:, big] += 0.1
    small = kept & ~big
    current[1:, small] += 0.01  # sum |dSH| = 0.27 < 1.0
    current[0, kept] += 3.0  # density alone never triggers a save
    current = current * occupancy
    delta, encoder_grid = encode_dense_delta(previous, previous_occupancy, current, occupancy, 1.0)

    assert delta.num_added == int((~previous_occupancy & occupancy).sum())
    assert delta.num_changed == int(big.sum())
    assert delta.occupancy_bits.size == math.ceil(occupancy.numel() / 8)
    assert delta.changed_bits.size == math.ceil(int(kept.sum()) / 8)
    assert delta.added_values.dtype == np.float16 and delta.changed_values.dtype == np.float16
    decoded, decoded_occupancy = apply_dense_delta(previous, previous_occupancy, through_disk(delta, tmp_path))
    assert torch.equal(decoded_occupancy, occupancy)
    assert torch.equal(decoded, encoder_grid)  # bit-exact
    assert torch.equal(decoded[:, small], previous[:, small])  # reverted, density change included
    assert torch.equal(decoded[:, big], current[:, big].half().float())
    assert not decoded[:, ~occupancy].any()


def through_disk(record, folder: Path):
    """The record as a decoder gets it: written as npz bytes, read back."""
    path = folder / "record.npz"
    path.write_bytes(to_bytes(record))
    return read_record(path)


def test_store_replays_a_sequence_bit_exactly_with_and_without_keyframes(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(2)
    values, occupancy = random_grid(generator)
    store, keyed = FrameStore(tmp_path / "plain"), FrameStore(tmp_path / "keyed")
    base, values = encode_dense_grid(values, occupancy)
    store.write_frame(0, base)
    keyed.write_frame(0, base)
    truth = [(values, occupancy)]
    for frame in range(1, 7):
        new_occupancy = masks.dilate(occupancy, 1) & (torch.rand(occupancy.shape, generator=generator) < 0.7)
        new_values = (values + 0.3 * torch.randn(values.shape, generator=generator)) * new_occupancy
        delta, values = encode_dense_delta(values, occupancy, new_values, new_occupancy, 2.0)
        occupancy = new_occupancy
        store.write_frame(frame, delta)
        keyed.write_frame(frame, delta)
        if frame % 3 == 0:
            keyed.write_keyframe(frame, encode_dense_grid(values, occupancy)[0])
        truth.append((values, occupancy))
    assert store.num_finished() == 7 and keyed.keyframes() == [3, 6]
    plain_player, keyed_player = GridPlayer(store), GridPlayer(keyed)
    for frame in (6, 2, 0, 5, 5, 1, 4):  # random access, backwards included
        for player in (plain_player, keyed_player):
            data, stored_occupancy = player.grid(frame)
            assert torch.equal(stored_occupancy, truth[frame][1])
            assert torch.equal(dense(data, stored_occupancy), truth[frame][0])
    fresh = GridPlayer(keyed)
    fresh.grid(5)
    assert fresh.deltas_applied == 2  # from keyframe 3, not from frame 0
    assert isinstance(read_record(store.frame_path(0)), type(base))
    torch.testing.assert_close(dense(*decode_grid(base)), truth[0][0])


def test_an_interrupted_write_leaves_the_finished_frames_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = torch.Generator().manual_seed(3)
    values, occupancy = random_grid(generator)
    store = FrameStore(tmp_path)
    base, values = encode_dense_grid(values, occupancy)
    store.write_frame(0, base)
    delta, _ = encode_dense_delta(values, occupancy, values * 0.5, occupancy, 0.1)
    store.write_frame(1, delta)
    before = [store.frame_path(t).read_bytes() for t in range(2)]

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while renaming")

    import nerfstudio_methods.atomic as atomic_module

    monkeypatch.setattr(atomic_module.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write_frame(2, delta)
    monkeypatch.undo()
    assert store.num_finished() == 2 and not store.frame_path(2).exists()
    assert [store.frame_path(t).read_bytes() for t in range(2)] == before
    assert torch.equal(dense(*GridPlayer(store).grid(1)), apply_dense_delta(values, occupancy, delta)[0])
    store.frame_path(1).write_bytes(before[1][:100])  # a damaged file (not our writes) is reported by name
    from dataparsers._common import DatasetFormatError

    with pytest.raises(DatasetFormatError, match="frame_00001.npz: unreadable StreamRF frame"):
        GridPlayer(store).grid(1)


# ----------------------------------------------------------------------------------------------- optimiser


def test_masked_rmsprop_first_step_is_lr_sign_and_respects_the_mask() -> None:
    values = torch.zeros(GRID_CHANNELS, 2, 2, 2)
    grad = torch.zeros_like(values)
    grad[:, 0, 0, 0] = torch.linspace(-2, 2, GRID_CHANNELS) + 0.01  # no zero entries
    grad[:, 1, 1, 1] = 1.0  # touched but masked out
    mask = torch.ones(2, 2, 2, dtype=torch.bool)
    mask[1, 1, 1] = False
    optimizer = MaskedRMSprop(tuple(values.shape), "cpu")
    assert optimizer.step(values, grad, mask, lr_density=30.0, lr_sh=0.01) == 1
    torch.testing.assert_close(values[0, 0, 0, 0], -30.0 * torch.sign(grad[0, 0, 0, 0]), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(values[1:, 0, 0, 0], -0.01 * torch.sign(grad[1:, 0, 0, 0]), rtol=1e-5, atol=1e-7)
    assert not values[:, 1, 1, 1].any() and not values[:, 0, 1, 0].any()
    # second step: rms = 0.95 g1^2 + 0.05 g2^2
    g1, g2 = grad[3, 0, 0, 0].item(), 0.5
    before = values[3, 0, 0, 0].item()
    grad2 = torch.zeros_like(values)
    grad2[3, 0, 0, 0] = g2
    optimizer.step(values, grad2, mask, 30.0, 0.01)
    expected = before - 0.01 * g2 / (math.sqrt(0.95 * g1 * g1 + 0.05 * g2 * g2) + 1e-8)
    assert values[3, 0, 0, 0].item() == pytest.approx(expected, rel=1e-6)


def test_exponential_lr_schedule() -> None:
    assert exponential_lr(0, 1e-2, 3e-3, 300) == pytest.approx(1e-2)
    assert exponential_lr(300, 1e-2, 3e-3, 300) == pytest.approx(3e-3)
    assert exponential_lr(150, 1e-2, 1e-4, 300) == pytest.approx(1e-3)  # log-linear midpoint
    assert exponential_lr(0, 30, 0.05, 250000, 15000, 1e-2) == pytest.approx(0.3)  # warm-up starts at 1e-2 x
    assert exponential_lr(10**6, 1.0, 1.0, 0) == 1.0


# ----------------------------------------------------------------------------------------------- NDC and rendering


def test_ndc_rays_follow_the_projection_of_world_points() -> None:
    coeffs = (1.5, 2.0)
    origins = torch.tensor([[0.0, 0.0, 0.0], [0.1, -0.2, 0.05]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.2, 0.1, -1.0]])
    ndc_o, ndc_d, valid = ndc_rays(origins, directions, coeffs)
    assert valid.all()
    torch.testing.assert_close(ndc_o[0], torch.tensor([0.0, 0.0, -1.0]))
    torch.testing.assert_close(ndc_d[0], torch.tensor([0.0, 0.0, 1.0]))
    for depth in (1.5, 3.0, 20.0):  # world points on ray 1 project onto its NDC ray
        point = origins[1] + directions[1] * depth
        projected = torch.tensor([-coeffs[0] * point[0] / point[2], -coeffs[1] * point[1] / point[2], 1 + 2 / point[2]])
        offset = projected - ndc_o[1]
        torch.testing.assert_close(offset / offset.norm(), ndc_d[1], atol=1e-5, rtol=0)
    _, _, backwards = ndc_rays(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]]), coeffs)
    assert not backwards.any()


def test_rendering_a_uniform_grid_matches_closed_form_volume_rendering() -> None:
    spec = GridSpec((8, 8, 16), (1.0, 1.0, 1.0))
    sigma, red_dc = 1.5, 1.0
    values = torch.zeros(GRID_CHANNELS, *spec.shape)
    values[0] = sigma
    values[1] = red_dc
    occupancy = torch.ones(spec.shape, dtype=torch.bool)
    origins = torch.tensor([[0.0, 0.0, -1.0], [0.3, -0.2, -1.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    out = render_rays_torch(
        DenseGrid(spec, values, occupancy), origins, directions, torch.ones(2, dtype=torch.bool), 0.5, 0.5, 0.0
    )
    sparse_out = render_rays_torch(
        SparseGrid.from_dense(spec, values, occupancy), origins, directions, torch.ones(2, dtype=torch.bool), 0.5, 0.5
    )
    torch.testing.assert_close(sparse_out["rgb"], out["rgb"])
    # along z the box is 2 long; steps of 0.5 voxel = 1/16 tile it exactly
    opacity = 1 - math.exp(-sigma * 2.0)
    colour = torch.tensor([C0 * red_dc + 0.5, 0.5, 0.5])
    expected = opacity * colour + (1 - opacity) * 0.5
    torch.testing.assert_close(out["rgb"], expected.expand(2, 3), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["accumulation"][:, 0], torch.full((2,), opacity), rtol=1e-5, atol=1e-5)
    assert out["num_samples"].tolist() == [32.0, 32.0]
    # early stop: once transmittance < 0.5 the rest of the ray shows background
    stopped = render_rays_torch(
        SparseGrid.from_dense(spec, values, occupancy),
        origins[:1],
        directions[:1],
        torch.ones(1, dtype=torch.bool),
        0.5,
        0.5,
        0.5,
    )
    dt = 1 / 16
    kept = math.ceil(math.log(0.5) / (-sigma * dt))  # samples whose transmittance before them is >= 0.5
    torch.testing.assert_close(
        stopped["accumulation"][0, 0], torch.tensor(1 - math.exp(-sigma * dt * kept)), rtol=1e-5, atol=1e-6
    )


def test_empty_space_skipping_changes_nothing() -> None:
    generator = torch.Generator().manual_seed(4)
    spec = GridSpec((8, 6, 10), (1.2, 1.1, 1.0))
    occupancy = torch.zeros(spec.shape, dtype=torch.bool)
    occupancy[3:7, 2:5, 2:6] = True
    values = torch.randn(GRID_CHANNELS, *spec.shape, generator=generator).abs() * occupancy
    origins = torch.cat([torch.rand(64, 2, generator=generator) * 1.6 - 0.8, -torch.ones(64, 1)], 1)
    directions = torch.cat([torch.randn(64, 2, generator=generator) * 0.2, torch.ones(64, 1)], 1)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    valid = torch.ones(64, dtype=torch.bool)
    skipped = render_rays_torch(DenseGrid(spec, values, occupancy), origins, directions, valid, stop_thresh=0.0)
    everything = DenseGrid(spec, values, torch.ones_like(occupancy))
    unskipped = render_rays_torch(everything, origins, directions, valid, stop_thresh=0.0)
    torch.testing.assert_close(skipped["rgb"], unskipped["rgb"])
    assert skipped["num_samples"].sum() < unskipped["num_samples"].sum()
    sparse_out = render_rays_torch(
        SparseGrid.from_dense(spec, values, occupancy), origins, directions, valid, 0.5, 0.5, 0.0
    )
    torch.testing.assert_close(sparse_out["rgb"], skipped["rgb"])
    assert torch.equal(sparse_out["num_samples"], skipped["num_samples"])
    t_near, t_far = ray_box(origins, directions, spec.radius)
    assert (t_near == 0).all() and (t_far > 1.5).all()


def test_ray_groups_cover_the_rays_in_order_within_the_sample_limit() -> None:
    steps = torch.tensor([3, 0, 4, 9, 2, 2, 0, 1])
    # by hand, limit 5: [3, 0] (3; + 4 would be 7), [4] (+ 9 would be 13), [9] alone (over the limit), [2, 2, 0, 1]
    assert ray_groups(steps, 5) == [(0, 2), (2, 3), (3, 4), (4, 8)]
    assert ray_groups(steps, 100) == [(0, 8)]
    assert ray_groups(torch.zeros(0, dtype=torch.long), 5) == [(0, 0)]


def test_marching_in_ray_groups_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering 64 rays with a 40-sample march chunk (many groups) gives the same colours, depths and gradients as
    one group."""
    from nerfstudio_methods.streamrf import render
    from nerfstudio_methods.streamrf.state import SparseGridState

    generator = torch.Generator().manual_seed(5)
    spec = GridSpec((8, 6, 10), (1.2, 1.1, 1.0))
    occupancy = torch.rand(spec.shape, generator=generator) < 0.4
    values = torch.randn(GRID_CHANNELS, *spec.shape, generator=generator).abs() * occupancy
    origins = torch.cat([torch.rand(64, 2, generator=generator) * 1.6 - 0.8, -torch.ones(64, 1)], 1)
    directions = torch.cat([torch.randn(64, 2, generator=generator) * 0.2, torch.ones(64, 1)], 1)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    valid = torch.rand(64, generator=generator) < 0.9

    def render_and_gradient() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        state = SparseGridState(SparseGrid.from_dense(spec, values, occupancy))
        out = render_rays_torch(state, origins, directions, valid, 0.5, 0.5, 0.0)
        (out["rgb"].square().sum() + out["depth"].sum()).backward()
        gradient = torch.zeros_like(state.values)
        for rows, leaf in state.pending:
            gradient.index_add_(0, rows, leaf.grad)
        return out, gradient

    whole, whole_gradient = render_and_gradient()
    monkeypatch.setattr(render, "MARCH_CHUNK", 40)
    assert len(ray_groups(whole["num_samples"].long(), 40)) > 5  # the chunked run really is split
    grouped, grouped_gradient = render_and_gradient()
    for key in ("rgb", "depth", "accumulation", "num_samples"):
        torch.testing.assert_close(grouped[key], whole[key])
    torch.testing.assert_close(grouped_gradient, whole_gradient)


# ----------------------------------------------------------------------------------------------- the model's frame loop


def make_model(**overrides):
    from nerfstudio.data.scene_box import SceneBox

    from nerfstudio_methods import compat
    from nerfstudio_methods.streamrf.model import StreamRFModelConfig

    compat.install()  # offline LPIPS, as when nerfstudio loads the plugin

    options = {"frame0_resolutions": ((8, 8, 8),), "density_threshold": 5.0, "dilate_before": 1, "dilate_after": 1}
    config = StreamRFModelConfig(**{**options, **overrides})
    metadata = {"ndc_intrinsics": torch.tensor([20.0, 20.0, 32.0, 32.0]), "num_frames": 5}
    return config.setup(scene_box=SceneBox(torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=1, metadata=metadata)


def test_times_select_frames_and_rays_without_times_use_the_default() -> None:
    model = make_model(default_time=0.5)
    frames = model.frame_of_times(torch.tensor([0.0, 0.12, 0.13, 0.99, 1.0, 7.0]), 6)
    assert frames.tolist() == [0, 0, 1, 4, 4, 4]  # round(t * 4), clamped
    assert model.frame_of_times(None, 3).tolist() == [2, 2, 2]


@pytest.mark.parametrize("storage", ["sparse", "dense"])
def test_a_later_frame_trains_only_band_and_pilot_guided_voxels_and_replays_exactly(storage: str) -> None:
    from nerfstudio_methods.streamrf.model import Phase
    from nerfstudio_methods.streamrf.state import make_state

    model = make_model(grid_storage=storage)
    model.start_phase(Phase.FRAME0, 0)
    values = torch.zeros(GRID_CHANNELS, 8, 8, 8)
    values[0, 2:5, 2:5, 2:5] = 10.0  # a dense 3^3 block (5^3 occupied after dilation)
    occupancy = values[0] > 0
    model.full = make_state(SparseGrid.from_dense(model.full_spec, values, occupancy), storage)  # type: ignore[arg-type]
    base = model.finish_phase()
    model.start_phase(Phase.PILOT0, 0)
    model.finish_phase()
    model.mark_frame_finished(0)
    # the pilot "sees" the voxel at pilot (1, 1, 1) change colour
    model.start_phase(Phase.PILOT, 1)
    assert model.pilot is not None
    pilot = model.pilot.sparse()
    changed_pilot = pilot.to_dense()
    changed_pilot[1:, 1, 1, 1] += 1.0
    model.pilot.set(SparseGrid.from_dense(pilot.spec, changed_pilot, pilot.occupancy))
    model.finish_phase()
    assert model.guidance is not None and model.guidance.changed[1, 1, 1] and int(model.guidance.changed.sum()) == 1
    model.start_phase(Phase.FULL, 1)
    assert model.previous is not None and model.update_mask is not None
    previous_values, previous_occupancy = model.previous
    assert previous_values.dtype == torch.float16  # frame 0 as decoded (fp16 values): kept in fp16, exactly
    changed_full = masks.upsample_mask(model.guidance.changed, model.pilot_spec, model.full_spec)
    expected_mask = masks.narrow_band(previous_occupancy, 1) & masks.student_mask(changed_full)
    assert torch.equal(model.update_mask, expected_mask) and expected_mask.any()
    full = model.full
    assert full is not None
    full.values.grad = torch.ones_like(full.values)
    model.optimizer_step()
    moved = (full.sparse().to_dense() != dense(previous_values.float(), previous_occupancy)).any(0)
    assert torch.equal(moved, expected_mask & full.occupancy)  # nothing outside band AND pilot guidance
    delta = model.finish_phase()
    replayed, replayed_occupancy = apply_delta(*decode_grid(base), delta)  # type: ignore[arg-type]
    assert torch.equal(replayed, full.occupied_values()) and torch.equal(replayed_occupancy, full.occupancy)


# ----------------------------------------------------------------------------------------------- sparse grid


def random_sparse_scene(seed: int, spec: GridSpec, fill: float = 0.4):
    generator = torch.Generator().manual_seed(seed)
    occupancy = torch.rand(spec.shape, generator=generator) < fill
    values = torch.randn(GRID_CHANNELS, *spec.shape, generator=generator, dtype=torch.float64) * occupancy
    return values, occupancy, generator


def test_sparse_lookup_matches_brute_force_and_the_dense_grid() -> None:
    spec = GridSpec((6, 5, 4), (1.2, 1.0, 1.0))
    values, occupancy, generator = random_sparse_scene(5, spec)
    grid = SparseGrid.from_dense(spec, values, occupancy)
    assert grid.num_occupied == int(occupancy.sum())
    assert torch.equal(grid.links >= 0, occupancy)
    assert grid.links.reshape(-1)[occupancy.reshape(-1)].tolist() == list(range(grid.num_occupied))  # flat order
    coords = torch.rand(300, 3, generator=generator, dtype=torch.float64) * 2.4 - 1.2  # beyond the outer centres too
    coords[:2] = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    expected = brute_force_trilinear(values, coords)  # zeros outside the occupancy are in ``values``
    torch.testing.assert_close(grid.query(coords), expected)
    torch.testing.assert_close(DenseGrid(spec, values, occupancy).query(coords), expected)
    index, looked_up = grid.query_occupied(coords)
    dense_index, dense_looked_up = DenseGrid(spec, values, occupancy).query_occupied(coords)
    assert torch.equal(index, dense_index)
    torch.testing.assert_close(looked_up, dense_looked_up)
    skipped = torch.ones(coords.shape[0], dtype=torch.bool)
    skipped[index] = False
    assert not expected[skipped].any()  # skipped points read exact zeros
    assert torch.equal(grid.to_dense(), values)


def test_a_grid_of_one_voxel_along_an_axis_reads_that_voxel() -> None:
    spec = GridSpec((3, 1, 2), (1.0, 1.0, 1.0))
    values = torch.arange(6, dtype=torch.float64).reshape(1, 2, 1, 3)
    occupancy = torch.ones(spec.shape, dtype=torch.bool)
    coords = torch.tensor([[0.0, 0.7, 0.0], [-0.9, -0.3, 0.9]], dtype=torch.float64)
    torch.testing.assert_close(SparseGrid.from_dense(spec, values, occupancy).query(coords), trilinear(values, coords))


def test_sparse_gradients_equal_the_dense_gradients_on_occupied_voxels() -> None:
    from nerfstudio_methods.streamrf.state import DenseGridState, SparseGridState

    spec = GridSpec((7, 6, 5), (1.0, 1.0, 1.0))
    values, occupancy, generator = random_sparse_scene(6, spec)
    values = values.float()
    grid = SparseGrid.from_dense(spec, values, occupancy)
    coords = torch.rand(40, 3, generator=generator) * 2 - 1
    weights = torch.randn(40, GRID_CHANNELS, generator=generator)
    sparse_state, dense_state = SparseGridState(grid), DenseGridState(grid)
    (sparse_state.query(coords) * weights).sum().backward()
    (dense_state.query(coords) * weights).sum().backward()
    assert dense_state.values.grad is not None
    dense_grad = dense_state.values.grad.reshape(GRID_CHANNELS, -1)[:, occupancy.reshape(-1)].T
    ((rows, leaf),) = sparse_state.pending
    assert leaf.grad is not None
    sparse_grad = torch.zeros_like(dense_grad)
    sparse_grad[rows] = leaf.grad
    torch.testing.assert_close(sparse_grad, dense_grad, rtol=1e-5, atol=1e-6)
    # the leaf holds only the rows the points read (with a non-zero weight or not), never the whole grid
    touched = torch.zeros(grid.num_occupied, dtype=torch.bool)
    corner_rows, _ = grid.corner_rows(coords)
    touched[corner_rows[corner_rows >= 0]] = True
    assert torch.equal(rows, torch.nonzero(touched)[:, 0]) and rows.numel() < grid.num_occupied


@pytest.mark.parametrize("with_mask", [False, True])
def test_a_sparse_training_step_equals_the_dense_step_on_occupied_voxels(with_mask: bool) -> None:
    from nerfstudio_methods.streamrf.state import DenseGridState, SparseGridState

    spec = GridSpec((8, 7, 6), (1.0, 1.0, 1.0))
    values, occupancy, generator = random_sparse_scene(7, spec, fill=0.5)
    grid = SparseGrid.from_dense(spec, values.float(), occupancy)
    mask = (torch.rand(spec.shape, generator=generator) < 0.6) if with_mask else None
    states = (SparseGridState(grid), DenseGridState(grid))
    results = []
    for state in states:
        for step in range(3):  # the second and third steps exercise the RMS state
            step_generator = torch.Generator().manual_seed(100 + step)
            coords = torch.rand(400, 3, generator=step_generator) * 2 - 1
            target = torch.randn(400, GRID_CHANNELS, generator=step_generator)
            torch.manual_seed(step)  # the TV's random slabs
            loss = ((state.query(coords) - target) ** 2).mean()
            loss = (
                loss + 0.1 * state.total_variation(slice(0, 1), 0.2) + 0.1 * state.total_variation(slice(1, None), 0.2)
            )
            loss.backward()
            updated = state.step(state.allowed(mask), lr_density=1.0, lr_sh=0.01)
            assert updated > 0
        results.append(state.sparse().to_dense())
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)
    moved = (results[0] != values.float()).any(0)
    assert not moved[~occupancy].any()
    if mask is not None:
        assert not moved[~mask].any() and moved[mask & occupancy].any()


def test_sparse_total_variation_equals_the_dense_one() -> None:
    from nerfstudio_methods.streamrf.state import DenseGridState, SparseGridState

    spec = GridSpec((6, 6, 6), (1.0, 1.0, 1.0))
    values, occupancy, _ = random_sparse_scene(8, spec)
    grid = SparseGrid.from_dense(spec, values.float(), occupancy)
    for channels in (slice(0, 1), slice(1, None)):
        torch.manual_seed(3)
        sparse_tv = SparseGridState(grid).total_variation(channels, 0.3)
        torch.manual_seed(3)
        dense_tv = DenseGridState(grid).total_variation(channels, 0.3)
        # by hand on the same slab: forward differences of the dense grid, clamped at the border
        torch.manual_seed(3)
        total = spec.num_voxels
        count = int(total * 0.3)
        start = int(torch.randint(0, total - count + 1, (1,)))
        dense_values = values.float()[channels]
        expected = 0.0
        for flat in range(start, start + count):
            z, y, x = flat // 36, (flat // 6) % 6, flat % 6
            centre = dense_values[:, z, y, x]
            dx = (dense_values[:, z, y, min(x + 1, 5)] - centre) * (6 / 256)
            dy = (dense_values[:, z, min(y + 1, 5), x] - centre) * (6 / 256)
            dz = (dense_values[:, min(z + 1, 5), y, x] - centre) * (6 / 256)
            expected += float(torch.sqrt(dx * dx + dy * dy + dz * dz + 1e-12).sum())
        torch.testing.assert_close(sparse_tv, dense_tv)
        assert float(sparse_tv) == pytest.approx(expected / count, rel=1e-5)
    empty = SparseGridState(SparseGrid(spec, torch.zeros(0, GRID_CHANNELS), torch.zeros(spec.shape, dtype=torch.bool)))
    tv = empty.total_variation(slice(1, None), 0.3)  # a slab of empty voxels: sqrt(1e-12) per cell and channel
    tv.backward()
    assert float(tv) == pytest.approx(27 * 1e-6)


def test_dilation_and_mask_upsampling_match_the_float_references() -> None:
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(9)
    for shape in ((7, 9, 11), (1, 5, 6), (4, 4, 4)):
        mask = torch.rand(shape, generator=generator) < 0.08
        reference = mask[None, None].float()
        for times in (1, 2, 3):
            reference = F.max_pool3d(reference, kernel_size=3, stride=1, padding=1)
            assert torch.equal(masks.dilate(mask, times), reference[0, 0] > 0.5)
    for source_res, target_res in (((4, 3, 2), (8, 6, 4)), ((5, 4, 3), (10, 8, 6)), ((3, 3, 2), (7, 5, 4))):
        source, target = GridSpec(source_res, (1.0, 1.0, 1.0)), GridSpec(target_res, (1.0, 1.0, 1.0))
        mask = torch.rand(source.shape, generator=generator) < 0.3
        centres = target.voxel_centres().reshape(-1, 3).double()
        reference = (trilinear(mask[None].double(), centres)[:, 0] > 0).reshape(target.shape)
        assert torch.equal(masks.upsample_mask(mask, source, target), reference)


def test_sparse_resampling_matches_dense_trilinear_resampling() -> None:
    source = GridSpec((6, 5, 4), (1.0, 1.0, 1.0))
    values, occupancy, _ = random_sparse_scene(10, source, fill=0.6)
    values = values.float() * 6.0
    grid = SparseGrid.from_dense(source, values, occupancy)
    for target in (source.scaled(2.0), source.scaled(0.5), source):
        resampled = resample(grid, target, density_threshold=5.0, dilation=1)
        if target == source:
            interpolated = values
        else:
            centres = target.voxel_centres().reshape(-1, 3)
            interpolated = trilinear(values, centres).T.reshape(GRID_CHANNELS, *target.shape)
        expected_occupancy = masks.dilate(interpolated[0] >= 5.0, 1)
        assert torch.equal(resampled.occupancy, expected_occupancy)
        torch.testing.assert_close(resampled.to_dense(), interpolated * expected_occupancy, rtol=1e-5, atol=1e-5)


def test_sparsify_and_prune_drop_weak_new_voxels_as_the_dense_grid_does() -> None:
    from nerfstudio_methods.streamrf.state import make_state

    results = {}
    for storage in ("sparse", "dense"):
        model = make_model(grid_storage=storage)
        spec = model.full_spec
        values = torch.zeros(GRID_CHANNELS, *spec.shape)
        values[0, 3:5, 3:5, 3:5] = 10.0
        values[1:, 3:5, 3:5, 3:5] = 0.5
        before = values[0] > 0
        model.previous = (SparseGrid.from_dense(spec, values, before).data, before)
        values[0, 3:5, 3:5, 6] = 8.0  # new dense voxels: kept; their dilated neighbours have SH 0 -> pruned...
        values[1:, 3:5, 3:5, 6] = 0.05  # ...and so are they: sum |SH| = 27 * 0.05 = 1.35 >= 0.2 keeps them
        values[0, 0, 0, 0] = 8.0  # a new voxel with no colour: pruned (sum |SH| = 0 < 0.2)
        occupancy = values[0] > 0
        state = make_state(SparseGrid.from_dense(spec, values, occupancy), storage)  # type: ignore[arg-type]
        model._sparsify_and_prune(state, 1, 0.2)
        results[storage] = (state.sparse().to_dense(), state.occupancy)
    assert torch.equal(results["sparse"][1], results["dense"][1])
    assert torch.equal(results["sparse"][0], results["dense"][0])
    kept = results["sparse"][1]
    dilated = masks.dilate(values[0] >= 5.0, 1)
    weak = dilated & ~before & (values[1:].abs().sum(0) < 0.2)
    assert torch.equal(kept, dilated & ~weak)
    assert (
        not kept[0, 0, 0] and kept[3, 3, 6] and kept[4, 4, 4] and not kept[2, 2, 2]
    )  # a new neighbour without colour: pruned


# ----------------------------------------------------------------------------------------------- nerfacc sampler


def emulated_nerfacc_sampling(estimator, rays_o, rays_d, sigma_fn, render_step_size, near_plane, far_plane, t_min,
                              t_max, early_stop_eps, alpha_thre, stratified):  # fmt: skip
    """nerfacc 0.5's ``OccGridEstimator.sampling`` as its CUDA kernel does it, one ray at a time on the CPU: march
    ``render_step_size`` from max(near, t_min, box entry); keep intervals whose midpoint (before the box exit) lies in
    an occupied cell of ``binaries[0, x, y, z]``; drop those after the transmittance fell below ``early_stop_eps``."""
    binaries = estimator.binaries[0]
    size = torch.tensor(binaries.shape, dtype=rays_o.dtype)
    starts, ends, rays = [], [], []
    for ray in range(rays_o.shape[0]):
        o, d = rays_o[ray], rays_d[ray]
        safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
        t1, t2 = (0 - o) / safe, (size - o) / safe
        near = max(near_plane, float(t_min[ray]), float(torch.minimum(t1, t2).max()))
        far = min(far_plane, float(t_max[ray]), float(torch.maximum(t1, t2).min()))
        t = near
        while t + render_step_size / 2 < far:
            cell = (
                (o + (t + render_step_size / 2) * d)
                .floor()
                .long()
                .clamp(torch.zeros(3, dtype=torch.long), size.long() - 1)
            )
            if binaries[cell[0], cell[1], cell[2]]:
                starts.append(t), ends.append(t + render_step_size), rays.append(ray)
            t += render_step_size
    t_starts, t_ends, ray_indices = torch.tensor(starts), torch.tensor(ends), torch.tensor(rays, dtype=torch.long)
    weights = emulated_weights(t_starts, t_ends, sigma_fn(t_starts, t_ends, ray_indices), ray_indices, rays_o.shape[0])
    keep = weights[1] >= early_stop_eps
    return ray_indices[keep], t_starts[keep], t_ends[keep]


def emulated_weights(t_starts, t_ends, sigmas, ray_indices, n_rays):
    """``render_weight_from_density`` (weights, and the transmittance before each sample)."""
    optical = sigmas * (t_ends - t_starts)
    before = torch.zeros_like(optical)
    for ray in range(n_rays):
        index = torch.nonzero(ray_indices == ray)[:, 0]
        before[index] = torch.cumsum(optical[index], 0) - optical[index]
    transmittance = torch.exp(-before)
    return transmittance * (1 - torch.exp(-optical)), transmittance, None


def test_the_nerfacc_sampler_marches_the_torch_samples_on_an_anisotropic_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    """nerfacc's kernels need CUDA (scripts/streamrf_sampler_check.py runs them); here they are emulated on the CPU
    to check what our code around them does: index-space marching, per-ray stretch, occupancy grid and its axes."""
    import nerfacc

    from nerfstudio_methods.streamrf.render import NerfaccSampler

    spec = GridSpec((24, 20, 8), (1.05, 1.02, 1.0))
    centres = spec.voxel_centres() * torch.tensor(spec.radius)
    x, y, z = centres.unbind(-1)
    density = torch.where(((x - 0.2) ** 2 + y**2 + (z + 0.1) ** 2).sqrt() < 0.5, 30.0, 0.0)
    density = density + torch.where(z > 0.5, 12.0, 0.0)
    occupancy = masks.dilate(density >= 5.0, 1)
    values = torch.zeros(GRID_CHANNELS, *spec.shape)
    values[0] = density - 1.0
    for channel in range(3):
        values[1 + 9 * channel] = torch.sin(3 * centres[..., channel] + channel)
        values[2 + 9 * channel] = 0.5 * torch.cos(2 * centres[..., channel])
    grid = SparseGrid.from_dense(spec, values * occupancy, occupancy)
    generator = torch.Generator().manual_seed(11)
    count = 48
    origins = torch.cat([(torch.rand(count, 2, generator=generator) * 2 - 1) * 1.1, -torch.ones(count, 1)], 1)
    directions = torch.cat([torch.randn(count, 2, generator=generator) * 0.2, torch.ones(count, 1)], 1)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    valid = torch.ones(count, dtype=torch.bool)
    valid[0] = False
    sampler = NerfaccSampler(spec, "cpu")
    sampler.set_occupancy(grid.occupancy)
    assert torch.equal(sampler.estimator.binaries[0], masks.dilate(occupancy, 1).permute(2, 1, 0))
    monkeypatch.setattr(
        sampler.estimator, "sampling", lambda *a, **k: emulated_nerfacc_sampling(sampler.estimator, *a, **k)
    )
    monkeypatch.setattr(
        nerfacc,
        "render_weight_from_density",
        emulated_weights,
    )
    monkeypatch.setattr(nerfacc, "accumulate_along_rays", lambda w, v, ray_indices, n_rays: torch.zeros(
        n_rays, 1 if v is None else v.shape[1]).index_add_(0, ray_indices, w[:, None] * (1 if v is None else v)))  # fmt: skip
    for stop in (1e-7, 0.05):
        expected = render_rays_torch(grid, origins, directions, valid, 0.5, 0.5, stop)
        fast = sampler.render(grid, origins, directions, valid, 0.5, 0.5, stop)
        torch.testing.assert_close(fast["rgb"], expected["rgb"], rtol=0, atol=1e-4)
        torch.testing.assert_close(fast["accumulation"], expected["accumulation"], rtol=0, atol=1e-4)
        assert 0.2 < float(expected["accumulation"].mean()) < 0.99


def dense_composite(sigma, rgb, depth, dt, background, stop_thresh):
    """Plenoxels' compositing on a [rays, samples] layout, as a product of (1 - alpha): the reference."""
    alpha = 1.0 - torch.exp(-torch.relu(sigma) * dt)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha[:, :-1]], dim=1), dim=1)
    alpha = alpha * (transmittance >= stop_thresh)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha], dim=1), dim=1)
    weights = transmittance[:, :-1] * alpha
    accumulation = weights.sum(-1, keepdim=True)
    return {
        "rgb": (weights[..., None] * rgb).sum(1) + transmittance[:, -1:] * background,
        "accumulation": accumulation,
        "depth": (weights * depth).sum(-1, keepdim=True) / accumulation.clamp_min(1e-6),
    }


@pytest.mark.parametrize("stop_thresh", [0.0, 0.3])
def test_packed_compositing_matches_the_dense_product_form(stop_thresh: float) -> None:
    generator = torch.Generator().manual_seed(12)
    rays, samples = 7, 9
    sigma = torch.rand(rays, samples, generator=generator, dtype=torch.float64) * 4
    sigma[torch.rand(rays, samples, generator=generator) < 0.4] = 0.0  # skipped samples: no effect
    sigma[3] = 0.0  # a ray through empty space
    rgb = torch.rand(rays, samples, 3, generator=generator, dtype=torch.float64)
    depth = torch.rand(rays, samples, generator=generator, dtype=torch.float64) * 5
    dt = torch.rand(rays, 1, generator=generator, dtype=torch.float64).expand(rays, samples) * 0.5
    expected = dense_composite(sigma, rgb, depth, dt, 0.5, stop_thresh)
    kept = sigma.reshape(-1) > 0
    ray = torch.arange(rays).repeat_interleave(samples)[kept]
    packed = composite_packed(
        (sigma * dt).reshape(-1)[kept], rgb.reshape(-1, 3)[kept], depth.reshape(-1)[kept], ray, rays, 0.5, stop_thresh
    )
    for key in ("rgb", "accumulation", "depth"):
        torch.testing.assert_close(packed[key], expected[key])
    assert float(packed["rgb"][3].sub(0.5).abs().max()) == 0.0


# ----------------------------------------------------------------------------------------------- unfinished runs


def test_a_schedule_that_would_store_untrained_frames_is_refused() -> None:
    from dataparsers._common import SettingError
    from nerfstudio_methods.streamrf.model import StreamRFModelConfig
    from nerfstudio_methods.streamrf.pipeline import check_schedule

    with pytest.raises(SettingError, match=r"--pipeline.model.steps-per-frame: 0 step\(s\) would store frames"):
        check_schedule(6, StreamRFModelConfig(steps_per_frame=0))
    with pytest.raises(SettingError, match=r"--pipeline.model.pilot-steps: -1 step"):
        check_schedule(6, StreamRFModelConfig(pilot_steps=-1))
    with pytest.raises(SettingError, match=r"--pipeline.model.frame0-steps"):
        check_schedule(1, StreamRFModelConfig(frame0_steps=0))
    check_schedule(1, StreamRFModelConfig(steps_per_frame=0))  # a one-frame video has no later frame to train
    check_schedule(6, StreamRFModelConfig(use_pilot=False, pilot_steps=0, pilot_frame0_steps=0))


def test_frames_stored_after_a_number_of_steps_counted_by_hand() -> None:
    from nerfstudio_methods.streamrf.model import StreamRFModelConfig
    from nerfstudio_methods.streamrf.pipeline import build_schedule, frames_stored_after

    config = StreamRFModelConfig(frame0_steps=10, pilot_frame0_steps=4, pilot_steps=2, steps_per_frame=3)
    schedule = build_schedule(4, config)  # frame 0: 10 + 4; frames 1-3: 2 + 3 each; 29 steps in all
    assert [frames_stored_after(schedule, 0, steps) for steps in (0, 13, 14, 18, 19, 28, 29, 1000)] == [
        0, 0, 1, 1, 2, 3, 4, 4,
    ]  # fmt: skip
    # resumed at frame 2's pilot phase (position 4): frames 0 and 1 are stored already
    assert schedule[4].frame == 2
    assert [frames_stored_after(schedule, 4, steps) for steps in (0, 4, 5, 10)] == [2, 2, 3, 4]


def test_a_frame_never_trained_renders_the_background_not_the_newest_frame(tmp_path: Path) -> None:
    from nerfstudio.cameras.rays import RayBundle

    from nerfstudio_methods.streamrf.model import Phase
    from nerfstudio_methods.streamrf.state import make_state
    from nerfstudio_methods.streamrf.store import FrameStore, GridPlayer

    trained = make_model()
    trained.start_phase(Phase.FRAME0, 0)
    values = torch.zeros(GRID_CHANNELS, 8, 8, 8)
    values[0] = 50.0  # dense everywhere: every ray is absorbed, none sees the background
    values[1:] = -3.0  # dark colour (SH DC well below the background's brightness)
    trained.full = make_state(SparseGrid.from_dense(trained.full_spec, values, values[0] > 0), "sparse")  # type: ignore[arg-type]
    store = FrameStore(tmp_path / "frames")
    store.write_frame(0, trained.finish_phase())  # type: ignore[arg-type]

    model = make_model()  # as ns-eval loads a run killed after frame 0 of 5: no live grid, one stored frame
    model.attach_player(GridPlayer(store))
    model.finished_frames = store.num_finished()
    model.eval()
    assert model.newest_trained_frame() == 0
    rays = 16
    times = torch.tensor([0.0] * (rays // 2) + [0.5] * (rays // 2))[:, None]  # frame 0, then frame 2 (untrained)
    bundle = RayBundle(
        origins=torch.zeros(rays, 3), directions=torch.tensor([[0.0, 0.0, -1.0]]).repeat(rays, 1),
        pixel_area=torch.ones(rays, 1), times=times,
    )  # fmt: skip
    outputs = model.get_outputs(bundle)
    background = model.config.background_brightness
    assert torch.all(outputs["accumulation"][: rays // 2] > 0.99)
    assert torch.all(outputs["rgb"][: rays // 2] < background - 0.2)
    assert torch.all(outputs["accumulation"][rays // 2 :] == 0)
    assert torch.allclose(outputs["rgb"][rays // 2 :], torch.full((rays // 2, 3), background))


def test_a_grid_trained_from_scratch_outside_a_stream_renders_its_own_frame() -> None:
    """A frame trained from scratch without a store (the benchmark's reference arm) and finished but never marked
    stored: the live grid is that frame's, so its frame renders from it, and only later frames are empty."""
    from nerfstudio_methods.streamrf.model import Phase
    from nerfstudio_methods.streamrf.state import make_state

    model = make_model()
    model.start_phase(Phase.FRAME0, 3)
    values = torch.zeros(GRID_CHANNELS, 8, 8, 8)
    values[0] = 50.0
    model.full = make_state(SparseGrid.from_dense(model.full_spec, values, values[0] > 0), "sparse")  # type: ignore[arg-type]
    assert model.newest_trained_frame() == 3  # while it trains
    model.finish_phase()
    assert model.phase is None and model.newest_trained_frame() == 3  # and once it is finished
    model.eval()
    assert model.grid_for_frame(3) is not None and bool(model.grid_for_frame(3).occupancy.any())
    assert not bool(model.grid_for_frame(4).occupancy.any())


def test_full_and_pilot_passes_read_their_own_flat_settings() -> None:
    """The two passes are one PassSettings each, gathered from the flat options users set (``lr_sh`` for the full
    pass, ``pilot_lr_sh`` for the pilot's, ...): every setting of each pass comes from its own option."""
    import dataclasses

    from nerfstudio_methods.streamrf.model import StreamRFModelConfig
    from nerfstudio_methods.streamrf.passes import PassSettings

    full_names = {"steps": "steps_per_frame"}
    names = [f.name for f in dataclasses.fields(PassSettings)]
    config = StreamRFModelConfig()
    for index, name in enumerate(names):  # distinct values, so that a setting read from the wrong option shows
        full_name = full_names.get(name, name)
        setattr(config, full_name, type(getattr(config, full_name))(100 + index))
        setattr(config, f"pilot_{name}", type(getattr(config, f"pilot_{name}"))(200 + index))
    full, pilot = config.pass_settings(pilot=False), config.pass_settings(pilot=True)
    for index, name in enumerate(names):
        assert getattr(full, name) == 100 + index and getattr(pilot, name) == 200 + index, name
    assert pilot.learning_rates(0) == pytest.approx((pilot.lr_density, pilot.lr_sh))
