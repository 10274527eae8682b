"""MonoNeRF's frozen feature encoders in plain PyTorch (mononerf.md §1 "Video encoder", "Image encoder", §4).

* :class:`VideoEncoder` turns the whole training clip into a pixel-aligned feature volume (one map per frame) and one
  pooled vector per video (the input of the global per-video code ``c``, mononerf.md §1 "Global per-video code").
  ``"slowonly-r50"`` is mmaction2 0.x ``ResNet3dSlowOnly`` depth 50 (:class:`SlowOnlyResNet3d50`), whose state-dict
  names and shapes load the public Kinetics-400 checkpoint strictly (:func:`load_slowonly_checkpoint`); ``"small"`` is
  a tiny 3D conv net for the CPU preset.
* :class:`ImageEncoder` turns each frame into a pixel-aligned feature map: torchvision's ResNet-18 (ImageNet weights
  only when they are already in the torch hub cache) or a tiny 2D conv net.

Nothing here downloads. Both encoders are frozen (``requires_grad`` False) and ``encode`` runs under ``no_grad``: the
model computes the features once per scene and caches them (mononerf.md §1: "computed once under no_grad").

Pixel convention of the returned maps. A map of size (h, w) computed from an (H, W) image is treated as covering the
image exactly (mononerf_contract.md): its pixel (i, j) has its centre at image point ((j + 0.5) W / w, (i + 0.5) H / h),
so the model samples it with ``grid_sample(align_corners=False)``. The network itself is not exactly centred on that
grid: a stride-2 convolution with an odd kernel and "same" padding centres output column k on input column 2k, i.e. at
image x = 2k + 0.5, half an input pixel left of the exact-cover centre 2k + 1 (the usual CNN offset, kept as released).
Coarser levels are upsampled to the finest level's size with ``align_corners=True`` as released (MonoNeRF
``src/model/encoder.py``), which maps the first and last source centres onto the first and last target centres.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import torch
import torch.nn.functional as F
import torchvision
from jaxtyping import Float
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from nerfstudio_methods.checkpoints import load_state_strictly, load_tensor_file
from nerfstudio_methods.input_errors import DatasetFormatError

VideoEncoderKind = Literal["slowonly-r50", "small"]
ImageEncoderKind = Literal["resnet18", "small"]
BatchNormStatistics = Literal["batch", "running"]

VIDEO_CHECKPOINT_OPTION = "--pipeline.model.video-encoder-checkpoint"
"""The command-line option that passes the SlowOnly checkpoint (named in the one-time random-initialisation notice)."""

SLOWONLY_CHECKPOINT_NAME = "slowonly_imagenet_pretrained_r50_8x8x1_150e_kinetics400_rgb_20200912-3f9ce182.pth"
"""The public mmaction2 Kinetics-400 SlowOnly R50 checkpoint MonoNeRF loads (mononerf.md §4)."""

MMACTION_MEAN = (123.675, 116.28, 103.53)
MMACTION_STD = (58.395, 57.12, 57.375)
"""mmaction ``Normalize`` on 0..255 RGB (MonoNeRF's SlowOnly config ``img_norm_cfg``, ``to_bgr=False``)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""torchvision ImageNet normalisation on [0, 1] RGB (MonoNeRF ``normalize_imagenet``)."""

SLOWONLY_STAGE_BLOCKS = (3, 4, 6, 3)
SLOWONLY_STAGE_INFLATE = (False, False, True, True)
"""ResNet-50 bottleneck counts; ``inflate=(0, 0, 1, 1)``: res4 and res5 use 3x1x1 first convs (mononerf.md §1)."""

_SAID: set[str] = set()


def _say_once(key: str, message: str) -> None:
    """Print a notice once per process (several scenes or encoders must not repeat it)."""
    if key in _SAID:
        return
    _SAID.add(key)
    from nerfstudio.utils.rich_utils import CONSOLE

    CONSOLE.print(f"[yellow]{message}")


# ---------------------------------------------------------------------------------------------------------------------
# SlowOnly ResNet3D-50 (mmaction2 0.x) with mmcv ConvModule parameter names
# ---------------------------------------------------------------------------------------------------------------------


class ConvBnReLU3d(nn.Module):
    """mmcv ``ConvModule(conv_cfg=Conv3d, norm_cfg=BN3d, bias=False)``: state-dict names ``conv.weight`` and ``bn.*``.

    mmcv builds the conv as ``self.conv`` and adds the norm under ``build_norm_layer``'s abbreviation, ``"bn"`` for any
    ``_BatchNorm`` subclass, with eps 1e-5 (mmcv ``cnn/bricks/conv_module.py``, ``cnn/bricks/norm.py`` ``infer_abbr``).
    The activation (ReLU) has no parameters; ``relu=False`` is mmaction's ``act_cfg=None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int],
        stride: tuple[int, int, int] = (1, 1, 1),
        padding: tuple[int, int, int] = (0, 0, 0),
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-5)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x, inplace=True) if self.relu else x


class Bottleneck3d(nn.Module):
    """mmaction2 ``Bottleneck3d``, ``style="pytorch"`` (the 3x3 conv carries the spatial stride), expansion 4.

    ``inflate=True`` with ``inflate_style="3x1x1"`` (the default): conv1 kernel (3, 1, 1) padding (1, 0, 0), conv2
    (1, 3, 3); ``inflate=False``: conv1 (1, 1, 1), conv2 (1, 3, 3). conv3 is 1x1x1 without activation; the ReLU comes
    after the residual sum. Temporal strides are all 1 in SlowOnly.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, spatial_stride: int, inflate: bool, downsample: bool) -> None:
        super().__init__()
        t = 3 if inflate else 1
        self.conv1 = ConvBnReLU3d(in_channels, planes, (t, 1, 1), padding=(t // 2, 0, 0))
        self.conv2 = ConvBnReLU3d(
            planes, planes, (1, 3, 3), stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1)
        )
        self.conv3 = ConvBnReLU3d(planes, planes * self.expansion, (1, 1, 1), relu=False)
        self.downsample = (
            ConvBnReLU3d(
                in_channels, planes * self.expansion, (1, 1, 1), stride=(1, spatial_stride, spatial_stride), relu=False
            )
            if downsample
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + identity, inplace=True)


class SlowOnlyResNet3d50(nn.Module):
    """mmaction2 0.x ``ResNet3dSlowOnly`` depth 50 as MonoNeRF configures it, in plain PyTorch (no mmcv/mmaction2).

    Architecture (checked against the sources, not guessed):

    * MonoNeRF ``mmaction_configs/_base_/models/slowonly_r50.py``: ``ResNet3dSlowOnly``, depth 50, ``lateral=False``,
      ``conv1_kernel=(1, 7, 7)``, ``conv1_stride_t=1``, ``pool1_stride_t=1``, ``inflate=(0, 0, 1, 1)``,
      ``norm_eval=False``, ``with_pool1=False``; ``cls_head=None``. ``src/model/encoder.py``
      (``SpatialTemporalEncoder.forward``): conv1, no maxpool, then all four res layers.
    * mmaction2 ``mmaction/models/backbones/resnet3d_slowonly.py`` (0.x; ``with_pool2=False`` default in the later 0.x
      files, so no temporal pooling after res2) subclasses ``ResNet3dPathway`` (``resnet3d_slowfast.py``), whose
      ``make_res_layer`` with ``lateral=False`` equals ``ResNet3d.make_res_layer``: a downsample ``ConvModule``
      (1x1x1, stride (1, s, s), no activation) on the first block of a stage when ``s != 1`` or the channel count
      changes, i.e. on block 0 of every stage.
    * mmaction2 ``mmaction/models/backbones/resnet3d.py`` (``ResNet3d._make_stem_layer``: conv1 ``ConvModule`` with
      stride (conv1_stride_t, 2, 2) and padding ``(k - 1) // 2``; ``spatial_strides=(1, 2, 2, 2)``; stages named
      ``layer1``..``layer4``; ``Bottleneck3d`` as above). Its ``_inflate_weights`` comments spell the names:
      ``layer{X}.{Y}.conv{n}.conv`` / ``.bn`` and ``layer{X}.{Y}.downsample.conv`` / ``.bn``.

    Hence with ``with_pool1=False`` the resolutions are: stem H/2, res2 (``layer1``, 256 ch) H/2, res3 (``layer2``,
    512) H/4, res4 (``layer3``, 1024) H/8, res5 (``layer4``, 2048) H/16; T is kept throughout. The state dict
    (parameters and BN buffers including ``num_batches_tracked``) equals the released checkpoint's ``backbone.*`` keys.

    Random initialisation follows mmaction2 (``kaiming_init``: normal, fan_out, ReLU; BN weight 1, bias 0) except
    that the last BN of each block is not zeroed (mmaction2's ``zero_init_residual=True``) unless asked: the encoder
    is frozen, and zeroed residual branches would leave random features with nothing but the shortcut paths.
    """

    stem_channels = 64
    stage_channels = (256, 512, 1024, 2048)

    def __init__(self, zero_init_residual: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvBnReLU3d(3, 64, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3))
        in_channels = 64
        for index, (blocks, inflate) in enumerate(zip(SLOWONLY_STAGE_BLOCKS, SLOWONLY_STAGE_INFLATE)):
            planes = 64 * 2**index
            stride = 1 if index == 0 else 2
            layer = [Bottleneck3d(in_channels, planes, stride, inflate, downsample=True)]
            layer += [Bottleneck3d(planes * 4, planes, 1, inflate, downsample=False) for _ in range(1, blocks)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*layer))
            in_channels = planes * 4
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck3d):
                    nn.init.zeros_(module.conv3.bn.weight)

    def forward(self, clip: Float[Tensor, "b 3 t h w"]) -> list[Tensor]:
        """The stem (conv1, 64 ch, H/2) and res2..res5 outputs (256/512/1024/2048 ch at H/2, H/4, H/8, H/16)."""
        x = self.conv1(clip)
        outputs = [x]
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            outputs.append(x)
        return outputs


