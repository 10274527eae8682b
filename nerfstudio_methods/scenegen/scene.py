"""Analytic scenes of spheres, rendered exactly by volume rendering a piecewise-constant density field.

Every primitive has a constant density ``sigma`` inside it (``inf`` = opaque surface) and a constant color, or for
opaque primitives a procedural surface texture. Along one ray the field is therefore piecewise constant between the
points where the ray enters or leaves a primitive, so the volume rendering integral

    C = int T(t) sigma(t) c(t) dt,   T(t) = exp(-int_near^t sigma(s) ds)

has a closed form on every segment (no sampling, no quadrature error). The renderer sorts each ray's interval
endpoints, integrates each segment in closed form and lets the first opaque primitive terminate the ray.

Objects may move over normalised time ``t`` in [0, 1] by rigid translation (linear drift plus an optional circular
orbit). Their textures are attached to the object (a function of the direction from the object's centre), so optical
flow of a surface point is exactly the object's displacement, which :mod:`nerfstudio_methods.scenegen.groundtruth`
uses for exact flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from jaxtyping import Bool, Float, Int

TextureKind = Literal["checker", "stripes", "smooth"]


def _vec3(value: object, name: str) -> Float[np.ndarray, "3"]:
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.shape != (3,) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be 3 finite numbers, got {value!r}")
    return array


@dataclass(frozen=True, eq=False)
class Texture:
    """Procedural surface texture of an opaque sphere, a function of the unit direction from the sphere's centre.

    The pattern is evaluated in spherical angles of that direction (polar angle from +z, azimuth around +z), so it
    moves rigidly with the sphere's centre and multi-view / multi-frame reconstruction has something to match.
    """

    kind: TextureKind
    color_b: Float[np.ndarray, "3"]
    """Second color; the primitive's own ``color`` is the first."""
    frequency: int = 4
    """Number of pattern cells per half turn (polar) and per half turn (azimuth)."""
    pole: int = 2
    """World axis (0, 1, 2 = x, y, z) of the pattern's pole; put it out of view, the pattern converges there."""

    def __post_init__(self) -> None:
        if self.kind not in ("checker", "stripes", "smooth"):
            raise ValueError(f"unknown texture kind {self.kind!r}")
        if self.frequency < 1:
            raise ValueError("texture frequency must be >= 1")
        if self.pole not in (0, 1, 2):
            raise ValueError("texture pole must be axis 0, 1 or 2")
        object.__setattr__(self, "color_b", _vec3(self.color_b, "color_b"))

    def mix_weight(self, direction: Float[np.ndarray, "n 3"]) -> Float[np.ndarray, " n"]:
        """Weight of ``color_b`` in [0, 1] at unit directions from the centre."""
        # Cyclic axis order keeps the frame right-handed for every pole.
        first, second = (self.pole + 1) % 3, (self.pole + 2) % 3
        polar = np.arccos(np.clip(direction[:, self.pole], -1.0, 1.0))
        azimuth = np.arctan2(direction[:, second], direction[:, first])
        if self.kind == "smooth":
            # Smooth, band-limited pattern: survives video compression and downscaling without aliasing.
            return 0.5 + 0.5 * np.sin(self.frequency * azimuth) * np.sin(self.frequency * polar)
        polar_cell = np.floor(polar * self.frequency / math.pi)
        if self.kind == "stripes":
            return np.mod(polar_cell, 2.0)
        azimuth_cell = np.floor(azimuth * self.frequency / math.pi)
        return np.mod(polar_cell + azimuth_cell, 2.0)


