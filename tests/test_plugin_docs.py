"""The plugin docs match the code (tests/test_docs.py: the CLI docs): every hook, the ``register`` signature, the option types
and fields, the ANYV2V_LOAD_PLUGINS variable."""

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from anyv2v_core import hookspecs
from anyv2v_core.plugins import LOAD_PLUGINS_ENV, PluginInfo, Registry, _make_register
from anyv2v_core.protocols import OPTION_TYPES, EditorOption

DOCS = Path(__file__).resolve().parents[1] / "docs"
PLUGINS_MD = (DOCS / "plugins.md").read_text()
HOOKS = sorted(name for name, f in vars(hookspecs).items() if name.startswith("anyv2v_") and callable(f))


def _call(name, function):
    """``name(a, b='', c=None)``: parameters as they are written in a call, without annotations."""
    params = [p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
              for p in inspect.signature(function).parameters.values()]
    return f"{name}({', '.join(params)})"


def _hook_table():
    """The first cells of docs/plugins.md's hook table."""
    rows = re.findall(r"^\| `(anyv2v_\w+\([^)]*\))` \|", PLUGINS_MD, re.M)
    assert rows, "docs/plugins.md has no hook table"
    return rows


def test_there_are_hooks():
    assert {"anyv2v_register_editors", "anyv2v_register_backbones", "anyv2v_register_commands"} <= set(HOOKS)


def test_every_hook_is_in_the_table_with_its_arguments():
    assert sorted(_hook_table()) == sorted(_call(name, getattr(hookspecs, name)) for name in HOOKS)


def test_register_signature_is_the_documented_one():
    register = _make_register(Registry(), "editor", PluginInfo("p", "p", "0"))
    call = _call("register", register)
    assert f"`{call}`" in PLUGINS_MD, f"docs/plugins.md should show {call}"
    for name in ("anyv2v_register_editors", "anyv2v_register_backbones"):
        assert call in getattr(hookspecs, name).__doc__


@pytest.mark.parametrize("doc", ["plugins.md", "plugin-guide.md"])
def test_option_types_and_fields_are_documented(doc):
    text = " ".join((DOCS / doc).read_text().split())
    for option_type in OPTION_TYPES:
        assert f"`{option_type}`" in text, f"docs/{doc} does not name option type {option_type!r}"
    for field in dataclasses.fields(EditorOption):
        assert f"`{field.name}`" in text or f"EditorOption({_fields()})`" in text, f"docs/{doc} lacks {field.name}"


def _fields():
    return ", ".join(f.name for f in dataclasses.fields(EditorOption))


def test_option_constructor_in_plugins_md():
    assert f"`anyv2v_core.protocols.EditorOption({_fields()})`" in " ".join(PLUGINS_MD.split())


def test_load_plugins_variable_is_documented():
    assert f"`{LOAD_PLUGINS_ENV}`" in PLUGINS_MD
