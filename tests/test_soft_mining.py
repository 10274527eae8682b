"""Soft mining: the Langevin population on analytic error maps, weights and bilinear lookup against hand-worked
values, re-initialisation counts, rays against nerfstudio's own, and one pipeline step through nerfacto and vanilla
NeRF (fast, CPU, offline)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.model_components.ray_generators import RayGenerator

from nerfstudio_methods.soft_mining import config as soft_mining_config  # installs the compat fixes (offline LPIPS)
from nerfstudio_methods.soft_mining.datamanager import COORDS_KEY, SoftMiningDataManager, SoftMiningVanillaDataManager
from nerfstudio_methods.soft_mining.losses import SoftMiningRGBLoss
from nerfstudio_methods.soft_mining.pipeline import SoftMiningPipeline, SoftMiningPipelineConfig, log_error_gradient
from nerfstudio_methods.soft_mining.sampler import (
    EDGE_PDF_FLOOR,
    RELEASED_LANGEVIN_DRIFT,
    PixelDistribution,
    SoftMiningSampler,
    SoftMiningSamplerConfig,
    bilinear_lookup,
    importance_exponent,
    importance_weights,
    sobel_edge_pdf,
)
from tests.conftest import generate_scene

SIZE = 64
CENTRE = torch.tensor([40.0, 20.0])  # pixel coordinates (y, x) of the high-error region
SIGMA = 6.0


def bump_error(coords: torch.Tensor) -> torch.Tensor:
    """Synthetic error map: a floor of 0.01 plus a Gaussian bump of height 1 at CENTRE (pixel units)."""
    return 0.01 + torch.exp(-((coords - CENTRE) ** 2).sum(-1) / (2 * SIGMA**2))


def grad_log_bump(coords: torch.Tensor) -> torch.Tensor:
    """grad_px log(bump_error), worked out by hand: -(x - c) / sigma^2 * bump / (0.01 + bump)."""
    bump = torch.exp(-((coords - CENTRE) ** 2).sum(-1, keepdim=True) / (2 * SIGMA**2))
    return -(coords - CENTRE) / SIGMA**2 * bump / (0.01 + bump)


def make_sampler(num: int = 512, seed: int = 0, **overrides) -> SoftMiningSampler:
    config = SoftMiningSamplerConfig(reinit_distribution="uniform", **overrides)
    return config.setup(
        num_samples=num, image_size=(SIZE, SIZE), num_images=1, generator=torch.Generator().manual_seed(seed)
    )


def fraction_near_centre(sampler: SoftMiningSampler, radius: float = 2 * SIGMA) -> float:
    distance = (sampler.pixel_coords() - CENTRE).norm(dim=-1)
    return float((distance < radius).float().mean())


# --- the Langevin population -----------------------------------------------------------------------------------


def test_hand_worked_log_gradient_matches_autograd() -> None:
    coords = torch.tensor([[30.0, 25.0], [45.0, 10.0], [40.0, 20.0]], requires_grad=True)
    torch.log(bump_error(coords)).sum().backward()
    assert coords.grad is not None
    torch.testing.assert_close(coords.grad, grad_log_bump(coords.detach()))


def langevin_run(steps: int, drift: float, **overrides) -> SoftMiningSampler:
    sampler = make_sampler(langevin_drift=drift, **overrides)
    for _ in range(steps):
        coords = sampler.pixel_coords()
        sampler.step(grad_log_bump(coords), bump_error(coords))
    return sampler


def test_langevin_concentrates_samples_in_the_high_error_region() -> None:
    """Within 2 sigma of the bump lies pi * 12^2 / 64^2 = 11% of the image; Langevin steps toward high error gather
    most samples there, while the same walk without drift stays spread out (a little denser inside than near the
    borders, where samples leave and are re-initialised)."""
    area_fraction = math.pi * (2 * SIGMA) ** 2 / SIZE**2
    start = make_sampler()
    assert abs(fraction_near_centre(start) - area_fraction) < 0.05  # uniform start
    no_re_init = {"reinit_lowest_fraction": 0.0, "uniform_fraction": 0.0}
    with_drift = langevin_run(150, drift=20.0, **no_re_init)
    noise_only = langevin_run(150, drift=0.0, **no_re_init)
    assert fraction_near_centre(with_drift) > 0.6
    assert fraction_near_centre(noise_only) < 0.25
    # the full default scheme re-draws 20% of the samples every step (10% lowest-error + 10% uniform), which caps
    # the concentration, but the drift still gathers samples there
    assert fraction_near_centre(langevin_run(150, drift=20.0)) > 0.3
    assert fraction_near_centre(langevin_run(150, drift=0.0)) < 0.25


def test_samples_never_leave_the_image() -> None:
    sampler = make_sampler(num=256, langevin_noise=0.5)
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        wild_gradient = 200 * torch.randn((256, 2), generator=generator)
        stats = sampler.step(wild_gradient, torch.rand(256, generator=generator))
        assert stats["left_image"] > 0
        assert bool(((sampler.positions >= 0) & (sampler.positions <= 1)).all())
        coords = sampler.pixel_coords()
        assert bool(((coords >= 0) & (coords <= SIZE)).all())
        pixels = sampler.pixel_indices()
        assert bool(((pixels >= 0) & (pixels < SIZE)).all())


def test_samples_stay_inside_the_sampling_mask() -> None:
    mask = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    mask[0, :32] = True  # image 0: top half
    mask[1, :, 40:] = True  # image 1: right part
    config = SoftMiningSamplerConfig(reinit_distribution="uniform", langevin_noise=0.2)
    sampler = config.setup(num_samples=200, image_size=(SIZE, SIZE), num_images=2, mask=mask)
    for _ in range(10):
        rows, cols = sampler.pixel_indices().unbind(-1)
        assert bool(mask[sampler.image_ids, rows, cols].all())
        sampler.step(None, torch.rand(200))


def test_re_initialisation_fractions_hold() -> None:
    """No drift, no noise: exactly the 10% lowest-error samples and another 10% (uniform) move; nothing else."""
    num = 200
    sampler = make_sampler(num=num, langevin_noise=0.0)
    before = sampler.positions.clone()
    error = torch.randperm(num).float()  # sample i's rank is error[i]
    stats = sampler.step(None, error)
    moved = (sampler.positions != before).any(-1)
    assert stats == {"left_image": 0, "lowest_error": 20, "uniform": 20}
    assert int(moved.sum()) == 40
    assert bool(moved[error < 20].all())  # the 20 lowest errors were all re-initialised
    # the uniform share is drawn among the others
    assert int(moved[error >= 20].sum()) == 20


def test_samples_that_leave_are_re_initialised_and_not_double_counted() -> None:
    num = 100
    sampler = make_sampler(num=num, langevin_noise=0.0, langevin_drift=1.0)
    before = sampler.positions.clone()
    push = torch.zeros(num, 2)
    push[:30, 1] = 1e6  # 30 samples thrown far to the right: (a / N) * 1e6 normalised widths
    stats = sampler.step(push, torch.arange(num).float())  # samples 0..9 also have the lowest errors
    assert stats == {"left_image": 30, "lowest_error": 10, "uniform": 10}
    moved = (sampler.positions != before).any(-1)
    assert int(moved.sum()) == 50
    assert bool(moved[:40].all())  # the 30 that left + the 10 lowest-error among those that stayed (30..39)


def test_edge_re_initialisation_lands_on_edges() -> None:
    """One image, black left half, white right half: the Sobel magnitude is 1 on the two columns at the step and
    clipped to 1e-5 elsewhere, so re-initialised samples land there with probability 2H / (2H + 62H * 1e-5)."""
    image = torch.zeros(1, SIZE, SIZE, 3)
    image[:, :, 32:] = 1.0
    pdf = sobel_edge_pdf(image)
    torch.testing.assert_close(pdf[0, :, 31:33], torch.ones(SIZE, 2))
    assert float(pdf[0, :, :31].max()) == pytest.approx(EDGE_PDF_FLOOR)
    config = SoftMiningSamplerConfig(reinit_lowest_fraction=0.5, uniform_fraction=0.0, langevin_noise=0.0)
    sampler = config.setup(num_samples=400, image_size=(SIZE, SIZE), num_images=1, edge_pdf=pdf)
    before = sampler.positions.clone()
    sampler.step(None, torch.rand(400))
    moved = (sampler.positions != before).any(-1)
    columns = sampler.pixel_indices()[moved, 1]
    assert int(moved.sum()) == 200
    assert bool(((columns == 31) | (columns == 32)).all())


def test_pixel_distribution_follows_the_pdf() -> None:
    pdf = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])  # pixel (0,0): 1/4, pixel (1,1): 3/4
    rows, cols = PixelDistribution(pdf).sample(torch.zeros(20000, dtype=torch.long), torch.Generator().manual_seed(0))
    assert bool((rows == cols).all())
    assert float((rows == 1).float().mean()) == pytest.approx(0.75, abs=0.015)


def test_discrete_positions_are_pixel_centres() -> None:
    sampler = make_sampler(num=64, continuous_positions=False)
    coords = sampler.pixel_coords()
    torch.testing.assert_close(coords, sampler.pixel_indices().float() + 0.5)


def test_invalid_fractions_are_refused() -> None:
    with pytest.raises(ValueError, match="reinit_lowest_fraction"):
        make_sampler(reinit_lowest_fraction=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        make_sampler(reinit_lowest_fraction=0.6, uniform_fraction=0.6)


# --- weights, warm-up and the loss --------------------------------------------------------------------------


def test_weights_are_uniform_at_alpha_zero() -> None:
    l1_error = torch.tensor([0.5, 0.01, 1e-6, 0.2])
    torch.testing.assert_close(importance_weights(l1_error, 0.0), torch.ones(4))


def test_weights_by_hand() -> None:
    """Q = (0.25, 0.04, 1, 1e-4), r = 0.5: Q^-r = (2, 5, 1, 32) (the last Q floored at 2^-10); the clamp's upper
    bound is mean + std = 10 + sqrt(((2-10)^2 + (5-10)^2 + (1-10)^2 + (32-10)^2) / 3) = 10 + sqrt(218)."""
    l1_error = torch.tensor([0.25, 0.04, 1.0, 1e-4])
    unclamped = importance_weights(l1_error, 0.5, clamp_min=None, clamp_to_mean_plus_std=False)
    torch.testing.assert_close(unclamped, torch.tensor([2.0, 5.0, 1.0, 32.0]))
    clamped = importance_weights(l1_error, 0.5)
    torch.testing.assert_close(clamped, torch.tensor([2.0, 5.0, 1.0, 10 + math.sqrt(218)]))
    # lower clamp: Q = 1 at r = 1 gives 1, Q = 4 (impossible for colours, but a loss) gives 0.25 -> clamped to 0.2
    torch.testing.assert_close(
        importance_weights(torch.tensor([4.0, 8.0]), 1.0, clamp_to_mean_plus_std=False), torch.tensor([0.25, 0.2])
    )


def test_exponent_warm_up() -> None:
    assert importance_exponent(0, 0.6, 1000) == 0.0
    assert importance_exponent(500, 0.6, 1000) == pytest.approx(0.3)
    assert importance_exponent(1000, 0.6, 1000) == pytest.approx(0.6)
    assert importance_exponent(5000, 0.6, 1000) == pytest.approx(0.6)
    assert importance_exponent(3, 0.8, 0) == 0.8
    # the released code's min(step / 1000, alpha) is the schedule with warm-up 1000 * alpha
    for step in (0, 100, 599, 600, 700, 2000):
        assert importance_exponent(step, 0.6, 600) == pytest.approx(min(step / 1000, 0.6))


def test_loss_is_mse_when_unarmed_and_weighted_when_armed() -> None:
    generator = torch.Generator().manual_seed(0)
    target, prediction = torch.rand(8, 3, generator=generator), torch.rand(8, 3, generator=generator)
    loss = SoftMiningRGBLoss()
    torch.testing.assert_close(loss(target, prediction), torch.nn.MSELoss()(target, prediction))
    loss.arm(0.0)
    torch.testing.assert_close(loss(target, prediction), torch.nn.MSELoss()(target, prediction))
    loss.arm(1.0)
    value = loss(target, prediction)
    (term,) = loss.disarm()
    q = (prediction - target).abs().mean(-1)
    weights = torch.minimum(q.pow(-1.0).clamp_min(0.2), q.pow(-1.0).mean() + q.pow(-1.0).std())
    torch.testing.assert_close(term.weights, weights)
    torch.testing.assert_close(value, (weights * (prediction - target).square().mean(-1)).mean())
    assert loss.exponent is None


def test_log_error_gradient_from_the_loss_backward() -> None:
    """The "loss" estimator recovers each sample's grad log err from d(scaled weighted loss)/dx, checked against
    per-sample autograd of log err."""
    generator = torch.Generator().manual_seed(0)
    coords = (torch.rand(16, 2, generator=generator) * 10).requires_grad_(True)
    target = torch.rand(16, 3, generator=generator)

    def render(x: torch.Tensor) -> torch.Tensor:  # a smooth stand-in for a radiance field
        return torch.stack([torch.sin(x[:, 0]), torch.cos(x[:, 1]), torch.sin(x[:, 0] * x[:, 1] / 10)], -1)

    loss = SoftMiningRGBLoss()
    loss.arm(0.6)
    scale = 8.0
    (scale * loss(target, render(coords))).backward()
    terms = loss.disarm()
    assert coords.grad is not None
    estimate = log_error_gradient(coords.grad, terms, scale)
    reference = coords.detach().clone().requires_grad_(True)
    log_err = torch.log((render(reference) - target).square().mean(-1))
    (expected,) = torch.autograd.grad(log_err.sum(), reference)
    torch.testing.assert_close(estimate, expected, rtol=1e-4, atol=1e-5)


# --- bilinear colour lookup ---------------------------------------------------------------------------------


def test_bilinear_lookup_by_hand() -> None:
    """A 2x3 image; pixel (i, j)'s value sits at (i + 0.5, j + 0.5)."""
    image = torch.tensor([[[0.0], [1.0], [2.0]], [[10.0], [20.0], [30.0]]])[None]  # [1, 2, 3, 1]
    coords = torch.tensor(
        [
            [0.5, 0.5],  # pixel centre (0, 0): 0
            [1.5, 2.5],  # pixel centre (1, 2): 30
            [1.0, 1.25],  # halfway between rows; x 3/4 of the way from column 0 to 1:
            # row 0: 0.25 * 0 + 0.75 * 1 = 0.75; row 1: 0.25 * 10 + 0.75 * 20 = 17.5; mean 9.125
            [0.1, 0.1],  # before the first centre: border value 0
            [2.0, 3.0],  # the image's far corner: border value 30
            [0.5, 2.9],  # past the last column centre: 2
        ]
    )
    values = bilinear_lookup(image, torch.zeros(6, dtype=torch.long), coords)
    torch.testing.assert_close(values[:, 0], torch.tensor([0.0, 30.0, 9.125, 0.0, 30.0, 2.0]))


