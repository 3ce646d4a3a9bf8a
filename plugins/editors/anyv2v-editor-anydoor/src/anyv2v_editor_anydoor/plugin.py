"""Entry point of the ``anyv2v`` plugin group (no torch import here)."""

from anyv2v_core import hookimpl

from .options import OPTIONS


@hookimpl
def anyv2v_register_editors(register):
    register(
        "anydoor",
        "anyv2v_editor_anydoor.editor:AnyDoorEditor",
        description="AnyDoor (ali-vilab/AnyDoor): put a reference subject into a masked region of the first frame.",
        options=list(OPTIONS),
    )


@hookimpl
def anyv2v_register_commands(app):
    from .convert import register_command

    register_command(app)
