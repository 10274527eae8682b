"""InfoNeRF: losses against hand-worked values, neighbour/unseen poses, the datamanager's batch layout, the model's
losses, the few-shot Blender parser and registration (fast, CPU, offline)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from dataparsers import DatasetFormatError
from dataparsers.blender import BlenderFewShotDataParserConfig, select_train_views
from dataparsers.dtu import DtuDataParserConfig
from nerfstudio_methods.infonerf import config as infonerf_config  # installs the compat fixes (offline LPIPS)
from nerfstudio_methods.infonerf.datamanager import (
    InfoNeRFDataManager,
    InfoNeRFDataManagerConfig,
    sample_pixels,
    unique_poses,
)
from nerfstudio_methods.infonerf.losses import (
    information_gain_loss,
    kl_weight,
    ray_distribution,
    ray_entropy,
    ray_entropy_loss,
    render_weights,
    sample_opacities,
)
from nerfstudio_methods.infonerf.model import RELU_INITIAL_DENSITY, InfoNeRFField, InfoNeRFModel, InfoNeRFModelConfig
from nerfstudio_methods.infonerf.poses import (
    euler_xyz,
    look_at,
    random_neighbour_rotations,
    random_orbit_poses,
    random_perturbed_poses,
    rotate_about_origin,
    rotation_angle,
    rotation_xyz,
)
from nerfstudio_methods.rays import cat_cameras, cat_ray_bundles
from tests.conftest import shared_data

# Two rays x three samples. Ray 0: alphas (0.5, 0.5, 0)   -> p = (1/2, 1/2, 0),   H = 1 bit.
#                          Ray 1: alphas (0.2, 0.2, 0.4) -> p = (1/4, 1/4, 1/2), H = 2*(1/4)*2 + (1/2)*1 = 1.5 bits.
# Accumulated opacity 1 - prod(1 - alpha): ray 0: 1 - 0.5*0.5*1 = 0.75; ray 1: 1 - 0.8*0.8*0.6 = 0.616.
ALPHAS = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.2, 0.4]])
ACCUMULATION = torch.tensor([[0.75], [0.616]])


def assert_rotations(rotations: torch.Tensor, atol: float = 1e-5) -> None:
    eye = torch.eye(3).expand_as(rotations)
    torch.testing.assert_close(rotations @ rotations.transpose(-1, -2), eye, atol=atol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rotations), torch.ones(len(rotations)), atol=atol, rtol=0)


# --- losses -----------------------------------------------------------------------------------------------


def test_ray_entropy_by_hand() -> None:
    torch.testing.assert_close(ray_distribution(ALPHAS), torch.tensor([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]]))
    torch.testing.assert_close(ray_entropy(ALPHAS), torch.tensor([1.0, 1.5]))
    # natural log: 1 bit = ln 2 nats
    torch.testing.assert_close(ray_entropy(ALPHAS, log_base=math.e), torch.tensor([1.0, 1.5]) * math.log(2))


def test_entropy_of_rendering_weights_by_hand() -> None:
    # weights alpha_i * prod_{j<i} (1 - alpha_j): ray 0 (0.5, 0.5*0.5, 0) = (0.5, 0.25, 0) -> p = (2/3, 1/3, 0);
    # ray 1 (0.2, 0.2*0.8, 0.4*0.8*0.8) = (0.2, 0.16, 0.256), summing to ray 1's accumulation 0.616.
    weights = render_weights(ALPHAS)
    torch.testing.assert_close(weights, torch.tensor([[0.5, 0.25, 0.0], [0.2, 0.16, 0.256]]))
    torch.testing.assert_close(weights.sum(dim=-1, keepdim=True), ACCUMULATION)
    p1 = torch.tensor([0.2, 0.16, 0.256]) / 0.616
    expected = torch.tensor([-(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3), -(p1 * p1.log2()).sum().item()])
    torch.testing.assert_close(ray_entropy(weights), expected)
    # density behind an opaque sample gets no weight: the opacities' entropy counts it, the weights' does not
    solid = torch.tensor([[1.0, 1.0, 1.0]])
    assert ray_entropy(solid).item() == pytest.approx(math.log2(3), abs=1e-6)
    assert ray_entropy(render_weights(solid)).item() == pytest.approx(0.0, abs=1e-6)


def test_entropy_loss_masks_empty_rays_but_counts_them() -> None:
    # threshold 0.1: both rays kept -> (1 + 1.5) / 2
    assert ray_entropy_loss(ALPHAS, ACCUMULATION, threshold=0.1).item() == pytest.approx(1.25, abs=1e-6)
    # threshold 0.7: ray 1 (acc 0.616) masked, still in the denominator -> (1 + 0) / 2
    assert ray_entropy_loss(ALPHAS, ACCUMULATION, threshold=0.7).item() == pytest.approx(0.5, abs=1e-6)
    # every ray masked -> 0
    assert ray_entropy_loss(ALPHAS, ACCUMULATION, threshold=0.9).item() == 0.0
    # an all-zero ray has p = 0 everywhere and zero entropy (the 1e-10 epsilons keep it finite)
    assert ray_entropy(torch.zeros(1, 3)).item() == 0.0


def test_entropy_loss_gradient_does_not_flow_through_the_mask() -> None:
    alphas = ALPHAS.clone().requires_grad_(True)
    accumulation = ACCUMULATION.clone().requires_grad_(True)
    ray_entropy_loss(alphas, accumulation, threshold=0.1).backward()
    assert accumulation.grad is None and alphas.grad is not None and torch.isfinite(alphas.grad).all()


def test_opacities_stay_non_negative_when_the_sampler_swaps_two_bins() -> None:
    density = torch.tensor([[2.0, 3.0, 1.0]])
    deltas = torch.tensor([[0.5, -2.4e-7, 0.25]])  # a swapped pair of nearly equal PDF bins
    alphas = sample_opacities(density, deltas)
    torch.testing.assert_close(alphas, torch.tensor([[1 - math.exp(-1.0), 0.0, 1 - math.exp(-0.25)]]))
    # without the clamp the middle opacity is about -7e-7, p_1 < -1e-10 and the entropy is NaN
    unclamped = 1.0 - torch.exp(-density * deltas)
    assert unclamped[0, 1] < 0 and torch.isnan(ray_entropy(unclamped)).all()
    assert torch.isfinite(ray_entropy(alphas)).all()


def test_information_gain_by_hand_both_directions() -> None:
    original = ALPHAS[:1]  # p = (1/2, 1/2, 0)
    neighbour = ALPHAS[1:]  # q = (1/4, 1/4, 1/2)
    # Paper: KL(p || q) = 2 * 1/2 * ln((1/2) / (1/4)) + 0 = ln 2
    paper = information_gain_loss(original, neighbour, direction="original-to-neighbour")
    assert paper.item() == pytest.approx(math.log(2), abs=1e-6)
    # Code: KL(q || p) = 2 * 1/4 * ln((1/4) / (1/2)) + 1/2 * ln((1/2) / 1e-10) = -0.346574 + 11.166351 = 10.819778
    code = information_gain_loss(original, neighbour, direction="neighbour-to-original")
    assert code.item() == pytest.approx(10.819778, rel=1e-5)
    # identical distributions: 0
    assert information_gain_loss(ALPHAS, ALPHAS).item() == pytest.approx(0.0, abs=1e-7)


def test_code_direction_matches_the_released_expression() -> None:
    """``nn.KLDivLoss(reduction='batchmean')(p.log(), q)`` with p, q = alpha / (sum + 1e-10) + 1e-10 (SmoothingLoss)."""
    generator = torch.Generator().manual_seed(0)
    original, neighbour = torch.rand(5, 7, generator=generator), torch.rand(5, 7, generator=generator)

    def norm(a: torch.Tensor) -> torch.Tensor:
        return a / (a.sum(-1, keepdim=True) + 1e-10) + 1e-10

    expected = torch.nn.KLDivLoss(reduction="batchmean")(norm(original).log(), norm(neighbour))
    actual = information_gain_loss(original, neighbour, direction="neighbour-to-original")
    torch.testing.assert_close(actual, expected)
    reverse = torch.nn.KLDivLoss(reduction="batchmean")(norm(neighbour).log(), norm(original))
    torch.testing.assert_close(information_gain_loss(original, neighbour), reverse)


def test_kl_weight_schedule() -> None:
    # DTU: 2e-5 * 0.5 ** floor(step / 5000)
    assert kl_weight(0, 2e-5, 0.5, 5000) == 2e-5
    assert kl_weight(4999, 2e-5, 0.5, 5000) == 2e-5
    assert kl_weight(5000, 2e-5, 0.5, 5000) == 1e-5
    assert kl_weight(12000, 2e-5, 0.5, 5000) == 5e-6
    with pytest.raises(ValueError):
        kl_weight(1, 1.0, 0.5, 0)


# --- poses ------------------------------------------------------------------------------------------------


def test_rotation_xyz_is_rx_ry_rz() -> None:
    x, y, z = 0.3, -0.2, 0.1
    rx = torch.tensor([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = torch.tensor([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = torch.tensor([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    rotation = rotation_xyz(torch.tensor([[x, y, z]]))[0]
    torch.testing.assert_close(rotation, rx @ ry @ rz)
    torch.testing.assert_close(euler_xyz(rotation[None])[0], torch.tensor([x, y, z]))


@pytest.mark.parametrize("max_degrees", [5.0, 20.0])
def test_neighbour_rotations_are_rotations_within_the_bound(max_degrees: float) -> None:
    rotations = random_neighbour_rotations(2000, max_degrees, generator=torch.Generator().manual_seed(1))
    assert_rotations(rotations)
    bound = math.radians(max_degrees)
    angles = euler_xyz(rotations)
    assert angles.abs().max() <= bound + 1e-5  # each axis within U[-bound, bound]
    assert angles.abs().max() > 0.9 * bound  # and the range is used
    # the composed rotation's angle is at most the sum of the three (geodesic triangle inequality)
    assert rotation_angle(rotations).max() <= 3 * bound + 1e-5


def test_rotate_about_origin_keeps_distance_to_origin() -> None:
    c2w = look_at(torch.tensor([[0.0, -3.0, 1.0], [2.0, 2.0, 2.0]]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    rotations = random_neighbour_rotations(2, 5.0, generator=torch.Generator().manual_seed(2))
    rotated = rotate_about_origin(c2w, rotations)
    torch.testing.assert_close(rotated[:, :, 3], (rotations @ c2w[:, :, 3:])[..., 0])
    torch.testing.assert_close(rotated[:, :, :3], rotations @ c2w[:, :, :3])
    torch.testing.assert_close(rotated[:, :, 3].norm(dim=-1), c2w[:, :, 3].norm(dim=-1))


def _hemisphere_cameras(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(count, 3, generator=generator), dim=-1)
    directions[:, 2] = directions[:, 2].abs() + 0.1
    positions = 4.0 * torch.nn.functional.normalize(directions, dim=-1)
    return look_at(positions, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))


def test_orbit_poses_are_valid_cameras_on_the_orbit_looking_at_the_origin() -> None:
    train = _hemisphere_cameras(4, seed=3)
    poses = random_orbit_poses(500, train, elevation_margin_degrees=10.0, generator=torch.Generator().manual_seed(4))
    assert poses.shape == (500, 3, 4)
    assert_rotations(poses[:, :, :3])
    centres = poses[:, :, 3]
    torch.testing.assert_close(centres.norm(dim=-1), torch.full((500,), 4.0), atol=1e-4, rtol=0)
    # camera +z (backwards) points from the origin to the camera: it looks at the origin
    torch.testing.assert_close(poses[:, :, 2], torch.nn.functional.normalize(centres, dim=-1), atol=1e-5, rtol=0)
    elevation = torch.asin(centres[:, 2] / 4.0)
    train_elevation = torch.asin(train[:, 2, 3] / 4.0)
    margin = math.radians(10.0) + 1e-4
    assert elevation.min() >= train_elevation.min() - margin and elevation.max() <= train_elevation.max() + margin
    perturbed = random_perturbed_poses(50, train, 30.0, generator=torch.Generator().manual_seed(5))
    assert_rotations(perturbed[:, :, :3])


# --- rays and the datamanager -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nerfstudio_methods.scenegen.formats.blender import write_blender

    root = tmp_path_factory.mktemp("infonerf") / "scene"
    write_blender(root, width=24, height=20, num_cameras=6, num_val=3, num_test=3)
    return root


def make_datamanager(scene: Path, **overrides) -> InfoNeRFDataManager:
    options = dict(
        dataparser=BlenderFewShotDataParserConfig(data=scene, train_views=(0, 2, 4), eval_skip=1),
        train_num_rays_per_batch=32,
        num_unseen_rays=16,
        neighbour_rays=True,
    )
    options.update(overrides)
    datamanager = InfoNeRFDataManagerConfig(**options).setup(device="cpu", test_mode="val")  # type: ignore[arg-type]
    assert isinstance(datamanager, InfoNeRFDataManager)
    return datamanager


def test_cat_ray_bundles(scene: Path) -> None:
    datamanager = make_datamanager(scene, neighbour_rays=False)
    cameras = datamanager.train_cameras
    a = cameras.generate_rays(camera_indices=torch.zeros(3, 1, dtype=torch.long), coords=torch.rand(3, 2) * 10)
    b = cameras.generate_rays(camera_indices=torch.ones(2, 1, dtype=torch.long), coords=torch.rand(2, 2) * 10)
    both = cat_ray_bundles([a, b])
    assert len(both) == 5 and both.camera_indices is not None
    torch.testing.assert_close(both.origins, torch.cat([a.origins, b.origins]))
    torch.testing.assert_close(both.directions, torch.cat([a.directions, b.directions]))
    assert both.camera_indices[:, 0].tolist() == [0, 0, 0, 1, 1]
    assert set(both.metadata) == set(a.metadata)


def test_batch_layout(scene: Path) -> None:
    datamanager = make_datamanager(scene)
    rays, batch = datamanager.next_train(step=10)
    n_seen, n_unseen, n_near = batch["n_seen"], batch["n_unseen"], batch["n_near"]
    assert (n_seen, n_unseen, n_near) == (32, 16, 48)
    assert len(rays) == n_seen + n_unseen + n_near
    assert batch["image"].shape == (32, 3) and batch["indices"].shape == (32, 3)
    # one training image per step (nerf-pytorch no_batching); indices are real camera indices
    assert len(set(batch["indices"][:, 0].tolist())) == 1
    assert batch["indices"][0, 0].item() in range(3)
    # the seen rays are exactly nerfstudio's rays for those pixels
    expected = datamanager.train_ray_generator(batch["indices"])
    torch.testing.assert_close(rays.origins[:n_seen], expected.origins)
    torch.testing.assert_close(rays.directions[:n_seen], expected.directions)
    # unseen rays all start at the unseen camera's centre
    unseen = slice(n_seen, n_seen + n_unseen)
    centre = batch["unseen_camera_to_world"][:, 3]
    torch.testing.assert_close(rays.origins[unseen], centre.expand(n_unseen, 3))
    # near rays: the same pixels seen from the camera rotated about the world origin
    original = slice(0, n_seen + n_unseen)
    near = slice(n_seen + n_unseen, None)
    rotations = batch["neighbour_rotations"]
    assert rotations.shape == (n_near, 3, 3)
    assert_rotations(rotations)
    assert euler_xyz(rotations).abs().max() <= math.radians(5.0) + 1e-5
    torch.testing.assert_close(rays.origins[near], (rotations @ rays.origins[original][..., None])[..., 0])
    torch.testing.assert_close(
        rays.directions[near], (rotations @ rays.directions[original][..., None])[..., 0], atol=1e-5, rtol=0
    )
    # one rotation per image and step: all near-seen rays of this one image share it
    assert (rotations[:n_seen] - rotations[:1]).abs().max() == 0
    assert (rotations[n_seen:] - rotations[n_seen : n_seen + 1]).abs().max() == 0


def test_batch_without_neighbours_and_across_images(scene: Path) -> None:
    datamanager = make_datamanager(scene, neighbour_rays=False, seen_rays_from_one_image=False)
    rays, batch = datamanager.next_train(step=0)
    assert batch["n_near"] == 0 and len(rays) == 48 and "neighbour_rotations" not in batch
    assert len(set(batch["indices"][:, 0].tolist())) > 1


def test_precrop_samples_the_centre() -> None:
    y, x = sample_pixels(4000, 20, 24, crop_frac=0.5)
    assert y.min() >= 5 and y.max() <= 14 and x.min() >= 6 and x.max() <= 17
    y, x = sample_pixels(4000, 20, 24)
    assert y.min() == 0 and y.max() == 19 and x.min() == 0 and x.max() == 23


def _eval_poses(datamanager: InfoNeRFDataManager) -> torch.Tensor:
    poses = [datamanager.dataparser.get_dataparser_outputs(split).cameras.camera_to_worlds for split in ("val", "test")]
    return torch.cat(poses)


@pytest.mark.parametrize("source", ["orbit", "perturb"])
def test_clean_unseen_poses_never_use_held_out_poses(scene: Path, source: str) -> None:
    datamanager = make_datamanager(scene, unseen_pose_source=source, neighbour_rays=False)
    held_out = _eval_poses(datamanager)
    train = datamanager.train_cameras.camera_to_worlds
    for step in range(40):
        _, batch = datamanager.next_train(step)
        pose = batch["unseen_camera_to_world"]
        assert_rotations(pose[None, :, :3])
        assert (held_out - pose).abs().flatten(1).max(dim=1).values.min() > 1e-3
        if source == "orbit":  # on the training cameras' orbit
            radii = train[:, :, 3].norm(dim=-1)
            assert radii.min() - 1e-4 <= pose[:, 3].norm() <= radii.max() + 1e-4


def test_faithful_unseen_poses_come_from_all_loaded_poses(scene: Path) -> None:
    datamanager = make_datamanager(scene, unseen_pose_source="all-poses", neighbour_rays=False)
    pool = datamanager.unseen_pool().camera_to_worlds
    # all 6 training frames (not only the 3 few-shot views) + val[::1] + test[::1], as load_blender_data loads
    assert len(pool) == 6 + 3 + 3
    for step in range(20):
        _, batch = datamanager.next_train(step)
        assert (pool - batch["unseen_camera_to_world"]).abs().flatten(1).max(dim=1).values.min() < 1e-6


def test_unique_poses_drops_repeated_views(scene: Path) -> None:
    datamanager = make_datamanager(scene, neighbour_rays=False)
    test = datamanager.dataparser.get_dataparser_outputs("test").cameras
    train = datamanager.train_cameras
    pool = unique_poses(cat_cameras([train, test, test, train[:1]]))
    assert len(pool) == len(train) + len(test)
    torch.testing.assert_close(pool.camera_to_worlds, torch.cat([train.camera_to_worlds, test.camera_to_worlds]))


# --- model ------------------------------------------------------------------------------------------------


def make_model(datamanager: InfoNeRFDataManager, **overrides) -> InfoNeRFModel:
    options = dict(num_coarse_samples=8, num_importance_samples=8, mlp_layer_width=32, coarse_mlp_num_layers=2)
    options.update(overrides)
    model = InfoNeRFModelConfig(**options).setup(  # type: ignore[arg-type]
        scene_box=datamanager.train_dataset.scene_box, num_train_data=len(datamanager.train_dataset)
    )
    assert isinstance(model, InfoNeRFModel)
    return model


def relu_field_raw_density(seed: int, default_head_init: bool) -> torch.Tensor:
    """Raw density (before relu) of a fresh 8x128 relu field at 2048 random points of the Blender box."""
    from nerfstudio.field_components.encodings import NeRFEncoding

    torch.manual_seed(seed)
    field = InfoNeRFField(
        position_encoding=NeRFEncoding(3, 10, 0.0, 8.0, include_input=True),
        direction_encoding=NeRFEncoding(3, 4, 0.0, 4.0, include_input=True),
        base_mlp_layer_width=128,
        density_activation="relu",
    )
    head = field.field_output_density.net
    assert isinstance(head, torch.nn.Linear)
    if default_head_init:
        head.reset_parameters()  # torch's default Linear initialisation, as nerf-pytorch
    points = (torch.rand(2048, 3) * 2 - 1) * 1.5
    with torch.no_grad():
        return head(field.mlp_base(field.position_encoding(points)))[..., 0]


def test_relu_field_starts_alive_for_every_seed() -> None:
    # Control: with the default head initialisation, some seeds give a raw density below 0 at every point, so relu
    # blocks every gradient and the field can never become non-empty.
    default_dead = [bool((relu_field_raw_density(seed, True) <= 0).all()) for seed in range(8)]
    assert any(default_dead), "expected the default initialisation to start dead for some seed"
    for seed in range(8):
        raw = relu_field_raw_density(seed, False)
        torch.testing.assert_close(raw, torch.full_like(raw, RELU_INITIAL_DENSITY))


def test_model_losses_on_a_training_batch(scene: Path) -> None:
    torch.manual_seed(0)
    datamanager = make_datamanager(scene)
    model = make_model(datamanager, kl_lambda=2e-5, density_noise_std=1.0)
    model.train()
    rays, batch = datamanager.next_train(step=0)
    outputs = model(rays)
    # nerfstudio's PDF sampler merges its 8 + 1 new bin edges with the 8 + 1 coarse ones: 17 intervals
    assert outputs["alphas_fine"].shape == (len(rays), 17)
    metrics = model.get_metrics_dict(outputs, batch)
    losses = model.get_loss_dict(outputs, batch, metrics)
    assert set(losses) == {"rgb_loss_coarse", "rgb_loss_fine", "entropy_loss", "kl_loss"}
    assert not metrics["ray_entropy"].requires_grad
    torch.testing.assert_close(losses["entropy_loss"].detach(), 0.001 * metrics["ray_entropy"])
    # the RGB loss covers the seen rays only
    seen = outputs["rgb_fine"][: batch["n_seen"]]
    torch.testing.assert_close(losses["rgb_loss_fine"].detach(), ((seen - batch["image"]) ** 2).mean().detach())
    # entropy over [unseen | near-seen | near-unseen] by default (the code's computing_entropy_all=False)
    n_seen = batch["n_seen"]
    expected = ray_entropy_loss(outputs["alphas_fine"][n_seen:], outputs["accumulation_fine"][n_seen:], 0.1)
    torch.testing.assert_close(metrics["ray_entropy"], expected.detach())
    model.step = 5000  # KL weight halves every 5000 steps
    assert model.kl_weight() == 1e-5
    total = sum(losses.values())
    assert isinstance(total, torch.Tensor)
    total.backward()
    assert all(p.grad is not None for p in model.field_fine.parameters() if p.requires_grad)


def test_entropy_switches_off_at_its_end_step(scene: Path) -> None:
    # the released code's entropy_end_iter: the weight holds before the end step and is 0 from it on
    datamanager = make_datamanager(scene)
    model = make_model(datamanager, entropy_lambda=0.004, entropy_end_step=300)
    rays, batch = datamanager.next_train(step=0)
    outputs = model(rays)
    metrics = model.get_metrics_dict(outputs, batch)
    model.step = 299
    assert model.entropy_weight() == 0.004
    losses = model.get_loss_dict(outputs, batch, metrics)
    torch.testing.assert_close(losses["entropy_loss"].detach(), 0.004 * metrics["ray_entropy"])
    model.step = 300
    assert model.entropy_weight() == 0.0
    assert "entropy_loss" not in model.get_loss_dict(outputs, batch, metrics)
    assert "ray_entropy" in model.get_metrics_dict(outputs, batch)  # still logged


def test_model_entropy_ray_selection_options(scene: Path) -> None:
    datamanager = make_datamanager(scene)
    model = make_model(datamanager, entropy_on_seen_rays=True, entropy_on_neighbour_rays=False)
    rays, batch = datamanager.next_train(step=0)
    outputs = model(rays)
    stop = batch["n_seen"] + batch["n_unseen"]
    expected = ray_entropy_loss(outputs["alphas_fine"][:stop], outputs["accumulation_fine"][:stop], 0.1)
    torch.testing.assert_close(model.get_metrics_dict(outputs, batch)["ray_entropy"], expected.detach())


def test_model_entropy_of_rendering_weights(scene: Path) -> None:
    # entropy_distribution="weights": the entropy of the unseen rays' rendering weights, which are the fine pass's
    # own weights (nerfstudio's RaySamples.get_weights from the densities), cut the same way
    datamanager = make_datamanager(scene)
    model = make_model(datamanager, entropy_distribution="weights", entropy_on_neighbour_rays=False)
    rays, batch = datamanager.next_train(step=0)
    outputs = model(rays)
    start, stop = batch["n_seen"], batch["n_seen"] + batch["n_unseen"]
    weights = render_weights(outputs["alphas_fine"][start:stop])
    torch.testing.assert_close(weights.sum(dim=-1, keepdim=True), outputs["accumulation_fine"][start:stop])
    expected = ray_entropy_loss(weights, outputs["accumulation_fine"][start:stop], 0.1)
    torch.testing.assert_close(model.get_metrics_dict(outputs, batch)["ray_entropy"], expected.detach())
    opacities = ray_entropy_loss(outputs["alphas_fine"][start:stop], outputs["accumulation_fine"][start:stop], 0.1)
    assert not torch.allclose(expected, opacities)  # the option changes the loss


def test_kl_needs_neighbour_rays(scene: Path) -> None:
    datamanager = make_datamanager(scene, neighbour_rays=False)
    model = make_model(datamanager, kl_lambda=1e-3)
    rays, batch = datamanager.next_train(step=0)
    with pytest.raises(ValueError, match="neighbour-rays"):
        model.get_loss_dict(model(rays), batch)


def test_eval_batches_and_full_images_need_no_extra_rays(scene: Path) -> None:
    datamanager = make_datamanager(scene)
    model = make_model(datamanager)
    model.eval()
    rays, batch = datamanager.next_eval(step=0)
    outputs = model(rays)
    assert "alphas_fine" not in outputs
    assert set(model.get_loss_dict(outputs, batch)) == {"rgb_loss_coarse", "rgb_loss_fine"}
    camera, image_batch = datamanager.next_eval_image(step=0)
    with torch.no_grad():
        image_outputs = model.get_outputs_for_camera(camera)
    assert image_outputs["rgb_fine"].shape == (20, 24, 3)
    metrics, images = model.get_image_metrics_and_images(image_outputs, image_batch)
    assert {"psnr", "ssim", "lpips", "coarse_psnr"} <= set(metrics)
    assert images["img"].shape == (20, 72, 3)


@pytest.mark.parametrize("keep", [True, False])
def test_evaluation_rays_keep_the_training_near_plane(scene: Path, keep: bool) -> None:
    """Held-out views are rendered between the training near/far planes (nerf-pytorch's test renders); the option
    off gives nerfstudio's behaviour, near plane 0 outside training (the control)."""
    datamanager = make_datamanager(scene)
    model = make_model(datamanager, keep_near_plane_at_eval=keep, collider_params={"near_plane": 2.0, "far_plane": 6.0})
    rays, _ = datamanager.next_eval(step=0)
    model.train()
    assert torch.all(model.collider(rays).nears == 2.0)
    model.eval()
    rays, _ = datamanager.next_eval(step=0)
    nears = model.collider(rays).nears
    assert nears is not None and torch.all(nears == (2.0 if keep else 0.0))
    with torch.no_grad():
        outputs = model(rays)
    # every coarse sample of an evaluation ray lies in [near, far]
    assert outputs["depth_coarse"].min() >= (2.0 if keep else 0.0)


def test_dtu_preset_fields() -> None:
    dtu = infonerf_config.infonerf_dtu.config
    model = dtu.pipeline.model
    assert isinstance(model, InfoNeRFModelConfig)
    assert (model.entropy_lambda, model.entropy_acc_threshold) == (0.002, 0.01)
    assert (model.kl_lambda, model.kl_rate, model.kl_step_size) == (2e-5, 0.5, 5000)
    assert model.coarse_mlp_num_layers == 4 and model.collider_params == {"near_plane": 0.1, "far_plane": 5.0}
    assert model.density_noise_std == 1.0 and model.background_color == "black"
    datamanager = dtu.pipeline.datamanager
    assert isinstance(datamanager, InfoNeRFDataManagerConfig) and datamanager.neighbour_rays
    assert isinstance(datamanager.dataparser, DtuDataParserConfig) and datamanager.dataparser.split_mode == "infonerf"
    blender = infonerf_config.infonerf.config.pipeline.model
    assert isinstance(blender, InfoNeRFModelConfig)
    assert (blender.entropy_lambda, blender.entropy_acc_threshold, blender.kl_lambda) == (0.001, 0.1, 0.0)
    assert blender.kl_direction == "original-to-neighbour" and model.kl_direction == "original-to-neighbour"
    scheduler = infonerf_config.infonerf.config.optimizers["fields"]["scheduler"]
    # lr = 5e-4 * 0.1 ** (step / 500k)
    assert scheduler.lr_final == pytest.approx(5e-5) and scheduler.max_steps == 500_000


# --- Blender few-shot parser ------------------------------------------------------------------------------


def test_train_view_selection() -> None:
    assert select_train_views(100, (26, 86, 2, 55), None) == [26, 86, 2, 55]
    assert select_train_views(100, (26, 86, 2, 55), 8) == [26, 86, 2, 55, 75, 93, 16, 73]
    assert select_train_views(6, (26,), 3) == [0, 2, 5]  # DietNeRF's views do not exist: evenly spaced
    assert select_train_views(100, (), 10) == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]


