import json
import os
import subprocess
import sys

import pytest

from anyv2v_core.errors import PluginError
from anyv2v_core.plugins import build_registry

GOOD = """
from anyv2v_core import hookimpl

class XEditor:
    name = "x"
    def __init__(self, device="cpu", dtype=None, model=None):
        pass
    def edit(self, first_frame, request):
        return first_frame.transpose(0)

@hookimpl
def anyv2v_register_editors(register):
    register("x", XEditor, description="mirror")
"""

LAZY = """
from anyv2v_core import hookimpl

@hookimpl
def anyv2v_register_editors(register):
    register("lazy", "anyv2v_lazy_impl_that_does_not_exist:Editor")
"""

BROKEN_IMPORT = "raise ImportError('no module named torchsparkle')\n"

BROKEN_HOOK = """
from anyv2v_core import hookimpl

@hookimpl
def anyv2v_register_backbones(register):
    raise RuntimeError("boom in register")
"""


def test_builtins_registered():
    reg = build_registry(entry_points=[])
    assert "image" in reg.editors
    assert reg.editors["image"].plugin.package == "anyv2v"


def test_third_party_editor_is_discovered(plugin_site):
    plugin_site("anyv2v-editor-x", "anyv2v_editor_x_mod", GOOD, entry_name="x")
    reg = build_registry()
    comp = reg.editor("x")
    assert comp.plugin.package == "anyv2v-editor-x" and comp.plugin.version == "0.1"
    assert comp.load().__name__ == "XEditor"


def test_broken_plugins_are_reported_and_others_work(plugin_site):
    plugin_site("anyv2v-editor-x", "anyv2v_editor_x_mod", GOOD, entry_name="x")
    plugin_site("anyv2v-broken-import", "anyv2v_broken_import_mod", BROKEN_IMPORT, entry_name="brokenimport")
    plugin_site("anyv2v-broken-hook", "anyv2v_broken_hook_mod", BROKEN_HOOK, entry_name="brokenhook")
    reg = build_registry()
    failures = {f.plugin: f for f in reg.failures}
    assert "torchsparkle" in failures["brokenimport"].error
    assert failures["brokenimport"].package == "anyv2v-broken-import"
    assert "boom in register" in failures["brokenhook"].error
    assert "x" in reg.editors and "image" in reg.editors


def test_unknown_name_lists_available_and_failures(plugin_site):
    plugin_site("anyv2v-broken-import", "anyv2v_broken_import_mod", BROKEN_IMPORT, entry_name="brokenimport")
    reg = build_registry()
    with pytest.raises(PluginError, match=r"unknown editor 'nope'; available: .*image.*brokenimport"):
        reg.editor("nope")


def test_lazy_reference_error_is_one_line(plugin_site):
    plugin_site("anyv2v-lazy", "anyv2v_lazy_mod", LAZY, entry_name="lazy")
    reg = build_registry()
    with pytest.raises(PluginError, match="editor 'lazy' from anyv2v-lazy failed to load: ModuleNotFoundError"):
        reg.editor("lazy").load()


def test_duplicate_name_is_a_failure_not_a_crash(plugin_site):
    plugin_site("anyv2v-editor-x", "anyv2v_editor_x_mod", GOOD, entry_name="x")
    plugin_site("anyv2v-editor-x2", "anyv2v_editor_x2_mod", GOOD, entry_name="x2")
    reg = build_registry()
    assert "x" in reg.editors
    assert any("already registered" in f.error for f in reg.failures)


def test_plugins_command_reports_broken_plugin(plugin_site):
    site = plugin_site("anyv2v-broken-import", "anyv2v_broken_import_mod", BROKEN_IMPORT, entry_name="brokenimport")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "plugins", "--json"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert any(c["name"] == "image" for c in data["components"])
    assert data["failures"][0]["plugin"] == "brokenimport"
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "plugins"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "brokenimport" in proc.stderr


