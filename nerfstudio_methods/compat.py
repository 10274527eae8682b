"""Fixes that make nerfstudio 1.1.5 usable on today's stack, installed when the plugin is imported.

nerfstudio imports every registered plugin (``nerfstudio.method_configs`` and ``nerfstudio.dataparser_configs``
entry points) at the start of each ``ns-*`` command, before any checkpoint is loaded or model built, so installing
these here covers ``ns-train``, ``ns-eval``, ``ns-render`` and ``ns-viewer``, for our methods and nerfstudio's own
(see ../shared/papers/nerfstudio_plugins.md §4 and §5). Each fix is idempotent and never raises: a plugin that
raises at import breaks every ``ns-*`` command.

1. Checkpoints: torch >= 2.6 loads with ``weights_only=True``; nerfstudio's checkpoints hold numpy scalars, which
   that unpickler refuses ("Unsupported global: numpy.core.multiarray.scalar"). We allow-list exactly the numpy
   scalar reconstructor and dtypes, keeping every other protection of the safe loader.
2. LPIPS: torchmetrics' LPIPS downloads the AlexNet (or VGG/SqueezeNet) backbone when it is built, so offline
   ``ns-train nerfacto`` crashes at start. When the backbone's weights are not in the torch hub cache, LPIPS is
   left out of the metrics with one warning. It is never computed with random weights.
3. ffmpeg: ``ns-render`` writes videos through an ``ffmpeg`` found on PATH. When there is none, the binary shipped
   in the ``imageio-ffmpeg`` wheel is put on PATH.
4. Clear errors: a malformed dataset raises :class:`dataparsers.DatasetFormatError` deep inside ``ns-train`` (an
   impossible setting :class:`dataparsers._common.SettingError`); the command then prints that one message (file or
   option, and problem) instead of a stack trace, and exits with status 2. So
   does any error escaping nerfstudio's checkpoint loading (``ns-eval``, ``ns-render``, ``ns-viewer``,
   ``ns-train --load-dir``): a truncated or corrupt checkpoint, or an empty or missing checkpoint folder, is one line
   naming the file; and any error escaping nerfstudio's own dataparsers or datasets while they read a file
   (``blender-data`` on a missing or empty folder, a malformed ``transforms_*.json``, an unreadable image).
5. Multi-process CPU training: ``ns-train --machine.num-devices N --machine.device-type cpu`` spawns nerfstudio's
   ``_distributed_worker``, which asserts CUDA, and ``VanillaPipeline`` passes ``device_ids=[local_rank]`` to DDP,
   which DDP refuses for a CPU module. ``torch.multiprocessing.spawn`` is wrapped (looked up when ``launch`` calls
   it; ``nerfstudio.scripts.train`` is still importing when plugins load): for a CPU run nerfstudio's worker is
   swapped for :func:`cpu_distributed_worker`, which starts the same gloo process group (and
   ``comms.LOCAL_PROCESS_GROUP``) without the CUDA checks, lets DDP and ``dist.barrier`` drop ``device_ids`` on CPU,
   and gives each process ``cpu_count // N`` torch threads unless ``OMP_NUM_THREADS`` is set. CUDA runs keep
   nerfstudio's worker (NCCL). Before spawning, for any device, a trainer, pipeline, data manager or model class
   that declares ``multi_process_refusal`` (a reason) stops the run with one line,
   ``error: <method> cannot train with N processes: <reason>``, and exit status 2.
6. No run folder left by a failed launch: ``ns-train`` saves ``outputs/<exp>/<method>/<timestamp>/config.yml``
   before it reads any data. When the launch then fails before the trainer is set up (a bad dataset, a refused
   multi-process launch), the folders it created are removed again, as long as they hold nothing but that file.
7. The viewer's first view: viser starts every browser at a default pose 3 viewer units (0.3 nerfstudio units) from
   the origin, inside an object-centred scene (a tiny run shows only background there) and outside a
   forward-facing scene's NDC box. Browsers now start at the central training camera (as if its frustum had been
   clicked) on forward-facing scenes (llff-data, n3dv-data, dynamic-scene-data) and on any scene of this
   collection's methods.
8. Unfinished videos: ``ns-render`` on a video method's run keeps only the cameras whose time falls on a trained
   frame (the pipeline's ``trained_cameras``) and says in one line how many frames are missing, instead of showing
   the newest frame at every later time. A moved or copied StreamRF run reads the frames and checkpoints beside the
   ``config.yml`` it is loaded from (:func:`config_file_being_loaded`).
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

_INSTALLED: set[str] = set()


def allow_numpy_in_checkpoints() -> None:
    """Allow-list numpy scalars and dtypes for ``torch.load(weights_only=True)``."""
    import numpy as np
    import torch

    if not hasattr(torch.serialization, "add_safe_globals"):
        return  # torch < 2.4 loads without weights_only by default
    from numpy.core.multiarray import scalar  # type: ignore[attr-defined]

    dtype_classes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSUV"] + [type(np.dtype("O"))]
    torch.serialization.add_safe_globals([scalar, np.dtype, *dtype_classes])


# --- LPIPS ----------------------------------------------------------------------------------------------------

_LPIPS_BACKBONE_WEIGHTS = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


def lpips_weights_path(net_type: str = "alex") -> Path:
    """Where torchvision keeps the LPIPS backbone's pretrained weights ($TORCH_HOME/hub/checkpoints/...)."""
    import torch
    import torchvision.models

    weights = getattr(torchvision.models, _LPIPS_BACKBONE_WEIGHTS[net_type]).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def lpips_available(net_type: str = "alex") -> bool:
    """True when LPIPS can be computed without a download: the backbone weights are in the torch hub cache."""
    return lpips_weights_path(net_type).is_file()


