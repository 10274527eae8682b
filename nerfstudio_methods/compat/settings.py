"""Impossible settings refused before the run folder exists.

nerfstudio 1.1.5 checks no number it is given: ``ns-train`` writes the run folder and its config.yml, reads the data
and builds the model before a negative ``--pipeline.datamanager.train-num-rays-per-batch`` fails inside torch ("negative
dimension"), ``--max-num-iterations 0`` saves a step-0 checkpoint and then fails (``KeyError: 'step'``), and a view list
with a repeat (``blender-fewshot-data --train-views 0 0 4``) trains on the repeated image twice as often, and a NaN
learning rate (``--optimizers.fields.optimizer.lr nan``) ends in a traceback from torch's optimizer.

Now the whole config of an ``ns-train`` launch (any method, ours or nerfstudio's, and its dataparser) is checked
before ``ExperimentConfig.save_config`` creates the run folder, by the field names the rules below give; the first
setting that cannot work stops the launch in one line naming its option (:class:`SettingError`). Rules that need the
data (a view index past the last frame) are the dataparsers' own; they raise when the data is read, and the run
folder made by then is removed again (``run_folder``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import sys
from typing import Any, Optional

from nerfstudio_methods.compat import FixNotYetPossible
from nerfstudio_methods.input_errors import SettingError

POSITIVE = re.compile(r"(num_rays_per_(batch|chunk)|^eval_chunk_rays|^max_num_iterations|^num_train_views|^num_scenes"
                      r"|^num_frames|^images_per_batch)$")  # fmt: skip
"""Integer settings that must be at least 1 when set (None: the parser's default): ray counts per batch or chunk,
the number of training steps, and counts whose 0 leaves the training set empty. (StreamRF's per-frame step counts are
its own pipeline's check, which also runs before the run folder exists and says why a frame needs a step.)"""
NON_NEGATIVE = re.compile(r"(steps|iters|iterations|num_unseen_rays|_start|training_frames)")
"""Integer settings that must not be negative: step counts and intervals (0 is nerfstudio's "never" for
``--steps-per-save`` and the like), unseen-ray counts, first frames and scenes."""
VIEW_LIST = re.compile(r"_views$")
"""Lists of view indices: at least one view, each once, none negative (the dataparser checks the last index against
its data)."""

DATAPARSER_PATH = ("pipeline", "datamanager", "dataparser")
"""Where a method's dataparser config lies; its options follow its subcommand on the command line."""


def option_name(path: tuple[str, ...], config: Any) -> str:
    """The command-line option of the field at ``path`` in ``config``: ``--pipeline.model.some-count``, or for a
    dataparser's field its subcommand and option (``blender-fewshot-data --train-views``)."""
    if path[: len(DATAPARSER_PATH)] == DATAPARSER_PATH:
        option = "--" + ".".join(path[len(DATAPARSER_PATH) :]).replace("_", "-")
        dataparser = config.pipeline.datamanager.dataparser
        from nerfstudio.configs.dataparser_configs import all_dataparsers  # imported by ns-train before this runs

        names = [name for name, default in all_dataparsers.items() if type(default) is type(dataparser)]
        return f"{names[0]} {option}" if names else option
    return "--" + ".".join(path).replace("_", "-")


LEARNING_RATE = re.compile(r"^lr(_|$)")
"""Learning rates (``--optimizers.<group>.optimizer.lr``, schedulers' ``lr_final`` / ``lr_pre_warmup``): not
negative (a NaN or infinite one is refused with every other float)."""


def setting_problem(name: str, value: Any) -> Optional[str]:
    """Why the setting ``name`` cannot take ``value``, or None when it can (or no rule covers it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"must be a finite number, got {value}"
        if LEARNING_RATE.search(name) and value < 0:
            return f"a learning rate must not be negative, got {value}"
    if isinstance(value, int):
        if POSITIVE.search(name) and value < 1:
            return f"must be at least 1, got {value}"
        if NON_NEGATIVE.search(name) and value < 0:
            return f"must not be negative, got {value}"
    if VIEW_LIST.search(name) and isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        if not value:
            return "no view given: the training set would be empty"
        repeated = sorted({v for v in value if list(value).count(v) > 1})
        if repeated:
            return f"view(s) {repeated} given more than once; list each view once"
        negative = [v for v in value if v < 0]
        if negative:
            return f"view(s) {negative} are negative; views are numbered from 0"
    return None


def check_settings(config: Any, path: tuple[str, ...] = (), root: Any = None) -> None:
    """Raise :class:`SettingError` for the first setting of ``config`` (a nerfstudio config: its nested dataclasses
    are walked) that cannot work."""
    root = config if root is None else root
    for field in dataclasses.fields(config):
        check_value(field.name, getattr(config, field.name, None), (*path, field.name), root)


def check_value(name: str, value: Any, path: tuple[str, ...], root: Any) -> None:
    """:func:`check_settings` for one value: a nested config is walked, and so are dictionaries of them (nerfstudio's
    ``optimizers``: group -> {"optimizer": ..., "scheduler": ...})."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        check_settings(value, path, root)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                check_value(key, item, (*path, key), root)
    else:
        problem = setting_problem(name, value)
        if problem is not None:
            raise SettingError(option_name(path, root), problem)


def refuse_impossible_settings() -> None:
    """Wrap ``ExperimentConfig.save_config`` (``ns-train`` calls it to create the run folder, before it reads any
    data) to run :func:`check_settings` first (idempotent). Installed after ``run_folder``, whose wrapper of the same
    method takes the run folder's lock: this check wraps it, so nothing is created for a refused launch."""
    ExperimentConfig = getattr(sys.modules.get("nerfstudio.configs.experiment_config"), "ExperimentConfig", None)
    if ExperimentConfig is None or not getattr(ExperimentConfig.save_config, "_nerfstudio_methods", False):
        raise FixNotYetPossible("the run folder fix is not installed yet")
    if getattr(ExperimentConfig.save_config, "_checks_settings", False):
        return
    save_config = ExperimentConfig.save_config

    @functools.wraps(save_config)
    def save_config_of_possible_settings(self: Any) -> None:
        check_settings(self)
        save_config(self)

    save_config_of_possible_settings._checks_settings = True  # type: ignore[attr-defined]
    ExperimentConfig.save_config = save_config_of_possible_settings  # type: ignore[method-assign]
