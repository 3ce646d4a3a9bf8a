"""Entry point of the ``anyv2v`` plugin group (no torch import here)."""

from __future__ import annotations

from anyv2v_core import hookimpl

from .options import OPTIONS

CONVERT_COMMAND = "instantid-convert"


@hookimpl
def anyv2v_register_editors(register):
    register(
        "instantid",
        "anyv2v_editor_instantid.editor:InstantIDEditor",
        description="InstantID (SDXL + IdentityNet + face adapter): put the person of --face-image into the first frame.",
        options=list(OPTIONS),
    )


@hookimpl
def anyv2v_register_commands(app):
    from .commands import convert_command

    app.command(CONVERT_COMMAND)(convert_command)