def test_bilinear_lookup_gradient_is_the_image_slope() -> None:
    image = torch.tensor([[[0.0], [1.0], [2.0]], [[10.0], [20.0], [30.0]]])[None]
    coords = torch.tensor([[1.0, 1.25]], requires_grad=True)
    bilinear_lookup(image, torch.zeros(1, dtype=torch.long), coords).sum().backward()
    # d/dy: row 1 - row 0 at x-weight 3/4 = 17.5 - 0.75; d/dx: mean over rows of (col 1 - col 0) = (1 + 10) / 2
    assert coords.grad is not None
    torch.testing.assert_close(coords.grad, torch.tensor([[16.75, 5.5]]))


# --- data managers, rays and one pipeline step ------------------------------------------------------------------


@pytest.fixture(scope="module")
def blender_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("soft_mining_scene")
    return generate_scene("blender", work / "scene", "--width", "32", "--height", "24", "--num-cameras", "6")


def tiny_pipeline_config(scene: Path, method: str = "nerfacto", continuous: bool = True, drift: str = "loss"):
    if method == "nerfacto":
        trainer = soft_mining_config.soft_mining_nerfacto_config()
        model = trainer.pipeline.model
        model.implementation = "torch"  # type: ignore[attr-defined]
        model.num_proposal_samples_per_ray = (16, 8)  # type: ignore[attr-defined]
        model.num_nerf_samples_per_ray = 8  # type: ignore[attr-defined]
        model.log2_hashmap_size = 12  # type: ignore[attr-defined]
    else:
        trainer = soft_mining_config.soft_mining_vanilla_nerf_config()
        trainer.pipeline.model.num_coarse_samples = 8  # type: ignore[attr-defined]
        trainer.pipeline.model.num_importance_samples = 8  # type: ignore[attr-defined]
    pipeline = trainer.pipeline
    pipeline.datamanager.data = scene
    pipeline.datamanager.train_num_rays_per_batch = 48
    pipeline.datamanager.soft_mining.continuous_positions = continuous  # type: ignore[attr-defined]
    # the released code's drift (off by default): these tests follow its gradient
    pipeline.datamanager.soft_mining.langevin_drift = RELEASED_LANGEVIN_DRIFT  # type: ignore[attr-defined]
    pipeline.drift_gradient = drift  # type: ignore[attr-defined]
    return pipeline


