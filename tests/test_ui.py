"""The web UI without a browser: the page built from the registry, the callbacks' results
and their one-line errors, the `anyv2v ui` command's checks (no video model needed; the
runs on the toy backbone and the browser test are in test_ui_run.py)."""

import sys
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app, parse_models
from anyv2v_core.testing.tiny import synthetic_frames
from anyv2v_core.ui.app import EXAMPLE, Callbacks, OptionField, build_app
from anyv2v_core.ui.engine import Engine, EngineSettings, Job, JobCancelled, _Kept

PLUGIN = """
from anyv2v_core import hookimpl
from anyv2v_core.protocols import BackboneDefaults, EditorOption


class Backbone:
    name = "fakebb"
    defaults = BackboneDefaults(n_frames=4, width=32, height=24, fps=5, inversion_steps=7, steps=6, cfg=2.5,
                                t_idx=1, tau_conv=0.1, tau_sa=0.3, tau_ta=0.4, negative_prompt="ugly")


@hookimpl
def anyv2v_register_editors(register):
    register("opted", "nowhere:Editor", description="An editor with options.", options=[
        EditorOption("strength", "float", default=0.5, help="how strong"),
        EditorOption("style-image", "path", required=True),
        EditorOption("count", "int", default=3),
        EditorOption("fast", "bool"),
        EditorOption("rate", "float"),
        EditorOption("pool", "choice", "avg", choices=("max", "avg")),
    ])


@hookimpl
def anyv2v_register_backbones(register):
    register("fakebb", "anyv2v_fake_ui_mod:Backbone", options=[EditorOption("frame-stride", "int", default=2)])
"""


@pytest.fixture
def registry(plugin_site):
    plugin_site("anyv2v-fake-ui", "anyv2v_fake_ui_mod", PLUGIN, entry_name="fakeui")


@pytest.fixture
def clip(tmp_path):
    frames = synthetic_frames(4, 48, 32, seed=2)
    video.write_video(frames, tmp_path / "clip.mp4", fps=4)
    edited = tmp_path / "edited.png"
    synthetic_frames(1, 48, 32, seed=5)[0].save(edited)
    return tmp_path / "clip.mp4", edited


def calls(tmp_path, fields=None):
    return Callbacks(Engine(EngineSettings(out_dir=tmp_path / "out", device="cpu", dtype="float32")), fields)


def props(demo):
    return {c["props"]["elem_id"]: c for c in demo.config["components"] if c["props"].get("elem_id")}


def test_page_is_built_from_the_registry(registry, tmp_path):
    demo = build_app(EngineSettings(out_dir=tmp_path), backbone="fakebb", editor="opted")
    by_id = props(demo)
    # every declared option is a field of the matching kind, shown only with its plugin
    assert by_id["editor-opted-strength"]["type"] == "number"
    assert by_id["editor-opted-strength"]["props"]["value"] == 0.5
    assert by_id["editor-opted-style-image"]["type"] == "file"
    assert by_id["editor-opted-fast"]["type"] == "checkbox"
    assert by_id["editor-opted-rate"]["type"] == "textbox"  # no default: blank means the plugin's default
    assert by_id["editor-opted-rate"]["props"]["value"] == ""
    assert by_id["editor-opted-pool"]["type"] == "dropdown" and by_id["editor-opted-pool"]["props"]["value"] == "avg"
    assert [c[0] for c in by_id["editor-opted-pool"]["props"]["choices"]] == ["max", "avg"]
    assert by_id["backbone-fakebb-frame-stride"]["props"]["value"] == 2
    assert by_id["editor-image-upload"]["type"] == "image"
    editors = by_id["editor"]["props"]["choices"]
    assert {c[0] for c in editors} >= {"image", "opted"}
    # the stage-2 fields start at the selected backbone's reference settings
    assert by_id["opt-steps"]["props"]["value"] == 6
    assert by_id["opt-cfg"]["props"]["value"] == 2.5
    assert by_id["opt-negative_prompt"]["props"]["value"] == "ugly"
    assert by_id["opt-size"]["props"]["value"] == "32x24"
    assert by_id["opt-sampler"]["props"]["value"] == "ddim"
    # one job at a time: the two model-running events share one queue slot
    deps = [d for d in demo.config["dependencies"] if d["api_name"] in {"do_edit", "do_generate"}]
    assert len(deps) == 2
    # the Stop button bypasses the queue: it must run while its session's job holds the slot
    stop = [d for d in demo.config["dependencies"] if d["api_name"] == "do_stop"]
    assert len(stop) == 1 and stop[0]["queue"] is False
    assert EXAMPLE.is_file() and video.read_frames(EXAMPLE, 2)


