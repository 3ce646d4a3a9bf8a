"""`anyv2v edit --editor nst` and `anyv2v edit-frame --editor nst`, end to end."""

import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app

FAST = ["--num-frames", "8", "--size", "64x64", "--steps", "10", "--inversion-steps", "20", "--device", "cpu"]
NST = ["--iterations", "5", "--editor-size", "48"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_edit_frame_writes_stylised_frame(clip_files, style_image, tmp_path):
    out = tmp_path / "frame.png"
    result = run("edit-frame", clip_files / "source.mp4", "--editor", "nst", "--style-image", style_image, *NST, "-o", out)
    assert result.exit_code == 0, result.output
    edited = video.load_image(out)
    source = video.read_frames(clip_files / "source.mp4", 1)[0]
    assert edited.size == source.size
    assert np.abs(np.asarray(edited, dtype=int) - np.asarray(source, dtype=int)).mean() > 2
    again = tmp_path / "again.png"
    assert run("edit-frame", clip_files / "source.mp4", "--editor", "nst", "--style-image", style_image, *NST,
               "-o", again).exit_code == 0
    assert np.array_equal(np.asarray(video.load_image(again)), np.asarray(edited))


def test_edit_with_a_backbone_writes_video(toy_model, clip_files, style_image, tmp_path):
    out = tmp_path / "styled.mp4"
    result = run("edit", clip_files / "frames", "--editor", "nst", "--style-image", style_image, *NST,
                 "--prompt", "a painting", "--backbone", "toy", "--model", toy_model, "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    frames = video.read_frames(out)
    assert len(frames) == 8 and frames[0].size == (64, 64)


def test_editors_command_lists_options(monkeypatch):
    from anyv2v_core import console

    monkeypatch.setattr(console.out, "width", 200)  # at 80 columns rich truncates the table
    result = run("editors", "nst")
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())  # the table may wrap in the test terminal
    for flag in ("--style-image", "--style-weight", "--content-weight", "--iterations", "--editor-size", "--optimizer"):
        assert flag in text
    assert "(required)" in result.output


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "needs --style-image"),
        (["--style-image", "/nonexistent/starry.jpg"], "file not found: /nonexistent/starry.jpg"),
        (["--style-image", "BAD"], "cannot read image"),
        (["--style-image", "STYLE", "--optimizer", "sgd"], "--optimizer must be one of"),
        (["--style-image", "STYLE", "--iterations", "x"], "--iterations expects int"),
        (["--style-image", "STYLE", "--colour", "red"], "unknown option '--colour'"),
    ],
)
def test_bad_input_is_one_line_exit_2(clip_files, style_image, tmp_path, extra, message):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00garbage")
    extra = [str(bad) if a == "BAD" else str(style_image) if a == "STYLE" else a for a in extra]
    out = tmp_path / "frame.png"
    result = run("edit-frame", clip_files / "source.mp4", "--editor", "nst", *extra, "-o", out)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_weights_is_one_line_exit_2(clip_files, style_image, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    result = run("edit-frame", clip_files / "source.mp4", "--editor", "nst", "--style-image", style_image, *NST,
                 "-o", tmp_path / "f.png")
    assert result.exit_code == 2, result.output
    assert "vgg19-dcbb9e9d.pth" in result.output and str(tmp_path / "empty" / "hub" / "checkpoints") in result.output


def test_convert_weights_command(torch_home, tmp_path):
    """The plugin's own subcommand, through the real console entry (plugin commands hook)."""
    src = torch_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    dst = tmp_path / "vgg19.safetensors"
    env = {**os.environ, "TORCH_HOME": str(torch_home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "nst-convert-weights", str(src), "--out", str(dst)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert dst.is_file() and "wrote" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "nst-convert-weights", str(tmp_path / "no.pth")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "no.pth not found" in proc.stderr


def test_options_do_not_shadow_core_options():
    """`edit`/`edit-frame` parse their own options first: an editor option with the same
    flag (e.g. --steps, --size) would never reach the editor."""
    import typer.main

    from anyv2v_core.plugins import get_registry

    command = typer.main.get_command(app)
    ctx = command.make_context("anyv2v", ["plugins"])
    core = {opt for name in ("edit", "edit-frame") for p in command.get_command(ctx, name).params for opt in p.opts}
    flags = {o.flag for o in get_registry().editor("nst").options}
    assert flags and not flags & core


def test_entry_point_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, anyv2v_editor_nst.plugin; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