@pytest.mark.parametrize("argv", [["plugins", "--json"], ["--help"], ["edit", "--help"]])
def test_light_commands_do_not_import_torch(argv):
    code = f"import sys; from anyv2v_core.cli import main; sys.argv=['anyv2v', *{argv!r}]\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\n" \
           "heavy=[m for m in ('torch','diffusers','transformers') if m in sys.modules]\n" \
           "print('HEAVY', heavy, file=sys.stderr)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in proc.stderr, proc.stderr


def test_third_party_editor_loads_by_name(plugin_site, tmp_path):
    """A third party's `anyv2v-editor-x` is instantiated by name like a built-in."""
    from anyv2v_core.api import load_editor
    from anyv2v_core.protocols import EditRequest
    from anyv2v_core.testing.tiny import synthetic_frames

    plugin_site("anyv2v-editor-x", "anyv2v_editor_x_mod", GOOD, entry_name="x")
    frame = synthetic_frames(1, 32, 16)[0]
    out = load_editor("x", device="cpu").edit(frame, EditRequest())
    assert out.tobytes() == frame.transpose(0).tobytes()


COMMANDS = """
from anyv2v_core import hookimpl

@hookimpl
def anyv2v_register_commands(app):
    @app.command("hello-x")
    def hello():
        print("hello")
"""


def test_plugin_commands_are_added_once_per_app(plugin_site):
    """The core runs each plugin's command hook once per app, also across registry
    rebuilds; the plugin itself needs no guard."""
    import typer
    from typer.testing import CliRunner

    plugin_site("anyv2v-cmd", "anyv2v_cmd_mod", COMMANDS)
    app = typer.Typer()

    @app.command("other")
    def other():
        pass

    for _ in range(2):
        build_registry().register_commands(app)
    assert [c.name for c in app.registered_commands].count("hello-x") == 1
    assert CliRunner().invoke(app, ["hello-x"]).output == "hello\n"


def test_load_plugins_allow_list(plugin_site, monkeypatch):
    """ANYV2V_LOAD_PLUGINS: only the listed plugins (entry-point or distribution names) load,
    the built-ins always do, unknown names are reported, an empty value loads none."""
    plugin_site("anyv2v-editor-x", "anyv2v_editor_x_mod", GOOD, entry_name="x")
    plugin_site("anyv2v-broken-import", "anyv2v_broken_import_mod", BROKEN_IMPORT, entry_name="brokenimport")
    reg = build_registry(allow="x, nosuchplugin")
    assert "x" in reg.editors and "image" in reg.editors and not reg.failures  # the broken one is not even imported
    assert reg.unknown_allowed == ["nosuchplugin"]
    assert "brokenimport" in {p.name for p in reg.skipped}
    reg = build_registry(allow="anyv2v_Editor_X")  # a distribution name, spelt loosely
    assert "x" in reg.editors and not reg.unknown_allowed
    monkeypatch.setenv("ANYV2V_LOAD_PLUGINS", "")
    reg = build_registry()
    assert set(reg.editors) == {"image"} and not reg.backbones and not reg.failures
    assert [p.package for p in reg.plugins] == ["anyv2v"]


def test_plugins_command_shows_the_allow_list(plugin_site):
    site = plugin_site("anyv2v-editor-x", "anyv2v_editor_x_mod", GOOD, entry_name="x")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "ANYV2V_LOAD_PLUGINS": "x,typo", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "plugins", "--json"], capture_output=True,
                          text=True, env=env)
    data = json.loads(proc.stdout)
    assert {c["name"] for c in data["components"] if c["kind"] == "editor"} == {"image", "x"}
    assert data["unknown_allowed"] == ["typo"] and data["not_loaded"]  # the repository's plugins
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "plugins"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0
    assert "ANYV2V_LOAD_PLUGINS names no installed plugin typo" in " ".join(proc.stderr.split())
