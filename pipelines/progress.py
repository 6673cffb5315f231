"""Progress on stderr: a rich bar on a terminal, nothing at all otherwise (logs still go to stderr)."""

from __future__ import annotations

import sys
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressSink(Protocol):
    def start(self, total: int, what: str) -> None: ...

    def advance(self, label: str) -> None: ...

    def stop(self) -> None: ...


class NullProgress:
    def start(self, total: int, what: str) -> None:
        pass

    def advance(self, label: str) -> None:
        pass

    def stop(self) -> None:
        pass


class RichProgress:
    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[label]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = None

    def start(self, total: int, what: str) -> None:
        self._progress.start()
        self._task = self._progress.add_task(what, total=total, label="")

    def advance(self, label: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=1, label=label[:40])

    def stop(self) -> None:
        self._progress.stop()


def for_terminal(enabled: bool = True) -> ProgressSink:
    """A rich progress bar when stderr is a terminal, else a sink that prints nothing."""
    return RichProgress() if enabled and sys.stderr.isatty() else NullProgress()