@functools.cache
def _warn_lpips_missing(path: str) -> None:
    warnings.warn(
        f"LPIPS is left out of the metrics: its backbone weights are not at {path} and cannot be downloaded here. "
        "Copy the file there (or set TORCH_HOME) to report LPIPS.",
        stacklevel=3,
    )


def make_lpips_offline_safe() -> None:
    """Build LPIPS only when its weights are cached; otherwise an LPIPS that returns NaN, which pipelines drop."""
    import torch
    from torchmetrics import Metric
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity as LPIPS

    original_init = LPIPS.__init__
    original_forward = LPIPS.forward

    def __init__(self: Any, net_type: Any = "alex", reduction: Any = "mean", normalize: bool = False, **kwargs: Any):
        self.weights_missing = net_type in _LPIPS_BACKBONE_WEIGHTS and not lpips_available(net_type)
        if not self.weights_missing:
            original_init(self, net_type=net_type, reduction=reduction, normalize=normalize, **kwargs)
            return
        Metric.__init__(self, **kwargs)
        self.net = None
        self.reduction = reduction
        self.normalize = normalize
        self.add_state("all_scores", default=[], dist_reduce_fx=None)
        _warn_lpips_missing(str(lpips_weights_path(net_type)))
        # Patched here, not at install: plugins are imported while nerfstudio's pipeline module is half-initialised.
        _drop_unavailable_lpips_from_pipeline_metrics()

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "weights_missing", False):
            return torch.tensor(math.nan)
        return original_forward(self, *args, **kwargs)

    LPIPS.__init__ = __init__  # type: ignore[method-assign]
    LPIPS.forward = forward  # type: ignore[method-assign]


def drop_nan_lpips(metrics: dict[str, Any]) -> dict[str, Any]:
    """Remove ``lpips`` (and ``lpips_std``) when it is NaN, i.e. when LPIPS could not be computed."""
    lpips = metrics.get("lpips")
    if isinstance(lpips, float) and math.isnan(lpips):
        metrics.pop("lpips")
        metrics.pop("lpips_std", None)
    return metrics


