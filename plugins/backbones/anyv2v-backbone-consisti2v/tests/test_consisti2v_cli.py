"""End-to-end `anyv2v ... --backbone consisti2v` runs on the tiny ConsistI2V, through the real loading path."""

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app
from anyv2v_core.plugins import get_registry

FAST = ["--backbone", "consisti2v", "--num-frames", "3", "--size", "64x64", "--steps", "10",
        "--inversion-steps", "10", "--t-idx", "4", "--device", "cpu"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Inversions are cached between runs of this module (same source, same settings)."""
    monkeypatch.setenv("ANYV2V_CACHE", str(tmp_path_factory.getbasetemp() / "inversion-cache"))


def run(*args):
    get_registry().register_commands(app)  # what `anyv2v` (cli.main) does before parsing
    return CliRunner().invoke(app, [str(a) for a in args])


def edit_args(clip_files, model, out, source="frames"):
    return ["edit", clip_files / source, "--edited-frame", clip_files / "edited.png", "--prompt", "a red square",
            "--model", model, "--out", out, *FAST]


def test_edit_mp4_source_writes_mp4(tiny_consisti2v, clip_files, tmp_path):
    out = tmp_path / "out.mp4"
    result = run(*edit_args(clip_files, tiny_consisti2v, out, "source.mp4"), "--frames-dir", tmp_path / "frames")
    assert result.exit_code == 0, result.output
    frames = video.read_frames(out)
    assert len(frames) == 3 and frames[0].size == (64, 64)
    assert len(sorted((tmp_path / "frames").glob("*.png"))) == 3


def test_edit_is_deterministic_and_injection_matters(tiny_consisti2v, clip_files, tmp_path):
    def frames(name, *extra):
        d = tmp_path / name
        result = run(*edit_args(clip_files, tiny_consisti2v, tmp_path / f"{name}.mp4"), "--frames-dir", d,
                     "--random-ratio", "0.2", *extra)
        assert result.exit_code == 0, result.output
        return np.stack([np.asarray(video.load_image(p)) for p in sorted(d.glob("*.png"))]).astype(int)

    a, b = frames("a"), frames("b")
    off = frames("off", "--tau-conv", "0", "--tau-sa", "0", "--tau-ta", "0")
    assert np.array_equal(a, b)
    assert np.abs(a[1:] - off[1:]).max() > 2
    assert np.array_equal(a[0], off[0]), "frame 0 is the decoded edited frame either way"


def test_invert_then_edit_with_inversion_matches_direct_edit(tiny_consisti2v, clip_files, tmp_path):
    inv = tmp_path / "inv.safetensors"
    invert_args = [a for a in FAST if a not in ("--t-idx", "4")]  # the kept latents follow --steps
    result = run("invert", clip_files / "frames", "--out", inv, "--model", tiny_consisti2v, *invert_args)
    assert result.exit_code == 0, result.output
    direct, reused = tmp_path / "direct", tmp_path / "reused"
    args = edit_args(clip_files, tiny_consisti2v, tmp_path / "d.mp4")
    assert run(*args, "--frames-dir", direct, "--no-cache").exit_code == 0
    result = run("edit", clip_files / "frames", "--edited-frame", clip_files / "edited.png", "--prompt", "a red square",
                 "--model", tiny_consisti2v, "--out", tmp_path / "r.mp4", "--inversion", inv, "--backbone",
                 "consisti2v", "--steps", "10", "--t-idx", "4", "--device", "cpu", "--frames-dir", reused)
    assert result.exit_code == 0, result.output
    pairs = list(zip(sorted(direct.glob("*.png")), sorted(reused.glob("*.png"))))
    assert len(pairs) == 3
    for p, q in pairs:
        assert np.array_equal(np.asarray(video.load_image(p)), np.asarray(video.load_image(q)))


def test_inversion_grid_lacking_edit_timesteps(tiny_consisti2v, clip_files, tmp_path):
    # 10 inversion steps: grid 1, 101, ..., 901; a 15-step edit visits 661, ... -> not on the grid
    args = edit_args(clip_files, tiny_consisti2v, tmp_path / "o.mp4")
    args[args.index("--steps") + 1] = "15"
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "timestep" in result.output and "inversion" in result.output
    assert not (tmp_path / "o.mp4").exists()


def test_hub_id_offline_names_the_repo(clip_files, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = run(*edit_args(clip_files, "TIGER-Lab/ConsistI2V", tmp_path / "o.mp4"))
    assert result.exit_code == 2, result.output
    assert "'TIGER-Lab/ConsistI2V' are not available" in result.output and "HF_HUB_OFFLINE" in result.output


def test_model_folder_missing_weights_names_the_file(tiny_consisti2v, clip_files, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(tiny_consisti2v, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    result = run(*edit_args(clip_files, broken, tmp_path / "o.mp4"))
    assert result.exit_code == 2 and "unet/*.safetensors" in result.output


def test_plugins_lists_consisti2v():
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "plugins", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    names = {(c["kind"], c["name"]): c for c in json.loads(proc.stdout)["components"]}
    assert names[("backbone", "consisti2v")]["package"] == "anyv2v-backbone-consisti2v"


def test_convert_pickled_text_encoder_then_load(tiny_consisti2v, tmp_path):
    """A folder whose text encoder is a pickle: loading names the conversion command; the
    command converts it (weights_only) and the folder then loads with equal weights."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from anyv2v_backbone_consisti2v.backbone import ConsistI2VBackbone
    from anyv2v_core.errors import ModelNotFoundError

    model = tmp_path / "model"
    shutil.copytree(tiny_consisti2v, model)
    st = model / "text_encoder" / "model.safetensors"
    weights = load_file(str(st))
    torch.save(weights, model / "text_encoder" / "pytorch_model.bin")
    st.unlink()
    with pytest.raises(ModelNotFoundError, match="consisti2v-convert"):
        ConsistI2VBackbone(model=str(model))
    result = run("consisti2v-convert", model)
    assert result.exit_code == 0, result.output
    assert "model.safetensors" in result.output
    converted = load_file(str(st))
    assert converted.keys() == weights.keys() and all(torch.equal(converted[k], weights[k]) for k in weights)
    assert run("consisti2v-convert", tmp_path / "nope").exit_code == 2


def test_frame_stride_is_a_declared_backbone_option(tiny_consisti2v, clip_files, tmp_path):
    """`--frame-stride` is declared at registration and reaches the backbone constructor."""
    assert [o.flag for o in get_registry().backbone("consisti2v").options] == ["--frame-stride"]

    def frames(name, *extra):
        d = tmp_path / name
        result = run(*edit_args(clip_files, tiny_consisti2v, tmp_path / f"{name}.mp4"), "--frames-dir", d, *extra)
        assert result.exit_code == 0, result.output
        return np.stack([np.asarray(video.load_image(p)) for p in sorted(d.glob("*.png"))]).astype(int)

    assert np.abs(frames("s3", "--frame-stride", "3") - frames("s7", "--frame-stride", "7")).max() > 0
    bad = run(*edit_args(clip_files, tiny_consisti2v, tmp_path / "bad.mp4"), "--frame-stride", "abc")
    assert bad.exit_code == 2 and "--frame-stride expects int" in bad.output
