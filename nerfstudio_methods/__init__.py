"""nerfstudio plugins for StreamRF, MonoNeRF, Soft Mining, 3Da-AE and InfoNeRF.

The modules that nerfstudio loads through entry points call :func:`nerfstudio_methods.compat.install`; importing
the package itself stays light (no torch), so tools such as the scene generator start fast.

This distribution ships two top-level packages side by side: ``nerfstudio_methods`` and ``dataparsers`` (whose class
paths, e.g. ``dataparsers.n3dv.N3dvDataParserConfig``, are stored in users' ``config.yml``). ``dataparsers`` is a
common folder name, and an editable install resolves it last: setuptools' editable finder sits behind Python's path
finder, so any ``dataparsers`` folder on ``sys.path`` wins, even one without ``__init__.py`` (a namespace package).
nerfstudio's own test suite puts its ``tests/`` folder, which holds ``tests/dataparsers/``, there. Importing this
package therefore binds the name ``dataparsers`` to the folder installed beside it (:func:`bind_dataparsers`), and
every entry point goes through this package first (``nerfstudio_methods.registered_dataparsers`` for the
dataparsers).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Optional, Sequence

DATAPARSERS_FOLDER = Path(__file__).resolve().parent.parent / "dataparsers"
"""This distribution's ``dataparsers`` package: installed beside ``nerfstudio_methods`` (a wheel's site-packages,
or the source tree for an editable install)."""


def _is_ours(module: ModuleType) -> bool:
    origin = getattr(module, "__file__", None)
    return origin is not None and Path(origin).resolve().parent == DATAPARSERS_FOLDER


class _DataparsersFinder(importlib.abc.MetaPathFinder):
    """Resolves the top-level name ``dataparsers`` (only that name) to :data:`DATAPARSERS_FOLDER`, ahead of
    ``sys.path``; its submodules are then found in that folder by Python's own path finder."""

    nerfstudio_methods_finder = True

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]] = None, target: Optional[ModuleType] = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        init = DATAPARSERS_FOLDER / "__init__.py"
        if fullname != "dataparsers" or not init.is_file():
            return None
        return importlib.util.spec_from_file_location(
            "dataparsers", init, submodule_search_locations=[str(DATAPARSERS_FOLDER)]
        )


def bind_dataparsers() -> None:
    """Make ``import dataparsers`` give this distribution's package, whatever the working directory or ``sys.path``
    holds (idempotent, never raises). A different ``dataparsers`` imported earlier is dropped from ``sys.modules``
    (its importers keep their references), with a warning unless it was a namespace package (a plain folder)."""
    if not any(getattr(finder, "nerfstudio_methods_finder", False) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DataparsersFinder())
    loaded = sys.modules.get("dataparsers")
    if loaded is None or _is_ours(loaded):
        return
    if getattr(loaded, "__file__", None) is not None:
        warnings.warn(
            f"nerfstudio_methods: the module 'dataparsers' imported from {loaded.__file__} is replaced by this "
            f"plugin's {DATAPARSERS_FOLDER} (nerfstudio configs name its classes)",
            stacklevel=2,
        )
    for name in [name for name in sys.modules if name == "dataparsers" or name.startswith("dataparsers.")]:
        del sys.modules[name]


bind_dataparsers()