@functools.cache
def _drop_unavailable_lpips_from_pipeline_metrics() -> None:
    from nerfstudio.pipelines.base_pipeline import VanillaPipeline

    average = VanillaPipeline.get_average_image_metrics
    per_image = VanillaPipeline.get_eval_image_metrics_and_images

    @functools.wraps(average)
    def get_average_image_metrics(self: Any, *args: Any, **kwargs: Any) -> Any:
        return drop_nan_lpips(average(self, *args, **kwargs))

    @functools.wraps(per_image)
    def get_eval_image_metrics_and_images(self: Any, *args: Any, **kwargs: Any) -> Any:
        metrics, images = per_image(self, *args, **kwargs)
        return drop_nan_lpips(metrics), images

    VanillaPipeline.get_average_image_metrics = get_average_image_metrics  # type: ignore[method-assign]
    VanillaPipeline.get_eval_image_metrics_and_images = get_eval_image_metrics_and_images  # type: ignore[method-assign]


# --- ffmpeg ---------------------------------------------------------------------------------------------------


def put_ffmpeg_on_path() -> Path | None:
    """Make ``ffmpeg`` resolvable on PATH, linking imageio-ffmpeg's bundled binary if no system one exists."""
    if shutil.which("ffmpeg"):
        return None
    import imageio_ffmpeg

    bundled = Path(imageio_ffmpeg.get_ffmpeg_exe())
    link_dir = Path(tempfile.gettempdir()) / f"nerfstudio-methods-bin-{os.getuid()}"
    link_dir.mkdir(parents=True, exist_ok=True)
    link = link_dir / "ffmpeg"
    if not (link.exists() and link.resolve() == bundled.resolve()):
        staging = link_dir / f".ffmpeg-{os.getpid()}"
        staging.unlink(missing_ok=True)
        staging.symlink_to(bundled)
        os.replace(staging, link)  # atomic, so concurrent ns-* processes never see a half-made link
    os.environ["PATH"] = f"{link_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return link


# --- clear errors ---------------------------------------------------------------------------------------------


def print_input_errors_without_traceback() -> None:
    """Chain a ``sys.excepthook`` that reports our input errors (bad dataset, bad config) in one line."""
    import sys

    from dataparsers._common import DatasetFormatError, SettingError

    previous = sys.excepthook

    def excepthook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        remove_unused_run_folder()  # the launch failed before training was set up
        if isinstance(error, (DatasetFormatError, SettingError)):
            message: Optional[str] = str(error)
        else:
            message = checkpoint_error_message(error, trace) or dataset_error_message(error, trace)
        if message is not None:
            print(f"error: {message}", file=sys.stderr)
            sys.stderr.flush()
            os._exit(2)
        previous(kind, error, trace)

    sys.excepthook = excepthook


# Where nerfstudio loads checkpoints: ns-eval / ns-render / ns-viewer (eval_utils) and ns-train --load-dir (Trainer).
_CHECKPOINT_LOADERS = {("eval_utils.py", "eval_load_checkpoint"), ("trainer.py", "_load_checkpoint")}


# Where nerfstudio's own dataparsers and datasets read files (blender-data, nerfstudio-data, ... and their images).
_DATA_READERS = {"_generate_dataparser_outputs", "get_dataparser_outputs", "get_numpy_image", "get_image_float32"}
_PATH_LOCALS = ("uri", "filename", "image_filename", "fname", "file_path", "path")


def _frames(trace: Any) -> list[Any]:
    """The frames of a traceback, outermost first."""
    frames = []
    while trace is not None:
        frames.append(trace.tb_frame)
        trace = trace.tb_next
    return frames


def _in_nerfstudio(frame: Any) -> bool:
    return "nerfstudio" in Path(frame.f_code.co_filename).parts


