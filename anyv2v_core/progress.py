"""Progress reporting for long steps inside plugins (e.g. an editor's iterations)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator


@contextmanager
def stage_progress(callback: Any, stage: str, total: int) -> Iterator[Callable[[int], None]]:
    """``with stage_progress(request.progress, "style transfer", n) as advance: advance(1)``.

    Reports through ``callback(stage, done, total)`` — the CLI passes one that draws a bar
    beside its own — or, without a callback, through a rich bar on a terminal's stderr."""
    if callback is not None:
        done = 0
        callback(stage, 0, total)

        def advance(n: int = 1) -> None:
            nonlocal done
            done += n
            callback(stage, done, total)

        yield advance
        return
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(stage, total=total)
        yield lambda n=1: progress.advance(task, n)