def load_slowonly_checkpoint(model: SlowOnlyResNet3d50, path: Path) -> None:
    """Load the mmaction2 Kinetics-400 SlowOnly R50 checkpoint (mononerf.md §4) into ``model``, strictly.

    Accepts the released ``.pth`` (a dict whose ``"state_dict"`` holds ``backbone.*`` and ``cls_head.*`` keys; any
    ``"meta"`` is ignored) or a bare state dict with or without the ``backbone.`` prefix. ``cls_head.*`` is dropped:
    MonoNeRF builds the recogniser with ``cls_head=None`` and uses only backbone features. Every other key must match
    the model's parameters and buffers in name and shape. Any problem (unreadable or truncated file, missing or
    unexpected keys, shape mismatches) raises one :class:`DatasetFormatError` naming the file.
    """
    path = Path(path)
    what = "SlowOnly checkpoint"
    raw = load_tensor_file(path, what)
    state = raw.get("state_dict", raw) if isinstance(raw, Mapping) else None
    if not isinstance(state, Mapping) or not all(
        isinstance(key, str) and isinstance(value, Tensor) for key, value in state.items()
    ):
        raise DatasetFormatError(path, f"{what} is not a state dict (a mapping of names to tensors)")
    backbone: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("cls_head."):
            continue
        backbone[key.removeprefix("backbone.")] = value
    load_state_strictly(model, backbone, path, what)