def test_rays_at_pixel_centres_equal_nerfstudios_rays(blender_scene: Path) -> None:
    """Discrete mode casts rays through pixel centres: origins and directions equal nerfstudio's RayGenerator for
    the same (camera, row, column), and the targets are the dataset's pixels."""
    pipeline = tiny_pipeline_config(blender_scene, continuous=False).setup(device="cpu", test_mode="val")
    datamanager = pipeline.datamanager
    assert isinstance(datamanager, SoftMiningDataManager)
    ray_bundle, batch = datamanager.next_train(0)
    reference = RayGenerator(datamanager.train_dataset.cameras)(batch["indices"])
    torch.testing.assert_close(ray_bundle.origins, reference.origins)
    torch.testing.assert_close(ray_bundle.directions, reference.directions)
    assert ray_bundle.camera_indices is not None and reference.camera_indices is not None
    assert torch.equal(ray_bundle.camera_indices, reference.camera_indices)
    camera, rows, cols = batch["indices"].unbind(-1)
    images = torch.stack([datamanager.train_dataset[int(i)]["image"] for i in range(len(datamanager.train_dataset))])
    torch.testing.assert_close(batch["image"], images[camera, rows, cols])
    # 48 samples round-robin over 6 images: 8 each
    assert torch.bincount(camera, minlength=6).tolist() == [8] * 6


