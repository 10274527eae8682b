"""The package's input errors: what ``ns-*`` commands report in one line instead of a traceback
(:mod:`nerfstudio_methods.compat.errors`). Dataparsers and methods raise them alike; this module imports neither."""

from __future__ import annotations

from pathlib import Path


def first_line(error: BaseException, limit: int | None = 300) -> str:
    """The first line of an error's message (its type's name when the message is empty), for one-line reports:
    ffmpeg, diffusers and torch put pages of detail after the reason."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if limit is None else line[:limit]


class InputError(ValueError):
    """Bad input from the user (a file, a folder, a checkpoint, a setting); the message says which and why."""


class DatasetFormatError(InputError):
    """A file or folder (a dataset, a checkpoint, a frame store) does not follow its format. The message names the
    file and the problem."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class SettingError(InputError):
    """A setting (a command-line option) that cannot work; the message names the option and why."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}")
