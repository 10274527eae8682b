"""The exact renderer and the derived ground truth, checked against independent references.

References: hand-computed closed forms, brute-force quadrature of the volume rendering integral, and projections
written out with plain pinhole algebra (not through :class:`PinholeCamera.project`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nerfstudio_methods.scenegen.cameras import PinholeCamera, forward_facing_rig, look_at, sphere_rig
from nerfstudio_methods.scenegen.groundtruth import disparity, motion_mask, optical_flow, render_view
from nerfstudio_methods.scenegen.scene import Scene, Sphere, Texture, forward_facing_scene, object_scene

RED, GREEN, BLUE = np.eye(3)


def one_ray(scene: Scene, origin, direction, **kwargs):
    return scene.render(np.asarray([origin], dtype=float), np.asarray([direction], dtype=float), **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Closed forms.


@pytest.mark.parametrize(("radius", "sigma"), [(1.0, 0.7), (0.3, 5.0), (2.0, 1e-7)])
def test_ray_through_sphere_centre(radius: float, sigma: float) -> None:
    scene = Scene((Sphere(center=np.array([0, 0, 0]), radius=radius, sigma=sigma, color=RED),), background=BLUE)
    result = one_ray(scene, (0, 0, 5), (0, 0, -3))  # direction need not be unit
    alpha = 1 - math.exp(-2 * radius * sigma)
    assert result.accumulation[0] == pytest.approx(alpha, rel=1e-12)
    np.testing.assert_allclose(result.rgb[0], alpha * RED + (1 - alpha) * BLUE, rtol=1e-12, atol=1e-15)
    # E[t | hit] for an exponential truncated to [5 - r, 5 + r].
    length = 2 * radius
    expected = (5 - radius) + (1 / sigma - length * math.exp(-sigma * length) / (1 - math.exp(-sigma * length)))
    if sigma * length < 1e-4:
        expected = 5.0  # the tiny-density limit: uniform over the chord (the formula above cancels catastrophically)
    assert result.depth[0] == pytest.approx(expected, rel=1e-6)
    assert result.first_hit_distance[0] == pytest.approx(5 - radius)
    np.testing.assert_allclose(result.first_hit[0], [0, 0, radius])
    assert result.primitive_id[0] == 0


def test_two_overlapping_spheres_by_hand() -> None:
    # Along the z axis from z = 10 looking down: A covers t in [8, 12], B covers t in [10, 11].
    a = Sphere(center=np.array([0, 0, 0]), radius=2.0, sigma=0.3, color=RED)
    b = Sphere(center=np.array([0, 0, -0.5]), radius=0.5, sigma=2.0, color=GREEN)
    result = one_ray(Scene((a, b), background=np.zeros(3)), (0, 0, 10), (0, 0, -1))
    # Segments: [8, 10] A only; [10, 11] A and B; [11, 12] A only.
    tau1, tau2, tau3 = 0.3 * 2, (0.3 + 2.0) * 1, 0.3 * 1
    t1, t2 = math.exp(-tau1), math.exp(-tau1 - tau2)
    w1, w2, w3 = 1 - t1, t1 * (1 - math.exp(-tau2)), t2 * (1 - math.exp(-tau3))
    weight_a = w1 + w2 * 0.3 / 2.3 + w3
    weight_b = w2 * 2.0 / 2.3
    np.testing.assert_allclose(result.primitive_weights[0], [weight_a, weight_b], rtol=1e-12)
    np.testing.assert_allclose(result.rgb[0], weight_a * RED + weight_b * GREEN, rtol=1e-12)
    assert result.accumulation[0] == pytest.approx(1 - math.exp(-tau1 - tau2 - tau3), rel=1e-12)
    assert result.primitive_id[0] == int(weight_b > weight_a)


def test_translucent_ball_in_front_of_opaque_sphere() -> None:
    haze = Sphere(center=np.array([0, 0, 2]), radius=0.5, sigma=1.5, color=GREEN)
    wall = Sphere(center=np.array([0, 0, 0]), radius=1.0, sigma=math.inf, color=RED)
    result = one_ray(Scene((haze, wall), background=BLUE), (0, 0, 5), (0, 0, -1))
    alpha = 1 - math.exp(-1.5)
    np.testing.assert_allclose(result.rgb[0], alpha * GREEN + (1 - alpha) * RED, rtol=1e-12)
    assert result.accumulation[0] == pytest.approx(1.0)
    haze_depth = 2.5 + (1 / 1.5 - 1.0 * math.exp(-1.5) / alpha)
    assert result.depth[0] == pytest.approx(alpha * haze_depth + (1 - alpha) * 4.0, rel=1e-12)
    assert result.first_hit_distance[0] == pytest.approx(2.5)
    np.testing.assert_allclose(result.primitive_weights[0], [alpha, 1 - alpha], rtol=1e-12)
    assert result.primitive_id[0] == 0  # the haze (weight 0.78) dominates the wall behind it (0.22)
    np.testing.assert_allclose(result.hit_point[0], [0, 0, 2.5])


def test_escaping_ray_and_near_far_clipping() -> None:
    ball = Sphere(center=np.array([0, 0, 0]), radius=1.0, sigma=2.0, color=RED)
    scene = Scene((ball,), background=BLUE)
    miss = one_ray(scene, (0, 3, 5), (0, 0, -1))
    assert miss.accumulation[0] == 0 and miss.primitive_id[0] == -1 and np.isinf(miss.depth[0])
    np.testing.assert_allclose(miss.rgb[0], BLUE)
    clipped = one_ray(scene, (0, 0, 5), (0, 0, -1), near=4.5, far=5.0)
    assert clipped.accumulation[0] == pytest.approx(1 - math.exp(-1.0))


def test_inside_out_backdrop_and_validation() -> None:
    shell = Sphere(center=np.array([0, 0, 0]), radius=10.0, sigma=math.inf, color=GREEN, inside_out=True)
    result = one_ray(Scene((shell,)), (1, 2, 3), (0.3, -0.2, -1))
    np.testing.assert_allclose(np.linalg.norm(result.hit_point[0]), 10.0, rtol=1e-12)
    np.testing.assert_allclose(result.rgb[0], GREEN)
    with pytest.raises(ValueError, match="inside"):
        one_ray(Scene((shell,)), (0, 0, 20), (0, 0, -1))
    with pytest.raises(ValueError, match="texture"):
        Sphere(center=np.array([0, 0, 0]), radius=1, sigma=1.0, color=RED, texture=Texture("checker", GREEN))
    with pytest.raises(ValueError):
        Sphere(center=np.array([0, 0, 0]), radius=-1, sigma=1.0, color=RED)


# ---------------------------------------------------------------------------------------------------------------
# Brute-force quadrature of the rendering integral.


def quadrature(scene: Scene, origin, direction, t_min: float, t_max: float, step: float, opaque_sigma: float = 1e6):
    """Dense midpoint quadrature of C = sum_k T_k (1 - exp(-sigma_k dt)) c_k over [t_min, t_max] (which must
    contain the whole scene): a reference independent of the closed-form segment logic (opaque surfaces become a
    very dense thin shell)."""
    direction = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    t = np.arange(t_min, t_max, step) + step / 2
    points = np.asarray(origin, dtype=float) + t[:, None] * direction
    sigma_total = np.zeros_like(t)
    color_sum = np.zeros((t.size, 3))
    for primitive in scene.primitives:
        distance = np.linalg.norm(points - primitive.center_at(0.0), axis=-1)
        inside = distance > primitive.radius if primitive.inside_out else distance < primitive.radius
        sigma = opaque_sigma if primitive.is_opaque else primitive.sigma
        sigma_total += np.where(inside, sigma, 0.0)
        color_sum += np.where(inside, sigma, 0.0)[:, None] * primitive.surface_color(points, 0.0)
    tau = sigma_total * step
    transmittance = np.exp(-(np.cumsum(tau) - tau))
    weights = transmittance * -np.expm1(-tau)
    color = color_sum / np.where(sigma_total > 0, sigma_total, 1.0)[:, None]
    accumulation = weights.sum()
    rgb = (weights[:, None] * color).sum(0) + (1 - accumulation) * scene.background
    return rgb, accumulation, (weights * t).sum() / max(accumulation, 1e-300)


def test_quadrature_matches_closed_form_on_random_rays() -> None:
    rng = np.random.default_rng(7)
    primitives = [
        # Everything within 1.4 of the origin, so rays from radius 3 meet the scene only for t in [1.5, 4.5].
        Sphere(center=rng.uniform(-0.5, 0.5, 3), radius=rng.uniform(0.2, 0.5), sigma=rng.uniform(0.5, 6.0), color=c)
        for c in rng.uniform(0, 1, (5, 3))
    ]
    primitives.append(
        Sphere(center=np.array([0.1, 0, 0]), radius=0.3, sigma=math.inf, color=RED, texture=Texture("smooth", GREEN, 3))
    )
    scene = Scene(tuple(primitives), background=np.array([0.2, 0.3, 0.4]))
    origins = rng.normal(size=(14, 3))
    origins = 3.0 * origins / np.linalg.norm(origins, axis=1, keepdims=True)
    directions = rng.uniform(-0.6, 0.6, (14, 3)) - origins
    closed = scene.render(origins, directions)
    for i in range(len(origins)):
        rgb, acc, depth = quadrature(scene, origins[i], directions[i], t_min=1.5, t_max=4.5, step=2e-5)
        np.testing.assert_allclose(closed.rgb[i], rgb, atol=2e-4)
        assert closed.accumulation[i] == pytest.approx(acc, abs=1e-4)
        if acc > 1e-3:
            assert closed.depth[i] == pytest.approx(depth, abs=1e-3)
    assert np.ptp(closed.accumulation) > 0.5  # the rays cover misses, partial and full opacity


# ---------------------------------------------------------------------------------------------------------------
# Cameras and projections.


def plain_projection(camera: PinholeCamera, points: np.ndarray) -> np.ndarray:
    """Pixel (x, y) with pixel centres at +0.5 by explicit OpenCV algebra: K [R^T | -R^T C] with flipped y, z."""
    rotation = camera.camera_to_world[:, :3] @ np.diag([1.0, -1.0, -1.0])  # OpenGL -> OpenCV camera axes
    local = (points - camera.camera_to_world[:, 3]) @ rotation
    return np.stack(
        [camera.fx * local[..., 0] / local[..., 2] + camera.cx, camera.fy * local[..., 1] / local[..., 2] + camera.cy],
        axis=-1,
    )


def test_rays_and_projection_are_inverse() -> None:
    camera = PinholeCamera(
        fx=50.0,
        fy=55.0,
        cx=17.0,
        cy=11.5,
        width=32,
        height=24,
        camera_to_world=look_at(np.array([1.0, 2, 3]), np.zeros(3), "+y"),
    )
    origins, directions = camera.rays()
    assert origins.shape == directions.shape == (24, 32, 3)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=-1), 1.0)
    points = origins + 2.7 * directions
    pixels, depth = camera.project(points)
    np.testing.assert_allclose(pixels, camera.pixel_centres(), atol=1e-9)
    np.testing.assert_allclose(plain_projection(camera, points), camera.pixel_centres(), atol=1e-9)
    assert np.all(depth > 0)
    # The centre pixel ray of a camera with principal point at the image centre is the viewing direction.
    np.testing.assert_allclose(camera.rays_through(np.array([17.0, 11.5]))[1], camera.forward, atol=1e-12)
    # Image y grows downwards: a pixel above the principal point sees a point with positive camera-up coordinate.
    _, up_dir = camera.rays_through(np.array([17.0, 0.5]))
    assert up_dir @ camera.camera_to_world[:, 1] > 0


def test_opaque_textured_sphere_at_projected_point() -> None:
    texture = Texture("checker", GREEN, frequency=2)
    sphere = Sphere(center=np.array([0.2, -0.1, 0.0]), radius=1.0, sigma=math.inf, color=RED, texture=texture)
    scene = Scene((sphere,), background=BLUE)
    camera = sphere_rig(1, 48, 48, radius=4.0, up="+z", seed=3)[0]
    # A surface point facing the camera, off-centre.
    normal = camera.centre - sphere.center
    normal = normal / np.linalg.norm(normal) + np.array([0.2, 0.1, -0.15])
    point = sphere.center + normal / np.linalg.norm(normal)
    pixel = plain_projection(camera, point[None])[0]
    origin, direction = camera.rays_through(pixel)
    result = scene.render(origin, direction)
    np.testing.assert_allclose(result.hit_point, point, atol=1e-9)
    assert result.depth == pytest.approx(np.linalg.norm(point - camera.centre), rel=1e-12)
    # Checker by hand: polar angle from +z and azimuth, 2 cells per half turn.
    unit = point - sphere.center
    polar, azimuth = math.acos(unit[2]), math.atan2(unit[1], unit[0])
    odd = (math.floor(polar * 2 / math.pi) + math.floor(azimuth * 2 / math.pi)) % 2
    np.testing.assert_allclose(result.rgb, GREEN if odd else RED)


# ---------------------------------------------------------------------------------------------------------------
# Derived ground truth.


def test_disparity_is_inverse_z_of_the_hit_points() -> None:
    scene = forward_facing_scene(seed=1, num_objects=2)  # opaque objects + backdrop only
    camera = forward_facing_rig(3, 40, 30, seed=1)[2]
    render = render_view(scene, camera)
    z = (render.hit_point - camera.centre) @ camera.forward
    np.testing.assert_allclose(disparity(camera, render), 1 / z, rtol=1e-12)


def test_flow_on_static_scene_is_reprojection_through_depth() -> None:
    scene = forward_facing_scene(seed=2, num_objects=2)  # opaque only: the expected depth is the surface
    source, target = forward_facing_rig(4, 40, 32, seed=2)[1:3]
    render = render_view(scene, source)
    flow = optical_flow(scene, source, 0.0, target, 0.0, source_render=render)
    # Back-project every pixel with the z depth from the disparity map, then project by plain algebra.
    z = 1.0 / disparity(source, render)
    pixels = source.pixel_centres()
    local = np.stack(
        [(pixels[..., 0] - source.cx) / source.fx * z, (pixels[..., 1] - source.cy) / source.fy * z, z], -1
    )
    points = local @ (source.camera_to_world[:, :3] @ np.diag([1.0, -1.0, -1.0])).T + source.centre
    np.testing.assert_allclose(flow.flow, plain_projection(target, points) - pixels, atol=1e-8)
    assert 0.5 < flow.mask.mean() < 1.0  # mostly visible, some pixels leave the image or get occluded


def test_flow_of_a_moving_object_is_its_projected_displacement() -> None:
    velocity = np.array([0.6, -0.3, 0.0])
    ball = Sphere(center=np.array([0, 0, -4]), radius=0.8, sigma=math.inf, color=RED, velocity=velocity)
    wall = Sphere(center=np.array([0, 0, 0]), radius=9.0, sigma=math.inf, color=GREEN, inside_out=True)
    scene = Scene((ball, wall))
    camera = PinholeCamera(
        fx=40.0,
        fy=40.0,
        cx=24.0,
        cy=16.0,
        width=48,
        height=32,
        camera_to_world=look_at(np.zeros(3), np.array([0.0, 0, -1]), "+y"),
    )
    render = render_view(scene, camera, 0.25)
    result = optical_flow(scene, camera, 0.25, camera, 0.75, source_render=render)
    on_ball = render.primitive_id == 0
    # Motion parallel to the image plane: every point of the ball moves by f * displacement / z pixels.
    disp = disparity(camera, render)
    shift = velocity * 0.5
    np.testing.assert_allclose(result.flow[on_ball, 0], 40.0 * shift[0] * disp[on_ball], atol=1e-9)
    np.testing.assert_allclose(result.flow[on_ball, 1], -40.0 * shift[1] * disp[on_ball], atol=1e-9)
    np.testing.assert_allclose(result.flow[~on_ball], 0.0, atol=1e-9)  # the static wall and a static camera
    # The ball's front stays visible; the wall it moves over becomes occluded.
    assert result.mask[on_ball].mean() > 0.9
    covered = ~on_ball & render_view(scene, camera, 0.75).primitive_id.__eq__(0)
    assert covered.any() and np.all(result.mask[covered] == 0)
    assert np.array_equal(motion_mask(scene, render), on_ball)


def test_forward_and_backward_flow_are_consistent() -> None:
    scene = forward_facing_scene(seed=4, dynamic=True)
    cameras = forward_facing_rig(3, 48, 32, seed=4, layout="line")
    frames = [(cameras[0], 0.3), (cameras[1], 0.45)]
    for (source, t_source), (target, t_target) in (frames, frames[::-1]):
        flow = optical_flow(scene, source, t_source, target, t_target)
        visible = flow.mask > 0
        assert 0.5 < visible.mean() < 1.0
        # Follow each visible pixel into the other frame, find what is seen there exactly, carry it back in time
        # and reproject: the round trip must return to the pixel (the backward flow at x + flow(x) is -flow(x)).
        pixels = source.pixel_centres()[visible]
        origins, directions = target.rays_through(pixels + flow.flow[visible])
        there = scene.render(origins, directions, time=t_target)
        back = there.hit_point + scene.displacements(there.primitive_id, t_target, t_source)
        np.testing.assert_allclose(plain_projection(source, back), pixels, atol=1e-6)
        # Pixels marked invisible that see something: their moved point is off-image, behind, or occluded.
        hidden = ~visible & (render_view(scene, source, t_source).primitive_id >= 0)
        assert hidden.any()
    moving = motion_mask(scene, render_view(scene, cameras[0], 0.3))
    assert moving.any() and not moving.all()


def test_builders_are_deterministic_and_bounded() -> None:
    a, b = object_scene(5, dynamic=True), object_scene(5, dynamic=True)
    camera = sphere_rig(1, 24, 24)[0]
    np.testing.assert_array_equal(render_view(a, camera, 0.5).rgb, render_view(b, camera, 0.5).rgb)
    assert not np.array_equal(render_view(object_scene(6), camera).rgb, render_view(a, camera).rgb)
    for seed in range(10):
        scene = object_scene(seed, dynamic=True, radius=2.0)
        assert scene.is_dynamic
        for time in np.linspace(0, 1, 11):
            for primitive in scene.primitives:
                assert np.linalg.norm(primitive.center_at(time)) + primitive.radius <= 2.0 + 1e-9
