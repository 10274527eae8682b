"""Pinhole cameras with OpenGL camera-to-world poses, camera rigs, ray generation and point projection.

Conventions follow nerfstudio (docs.nerf.studio "Coordinate conventions"): camera axes x right, y up, z back (the
camera looks along -z), ``camera_to_world`` is a 3x4 ``[R | centre]``; pixel ``(row i, column j)`` has its centre at
image coordinates ``(x, y) = (j + 0.5, i + 0.5)`` with x to the right and y down, as nerfstudio's ray generator uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from jaxtyping import Float

AXES = {
    "+x": (1.0, 0.0, 0.0),
    "-x": (-1.0, 0.0, 0.0),
    "+y": (0.0, 1.0, 0.0),
    "-y": (0.0, -1.0, 0.0),
    "+z": (0.0, 0.0, 1.0),
    "-z": (0.0, 0.0, -1.0),
}

OPENCV_FROM_OPENGL = np.diag([1.0, -1.0, -1.0])
"""Flip of the camera's y and z axes: OpenGL (x right, y up, z back) <-> OpenCV (x right, y down, z forward)."""


def _axis(value: str | Float[np.ndarray, "3"] | tuple[float, float, float]) -> Float[np.ndarray, "3"]:
    vector = np.asarray(AXES[value] if isinstance(value, str) else value, dtype=np.float64)
    norm = np.linalg.norm(vector)
    if vector.shape != (3,) or not norm > 0:
        raise ValueError(f"expected an axis name {sorted(AXES)} or a non-zero 3-vector, got {value!r}")
    return vector / norm