def dataset_error_message(error: BaseException, trace: Any) -> Optional[str]:
    """``<file>: <problem>`` when ``error`` escaped a nerfstudio dataparser or dataset reading a file (a missing or
    empty folder, a missing, malformed or unreadable file), else None."""
    from dataparsers._common import first_line

    frames = _frames(trace)
    if not any(f.f_code.co_name in _DATA_READERS and _in_nerfstudio(f) for f in frames):
        return None
    if isinstance(error, OSError) and error.filename:
        path = Path(str(error.filename))
        if not path.parent.is_dir():
            return f"{path.parent}: folder not found (looking for {path.name})"
        return f"{path}: {error.strerror or first_line(error)}"
    for frame in reversed(frames):  # the innermost frame that names the file it was reading (a reader's own
        # argument, e.g. imageio's `uri`, before a caller's loop variable)
        for name in _PATH_LOCALS:
            value = frame.f_locals.get(name)
            if isinstance(value, (str, Path)) and str(value):
                kind = "JSON" if str(value).endswith(".json") else "file"
                return f"{value}: unreadable {kind} ({type(error).__name__}: {first_line(error)})"
    return None


def checkpoint_error_message(error: BaseException, trace: Any) -> Optional[str]:
    """``<checkpoint>: cannot load this checkpoint (...)`` when ``error`` escaped nerfstudio's checkpoint loading
    (a truncated or corrupt file, or one of another model), else None. The file is read from the loader's frame."""
    from dataparsers._common import first_line

    loaders = [
        f
        for f in _frames(trace)
        if _in_nerfstudio(f) and (Path(f.f_code.co_filename).name, f.f_code.co_name) in _CHECKPOINT_LOADERS
    ]
    if not loaders:
        return None
    frame_locals = loaders[-1].f_locals
    checkpoint = frame_locals.get("load_path") or frame_locals.get("load_checkpoint")
    if checkpoint is None:
        folder = frame_locals.get("load_dir")
        if folder is None:
            return None
        if isinstance(error, (FileNotFoundError, IndexError)):
            return f"{folder}: no checkpoint (step-*.ckpt) to load here"
        checkpoint = folder
    return f"{checkpoint}: cannot load this checkpoint ({type(error).__name__}: {first_line(error)})"


# --- no run folder for a launch that fails before training ------------------------------------------------

_UNUSED_RUN: dict[str, Any] = {}
"""The run folder this ``ns-train`` launch created, while it holds nothing but its config.yml: ``config`` (the file),
``text`` (what was written), ``created`` (the folders the save made, deepest first). Cleared once the trainer is set
up (data read, model built), so only a launch that fails before that can remove it."""


def forget_run_folder() -> None:
    """The trainer is set up: its data was read and its model built, so the run folder stays whatever happens next."""
    _UNUSED_RUN.clear()


def remove_unused_run_folder() -> Optional[Path]:
    """Remove the run folder that this launch created, if training never got set up and it holds nothing but the
    config.yml written by this launch; then the parents the save created, while empty (``outputs/<exp>/<method>``).
    Returns the removed run folder, or None. Never raises: it runs on the way out of a failed launch."""
    record = dict(_UNUSED_RUN)
    _UNUSED_RUN.clear()
    if not record:
        return None
    config: Path = record["config"]
    try:
        if [entry.name for entry in config.parent.iterdir()] != [config.name] or config.read_text("utf8") != record[
            "text"
        ]:
            return None  # something else was written there: keep it all
        config.unlink()
        for folder in record["created"]:
            os.rmdir(folder)  # fails (and stops) on the first folder that is not empty
    except OSError:
        pass
    return None if config.parent.exists() else config.parent


