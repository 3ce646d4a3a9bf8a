"""End-to-end `anyv2v` runs with --backbone wan on the tiny models, through the real
loading path: listing, edit (cache reuse, second-order solvers), invert + edit, errors."""

import numpy as np
import pytest
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app
from anyv2v_core.testing.tiny import write_clip_files

FAST = ["--backbone", "wan", "--num-frames", "9", "--size", "64x64", "--steps", "4", "--inversion-steps", "4",
        "--device", "cpu", "--cfg", "3"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    return write_clip_files(tmp_path_factory.mktemp("clip"), 9, 64, 64)


def edit(clip_files, model, tmp_path, name, *extra):
    d = tmp_path / name
    result = run("edit", clip_files / "frames", "--edited-frame", clip_files / "edited.png", "--prompt", "a snowy street",
                 "--model", model, "--out", tmp_path / f"{name}.mp4", "--frames-dir", d,
                 "--cache-dir", tmp_path / "cache", *FAST, *extra)
    assert result.exit_code == 0, result.output
    return np.stack([np.asarray(video.load_image(p)) for p in sorted(d.glob("*.png"))]).astype(int), result.output


def test_plugins_lists_wan():
    result = run("plugins")
    assert result.exit_code == 0 and "wan" in result.output


@pytest.mark.parametrize("family", ["wan2.1-i2v", "wan2.2-ti2v"])
def test_edit_end_to_end(family, request, clip_files, tmp_path):
    model = request.getfixturevalue("tiny_wan21" if family == "wan2.1-i2v" else "tiny_wan22")
    a, out_a = edit(clip_files, model, tmp_path, "a")
    assert a.shape == (9, 64, 64, 3)
    b, out_b = edit(clip_files, model, tmp_path, "b")  # the cached inversion is reused
    assert np.array_equal(a, b) and "inversion reused" in out_b
    off, _ = edit(clip_files, model, tmp_path, "off", "--tau-conv", "0", "--tau-ta", "0", "--tau-sa", "0")
    assert np.abs(a - off).max() > 0
    ff, out_ff = edit(clip_files, model, tmp_path, "ff", "--sampler", "fireflow", "--inversion-solver", "fireflow")
    assert "inversion reused" not in out_ff  # another solver, another cache entry


def test_invert_then_edit_and_errors(tiny_wan22, clip_files, tmp_path):
    inv = tmp_path / "inv.safetensors"
    result = run("invert", clip_files / "frames", "--out", inv, "--model", tiny_wan22, "--backbone", "wan",
                 "--num-frames", "9", "--size", "64x64", "--steps", "4", "--inversion-steps", "4",
                 "--inversion-solver", "midpoint", "--device", "cpu")
    assert result.exit_code == 0, result.output
    _, out = edit(clip_files, tiny_wan22, tmp_path, "reuse", "--inversion", inv, "--sampler", "midpoint")
    bad = run("edit", clip_files / "frames", "--edited-frame", clip_files / "edited.png", "--prompt", "x",
              "--model", tiny_wan22, "--out", tmp_path / "bad.mp4", "--no-cache",
              *[a if a != "9" else "8" for a in FAST])
    assert bad.exit_code == 2 and "4k+1" in bad.output
    bad = run("edit", clip_files / "frames", "--edited-frame", clip_files / "edited.png", "--prompt", "x",
              "--model", tiny_wan22, "--out", tmp_path / "bad.mp4", "--no-cache", *FAST, "--wan-attn-blocks", "99")
    assert bad.exit_code == 2 and "--wan-attn-blocks" in bad.output


def test_selftest_long_windows_and_batch(tiny_wan21, tmp_path):
    """`anyv2v selftest -b wan`, a --long edit of 17 frames in two 9-frame windows, and
    `anyv2v batch` with backbone wan, unchanged core code."""
    import json

    result = run("selftest", "--backbone", "wan")
    assert result.exit_code == 0 and "selftest passed" in result.output, result.output

    (tmp_path / "long").mkdir()
    clip = write_clip_files(tmp_path / "long", 17, 64, 64)
    out = tmp_path / "long.mp4"
    result = run("edit", clip / "source.mp4", "--edited-frame", clip / "edited.png", "--prompt", "snow",
                 "--model", tiny_wan21, "--out", out, "--long", "--no-cache", *FAST)
    assert result.exit_code == 0, result.output
    assert len(video.read_frames(out)) == 17

    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"id": "a", "source": str(clip / "source.mp4"), "prompt": "snow",
                                    "edited_frame": str(clip / "edited.png"), "model": str(tiny_wan21),
                                    "backbone": "wan", "num_frames": 9, "size": "64x64", "steps": 4,
                                    "inversion_steps": 4}) + "\n")
    result = run("batch", manifest, "--out-dir", tmp_path / "out", "--device", "cpu", "--no-cache")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[0])["status"] == "ok"
