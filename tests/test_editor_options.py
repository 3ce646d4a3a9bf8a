import json
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from anyv2v_core.cli import app
from anyv2v_core.editor_options import parse_cli_args, validate_options
from anyv2v_core.errors import InputError
from anyv2v_core.protocols import EditorOption
from anyv2v_core.testing.tiny import synthetic_frames

DECLARED = (
    EditorOption("style-image", "path", required=True, help="the style"),
    EditorOption("strength", "float", default=0.5),
    EditorOption("steps", "int", default=10),
    EditorOption("invert", "bool", default=False),
)

TINT = """
from anyv2v_core import hookimpl
from anyv2v_core.protocols import EditorOption

OPTIONS = (EditorOption("color", "str", required=True, help="hex colour"), EditorOption("alpha", "float", default=0.5))

class Tint:
    name = "tint"
    def __init__(self, device="cpu", dtype=None, model=None):
        pass
    def edit(self, first_frame, request):
        from PIL import Image
        layer = Image.new("RGB", first_frame.size, request.options["color"])
        return Image.blend(first_frame, layer, request.options["alpha"])

@hookimpl
def anyv2v_register_editors(register):
    register("tint", Tint, description="blend a colour in", options=OPTIONS)
"""


def test_parse_and_validate(tmp_path):
    style = tmp_path / "s.png"
    Image.new("RGB", (4, 4)).save(style)
    raw = parse_cli_args("x", DECLARED, ["--style-image", str(style), "--strength=0.7", "--invert"])
    assert raw == {"style_image": str(style), "strength": "0.7", "invert": True}
    values = validate_options("x", DECLARED, raw)
    assert values == {"style_image": style, "strength": 0.7, "steps": 10, "invert": True}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--styleimage", "a"], "unknown option '--styleimage' (options of editor 'x': --style-image, --strength"),
        (["--strength"], "--strength needs a value"),
        (["oops"], "unexpected argument 'oops'"),
    ],
)
def test_parse_errors(args, message):
    with pytest.raises(InputError) as info:
        parse_cli_args("x", DECLARED, args)
    assert message in str(info.value)


def test_validate_errors(tmp_path):
    with pytest.raises(InputError, match="editor 'x' needs --style-image"):
        validate_options("x", DECLARED, {})
    with pytest.raises(InputError, match="--style-image: file not found"):
        validate_options("x", DECLARED, {"style_image": tmp_path / "none.png"})
    style = tmp_path / "s.png"
    style.write_bytes(b"x")
    with pytest.raises(InputError, match="--steps expects int, got 'many'"):
        validate_options("x", DECLARED, {"style_image": style, "steps": "many"})
    with pytest.raises(InputError, match=r"editor .x. has no option\(s\) bogus \(its options: style_image, strength"):
        validate_options("x", DECLARED, {"style_image": style, "bogus": 1})


def test_edit_frame_with_image_editor(tmp_path):
    src = tmp_path / "frames"
    src.mkdir()
    for i, f in enumerate(synthetic_frames(3, 40, 24)):
        f.save(src / f"{i}.png")
    mine = tmp_path / "mine.png"
    synthetic_frames(1, 40, 24, seed=4)[0].save(mine)
    r = CliRunner().invoke(app, ["edit-frame", str(src), "-e", str(mine), "-o", str(tmp_path / "out.png")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "out.png").tobytes() == Image.open(mine).convert("RGB").tobytes()
    r = CliRunner().invoke(app, ["edit-frame", str(src), "-o", str(tmp_path / "out2.png")])
    assert r.exit_code == 2 and "needs --edited-frame" in r.output
    r = CliRunner().invoke(app, ["edit-frame", str(src), "-e", str(mine), "-o", str(tmp_path / "out.png")])
    assert r.exit_code == 2 and "--force" in r.output


def test_plugin_declared_options_through_cli(plugin_site, tmp_path):
    site = plugin_site("anyv2v-editor-tint", "anyv2v_editor_tint_mod", TINT, entry_name="tint")
    src = tmp_path / "frames"
    src.mkdir()
    synthetic_frames(1, 32, 32)[0].save(src / "0.png")
    env_path = str(site)

    def cli(*args):
        code = "import sys; from anyv2v_core.cli import main; sys.argv=['anyv2v', *sys.argv[1:]]; main()"
        import os

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([env_path, os.environ.get("PYTHONPATH", "")])}
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)

    proc = cli("editors", "tint")
    assert proc.returncode == 0 and "--color (required)" in proc.stdout and "--alpha" in proc.stdout
    data = json.loads(cli("plugins", "--json").stdout)
    assert {"--color", "--alpha"} <= set(next(c for c in data["components"] if c["name"] == "tint")["options"])
    proc = cli("edit-frame", src, "--editor", "tint", "--color", "#ff0000", "--alpha", "1", "-o", tmp_path / "t.png")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "t.png").getpixel((3, 3)) == (255, 0, 0)
    proc = cli("edit-frame", src, "--editor", "tint", "-o", tmp_path / "u.png")
    assert proc.returncode == 2 and "editor 'tint' needs --color" in proc.stderr
    proc = cli("edit-frame", src, "--editor", "tint", "--colour", "red", "-o", tmp_path / "u.png")
    assert proc.returncode == 2 and "unknown option '--colour'" in proc.stderr


def test_reserved_flags_match_the_cli():
    """Every flag of `anyv2v edit` / `edit-frame` is reserved, so editors cannot shadow one."""
    import typer.main

    from anyv2v_core.editor_options import RESERVED_FLAGS

    command = typer.main.get_command(app)
    for name in ("edit", "edit-frame"):
        flags = {o for p in command.commands[name].params for o in p.opts if o.startswith("--")}
        assert flags <= RESERVED_FLAGS | {"--help"}, flags - RESERVED_FLAGS


