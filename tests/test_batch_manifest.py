"""`anyv2v batch` manifests: schema validation with line numbers, path resolution, the
results log and the resume rule (no model needed)."""

import json
import os

import pytest
from typer.testing import CliRunner


from anyv2v_core.batch import ResultsLog, is_done, parse_manifest
from anyv2v_core.cli import app
from anyv2v_core.errors import InputError


PLUGIN = """
from anyv2v_core import hookimpl
from anyv2v_core.protocols import EditorOption

@hookimpl
def anyv2v_register_editors(register):
    register("opted", "nowhere:Editor", options=[
        EditorOption("strength", "float", default=0.5),
        EditorOption("style-image", "path", required=True),
        EditorOption("steps-count", "int", default=3),
    ])

@hookimpl
def anyv2v_register_backbones(register):
    register("fakebb", "nowhere:Backbone", options=[EditorOption("frame-stride", "int", default=3)])
"""


@pytest.fixture
def registry(plugin_site):
    plugin_site("anyv2v-fake-batch", "anyv2v_fake_batch_mod", PLUGIN, entry_name="fakebatch")


def write(tmp_path, *lines, name="m.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


GOOD = {"id": "a", "source": "clips/a.mp4", "prompt": "p", "edited_frame": "a.png", "backbone": "fakebb"}


def error_of(tmp_path, *lines):
    with pytest.raises(InputError) as info:
        parse_manifest(write(tmp_path, *lines), tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_good_manifest_resolves_paths_and_defaults(registry, tmp_path):
    m = write(tmp_path, "# a comment", "", GOOD,
              {"id": "b", "source": "/abs/b", "prompt": "q", "editor": "opted", "backbone": "fakebb",
               "editor_options": {"style-image": "s.png", "strength": "0.25"}, "seed": 3, "out": "res/b.mp4",
               "steps": 10, "size": "64x32", "tau_ta": 0.3, "num_frames": 8, "inversion_steps": 20})
    a, b = parse_manifest(m, tmp_path / "out")
    assert (a.line, b.line) == (3, 4)
    assert a.source == tmp_path / "clips/a.mp4" and a.edited_frame == tmp_path / "a.png"
    assert a.out == (tmp_path / "out").resolve() / "a.mp4" and a.editor == "image" and a.seed == 8888
    assert str(b.source) == "/abs/b" and b.seed == 3
    assert b.out == tmp_path / "res/b.mp4"
    assert b.editor_options == {"strength": 0.25, "style_image": str(tmp_path / "s.png")}
    assert b.overrides == {"steps": 10, "size": "64x32", "tau_ta": 0.3, "num_frames": 8, "inversion_steps": 20}
    assert b.group == ("fakebb", None, ())


def test_frame_selection_long_and_backbone_options(registry, tmp_path):
    m = write(tmp_path, {**GOOD, "start": "1.5s", "end": 40, "stride": 2, "resize_mode": "crop", "out_size": "source",
                         "long": True, "overlap": 2, "audio": False, "backbone_options": {"frame-stride": "5"}})
    (a,) = parse_manifest(m, tmp_path / "out")
    assert a.overrides == {"start": "1.5s", "end": 40, "stride": 2, "resize_mode": "crop", "out_size": "source",
                           "long": True, "overlap": 2, "audio": False}
    assert a.backbone_options == {"frame_stride": 5}
    assert a.group == ("fakebb", None, (("frame_stride", 5),))  # another backbone instance than the default's


@pytest.mark.parametrize("line, expected", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({**GOOD, "colour": 1}, "unknown key(s) colour"),
    ({k: v for k, v in GOOD.items() if k != "prompt"}, "missing required key 'prompt'"),
    ({**GOOD, "id": "a/b"}, "id must be a string"),
    ({**GOOD, "id": 7}, "id must be a string"),
    ({**GOOD, "seed": "x"}, "seed must be an integer"),
    ({**GOOD, "seed": True}, "seed must be an integer"),
    ({**GOOD, "steps": 0}, "steps must be an integer >= 1, got 0"),
    ({**GOOD, "steps": 2.5}, "steps must be an integer >= 1, got 2.5"),
    ({**GOOD, "tau_sa": 1.5}, "tau_sa must be a number in [0, 1]"),
    ({**GOOD, "size": "big"}, 'size must be "WxH", positive multiples of 8, got \'big\''),
    ({**GOOD, "num_frames": 1}, "num_frames must be an integer >= 2, got 1"),
    ({**GOOD, "backbone": "nope"}, "unknown backbone 'nope'"),
    ({**GOOD, "start": "soon"}, "start must be a frame index (12) or a time (\"1.5s\"), got 'soon'"),
    ({**GOOD, "end": -3}, "end must be a frame index (12) or a time (\"1.5s\"), got -3"),
    ({**GOOD, "stride": 0}, "stride must be an integer >= 1, got 0"),
    ({**GOOD, "resize_mode": "zoom"}, "resize_mode must be one of stretch, crop, pad"),
    ({**GOOD, "out_size": "big"}, 'out_size must be "WxH", positive multiples of 8, or "source"'),
    ({**GOOD, "long": "yes"}, "long must be true or false"),
    ({**GOOD, "audio": 1}, "audio must be true or false"),
    ({**GOOD, "backbone_options": {"window": 2}}, "backbone 'fakebb' has no option(s) window (its options: frame_stride)"),
    ({**GOOD, "backbone_options": {"frame_stride": "x"}}, "expects int"),
    ({**GOOD, "backbone_options": [1]}, "backbone_options must be an object"),
    ({**GOOD, "editor": "nope"}, "unknown editor 'nope'"),
    ({k: v for k, v in GOOD.items() if k != "edited_frame"}, 'editor "image" needs edited_frame'),
    ({**GOOD, "editor": "opted", "editor_options": {"style_image": "s.png"}}, "edited_frame is for editor"),
    ({**GOOD, "editor": "opted", "edited_frame": None, "editor_options": {"colour": 1, "style_image": "s"}},
     "has no option(s) colour"),
    ({**GOOD, "editor": "opted", "edited_frame": None, "editor_options": {}}, "needs option style_image"),
    ({**GOOD, "editor": "opted", "edited_frame": None, "editor_options": {"style_image": "s", "strength": "lots"}},
     "--strength expects float"),
    ({**GOOD, "editor_options": [1]}, "editor_options must be an object"),
    ({**GOOD, "prompt": 5}, "prompt must be a string"),
])
def test_bad_line_is_one_line_error_with_line_number(registry, tmp_path, line, expected):
    message = error_of(tmp_path, {**GOOD, "id": "first"}, line)
    assert message.startswith(f"{tmp_path / 'm.jsonl'}:2: "), message
    assert expected in message, message


def test_duplicate_ids_and_outputs(registry, tmp_path):
    message = error_of(tmp_path, GOOD, "", {**GOOD, "out": "x.mp4"})
    assert ":3: duplicate id 'a' (first on line 1)" in message
    message = error_of(tmp_path, {**GOOD, "out": "o.mp4"}, {**GOOD, "id": "b", "out": "o.mp4"})
    assert ":2: output" in message and "also written by line 1" in message


def test_empty_and_missing_manifest(registry, tmp_path):
    assert "has no items" in error_of(tmp_path, "# only a comment")
    with pytest.raises(InputError, match="manifest not found"):
        parse_manifest(tmp_path / "nope.jsonl", tmp_path)


def test_batch_cli_reports_bad_manifest_with_exit_2(registry, tmp_path):
    m = write(tmp_path, GOOD, {**GOOD, "id": "b", "cfg": "high"})
    r = CliRunner().invoke(app, ["batch", str(m), "--device", "cpu"])
    assert r.exit_code == 2
    assert "m.jsonl:2: cfg must be a number" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "m-out").exists()