# ---------------------------------------------------------------------------------------------------------------------
# Video encoder
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class VideoFeatures:
    """Features of one video: a per-frame pixel-aligned volume and one pooled vector (mononerf.md §1)."""

    volume: Float[Tensor, "t c h2 w2"]
    """Frames first, so the model can index frame t; (h2, w2) = (ceil(H / 2), ceil(W / 2))."""
    pooled: Float[Tensor, " d"]
    """The deepest level average-pooled over time and space (SlowOnly: res5, 2048-d; ``ode_pool`` in MonoNeRF)."""


@contextmanager
def batch_norm_statistics_mode(module: nn.Module, statistics: BatchNormStatistics) -> Iterator[None]:
    """Run ``module``'s batch norms with batch or running statistics, whatever its train/eval mode; restore after.

    ``"batch"`` normalises with the current batch's statistics and does not update the running buffers (a frozen
    encoder keeps its checkpoint intact); ``"running"`` uses the stored running mean and variance.
    """
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in norms]
    for m in norms:
        m.training = statistics == "batch"
        # With track_running_stats False a training-mode BN passes no running buffers, so they are left untouched.
        m.track_running_stats = statistics == "running"
    try:
        yield
    finally:
        for m, (training, track) in zip(norms, saved):
            m.training = training
            m.track_running_stats = track


