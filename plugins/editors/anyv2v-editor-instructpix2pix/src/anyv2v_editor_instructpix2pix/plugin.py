"""Entry point of the ``anyv2v`` plugin group (no torch import here)."""

from pathlib import Path
from typing import Any, Optional

from anyv2v_core import hookimpl

from .options import OPTIONS


@hookimpl
def anyv2v_register_editors(register):
    register(
        "instructpix2pix",
        "anyv2v_editor_instructpix2pix.editor:InstructPix2PixEditor",
        description='InstructPix2Pix (timbrooks/instruct-pix2pix): --instruction "turn the car blue".',
        options=list(OPTIONS),
    )


@hookimpl
def anyv2v_register_commands(app: Any) -> None:
    import typer

    @app.command("ip2p-convert-weights")
    def convert_weights(
        folder: Path = typer.Argument(..., help="A local diffusers-layout folder whose weights are .bin pickles."),
        output: Optional[Path] = typer.Option(None, "--out", "-o", help="Write a converted copy here (default: in place)."),
    ) -> None:
        """Convert an InstructPix2Pix-architecture model's .bin weights (e.g. MagicBrush) to
        safetensors once, reading them with torch.load(weights_only=True)."""
        from anyv2v_core.console import err, out
        from anyv2v_core.errors import AnyV2VError

        from .convert import convert_folder

        try:
            written = convert_folder(folder, output)
        except AnyV2VError as exc:
            err.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        for path in written:
            out.print(f"wrote {path}")
        if not written:
            out.print("nothing to convert: every component already has safetensors")