@dataclass(frozen=True, eq=False)
class Sphere:
    """A ball of constant density (or an opaque sphere surface), possibly moving by rigid translation.

    With ``inside_out=True`` the occupied region is everything *outside* the sphere: an enclosing backdrop shell,
    so that rays of forward-facing cameras placed inside it hit something in every direction.
    """

    center: Float[np.ndarray, "3"]
    """Centre at time 0."""
    radius: float
    sigma: float
    """Density (1 / world unit) inside the primitive; ``math.inf`` makes it an opaque surface."""
    color: Float[np.ndarray, "3"]
    """Linear RGB in [0, 1]."""
    texture: Texture | None = None
    """Only for opaque primitives: a translucent volume has one constant color so segments integrate exactly."""
    velocity: Float[np.ndarray, "3"] = field(default_factory=lambda: np.zeros(3))
    """Linear drift, world units per unit of normalised time."""
    orbit_radius: float = 0.0
    """Radius of an additional circular motion in the plane spanned by ``orbit_axes``."""
    orbit_turns: float = 0.0
    """Turns of the circular motion over t in [0, 1]."""
    orbit_phase: float = 0.0
    orbit_axes: tuple[int, int] = (0, 1)
    """World axes of the orbit plane (default the xy plane)."""
    inside_out: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _vec3(self.center, "center"))
        object.__setattr__(self, "color", _vec3(self.color, "color"))
        object.__setattr__(self, "velocity", _vec3(self.velocity, "velocity"))
        if not (self.radius > 0 and math.isfinite(self.radius)):
            raise ValueError(f"sphere radius must be positive and finite, got {self.radius}")
        if not self.sigma > 0:
            raise ValueError(f"sphere density sigma must be > 0 (inf for opaque), got {self.sigma}")
        if self.texture is not None and not self.is_opaque:
            raise ValueError("only opaque primitives (sigma = inf) may have a texture")
        if np.any(self.color < 0) or np.any(self.color > 1):
            raise ValueError("color must lie in [0, 1]")

    @property
    def is_opaque(self) -> bool:
        return math.isinf(self.sigma)

    @property
    def is_moving(self) -> bool:
        return bool(np.any(self.velocity != 0)) or (self.orbit_radius != 0 and self.orbit_turns != 0)

    def center_at(self, time: float) -> Float[np.ndarray, "3"]:
        """Centre at normalised time ``time``: linear drift plus circular orbit (both zero at t = 0)."""
        center = self.center + self.velocity * time
        if self.orbit_radius != 0:
            angle = self.orbit_phase + 2.0 * math.pi * self.orbit_turns * time
            offset = np.zeros(3)
            first, second = self.orbit_axes
            offset[first] = math.cos(angle) - math.cos(self.orbit_phase)
            offset[second] = math.sin(angle) - math.sin(self.orbit_phase)
            center = center + self.orbit_radius * offset
        return center

    def displacement(self, time_from: float, time_to: float) -> Float[np.ndarray, "3"]:
        """Translation that carries the object (and every point on it) from ``time_from`` to ``time_to``."""
        return self.center_at(time_to) - self.center_at(time_from)

    def intersect(
        self, origins: Float[np.ndarray, "n 3"], directions: Float[np.ndarray, "n 3"], time: float
    ) -> tuple[Float[np.ndarray, " n"], Float[np.ndarray, " n"]]:
        """Occupied interval ``[enter, leave]`` of each ray (unit ``directions``); ``(inf, inf)`` where missed.

        For an inside-out shell the interval is ``[exit point of the sphere, inf)``; the ray origin must then lie
        inside the sphere (checked by :meth:`Scene.render`).
        """
        offset = origins - self.center_at(time)[None, :]
        half_b = np.einsum("ij,ij->i", offset, directions)
        c = np.einsum("ij,ij->i", offset, offset) - self.radius**2
        disc = half_b**2 - c
        hit = disc >= 0
        root = np.sqrt(np.where(hit, disc, 0.0))
        enter = np.where(hit, -half_b - root, np.inf)
        leave = np.where(hit, -half_b + root, np.inf)
        if self.inside_out:
            return leave, np.full_like(leave, np.inf)
        return enter, leave

    def surface_color(self, points: Float[np.ndarray, "n 3"], time: float) -> Float[np.ndarray, "n 3"]:
        """Color at surface points (constant color if untextured)."""
        if self.texture is None:
            return np.broadcast_to(self.color, points.shape).copy()
        direction = points - self.center_at(time)[None, :]
        direction = direction / np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-12)
        weight = self.texture.mix_weight(direction)[:, None]
        return (1.0 - weight) * self.color[None, :] + weight * self.texture.color_b[None, :]


