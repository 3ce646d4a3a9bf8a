"""pluggy hook specifications of anyv2v.

A plugin is a module listed under the entry-point group ``anyv2v`` that implements some
of these hooks with :data:`hookimpl`::

    # pyproject.toml
    [project.entry-points.anyv2v]
    myeditor = "anyv2v_editor_my.plugin"

    # anyv2v_editor_my/plugin.py
    from anyv2v_core import hookimpl

    @hookimpl
    def anyv2v_register_editors(register):
        register("my", "anyv2v_editor_my.editor:MyEditor", description="...")

The second argument of ``register`` is the class itself or a ``"module:Class"`` string;
a string keeps heavy imports (torch, diffusers) out of plugin discovery until the
component is used.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("anyv2v")
hookimpl = pluggy.HookimplMarker("anyv2v")


@hookspec
def anyv2v_register_editors(register):
    """Register image editors: ``register(name, ref, description='', options=None)``; ``ref`` is
    the class or ``"module:Class"``, ``options`` the one declaration of its
    :class:`~anyv2v_core.protocols.EditorOption` s (default: the class's ``options``
    attribute when the class is given directly)."""


@hookspec
def anyv2v_register_backbones(register):
    """Register image-to-video backbones: ``register(name, ref, description='', options=None)``;
    declared options become ``--name`` flags of ``edit``/``invert`` and constructor keywords."""


@hookspec
def anyv2v_register_commands(app):
    """Add subcommands to the ``anyv2v`` Typer app (e.g. a weight converter)."""
