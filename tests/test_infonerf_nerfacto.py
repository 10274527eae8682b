"""InfoNeRF's regularizer as a reusable piece: on nerfacto (``infonerf-nerfacto``) and over nerfstudio's data managers.

Values are checked against sums written out by hand (python loops in float64) over the opacities of nerfacto's final,
proposal-resampled samples, recomputed from the field's density and the samples' deltas.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig

from dataparsers.blender import BlenderFewShotDataParserConfig
from nerfstudio_methods.infonerf import config as infonerf_config  # installs the compat fixes (offline LPIPS)
from nerfstudio_methods.infonerf.datamanager import (
    InfoNeRFDataManager,
    InfoNeRFDataManagerConfig,
    InfoNeRFDataManagerMixin,
    InfoNeRFParallelDataManagerConfig,
    InfoNeRFRaysConfig,
)
from nerfstudio_methods.infonerf.losses import record_sample_opacities
from nerfstudio_methods.infonerf.nerfacto import InfoNeRFNerfactoModel, InfoNeRFNerfactoModelConfig

SMALL_NERFACTO = dict(
    implementation="torch",
    num_levels=4,
    log2_hashmap_size=10,
    max_res=64,
    hidden_dim=16,
    hidden_dim_color=16,
    num_proposal_iterations=1,
    proposal_net_args_list=[
        {"hidden_dim": 8, "log2_hashmap_size": 10, "num_levels": 3, "max_res": 32, "use_linear": False}
    ],
    num_proposal_samples_per_ray=(16,),
    num_nerf_samples_per_ray=12,
    near_plane=2.0,
    far_plane=6.0,
    background_color="white",
    use_appearance_embedding=False,
    camera_optimizer=CameraOptimizerConfig(mode="off"),
    average_init_density=1.0,
)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nerfstudio_methods.scenegen.formats.blender import write_blender

    root = tmp_path_factory.mktemp("infonerf_nerfacto") / "scene"
    write_blender(root, width=24, height=20, num_cameras=6, num_val=3, num_test=3)
    return root


def dataparser(scene: Path) -> BlenderFewShotDataParserConfig:
    return BlenderFewShotDataParserConfig(data=scene, train_views=(0, 2, 4), eval_skip=1)


def make_datamanager(scene: Path, **overrides) -> InfoNeRFDataManager:
    options = dict(
        dataparser=dataparser(scene),
        train_num_rays_per_batch=16,
        num_unseen_rays=8,
        neighbour_rays=True,
        seen_rays_from_one_image=False,
    )
    options.update(overrides)
    datamanager = InfoNeRFDataManagerConfig(**options).setup(device="cpu", test_mode="val")  # type: ignore[arg-type]
    assert isinstance(datamanager, InfoNeRFDataManager)
    return datamanager


def make_model(datamanager, config_class=InfoNeRFNerfactoModelConfig, **overrides):
    options = dict(SMALL_NERFACTO)
    options.update(overrides)
    return config_class(**options).setup(  # type: ignore[arg-type]
        scene_box=datamanager.train_dataset.scene_box, num_train_data=len(datamanager.train_dataset)
    )


def hand_entropy(alphas: list[float]) -> float:
    """-sum p log2(p + 1e-10), p = alpha / (sum alpha + 1e-10), written out."""
    total = sum(alphas) + 1e-10
    entropy = 0.0
    for alpha in alphas:
        p = alpha / total
        entropy -= p * math.log(p + 1e-10) / math.log(2.0)
    return entropy


def hand_kl(original: list[float], neighbour: list[float]) -> float:
    """KL(P || Q) = sum p (log p - log q), p and q the normalised opacities plus 1e-10, written out."""
    p_total, q_total = sum(original) + 1e-10, sum(neighbour) + 1e-10
    kl = 0.0
    for a, b in zip(original, neighbour):
        p, q = a / p_total + 1e-10, b / q_total + 1e-10
        kl += p * (math.log(p) - math.log(q))
    return kl


def test_entropy_and_kl_on_the_proposal_resampled_samples(scene: Path) -> None:
    torch.manual_seed(0)
    datamanager = make_datamanager(scene)
    model = make_model(datamanager, entropy_acc_threshold=0.1, kl_lambda=1e-3)
    assert isinstance(model, InfoNeRFNerfactoModel)
    model.train()
    rays, batch = datamanager.next_train(step=0)
    outputs = model(rays)
    n_seen, n_unseen, n_near = batch["n_seen"], batch["n_unseen"], batch["n_near"]
    assert (n_seen, n_unseen, n_near) == (16, 8, 24) and len(rays) == 48

    # the final samples: nerfacto's 12 resampled samples per ray (not the proposal network's 16)
    samples = outputs["ray_samples_list"][-1]
    weights = outputs["weights_list"][-1][..., 0].detach()
    assert outputs["infonerf_alphas"].shape == (48, 12) == weights.shape
    with torch.no_grad():
        density = model.field.get_density(samples)[0][..., 0].double()
    alphas = (1.0 - torch.exp(-density * samples.deltas[..., 0].double())).tolist()
    torch.testing.assert_close(outputs["infonerf_alphas"].double(), torch.tensor(alphas, dtype=torch.float64))
    # the same opacities give nerfacto's rendering weights: w_i = alpha_i * prod_{j<i} (1 - alpha_j)
    for ray in range(48):
        transmittance = 1.0
        for i, alpha in enumerate(alphas[ray]):
            assert abs(float(weights[ray, i]) - alpha * transmittance) < 1e-5
            transmittance *= 1.0 - alpha

    metrics = model.get_metrics_dict(outputs, batch)
    losses = model.get_loss_dict(outputs, batch, metrics)
    accumulation = [sum(row) for row in weights.tolist()]
    # entropy over [unseen | near-seen | near-unseen] (the code's default), masked by accumulation > 0.1
    selected = range(n_seen, n_seen + n_unseen + n_near)
    expected_entropy = sum(hand_entropy(alphas[r]) for r in selected if accumulation[r] > 0.1) / len(selected)
    assert metrics["ray_entropy"].item() == pytest.approx(expected_entropy, rel=1e-4)
    assert losses["entropy_loss"].item() == pytest.approx(0.001 * expected_entropy, rel=1e-4)
    # KL(original || neighbour) between [seen | unseen] and [near-seen | near-unseen], averaged over rays
    half = n_seen + n_unseen
    expected_kl = sum(hand_kl(alphas[r], alphas[half + r]) for r in range(half)) / half
    assert metrics["information_gain"].item() == pytest.approx(expected_kl, rel=1e-4)
    assert losses["kl_loss"].item() == pytest.approx(1e-3 * expected_kl, rel=1e-4)
    # nerfacto's RGB loss covers the seen rays only; its proposal and distortion losses every ray
    gt = batch["image"][:, :3]
    torch.testing.assert_close(losses["rgb_loss"].detach(), ((outputs["rgb"][:n_seen] - gt) ** 2).mean().detach())
    assert set(losses) == {"rgb_loss", "interlevel_loss", "distortion_loss", "entropy_loss", "kl_loss"}


def test_regularizer_gradients_reach_the_nerfacto_field(scene: Path) -> None:
    torch.manual_seed(1)
    datamanager = make_datamanager(scene)
    model = make_model(datamanager, entropy_acc_threshold=0.0, kl_lambda=1e-3)
    model.train()
    rays, batch = datamanager.next_train(step=0)
    outputs = model(rays)
    losses = model.get_loss_dict(outputs, batch, model.get_metrics_dict(outputs, batch))
    (losses["entropy_loss"] + losses["kl_loss"]).backward()
    # the density part of the field (hash grid and its MLP) gets a gradient; the colour head does not need one
    density_parameters = dict(model.field.mlp_base.named_parameters())
    assert density_parameters
    for name, parameter in density_parameters.items():
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name
    # the proposal network's samples are detached (as in nerfacto): it learns from the interlevel loss only
    for parameter in model.proposal_networks.parameters():
        assert parameter.grad is None or float(parameter.grad.abs().sum()) == 0.0


def test_the_mixin_leaves_nerfacto_unchanged_without_infonerf_batches(scene: Path) -> None:
    """On a plain nerfstudio batch, infonerf-nerfacto's model computes exactly what nerfacto computes."""
    plain = VanillaDataManagerConfig(dataparser=dataparser(scene), train_num_rays_per_batch=32).setup(
        device="cpu", test_mode="val"
    )
    torch.manual_seed(2)
    nerfacto = make_model(plain, NerfactoModelConfig)
    torch.manual_seed(2)
    mixed = make_model(plain, InfoNeRFNerfactoModelConfig, keep_near_plane_at_eval=False)
    assert type(nerfacto) is NerfactoModel and isinstance(mixed, InfoNeRFNerfactoModel)
    for name, value in nerfacto.state_dict().items():
        assert torch.equal(value, mixed.state_dict()[name]), name
    nerfacto.train()
    mixed.train()
    rays, batch = plain.next_train(step=0)
    torch.manual_seed(3)
    expected = nerfacto(rays)
    torch.manual_seed(3)
    outputs = mixed(rays)
    assert set(outputs) == set(expected) | {"infonerf_alphas"}
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(outputs[key], value), key
    for expected_weights, weights in zip(expected["weights_list"], outputs["weights_list"]):
        assert torch.equal(expected_weights, weights)
    expected_metrics = nerfacto.get_metrics_dict(expected, batch)
    metrics = mixed.get_metrics_dict(outputs, batch)
    assert set(metrics) == set(expected_metrics)
    assert all(torch.equal(metrics[key], expected_metrics[key]) for key in metrics)
    expected_losses = nerfacto.get_loss_dict(expected, batch, expected_metrics)
    losses = mixed.get_loss_dict(outputs, batch, metrics)
    assert set(losses) == set(expected_losses)
    assert all(torch.equal(losses[key], expected_losses[key]) for key in losses)
    # full-image renders (ns-eval, ns-render, the viewer): identical, and no opacities kept
    camera = plain.eval_dataset.cameras[0:1]
    nerfacto.eval()
    mixed.eval()
    expected_image = nerfacto.get_outputs_for_camera(camera)
    image = mixed.get_outputs_for_camera(camera)
    assert set(image) == set(expected_image)
    assert all(torch.equal(image[key], expected_image[key]) for key in image)
    # the field's get_density is its class's again after a training pass (the recording patch is removed)
    assert "get_density" not in vars(mixed.field)


