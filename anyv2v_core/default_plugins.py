"""Built-in components, registered like any plugin."""

from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def anyv2v_register_editors(register):
    register(
        "image",
        "anyv2v_core.editors.image:ImageEditor",
        description="Use a first frame you edited yourself (--edited-frame PATH).",
    )