YAML = """\
# jobs.yaml: the same items as JSONL
items:
  - id: a
    source: clips/a.mp4
    prompt: p
    edited_frame: a.png
    backbone: fakebb
    seed: 3
  - {id: b, source: clips/b.mp4, prompt: q, edited_frame: b.png, backbone: fakebb, cfg: 7.5}
"""


def test_yaml_manifest_equals_jsonl(registry, tmp_path):
    (tmp_path / "jobs.yaml").write_text(YAML)
    jsonl = write(tmp_path, {**GOOD, "seed": 3},
                  {"id": "b", "source": "clips/b.mp4", "prompt": "q", "edited_frame": "b.png", "backbone": "fakebb",
                   "cfg": 7.5})
    from_yaml = parse_manifest(tmp_path / "jobs.yaml", tmp_path / "out")
    from_jsonl = parse_manifest(jsonl, tmp_path / "out")
    assert [i.line for i in from_yaml] == [3, 9]  # where each item starts
    for a, b in zip(from_yaml, from_jsonl):
        a.line = b.line
        assert a == b
    # a bare top-level list works too
    (tmp_path / "list.yml").write_text("- {id: a, source: clips/a.mp4, prompt: p, edited_frame: a.png, backbone: fakebb}\n")
    assert [i.id for i in parse_manifest(tmp_path / "list.yml", tmp_path / "out")] == ["a"]