def test_recording_patch_is_removed_when_the_pass_fails(scene: Path) -> None:
    datamanager = make_datamanager(scene)
    model = make_model(datamanager)
    with pytest.raises(RuntimeError), record_sample_opacities(model.field):
        raise RuntimeError("boom")
    assert "get_density" not in vars(model.field)


class _MixedVanilla(InfoNeRFDataManagerMixin, VanillaDataManager):
    """A user's data manager: nerfstudio's plain VanillaDataManager with InfoNeRF's rays mixed in."""


def test_the_rays_mixin_over_a_plain_nerfstudio_data_manager(scene: Path) -> None:
    from dataclasses import dataclass, field
    from typing import Type

    @dataclass
    class MixedConfig(VanillaDataManagerConfig, InfoNeRFRaysConfig):
        _target: Type = field(default_factory=lambda: _MixedVanilla)

    torch.manual_seed(4)
    config = MixedConfig(
        dataparser=dataparser(scene), train_num_rays_per_batch=20, num_unseen_rays=6, neighbour_rays=True
    )
    datamanager = config.setup(device="cpu", test_mode="val")
    assert isinstance(datamanager, _MixedVanilla)
    rays, batch = datamanager.next_train(step=0)
    assert (batch["n_seen"], batch["n_unseen"], batch["n_near"]) == (20, 6, 26) and len(rays) == 52
    # seen rays: nerfstudio's own, through the pixel centres of batch["indices"]
    cameras = datamanager.train_dataset.cameras
    indices = batch["indices"]
    own = cameras.generate_rays(camera_indices=indices[:, :1], coords=indices[:, 1:].float() + 0.5)
    torch.testing.assert_close(rays.origins[:20], own.origins)
    torch.testing.assert_close(rays.directions[:20], own.directions)
    # neighbour rays: the same pixels from the camera rotated about the origin, R @ origin and R @ direction
    rotations = batch["neighbour_rotations"]
    torch.testing.assert_close(rays.origins[26:46], (rotations[:20] @ own.origins[:, :, None])[..., 0])
    torch.testing.assert_close(rays.directions[26:46], (rotations[:20] @ own.directions[:, :, None])[..., 0])
    # no colours for the unseen and neighbour rays
    assert batch["image"].shape[0] == 20


