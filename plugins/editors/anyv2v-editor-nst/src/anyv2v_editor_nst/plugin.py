"""Entry point of the ``anyv2v`` plugin group (no torch import here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from anyv2v_core import hookimpl

from .options import OPTIONS


@hookimpl
def anyv2v_register_editors(register):
    register(
        "nst",
        "anyv2v_editor_nst.editor:NSTEditor",
        description="Neural style transfer (Gatys et al. 2016, VGG19): --style-image PATH.",
        options=list(OPTIONS),
    )


@hookimpl
def anyv2v_register_commands(app: Any) -> None:
    import typer

    @app.command("nst-convert-weights")
    def convert_weights(
        source: Optional[Path] = typer.Argument(None, help="torchvision's vgg19-dcbb9e9d.pth (default: in the torch hub cache)."),
        output: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write (default: SOURCE with .safetensors)."),
    ) -> None:
        """Convert torchvision's pickled VGG19 weights to safetensors once (the nst editor
        then loads the .safetensors file and never unpickles anything)."""
        from anyv2v_core.console import err, out
        from anyv2v_core.errors import AnyV2VError

        from .vgg import convert_to_safetensors

        try:
            written = convert_to_safetensors(source, output)
        except AnyV2VError as exc:
            err.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        out.print(f"wrote {written}")
