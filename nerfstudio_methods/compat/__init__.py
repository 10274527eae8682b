"""Fixes that make nerfstudio 1.1.5 usable on today's stack: one module per fix, installed by :func:`install`.

nerfstudio imports every registered plugin (``nerfstudio.method_configs`` and ``nerfstudio.dataparser_configs``
entry points) at the start of each ``ns-*`` command, before any checkpoint is loaded or model built, so installing
these then covers ``ns-train``, ``ns-eval``, ``ns-render`` and ``ns-viewer``, for our methods and nerfstudio's own
(see ../shared/papers/nerfstudio_plugins.md §4 and §5). Each fix is idempotent and never raises: a plugin that
raises at import breaks every ``ns-*`` command. A fix that needs a nerfstudio module still being imported raises
:class:`FixNotYetPossible` and is tried again by the next :func:`install`: the method and dataparser modules nerfstudio
imports one after the other each call it, and while a fix is still waiting every nerfstudio config's ``setup()``
(``InstantiateConfig.setup``: the pipeline, model and data manager are built through it, after the command's own
modules have finished importing) calls it first.

The fixes (each module's docstring names the nerfstudio or torch behaviour it works around):

- ``checkpoints``: torch >= 2.6's ``weights_only`` loading of nerfstudio's numpy scalars.
- ``checkpoint_files``: checkpoints written atomically (a full disk said in one line); the newest complete one loaded
  (``checkpoint_loading``: the same for ``ns-eval``, ``ns-render`` and ``ns-viewer``).
- ``non_finite_loss``: training stops, in one line, at the first step whose loss is NaN or infinite.
- ``blender_poses``: nerfstudio's Blender reader refuses a NaN, degenerate or malformed ``transform_matrix``, in one
  line naming the file and the frame.
- ``lpips``: LPIPS without downloading its backbone.
- ``ffmpeg``: ``ns-render`` without a system ffmpeg.
- ``errors``: one line, not a traceback, for bad input, settings and checkpoints.
- ``multi_process``: ``--machine.num-devices N`` on CPU, and methods that refuse it.
- ``run_folder``: no run folder left by a launch that fails before training.
- ``settings``: impossible settings (non-positive ray counts, step counts, repeated views) refused before the run
  folder exists.
- ``viewer_start``: the viewer's first view at a training camera.
- ``viewer_render_errors``: a render that fails in the viewer said in one line (terminal and browser), the viewer
  kept running.
- ``viewer_controls``: the viewer opens without the controls that do not apply (no Time slider for images).
- ``video_frames``: ``ns-render`` on unfinished video runs; moved StreamRF runs.

This module imports none of them: :func:`install` loads each by name, so a fix module can use :func:`install` and
:class:`FixNotYetPossible` without an import cycle.
"""

from __future__ import annotations

import importlib
import warnings

FIXES: dict[str, str] = {
    "checkpoints": "checkpoints:allow_numpy_in_checkpoints",
    "checkpoint_files": "checkpoint_files:write_checkpoints_atomically",
    "checkpoint_loading": "checkpoint_files:load_newest_complete_checkpoint",
    "non_finite_loss": "non_finite_loss:stop_at_non_finite_loss",
    "blender_poses": "blender_poses:check_blender_poses",
    "lpips": "lpips:make_lpips_offline_safe",
    "ffmpeg": "ffmpeg:put_ffmpeg_on_path",
    "errors": "errors:print_input_errors_without_traceback",
    "multiprocess": "multi_process:route_multi_process_training",
    "run_folder": "run_folder:remember_new_run_folders",
    "settings": "settings:refuse_impossible_settings",  # after run_folder: it wraps run_folder's save_config
    "viewer_start": "viewer_start:start_viewer_at_a_training_camera",
    "viewer_render_errors": "viewer_render_errors:say_viewer_render_failures",
    "viewer_controls": "viewer_controls:hide_controls_that_do_not_apply",
    "render_trained_frames": "video_frames:render_only_trained_frames",
}
"""Fix name -> ``module:function`` in this package, in installation order."""

_INSTALLED: set[str] = set()


class FixNotYetPossible(Exception):
    """A fix that needs a nerfstudio module not yet (fully) imported: :func:`install` tries it again next time."""


def install() -> None:
    """Install every fix once. Failures become warnings: the ns-* CLI must keep working."""
    _retry_on_config_setup()
    for name, target in FIXES.items():
        if name in _INSTALLED:
            continue
        _INSTALLED.add(name)
        module_name, function_name = target.split(":")
        try:
            getattr(importlib.import_module(f"{__name__}.{module_name}"), function_name)()
        except FixNotYetPossible:
            _INSTALLED.discard(name)
        except Exception as err:  # noqa: BLE001 - a broken fix must not break every ns-* command
            warnings.warn(f"nerfstudio_methods: could not install the {name} fix ({err!r})", stacklevel=2)


def _retry_on_config_setup() -> None:
    """Make ``InstantiateConfig.setup`` call :func:`install` first while a fix waits for a module (idempotent; the
    check costs a set difference per ``setup``)."""
    import sys

    base_config = sys.modules.get("nerfstudio.configs.base_config")
    config_class = getattr(base_config, "InstantiateConfig", None)
    if config_class is None or getattr(config_class.setup, "_nerfstudio_methods", False):
        return
    setup = config_class.setup

    def setup_after_pending_fixes(self, **kwargs):  # noqa: ANN001, ANN003, ANN202 - nerfstudio's signature
        if len(_INSTALLED) < len(FIXES):
            install()
        return setup(self, **kwargs)

    setup_after_pending_fixes.__doc__ = setup.__doc__
    setup_after_pending_fixes._nerfstudio_methods = True  # type: ignore[attr-defined]
    config_class.setup = setup_after_pending_fixes