def test_unseen_rays_can_be_switched_off(scene: Path) -> None:
    datamanager = make_datamanager(scene, num_unseen_rays=0, neighbour_rays=False)
    rays, batch = datamanager.next_train(step=0)
    assert (batch["n_seen"], batch["n_unseen"], batch["n_near"]) == (16, 0, 0) and len(rays) == 16
    model = make_model(datamanager)
    model.train()
    outputs = model(rays)
    losses = model.get_loss_dict(outputs, batch, model.get_metrics_dict(outputs, batch))
    assert losses["entropy_loss"].item() == 0.0  # no rays to regularise: the mean over none is 0


def test_nerfacto_presets() -> None:
    blender = infonerf_config.infonerf_nerfacto.config
    dtu = infonerf_config.infonerf_nerfacto_dtu.config
    assert (blender.method_name, dtu.method_name) == ("infonerf-nerfacto", "infonerf-nerfacto-dtu")
    for trainer in (blender, dtu):
        datamanager, model = trainer.pipeline.datamanager, trainer.pipeline.model
        assert isinstance(datamanager, InfoNeRFParallelDataManagerConfig)
        assert isinstance(model, InfoNeRFNerfactoModelConfig)
        assert model.camera_optimizer.mode == "off" and not model.use_appearance_embedding
        assert model.implementation == "tcnn"  # nerfacto's default (falls back to torch without tiny-cuda-nn)
    assert tuple(blender.pipeline.datamanager.dataparser.train_views) == (26, 86, 2, 55)
    assert tuple(dtu.pipeline.datamanager.dataparser.train_views) == (22, 25, 28)
    assert blender.pipeline.model.kl_lambda == 0.0 and not blender.pipeline.datamanager.neighbour_rays
    assert dtu.pipeline.model.kl_lambda == 2e-5 and dtu.pipeline.datamanager.neighbour_rays
    assert blender.pipeline.model.background_color == "white"  # Blender's renders are composited on white
    assert dtu.pipeline.model.background_color == "last_sample"  # DTU has a real background: learned, as nerfacto
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'infonerf-nerfacto = "nerfstudio_methods.infonerf.config:infonerf_nerfacto"' in pyproject
    assert 'infonerf-nerfacto-dtu = "nerfstudio_methods.infonerf.config:infonerf_nerfacto_dtu"' in pyproject
