"""``anyv2v instantid-convert``: the one-time conversion of ``ip-adapter.bin`` to safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from anyv2v_core.console import out


def convert_command(
    source: Path = typer.Argument(..., help="The official ip-adapter.bin (a pickle, read with weights_only=True)."),
    target: Optional[Path] = typer.Argument(None, help="Where to write it (default: beside it, ip-adapter.safetensors)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing target."),
) -> None:
    """Convert InstantID's ip-adapter.bin to ip-adapter.safetensors once; the instantid
    editor then loads the safetensors file (it prefers it when both are present)."""
    from .adapter import convert_adapter

    dst = convert_adapter(source, target or source.with_suffix(".safetensors"), force=force)
    out.print(f"wrote {dst}")
