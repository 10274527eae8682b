"""MonoNeRF's pure-torch pieces against independently computed values: trajectories (analytic velocity fields and
hand-stepped Euler), compositing (a per-ray Python loop), projection (hand geometry, nerfstudio's own rays, NDC),
feature lookup (pixel centres, midpoints, grid_sample) and every loss term (small hand-computed cases)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from nerfstudio.cameras.cameras import Cameras, CameraType
from torch import Tensor, nn

from nerfstudio_methods.mononerf import compositing, losses, projection
from nerfstudio_methods.mononerf.trajectory import TrajectorySolver, integrate_both, integrate_trajectory
from nerfstudio_methods.rays import ndc_coefficients, ndc_rays, ndc_to_world

RTOL, ATOL = 1e-7, 1e-9
"""dopri5 tolerances for the analytic comparisons."""


# --- velocity fields ---------------------------------------------------------------------------------------------------


class Rotation(nn.Module):
    """v(x) = omega (-y, x, 0): a rotation about z by omega radians per frame."""

    def __init__(self, omega: float) -> None:
        super().__init__()
        self.omega = nn.Parameter(torch.tensor(omega, dtype=torch.float64))

    def forward(self, points: Tensor, frame: Tensor) -> Tensor:
        del frame
        return self.omega * torch.stack([-points[:, 1], points[:, 0], torch.zeros_like(points[:, 0])], dim=-1)


class LinearInFrame(nn.Module):
    """v(x, f) = a f: the end point depends only on the absolute frames passed."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64)

    def forward(self, points: Tensor, frame: Tensor) -> Tensor:
        return self.a * frame + 0.0 * points


class PointPlusFrame(nn.Module):
    """v(x, f) = x + f (every component)."""

    def forward(self, points: Tensor, frame: Tensor) -> Tensor:
        return points + frame


def rotate_z(points: Tensor, angle: float) -> Tensor:
    c, s = math.cos(angle), math.sin(angle)
    x, y, z = points.unbind(-1)
    return torch.stack([c * x - s * y, s * x + c * y, z], dim=-1)


def random_points(count: int = 5, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 3, generator=generator, dtype=torch.float64) * 2 - 1


