"""One declaration per run setting: the CLI, the library API, batch manifests and the web UI
derive their options and checks from ``anyv2v_core.settings`` and give the same one-line
message for the same bad value, before any model is loaded."""

from __future__ import annotations

import json

import pytest
import typer.main
from typer.testing import CliRunner

from anyv2v_core import api, settings
from anyv2v_core.batch import FIELDS, parse_manifest
from anyv2v_core.cli import app
from anyv2v_core.errors import InputError
from anyv2v_core.protocols import EditOptions, InversionOptions, MemoryOptions
from anyv2v_core.testing.tiny import synthetic_frames

#: (setting, bad value as typed on the command line, as given in Python/JSON, the message)
BAD = [
    ("steps", "0", 0, "steps must be an integer >= 1, got 0"),
    ("inversion_steps", "0", 0, "inversion_steps must be an integer >= 1, got 0"),
    ("tau_sa", "1.5", 1.5, "tau_sa must be a number in [0, 1], got 1.5"),
    ("fps", "0", 0, "fps must be an integer >= 1, got 0"),
    ("cfg", "nan", float("nan"), "cfg must be a number >= 0, got nan"),
    ("num_frames", "1", 1, "num_frames must be an integer >= 2, got 1"),
    ("size", "63x64", "63x64", "size must be \"WxH\", positive multiples of 8, got '63x64'"),
    ("random_ratio", "-0.1", -0.1, "random_ratio must be a number in [0, 1], got -0.1"),
]
MISSING_MODEL = "no-such-model-folder-anywhere"


@pytest.fixture
def clip(tmp_path):
    from anyv2v_core import video

    source = video.write_frames_dir(synthetic_frames(4, 32, 32), tmp_path / "src")
    edited = tmp_path / "edited.png"
    synthetic_frames(1, 32, 32, seed=3)[0].save(edited)
    return source, edited


@pytest.mark.parametrize("name, typed, value, message", BAD, ids=[b[0] for b in BAD])
def test_same_message_from_cli_api_manifest_and_ui(tmp_path, clip, name, typed, value, message):
    source, edited = clip
    out = tmp_path / "out.mp4"
    # the CLI: one line, exit 2, nothing written; the model (a folder that does not exist) never loads
    flag = settings.get(name).cli_flag
    r = CliRunner().invoke(app, ["edit", str(source), "-e", str(edited), "-p", "x", "--model", MISSING_MODEL,
                                 "-o", str(out), flag, typed])
    assert r.exit_code == 2, r.output
    assert r.output.strip() == f"Error: {message}"
    assert not out.exists()
    # the library API
    with pytest.raises(InputError) as info:
        api.edit(source, prompt="x", edited_frame=edited, model=MISSING_MODEL, out=out, **{name: value})
    assert str(info.value) == message
    # a manifest item
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "a", "source": str(source), "prompt": "x", "edited_frame": str(edited),
                                    name: value}) + "\n")
    with pytest.raises(InputError) as info:
        parse_manifest(manifest, tmp_path / "batch")
    assert str(info.value) == f"{manifest}:1: {message}"
    # the web UI's engine (the page turns this InputError into its one-line message)
    if name in {s.name for s in settings.for_place("page")}:
        from anyv2v_core.ui.engine import Engine, EngineSettings

        engine = Engine(EngineSettings(out_dir=tmp_path / "ui", cache=False))
        with pytest.raises(InputError) as info:
            engine.generate(str(source), synthetic_frames(1, 32, 32)[0], "x", backbone="i2vgenxl",
                            model=MISSING_MODEL, settings={name: value})
        assert str(info.value) == message
        assert not engine.loads
    assert not out.exists()


def test_options_objects_check_their_fields():
    with pytest.raises(InputError, match="tau_conv must be a number in"):
        EditOptions(tau_conv=2)
    with pytest.raises(InputError, match="inversion_steps must be an integer >= 1"):
        InversionOptions(steps=0)
    with pytest.raises(InputError, match="vae_chunk must be an integer >= 1"):
        MemoryOptions(vae_chunk=0)
    assert EditOptions(cfg=9).cfg == 9.0