def remember_new_run_folders() -> None:
    """Wrap ``ExperimentConfig.save_config`` (``ns-train`` writes config.yml before it reads any data) to remember the
    folders it creates, and ``Trainer.setup`` to forget them once data and model are set up (idempotent).

    Why remove afterwards rather than check the data first: nerfstudio reads the data while it builds the pipeline,
    in the dataparser of whichever method and format was chosen (ours, nerfstudio's, other plugins'), and some read
    a lot (videos decoded into a frame cache); running them twice to pre-check would double that cost and still
    miss failures of the model's set-up or a refused multi-process launch. A folder this launch made and that holds
    only the config it wrote loses nothing when removed, whatever made the launch fail.
    """
    import sys

    # Dataparser plugins are imported while nerfstudio's experiment_config / trainer modules are still importing;
    # importing them from here would close a cycle. Patch once both have finished (a later install(), e.g. from
    # a method's config module, which nerfstudio imports after its trainer).
    ExperimentConfig = getattr(sys.modules.get("nerfstudio.configs.experiment_config"), "ExperimentConfig", None)
    Trainer = getattr(sys.modules.get("nerfstudio.engine.trainer"), "Trainer", None)
    if ExperimentConfig is None or Trainer is None:
        raise FixNotYetPossible("nerfstudio's trainer is not imported yet")

    if not getattr(ExperimentConfig.save_config, "_nerfstudio_methods", False):
        save_config = ExperimentConfig.save_config

        @functools.wraps(save_config)
        def save_config_remembering_folders(self: Any) -> None:
            base_dir = Path(self.get_base_dir())
            created = [folder for folder in (base_dir, *base_dir.parents) if not folder.exists()]
            save_config(self)
            config = base_dir / "config.yml"
            if created and config.is_file():
                _UNUSED_RUN.update(config=config, text=config.read_text("utf8"), created=created)

        save_config_remembering_folders._nerfstudio_methods = True  # type: ignore[attr-defined]
        ExperimentConfig.save_config = save_config_remembering_folders  # type: ignore[method-assign]

    if not getattr(Trainer.setup, "_nerfstudio_methods", False):
        setup = Trainer.setup

        @functools.wraps(setup)
        def setup_then_keep_folder(self: Any, *args: Any, **kwargs: Any) -> None:
            setup(self, *args, **kwargs)
            forget_run_folder()

        setup_then_keep_folder._nerfstudio_methods = True  # type: ignore[attr-defined]
        Trainer.setup = setup_then_keep_folder  # type: ignore[method-assign]


# --- the viewer's first view of a forward-facing scene ---------------------------------------------------------

FORWARD_FACING_KEY = "forward_facing"
"""``DataparserOutputs.metadata`` key set by the forward-facing dataparsers (llff-data, n3dv-data,
dynamic-scene-data): their scenes are only seen from in front, within the NDC frustum of the cameras."""


@dataclass(frozen=True)
class StartView:
    """A training camera's pose in the viser viewer's conventions (nerfstudio's ``init_scene`` / frustum click)."""

    camera_index: int
    position: tuple[float, float, float]  # world position x VISER_NERFSTUDIO_SCALE_RATIO
    wxyz: tuple[float, float, float, float]  # camera-to-world rotation, camera looking down +z (OpenCV)
    up_direction: tuple[float, float, float]
    fov: float  # vertical, radians


def start_view(dataset: Any, indices: Optional[list[int]] = None, any_scene: bool = False) -> Optional[StartView]:
    """The view the viewer should open on: the training camera (among ``indices``, default all) nearest the
    cameras' mean position, for a forward-facing scene or, with ``any_scene``, for any scene; else None (viser's
    default pose: 3 viewer units from the origin, inside a nerfstudio scene box, and outside a forward-facing scene's
    NDC box)."""
    import numpy as np
    import viser.transforms as vtf
    from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO

    if not any_scene and not (getattr(dataset, "metadata", None) or {}).get(FORWARD_FACING_KEY):
        return None
    cameras = dataset.cameras
    c2w = cameras.camera_to_worlds.detach().cpu().numpy().astype(np.float64)  # [N, 3, 4], OpenGL axes
    candidates = list(range(len(c2w))) if not indices else list(indices)
    positions = c2w[candidates, :, 3]
    chosen = candidates[int(np.argmin(np.linalg.norm(positions - c2w[:, :, 3].mean(0), axis=1)))]
    rotation = vtf.SO3.from_matrix(c2w[chosen, :, :3]) @ vtf.SO3.from_x_radians(np.pi)  # OpenGL -> OpenCV camera
    height, fy = float(cameras.height[chosen]), float(cameras.fy[chosen])
    return StartView(
        camera_index=chosen,
        position=tuple(float(v) for v in c2w[chosen, :, 3] * VISER_NERFSTUDIO_SCALE_RATIO),  # type: ignore[arg-type]
        wxyz=tuple(float(v) for v in rotation.wxyz),  # type: ignore[arg-type]
        up_direction=tuple(float(v) for v in c2w[chosen, :, 1]),  # type: ignore[arg-type]
        fov=float(2 * np.arctan(height / (2 * fy))),
    )


