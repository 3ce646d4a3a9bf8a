"""``anyv2v report``: one self-contained HTML page of batch results (:mod:`anyv2v_core.report`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..console import out
from .app import app


@app.command("report")
def report(
    results: list[Path] = typer.Argument(..., help="results.jsonl file(s) of `anyv2v batch`, or its output "
                                         "folder(s); several runs are compared as methods."),
    output: Path = typer.Option(..., "--out", "-o", help="The HTML file to write."),
    title: str = typer.Option("AnyV2V results", "--title", help="Page title."),
    embed: bool = typer.Option(False, "--embed", help="Put the videos and images inside the page (one "
                               "portable file) instead of linking them relatively."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite the page."),
) -> None:
    """One self-contained HTML page of batch results: mean metrics per method (sortable, with
    charts) and every item's source, edited first frame and output side by side."""
    from ..report import write_report

    path = write_report(results, output, title=title, embed=embed, force=force)
    out.print(f"wrote {path}", highlight=False, soft_wrap=True)
