"""The docs match the code (the datasette ``test_docs.py`` habit): the settings table of
docs/cli.md is the one generated from the schema, and every option of every core command is
documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from anyv2v_core import settings
from anyv2v_core.cli import app

DOCS = Path(__file__).resolve().parents[1] / "docs"
CLI_MD = (DOCS / "cli.md").read_text(encoding="utf-8")
ALL_DOCS = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))


@pytest.mark.parametrize("doc, place", [("cli.md", "edit"), ("batch-and-eval.md", "manifest")])
def test_settings_table_is_fresh(doc, place):
    text = (DOCS / doc).read_text(encoding="utf-8")
    match = re.search(r"<!-- settings-table:[^>]*-->\n(.*?)\n<!-- /settings-table -->", text, re.S)
    assert match, f"docs/{doc} lost its settings table markers"
    assert match.group(1) == settings.markdown_table(place), (
        f"docs/{doc}'s settings table is stale: regenerate it with "
        f"`python -m anyv2v_core.settings --markdown {place}`")


def _commands():
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        if command.callback is not None and not command.callback.__module__.startswith("anyv2v_core"):
            continue  # a plugin's command: its plugin documents it
        subs = getattr(command, "commands", None)
        if subs:
            for sub_name, sub in subs.items():
                yield f"{name} {sub_name}", sub
        else:
            yield name, command


@pytest.mark.parametrize("name, command", list(_commands()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_option_is_documented(name, command):
    assert f"anyv2v {name}" in CLI_MD, f"docs/cli.md does not list `anyv2v {name}`"
    missing = [opt for param in command.params for opt in param.opts
               if opt.startswith("--") and opt != "--help" and f"`{opt}" not in ALL_DOCS and f" {opt}" not in ALL_DOCS]
    assert not missing, f"anyv2v {name}: options not in docs/: {missing}"


def test_every_setting_has_help_and_a_known_place():
    for s in settings.SETTINGS:
        assert s.help and s.group in settings.GROUPS and s.places <= set(settings.PLACES), s.name
        assert s.type in {"int", "float", "str", "bool", "choice", "size", "position", "path"}, s.name
        assert (s.default is settings.BACKBONE) == (s.from_backbone is not None), s.name
