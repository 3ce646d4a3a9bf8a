"""``anyv2v consisti2v-convert``: the plugin's CLI subcommand (added by the
``anyv2v_register_commands`` hook)."""

from __future__ import annotations

from pathlib import Path

COMMAND = "consisti2v-convert"


def add_commands(app) -> None:
    """Add ``consisti2v-convert`` to the Typer ``app``."""
    import typer

    from anyv2v_core.console import out


    @app.command(COMMAND)
    def consisti2v_convert(
        folder: Path = typer.Argument(..., help="A local copy of TIGER-Lab/ConsistI2V (diffusers folder layout)."),
        force: bool = typer.Option(False, "--force", "-f", help="Rewrite existing safetensors files."),
    ) -> None:
        """Convert pickled component weights (*.bin) of a ConsistI2V folder to safetensors once
        (read with torch.load(weights_only=True)); the consisti2v backbone loads only safetensors."""
        from .convert import convert_folder

        written = convert_folder(folder, force=force)
        for path in written:
            out.print(f"wrote {path}")
        if not written:
            out.print("nothing to convert: every component already has safetensors (use --force to rewrite)")