def test_continuous_rays_interpolate_between_pixel_rays(blender_scene: Path) -> None:
    """A ray through a continuous position lies between the rays of the neighbouring pixel centres: with a
    pinhole camera its (unnormalised) direction is affine in the pixel coordinates."""
    pipeline = tiny_pipeline_config(blender_scene).setup(device="cpu", test_mode="val")
    datamanager = pipeline.datamanager
    cameras = datamanager.train_dataset.cameras
    index = torch.zeros((1, 1), dtype=torch.long)
    corners = torch.tensor([[3.5, 4.5], [3.5, 5.5], [4.5, 4.5], [4.5, 5.5]])
    corner_rays = cameras.generate_rays(camera_indices=index.expand(4, 1), coords=corners)
    inside = cameras.generate_rays(camera_indices=index, coords=torch.tensor([[4.0, 5.25]]))
    # un-normalise by the z component in camera space: directions through a plane z = -1
    rotation = cameras.camera_to_worlds[0, :, :3]

    def on_image_plane(directions: torch.Tensor) -> torch.Tensor:
        local = directions @ rotation
        return local / -local[:, 2:]

    plane = on_image_plane(corner_rays.directions)
    expected = 0.5 * (0.25 * plane[0] + 0.75 * plane[1]) + 0.5 * (0.25 * plane[2] + 0.75 * plane[3])
    torch.testing.assert_close(on_image_plane(inside.directions)[0], expected)