@pytest.mark.parametrize("text, expected", [
    ("items:\n  - id: a\n    source: [x\n", ":4: invalid YAML (expected ',' or ']'"),
    ("jobs:\n  - id: a\n", ":1: a YAML manifest is a list of items (or a mapping with just 'items:')"),
    ("items: 5\n", ":1: a YAML manifest is a list of items"),
    ("- id: a\n  source: s.mp4\n  prompt: p\n  edited_frame: e.png\n  backbone: fakebb\n- {id: 7, source: s, prompt: p}\n",
     ":6: id must be"),
    ("- id: a\n  source: s.mp4\n  prompt: p\n  edited_frame: e.png\n  backbone: fakebb\n  tau_sa: 1.5\n",
     ":1: tau_sa must be a number in [0, 1], got 1.5"),
    ("# nothing\n", "has no items"),
])
def test_bad_yaml_is_one_line_error_with_line_number(registry, tmp_path, text, expected):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        parse_manifest(path, tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and expected in message, message


def test_parse_size():
    from anyv2v_core.video import parse_size

    assert parse_size("64x32") == (64, 32) and parse_size(" 8 X 16 ") == (8, 16) and parse_size(None) is None
    with pytest.raises(InputError, match=r"^--out-size must look like 512x512 \(width x height\), got '64'$"):
        parse_size("64", "--out-size")


def test_results_log_latest_and_torn_line(tmp_path):
    log = ResultsLog(tmp_path / "results.jsonl")
    log.append({"id": "a", "status": "failed"})
    log.append({"id": "b", "status": "ok"})
    with open(log.path, "ab") as fh:  # a crash in the middle of a write
        fh.write(b'{"id": "c", "sta')
    log.append({"id": "a", "status": "ok"})
    latest = log.latest()
    assert latest["a"]["status"] == "ok" and latest["b"]["status"] == "ok" and "c" not in latest
    assert len(log.records()) == 3
    assert log.path.read_text().endswith('"ok"}\n')


def test_is_done_needs_ok_and_the_output(registry, tmp_path):
    (item,) = parse_manifest(write(tmp_path, GOOD), tmp_path / "out")
    latest = {"a": {"id": "a", "status": "ok", "out": str(item.out)}}
    assert not is_done(item, latest)  # output missing
    item.out.parent.mkdir(parents=True)
    item.out.write_bytes(b"x")
    assert is_done(item, latest)
    assert not is_done(item, {"a": {**latest["a"], "status": "failed"}})
    assert not is_done(item, {"a": {**latest["a"], "out": os.fspath(tmp_path / "elsewhere.mp4")}})
    assert not is_done(item, {})


def test_ctrl_c_stops_cleanly_and_resume_continues(registry, tmp_path, monkeypatch):
    """Run-loop behaviour with the backbone and the edit stubbed (the real edit is tested
    on the tiny I2VGen-XL in that plugin): Ctrl-C exits 130 with no record of the
    interrupted item; a re-run skips the done item and runs the rest."""
    from types import SimpleNamespace

    from anyv2v_core import api

    (tmp_path / "a.png").write_bytes(b"")
    m = write(tmp_path, GOOD, {**GOOD, "id": "b"}, {**GOOD, "id": "c", "source": "nothing-here"})
    loads, calls = [], []
    monkeypatch.setattr(api, "load_backbone", lambda *a, **k: loads.append(a) or object())
    monkeypatch.setattr(api, "prepare_request", lambda editor, request: request)

    def fake_edit(source, *, out, backbone, **kwargs):
        calls.append(out.name)
        if out.name == "b.mp4" and len(calls) == 2:
            raise KeyboardInterrupt
        if "nothing-here" in str(source):
            raise InputError(f"source not found: {source}")
        out.write_bytes(b"video")
        return SimpleNamespace(inversion_reused=False, timings={"edit": 1.0})

    monkeypatch.setattr(api, "edit", fake_edit)
    args = ["batch", str(m), "--device", "cpu", "--no-cache"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 130 and "Interrupted" in r.output and "resume" in r.output
    log = ResultsLog(tmp_path / "m-out" / "results.jsonl")
    assert [(x["id"], x["status"]) for x in log.records()] == [("a", "ok")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1, r.output
    assert "1 ok, 1 skipped (done before), 1 failed" in r.output and "failed c: source not found" in r.output
    assert calls == ["a.mp4", "b.mp4", "b.mp4", "c.mp4"] and len(loads) == 2
    assert [(x["id"], x["status"]) for x in log.records()] == [("a", "ok"), ("b", "ok"), ("c", "failed")]