def _upsample_to(features: list[Tensor], size: tuple[int, ...], align_corners: bool) -> Tensor:
    """Resize every level to ``size`` ((T, h, w) trilinear or (h, w) bilinear) and concatenate on channels."""
    mode = "trilinear" if len(size) == 3 else "bilinear"
    resized = [
        f if tuple(f.shape[2:]) == size else F.interpolate(f, size=size, mode=mode, align_corners=align_corners)
        for f in features
    ]
    return torch.cat(resized, dim=1)


def _kaiming_fan_in(module: nn.Module) -> None:
    # Frozen random features: fan-in ReLU scaling keeps activations at unit scale through the layers.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SmallVideoEncoder(nn.Module):
    """A tiny 3D conv encoder for the CPU preset: 64 channels at (T, H/2, W/2), a 64-d pooled vector.

    ``stem`` (3x7x7, stride (1, 2, 2), 32 ch) and ``block`` (3x3x3, 32 ch) make the volume; ``down`` (3x3x3, stride
    (1, 2, 2), 64 ch) is pooled. Temporal kernels 3 mix neighbouring frames like SlowOnly's inflated stages.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv3d(3, 32, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3))
        self.block = nn.Conv3d(32, 32, 3, padding=1)
        self.down = nn.Conv3d(32, 64, 3, stride=(1, 2, 2), padding=1)
        _kaiming_fan_in(self)

    def forward(self, clip: Float[Tensor, "b 3 t h w"]) -> list[Tensor]:
        stem = F.relu(self.stem(clip))
        block = F.relu(self.block(stem))
        return [stem, block, F.relu(self.down(block))]


class VideoEncoder(nn.Module):
    """Frozen video encoder: the whole clip in, a per-frame feature volume and a pooled vector out (mononerf.md §1).

    ``"slowonly-r50"``: :class:`SlowOnlyResNet3d50` on mmaction-normalised frames laid out (1, 3, T, H, W); the
    volume concatenates stem (64) + res2 (256) + res3 (512) = 832 channels, each trilinearly upsampled to the stem's
    (T, H/2, W/2) (``align_corners=True`` as released; ``upsample_align_corners`` to change it); ``pooled`` is res5
    average-pooled to 2048 values. ``checkpoint`` loads the mmaction2 Kinetics-400 ``.pth``; without it the network is
    randomly initialised, said once on the console.

    ``"small"``: :class:`SmallVideoEncoder` (64 channels, 64-d pooled), random and frozen; takes no checkpoint.

    ``batch_norm_statistics``: ``"batch"`` (default, as released: MonoNeRF computes the features once in train mode,
    so BN uses the clip's own statistics) or ``"running"`` (the checkpoint's running statistics, eval-style). Either
    way the running buffers are never updated and the module's train/eval mode does not matter.
    """

    def __init__(
        self,
        kind: VideoEncoderKind = "slowonly-r50",
        checkpoint: Optional[Path] = None,
        batch_norm_statistics: BatchNormStatistics = "batch",
        upsample_align_corners: bool = True,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.batch_norm_statistics: BatchNormStatistics = batch_norm_statistics
        self.upsample_align_corners = upsample_align_corners
        self.network: nn.Module
        if kind == "slowonly-r50":
            self.network = SlowOnlyResNet3d50()
            if checkpoint is not None:
                load_slowonly_checkpoint(self.network, Path(checkpoint))
            else:
                _say_once(
                    "slowonly-random",
                    "MonoNeRF video encoder: SlowOnly R50 is randomly initialised (frozen random features). Pass the "
                    f"mmaction2 Kinetics-400 checkpoint {SLOWONLY_CHECKPOINT_NAME} with {VIDEO_CHECKPOINT_OPTION} PATH.",
                )
            self.volume_levels = 3  # stem, res2, res3 (MonoNeRF num_layers=[0, 1, 2])
            self.channels = 64 + 256 + 512
            self.pooled_channels = 2048
            self.mean = MMACTION_MEAN
            self.std = MMACTION_STD
            self.scale = 255.0
        elif kind == "small":
            if checkpoint is not None:
                raise ValueError("the 'small' video encoder takes no checkpoint (it is always randomly initialised)")
            self.network = SmallVideoEncoder()
            self.volume_levels = 2
            self.channels = 64
            self.pooled_channels = 64
            self.mean = MMACTION_MEAN
            self.std = MMACTION_STD
            self.scale = 255.0
        else:
            raise ValueError(f"unknown video encoder kind {kind!r} (expected 'slowonly-r50' or 'small')")
        self.requires_grad_(False)

    @torch.no_grad()
    def encode(self, frames: Float[Tensor, "t h w 3"]) -> VideoFeatures:
        """Encode the whole clip (frames in [0, 1], RGB); see the class docstring for the layout."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames shaped (t, h, w, 3), got {tuple(frames.shape)}")
        device = next(self.network.parameters()).device
        clip = frames.to(device=device, dtype=torch.float32).permute(3, 0, 1, 2)[None]  # (1, 3, T, H, W)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1, 1)
        clip = (clip * self.scale - mean) / std
        with batch_norm_statistics_mode(self.network, self.batch_norm_statistics):
            levels = self.network(clip)
        volume = _upsample_to(levels[: self.volume_levels], tuple(levels[0].shape[2:]), self.upsample_align_corners)
        pooled = levels[-1].mean(dim=(2, 3, 4))[0]
        return VideoFeatures(volume=volume[0].permute(1, 0, 2, 3).contiguous(), pooled=pooled)