def test_clashing_declaration_is_refused(plugin_site):
    from anyv2v_core.plugins import build_registry

    plugin_site("anyv2v-editor-clash", "anyv2v_editor_clash_mod", TINT.replace('"alpha"', '"steps"'), "clash")
    reg = build_registry()
    assert "tint" not in reg.editors
    assert any("--steps, which `anyv2v edit` uses itself" in f.error for f in reg.failures)


def test_choice_option_and_python_keys(tmp_path):
    declared = (EditorOption("style-image", "path"), EditorOption("pool", "choice", "max", choices=("max", "avg")))
    style = tmp_path / "s.png"
    style.write_bytes(b"x")
    # from Python, the key may be spelt as the option's key or as its name
    assert validate_options("x", declared, {"style-image": str(style), "pool": "avg"}) == {
        "style_image": style, "pool": "avg"}
    assert validate_options("x", declared, {"style_image": str(style)})["pool"] == "max"
    with pytest.raises(InputError, match="--pool must be one of max, avg, got 'mean'"):
        validate_options("x", declared, {"pool": "mean"})
    with pytest.raises(InputError, match="option style_image is given twice"):
        validate_options("x", declared, {"style-image": str(style), "style_image": str(style)})
    raw = parse_cli_args("x", declared, ["--pool", "avg"])
    assert validate_options("x", declared, raw) == {"style_image": None, "pool": "avg"}


@pytest.mark.parametrize("option, message", [
    (EditorOption("mode", "choice"), "--mode of type 'choice' without choices"),
    (EditorOption("mode", "choice", "b", choices=("a",)), "default 'b', not one of its choices (a)"),
    (EditorOption("mode", "choice", choices=("a", "a")), "repeated choice"),
    (EditorOption("mode", "choice", choices="ab"), "without choices"),
    (EditorOption("mode", "str", choices=("a",)), "give it type 'choice'"),
    (EditorOption("mode", "enum"), "--mode of unknown type 'enum'; use one of str, int, float, bool, path, choice"),
    (EditorOption("--mode"), "an option named '--mode'"),
    (EditorOption("two words"), "an option named 'two words'"),
])
def test_malformed_declarations_are_refused_at_registration(option, message):
    from anyv2v_core.plugins import Registry, PluginInfo, _make_register

    register = _make_register(Registry(), "editor", PluginInfo("p", "anyv2v-p", "1"))
    with pytest.raises(InputError) as info:
        register("p", "mod:Cls", options=[option])
    assert message in str(info.value)


CHOICE = TINT.replace('EditorOption("alpha", "float", default=0.5)',
                      'EditorOption("alpha", "choice", "half", choices=("half", "full"))').replace(
    'request.options["alpha"]', '{"half": 0.5, "full": 1.0}[request.options["alpha"]]')


def test_choice_option_through_the_cli(plugin_site, tmp_path):
    plugin_site("anyv2v-editor-tint", "anyv2v_editor_tint_choice_mod", CHOICE, entry_name="tint")
    src = tmp_path / "frames"
    src.mkdir()
    synthetic_frames(1, 32, 32)[0].save(src / "0.png")
    r = CliRunner().invoke(app, ["editors", "tint"])
    assert r.exit_code == 0 and "choice: half | full" in r.output
    r = CliRunner().invoke(app, ["edit-frame", str(src), "--editor", "tint", "--color", "#00ff00", "--alpha", "full",
                                 "-o", str(tmp_path / "t.png")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "t.png").getpixel((3, 3)) == (0, 255, 0)
    r = CliRunner().invoke(app, ["edit-frame", str(src), "--editor", "tint", "--color", "#00ff00", "--alpha", "most",
                                 "-o", str(tmp_path / "u.png")])
    assert r.exit_code == 2 and "--alpha must be one of half, full, got 'most'" in r.output


CLASS_ONLY = """
from anyv2v_core import hookimpl
from anyv2v_core.protocols import EditorOption

class Mirror:
    name = "NAME"
    options = (EditorOption("axis", "choice", "x", choices=("x", "y")),)
    def __init__(self, device="cpu", dtype=None, model=None):
        pass
    def edit(self, first_frame, request):
        return first_frame

@hookimpl
def anyv2v_register_editors(register):
    register("NAME", REF)
"""


def _mirror(plugin_site, name, ref):
    source = CLASS_ONLY.replace("NAME", name).replace("REF", ref.replace("MOD", f"anyv2v_editor_{name}_mod"))
    plugin_site(f"anyv2v-editor-{name}", f"anyv2v_editor_{name}_mod", source, entry_name=name)


def test_options_declared_only_on_the_class_are_refused_loudly(plugin_site):
    """register(options=) is the one declaration; a class attribute that says otherwise is an
    error when the editor is loaded (not a silent "takes no options")."""
    from anyv2v_core.api import load_editor
    from anyv2v_core.errors import PluginError
    from anyv2v_core.plugins import build_registry

    _mirror(plugin_site, "mirror1", '"MOD:Mirror"')
    with pytest.raises(PluginError, match=r"its class declares options \(--axis\) that differ from those registered "
                                          r"\(none\); declare them once, in register\(..., options=...\)"):
        load_editor("mirror1", device="cpu")
    # a class registered directly carries its declarations: nothing to repeat
    _mirror(plugin_site, "mirror2", "Mirror")
    assert [o.flag for o in build_registry().editor("mirror2").options] == ["--axis"]
    # ... and given both ways, they must agree
    _mirror(plugin_site, "mirror3", "Mirror, options=[]")
    reg = build_registry()
    assert "mirror3" not in reg.editors and any("differ from those registered" in f.error for f in reg.failures)