def move_client_to(client: Any, view: StartView) -> None:
    """Put a viser client's camera at ``view`` (up direction first: setting wxyz keeps the up it finds)."""
    with client.atomic():
        client.camera.up_direction = view.up_direction
        client.camera.position = view.position
        client.camera.wxyz = view.wxyz
        client.camera.fov = view.fov


def start_viewer_at_a_training_camera() -> None:
    """Wrap nerfstudio's ``Viewer.init_scene`` (``ns-train --vis viewer`` and ``ns-viewer``): every browser that
    connects starts at :func:`start_view`, for forward-facing scenes and for any scene of this collection's methods
    (pipeline, data manager or model from this package); nerfstudio's own methods on other data keep viser's
    default (idempotent)."""
    import sys

    Viewer = getattr(sys.modules.get("nerfstudio.viewer.viewer"), "Viewer", None)
    if Viewer is None:  # imported by nerfstudio's trainer, before any method plugin: patched on a later install()
        raise FixNotYetPossible("nerfstudio's viewer is not imported yet")
    if getattr(Viewer.init_scene, "_nerfstudio_methods", False):
        return
    init_scene = Viewer.init_scene

    @functools.wraps(init_scene)
    def init_scene_with_start_view(self: Any, train_dataset: Any, *args: Any, **kwargs: Any) -> None:
        init_scene(self, train_dataset, *args, **kwargs)
        pipeline = getattr(self, "pipeline", None)
        parts = (pipeline, getattr(pipeline, "datamanager", None), getattr(pipeline, "model", None))
        ours = any(type(part).__module__.startswith("nerfstudio_methods.") for part in parts if part is not None)
        view = start_view(train_dataset, sorted(getattr(self, "camera_handles", {}) or []), any_scene=ours)
        if view is None:
            return

        def on_connect(client: Any) -> None:
            move_client_to(client, view)
            self.current_camera_idx = view.camera_index

        self.viser_server.on_client_connect(on_connect)

    init_scene_with_start_view._nerfstudio_methods = True  # type: ignore[attr-defined]
    Viewer.init_scene = init_scene_with_start_view  # type: ignore[method-assign]


# --- multi-process training ---------------------------------------------------------------------------------

_NERFSTUDIO_WORKER = ("nerfstudio.scripts.train", "_distributed_worker")
_REFUSAL_ATTRIBUTE = "multi_process_refusal"
REFUSAL_EXIT_STATUS = 2


def multi_process_refusal(config: Any) -> Optional[str]:
    """The reason this run's trainer, pipeline, data manager or model gives for not training in several processes.

    Classes declare it as ``multi_process_refusal: ClassVar[Optional[str]] = "<reason>"``; ``None`` when all allow it.
    """
    pipeline = getattr(config, "pipeline", None)
    configs = (config, pipeline, getattr(pipeline, "datamanager", None), getattr(pipeline, "model", None))
    for part in configs:
        reason = getattr(getattr(part, "_target", None), _REFUSAL_ATTRIBUTE, None)
        if reason:
            return str(reason)
    return None


def _is_cpu_module(module: Any) -> bool:
    tensors = [*module.parameters(), *module.buffers()]
    return bool(tensors) and all(t.device.type == "cpu" for t in tensors)


