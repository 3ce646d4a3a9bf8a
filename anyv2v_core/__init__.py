"""anyv2v: edit videos the AnyV2V way.

Stage 1, an image editor edits the first frame; stage 2, an image-to-video backbone
DDIM-inverts the source clip and samples the edited clip from the inverted noise with
plug-and-play feature injection. Editors and backbones are plugins (entry-point group
``anyv2v``). Heavy libraries are imported on first use only.

    >>> import anyv2v_core as anyv2v
    >>> result = anyv2v.edit("in.mp4", prompt="a red car", edited_frame="frame0.png",
    ...                      out="out.mp4")                           # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "edit": "api",
    "invert": "api",
    "EditResult": "api",
    "load_backbone": "api",
    "load_editor": "api",
    "InversionResult": "inversion",
    "InjectionController": "injection",
    "InjectionSite": "protocols",
    "InjectionPattern": "protocols",
    "resolve_sites": "injection",
    "DiffusersBackbone": "diffusers_backbone",
    "ClipSpec": "protocols",
    "EditOptions": "protocols",
    "InversionOptions": "protocols",
    "EditRequest": "protocols",
    "BackboneDefaults": "protocols",
    "Editor": "protocols",
    "I2VBackbone": "protocols",
    "get_editor": "plugins",
    "get_backbone": "plugins",
    "get_registry": "plugins",
    "AnyV2VError": "errors",
}

__all__ = ["hookimpl", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
