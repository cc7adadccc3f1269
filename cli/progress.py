"""Progress bars for long work, on stderr so ``--json`` output stays clean."""

from __future__ import annotations

from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cli.output import stderr


def _bar(done: Any) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        done,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        transient=False,
    )


def file_progress() -> Progress:
    """A bar counting files (3/10)."""
    return _bar(MofNCompleteColumn())


def fraction_progress() -> Progress:
    """A bar for one piece of work whose share done is known (total 1.0)."""
    return _bar(TaskProgressColumn())


class FrameProgress:
    """A frames / fps / ETA bar that appears only once work has started.

    Started lazily, so a request refused up front prints its one error line
    and no empty bar.
    """

    def __init__(self, description: str) -> None:
        self.description = description
        self._progress: Progress | None = None
        self._task: Any = None

    def update(self, frames_done: int, frames_total: int | None, fps: float) -> None:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.completed}/{task.total} frames"),
                TextColumn("{task.fields[fps]:.1f} fps"),
                TimeRemainingColumn(),
                console=stderr(),
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=frames_total, fps=0.0)
        self._progress.update(self._task, completed=frames_done, total=frames_total, fps=fps)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
