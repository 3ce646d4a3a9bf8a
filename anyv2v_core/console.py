"""The consoles and progress display of the command line, for the core's commands and
plugins' commands alike (a plugin adding a command imports this, not the CLI)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.console import Console

#: Errors, progress and notes go to stderr; results (what a script reads) to stdout.
err = Console(stderr=True)
out = Console()

#: Labels of the progress stages the library reports.
STAGE_LABELS = {"invert": "DDIM inversion", "edit": "PnP sampling", "windows": "Windows"}


@contextmanager
def progress_bars(console: Console = err) -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(stage, done, total)`` callback drawing one rich bar per stage; nothing is
    drawn until the first report (a command that reports nothing prints nothing extra)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if not tasks:
            progress.start()
        if stage not in tasks:
            tasks[stage] = progress.add_task(STAGE_LABELS.get(stage, stage), total=total)
        progress.update(tasks[stage], completed=done, total=total)

    try:
        yield update
    finally:
        if tasks:
            progress.stop()
