"""Shared test fixtures: where the real datasets live, and running ns-* commands as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BIN = Path(sys.executable).parent


def shared_data(relative: str) -> Path:
    """A folder of ../shared/data; the suite needs it (CI lays it beside the clone)."""
    path = SHARED_DATA / relative
    if not path.exists():
        raise FileNotFoundError(f"real test data missing: {path} (expected ../shared/data beside the repo)")
    return path


@pytest.fixture
def fern() -> Path:
    return shared_data("nerf_llff_data/fern")


def run_command(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run an installed console script (ns-train, ns-eval, ...) from this venv; output captured as text."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore::FutureWarning", **(env or {})}
    executable = BIN / args[0]
    return subprocess.run(
        [str(executable), *args[1:]],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