@dataclass(frozen=True)
class RenderResult:
    """Per-ray outputs of :meth:`Scene.render` (leading dimensions are those of the input rays)."""

    rgb: Float[np.ndarray, "*b 3"]
    """Color composited over the background: ``sum_i w_i c_i + (1 - accumulation) * background``."""
    accumulation: Float[np.ndarray, "*b"]
    """Opacity (alpha) of the ray, ``1 - T(far)``."""
    depth: Float[np.ndarray, "*b"]
    """Expected termination distance along the (unit) ray, normalised by accumulation like nerfstudio's
    ``DepthRenderer(method="expected")``; ``inf`` where nothing is hit."""
    first_hit_distance: Float[np.ndarray, "*b"]
    """Distance to the first point with positive density; ``inf`` where none."""
    first_hit: Float[np.ndarray, "*b 3"]
    """World point at ``first_hit_distance`` (NaN where none)."""
    primitive_id: Int[np.ndarray, "*b"]
    """Index of the primitive that contributes the most weight, or -1 if no primitive contributes."""
    hit_distance: Float[np.ndarray, "*b"]
    """Distance at which the ray enters the dominant primitive (``inf`` where ``primitive_id == -1``)."""
    hit_point: Float[np.ndarray, "*b 3"]
    """World point at ``hit_distance``: the surface point of the dominant primitive (NaN where none)."""
    primitive_weights: Float[np.ndarray, "*b p"]
    """Total weight of every primitive along the ray (sums to ``accumulation``)."""

    def reshape(self, *shape: int) -> RenderResult:
        """The same result with the ray dimensions reshaped (e.g. to ``(height, width)``)."""
        return RenderResult(
            rgb=self.rgb.reshape(*shape, 3),
            accumulation=self.accumulation.reshape(shape),
            depth=self.depth.reshape(shape),
            first_hit_distance=self.first_hit_distance.reshape(shape),
            first_hit=self.first_hit.reshape(*shape, 3),
            primitive_id=self.primitive_id.reshape(shape),
            hit_distance=self.hit_distance.reshape(shape),
            hit_point=self.hit_point.reshape(*shape, 3),
            primitive_weights=self.primitive_weights.reshape(*shape, self.primitive_weights.shape[-1]),
        )


