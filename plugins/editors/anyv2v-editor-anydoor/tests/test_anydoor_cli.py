"""End-to-end `anyv2v` runs with the tiny random AnyDoor, through the real loading path."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app


def run(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def frame_args(files, weights, out, *extra):
    return ["edit-frame", files / "frames", "--editor", "anydoor", "--out", out, "--device", "cpu",
            "--reference", files / "dog.png", "--reference-mask", files / "dog_mask.png",
            "--anydoor-model", weights, "--ddim-steps", "3", *extra]


def changed_box(a: Image.Image, b: Image.Image):
    diff = np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).sum(-1)
    ys, xs = np.nonzero(diff)
    return ys.min(), ys.max(), xs.min(), xs.max()


def test_edit_frame_replaces_the_target_region(files, tiny_weights, tmp_path):
    out = tmp_path / "edited.png"
    result = run(*frame_args(files, tiny_weights, out, "--target-mask", files / "cat_mask.png", "--seed", "3"))
    assert result.exit_code == 0, result.output
    source = video.read_frames(files / "frames", 1)[0]
    edited = video.load_image(out)
    assert edited.size == source.size
    y0, y1, x0, x1 = changed_box(edited, source)
    # the mask covers rows 20..43, cols 18..45; the context crop around it is larger, and the
    # reference's 5-pixel paste margin is never touched
    assert y0 <= 20 and y1 >= 43 and x0 <= 18 and x1 >= 45
    assert y0 >= 5 and x0 >= 5 and y1 <= 58 and x1 <= 58

    again = tmp_path / "again.png"
    assert run(*frame_args(files, tiny_weights, again, "--target-mask", files / "cat_mask.png", "--seed", "3")).exit_code == 0
    assert video.load_image(again).tobytes() == edited.tobytes()
    other = tmp_path / "other.png"
    assert run(*frame_args(files, tiny_weights, other, "--target-mask", files / "cat_mask.png", "--seed", "4")).exit_code == 0
    assert video.load_image(other).tobytes() != edited.tobytes()


def test_target_box_equals_the_same_rectangle_as_mask(files, tiny_weights, tmp_path):
    by_mask, by_box = tmp_path / "m.png", tmp_path / "b.png"
    assert run(*frame_args(files, tiny_weights, by_mask, "--target-mask", files / "cat_mask.png")).exit_code == 0
    result = run(*frame_args(files, tiny_weights, by_box, "--target-box", "18,20,46,44"))
    assert result.exit_code == 0, result.output
    assert video.load_image(by_mask).tobytes() == video.load_image(by_box).tobytes()


def test_weights_from_environment(files, tiny_weights, tmp_path):
    args = frame_args(files, tiny_weights, tmp_path / "e.png", "--target-box", "10,10,40,40")
    i = args.index("--anydoor-model")
    del args[i:i + 2]
    result = run(*args, env={"ANYV2V_ANYDOOR_MODEL": str(tiny_weights)})
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "change, message",
    [
        (["--target-mask", "{files}/empty_mask.png"], "is empty"),
        (["--target-mask", "{files}/small_mask.png"], "is 32x32, the image is 64x64"),
        (["--target-box", "10,10,5,40"], "--target-box 10,10,5,40 is empty or outside"),
        (["--target-box", "a,b"], "expects x0,y0,x1,y1"),
        ([], "exactly one of --target-mask or --target-box"),
        (["--target-box", "1,1,9,9", "--target-mask", "{files}/cat_mask.png"], "exactly one of"),
        (["--target-box", "1,1,9,9", "--reference-mask", "{files}/cat_mask.png"], "is 64x64, the image is 40x48"),
        (["--target-box", "1,1,9,9", "--anydoor-model", "{tmp}/none.safetensors"], "AnyDoor weights not found"),
        (["--target-box", "1,1,9,9", "--anydoor-model", "{files}/dog.png"], "are not .safetensors"),
        (["--target-box", "1,1,9,9", "--reference", "{tmp}/none.png"], "file not found"),
        (["--target-box", "1,1,9,9", "--ddim-steps", "x"], "--ddim-steps expects int"),
    ],
)
def test_bad_input_is_one_line_exit_2(files, tiny_weights, tmp_path, change, message):
    args = frame_args(files, tiny_weights, tmp_path / "o.png")
    for flag, value in zip(change[::2], change[1::2]):
        value = value.format(files=files, tmp=tmp_path)
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_missing_weights_names_the_option_and_converter(files, tiny_weights, tmp_path):
    args = frame_args(files, tiny_weights, tmp_path / "o.png", "--target-box", "1,1,9,9")
    i = args.index("--anydoor-model")
    del args[i:i + 2]
    result = run(*args, env={"ANYV2V_ANYDOOR_MODEL": ""})
    assert result.exit_code == 2
    assert "--anydoor-model" in result.output and "anyv2v anydoor-convert" in result.output


def test_editors_lists_the_declared_options():
    result = run("editors", "anydoor")
    assert result.exit_code == 0, result.output
    for flag in ("--reference", "--reference-mask", "--target-mask", "--target-box", "--anydoor-model"):
        assert flag in result.output


def test_video_edit_with_a_backbone(files, tiny_weights, toy_model, tmp_path):
    out = tmp_path / "edited.mp4"
    result = run("edit", files / "source.mp4", "--editor", "anydoor", "--backbone", "toy", "--model", toy_model,
                 "--prompt", "a dog running", "--reference", files / "dog.png", "--reference-mask",
                 files / "dog_mask.png", "--target-mask", files / "cat_mask.png", "--anydoor-model", tiny_weights,
                 "--ddim-steps", "3", "--num-frames", "8", "--size", "64x64", "--steps", "10",
                 "--inversion-steps", "20", "--device", "cpu", "--out", out, "--frames-dir", tmp_path / "frames")
    assert result.exit_code == 0, result.output
    frames = video.read_frames(out)
    assert len(frames) == 8 and frames[0].size == (64, 64)