# --- trajectories ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["ode", "ode-adjoint"])
@pytest.mark.parametrize("frames", [1.0, -1.0])
def test_ode_rotation_matches_analytic_end_point(solver: TrajectorySolver, frames: float) -> None:
    omega = 0.7
    points = random_points()
    start = torch.tensor([[0.0], [1.0], [2.5], [7.0], [11.0]], dtype=torch.float64)
    end = integrate_trajectory(Rotation(omega), points, start, frames, solver=solver, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(end, rotate_z(points, omega * frames), rtol=0, atol=1e-6)


@pytest.mark.parametrize("solver", ["ode", "ode-adjoint"])
def test_ode_rotation_gradients_match_analytic(solver: TrajectorySolver) -> None:
    omega = 0.4
    field = Rotation(omega)
    points = random_points(seed=1).requires_grad_(True)
    start = torch.zeros(5, 1, dtype=torch.float64)
    weights = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    end = integrate_trajectory(field, points, start, 1.0, solver=solver, rtol=RTOL, atol=ATOL)
    (end * weights).sum().backward()
    # d/d(omega) of R(omega) p = (-sin x - cos y, cos x - sin y, 0); d/dp of (R p . w) = R^T w = R(-omega) w.
    c, s = math.cos(omega), math.sin(omega)
    x, y = points.detach()[:, 0], points.detach()[:, 1]
    d_end = torch.stack([-s * x - c * y, c * x - s * y, torch.zeros_like(x)], dim=-1)
    assert field.omega.grad is not None and points.grad is not None
    torch.testing.assert_close(field.omega.grad, (d_end * weights).sum(), rtol=0, atol=1e-6)
    torch.testing.assert_close(points.grad, rotate_z(weights, -omega), rtol=0, atol=1e-6)


@pytest.mark.parametrize("solver", ["ode", "ode-adjoint"])
def test_ode_backward_gradient_sign(solver: TrajectorySolver) -> None:
    field = Rotation(0.3)
    points = random_points(seed=3)
    end = integrate_trajectory(
        field, points, torch.zeros(5, 1, dtype=torch.float64), -1.0, solver=solver, rtol=RTOL, atol=ATOL
    )
    end[:, 0].sum().backward()
    # x of R(-omega) p = cos(omega) x + sin(omega) y; d/d(omega) = -sin x + cos y.
    x, y = points[:, 0], points[:, 1]
    expected = (-math.sin(0.3) * x + math.cos(0.3) * y).sum()
    assert field.omega.grad is not None
    torch.testing.assert_close(field.omega.grad, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("frames", [1.0, -1.0, 0.5])
def test_ode_passes_absolute_frame(frames: float) -> None:
    points = random_points(3)
    start = torch.tensor([[0.0], [3.0], [7.5]], dtype=torch.float64)
    field = LinearInFrame()
    end = integrate_trajectory(field, points, start, frames)
    # x(s) = x0 + a * integral_0^s (f0 + r) dr = x0 + a (f0 s + s^2 / 2).
    expected = points + field.a * (start * frames + frames**2 / 2)
    torch.testing.assert_close(end, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("frames", [1.0, -1.0])
def test_ode_state_and_frame_dependent_field(frames: float) -> None:
    points = random_points(4, seed=4)
    start = torch.tensor([[0.0], [2.0], [5.0], [10.0]], dtype=torch.float64)
    end = integrate_trajectory(PointPlusFrame(), points, start, frames, rtol=RTOL, atol=ATOL)
    # dx/ds = x + f0 + s  =>  x(s) = (x0 + f0 + 1) e^s - f0 - s - 1.
    expected = (points + start + 1) * math.exp(frames) - start - frames - 1
    torch.testing.assert_close(end, expected, rtol=1e-6, atol=1e-6)


def test_euler_two_steps_by_hand() -> None:
    points = torch.tensor([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0]], dtype=torch.float64)
    start = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
    forward = integrate_trajectory(PointPlusFrame(), points, start, 1.0, solver="euler", euler_steps=2)
    backward = integrate_trajectory(PointPlusFrame(), points, start[:1].expand(2, 1), -1.0, solver="euler")
    # Start 0, forward: x1 = x0 + (x0 + 0) / 2 = (1.5, 3, 0); x2 = x1 + (x1 + 0.5) / 2 = (2.5, 4.75, 0.25).
    # Start 2, forward: x1 = x0 + (x0 + 2) / 2 = (2.5, 4, 1); x2 = x1 + (x1 + 2.5) / 2 = (5, 7.25, 2.75).
    expected_forward = torch.tensor([[2.5, 4.75, 0.25], [5.0, 7.25, 2.75]], dtype=torch.float64)
    # Start 0, backward: x1 = x0 - (x0 + 0) / 2 = (0.5, 1, 0); x2 = x1 - (x1 - 0.5) / 2 = (0.5, 0.75, 0.25).
    expected_backward = torch.tensor([[0.5, 0.75, 0.25], [0.5, 0.75, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(forward, expected_forward)
    torch.testing.assert_close(backward, expected_backward)


def test_euler_linear_in_frame_by_hand() -> None:
    points = torch.zeros(2, 3, dtype=torch.float64)
    start = torch.tensor([[0.0], [4.0]], dtype=torch.float64)
    field = LinearInFrame()
    # v = a f: forward x += a f0 / 2 + a (f0 + 0.5) / 2 = a (f0 + 0.25); backward x -= a f0 / 2 + a (f0 - 0.5) / 2.
    forward = integrate_trajectory(field, points, start, 1.0, solver="euler")
    backward = integrate_trajectory(field, points, start, -1.0, solver="euler")
    torch.testing.assert_close(forward, field.a * (start + 0.25))
    torch.testing.assert_close(backward, -field.a * (start - 0.25))
    # One step: plain x += v(x, f0).
    one = integrate_trajectory(field, points, start, 1.0, solver="euler", euler_steps=1)
    torch.testing.assert_close(one, field.a * start)


@pytest.mark.parametrize("solver", ["ode", "euler"])
def test_integrate_both_equals_two_single_solves(solver: TrajectorySolver) -> None:
    points = random_points(6, seed=5)
    start = torch.linspace(0, 5, 6, dtype=torch.float64)[:, None]
    field = PointPlusFrame()
    backward, forward = integrate_both(field, points, start, solver=solver, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(
        backward,
        integrate_trajectory(field, points, start, -1.0, solver=solver, rtol=RTOL, atol=ATOL),
        rtol=1e-6,
        atol=1e-6,
    )
    torch.testing.assert_close(
        forward,
        integrate_trajectory(field, points, start, 1.0, solver=solver, rtol=RTOL, atol=ATOL),
        rtol=1e-6,
        atol=1e-6,
    )


def test_ode_default_tolerance_and_float32() -> None:
    points = random_points().float()
    field = Rotation(0.5).float()
    end = integrate_trajectory(field, points, torch.zeros(5, 1), 1.0)
    assert end.dtype == torch.float32
    torch.testing.assert_close(end, rotate_z(points.double(), 0.5).float(), rtol=0, atol=5e-3)


def test_unknown_solver_rejected() -> None:
    with pytest.raises(ValueError, match="solver"):
        integrate_trajectory(Rotation(0.1), random_points(), torch.zeros(5, 1), 1.0, solver="rk4")  # pyright: ignore[reportArgumentType]


# --- compositing -------------------------------------------------------------------------------------------------------


def brute_force(sigma_s, rgb_s, sigma_d, rgb_d, blend, z, direction_norm):
    """Per-ray, per-sample loop of DynamicNeRF's compositing, written from its formulas."""
    rays, samples = z.shape
    out = {key: [] for key in ("rgb_full", "rgb_static", "rgb_dynamic", "depth_full", "depth_static")}
    out |= {key: [] for key in ("depth_dynamic", "acc_full", "acc_static", "acc_dynamic", "dynamicness")}
    out |= {key: [] for key in ("w_full", "w_static", "w_dynamic", "a_static", "a_dynamic")}
    for r in range(rays):
        t_full = t_s = t_d = 1.0
        rgb_full, rgb_st, rgb_dy = [0.0] * 3, [0.0] * 3, [0.0] * 3
        depth_full = depth_s = depth_d = acc_full = acc_s = acc_d = dyn = 0.0
        w_full, w_s, w_d, a_s_list, a_d_list = [], [], [], [], []
        for k in range(samples):
            delta = (float(z[r, k + 1] - z[r, k]) if k < samples - 1 else 1e10) * float(direction_norm[r])
            a_s = 1 - math.exp(-max(float(sigma_s[r, k]), 0.0) * delta)
            a_d = 1 - math.exp(-max(float(sigma_d[r, k]), 0.0) * delta)
            b = float(blend[r, k])
            wf = t_full * (a_d * b + a_s * (1 - b))
            ws, wd = t_s * a_s, t_d * a_d
            for ch in range(3):
                rgb_full[ch] += t_full * (a_d * b * float(rgb_d[r, k, ch]) + a_s * (1 - b) * float(rgb_s[r, k, ch]))
                rgb_st[ch] += ws * float(rgb_s[r, k, ch])
                rgb_dy[ch] += wd * float(rgb_d[r, k, ch])
            zk = float(z[r, k])
            depth_full += wf * zk
            depth_s += ws * zk
            depth_d += wd * zk
            acc_full += wf
            acc_s += ws
            acc_d += wd
            dyn += wf * b
            w_full.append(wf)
            w_s.append(ws)
            w_d.append(wd)
            a_s_list.append(a_s)
            a_d_list.append(a_d)
            t_full *= (1 - a_d * b) * (1 - a_s * (1 - b))
            t_s *= 1 - a_s
            t_d *= 1 - a_d
        for key, value in (
            ("rgb_full", rgb_full),
            ("rgb_static", rgb_st),
            ("rgb_dynamic", rgb_dy),
            ("depth_full", depth_full),
            ("depth_static", depth_s),
            ("depth_dynamic", depth_d),
            ("acc_full", acc_full),
            ("acc_static", acc_s),
            ("acc_dynamic", acc_d),
            ("dynamicness", dyn),
            ("w_full", w_full),
            ("w_static", w_s),
            ("w_dynamic", w_d),
            ("a_static", a_s_list),
            ("a_dynamic", a_d_list),
        ):
            out[key].append(value)
    return {key: torch.tensor(value, dtype=torch.float64) for key, value in out.items()}


def random_branches(rays: int = 4, samples: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    z = torch.sort(rand(rays, samples), dim=-1).values
    return {
        "sigma_static": rand(rays, samples) * 30 - 5,  # some negative: relu
        "rgb_static": rand(rays, samples, 3),
        "sigma_dynamic": rand(rays, samples) * 30 - 5,
        "rgb_dynamic": rand(rays, samples, 3),
        "blending": rand(rays, samples),
        "z": z,
        "direction_norm": rand(rays) + 0.5,
    }


def test_sample_deltas() -> None:
    z = torch.tensor([[0.0, 0.25, 0.75], [0.1, 0.2, 0.4]], dtype=torch.float64)
    deltas = compositing.sample_deltas(z, torch.tensor([2.0, 1.0], dtype=torch.float64))
    expected = torch.tensor([[0.5, 1.0, 2e10], [0.1, 0.2, 1e10]], dtype=torch.float64)
    torch.testing.assert_close(deltas, expected)


def test_dynamic_compositing_matches_brute_force() -> None:
    inputs = random_branches()
    ref = brute_force(*(inputs[key] for key in inputs))
    deltas = compositing.sample_deltas(inputs["z"], inputs["direction_norm"])
    out = compositing.composite_dynamic(
        inputs["sigma_static"],
        inputs["rgb_static"],
        inputs["sigma_dynamic"],
        inputs["rgb_dynamic"],
        inputs["blending"],
        deltas,
        inputs["z"],
    )
    pairs = {
        "rgb_full": "rgb_full",
        "rgb_static": "rgb_static",
        "rgb_dynamic": "rgb_dynamic",
        "depth_full": "depth_full",
        "depth_static": "depth_static",
        "depth_dynamic": "depth_dynamic",
        "accumulation_full": "acc_full",
        "accumulation_static": "acc_static",
        "accumulation_dynamic": "acc_dynamic",
        "dynamicness": "dynamicness",
        "weights_full": "w_full",
        "weights_static": "w_static",
        "weights_dynamic": "w_dynamic",
        "alpha_static": "a_static",
        "alpha_dynamic": "a_dynamic",
    }
    for key, ref_key in pairs.items():
        torch.testing.assert_close(out[key], ref[ref_key], rtol=1e-7, atol=1e-7, msg=key)
    torch.testing.assert_close(out["blending_map"], inputs["z"] * inputs["blending"])


def test_all_dynamic_blending_is_single_branch_nerf() -> None:
    inputs = random_branches(seed=1)
    deltas = compositing.sample_deltas(inputs["z"], inputs["direction_norm"])
    ones = torch.ones_like(inputs["blending"])
    out = compositing.composite_dynamic(
        inputs["sigma_static"],
        inputs["rgb_static"],
        inputs["sigma_dynamic"],
        inputs["rgb_dynamic"],
        ones,
        deltas,
        inputs["z"],
    )
    single = compositing.composite(inputs["sigma_dynamic"], inputs["rgb_dynamic"], deltas, inputs["z"])
    torch.testing.assert_close(out["rgb_full"], single["rgb"])
    torch.testing.assert_close(out["depth_full"], single["depth"])
    torch.testing.assert_close(out["weights_full"], single["weights"])
    torch.testing.assert_close(out["accumulation_full"], single["accumulation"])
    torch.testing.assert_close(out["dynamicness"], single["accumulation"])
    # And the single branch against the loop (its dynamic branch).
    ref = brute_force(*(inputs[key] for key in inputs))
    torch.testing.assert_close(single["rgb"], ref["rgb_dynamic"], rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(single["weights"], ref["w_dynamic"], rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(single["alpha"], ref["a_dynamic"], rtol=1e-7, atol=1e-7)


def test_compositing_leading_batch_dims_and_gradients() -> None:
    inputs = random_branches(rays=6, seed=2)
    deltas = compositing.sample_deltas(inputs["z"], inputs["direction_norm"])
    sigma = inputs["sigma_dynamic"].clone().requires_grad_(True)
    flat = compositing.composite(sigma, inputs["rgb_dynamic"], deltas, inputs["z"])
    batched = compositing.composite(
        sigma.reshape(2, 3, -1),
        inputs["rgb_dynamic"].reshape(2, 3, -1, 3),
        deltas.reshape(2, 3, -1),
        inputs["z"].reshape(2, 3, -1),
    )
    torch.testing.assert_close(batched["rgb"].reshape(6, 3), flat["rgb"])
    flat["rgb"].sum().backward()
    assert sigma.grad is not None and torch.isfinite(sigma.grad).all()


# --- projection --------------------------------------------------------------------------------------------------------


def rotation(axis: str, angle: float) -> Tensor:
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        return torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)
    if axis == "y":
        return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)


def scalar(value: float, count: int = 1) -> Tensor:
    return torch.full((count,), value, dtype=torch.float64)


def test_project_known_points() -> None:
    # Identity camera: (1, 2, -4) with f 100, c (50, 40): u = 100 * 1 / 4 + 50 = 75, v = -100 * 2 / 4 + 40 = -10.
    # Camera at (0, 0, 2) rotated 90 degrees about y (looks along world -x): camera axes x = (0, 0, -1), y = (0, 1, 0),
    # z = (1, 0, 0). World (-3, 1, 2.5) is camera (-0.5, 1, -3): u = 60 * -0.5 / 3 + 32 = 22, v = -60 / 3 + 24 = 4.
    c2w = torch.stack(
        [
            torch.cat([torch.eye(3, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)], dim=1),
            torch.cat([rotation("y", math.pi / 2), torch.tensor([[0.0], [0.0], [2.0]], dtype=torch.float64)], dim=1),
        ]
    )
    points = torch.tensor([[1.0, 2.0, -4.0], [-3.0, 1.0, 2.5]], dtype=torch.float64)
    f = torch.tensor([100.0, 60.0], dtype=torch.float64)
    uv, depth = projection.project_points(
        points,
        c2w,
        f,
        f,
        torch.tensor([50.0, 32.0], dtype=torch.float64),
        torch.tensor([40.0, 24.0], dtype=torch.float64),
    )
    torch.testing.assert_close(uv, torch.tensor([[75.0, -10.0], [22.0, 4.0]], dtype=torch.float64))
    torch.testing.assert_close(depth, torch.tensor([4.0, 3.0], dtype=torch.float64))


WIDTH, HEIGHT, FOCAL = 8, 6, 7.0


def camera_pose() -> Tensor:
    rot = rotation("y", 0.05) @ rotation("x", -0.03) @ rotation("z", 0.02)
    return torch.cat([rot, torch.tensor([[0.1], [-0.05], [0.2]], dtype=torch.float64)], dim=1)


def nerfstudio_rays(pose: Tensor) -> tuple[Tensor, Tensor]:
    cameras = Cameras(
        camera_to_worlds=pose[None].float(),
        fx=FOCAL,
        fy=FOCAL,
        cx=WIDTH / 2,
        cy=HEIGHT / 2,
        width=WIDTH,
        height=HEIGHT,
        camera_type=CameraType.PERSPECTIVE,
    )
    bundle = cameras.generate_rays(camera_indices=0)
    return bundle.origins.double(), bundle.directions.double()  # [H, W, 3]


def pixel_centres() -> Tensor:
    rows, cols = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
    return torch.stack([cols + 0.5, rows + 0.5], dim=-1).double().reshape(-1, 2)


def project_with(pose: Tensor, points: Tensor) -> Tensor:
    count = points.shape[0]
    uv, depth = projection.project_points(
        points,
        pose[None].expand(count, 3, 4),
        scalar(FOCAL, count),
        scalar(FOCAL, count),
        scalar(WIDTH / 2, count),
        scalar(HEIGHT / 2, count),
    )
    assert (depth > 0).all()
    return uv


def test_point_on_nerfstudio_ray_projects_to_pixel_centre() -> None:
    pose = camera_pose()
    origins, directions = nerfstudio_rays(pose)
    points = (origins + 2.5 * directions).reshape(-1, 3)
    torch.testing.assert_close(project_with(pose, points), pixel_centres(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("t", [0.05, 0.4, 0.9])
def test_point_on_ndc_ray_projects_to_pixel_centre(t: float) -> None:
    pose = camera_pose()
    origins, directions = nerfstudio_rays(pose)
    coeffs = ndc_coefficients(FOCAL, FOCAL, WIDTH, HEIGHT)
    ndc_o, ndc_d, valid = ndc_rays(origins.reshape(-1, 3), directions.reshape(-1, 3), coeffs, near=1.0, normalize=False)
    assert valid.all()
    world = ndc_to_world(ndc_o + t * ndc_d, coeffs, near=1.0)
    torch.testing.assert_close(project_with(pose, world), pixel_centres(), rtol=0, atol=1e-4)


def test_sample_feature_maps_pixel_centres_and_midpoints() -> None:
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 3, HEIGHT, WIDTH, generator=g, dtype=torch.float64)
    frame = torch.tensor([0, 1, 1, 0, 1, 0])
    uv = torch.tensor(
        [
            [2.5, 1.5],  # centre of (row 1, col 2)
            [7.5, 5.5],  # centre of the last pixel
            [3.0, 2.5],  # between cols 2 and 3 of row 2
            [5.0, 4.0],  # between rows 3, 4 and cols 4, 5
            [0.1, 0.2],  # outside the first centre: border
            [9.0, 2.5],  # beyond the right edge: border, last column
        ],
        dtype=torch.float64,
    )
    out = projection.sample_feature_maps(maps, frame, uv, (WIDTH, HEIGHT))
    expected = torch.stack(
        [
            maps[0, :, 1, 2],
            maps[1, :, 5, 7],
            (maps[1, :, 2, 2] + maps[1, :, 2, 3]) / 2,
            (maps[0, :, 3, 4] + maps[0, :, 3, 5] + maps[0, :, 4, 4] + maps[0, :, 4, 5]) / 4,
            maps[1, :, 0, 0],
            maps[0, :, 2, 7],
        ]
    )
    torch.testing.assert_close(out, expected)


def test_sample_feature_maps_matches_grid_sample_and_is_differentiable() -> None:
    g = torch.Generator().manual_seed(1)
    maps = torch.rand(3, 4, 3, 4, generator=g, dtype=torch.float64)  # half the image resolution
    count = 20
    frame = torch.randint(0, 3, (count,), generator=g)
    uv = torch.rand(count, 2, generator=g, dtype=torch.float64) * torch.tensor([WIDTH + 2.0, HEIGHT + 2.0]) - 1.0
    out = projection.sample_feature_maps(maps, frame, uv, (WIDTH, HEIGHT))
    for i in range(count):
        grid = torch.stack([2 * uv[i, 0] / WIDTH - 1, 2 * uv[i, 1] / HEIGHT - 1]).reshape(1, 1, 1, 2)
        reference = F.grid_sample(maps[frame[i] : frame[i] + 1], grid, align_corners=False, padding_mode="border")
        torch.testing.assert_close(out[i], reference.reshape(-1))
    inside = torch.rand(count, 2, generator=g, dtype=torch.float64) * torch.tensor([WIDTH - 2.0, HEIGHT - 2.0]) + 1.0
    inside.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p: projection.sample_feature_maps(maps, frame, p, (WIDTH, HEIGHT)), (inside,)
    )


def test_induced_flow() -> None:
    pose = camera_pose()
    origins, directions = nerfstudio_rays(pose)
    coeffs = ndc_coefficients(FOCAL, FOCAL, WIDTH, HEIGHT)
    ndc_o, ndc_d, _ = ndc_rays(origins.reshape(-1, 3), directions.reshape(-1, 3), coeffs, normalize=False)
    count = ndc_o.shape[0]
    samples = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64)
    points = ndc_o[:, None] + samples[None, :, None] * ndc_d[:, None]
    weights = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).expand(count, 3)
    own = pixel_centres()

    def flow(camera: Tensor) -> Tensor:
        return projection.induced_flow(
            points, weights, coeffs, camera[None].expand(count, 3, 4),
            scalar(FOCAL, count), scalar(FOCAL, count), scalar(WIDTH / 2, count), scalar(HEIGHT / 2, count), own,
        )  # fmt: skip

    # Into its own camera, a point of the ray induces no flow.
    torch.testing.assert_close(flow(pose), torch.zeros(count, 2, dtype=torch.float64), rtol=0, atol=1e-4)
    # Into a camera shifted by dx along world x (axes aligned), a point at depth Z moves by -f dx / Z pixels.
    shifted = torch.cat(
        [torch.eye(3, dtype=torch.float64), torch.tensor([[0.3], [0.0], [0.0]], dtype=torch.float64)], 1
    )
    identity = torch.cat([torch.eye(3, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)], 1)
    world = ndc_to_world(points[:, 1], coeffs)
    depth = -world[:, 2]
    induced = flow(shifted) - flow(identity)
    torch.testing.assert_close(induced[:, 0], -FOCAL * 0.3 / depth)
    torch.testing.assert_close(induced[:, 1], torch.zeros(count, dtype=torch.float64))


# --- losses ------------------------------------------------------------------------------------------------------------


def t(values) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_photometric_losses() -> None:
    rgb = t([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    target = t([[0.5, 0.0, 0.0], [1.0, 1.0, 0.0]])
    # Squared errors: ray 0 (0.25, 0, 0), ray 1 (0, 0, 1).
    torch.testing.assert_close(losses.photometric_loss(rgb, target), t(1.25 / 6))
    torch.testing.assert_close(losses.photometric_loss(rgb, target, torch.tensor([True, False])), t(0.25 / 3))
    torch.testing.assert_close(losses.photometric_loss(rgb, target, t([0.0, 1.0])), t(1.0 / 3))
    torch.testing.assert_close(losses.static_photometric_loss(rgb, target, torch.tensor([True, False])), t(0.25 / 3))


def test_warped_dynamic_loss() -> None:
    target = torch.zeros(2, 3, dtype=torch.float64)
    forward = t([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])  # per-ray MSE 1, 0
    backward = t([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]])  # per-ray MSE 0, 4
    value = losses.warped_dynamic_loss(
        forward, backward, target, torch.tensor([True, True]), torch.tensor([False, True])
    )
    torch.testing.assert_close(value, t(0.5 + 4.0))


def test_flow_loss_ignores_masked_rays() -> None:
    induced = t([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    flow = t([[0.0, 0.0], [1.0, 1.0], [math.inf, math.nan]])
    # |diff|: ray 0 (1, 2), ray 1 (2, 3): 8 / (2 rays * 2).
    torch.testing.assert_close(losses.flow_loss(induced, flow, t([1.0, 1.0, 0.0])), t(2.0))


def test_slow_and_cycle_losses() -> None:
    sf_f = t([[[0.1, -0.2, 0.3]]])
    sf_b = t([[[-0.3, 0.0, 0.6]]])
    torch.testing.assert_close(losses.slow_loss(sf_f, sf_b), t(0.2 + 0.3))
    sf_f = t([[0.1, 0.2, 0.0]])
    sf_fb = t([[-0.1, -0.1, 0.3]])
    sf_b = t([[0.5, 0.0, 0.0]])
    sf_bf = t([[-0.2, 0.0, 0.0]])
    # (0, 0.1, 0.3) -> 0.4 / 3; (0.3, 0, 0) -> 0.1.
    torch.testing.assert_close(losses.cycle_consistency_loss(sf_f, sf_fb, sf_b, sf_bf), t(0.4 / 3 + 0.1))


COEFFS = (2.0, 2.0)
"""With NDC coefficients 2 and near 1: NDC (x, y, 0) is world (x, y, -2); NDC (x, y, -1) is world (x / 2, y / 2, -1)."""


def test_temporal_smooth_loss() -> None:
    samples = 10  # the first 9 count
    points = torch.zeros(1, samples, 3, dtype=torch.float64)
    forward = points.clone()
    forward[..., 0] = 0.1  # world flow (0.1, 0, 0)
    forward[0, 9] = t([100.0, 100.0, 0.5])  # the last 10%: ignored
    backward = points.clone()
    backward[..., 0] = 0.2
    backward[..., 2] = -1.0  # world (0.1, 0, -1): flow (0.1, 0, 1)
    # Sum of flows (0.2, 0, 1): L1 mean 1.2 / 3.
    torch.testing.assert_close(losses.temporal_smooth_loss(points, forward, backward, COEFFS), t(0.4))


def test_spatial_smooth_loss() -> None:
    samples = 20  # the first 19 count
    points = torch.zeros(1, samples, 3, dtype=torch.float64)
    forward = points.clone()
    forward[0, :, 0] = 0.01 * torch.arange(samples, dtype=torch.float64)
    forward[0, 19, 0] = 100.0  # ignored
    backward = points.clone()
    # Forward flow grows by 0.01 in x per sample: L1 mean 0.01 / 3; backward flow is constant: 0.
    torch.testing.assert_close(losses.spatial_smooth_loss(points, forward, backward, COEFFS), t(0.01 / 3))


def test_second_order_smooth_loss() -> None:
    def at(x: float) -> Tensor:
        points = torch.zeros(1, 10, 3, dtype=torch.float64)
        points[..., 0] = x
        return points

    # x = 0, x_f = 0.1, x_ff = 0.3, x_b = -0.1, x_bb = -0.1 (world x equals NDC x at NDC z = 0):
    # x - 2 x_b + x_bb = 0.1 and x_ff - 2 x_f + x = 0.1, each an L1 mean of 0.1 / 3.
    value = losses.second_order_smooth_loss(at(0.0), at(0.1), at(-0.1), at(0.3), at(-0.1), COEFFS)
    torch.testing.assert_close(value, t(0.2 / 3))


def test_static_flow_loss() -> None:
    sf_f = t([[[0.1, 0.2, 0.2]], [[1.0, 1.0, 1.0]]])  # ray 0: mean square 0.03
    sf_b = t([[[0.3, 0.0, 0.0]], [[5.0, 5.0, 5.0]]])  # ray 0: 0.03
    torch.testing.assert_close(losses.static_flow_loss(sf_f, sf_b, torch.tensor([True, False])), t(0.06))


def test_mask_losses() -> None:
    blending = t([[0.2, 0.4], [0.9, 0.7]])
    dynamicness = t([0.1, 0.6])
    static = torch.tensor([True, False])
    # L1(b) on ray 0: 0.3; |dynamicness - motion| = |0.1 - 0|, |0.6 - 1|: mean 0.25.
    torch.testing.assert_close(losses.mask_loss(blending, dynamicness, static), t(0.55))
    blending_f = t([[0.1, 0.3], [1.0, 1.0]])
    blending_b = t([[0.5, 0.5], [1.0, 1.0]])
    torch.testing.assert_close(losses.mask_flow_loss(blending_f, blending_b, static), t(0.2 + 0.5))


def test_sparsity_loss() -> None:
    weights = t([[0.5, 0.5], [1.0, 0.0]])  # entropies ln 2 and 0
    blending = t([[0.25, 0.25], [0.0, 0.0]])  # -2 * 0.25 ln 0.25 = ln 2, and 0
    torch.testing.assert_close(losses.sparsity_loss(weights, blending), t(math.log(2) / 2 + math.log(2) / 2))


def test_depth_loss_by_hand() -> None:
    depth = t([0.1, 0.2, 0.6])  # median 0.2, MAD 1/6: (-0.6, 0, 2.4)
    disparity = t([3.0, 2.0, 2.0])  # -disparity: median -2, MAD 1/3: (-3, 0, 0)
    torch.testing.assert_close(losses.depth_loss(depth, disparity), t((2.4**2 + 2.4**2) / 3))
    # A second group that -disparity maps affinely onto (error 0); groups interleaved.
    depth2 = t([0.3, 0.4, 0.5])
    disparity2 = t([5.0, 4.0, 3.0])
    order = torch.tensor([0, 3, 1, 4, 2, 5])
    depths = torch.cat([depth, depth2])[order]
    disparities = torch.cat([disparity, disparity2])[order]
    groups = torch.tensor([7, 7, 7, 2, 2, 2])[order]
    torch.testing.assert_close(losses.depth_loss(depths, disparities, groups), t(3 * 3.84 / 6))
    assert not torch.isclose(losses.depth_loss(depths, disparities), t(3 * 3.84 / 6))
    # Constant disparity: finite.
    assert torch.isfinite(losses.depth_loss(depth, t([1.0, 1.0, 1.0])))


def test_order_loss_detaches_static_depth() -> None:
    depth_d = t([0.5, 0.2]).requires_grad_(True)
    depth_s = t([0.3, 0.9]).requires_grad_(True)
    value = losses.order_loss(depth_d, depth_s, torch.tensor([True, False]))
    torch.testing.assert_close(value, t(0.04))
    value.backward()
    assert depth_s.grad is None
    assert depth_d.grad is not None
    torch.testing.assert_close(depth_d.grad, t([0.4, 0.0]))


def test_depth_blending_loss_by_hand() -> None:
    disparity = t([4.0, 2.0, 3.0])
    original = disparity.clone()
    torch.testing.assert_close(losses.normalize_disparity_to_ndc(disparity), t([0.0, 1.0, 0.5]))
    z = t([[0.02, 0.5, 0.98]]).expand(3, 3)
    blending = t([[1.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.5, 1.0, 0.0]])
    # Targets: ray 0 (depth 0) keeps z = 0.02 -> (0.02, 0, 0), matched exactly; ray 1 (depth 1) -> (0, 0, 0.98) against
    # z b = (0, 0, 0.49): 0.49^2; ray 2 is static (masked out). Mean over 2 rays x 3 samples.
    value = losses.depth_blending_loss(disparity, z, blending, torch.tensor([True, True, False]))
    torch.testing.assert_close(value, t(0.49**2 / 6))
    torch.testing.assert_close(disparity, original)
    # Per-group normalisation, including a one-ray group (constant disparity): finite.
    value = losses.depth_blending_loss(
        disparity, z, blending, torch.tensor([True, True, True]), groups=torch.tensor([0, 0, 1])
    )
    assert torch.isfinite(value)


def test_empty_masks_give_zero_with_gradient() -> None:
    g = torch.Generator().manual_seed(0)

    def leaf(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64).requires_grad_(True)

    rays, samples = 3, 4
    none = torch.zeros(rays, dtype=torch.bool)
    rgb, target = leaf(rays, 3), leaf(rays, 3)
    blending, blending_f, blending_b = leaf(rays, samples), leaf(rays, samples), leaf(rays, samples)
    sf_f, sf_b = leaf(rays, samples, 3), leaf(rays, samples, 3)
    depth_d, depth_s = leaf(rays), leaf(rays)
    z = torch.linspace(0, 1, samples, dtype=torch.float64).expand(rays, samples)
    values = {
        "photometric": losses.photometric_loss(rgb, target, none),
        "static": losses.static_photometric_loss(rgb, target, none),
        "warped": losses.warped_dynamic_loss(rgb, rgb, target, none, none),
        "flow": losses.flow_loss(rgb[:, :2], target[:, :2], none.double()),
        "static_flow": losses.static_flow_loss(sf_f, sf_b, none),
        "mask_flow": losses.mask_flow_loss(blending_f, blending_b, none),
        "order": losses.order_loss(depth_d, depth_s, none),
        "depth_blending": losses.depth_blending_loss(t([1.0, 2.0, 3.0]), z, blending, none),
    }
    for name, value in values.items():
        assert value.shape == () and value.item() == 0.0, name
        value.backward()
    for tensor in (rgb, target, blending, blending_f, blending_b, sf_f, sf_b, depth_d):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and (tensor.grad == 0).all()
    # No rays at all.
    empty = leaf(0, 3)
    assert losses.photometric_loss(empty, empty).item() == 0.0
    assert losses.depth_loss(leaf(0), leaf(0)).item() == 0.0
    assert losses.sparsity_loss(leaf(0, 4), leaf(0, 4)).item() == 0.0
    # The mask loss with no static ray still has its dynamicness term.
    torch.testing.assert_close(losses.mask_loss(t([[0.5, 0.5]]), t([0.25]), torch.tensor([False])), t(0.75))


# ------------------------------------------------------------------------------------------- released metrics, masks


def test_released_psnr_and_ssim_hand_values() -> None:
    """Render 0.5 everywhere -> to8b truncates to 127; ground truth 130/255 -> 130. PSNR = 10 log10(255^2 / 3^2)
    = 20 log10(85); SSIM of two constant images is the luminance term alone,
    (2 x 127 x 130 + C1) / (127^2 + 130^2 + C1) with C1 = (0.01 x 255)^2 (the variances are 0, so the contrast and
    structure term is C2 / C2 = 1)."""
    from nerfstudio_methods.mononerf.released_metrics import released_psnr_ssim

    rgb = torch.full((20, 24, 3), 0.5)
    target = torch.full((20, 24, 3), 130 / 255)
    psnr, ssim = released_psnr_ssim(rgb, target)
    c1 = (0.01 * 255) ** 2
    assert psnr == pytest.approx(20 * math.log10(85), abs=1e-9)
    assert ssim == pytest.approx((2 * 127 * 130 + c1) / (127**2 + 130**2 + c1), abs=1e-9)
    # The same 8-bit image (a ramp; the render a hair above each level, which to8b truncates back): SSIM 1 and
    # cv2.PSNR's value for a zero error (its cap, far above any real PSNR).
    levels = torch.floor(torch.linspace(0, 1, 20 * 24 * 3).reshape(20, 24, 3) * 255) / 255
    same_psnr, same_ssim = released_psnr_ssim(levels + 1e-4, levels)
    assert same_ssim == pytest.approx(1.0, abs=1e-12) and same_psnr > 300


def test_dilate_mask_hand_example() -> None:
    from nerfstudio_methods.mononerf.model import dilate_mask

    mask = torch.zeros(6, 7, dtype=torch.bool)
    mask[0, 0] = mask[3, 4] = True
    grown = dilate_mask(mask, 1)
    expected = torch.zeros(6, 7, dtype=torch.bool)
    expected[0:2, 0:2] = True
    expected[2:5, 3:6] = True
    assert torch.equal(grown, expected)
    assert torch.equal(dilate_mask(mask, 0), mask)


def test_ndc_depths_against_a_per_sample_reference() -> None:
    """Evenly spaced depths in [0, 1]; stratified: sample i is drawn uniformly between the midpoints to its
    neighbours (the first from 0, the last up to 1), with the same random numbers as a plain loop reads them."""
    from nerfstudio_methods.mononerf.sampler import ndc_depths

    rays, samples = 5, 7
    plain = ndc_depths(rays, samples, "cpu", stratified=False)
    assert torch.allclose(plain, torch.linspace(0.0, 1.0, samples).expand(rays, samples))
    torch.manual_seed(11)
    stratified = ndc_depths(rays, samples, "cpu", stratified=True)
    torch.manual_seed(11)
    uniform = torch.rand(rays, samples)
    edges = [i / (samples - 1) for i in range(samples)]
    for r in range(rays):
        for i in range(samples):
            lower = edges[0] if i == 0 else 0.5 * (edges[i - 1] + edges[i])
            upper = edges[-1] if i == samples - 1 else 0.5 * (edges[i] + edges[i + 1])
            expected = lower + (upper - lower) * float(uniform[r, i])
            assert abs(float(stratified[r, i]) - expected) < 1e-6, (r, i)