def allow_ddp_on_cpu() -> None:
    """Let ``DDP(cpu_module, device_ids=[rank])`` and ``dist.barrier(device_ids=...)`` on gloo work (idempotent).

    ``device_ids`` name CUDA devices: DDP raises for a module on the CPU and nerfstudio's own ``comms.synchronize``
    passes them to NCCL only. Here they are dropped exactly there; every other call is unchanged.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    if not getattr(DDP.__init__, "_cpu_device_ids_dropped", False):
        ddp_init = DDP.__init__

        @functools.wraps(ddp_init)
        def __init__(self: Any, module: Any, device_ids: Any = None, *args: Any, **kwargs: Any) -> None:
            if device_ids is not None and _is_cpu_module(module):
                device_ids = None
                if kwargs.get("output_device") is not None:
                    kwargs["output_device"] = None
            ddp_init(self, module, device_ids, *args, **kwargs)

        __init__._cpu_device_ids_dropped = True  # type: ignore[attr-defined]
        DDP.__init__ = __init__  # type: ignore[method-assign]

    if not getattr(dist.barrier, "_cpu_device_ids_dropped", False):
        barrier = dist.barrier

        @functools.wraps(barrier)
        def barrier_without_cuda_ids(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("device_ids") is not None:
                group = kwargs.get("group", args[0] if args else None)
                if dist.get_backend(group) != dist.Backend.NCCL:
                    kwargs["device_ids"] = None
            return barrier(*args, **kwargs)

        barrier_without_cuda_ids._cpu_device_ids_dropped = True  # type: ignore[attr-defined]
        dist.barrier = barrier_without_cuda_ids


def cpu_distributed_worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_devices_per_machine: int,
    machine_rank: int,
    dist_url: str,
    config: Any,
    timeout: Any,
    device_type: str = "cpu",
) -> Any:
    """nerfstudio 1.1.5's ``_distributed_worker`` for CPU processes: gloo, no CUDA checks, DDP on CPU allowed."""
    import torch
    import torch.distributed as dist
    from nerfstudio.utils import comms

    install()
    allow_ddp_on_cpu()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_devices_per_machine))
    global_rank = machine_rank * num_devices_per_machine + local_rank
    dist.init_process_group(
        backend="gloo", init_method=dist_url, world_size=world_size, rank=global_rank, timeout=timeout
    )
    num_machines = world_size // num_devices_per_machine
    for machine in range(num_machines):
        group = dist.new_group(list(range(machine * num_devices_per_machine, (machine + 1) * num_devices_per_machine)))
        if machine == machine_rank:
            comms.LOCAL_PROCESS_GROUP = group
    output = main_func(local_rank, world_size, config, global_rank)
    comms.synchronize()
    dist.destroy_process_group()
    return output


