"""The ``anyv2v`` command line: a package of thin commands over :mod:`anyv2v_core.api`.

:mod:`.app` holds the Typer app and its one error path; each module adds its commands to
it; plugins add theirs through the ``anyv2v_register_commands`` hook (and print through
:mod:`anyv2v_core.console`).
"""

from __future__ import annotations

from . import batch, cache, edit, ui  # noqa: F401  (each adds its commands to the app)
from .app import app, handle_errors
from .ui import parse_models

__all__ = ["app", "main", "handle_errors", "parse_models"]


def main() -> None:
    from ..plugins import get_registry

    get_registry().register_commands(app)
    app()
