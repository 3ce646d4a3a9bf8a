"""A rich progress bar that cooperates with the ``anyv2v`` CLI's own bars.

While the CLI shows its bars, rich redirects ``sys.stderr`` through a proxy of the CLI's
console; a second live display on that same console nests inside the first (rich >= 14)
instead of fighting over the terminal. Elsewhere the bar goes to a fresh stderr console
(and stays silent when stderr is not a terminal)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator


def _console():
    from rich.console import Console

    proxied = getattr(sys.stderr, "_FileProxy__console", None)  # rich.file_proxy.FileProxy
    if isinstance(proxied, Console):
        return proxied
    return Console(stderr=True)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """``with progress_bar("style transfer", n) as advance: advance(1)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = _console()
    progress = Progress(
        TextColumn("{task.description:<15}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=False, disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