def test_option_values_are_routed_to_their_plugin(tmp_path):
    fields = [OptionField("editor", "opted", "strength", "float"), OptionField("editor", "opted", "count", "int"),
              OptionField("editor", "other", "x", "str"), OptionField("backbone", "fakebb", "frame_stride", "int"),
              OptionField("editor", "opted", "style_image", "path")]
    c = calls(tmp_path, fields)
    values = [0.7, 4.0, "ignored", 3.0, None]
    assert c.options_of("editor", "opted", values) == {"strength": 0.7, "count": 4}
    assert c.options_of("backbone", "fakebb", values) == {"frame_stride": 3}
    assert c.options_of("editor", "opted", [None, "", "", None, "/x/style.png"]) == {"style_image": "/x/style.png"}


def test_first_frame_and_image_editor(tmp_path, clip):
    source, edited = clip
    c = calls(tmp_path)
    first = c.show_first_frame(str(source))
    assert first.size == (48, 32)
    assert c.show_first_frame(None) is None
    out = c.edit_frame(str(source), "image", "p", 1, str(edited), [])
    assert out.tobytes() == Image.open(edited).convert("RGB").tobytes()
    assert c.engine.loads == [("editor", "image", None)]
    c.edit_frame(str(source), "image", "p", 1, str(edited), [])
    assert c.engine.loads == [("editor", "image", None)]  # kept, not reloaded


@pytest.mark.parametrize("call, expected", [
    (lambda c, s, e: c.edit_frame(None, "image", "", 1, str(e), []), "upload a video first"),
    (lambda c, s, e: c.edit_frame(str(s), "image", "", 1, None, []), "needs --edited-frame"),
    (lambda c, s, e: c.edit_frame(str(s), "nope", "", 1, None, []), "nope"),
    (lambda c, s, e: c.show_first_frame(str(e.parent / "missing.mp4")), "missing.mp4"),
    (lambda c, s, e: c.generate(None, None, "p", "i2vgenxl", "", {}, []), "upload a video first"),
    (lambda c, s, e: c.generate(str(s), None, "p", "i2vgenxl", "", {}, []), "edit the first frame first"),
    (lambda c, s, e: c.generate(str(s), str(e), " ", "i2vgenxl", "", {}, []), "write a prompt"),
    (lambda c, s, e: c.generate(str(s), str(e), "p", "i2vgenxl", "", {"size": "64"}, []), "size must be \"WxH\""),
    (lambda c, s, e: c.generate(str(s), str(e), "p", "i2vgenxl", "", {"tau_sa": 1.5}, []),
     "tau_sa must be a number in [0, 1], got 1.5"),
    (lambda c, s, e: c.generate(str(s), str(e), "p", "nope", "", {}, []), "nope"),
])
def test_errors_are_one_readable_line(tmp_path, clip, call, expected):
    source, edited = clip
    with pytest.raises(gr.Error) as info:
        call(calls(tmp_path), source, edited)
    message = info.value.message
    assert expected in message and "\n" not in message and "Traceback" not in message


def test_corrupt_video_is_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(gr.Error) as info:
        calls(tmp_path).show_first_frame(str(bad))
    assert "bad.mp4" in info.value.message and "\n" not in info.value.message


def test_stop_before_the_models_are_free_runs_nothing(tmp_path, clip):
    source, edited = clip
    engine = Engine(EngineSettings(out_dir=tmp_path / "out", device="cpu", dtype="float32"))
    job = Job()
    job.cancel()  # stopped while waiting in the queue
    with pytest.raises(JobCancelled):
        engine.generate(str(source), Image.open(edited), "p", backbone="i2vgenxl", job=job)
    with pytest.raises(JobCancelled):
        engine.edit_frame(str(source), "image", {}, edited_frame=edited, job=job)
    assert engine.loads == [] and not list((tmp_path / "out").glob("*.mp4"))


def test_stop_is_per_session(tmp_path):
    c = calls(tmp_path)
    assert c.stop("a") == "Nothing to stop."
    mine, theirs = c._job("a"), c._job("b")
    assert c.stop("a").startswith("Stopping")
    assert mine.cancelled and not theirs.cancelled
    c._done("a", mine)
    assert c.stop("a") == "Nothing to stop." and "b" in c.jobs


def test_a_job_checks_for_a_stop_at_every_step():
    job, seen = Job(), []
    report = job.watch(lambda *step: seen.append(step))
    report("invert", 1, 4)
    job.cancel()
    with pytest.raises(JobCancelled):
        report("invert", 2, 4)
    assert seen == [("invert", 1, 4)] and job.at == ("invert", 1, 4)


