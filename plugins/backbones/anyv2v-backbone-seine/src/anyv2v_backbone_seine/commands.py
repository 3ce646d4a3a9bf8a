"""``anyv2v seine-convert``: the plugin's CLI subcommand (added by the
``anyv2v_register_commands`` hook)."""

from __future__ import annotations

from pathlib import Path

COMMAND = "seine-convert"


def add_commands(app) -> None:
    """Add ``seine-convert`` to the Typer ``app``."""
    import typer

    from anyv2v_core.console import out


    @app.command(COMMAND)
    def seine_convert(
        source: str = typer.Argument(..., help="seine.pt (the official pickle), a folder holding it, or the hub id "
                                     "xinyuanc91/SEINE."),
        output: Path = typer.Argument(..., help="The .safetensors file to write, or a folder (gets seine.safetensors)."),
        fp16: bool = typer.Option(False, "--fp16", help="Store float16 weights (half the size)."),
        force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output."),
    ) -> None:
        """Convert SEINE's seine.pt to safetensors once (read with torch.load(weights_only=True));
        the seine backbone loads only the safetensors file."""
        from .convert import convert_checkpoint

        path = convert_checkpoint(source, output, fp16=fp16, force=force)
        out.print(f"wrote {path}")