def test_t_idx_beyond_the_schedule_is_refused_before_loading(tmp_path, clip):
    source, edited = clip
    r = CliRunner().invoke(app, ["edit", str(source), "-e", str(edited), "-p", "x", "--model", MISSING_MODEL,
                                 "--steps", "10", "--t-idx", "10", "-o", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and "t_idx must be below steps (10), got 10" in r.output


def test_the_cli_takes_exactly_the_declared_settings():
    group = typer.main.get_command(app)
    for command in ("edit", "invert", "edit-frame", "batch", "ui", "eval"):
        flags = {o for p in group.commands[command].params for o in [*p.opts, *p.secondary_opts]}
        for s in settings.for_place(command):
            assert set(s.cli_flags) <= flags, (command, s.name)
        undeclared = {s.cli_flag for s in settings.SETTINGS} - {f for s in settings.for_place(command)
                                                                for f in s.cli_flags}
        assert not undeclared & flags, (command, undeclared & flags)


def test_manifest_keys_ui_fields_and_reserved_flags_derive_from_the_schema():
    from anyv2v_core.ui.app import sampling_fields

    assert {s.name for s in settings.for_place("manifest")} <= set(FIELDS)
    assert [f.name for f in sampling_fields()] == [s.name for s in settings.for_place("page")]
    # an editor/backbone option may reuse no flag of edit / invert / edit-frame, and nothing else is reserved
    group = typer.main.get_command(app)
    used = {o for c in ("edit", "invert", "edit-frame") for p in group.commands[c].params
            for o in [*p.opts, *p.secondary_opts] if o.startswith("-")}
    assert used <= settings.RESERVED_FLAGS
    assert settings.COMMAND_FLAGS - {"--help"} <= used


def test_one_seed_default():
    from anyv2v_core.protocols import EditRequest

    assert EditRequest().seed == InversionOptions().seed == settings.DEFAULT_SEED
    assert not hasattr(EditOptions(), "seed")


def test_fast_preset_inverts_on_the_edit_grid():
    from anyv2v_core.protocols import BackboneDefaults

    d = BackboneDefaults(n_frames=4, width=32, height=32, fps=8, inversion_steps=500, steps=50, cfg=9.0, t_idx=1,
                         tau_conv=0.2, tau_sa=0.2, tau_ta=0.5)
    assert settings.collect({"preset": "fast"}).inversion_steps(d) == 50
    assert settings.collect({"preset": "fast", "steps": 20}).inversion_steps(d) == 20
    assert settings.collect({"preset": "fast", "inversion_steps": 100}).inversion_steps(d) == 100
    assert settings.collect({}).inversion_steps(d) is None
    # and with the few-step solver on a DDIM backbone; an explicit solver wins; flow keeps its own
    from anyv2v_core.ddim_inversion import FAST_SOLVER

    assert settings.collect({"preset": "fast"}).inversion_solver(d) == FAST_SOLVER != "ddim"
    assert settings.collect({"preset": "fast", "inversion_solver": "ddim"}).inversion_solver(d) == "ddim"
    assert settings.collect({}).inversion_solver(d) is None
    flow = BackboneDefaults(**{**d.__dict__, "inversion_solver": "euler"})
    assert settings.collect({"preset": "fast"}).inversion_solver(flow) is None
    with pytest.raises(InputError, match="preset must be one of default, fast"):
        settings.collect({"preset": "quick"})


def test_broadcast_per_edit_values():
    specs = api.broadcast(["a", "b"], edited_frames=["x.png"], seeds=[1, 2], options={"k": ["u", "v"], "s": 3},
                          out="e.mp4")
    assert [s.prompt for s in specs] == ["a", "b"] and [s.request.seed for s in specs] == [1, 2]
    assert [s.request.options for s in specs] == [{"k": "u", "s": 3}, {"k": "v", "s": 3}]
    assert [str(s.out) for s in specs] == ["e-0.mp4", "e-1.mp4"]
    with pytest.raises(InputError, match="once or once per edit"):
        api.broadcast(["a", "b", "c"], seeds=[1, 2])


@pytest.mark.parametrize("case", ["out-in-a-file", "cache-dir-is-a-file", "frames-dir-under-a-file", "out-size-0x0"])
def test_bad_output_places_are_refused_before_any_compute(tmp_path, clip, case):
    source, edited = clip
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = ["edit", str(source), "-e", str(edited), "-p", "x", "--model", MISSING_MODEL]
    expected = {"out-in-a-file": "is a file, not a folder", "cache-dir-is-a-file": "--cache-dir",
                "frames-dir-under-a-file": "cannot be created", "out-size-0x0": "out_size must be"}[case]
    extra = {"out-in-a-file": ["-o", str(afile / "o.mp4")],
             "cache-dir-is-a-file": ["-o", str(tmp_path / "o.mp4"), "--cache-dir", str(afile)],
             "frames-dir-under-a-file": ["-o", str(tmp_path / "o.mp4"), "--frames-dir", str(afile / "sub")],
             "out-size-0x0": ["-o", str(tmp_path / "o.mp4"), "--out-size", "0x0"]}[case]
    r = CliRunner().invoke(app, args + extra)
    assert r.exit_code == 2 and expected in r.output and r.output.count("\n") == 1, r.output
    assert not (tmp_path / "o.mp4").exists()


def test_every_api_keyword_is_a_setting_or_an_input():
    """The library API takes the run settings by name (``**settings``) and nothing that
    shadows one: a keyword that is also a setting would swallow it."""
    import inspect

    for function in (api.edit, api.edit_many, api.invert):
        own = set(inspect.signature(function).parameters) - {"settings", "kwargs"}
        assert not own & set(settings.BY_NAME), (function.__name__, own & set(settings.BY_NAME))


@pytest.mark.parametrize("solver, family", [("midpoint", "ddim or heun or renoise"), ("nope", "ddim or heun or renoise")])
def test_an_unknown_inversion_solver_is_refused_before_the_model_loads(tmp_path, clip, solver, family):
    source, edited = clip
    out = tmp_path / "out.mp4"
    r = CliRunner().invoke(app, ["edit", str(source), "-e", str(edited), "-p", "x", "--model", MISSING_MODEL,
                                 "-o", str(out), "--inversion-solver", solver])
    assert r.exit_code == 2, r.output
    assert r.output.strip() == f"Error: backbone 'i2vgenxl' inverts with {family}, not '{solver}'"
    with pytest.raises(InputError, match=f"inverts with {family}, not '{solver}'"):
        api.invert(source, model=MISSING_MODEL, inversion_solver=solver)
    assert not out.exists()
