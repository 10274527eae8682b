"""The plugin never breaks nerfstudio: every entry point imports, from any working directory, even one holding a
``dataparsers`` folder of its own (nerfstudio's test suite has ``tests/dataparsers/``), and config class paths that
users' config.yml files store (``dataparsers.<format>.<Config>``) still load. nerfstudio's own test suite, run with
this package installed, is ``scripts/nerfstudio_tests.sh`` (CI runs it from scripts/test.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

GROUPS = ["nerfstudio.method_configs", "nerfstudio.dataparser_configs"]

# How an editable install of this tree resolves it: its two top-level packages through a meta-path finder consulted
# after the sys.path finder (setuptools' editable finder; any folder of the same name on sys.path comes first), and
# its metadata (entry points) from a dist-info written from pyproject.toml (the venv's own install may be of another
# checkout or older).
EDITABLE_LIKE = r"""
import importlib.machinery, importlib.util, sys
from pathlib import Path
class EditableLikeFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname in ("nerfstudio_methods", "dataparsers"):
            folder = Path(sys.argv[-1]) / fullname
            return importlib.util.spec_from_file_location(
                fullname, folder / "__init__.py", submodule_search_locations=[str(folder)])
sys.meta_path.insert(sys.meta_path.index(importlib.machinery.PathFinder) + 1, EditableLikeFinder)
"""
# Runs nerfstudio's plugin discovery as every ns-* command does, checks that every entry point of this distribution
# loads the spec nerfstudio expects, and loads config.yml-style YAML naming each registered dataparser's config class.
PROBE = (
    EDITABLE_LIKE
    + r"""
import importlib.metadata, json, yaml
from nerfstudio.configs.dataparser_configs import all_dataparsers
from nerfstudio.configs.method_configs import all_methods
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from nerfstudio.plugins.types import MethodSpecification
report = {"entry_points": {}, "methods": [], "config_paths": []}
for group, spec_class in [("nerfstudio.method_configs", MethodSpecification),
                          ("nerfstudio.dataparser_configs", DataParserSpecification)]:
    points = [p for p in importlib.metadata.entry_points(group=group) if p.dist.name == "nerfstudio-methods"]
    report["entry_points"][group] = sorted(p.name for p in points)
    for point in points:
        spec = point.load()
        assert isinstance(spec, spec_class), (point, spec)
        if spec_class is MethodSpecification:
            assert all_methods[spec.config.method_name] is spec.config, point
            report["methods"].append(spec.config.method_name)
        else:
            assert all_dataparsers[point.name] is spec.config, point
            cls = type(spec.config)
            tag = f"!!python/object:{cls.__module__}.{cls.__qualname__}"
            assert type(yaml.load(f"{tag} {{}}", Loader=yaml.Loader)) is cls, tag
            report["config_paths"].append(f"{cls.__module__}.{cls.__qualname__}")
import dataparsers
report["dataparsers"] = dataparsers.__file__
print(json.dumps(report))
"""
)


def declared_entry_points() -> dict[str, dict[str, str]]:
    import tomllib  # Python >= 3.11, as the suite's venv

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {group: dict(project["entry-points"][group]) for group in GROUPS}


def editable_like_env(site: Path) -> dict[str, str]:
    """The environment for a probe: this tree's metadata in ``site`` (first on PYTHONPATH), and this checkout
    itself off PYTHONPATH, so that it is found only through EDITABLE_LIKE."""
    dist_info = site / "nerfstudio_methods-0.1.0.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: nerfstudio-methods\nVersion: 0.1.0\n")
    sections = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
                for group, points in declared_entry_points().items()]  # fmt: skip
    (dist_info / "entry_points.txt").write_text("\n".join(sections))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != REPO]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *paths])}


def probe(cwd: Path, site: Path) -> dict:
    """Run PROBE with ``python -c`` in ``cwd``: the working directory is first on sys.path, as for any script."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO)],
        cwd=cwd,
        env=editable_like_env(site),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_entry_points_go_through_the_package() -> None:
    """Every entry point names a module of nerfstudio_methods, which binds ``dataparsers`` before anything imports
    it; an entry point naming ``dataparsers.<format>`` directly would be resolved on sys.path first."""
    for group, points in declared_entry_points().items():
        for name, value in points.items():
            assert value.startswith("nerfstudio_methods."), (group, name, value)


@pytest.mark.parametrize("folder", ["namespace", "package"])
def test_entry_points_import_beside_a_foreign_dataparsers_folder(tmp_path: Path, folder: str) -> None:
    """``namespace``: a ``dataparsers/`` folder of test files without ``__init__.py``, as nerfstudio's tests/ has;
    ``package``: a regular package of that name whose import fails."""
    foreign = tmp_path / "dataparsers"
    foreign.mkdir()
    (foreign / "test_something.py").write_text("def test_nothing():\n    pass\n")
    if folder == "package":
        (foreign / "__init__.py").write_text("raise ImportError('the wrong dataparsers package was imported')\n")
    report = probe(tmp_path, tmp_path / "site")
    declared = declared_entry_points()
    assert report["entry_points"] == {group: sorted(points) for group, points in declared.items()}
    assert len(report["methods"]) == len(declared["nerfstudio.method_configs"])
    assert Path(report["dataparsers"]) == REPO / "dataparsers" / "__init__.py"
    # the class paths already stored in users' config.yml files
    assert "dataparsers.n3dv.N3dvDataParserConfig" in report["config_paths"]
    assert "dataparsers.blender.BlenderFewShotDataParserConfig" in report["config_paths"]


def test_a_dataparsers_module_imported_earlier_is_replaced(tmp_path: Path) -> None:
    """A foreign ``dataparsers`` already in sys.modules (and its submodules) gives way to ours, with a warning
    naming it; a namespace package (a plain folder) gives way silently."""
    script = (
        EDITABLE_LIKE
        + r"""
import types, warnings
foreign = types.ModuleType("dataparsers"); foreign.__file__ = "/elsewhere/dataparsers/__init__.py"
sys.modules["dataparsers"] = foreign; sys.modules["dataparsers.llff"] = types.ModuleType("dataparsers.llff")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import nerfstudio_methods
import dataparsers.llff
print(dataparsers.__file__, dataparsers.llff.__file__, len(caught), caught[0].message if caught else "")
"""
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(REPO)],
        cwd=Path("/"),
        env=editable_like_env(tmp_path / "site"),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    package, module, warnings_count, message = result.stdout.split(" ", 3)
    assert Path(package) == REPO / "dataparsers" / "__init__.py"
    assert Path(module) == REPO / "dataparsers" / "llff.py"
    assert warnings_count == "1" and "/elsewhere/dataparsers/__init__.py" in message


@pytest.mark.parametrize(
    "command",
    ["nerfstudio.scripts.train", "nerfstudio.scripts.viewer.run_viewer", "nerfstudio.scripts.eval",
     "nerfstudio.scripts.render"],
)  # fmt: skip
def test_every_fix_is_installed_by_the_time_a_command_runs(command: str) -> None:
    """Some fixes wrap nerfstudio code (the trainer, the viewer, eval_utils' checkpoint loading, ns-render's video
    writer) whose modules are still importing when the plugins load; they are installed by a later plugin import or
    at the command's first config ``setup()`` (it builds the pipeline before any checkpoint is loaded)."""
    code = (
        f"import {command}\nfrom nerfstudio.configs.base_config import InstantiateConfig\n"
        "InstantiateConfig(_target=lambda config: None).setup()\n"
        "from nerfstudio_methods import compat\nprint(sorted(set(compat.FIXES) - compat._INSTALLED))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