def worker_for_spawn(fn: Callable[..., Any], args: Any) -> Callable[..., Any]:
    """What ``torch.multiprocessing.spawn(fn, args)`` should run: :func:`cpu_distributed_worker` for nerfstudio's
    worker on a CPU run, ``fn`` otherwise. A run whose config declares a refusal stops here (one line, exit 2)."""
    import sys

    if (getattr(fn, "__module__", None), getattr(fn, "__name__", None)) != _NERFSTUDIO_WORKER:
        return fn
    if not isinstance(args, tuple) or len(args) != 8:  # not nerfstudio 1.1.5's argument layout: leave it alone
        return fn
    _, world_size, _, _, _, config, _, device_type = args
    reason = multi_process_refusal(config)
    if reason is not None:
        method = getattr(config, "method_name", None) or "this method"
        remove_unused_run_folder()
        print(f"error: {method} cannot train with {world_size} processes: {reason}", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(REFUSAL_EXIT_STATUS)
    return cpu_distributed_worker if device_type == "cpu" else fn


def route_multi_process_training() -> None:
    """Wrap ``torch.multiprocessing.spawn`` with :func:`worker_for_spawn` (idempotent)."""
    import torch.multiprocessing as mp

    if getattr(mp.spawn, "_nerfstudio_methods", False):
        return
    spawn = mp.spawn

    @functools.wraps(spawn)
    def spawn_training(fn: Any, args: Any = (), *rest: Any, **kwargs: Any) -> Any:
        return spawn(worker_for_spawn(fn, args), args, *rest, **kwargs)

    spawn_training._nerfstudio_methods = True  # type: ignore[attr-defined]
    mp.spawn = spawn_training


# --- unfinished videos and moved runs -------------------------------------------------------------------------


def render_only_trained_frames() -> None:
    """Wrap ``ns-render``'s ``_render_trajectory_video`` (looked up when a render command runs it): a pipeline with
    ``trained_cameras`` (a video method whose run may be unfinished) keeps only the cameras of trained frames and
    the video's length shrinks with them; none left is one line and exit status 2. Installed again from such a
    pipeline's set-up, since ``nerfstudio.scripts.render`` is still importing when plugins load."""
    import sys

    render = sys.modules.get("nerfstudio.scripts.render")
    if render is None:
        return  # this command renders no trajectory (ns-train, ns-eval, ns-viewer)
    original = getattr(render, "_render_trajectory_video", None)
    if original is None:
        raise FixNotYetPossible("nerfstudio's render script is still importing")
    if getattr(original, "_nerfstudio_methods", False):
        return

    @functools.wraps(original)
    def render_trained_frames(pipeline: Any, cameras: Any, *args: Any, **kwargs: Any) -> Any:
        select = getattr(pipeline, "trained_cameras", None)
        kept = select(cameras) if select is not None else None
        if kept is not None:
            if len(kept) == 0:
                print("error: no camera of this path falls on a trained frame of the run", file=sys.stderr)
                raise SystemExit(2)
            if "seconds" in kwargs:
                kwargs["seconds"] = kwargs["seconds"] * len(kept) / len(cameras)
            cameras = cameras[kept]
        return original(pipeline, cameras, *args, **kwargs)

    render_trained_frames._nerfstudio_methods = True  # type: ignore[attr-defined]
    render._render_trajectory_video = render_trained_frames  # type: ignore[attr-defined]


def config_file_being_loaded() -> Optional[Path]:
    """The ``config.yml`` that nerfstudio's ``eval_setup`` (``ns-eval``, ``ns-render``, ``ns-viewer``) is loading,
    when it is on the call stack: a config asked for its checkpoint folder from there can answer with the folder the
    file is in now, wherever the run was moved or copied to."""
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "eval_setup" and frame.f_globals.get("__name__") == "nerfstudio.utils.eval_utils":
            path = frame.f_locals.get("config_path")
            return Path(path) if path is not None else None
        frame = frame.f_back
    return None


# --- entry point ----------------------------------------------------------------------------------------------

_FIXES = {
    "checkpoints": allow_numpy_in_checkpoints,
    "lpips": make_lpips_offline_safe,
    "ffmpeg": put_ffmpeg_on_path,
    "errors": print_input_errors_without_traceback,
    "multiprocess": route_multi_process_training,
    "run_folder": remember_new_run_folders,
    "viewer_start": start_viewer_at_a_training_camera,
    "render_trained_frames": render_only_trained_frames,
}


class FixNotYetPossible(Exception):
    """A fix that needs a nerfstudio module not yet (fully) imported: :func:`install` tries it again next time."""


def install() -> None:
    """Install every fix once. Failures become warnings: the ns-* CLI must keep working."""
    for name, fix in _FIXES.items():
        if name in _INSTALLED:
            continue
        _INSTALLED.add(name)
        try:
            fix()
        except FixNotYetPossible:
            _INSTALLED.discard(name)
        except Exception as err:  # noqa: BLE001 - a broken fix must not break every ns-* command
            warnings.warn(f"nerfstudio_methods: could not install the {name} fix ({err!r})", stacklevel=2)