def _segment_moment(sigma: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``int_0^L u * sigma * exp(-sigma u) du`` in closed form, stable for small, zero and infinite ``sigma * L``."""
    with np.errstate(invalid="ignore"):
        tau = np.where(sigma > 0, sigma * length, 0.0)
    safe_sigma = np.where(sigma > 0, sigma, 1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        # (1 - e^-tau (1 + tau)) / sigma; e^-tau * tau -> 0 as tau -> inf.
        tail = np.where(np.isfinite(tau), np.exp(-tau) * tau, 0.0)
        exact = (-np.expm1(-tau) - tail) / safe_sigma
        # Series 1 - e^-x (1 + x) = x^2/2 - x^3/3 + x^4/8 avoids cancellation for tiny tau.
        series = length * tau * (0.5 - tau / 3.0 + tau**2 / 8.0)
    result = np.where(tau < 1e-3, series, exact)
    return np.where(sigma > 0, result, 0.0)


@dataclass(frozen=True, eq=False)
class Scene:
    """A set of primitives plus a background color for rays that escape."""

    primitives: tuple[Sphere, ...]
    background: Float[np.ndarray, "3"] = field(default_factory=lambda: np.ones(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "primitives", tuple(self.primitives))
        object.__setattr__(self, "background", _vec3(self.background, "background"))
        if not self.primitives:
            raise ValueError("a scene needs at least one primitive")

    @property
    def moving_ids(self) -> list[int]:
        return [i for i, p in enumerate(self.primitives) if p.is_moving]

    @property
    def is_dynamic(self) -> bool:
        return bool(self.moving_ids)

    def displacements(
        self, primitive_id: Int[np.ndarray, "*b"], time_from: float, time_to: float
    ) -> Float[np.ndarray, "*b 3"]:
        """Displacement of the primitive with each id between two times (zero where id is -1)."""
        table = np.zeros((len(self.primitives) + 1, 3))
        for index, primitive in enumerate(self.primitives):
            table[index] = primitive.displacement(time_from, time_to)
        return table[np.where(primitive_id >= 0, primitive_id, len(self.primitives))]

    def render(
        self,
        origins: Float[np.ndarray, "*b 3"],
        directions: Float[np.ndarray, "*b 3"],
        time: float = 0.0,
        near: float = 0.0,
        far: float = math.inf,
        background: Float[np.ndarray, "3"] | None = None,
    ) -> RenderResult:
        """Render rays exactly. ``directions`` need not be unit length; distances are along unit directions."""
        batch_shape = np.broadcast_shapes(np.shape(origins), np.shape(directions))[:-1]
        origins = np.broadcast_to(np.asarray(origins, dtype=np.float64), (*batch_shape, 3)).reshape(-1, 3)
        directions = np.broadcast_to(np.asarray(directions, dtype=np.float64), (*batch_shape, 3)).reshape(-1, 3)
        norms = np.linalg.norm(directions, axis=-1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("ray directions must be non-zero")
        directions = directions / norms
        if not 0 <= near < far:
            raise ValueError(f"need 0 <= near < far, got near={near}, far={far}")
        background = self.background if background is None else _vec3(background, "background")
        result = self._render_flat(origins, directions, float(time), float(near), float(far), background)
        return result.reshape(*batch_shape)

    def _render_flat(
        self,
        origins: Float[np.ndarray, "n 3"],
        directions: Float[np.ndarray, "n 3"],
        time: float,
        near: float,
        far: float,
        background: Float[np.ndarray, "3"],
    ) -> RenderResult:
        num_rays, num_prims = origins.shape[0], len(self.primitives)
        enter = np.empty((num_rays, num_prims))
        leave = np.empty((num_rays, num_prims))
        for index, primitive in enumerate(self.primitives):
            if primitive.inside_out:
                inside = np.linalg.norm(origins - primitive.center_at(time), axis=-1) < primitive.radius
                if not np.all(inside):
                    raise ValueError(f"ray origins must lie inside the inside-out shell {primitive.name or index}")
            enter[:, index], leave[:, index] = primitive.intersect(origins, directions, time)
        # Clip the occupied intervals to [near, far]; an empty clipped interval does not touch the ray.
        enter = np.maximum(enter, near)
        leave = np.minimum(leave, far)
        touched = enter < leave
        enter = np.where(touched, enter, np.inf)
        leave = np.where(touched, leave, np.inf)

        opaque = np.array([p.is_opaque for p in self.primitives])
        sigma = np.array([0.0 if p.is_opaque else p.sigma for p in self.primitives])
        # The nearest opaque entry ends the ray: nothing behind it receives weight.
        opaque_enter = np.where(opaque[None, :], enter, np.inf)
        opaque_id = np.argmin(opaque_enter, axis=1)
        t_opaque = opaque_enter[np.arange(num_rays), opaque_id]
        t_end = np.minimum(t_opaque, far)

        # Translucent intervals clipped to [near, t_end]; their endpoints split the ray into constant segments.
        translucent = ~opaque
        seg_enter = np.where(translucent[None, :], np.minimum(enter, t_end[:, None]), t_end[:, None])
        seg_leave = np.where(translucent[None, :], np.minimum(leave, t_end[:, None]), t_end[:, None])
        ends = np.concatenate(
            [np.full((num_rays, 1), near), seg_enter, seg_leave, t_end[:, None]],
            axis=1,
        )
        ends = np.sort(ends, axis=1)
        starts, stops = ends[:, :-1], ends[:, 1:]
        finite_start = np.isfinite(starts)
        with np.errstate(invalid="ignore"):
            length = np.where(finite_start, stops - starts, 0.0)
            mid = np.where(np.isfinite(stops), 0.5 * (starts + stops), starts + 1.0)
        # member[r, k, p]: segment k of ray r lies inside translucent primitive p.
        member = (
            (enter[:, None, :] <= mid[:, :, None])
            & (mid[:, :, None] <= leave[:, None, :])
            & translucent[None, None, :]
            & finite_start[:, :, None]
            & (length[:, :, None] > 0)
        )
        seg_sigma = member.astype(np.float64) @ sigma
        with np.errstate(invalid="ignore"):
            tau = np.where(seg_sigma > 0, seg_sigma * length, 0.0)
        # Exclusive prefix sum (not cumsum - tau, which is inf - inf = NaN behind an infinite segment).
        optical_depth_before = np.concatenate([np.zeros((num_rays, 1)), np.cumsum(tau, axis=1)[:, :-1]], axis=1)
        transmittance_before = np.exp(-optical_depth_before)
        seg_alpha = -np.expm1(-tau)
        seg_weight = transmittance_before * seg_alpha
        # Within a segment every overlapping primitive contributes in proportion to its density.
        share = np.where(member, sigma[None, None, :], 0.0) / np.where(seg_sigma > 0, seg_sigma, 1.0)[:, :, None]
        prim_weight = np.einsum("rk,rkp->rp", seg_weight, share)
        depth_sum = np.sum(
            transmittance_before
            * (np.where(finite_start, starts, 0.0) * seg_alpha + _segment_moment(seg_sigma, length)),
            axis=1,
        )
        transmittance_end = np.exp(-np.sum(tau, axis=1))

        colors = np.stack([p.color for p in self.primitives])
        rgb = prim_weight @ colors
        hits_opaque = np.isfinite(t_opaque)
        if np.any(hits_opaque):
            rows = np.nonzero(hits_opaque)[0]
            opaque_weight = transmittance_end[rows]
            prim_weight[rows, opaque_id[rows]] += opaque_weight
            depth_sum[rows] += opaque_weight * t_opaque[rows]
            points = origins[rows] + t_opaque[rows, None] * directions[rows]
            for index in np.unique(opaque_id[rows]):
                sel = opaque_id[rows] == index
                surface = self.primitives[index].surface_color(points[sel], time)
                rgb[rows[sel]] += opaque_weight[sel, None] * surface
        accumulation = np.sum(prim_weight, axis=1)
        rgb = rgb + (1.0 - accumulation)[:, None] * background[None, :]
        hit_any = accumulation > 0
        depth = np.where(hit_any, depth_sum / np.where(hit_any, accumulation, 1.0), np.inf)

        # First point with positive density: the nearest entry of any touched primitive.
        first_id = np.argmin(enter, axis=1)
        first_hit_distance = enter[np.arange(num_rays), first_id]
        first_hit_distance = np.where(first_hit_distance <= t_end, first_hit_distance, np.inf)
        dominant = np.argmax(prim_weight, axis=1)
        has_dominant = prim_weight[np.arange(num_rays), dominant] > 0
        primitive_id = np.where(has_dominant, dominant, -1)
        hit_distance = np.where(has_dominant, enter[np.arange(num_rays), dominant], np.inf)
        return RenderResult(
            rgb=rgb,
            accumulation=accumulation,
            depth=depth,
            first_hit_distance=first_hit_distance,
            first_hit=_points_at(origins, directions, first_hit_distance),
            primitive_id=primitive_id.astype(np.int64),
            hit_distance=hit_distance,
            hit_point=_points_at(origins, directions, hit_distance),
            primitive_weights=prim_weight,
        )


def _points_at(
    origins: Float[np.ndarray, "n 3"], directions: Float[np.ndarray, "n 3"], distance: Float[np.ndarray, " n"]
) -> Float[np.ndarray, "n 3"]:
    finite = np.isfinite(distance)
    points = origins + np.where(finite, distance, 0.0)[:, None] * directions
    return np.where(finite[:, None], points, np.nan)


def moving_mask(scene: Scene, primitive_id: Int[np.ndarray, "*b"]) -> Bool[np.ndarray, "*b"]:
    """True where the dominant primitive moves over time."""
    moving = np.array([p.is_moving for p in scene.primitives] + [False])
    return moving[np.where(primitive_id >= 0, primitive_id, len(scene.primitives))]


# ----------------------------------------------------------------------------------------------------------------
# Ready-made scenes.


def _random_color(rng: np.random.Generator) -> Float[np.ndarray, "3"]:
    # Saturated but not extreme colors: avoid clipping at 0/255 and keep textures visible.
    return rng.uniform(0.15, 0.9, size=3)


def _random_texture(rng: np.random.Generator) -> Texture:
    kind: TextureKind = ("checker", "stripes", "smooth")[int(rng.integers(3))]
    return Texture(kind=kind, color_b=_random_color(rng), frequency=int(rng.integers(2, 6)))


def _random_unit(rng: np.random.Generator) -> Float[np.ndarray, "3"]:
    vector = rng.normal(size=3)
    return vector / np.linalg.norm(vector)


def object_scene(
    seed: int = 0,
    dynamic: bool = False,
    radius: float = 1.0,
    num_objects: int = 4,
    backdrop: bool = False,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Scene:
    """Objects around the origin, all inside the ball of ``radius``: for 360-degree captures (Blender, SRN, DTU).

    Primitive 0 is a large textured opaque sphere (radius ``0.5 * radius``) near the centre, the next ones are smaller opaque textured
    spheres, and the last object is a translucent ball (finite sigma). With ``dynamic`` the smaller spheres move
    (one drifts, one orbits) while staying inside ``radius``. With ``backdrop`` an opaque, textured inside-out shell
    of radius ``6 * radius`` encloses everything (DTU-like photos with a background); it is the last primitive.
    Without it, escaping rays see ``background`` (transparent in RGBA formats).
    """
    if num_objects < 1:
        raise ValueError("num_objects must be >= 1")
    rng = np.random.default_rng(seed)
    primitives: list[Sphere] = [
        Sphere(
            center=rng.uniform(-0.1, 0.1, size=3) * radius,
            radius=0.5 * radius,
            sigma=math.inf,
            color=_random_color(rng),
            texture=_random_texture(rng),
            name="core",
        )
    ]
    for index in range(1, num_objects):
        translucent = index == num_objects - 1 and num_objects > 2
        size = rng.uniform(0.15, 0.22) * radius
        # Keep the whole motion path inside the ball: distance + size + drift + orbit diameter <= 0.98 radius.
        distance = rng.uniform(0.55, 0.6) * radius
        center = _random_unit(rng) * distance
        velocity = np.zeros(3)
        orbit_radius = 0.0
        orbit_turns = 0.0
        if dynamic and not translucent:
            if index % 2 == 1:
                velocity = _random_unit(rng) * 0.12 * radius
            else:
                orbit_radius, orbit_turns = 0.08 * radius, 0.5
        primitives.append(
            Sphere(
                center=center,
                radius=size,
                sigma=(rng.uniform(2.0, 6.0) / radius) if translucent else math.inf,
                color=_random_color(rng),
                texture=None if translucent else _random_texture(rng),
                velocity=velocity,
                orbit_radius=orbit_radius,
                orbit_turns=orbit_turns,
                orbit_phase=float(rng.uniform(0, 2 * math.pi)),
                name="haze" if translucent else f"ball{index}",
            )
        )
    if backdrop:
        primitives.append(
            Sphere(
                center=np.zeros(3),
                radius=6.0 * radius,
                sigma=math.inf,
                color=np.array([0.35, 0.35, 0.4]),
                texture=Texture(kind="smooth", color_b=np.array([0.6, 0.55, 0.5]), frequency=6, pole=0),
                inside_out=True,
                name="backdrop",
            )
        )
    return Scene(primitives=tuple(primitives), background=np.asarray(background, dtype=np.float64))


def forward_facing_scene(seed: int = 0, dynamic: bool = False, num_objects: int = 5) -> Scene:
    """Objects in front of a textured backdrop, for LLFF / N3DV / NVIDIA-like captures from cameras near the origin.

    Cameras look along -z from near the origin (see :func:`cameras.forward_facing_rig`). Objects sit at depths
    2-4.5 in front of an opaque inside-out shell of radius 8 (depth about 8 straight ahead), so every ray hits
    something. The first ``num_objects - 1`` objects are opaque and textured, the last one translucent. With
    ``dynamic`` objects 1 and 2 move: one drifts sideways, one circles in the image plane (xy); object 0 stays still.
    """
    if num_objects < 1:
        raise ValueError("num_objects must be >= 1")
    rng = np.random.default_rng(seed)
    primitives: list[Sphere] = []
    for index in range(num_objects):
        translucent = index == num_objects - 1 and num_objects > 2
        depth = rng.uniform(2.0, 4.5)
        center = np.array([rng.uniform(-0.45, 0.45) * depth, rng.uniform(-0.3, 0.3) * depth, -depth])
        velocity = np.zeros(3)
        orbit_radius = 0.0
        orbit_turns = 0.0
        if dynamic and index == 1:
            velocity = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.6), rng.uniform(-0.2, 0.2), 0.0])
        if dynamic and index == 2 and not translucent:
            orbit_radius, orbit_turns = rng.uniform(0.25, 0.4), 1.0
        primitives.append(
            Sphere(
                center=center,
                radius=rng.uniform(0.35, 0.7),
                sigma=rng.uniform(1.0, 3.0) if translucent else math.inf,
                color=_random_color(rng),
                texture=None if translucent else _random_texture(rng),
                velocity=velocity,
                orbit_radius=orbit_radius,
                orbit_turns=orbit_turns,
                orbit_phase=float(rng.uniform(0, 2 * math.pi)),
                name="haze" if translucent else f"ball{index}",
            )
        )
    primitives.append(
        Sphere(
            center=np.zeros(3),
            radius=8.0,
            sigma=math.inf,
            color=np.array([0.3, 0.35, 0.3]),
            # Pole along +y (above the view): the pattern's convergence point stays out of forward-facing images.
            texture=Texture(kind="smooth", color_b=np.array([0.75, 0.7, 0.55]), frequency=9, pole=1),
            inside_out=True,
            name="backdrop",
        )
    )
    return Scene(primitives=tuple(primitives), background=np.zeros(3))


def room_scene(seed: int = 0, num_moving: int = 2, num_static: int = 5, wall_radius: float = 8.0) -> Scene:
    """A static, textured room with one or two small moving objects, shaped like N3DV's kitchen or Meet Room's
    discussion (a mostly static room, a few percent of the image in motion); cameras as in :func:`forward_facing_scene`.

    Walls: an opaque inside-out shell of radius ``wall_radius``. Table: the top of a large opaque sphere (radius 40), level at
    y = -1 in view, textured finely enough to show parallax. ``num_static`` textured objects rest on it at depths
    2.5-5.5. ``num_moving`` (1 or 2) small balls (radius 0.12-0.2) move in front of them: the first drifts sideways,
    the second circles in the image plane, so that at 55 degrees of field of view each covers about 1-2% of the image.
    """
    if num_moving not in (1, 2):
        raise ValueError("num_moving must be 1 or 2")
    if num_static < 1:
        raise ValueError("num_static must be >= 1")
    rng = np.random.default_rng(seed)
    table_top, table_radius = -1.0, 40.0
    primitives: list[Sphere] = []
    for index in range(num_static):
        depth = rng.uniform(2.5, 5.5)
        radius = rng.uniform(0.3, 0.6)
        primitives.append(
            Sphere(
                center=np.array([rng.uniform(-0.4, 0.4) * depth, table_top + radius, -depth]),
                radius=radius,
                sigma=math.inf,
                color=_random_color(rng),
                texture=_random_texture(rng),
                name=f"object{index}",
            )
        )
    for index in range(num_moving):
        depth = rng.uniform(2.5, 4.0)
        radius = rng.uniform(0.12, 0.2)
        velocity, orbit_radius, orbit_turns = np.zeros(3), 0.0, 0.0
        if index == 0:
            velocity = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 0.8), rng.uniform(-0.1, 0.1), 0.0])
        else:
            orbit_radius, orbit_turns = rng.uniform(0.2, 0.3), 1.0
        primitives.append(
            Sphere(
                center=np.array([rng.uniform(-0.25, 0.25) * depth, rng.uniform(0.0, 0.4), -depth]),
                radius=radius,
                sigma=math.inf,
                color=_random_color(rng),
                texture=_random_texture(rng),
                velocity=velocity,
                orbit_radius=orbit_radius,
                orbit_turns=orbit_turns,
                orbit_phase=float(rng.uniform(0, 2 * math.pi)),
                name=f"mover{index}",
            )
        )
    primitives.append(
        Sphere(
            center=np.array([0.0, table_top - table_radius, -4.0]),
            radius=table_radius,
            sigma=math.inf,
            color=np.array([0.45, 0.3, 0.2]),
            # Pole along z, so the visible top (+y) is far from where the pattern converges; 250 cells per half turn
            # give the cap a few cells across the view.
            texture=Texture(kind="smooth", color_b=np.array([0.7, 0.55, 0.35]), frequency=250, pole=2),
            name="table",
        )
    )
    primitives.append(
        Sphere(
            center=np.zeros(3),
            radius=wall_radius,
            sigma=math.inf,
            color=np.array([0.55, 0.55, 0.5]),
            texture=Texture(kind="smooth", color_b=np.array([0.8, 0.75, 0.6]), frequency=14, pole=1),
            inside_out=True,
            name="walls",
        )
    )
    return Scene(primitives=tuple(primitives), background=np.zeros(3))
