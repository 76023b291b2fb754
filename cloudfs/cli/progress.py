"""Progress display of uploads for a person waiting (rich), silent otherwise."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn


class UploadProgress:
    """A bar per upload.  As a context manager it draws itself (on stderr
    by default); ``bars`` is the same display for a caller's own ``Live``."""

    def __init__(self, *, enabled: bool = True, console: Console | None = None) -> None:
        console = console or Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=console, transient=True, disable=not self.enabled,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> "UploadProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    @property
    def bars(self) -> Progress:
        return self._progress

    def update(self, uploads: list[dict[str, Any]]) -> None:
        seen = set()
        for upload in uploads:
            path = upload["path"]
            seen.add(path)
            label = f"{path} ({upload['state']})" if upload.get("error") is None else f"{path}: {upload['error']}"
            if path not in self._tasks:
                self._tasks[path] = self._progress.add_task(label, total=upload["size"] or 1)
            self._progress.update(self._tasks[path], description=label, completed=upload["done"],
                                  total=upload["size"] or 1)
        for path in list(self._tasks):
            if path not in seen:
                self._progress.remove_task(self._tasks.pop(path))
