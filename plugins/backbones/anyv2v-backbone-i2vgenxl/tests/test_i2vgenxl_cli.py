"""End-to-end `anyv2v` runs on the tiny I2VGen-XL, through the real loading path."""

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app

FAST = ["--num-frames", "8", "--size", "64x64", "--steps", "10", "--inversion-steps", "20", "--device", "cpu"]


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def edit_args(clip_files, model, out, source="source.mp4"):
    return ["edit", clip_files / source, "--edited-frame", clip_files / "edited.png", "--prompt", "a red square",
            "--model", model, "--out", out, *FAST]


@pytest.mark.parametrize("source", ["source.mp4", "frames"])
def test_edit_writes_mp4_with_requested_frames(tiny_i2vgenxl, clip_files, tmp_path, source):
    out = tmp_path / "out.mp4"
    result = run(*edit_args(clip_files, tiny_i2vgenxl, out, source), "--frames-dir", tmp_path / "frames")
    assert result.exit_code == 0, result.output
    frames = video.read_frames(out)
    assert len(frames) == 8 and frames[0].size == (64, 64)
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert len(pngs) == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_edit_is_deterministic_and_injection_matters(tiny_i2vgenxl, clip_files, tmp_path):
    def frames(name, *extra):
        d = tmp_path / name
        result = run(*edit_args(clip_files, tiny_i2vgenxl, tmp_path / f"{name}.mp4", "frames"), "--frames-dir", d,
                     "--random-ratio", "0.2", *extra)
        assert result.exit_code == 0, result.output
        return np.stack([np.asarray(video.load_image(p)) for p in sorted(d.glob("*.png"))]).astype(int)

    a, b = frames("a"), frames("b")
    off = frames("off", "--tau-conv", "0", "--tau-sa", "0", "--tau-ta", "0")
    assert np.array_equal(a, b)
    assert np.abs(a - off).max() > 2


def test_invert_then_edit_with_inversion_matches_direct_edit(tiny_i2vgenxl, clip_files, tmp_path):
    inv = tmp_path / "inv.safetensors"
    result = run("invert", clip_files / "frames", "--out", inv, "--model", tiny_i2vgenxl, "--num-frames", "8",
                 "--size", "64x64", "--steps", "10", "--inversion-steps", "20", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert inv.stat().st_size > 0
    direct, reused = tmp_path / "direct", tmp_path / "reused"
    assert run(*edit_args(clip_files, tiny_i2vgenxl, tmp_path / "d.mp4", "frames"), "--frames-dir", direct).exit_code == 0
    args = ["edit", clip_files / "frames", "--edited-frame", clip_files / "edited.png", "--prompt", "a red square",
            "--model", tiny_i2vgenxl, "--out", tmp_path / "r.mp4", "--inversion", inv, "--steps", "10",
            "--device", "cpu", "--frames-dir", reused]
    result = run(*args)
    assert result.exit_code == 0, result.output
    for p, q in zip(sorted(direct.glob("*.png")), sorted(reused.glob("*.png"))):
        assert np.array_equal(np.asarray(video.load_image(p)), np.asarray(video.load_image(q)))


def test_inversion_grid_lacking_edit_timesteps(tiny_i2vgenxl, clip_files, tmp_path):
    # 20 inversion steps: grid 1, 51, ..., 951; a 15-step edit visits 868, ... -> not on the grid
    args = edit_args(clip_files, tiny_i2vgenxl, tmp_path / "o.mp4")
    args[args.index("--steps") + 1] = "15"
    result = run(*args)
    assert result.exit_code == 2
    assert "has no latent at edit timestep" in result.output
    assert not (tmp_path / "o.mp4").exists()


def test_stored_inversion_from_another_video_is_refused(tiny_i2vgenxl, clip_files, tmp_path):
    from anyv2v_core.testing.tiny import synthetic_frames

    other = tmp_path / "other"
    video.write_frames_dir(synthetic_frames(8, 64, 64, seed=42), other)
    inv = tmp_path / "inv.safetensors"
    assert run("invert", other, "--out", inv, "--model", tiny_i2vgenxl, "--num-frames", "8", "--size", "64x64",
               "--steps", "10", "--inversion-steps", "20", "--device", "cpu").exit_code == 0
    result = run("edit", clip_files / "frames", "--edited-frame", clip_files / "edited.png", "--prompt", "x",
                 "--model", tiny_i2vgenxl, "--out", tmp_path / "o.mp4", "--inversion", inv, "--steps", "10",
                 "--device", "cpu")
    assert result.exit_code == 2 and "different source video" in result.output


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a, p: a.__setitem__(1, p / "missing.mp4"), "source not found"),
        (lambda a, p: a.__setitem__(a.index("--num-frames") + 1, "30"), "30 are needed"),
        (lambda a, p: a.extend(["--backbone", "nope"]), "unknown backbone 'nope'; available: "),
        (lambda a, p: a.__setitem__(a.index("--edited-frame") + 1, p / "nope.png"), "image not found"),
        (lambda a, p: a.__setitem__(a.index("--size") + 1, "60x60"), "multiples of 8"),
        (lambda a, p: a.__setitem__(a.index("--model") + 1, p / "no-model"), "no-model"),
        (lambda a, p: a.extend(["--t-idx", "10"]), "t_idx must be below steps (10), got 10"),
    ],
)
def test_bad_input_is_one_line_exit_2(tiny_i2vgenxl, clip_files, tmp_path, change, message):
    args = edit_args(clip_files, tiny_i2vgenxl, tmp_path / "o.mp4")
    change(args, tmp_path)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.mp4").exists()


