"""Poses for InfoNeRF's extra rays: neighbour cameras (B2) and unseen viewpoints (B1), camera-to-world ``[n, 3, 4]``
matrices in nerfstudio's (OpenGL) convention: the camera looks along its -z axis, +y is up in the image.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor


def rotation_xyz(angles: Float[Tensor, "n 3"]) -> Float[Tensor, "n 3 3"]:
    """``Rx(x) @ Ry(y) @ Rz(z)`` for angles ``(x, y, z)`` in radians (``GetNearC2W``'s composition)."""
    cos, sin = angles.cos(), angles.sin()
    one, zero = torch.ones_like(angles[:, 0]), torch.zeros_like(angles[:, 0])

    def stack(rows: list[list[Tensor]]) -> Tensor:
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)

    cx, cy, cz = cos.unbind(-1)
    sx, sy, sz = sin.unbind(-1)
    rx = stack([[one, zero, zero], [zero, cx, -sx], [zero, sx, cx]])
    ry = stack([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rz = stack([[cz, -sz, zero], [sz, cz, zero], [zero, zero, one]])
    return rx @ ry @ rz


def euler_xyz(rotations: Float[Tensor, "n 3 3"]) -> Float[Tensor, "n 3"]:
    """Inverse of :func:`rotation_xyz` for angles within (-90 deg, 90 deg)."""
    x = torch.atan2(-rotations[:, 1, 2], rotations[:, 2, 2])
    y = torch.asin(rotations[:, 0, 2].clamp(-1.0, 1.0))
    z = torch.atan2(-rotations[:, 0, 1], rotations[:, 0, 0])
    return torch.stack([x, y, z], dim=-1)


def rotation_angle(rotations: Float[Tensor, "n 3 3"]) -> Float[Tensor, " n"]:
    """The angle (radians) of each rotation about its axis."""
    trace = rotations.diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.acos(((trace - 1.0) / 2.0).clamp(-1.0, 1.0))


def random_neighbour_rotations(
    n: int, max_degrees: float, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Float[Tensor, "n 3 3"]:
    """``n`` rotations ``Rx(x) Ry(y) Rz(z)`` with x, y, z ~ U[-max_degrees, max_degrees] each (``near_c2w_rot``)."""
    bound = math.radians(max_degrees)
    angles = (torch.rand(n, 3, generator=generator) * 2.0 - 1.0) * bound
    return rotation_xyz(angles).to(device)


def rotate_about_origin(
    camera_to_worlds: Float[Tensor, "n 3 4"], rotations: Float[Tensor, "n 3 3"]
) -> Float[Tensor, "n 3 4"]:
    """``[R @ Rot | R @ t]``: each camera rotated rigidly about the world origin (``near_c2w_type='rot_from_origin'``)."""
    return rotations @ camera_to_worlds


def look_at(
    positions: Float[Tensor, "n 3"], target: Float[Tensor, " 3"], up: Float[Tensor, " 3"]
) -> Float[Tensor, "n 3 4"]:
    """Cameras at ``positions`` looking at ``target`` with image-up as close to ``up`` as possible (OpenGL axes)."""
    back = torch.nn.functional.normalize(positions - target, dim=-1)  # camera +z points away from the target
    right = torch.nn.functional.normalize(torch.cross(up.expand_as(back), back, dim=-1), dim=-1)
    true_up = torch.cross(back, right, dim=-1)
    return torch.stack([right, true_up, back, positions], dim=-1)


def _orthonormal_basis(up: Tensor) -> tuple[Tensor, Tensor]:
    helper = torch.tensor([1.0, 0.0, 0.0]) if abs(float(up[0])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
    e1 = torch.nn.functional.normalize(torch.cross(up, helper.to(up), dim=0), dim=0)
    return e1, torch.cross(up, e1, dim=0)


def orbit_up_axis(camera_to_worlds: Float[Tensor, "m 3 4"]) -> Float[Tensor, " 3"]:
    """The world up axis of an orbit rig: the direction most orthogonal to every camera's right (x) axis (orbit
    cameras have no roll), signed like the cameras' mean image-up; the mean image-up when that is ambiguous."""
    rights = camera_to_worlds[:, :, 0].double()
    mean_up = camera_to_worlds[:, :, 1].double().mean(dim=0)
    eigenvalues, eigenvectors = torch.linalg.eigh(rights.T @ rights)
    if len(rights) >= 2 and eigenvalues[1] - eigenvalues[0] > 1e-3 * eigenvalues[2]:
        up = eigenvectors[:, 0]
        up = up if torch.dot(up, mean_up) >= 0 else -up
    else:
        up = mean_up if mean_up.norm() > 1e-6 else torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    return torch.nn.functional.normalize(up, dim=0).to(camera_to_worlds.dtype)


def random_orbit_poses(
    n: int,
    train_camera_to_worlds: Float[Tensor, "m 3 4"],
    elevation_margin_degrees: float = 10.0,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "n 3 4"]:
    """``n`` random cameras on the training cameras' orbit, looking at the world origin.

    The orbit's up axis is :func:`orbit_up_axis` of the training cameras; its radius is drawn between the smallest and
    largest camera distance to the origin; elevations (relative to that up axis) are drawn area-uniformly between the
    training cameras' lowest and highest elevation widened by ``elevation_margin_degrees``; azimuths are uniform.
    Uses only training poses, so it never sees a held-out pose (the "clean" mode of B1).
    """
    c2w = train_camera_to_worlds.detach().float().cpu()
    centres = c2w[:, :, 3]
    radii = centres.norm(dim=-1)
    up = orbit_up_axis(c2w)
    elevations = torch.asin((centres / radii[:, None].clamp_min(1e-9) @ up).clamp(-1.0, 1.0))
    margin = math.radians(elevation_margin_degrees)
    limit = math.radians(89.0)
    low = max(float(elevations.min()) - margin, -limit)
    high = min(float(elevations.max()) + margin, limit)
    uniform = torch.rand(n, 3, generator=generator)
    sin_elevation = math.sin(low) + uniform[:, 0] * (math.sin(high) - math.sin(low))
    elevation = torch.asin(sin_elevation)
    azimuth = uniform[:, 1] * 2.0 * math.pi
    radius = radii.min() + uniform[:, 2] * (radii.max() - radii.min())
    e1, e2 = _orthonormal_basis(up)
    direction = (
        elevation.cos()[:, None] * (azimuth.cos()[:, None] * e1 + azimuth.sin()[:, None] * e2)
        + elevation.sin()[:, None] * up
    )
    return look_at(radius[:, None] * direction, torch.zeros(3), up).to(train_camera_to_worlds)


def random_perturbed_poses(
    n: int,
    train_camera_to_worlds: Float[Tensor, "m 3 4"],
    max_degrees: float = 30.0,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "n 3 4"]:
    """``n`` training poses (drawn with replacement) each rotated about the origin by ``Rx Ry Rz``, angles
    ~ U[-max_degrees, max_degrees]. Uses only training poses (clean mode)."""
    picks = torch.randint(len(train_camera_to_worlds), (n,), generator=generator)
    rotations = random_neighbour_rotations(n, max_degrees, generator=generator)
    c2w = train_camera_to_worlds.detach()[picks.to(train_camera_to_worlds.device)]
    return rotate_about_origin(c2w, rotations.to(c2w))
