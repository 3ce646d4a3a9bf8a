"""`anyv2v edit --editor instructpix2pix` and `anyv2v edit-frame`, end to end."""

import numpy as np
import pytest
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app

FAST = ["--num-frames", "4", "--size", "64x48", "--steps", "10", "--inversion-steps", "20", "--device", "cpu"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def ip2p(model, *extra):
    return ["--editor", "instructpix2pix", "--instruction", "turn the square blue", "--editor-steps", "3",
            "--editor-model", model, *extra]


def test_edit_frame_writes_edited_frame(tiny_ip2p, clip_files, tmp_path):
    out = tmp_path / "frame.png"
    result = run("edit-frame", clip_files / "source.mp4", *ip2p(tiny_ip2p), "-o", out, "--seed", "3")
    assert result.exit_code == 0, result.output
    edited = video.load_image(out)
    assert edited.size == (64, 48)
    again = tmp_path / "again.png"
    assert run("edit-frame", clip_files / "source.mp4", *ip2p(tiny_ip2p), "-o", again, "--seed", "3").exit_code == 0
    assert np.array_equal(np.asarray(video.load_image(again)), np.asarray(edited))


def test_edit_with_a_backbone_writes_video(tiny_ip2p, toy_model, clip_files, tmp_path):
    out = tmp_path / "blue.mp4"
    result = run("edit", clip_files / "frames", *ip2p(tiny_ip2p), "--prompt", "a blue square", "--backbone", "toy",
                 "--model", toy_model, "--out", out, "--frames-dir", tmp_path / "frames", *FAST)
    assert result.exit_code == 0, result.output
    frames = video.read_frames(out)
    assert len(frames) == 4 and frames[0].size == (64, 48)


def test_editors_command_lists_options(monkeypatch):
    from anyv2v_core import console

    monkeypatch.setattr(console.out, "width", 200)  # at 80 columns rich truncates the table
    result = run("editors", "instructpix2pix")
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())  # the table may wrap in the test terminal
    for flag in ("--instruction", "--editor-steps", "--guidance-scale", "--image-guidance-scale", "--editor-model"):
        assert flag in text
    assert "timbrooks/instruct-pix2pix" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--editor", "instructpix2pix", "--editor-steps", "3"], "needs --instruction"),
        (["--editor", "instructpix2pix", "--instruction"], "--instruction needs a value"),
        (["--editor", "instructpix2pix", "--instruction", "x", "--editor-steps", "many"], "--editor-steps expects int"),
        (["--editor", "instructpix2pix", "--instruction", "x", "--editor-model", "NOPE"], "NOPE"),
        (["--editor", "instructpix2pix", "--instruction", "x", "--editor-model", "timbrooks/instruct-pix2pix"],
         "'timbrooks/instruct-pix2pix' are not available"),
        (["--editor", "instructpix2pix", "--instruction", "x"], "'timbrooks/instruct-pix2pix' are not available"),
        (["--editor", "instructpix2pix", "--instruction", "x"], "or pass --editor-model /path/to/local/folder"),
    ],
)
def test_bad_input_is_one_line_exit_2(clip_files, tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    args = [str(tmp_path / "no-model") if a == "NOPE" else a for a in args]
    message = message.replace("NOPE", str(tmp_path / "no-model"))
    out = tmp_path / "frame.png"
    result = run("edit-frame", clip_files / "source.mp4", *args, "-o", out)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_unreadable_source_is_exit_2(tiny_ip2p, tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"garbage")
    result = run("edit-frame", bad, *ip2p(tiny_ip2p), "-o", tmp_path / "f.png")
    assert result.exit_code == 2, result.output


def test_options_do_not_shadow_core_options():
    """`edit`/`edit-frame` parse their own options first: an editor option with the same
    flag (e.g. --steps, --size) would never reach the editor."""
    import typer.main

    from anyv2v_core.plugins import get_registry

    command = typer.main.get_command(app)
    ctx = command.make_context("anyv2v", ["plugins"])
    core = {opt for name in ("edit", "edit-frame") for p in command.get_command(ctx, name).params for opt in p.opts}
    flags = {o.flag for o in get_registry().editor("instructpix2pix").options}
    assert flags and not flags & core


def test_entry_point_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, anyv2v_editor_instructpix2pix.plugin; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