@dataclass(frozen=True, eq=False)
class PinholeCamera:
    """An ideal pinhole camera (no distortion)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    camera_to_world: Float[np.ndarray, "3 4"]
    """OpenGL camera-to-world ``[right | up | back | centre]``."""

    def __post_init__(self) -> None:
        c2w = np.asarray(self.camera_to_world, dtype=np.float64)
        if c2w.shape == (4, 4):
            c2w = c2w[:3]
        if c2w.shape != (3, 4):
            raise ValueError(f"camera_to_world must be 3x4 or 4x4, got {c2w.shape}")
        object.__setattr__(self, "camera_to_world", c2w)
        if self.width < 1 or self.height < 1:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError("focal lengths must be positive")

    @classmethod
    def centred(cls, focal: float, width: int, height: int, camera_to_world: Float[np.ndarray, "3 4"]) -> PinholeCamera:
        """Square pixels and the principal point at the image centre, as every rig here uses."""
        return cls(
            fx=focal,
            fy=focal,
            cx=width / 2.0,
            cy=height / 2.0,
            width=width,
            height=height,
            camera_to_world=camera_to_world,
        )

    @property
    def centre(self) -> Float[np.ndarray, "3"]:
        return self.camera_to_world[:, 3]

    @property
    def rotation(self) -> Float[np.ndarray, "3 3"]:
        return self.camera_to_world[:, :3]

    @property
    def forward(self) -> Float[np.ndarray, "3"]:
        """Viewing direction (the camera's -z axis) in world coordinates."""
        return -self.camera_to_world[:, 2]

    @property
    def intrinsics(self) -> Float[np.ndarray, "3 3"]:
        """OpenCV-style K for x right / y down pixel coordinates."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def camera_to_world_4x4(self) -> Float[np.ndarray, "4 4"]:
        return np.concatenate([self.camera_to_world, [[0.0, 0.0, 0.0, 1.0]]], axis=0)

    def camera_to_world_opencv(self) -> Float[np.ndarray, "4 4"]:
        """4x4 camera-to-world with OpenCV camera axes: ``c2w_gl @ diag(1, -1, -1, 1)``."""
        return self.camera_to_world_4x4() @ np.diag([1.0, -1.0, -1.0, 1.0])

    def world_to_camera_opencv(self) -> Float[np.ndarray, "4 4"]:
        """4x4 world-to-camera with OpenCV camera axes (the extrinsics of a projection ``K [R | t]``)."""
        rotation = (self.rotation @ OPENCV_FROM_OPENGL).T
        matrix = np.eye(4)
        matrix[:3, :3] = rotation
        matrix[:3, 3] = -rotation @ self.centre
        return matrix

    def pixel_centres(self) -> Float[np.ndarray, "h w 2"]:
        """Image coordinates ``(x, y)`` of every pixel centre."""
        xs, ys = np.meshgrid(np.arange(self.width) + 0.5, np.arange(self.height) + 0.5, indexing="xy")
        return np.stack([xs, ys], axis=-1)

    def rays_through(
        self, pixels: Float[np.ndarray, "*b 2"]
    ) -> tuple[Float[np.ndarray, "*b 3"], Float[np.ndarray, "*b 3"]]:
        """Origins and unit world directions of rays through image coordinates ``(x, y)``."""
        pixels = np.asarray(pixels, dtype=np.float64)
        local = np.stack(
            [
                (pixels[..., 0] - self.cx) / self.fx,
                -(pixels[..., 1] - self.cy) / self.fy,  # image y grows downwards, camera y upwards
                -np.ones(pixels.shape[:-1]),  # the camera looks along its -z axis
            ],
            axis=-1,
        )
        directions = local @ self.rotation.T
        directions = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
        origins = np.broadcast_to(self.centre, directions.shape).copy()
        return origins, directions

    def rays(self) -> tuple[Float[np.ndarray, "h w 3"], Float[np.ndarray, "h w 3"]]:
        """Rays through every pixel centre, shaped ``(height, width, 3)``."""
        return self.rays_through(self.pixel_centres())

    def project(self, points: Float[np.ndarray, "*b 3"]) -> tuple[Float[np.ndarray, "*b 2"], Float[np.ndarray, "*b"]]:
        """Image coordinates ``(x, y)`` of world points and their depth along the viewing axis (> 0 in front)."""
        local: np.ndarray = (np.asarray(points, dtype=np.float64) - self.centre) @ self.rotation
        depth = -local[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = self.cx + self.fx * local[..., 0] / depth
            y = self.cy - self.fy * local[..., 1] / depth
        return np.stack([x, y], axis=-1), depth

    def z_depth(self, distance: Float[np.ndarray, "h w"]) -> Float[np.ndarray, "h w"]:
        """Convert per-pixel distance along the unit ray to depth along the camera's viewing axis."""
        _, directions = self.rays()
        return distance * (directions @ self.forward)

    def scaled(self, factor: int) -> PinholeCamera:
        """The camera for images downscaled by an integer ``factor`` (same pose, intrinsics divided by it)."""
        if factor < 1 or self.width % factor or self.height % factor:
            raise ValueError(f"{self.width}x{self.height} is not divisible by factor {factor}")
        return PinholeCamera(
            fx=self.fx / factor,
            fy=self.fy / factor,
            cx=self.cx / factor,
            cy=self.cy / factor,
            width=self.width // factor,
            height=self.height // factor,
            camera_to_world=self.camera_to_world,
        )


def look_at(
    eye: Float[np.ndarray, "3"],
    target: Float[np.ndarray, "3"],
    up: str | Float[np.ndarray, "3"] = "+z",
) -> Float[np.ndarray, "3 4"]:
    """OpenGL camera-to-world for a camera at ``eye`` looking at ``target`` with ``up`` roughly upwards in the image."""
    eye = np.asarray(eye, dtype=np.float64)
    back = eye - np.asarray(target, dtype=np.float64)
    back = back / np.linalg.norm(back)
    right = np.cross(_axis(up), back)
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("viewing direction is parallel to the up vector")
    right = right / np.linalg.norm(right)
    true_up = np.cross(back, right)
    return np.stack([right, true_up, back, eye], axis=1)


def focal_from_fov(width: int, fov_x_degrees: float) -> float:
    """Focal length in pixels for a horizontal field of view (Blender's ``camera_angle_x``)."""
    return 0.5 * width / math.tan(0.5 * math.radians(fov_x_degrees))


def sphere_rig(
    num_cameras: int,
    width: int,
    height: int,
    radius: float = 4.0,
    fov_x_degrees: float = 40.0,
    up: str | Float[np.ndarray, "3"] = "+z",
    pole: str | Float[np.ndarray, "3"] | None = None,
    min_elevation_degrees: float = 10.0,
    max_elevation_degrees: float = 70.0,
    seed: int = 0,
    target: Float[np.ndarray, "3"] | None = None,
) -> list[PinholeCamera]:
    """Cameras on a spherical cap of ``radius`` around ``target`` (default origin), all looking at it.

    Positions follow a Fibonacci spiral between the two elevations (measured from the plane orthogonal to ``pole``,
    which defaults to ``up``), rotated about the pole by a seed-dependent angle, so views are evenly spread and
    deterministic. ``up="+z"`` matches the NeRF-synthetic / SRN worlds (z up); ``"+y"`` a y-up world.
    """
    if num_cameras < 1:
        raise ValueError("num_cameras must be >= 1")
    if not -90 < min_elevation_degrees <= max_elevation_degrees < 90:
        raise ValueError("need -90 < min_elevation <= max_elevation < 90 degrees")
    up_axis = _axis(up)
    pole_axis = up_axis if pole is None else _axis(pole)
    # Orthonormal frame (e1, e2, pole) for azimuths.
    helper = np.array([1.0, 0.0, 0.0]) if abs(pole_axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(pole_axis, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(pole_axis, e1)
    centre = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    offset = float(np.random.default_rng(seed).uniform(0, 2 * math.pi))
    golden = math.pi * (3.0 - math.sqrt(5.0))
    sin_lo, sin_hi = math.sin(math.radians(min_elevation_degrees)), math.sin(math.radians(max_elevation_degrees))
    focal = focal_from_fov(width, fov_x_degrees)
    cameras = []
    for index in range(num_cameras):
        fraction = (index + 0.5) / num_cameras
        sin_elev = sin_lo + (sin_hi - sin_lo) * fraction
        cos_elev = math.sqrt(max(0.0, 1.0 - sin_elev**2))
        azimuth = offset + golden * index
        direction = cos_elev * (math.cos(azimuth) * e1 + math.sin(azimuth) * e2) + sin_elev * pole_axis
        cameras.append(
            PinholeCamera.centred(focal, width, height, look_at(centre + radius * direction, centre, up_axis))
        )
    return cameras


def forward_facing_rig(
    num_cameras: int,
    width: int,
    height: int,
    spread: float = 0.3,
    focus_distance: float = 4.0,
    fov_x_degrees: float = 55.0,
    seed: int = 0,
    layout: Literal["spiral", "line"] = "spiral",
) -> list[PinholeCamera]:
    """Cameras near the origin facing -z, as in LLFF / N3DV / NVIDIA captures (world up +y).

    ``layout="spiral"``: camera 0 is at the origin (N3DV's ``cam00`` is the centre reference camera); the others lie
    on a spiral in the z = 0 plane with radius up to ``spread``. ``layout="line"``: cameras ordered left to right
    along x in [-spread, spread] with a small up/down zig-zag, so consecutive cameras are neighbours (the NVIDIA
    rig, where frame i is taken by camera i). Both add a small seed-dependent z jitter and turn every camera towards
    ``(0, 0, -focus_distance)`` so the rig converges slightly, as real forward-facing rigs do.
    """
    if num_cameras < 1:
        raise ValueError("num_cameras must be >= 1")
    if layout not in ("spiral", "line"):
        raise ValueError(f"unknown rig layout {layout!r}")
    rng = np.random.default_rng(seed)
    golden = math.pi * (3.0 - math.sqrt(5.0))
    phase = float(rng.uniform(0, 2 * math.pi))
    focal = focal_from_fov(width, fov_x_degrees)
    target = np.array([0.0, 0.0, -focus_distance])
    cameras = []
    for index in range(num_cameras):
        if layout == "line":
            x = spread * (2.0 * index / max(num_cameras - 1, 1) - 1.0) if num_cameras > 1 else 0.0
            y = 0.15 * spread * (1.0 if index % 2 else -1.0)
            eye = np.array([x, y, rng.uniform(-0.05, 0.05) * spread])
        elif index == 0:
            eye = np.zeros(3)
        else:
            radius = spread * math.sqrt(index / max(num_cameras - 1, 1))
            angle = phase + golden * index
            eye = np.array([radius * math.cos(angle), radius * math.sin(angle), rng.uniform(-0.05, 0.05) * spread])
        cameras.append(PinholeCamera.centred(focal, width, height, look_at(eye, target, "+y")))
    return cameras