def test_existing_output_needs_force(tiny_i2vgenxl, clip_files, tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"precious")
    result = run(*edit_args(clip_files, tiny_i2vgenxl, out))
    assert result.exit_code == 2 and "--force" in result.output
    assert out.read_bytes() == b"precious"
    result = run(*edit_args(clip_files, tiny_i2vgenxl, out), "--force")
    assert result.exit_code == 0, result.output
    assert len(video.read_frames(out)) == 8


def test_hub_id_offline_names_the_repo(clip_files, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = run(*edit_args(clip_files, "ali-vilab/i2vgen-xl", tmp_path / "o.mp4"))
    assert result.exit_code == 2
    assert "'ali-vilab/i2vgen-xl' are not available" in result.output and "HF_HUB_OFFLINE" in result.output


def test_model_folder_missing_weights_names_the_file(tiny_i2vgenxl, clip_files, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(tiny_i2vgenxl, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    result = run(*edit_args(clip_files, broken, tmp_path / "o.mp4"))
    assert result.exit_code == 2 and "unet/*.safetensors" in result.output


def test_console_script_plugins_lists_both(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "plugins", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    names = {(c["kind"], c["name"]): c for c in data["components"]}
    assert names[("editor", "image")]["package"] == "anyv2v"
    backbone = names[("backbone", "i2vgenxl")]
    assert backbone["package"] == "anyv2v-backbone-i2vgenxl" and backbone["version"] == "0.1.0"
    assert data["failures"] == []


def test_selftest_command():
    result = run("selftest")
    assert result.exit_code == 0, result.output
    assert "selftest passed" in result.output


MIRROR_EDITOR = """
from anyv2v_core import hookimpl

class MirrorEditor:
    name = "mirror"
    def __init__(self, device="cpu", dtype=None, model=None):
        pass
    def edit(self, first_frame, request):
        return first_frame.transpose(0)

@hookimpl
def anyv2v_register_editors(register):
    register("mirror", MirrorEditor, description="flip the first frame")
"""


def test_third_party_editor_plugin_via_cli(tiny_i2vgenxl, clip_files, tmp_path, monkeypatch):
    """`pip install anyv2v-editor-mirror` then `anyv2v edit --editor mirror` just works."""
    from anyv2v_core.plugins import get_registry
    from anyv2v_core.testing.tiny import install_fake_plugin

    site = tmp_path / "site"
    site.mkdir()
    install_fake_plugin(site, "anyv2v-editor-mirror", "anyv2v_editor_mirror_mod", MIRROR_EDITOR, "mirror")
    monkeypatch.syspath_prepend(str(site))
    get_registry(refresh=True)
    try:
        args = edit_args(clip_files, tiny_i2vgenxl, tmp_path / "o.mp4")
        i = args.index("--edited-frame")
        del args[i : i + 2]
        result = run(*args, "--editor", "mirror")
        assert result.exit_code == 0, result.output
        assert len(video.read_frames(tmp_path / "o.mp4")) == 8
    finally:
        monkeypatch.undo()
        get_registry(refresh=True)


def test_initial_noise_is_the_references_draw():
    """The reference blends `torch.randn_like(z)` where z is stored frame-major; with the
    same seed at the draw, our generator-based noise is the same numbers."""
    import torch

    from anyv2v_backbone_i2vgenxl.backbone import I2VGenXLBackbone

    shape = (1, 4, 8, 16, 16)
    ours = I2VGenXLBackbone.initial_noise(None, shape, torch.Generator().manual_seed(123))
    frame_major = torch.zeros(1, 8, 4, 16, 16).permute(0, 2, 1, 3, 4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        reference = torch.randn_like(frame_major)
    assert torch.equal(ours, reference)


def _pngs(folder):
    return np.stack([np.asarray(video.load_image(p)) for p in sorted(folder.glob("*.png"))]).astype(int)


def test_second_edit_reuses_cached_inversion(tiny_i2vgenxl, clip_files, tmp_path):
    cache = tmp_path / "cache"
    first = run(*edit_args(clip_files, tiny_i2vgenxl, tmp_path / "a.mp4", "frames"), "--cache-dir", cache,
                "--frames-dir", tmp_path / "a")
    assert first.exit_code == 0 and "inversion reused" not in first.output
    other = tmp_path / "other.png"
    video.load_image(clip_files / "edited.png").rotate(90).save(other)
    args = edit_args(clip_files, tiny_i2vgenxl, tmp_path / "b.mp4", "frames")
    args[args.index("--edited-frame") + 1] = other
    second = run(*args, "--cache-dir", cache, "--frames-dir", tmp_path / "b")
    assert second.exit_code == 0 and "inversion reused" in second.output
    uncached = run(*args[:-2], "--out", tmp_path / "c.mp4", "--no-cache", "--frames-dir", tmp_path / "c")
    assert uncached.exit_code == 0 and "inversion reused" not in uncached.output
    assert np.array_equal(_pngs(tmp_path / "b"), _pngs(tmp_path / "c"))
    assert len(list(cache.glob("*.safetensors"))) == 1


def test_several_edits_in_one_run_match_single_runs(tiny_i2vgenxl, clip_files, tmp_path):
    other = tmp_path / "other.png"
    video.load_image(clip_files / "edited.png").rotate(90).save(other)
    args = edit_args(clip_files, tiny_i2vgenxl, tmp_path / "multi.mp4", "frames")
    many = run(*args, "--edited-frame", other, "--prompt", "a blue square", "--frames-dir", tmp_path / "m")
    assert many.exit_code == 0, many.output
    assert (tmp_path / "multi-0.mp4").exists() and (tmp_path / "multi-1.mp4").exists()
    single = edit_args(clip_files, tiny_i2vgenxl, tmp_path / "s.mp4", "frames")
    single[single.index("--edited-frame") + 1] = other
    single[single.index("--prompt") + 1] = "a blue square"
    assert run(*single, "--frames-dir", tmp_path / "s").exit_code == 0
    # equal up to float rounding of the larger batch (<= 1 grey level here)
    assert np.abs(_pngs(tmp_path / "m-1") - _pngs(tmp_path / "s")).max() <= 1


def test_several_edits_need_matching_counts(tiny_i2vgenxl, clip_files, tmp_path):
    args = edit_args(clip_files, tiny_i2vgenxl, tmp_path / "o.mp4")
    r = run(*args, "--edited-frame", clip_files / "edited.png", "--prompt", "b", "--seeds", "1,2,3")
    assert r.exit_code == 2 and "once per edit" in r.output


def test_memory_options_keep_the_result(tiny_i2vgenxl, clip_files, tmp_path):
    base = run(*edit_args(clip_files, tiny_i2vgenxl, tmp_path / "a.mp4", "frames"), "--frames-dir", tmp_path / "a")
    assert base.exit_code == 0, base.output
    opts = run(*edit_args(clip_files, tiny_i2vgenxl, tmp_path / "b.mp4", "frames"), "--frames-dir", tmp_path / "b",
               "--vae-chunk", "4", "--offload", "--channels-last", "--no-cache")
    assert opts.exit_code == 0, opts.output
    assert np.abs(_pngs(tmp_path / "a") - _pngs(tmp_path / "b")).max() <= 1
    bad = run(*edit_args(clip_files, tiny_i2vgenxl, tmp_path / "c.mp4"), "--vae-chunk", "0")
    assert bad.exit_code == 2 and "vae_chunk must be an integer >= 1, got 0" in bad.output