def test_blender_parser_splits(scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = BlenderFewShotDataParserConfig(data=scene, train_views=(4, 1), eval_skip=2).setup()
    train = parser.get_dataparser_outputs("train")
    assert [p.name for p in train.image_filenames] == ["r_4.png", "r_1.png"]
    assert len(parser.get_dataparser_outputs("test").image_filenames) == 2  # test[::2] of 3
    bad = BlenderFewShotDataParserConfig(data=scene, train_views=(0, 26)).setup()
    with pytest.raises(DatasetFormatError, match=r"train view\(s\) \[26\] out of range"):
        bad.get_dataparser_outputs("train")
    no_test = tmp_path / "no_test"
    shutil.copytree(scene, no_test)
    (no_test / "transforms_test.json").unlink()
    fallback = BlenderFewShotDataParserConfig(data=no_test, eval_skip=1, train_views=(0,)).setup()
    outputs = fallback.get_dataparser_outputs("test")
    assert [p.parent.name for p in outputs.image_filenames] == ["val"] * 3
    assert "no transforms_test.json" in capsys.readouterr().out


def test_real_lego_four_views_and_val_fallback() -> None:
    lego = shared_data("nerf_synthetic/lego")
    parser = BlenderFewShotDataParserConfig(data=lego).setup()
    train = parser.get_dataparser_outputs("train")
    assert [p.name for p in train.image_filenames] == ["r_26.png", "r_86.png", "r_2.png", "r_55.png"]
    # our lego has no test split: val[::8] = 13 images stand in for test[::8] = 25
    assert len(parser.get_dataparser_outputs("test").image_filenames) == 13
    assert len(train.metadata["unseen_pose_pool"]) == 100 + 13


# --- registration -----------------------------------------------------------------------------------------


def test_methods_and_dataparser_are_registered() -> None:
    from nerfstudio.plugins.registry import discover_methods
    from nerfstudio.plugins.registry_dataparser import discover_dataparsers

    methods, _ = discover_methods()
    assert {"infonerf", "infonerf-dtu", "infonerf-nerfacto", "infonerf-nerfacto-dtu"} <= set(methods)
    # each method's default dataparser must be registered, or tyro breaks the whole ns-train CLI
    dataparsers, _ = discover_dataparsers()
    for name in ("infonerf", "infonerf-dtu"):
        datamanager = methods[name].pipeline.datamanager
        assert isinstance(datamanager, InfoNeRFDataManagerConfig)
        default = datamanager.dataparser
        assert any(type(spec) is type(default) for spec in dataparsers.values()), name
    for name in ("infonerf-nerfacto", "infonerf-nerfacto-dtu"):
        default = methods[name].pipeline.datamanager.dataparser
        assert any(type(spec) is type(default) for spec in dataparsers.values()), name
    assert methods["infonerf"].pipeline.model.__class__.__module__ == "nerfstudio_methods.infonerf.model"
    assert "blender-fewshot-data" in dataparsers