@pytest.mark.parametrize(("method", "drift"), [("nerfacto", "loss"), ("nerfacto", "exact"), ("vanilla-nerf", "loss")])
def test_one_training_step_moves_the_population(blender_scene: Path, method: str, drift: str) -> None:
    """A pipeline step: the loss is the re-weighted MSE, the backward pass reaches the ray positions through the
    model, and the update callback moves the population."""
    pipeline = tiny_pipeline_config(blender_scene, method, drift=drift).setup(device="cpu", test_mode="val")
    assert isinstance(pipeline, SoftMiningPipeline)
    expected_datamanager = SoftMiningDataManager if method == "nerfacto" else SoftMiningVanillaDataManager
    assert isinstance(pipeline.datamanager, expected_datamanager)
    assert isinstance(pipeline.model.rgb_loss, SoftMiningRGBLoss)
    callbacks = pipeline.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=None, grad_scaler=None, pipeline=pipeline, trainer=None)
    )
    sampler = pipeline.datamanager.soft_mining_sampler  # type: ignore[attr-defined]
    for step in (0, 700):
        before = sampler.positions.clone()
        _, loss_dict, metrics = pipeline.get_train_loss_dict(step)
        assert pipeline._pending is not None
        coords = pipeline._pending.coords
        sum(loss_dict.values()).backward()
        if drift == "loss":
            assert coords.grad is not None and bool(torch.isfinite(coords.grad).all())
            assert float(coords.grad.abs().sum()) > 0
        else:
            assert pipeline._pending.exact_grad is not None
        for callback in callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
        assert pipeline._pending is None
        assert float((sampler.positions - before).abs().max()) > 0
        assert pipeline.last_population_stats["lowest_error"] == 4  # int(0.1 * 48)
        expected_exponent = 0.0 if step == 0 else 0.6 * 0.7
        assert float(metrics["soft_mining_exponent"]) == pytest.approx(expected_exponent)
    # evaluation keeps plain MSE
    assert pipeline.model.rgb_loss.exponent is None