# ---------------------------------------------------------------------------------------------------------------------
# Image encoder
# ---------------------------------------------------------------------------------------------------------------------


def resnet18_hub_weights_path() -> Path:
    """Where torchvision would cache the ImageNet ResNet-18 weights: ``<torch hub dir>/checkpoints/<url file name>``."""
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


class SmallImageEncoder(nn.Module):
    """A tiny 2D conv encoder for the CPU preset: 16 channels at H/4 plus 16 at H/8 upsampled = 32 at (H/4, W/4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 7, stride=2, padding=3)
        self.conv2 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        _kaiming_fan_in(self)

    def forward(self, images: Float[Tensor, "b 3 h w"]) -> list[Tensor]:
        x = F.relu(self.conv2(F.relu(self.conv1(images))))
        return [x, F.relu(self.conv3(x))]


class ImageEncoder(nn.Module):
    """Frozen per-frame image encoder (mononerf.md §1 "Image encoder"): frames in, (t, c, H/4, W/4) maps out.

    ``"resnet18"``: torchvision ``resnet18(weights=None)`` on ImageNet-normalised [0, 1] frames. Features: maxpool
    output (64) + layer1 (64) + layer2 (128) + layer3 (256) = 512 channels, bilinearly upsampled
    (``align_corners=True`` as released) to the first map's size, H/4 x W/4 (MonoNeRF ``Resnet18``: unlike
    pixelNeRF, whose first map is the conv1 output at H/2, MonoNeRF starts after the maxpool). ImageNet weights come
    from ``weights`` or, when absent, the torch hub cache (:func:`resnet18_hub_weights_path`), never a download;
    without either the network is randomly initialised, said once.

    ``"small"``: :class:`SmallImageEncoder`, 32 channels at H/4, random and frozen.

    ``batch_norm_statistics`` as in :class:`VideoEncoder`; default ``"batch"`` like the released code, which builds
    its encoders in train mode and never switches them to eval [unverified beyond ``train/train.py``].
    """

    def __init__(
        self,
        kind: ImageEncoderKind = "resnet18",
        weights: Optional[Path] = None,
        batch_norm_statistics: BatchNormStatistics = "batch",
        upsample_align_corners: bool = True,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.batch_norm_statistics: BatchNormStatistics = batch_norm_statistics
        self.upsample_align_corners = upsample_align_corners
        self.network: nn.Module
        self.pretrained = False
        if kind == "resnet18":
            # The classifier (fc) is kept so that torchvision's state dict loads strictly; it is never run.
            self.network = torchvision.models.resnet18(weights=None)
            path = Path(weights) if weights is not None else resnet18_hub_weights_path()
            if weights is not None or path.is_file():
                raw = load_tensor_file(path, "ResNet-18 weights file")
                if not isinstance(raw, Mapping):
                    raise DatasetFormatError(path, "ResNet-18 weights file is not a state dict")
                load_state_strictly(self.network, dict(raw), path, "ResNet-18 weights file")
                self.pretrained = True
            else:
                _say_once(
                    "resnet18-random",
                    f"MonoNeRF image encoder: no ImageNet ResNet-18 weights at {path} (nothing is downloaded); "
                    "ResNet-18 is randomly initialised (frozen random features).",
                )
            self.channels = 64 + 64 + 128 + 256
        elif kind == "small":
            if weights is not None:
                raise ValueError("the 'small' image encoder takes no weights file (it is always randomly initialised)")
            self.network = SmallImageEncoder()
            self.channels = 32
        else:
            raise ValueError(f"unknown image encoder kind {kind!r} (expected 'resnet18' or 'small')")
        self.requires_grad_(False)

    def _levels(self, images: Tensor) -> list[Tensor]:
        if isinstance(self.network, SmallImageEncoder):
            return self.network(images)
        net = self.network
        assert isinstance(net, torchvision.models.ResNet)
        x = net.maxpool(net.relu(net.bn1(net.conv1(images))))
        levels = [x]
        for layer in (net.layer1, net.layer2, net.layer3):
            x = layer(x)
            levels.append(x)
        return levels

    @torch.no_grad()
    def encode(self, frames: Float[Tensor, "t h w 3"]) -> Float[Tensor, "t c h4 w4"]:
        """Encode each frame (in [0, 1], RGB) into a ``channels``-deep map at (ceil(H / 4), ceil(W / 4))."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames shaped (t, h, w, 3), got {tuple(frames.shape)}")
        device = next(self.network.parameters()).device
        images = frames.to(device=device, dtype=torch.float32).permute(0, 3, 1, 2)
        if self.kind == "resnet18":
            mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
            images = (images - mean) / std
        else:
            images = images * 2.0 - 1.0
        with batch_norm_statistics_mode(self.network, self.batch_norm_statistics):
            levels = self._levels(images)
        return _upsample_to(levels, tuple(levels[0].shape[2:]), self.upsample_align_corners).contiguous()


def feature_map_size(size: int, stride: int) -> int:
    """Size of a map after ``log2(stride)`` stride-2 "same" convolutions: ``ceil`` at each halving."""
    for _ in range(int(math.log2(stride))):
        size = (size + 1) // 2
    return size
