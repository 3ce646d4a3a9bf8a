"""SEINE's own checkpoint layout (its README): ``pretrained/SEINE/seine.pt`` beside
``pretrained/stable-diffusion-v1-4/``. ``-m pretrained/SEINE`` finds the sibling SD folder
(``--sd-model`` names another), and every refusal says in one line all the user must do."""

import shutil

import numpy as np
import torch
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app

QUICK = ["--num-frames", "4", "--size", "64x64", "--steps", "2", "--inversion-steps", "4", "--device", "cpu",
         "--no-cache"]


def run(*args):
    from anyv2v_core.plugins import get_registry

    get_registry().register_commands(app)
    return CliRunner().invoke(app, [str(a) for a in args])


def edit(clip_files, model, out, *extra):
    return run("edit", clip_files / "frames", "--editor", "image", "--backbone", "seine", "--edited-frame",
               clip_files / "edited.png", "--prompt", "a red square", "--model", model, "--out", out, *QUICK, *extra)


def official_layout(tiny_seine, root, with_sd=True):
    """``root/SEINE/seine.pt`` (an official-style pickle) and, with ``with_sd``, the SD-1.4
    parts in ``root/stable-diffusion-v1-4``."""
    from safetensors.torch import load_file

    (root / "SEINE").mkdir(parents=True)
    torch.save({"ema": load_file(str(tiny_seine / "seine.safetensors"))}, str(root / "SEINE" / "seine.pt"))
    if with_sd:
        shutil.copytree(tiny_seine, root / "stable-diffusion-v1-4", ignore=shutil.ignore_patterns("seine.*"))
    return root / "SEINE"


def one_line(result):
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(lines)  # the message may be wrapped by the terminal width


def test_sibling_sd_folder_is_found_after_conversion(tiny_seine, clip_files, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    seine_dir = official_layout(tiny_seine, tmp_path / "pretrained")
    out = tmp_path / "o.mp4"
    message = one_line(edit(clip_files, seine_dir, out))
    assert f"anyv2v seine-convert {seine_dir / 'seine.pt'} {seine_dir}" in message
    assert f"Stable Diffusion 1.4 found in {tmp_path / 'pretrained' / 'stable-diffusion-v1-4'}" in message
    assert not out.exists()

    converted = run("seine-convert", seine_dir / "seine.pt", seine_dir)
    assert converted.exit_code == 0, converted.output
    result = edit(clip_files, seine_dir, out, "--frames-dir", tmp_path / "sibling")
    assert result.exit_code == 0, result.output
    reference = edit(clip_files, tiny_seine, tmp_path / "r.mp4", "--frames-dir", tmp_path / "combined")
    assert reference.exit_code == 0, reference.output
    frames = [np.asarray(video.load_image(p)) for p in sorted((tmp_path / "sibling").glob("*.png"))]
    expected = [np.asarray(video.load_image(p)) for p in sorted((tmp_path / "combined").glob("*.png"))]
    assert len(frames) == 4 and all(np.array_equal(a, b) for a, b in zip(frames, expected))

    # the SD folder given as --model says which folder to pass instead
    message = one_line(edit(clip_files, tmp_path / "pretrained" / "stable-diffusion-v1-4", tmp_path / "x.mp4"))
    assert "is a Stable Diffusion folder without SEINE's weights" in message and "--sd-model" in message
    assert not (tmp_path / "x.mp4").exists()


def test_missing_conversion_and_sd_are_one_message(tiny_seine, clip_files, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    seine_dir = official_layout(tiny_seine, tmp_path / "pretrained", with_sd=False)
    out = tmp_path / "o.mp4"
    message = one_line(edit(clip_files, seine_dir, out))
    assert "convert it once: anyv2v seine-convert" in message
    assert f"put Stable Diffusion 1.4 in the diffusers layout" in message
    assert str(tmp_path / "pretrained" / "stable-diffusion-v1-4") in message and "--sd-model FOLDER" in message

    assert run("seine-convert", seine_dir / "seine.pt", seine_dir).exit_code == 0
    message = one_line(edit(clip_files, seine_dir, out))  # converted; SD nowhere (offline, no cache)
    assert "'CompVis/stable-diffusion-v1-4' are not available" in message
    assert str(tmp_path / "pretrained" / "stable-diffusion-v1-4") in message
    assert not out.exists()

    # SD elsewhere, named with --sd-model
    shutil.copytree(tiny_seine, tmp_path / "models" / "sd14", ignore=shutil.ignore_patterns("seine.*"))
    result = edit(clip_files, seine_dir, out, "--sd-model", tmp_path / "models" / "sd14")
    assert result.exit_code == 0, result.output
    assert out.is_file()
    message = one_line(edit(clip_files, seine_dir, tmp_path / "y.mp4", "--sd-model", tmp_path / "nowhere"))
    assert "--sd-model" in message and not (tmp_path / "y.mp4").exists()