@pytest.mark.parametrize("drift", ["loss", "exact"])
def test_without_drift_no_gradient_reaches_the_positions(blender_scene: Path, drift: str) -> None:
    """langevin_drift 0: the positions need no gradient, so none is computed; the population still moves (noise)
    and re-initialises."""
    config = tiny_pipeline_config(blender_scene, drift=drift)
    config.datamanager.soft_mining.langevin_drift = 0.0  # type: ignore[attr-defined]
    pipeline = config.setup(device="cpu", test_mode="val")
    assert isinstance(pipeline, SoftMiningPipeline)
    callbacks = pipeline.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=None, grad_scaler=None, pipeline=pipeline, trainer=None)
    )
    sampler = pipeline.datamanager.soft_mining_sampler  # type: ignore[attr-defined]
    before = sampler.positions.clone()
    _, loss_dict, _ = pipeline.get_train_loss_dict(0)
    assert pipeline._pending is not None
    coords = pipeline._pending.coords
    assert not coords.requires_grad and pipeline._pending.exact_grad is None
    sum(loss_dict.values()).backward()
    assert coords.grad is None
    for callback in callbacks:
        callback.run_callback_at_location(0, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
    assert float((sampler.positions - before).abs().max()) > 0
    assert pipeline.last_population_stats["lowest_error"] == 4


def test_pipeline_refuses_a_plain_datamanager(blender_scene: Path) -> None:
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig

    config = tiny_pipeline_config(blender_scene, "vanilla-nerf")
    config.datamanager = VanillaDataManagerConfig(dataparser=config.datamanager.dataparser, data=blender_scene)
    with pytest.raises(ValueError, match="soft-mining data manager"):
        config.setup(device="cpu", test_mode="val")


def test_soft_mining_starts_from_the_same_weights_as_uniform_sampling(blender_scene: Path) -> None:
    """Same seed, same model: the population's first draw happens before the model is built, and must not shift the
    global RNG, or a uniform-vs-soft-mining comparison would compare two initialisations as well as two samplers."""
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
    from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

    soft = tiny_pipeline_config(blender_scene)
    uniform = VanillaPipelineConfig(
        datamanager=VanillaDataManagerConfig(dataparser=soft.datamanager.dataparser, data=blender_scene),
        model=soft.model,
    )
    weights = []
    for config in (soft, uniform):
        torch.manual_seed(7)
        pipeline = config.setup(device="cpu", test_mode="val")
        weights.append({name: value.detach().clone() for name, value in pipeline.model.state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], msg=name)


def test_uniform_batches_are_uniform_and_leave_the_population_alone() -> None:
    """``uniform_batch``: fresh draws, every image and every part of an image equally likely (the released code's
    uniform baseline), the population untouched. 4 images, 64 x 64 px, 200 batches of 512: each image's share has a
    binomial std of 0.1% around 25%, each position coordinate's mean a std of 0.06% around 0.5 and its variance
    ~0.03% around 1/12."""
    config = SoftMiningSamplerConfig(reinit_distribution="uniform")
    sampler = config.setup(
        num_samples=512, image_size=(SIZE, SIZE), num_images=4, generator=torch.Generator().manual_seed(0)
    )
    population = sampler.positions.clone()
    draws = [sampler.uniform_batch() for _ in range(200)]
    ids = torch.cat([ids for ids, _ in draws])
    positions = torch.cat([positions for _, positions in draws])
    shares = torch.bincount(ids, minlength=4).float() / ids.numel()
    torch.testing.assert_close(shares, torch.full((4,), 0.25), atol=0.005, rtol=0)
    torch.testing.assert_close(positions.mean(0), torch.full((2,), 0.5), atol=0.003, rtol=0)
    torch.testing.assert_close(positions.var(0), torch.full((2,), 1 / 12), atol=0.002, rtol=0)
    assert not torch.equal(draws[0][1], draws[1][1])  # a fresh batch every step
    assert torch.equal(sampler.positions, population)


def test_uniform_batches_stay_inside_the_sampling_mask() -> None:
    mask = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    mask[0, 10:20, 30:40] = True
    mask[1, 50:, :5] = True
    config = SoftMiningSamplerConfig(reinit_distribution="uniform")
    sampler = config.setup(num_samples=256, image_size=(SIZE, SIZE), num_images=2, mask=mask)
    ids, positions = sampler.uniform_batch()
    rows, cols = sampler.pixel_indices(positions).unbind(-1)
    assert bool(mask[ids, rows, cols].all())


def test_uniform_switch_trains_on_plain_mse_without_the_population(blender_scene: Path) -> None:
    """``--pipeline.sampler uniform``: the same preset, but each batch is a fresh uniform draw, the RGB loss is the
    unweighted MSE of the batch (computed here by hand from the rendered and target colours), no gradient is taken
    at the positions and the population never moves."""
    config = tiny_pipeline_config(blender_scene)
    config.sampler = "uniform"
    pipeline = config.setup(device="cpu", test_mode="val")
    assert isinstance(pipeline, SoftMiningPipeline)
    callbacks = pipeline.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=None, grad_scaler=None, pipeline=pipeline, trainer=None)
    )
    sampler = pipeline.soft_mining_datamanager.soft_mining_sampler
    before = sampler.positions.clone()
    torch.manual_seed(3)
    outputs, loss_dict, _ = pipeline.get_train_loss_dict(2000)  # past the warm-up: weights would be active
    torch.manual_seed(3)
    _, batch = pipeline.datamanager.next_train(2000)
    assert not batch[COORDS_KEY].requires_grad
    target = pipeline.model.renderer_rgb.blend_background(batch["image"])
    by_hand = torch.mean((outputs["rgb"] - target[..., :3]) ** 2)
    torch.testing.assert_close(loss_dict["rgb_loss"], by_hand)
    sum(loss_dict.values()).backward()
    for callback in callbacks:
        callback.run_callback_at_location(2000, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
    assert torch.equal(sampler.positions, before)
    # 48 rays from 6 images drawn at random, not 8 per image as the population's round robin
    counts = torch.bincount(batch["indices"][:, 0], minlength=6)
    assert int(counts.sum()) == 48 and counts.tolist() != [8] * 6


def test_drift_is_off_by_default_and_no_gradient_reaches_the_positions(blender_scene: Path) -> None:
    """The shipped default (README, Soft mining: the ablation behind it): no drift, so the batch's positions do not
    require grad and the backward pass stops at the rays."""
    trainer = soft_mining_config.soft_mining_ngp_config("blender")
    assert trainer.pipeline.datamanager.soft_mining.langevin_drift == 0.0  # type: ignore[attr-defined]
    config = tiny_pipeline_config(blender_scene)
    config.datamanager.soft_mining.langevin_drift = trainer.pipeline.datamanager.soft_mining.langevin_drift  # type: ignore[attr-defined]
    pipeline = config.setup(device="cpu", test_mode="val")
    _, batch = pipeline.datamanager.next_train(0)
    assert not batch[COORDS_KEY].requires_grad and not batch["image"].requires_grad


def test_ngp_preset_is_the_released_recipe() -> None:
    """soft-mining-ngp: the released code's base model and schedule (brief A2.7)."""
    from nerfstudio_methods.soft_mining.model import SoftMiningNGPModelConfig

    trainer = soft_mining_config.soft_mining_ngp_config("blender")
    assert trainer.method_name == "soft-mining-ngp" and trainer.max_num_iterations == 20000
    pipeline = trainer.pipeline
    assert (
        isinstance(pipeline, SoftMiningPipelineConfig) and pipeline.alpha == 0.6 and pipeline.sampler == "soft-mining"
    )
    assert pipeline.datamanager.train_num_rays_per_batch == 4096
    model = pipeline.model
    assert isinstance(model, SoftMiningNGPModelConfig) and not model.ndc
    assert model.num_proposal_iterations == 1 and model.num_proposal_samples_per_ray == (128,)
    assert model.num_nerf_samples_per_ray == 64 and model.disable_scene_contraction
    assert (model.near_plane, model.far_plane, model.background_color) == (2.0, 6.0, "white")
    for group in ("fields", "proposal_networks"):
        optimizer, scheduler = trainer.optimizers[group]["optimizer"], trainer.optimizers[group]["scheduler"]
        assert (optimizer.lr, optimizer.eps, optimizer.weight_decay) == (1e-2, 1e-15, 1e-6)
        assert (scheduler.learning_rate_alpha, scheduler.max_steps, scheduler.warm_up_end) == (0.1, 20000, 0)
    llff = soft_mining_config.soft_mining_ngp_config("llff")
    assert llff.optimizers["fields"]["optimizer"].weight_decay == 1e-5


def test_batch_keys(blender_scene: Path) -> None:
    pipeline = tiny_pipeline_config(blender_scene).setup(device="cpu", test_mode="val")
    _, batch = pipeline.datamanager.next_train(0)
    coords = batch[COORDS_KEY]
    assert coords.requires_grad and coords.is_leaf and coords.shape == (48, 2)
    assert batch["image"].shape == (48, 3) and batch["image"].requires_grad  # drift through the target
    assert batch["indices"].dtype == torch.long


def test_llff_preset_steps_on_llff_data(tmp_path: Path) -> None:
    """soft-mining-llff: the released base model in NDC, alpha 0.8, the repo's llff-data parser; one step on a
    generated LLFF scene, with the drift's gradient reaching the pixel positions through the NDC map."""
    from dataparsers.llff import LLFFDataParserConfig
    from nerfstudio_methods.soft_mining.model import SoftMiningNGPModelConfig

    scene = generate_scene("llff", tmp_path / "llff", "--width", "32", "--height", "24", "--num-cameras", "6")
    trainer = soft_mining_config.soft_mining_ngp_config("llff")
    assert trainer.method_name == "soft-mining-llff"
    config = trainer.pipeline
    assert isinstance(config, SoftMiningPipelineConfig) and config.alpha == 0.8
    assert isinstance(config.datamanager.dataparser, LLFFDataParserConfig)
    assert config.datamanager.dataparser.downscale_factor == 4  # the released code's LLFF factor
    config.datamanager.dataparser.downscale_factor = 1
    config.datamanager.data = scene
    config.datamanager.train_num_rays_per_batch = 40
    config.datamanager.soft_mining.langevin_drift = RELEASED_LANGEVIN_DRIFT  # type: ignore[attr-defined]
    model = config.model
    assert isinstance(model, SoftMiningNGPModelConfig) and model.ndc
    model.implementation, model.num_proposal_samples_per_ray, model.num_nerf_samples_per_ray = "torch", (8,), 8
    pipeline = config.setup(device="cpu", test_mode="val")
    _, loss_dict, _ = pipeline.get_train_loss_dict(2000)
    sum(loss_dict.values()).backward()
    pending = pipeline._pending
    assert pending is not None and pending.coords.grad is not None and bool(pending.coords.grad.abs().sum() > 0)
    pipeline.update_population(2000)

    # NDC by hand (NeRF's ndc_rays, near plane at depth 1): a ray starts on the near plane (NDC z = -1) and reaches
    # infinity (z = 1) at t = 1, where its NDC x, y are -(2 fx / W) d_x / d_z and -(2 fy / H) d_y / d_z.
    ray_bundle, _ = pipeline.datamanager.next_train(2001)
    ndc = pipeline.model.to_ndc(ray_bundle)  # type: ignore[attr-defined]
    coeff_x, coeff_y = pipeline.model.ndc_coefficients  # type: ignore[attr-defined]
    camera = pipeline.datamanager.train_dataset.cameras[0]
    assert math.isclose(coeff_x, 2 * float(camera.fx) / float(camera.width), rel_tol=1e-6)
    directions = ray_bundle.directions.detach()
    torch.testing.assert_close(ndc.origins[:, 2], torch.full_like(ndc.origins[:, 2], -1.0))
    at_infinity = (ndc.origins + ndc.directions).detach()
    torch.testing.assert_close(at_infinity[:, 2], torch.ones_like(at_infinity[:, 2]))
    torch.testing.assert_close(at_infinity[:, 0], -coeff_x * directions[:, 0] / directions[:, 2])
    torch.testing.assert_close(at_infinity[:, 1], -coeff_y * directions[:, 1] / directions[:, 2])
    assert pipeline.last_population_stats["lowest_error"] == 4
