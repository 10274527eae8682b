"""MonoNeRF encoders: SlowOnly R50 checkpoint names loading strictly, feature shapes, hub-cache weights, alignment."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from dataparsers._common import DatasetFormatError
from nerfstudio_methods.mononerf import encoders
from nerfstudio_methods.mononerf.encoders import (
    VIDEO_CHECKPOINT_OPTION,
    ImageEncoder,
    SlowOnlyResNet3d50,
    VideoEncoder,
    load_slowonly_checkpoint,
    resnet18_hub_weights_path,
)

# ---------------------------------------------------------------------------------------------------------------------
# The released checkpoint's backbone keys, written out from the architecture (not from the module under test):
# mmaction2 ResNet3dSlowOnly depth 50 = conv1 ConvModule (1x7x7) + 4 stages of Bottleneck3d [3, 4, 6, 3] with
# planes 64/128/256/512, expansion 4, inflate (0, 0, 1, 1) -> conv1 kernel 3x1x1 in layer3/layer4, 1x1x1 before;
# conv2 1x3x3; conv3 1x1x1; a downsample ConvModule (1x1x1) on block 0 of every stage. mmcv ConvModule names its
# parts "conv" (no bias) and "bn" (weight, bias, running_mean, running_var, num_batches_tracked).
# ---------------------------------------------------------------------------------------------------------------------


def expected_slowonly_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_module(name: str, out_ch: int, in_ch: int, kernel: tuple[int, int, int]) -> None:
        shapes[f"{name}.conv.weight"] = (out_ch, in_ch, *kernel)
        for field in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{field}"] = (out_ch,)
        shapes[f"{name}.bn.num_batches_tracked"] = ()

    conv_module("conv1", 64, 3, (1, 7, 7))
    in_ch = 64
    for stage, (blocks, kernel_t) in enumerate(zip((3, 4, 6, 3), (1, 1, 3, 3))):
        planes = 64 * 2**stage
        for block in range(blocks):
            block_in = in_ch if block == 0 else planes * 4
            prefix = f"layer{stage + 1}.{block}"
            conv_module(f"{prefix}.conv1", planes, block_in, (kernel_t, 1, 1))
            conv_module(f"{prefix}.conv2", planes, planes, (1, 3, 3))
            conv_module(f"{prefix}.conv3", planes * 4, planes, (1, 1, 1))
            if block == 0:
                conv_module(f"{prefix}.downsample", planes * 4, block_in, (1, 1, 1))
        in_ch = planes * 4
    return shapes


def test_expected_key_list_spot_values() -> None:
    """The hand-written generator itself, against values read off the mmaction2 source by hand."""
    shapes = expected_slowonly_shapes()
    assert shapes["conv1.conv.weight"] == (64, 3, 1, 7, 7)
    assert shapes["layer1.0.conv1.conv.weight"] == (64, 64, 1, 1, 1)
    assert shapes["layer1.0.downsample.conv.weight"] == (256, 64, 1, 1, 1)
    assert shapes["layer2.0.conv2.conv.weight"] == (128, 128, 1, 3, 3)
    assert shapes["layer3.0.conv1.conv.weight"] == (256, 512, 3, 1, 1)
    assert shapes["layer3.5.conv1.conv.weight"] == (256, 1024, 3, 1, 1)
    assert shapes["layer4.2.conv3.conv.weight"] == (2048, 512, 1, 1, 1)
    assert "layer1.1.downsample.conv.weight" not in shapes
    assert "layer4.3.conv1.conv.weight" not in shapes
    assert len(shapes) == 53 * 6  # 53 ConvModules (1 stem + 16 blocks x 3 + 4 downsamples), 6 entries each


def test_slowonly_state_dict_names_and_shapes() -> None:
    model = SlowOnlyResNet3d50()
    actual = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert actual == expected_slowonly_shapes()
    # 31.6 M backbone parameters; with the 400-way head (2048 x 400 + 400) that is mmaction2's 32.45 M for SlowOnly R50.
    assert sum(p.numel() for p in model.parameters()) + 2048 * 400 + 400 == pytest.approx(32.45e6, rel=1e-3)


@pytest.fixture(scope="module")
def fake_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """An mmaction2-style checkpoint: {"meta", "state_dict": backbone.* + cls_head.*}, random tensors."""
    generator = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    for key, shape in expected_slowonly_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[f"backbone.{key}"] = torch.tensor(12345, dtype=torch.long)
        else:
            state[f"backbone.{key}"] = torch.rand(shape, generator=generator) + 0.5
    state["cls_head.fc_cls.weight"] = torch.randn(400, 2048, generator=generator)
    state["cls_head.fc_cls.bias"] = torch.randn(400, generator=generator)
    path = tmp_path_factory.mktemp("ckpt") / "slowonly_r50_k400.pth"
    torch.save(
        {"meta": {"epoch": 150, "mmcv_version": "1.1.1", "config": "model = dict(...)"}, "state_dict": state}, path
    )
    return path, state


def test_slowonly_checkpoint_loads_strictly(fake_checkpoint: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = fake_checkpoint
    model = SlowOnlyResNet3d50()
    load_slowonly_checkpoint(model, path)
    loaded = model.state_dict()
    for key in ("layer3.0.conv1.conv.weight", "conv1.bn.running_var", "layer4.2.conv3.bn.bias"):
        assert torch.equal(loaded[key], state[f"backbone.{key}"])
    assert int(loaded["layer1.0.downsample.bn.num_batches_tracked"]) == 12345
    # Through the video encoder's constructor too.
    encoder = VideoEncoder("slowonly-r50", checkpoint=path)
    assert torch.equal(
        encoder.network.state_dict()["layer2.3.conv2.conv.weight"], state["backbone.layer2.3.conv2.conv.weight"]
    )


def test_slowonly_bare_state_dict_loads(tmp_path: Path) -> None:
    source = SlowOnlyResNet3d50()
    path = tmp_path / "bare.pth"
    torch.save(source.state_dict(), path)
    target = SlowOnlyResNet3d50()
    load_slowonly_checkpoint(target, path)
    key = "layer3.0.conv1.conv.weight"
    assert torch.equal(target.state_dict()[key], source.state_dict()[key])


def _assert_one_line_error(error: pytest.ExceptionInfo[DatasetFormatError], path: Path, *fragments: str) -> None:
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("problem", ["missing", "shape", "unexpected"])
def test_slowonly_checkpoint_mismatch_is_one_error(
    fake_checkpoint: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path, problem: str
) -> None:
    _, state = fake_checkpoint
    state = dict(state)
    if problem == "missing":
        del state["backbone.layer2.1.conv2.conv.weight"]
        fragments = ("missing keys", "layer2.1.conv2.conv.weight")
    elif problem == "shape":
        state["backbone.layer3.0.conv1.conv.weight"] = torch.zeros(256, 512, 1, 1, 1)  # not inflated
        fragments = ("shape mismatches", "layer3.0.conv1.conv.weight", "(256, 512, 1, 1, 1)")
    else:
        state["backbone.layer1.0.conv1_lateral.conv.weight"] = torch.zeros(1)
        fragments = ("unexpected keys", "layer1.0.conv1_lateral.conv.weight")
    path = tmp_path / f"{problem}.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(DatasetFormatError) as error:
        load_slowonly_checkpoint(SlowOnlyResNet3d50(), path)
    _assert_one_line_error(error, path, *fragments)


def test_slowonly_truncated_or_missing_file_is_one_error(
    fake_checkpoint: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    good, _ = fake_checkpoint
    truncated = tmp_path / "truncated.pth"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFormatError) as error:
        load_slowonly_checkpoint(SlowOnlyResNet3d50(), truncated)
    _assert_one_line_error(error, truncated, "unreadable or truncated")

    absent = tmp_path / "absent.pth"
    with pytest.raises(DatasetFormatError) as error:
        load_slowonly_checkpoint(SlowOnlyResNet3d50(), absent)
    _assert_one_line_error(error, absent, "not found")


# ---------------------------------------------------------------------------------------------------------------------
# Shapes, channel counts, batch-norm statistics
# ---------------------------------------------------------------------------------------------------------------------


def test_slowonly_video_features_shapes_and_levels() -> None:
    torch.manual_seed(0)
    encoder = VideoEncoder("slowonly-r50")
    assert (encoder.channels, encoder.pooled_channels) == (832, 2048)
    frames = torch.rand(2, 32, 48, 3)
    features = encoder.encode(frames)
    assert features.volume.shape == (2, 832, 16, 24)
    assert features.pooled.shape == (2048,)
    assert not features.volume.requires_grad
    assert all(not p.requires_grad for p in encoder.parameters())

    # Reference: a copy of the network run the ordinary way (train mode = batch statistics, as released).
    reference = copy.deepcopy(encoder.network).train()
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1, 1)
    clip = (frames.permute(3, 0, 1, 2)[None] * 255.0 - mean) / std
    with torch.no_grad():
        stem, res2, res3, res4, res5 = reference(clip)
    assert [x.shape[1:] for x in (stem, res2, res3, res4, res5)] == [
        (64, 2, 16, 24),
        (256, 2, 16, 24),
        (512, 2, 8, 12),
        (1024, 2, 4, 6),
        (2048, 2, 2, 3),
    ]
    volume = features.volume.permute(1, 0, 2, 3)  # (c, t, h, w)
    torch.testing.assert_close(volume[:64], stem[0])
    torch.testing.assert_close(volume[64:320], res2[0])
    # res3 is upsampled with align_corners=True: the four corner samples are copied exactly.
    for i, j in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        torch.testing.assert_close(volume[320:, :, i, j], res3[0, :, :, i, j])
    torch.testing.assert_close(features.pooled, res5[0].mean(dim=(1, 2, 3)))


def test_batch_norm_statistics_modes_leave_buffers_alone() -> None:
    torch.manual_seed(0)
    frames = torch.rand(1, 32, 32, 3)
    encoder = VideoEncoder("slowonly-r50", batch_norm_statistics="running")
    before = {k: v.clone() for k, v in encoder.network.state_dict().items()}
    encoder.train()
    running_train = encoder.encode(frames).volume
    encoder.eval()
    running_eval = encoder.encode(frames).volume
    torch.testing.assert_close(running_train, running_eval)  # independent of the module's mode
    encoder.batch_norm_statistics = "batch"
    batch = encoder.encode(frames).volume
    assert not torch.allclose(batch, running_eval)
    after = encoder.network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats and counters untouched
    # "running" equals an eval-mode forward of the network.
    with torch.no_grad():
        clip = (frames.permute(3, 0, 1, 2)[None] * 255.0 - torch.tensor(encoders.MMACTION_MEAN).view(1, 3, 1, 1, 1)) / (
            torch.tensor(encoders.MMACTION_STD).view(1, 3, 1, 1, 1)
        )
        stem = copy.deepcopy(encoder.network).eval()(clip)[0]
    torch.testing.assert_close(running_eval[:, :64], stem[0].permute(1, 0, 2, 3))


def test_small_video_encoder_shapes_odd_sizes() -> None:
    encoder = VideoEncoder("small")
    assert (encoder.channels, encoder.pooled_channels) == (64, 64)
    features = encoder.encode(torch.rand(3, 33, 47, 3))
    assert features.volume.shape == (3, 64, 17, 24)  # ceil(33 / 2), ceil(47 / 2)
    assert features.pooled.shape == (64,)
    assert torch.isfinite(features.volume).all() and features.volume.abs().sum() > 0
    with pytest.raises(ValueError, match="no checkpoint"):
        VideoEncoder("small", checkpoint=Path("x.pth"))


def test_small_video_encoder_mixes_neighbouring_frames() -> None:
    """Temporal kernels 3: changing frame 0 changes frame 1's features but not frame 3's (stem + block reach +-2)."""
    encoder = VideoEncoder("small")
    frames = torch.rand(4, 16, 16, 3)
    base = encoder.encode(frames).volume
    frames[0] = torch.rand(16, 16, 3)
    changed = encoder.encode(frames).volume
    assert not torch.allclose(base[1], changed[1])
    torch.testing.assert_close(base[3], changed[3])


def test_image_encoders_shapes() -> None:
    torch.manual_seed(0)
    resnet = ImageEncoder("resnet18", batch_norm_statistics="running")
    assert resnet.channels == 512
    frames = torch.rand(2, 32, 48, 3)
    maps = resnet.encode(frames)
    assert maps.shape == (2, 512, 8, 12)
    net = copy.deepcopy(resnet.network).eval()
    assert isinstance(net, torchvision.models.ResNet)
    images = (frames.permute(0, 3, 1, 2) - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        pooled = net.maxpool(net.relu(net.bn1(net.conv1(images))))
        layer1 = net.layer1(pooled)
        layer3 = net.layer3(net.layer2(layer1))
    torch.testing.assert_close(maps[:, :64], pooled)
    torch.testing.assert_close(maps[:, 64:128], layer1)
    torch.testing.assert_close(maps[:, 256:, -1, -1], layer3[:, :, -1, -1])  # align_corners=True corner

    small = ImageEncoder("small")
    assert small.channels == 32
    assert small.encode(torch.rand(3, 33, 47, 3)).shape == (3, 32, 9, 12)  # ceil(ceil(33 / 2) / 2), ...


def test_resnet18_weights_from_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # TORCH_HOME rather than torch.hub.set_dir: set_dir pins the hub folder for the rest of the session.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    hub = tmp_path / "torch_home" / "hub"
    assert resnet18_hub_weights_path() == hub / "checkpoints" / "resnet18-f37072fd.pth"
    assert not ImageEncoder("resnet18").pretrained  # empty cache: random initialisation

    source = torchvision.models.resnet18(weights=None)
    weights = hub / "checkpoints" / "resnet18-f37072fd.pth"
    weights.parent.mkdir(parents=True)
    torch.save(source.state_dict(), weights)
    encoder = ImageEncoder("resnet18")
    assert encoder.pretrained
    loaded, saved = encoder.network.state_dict(), source.state_dict()
    for key in ("layer2.0.conv1.weight", "bn1.running_var", "fc.bias"):
        assert torch.equal(loaded[key], saved[key])

    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(DatasetFormatError) as error:
        ImageEncoder("resnet18")
    _assert_one_line_error(error, weights, "unreadable or truncated")


def test_random_initialisation_is_said_once(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(encoders, "_SAID", set())
    VideoEncoder("slowonly-r50")
    VideoEncoder("slowonly-r50")
    output = " ".join(capsys.readouterr().out.split())
    assert output.count("randomly initialised") == 1
    assert VIDEO_CHECKPOINT_OPTION in output


# ---------------------------------------------------------------------------------------------------------------------
# Pixel alignment of the feature volume
# ---------------------------------------------------------------------------------------------------------------------


def test_stem_features_change_at_the_image_edge() -> None:
    """Left half black, right half white (edge at image x = 24 of W = 48): where do the stem features change?

    The stem (7x7, stride 2, padding 3) centres output column k on input column 2k (image x = 2k + 0.5), reaching
    columns 2k - 3 .. 2k + 3. Columns 2..10 see only black, 14..22 only white (0, 1 and 23 also see the zero padding),
    so exactly columns 11, 12, 13 are transitional, centred on column 12 (image x = 24.5; in the exact-cover
    convention column 12 spans image x 24..26, so the edge x = 24 falls on its left boundary).
    """
    torch.manual_seed(0)
    frames = torch.zeros(1, 32, 48, 3)
    frames[:, :, 24:] = 1.0
    stem = VideoEncoder("slowonly-r50").encode(frames).volume[:, :64, 2:15]  # rows away from the top/bottom padding
    black, white = stem[..., 2:3], stem[..., 14:15]
    torch.testing.assert_close(stem[..., 2:11], black.expand_as(stem[..., 2:11]))
    torch.testing.assert_close(stem[..., 14:23], white.expand_as(stem[..., 14:23]))
    for column in (11, 12, 13):
        assert (stem[..., column : column + 1] - black).abs().max() > 1e-3
        assert (stem[..., column : column + 1] - white).abs().max() > 1e-3
    assert (black - white).abs().max() > 1e-3


def test_volume_sampled_at_a_pixel_centre_matches_the_nearest_feature() -> None:
    """grid_sample(align_corners=False) at the centre of feature cell (i, j) returns that cell (contract convention)."""
    volume = VideoEncoder("small").encode(torch.rand(1, 20, 30, 3)).volume  # (1, 64, 10, 15)
    height, width = 20, 30
    i, j = 4, 9
    u, v = (j + 0.5) * 2.0, (i + 0.5) * 2.0  # image point at the centre of feature cell (i, j): 2x2 image pixels
    grid = torch.tensor([[[[2 * u / width - 1, 2 * v / height - 1]]]])
    sample = F.grid_sample(volume, grid, align_corners=False, padding_mode="border")
    torch.testing.assert_close(sample[0, :, 0, 0], volume[0, :, i, j])


class _Opaque:
    """A pickled class instance: torch.load(weights_only=True) must refuse it."""


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "opaque.pth"
    torch.save({"state_dict": {}, "meta": _Opaque()}, path)
    with pytest.raises(DatasetFormatError) as error:
        load_slowonly_checkpoint(SlowOnlyResNet3d50(), path)
    _assert_one_line_error(error, path, "weights_only=True")


@pytest.mark.parametrize(
    ("size", "stride", "expected"), [(33, 2, 17), (33, 4, 9), (270, 2, 135), (270, 4, 68), (48, 4, 12)]
)
def test_feature_map_size(size: int, stride: int, expected: int) -> None:
    assert encoders.feature_map_size(size, stride) == expected