def test_kept_models_are_least_recently_used(tmp_path):
    kept = _Kept(2)
    loads = []
    for key in ["a", "b", "a", "c", "a", "b"]:
        kept.get(key, lambda key=key: loads.append(key) or key.upper())
    assert loads == ["a", "b", "c", "b"]  # c evicted b (a was used more recently), then b evicted c
    assert list(kept.items) == ["a", "b"]


def test_parse_models():
    assert parse_models(["/m/tiny"], "i2vgenxl") == {"i2vgenxl": ["/m/tiny"]}
    assert parse_models(["seine=/m/s", "org/repo", "i2vgenxl=/m/b", "/m/b"], "i2vgenxl") == {
        "seine": ["/m/s"], "i2vgenxl": ["org/repo", "/m/b"]}


def test_only_the_offered_weights_are_accepted(tmp_path, clip):
    source, edited = clip
    engine = Engine(EngineSettings(out_dir=tmp_path / "out", models={"i2vgenxl": ["/m/a", "/m/b"]}))
    assert engine.offered("i2vgenxl") == ["/m/a", "/m/b"] and engine.offered("seine") == [None]
    assert engine.model_for("i2vgenxl", "") == "/m/a" and engine.model_for("i2vgenxl", " /m/b ") == "/m/b"
    assert engine.model_for("seine", None) is None
    # the check is the engine's: a request naming other weights (a probe of the server's
    # folders) is refused in one line, before anything is read or loaded
    for backbone, model in [("i2vgenxl", "/etc"), ("seine", "/m/a"), ("i2vgenxl", "org/other")]:
        with pytest.raises(gr.Error) as info:
            Callbacks(engine).generate(str(source), str(edited), "p", backbone, model, {}, [])
        message = info.value.message
        assert f"weights {model!r} are not offered for {backbone} by this server" in message, message
        assert "--allow-any-model" in message and "\n" not in message
    assert engine.loads == [] and not (tmp_path / "out").exists()
    free = Engine(EngineSettings(out_dir=tmp_path / "out", models={"i2vgenxl": "/m/a"}, allow_any_model=True))
    assert free.model_for("i2vgenxl", "/etc") == "/etc" and free.model_for("i2vgenxl", "") == "/m/a"


def test_weights_field_lists_the_offered_models(tmp_path):
    demo = build_app(EngineSettings(out_dir=tmp_path, models={"seine": ["/m/a", "/m/b"]}), backbone="seine")
    field = props(demo)["model"]
    assert field["type"] == "dropdown" and field["props"]["value"] == "/m/a"
    assert [c[1] for c in field["props"]["choices"]] == ["/m/a", "/m/b"]
    assert field["props"]["allow_custom_value"] is False
    demo = build_app(EngineSettings(out_dir=tmp_path), backbone="seine")
    assert props(demo)["model"]["props"]["choices"] == [("the backbone's default weights", "")]
    demo = build_app(EngineSettings(out_dir=tmp_path, models={"seine": "/m/a"}, allow_any_model=True), backbone="seine")
    assert props(demo)["model"]["type"] == "textbox" and props(demo)["model"]["props"]["value"] == "/m/a"


def test_each_session_has_its_own_unguessable_output_folder(tmp_path):
    engine = Engine(EngineSettings(out_dir=tmp_path / "out"))
    mine, theirs = engine.output_dir("session-a"), engine.output_dir("session-b")
    assert mine != theirs and mine.parent == theirs.parent == tmp_path / "out"
    assert engine.output_dir("session-a") == mine  # kept for the session
    assert "session" not in mine.name and len(mine.name) >= 20  # random (secrets), not derived from the id
    other = Engine(EngineSettings(out_dir=tmp_path / "out")).output_dir("session-a")
    assert other != mine  # not derivable from the session id either
    assert engine.output_dir(None) == tmp_path / "out"  # a library caller: the folder itself


@pytest.mark.parametrize("args, expected", [
    (["--backbone", "nope"], "nope"),
    (["--editor", "nope"], "nope"),
    (["--max-pipelines", "0"], "--max-pipelines must be at least 1"),
    (["--model", "nope=/x"], "nope"),
    (["--model", "toy="], "give a folder or hub id"),
])
def test_ui_command_checks_before_serving(args, expected):
    result = CliRunner().invoke(app, ["ui", *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_ui_command_on_a_busy_port_is_one_line_error():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["ui", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"cannot serve on 127.0.0.1:{port}" in result.output and "choose another --port" in result.output


def test_ui_command_without_gradio_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    result = CliRunner().invoke(app, ["ui"])
    assert result.exit_code == 2
    assert 'pip install "anyv2v[ui]"' in result.output


def test_example_is_packaged():
    assert Path(EXAMPLE).parent.name == "assets"
    assert len(video.read_frames(EXAMPLE, None)) == 16
