"""End-to-end `anyv2v` runs with `--backbone seine` on the tiny SEINE, through the real
loading path; the `seine-convert` command; loader errors."""

import shutil

import numpy as np
import torch
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app

FAST = ["--num-frames", "4", "--size", "64x64", "--steps", "10", "--inversion-steps", "20", "--device", "cpu"]


def run(*args):
    from anyv2v_core.plugins import get_registry

    get_registry().register_commands(app)  # what `anyv2v` (cli.main) does before parsing
    return CliRunner().invoke(app, [str(a) for a in args])


def edit_args(clip_files, model, out, *extra):
    return ["edit", clip_files / "frames", "--editor", "image", "--backbone", "seine", "--edited-frame",
            clip_files / "edited.png", "--prompt", "a red square", "--model", model, "--out", out, *FAST, *extra]


def frames_of(folder):
    return np.stack([np.asarray(video.load_image(p)) for p in sorted(folder.glob("*.png"))]).astype(int)


def test_edit_with_image_editor_injection_and_determinism(tiny_seine, clip_files, tmp_path):
    def edit(name, *extra):
        d = tmp_path / name
        result = run(*edit_args(clip_files, tiny_seine, tmp_path / f"{name}.mp4", "--frames-dir", d, *extra))
        assert result.exit_code == 0, result.output
        return frames_of(d)

    a = edit("a")
    assert a.shape == (4, 64, 64, 3)
    assert len(video.read_frames(tmp_path / "a.mp4")) == 4
    assert np.array_equal(a, edit("b"))
    off = edit("off", "--tau-conv", "0", "--tau-sa", "0", "--tau-ta", "0")
    assert np.abs(a - off).max() > 2
    ddpm = edit("ddpm", "--sampler", "ddpm", "--seed", "1")
    assert np.array_equal(ddpm, edit("ddpm2", "--sampler", "ddpm", "--seed", "1"))
    assert np.abs(ddpm - a).max() > 2
    assert np.abs(ddpm - edit("ddpm3", "--sampler", "ddpm", "--seed", "2")).max() > 0


def test_invert_then_edit_with_inversion_matches_direct_edit(tiny_seine, clip_files, tmp_path):
    inv = tmp_path / "inv.safetensors"
    result = run("invert", clip_files / "frames", "--backbone", "seine", "--out", inv, "--model", tiny_seine,
                 "--num-frames", "4", "--size", "64x64", "--steps", "10", "--inversion-steps", "20", "--device", "cpu")
    assert result.exit_code == 0, result.output
    direct, reused = tmp_path / "direct", tmp_path / "reused"
    result = run(*edit_args(clip_files, tiny_seine, tmp_path / "d.mp4", "--frames-dir", direct))
    assert result.exit_code == 0, result.output
    args = edit_args(clip_files, tiny_seine, tmp_path / "r.mp4", "--frames-dir", reused, "--inversion", inv)
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert np.array_equal(frames_of(direct), frames_of(reused))


def test_unknown_sampler_is_one_line_exit_2(tiny_seine, clip_files, tmp_path):
    result = run(*edit_args(clip_files, tiny_seine, tmp_path / "o.mp4", "--sampler", "euler"))
    assert result.exit_code == 2, result.output
    assert "seine samples with ddim or ddpm, not 'euler'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o.mp4").exists()


def test_cross_attention_injection_tau_ca(seine, clip_files):
    """τ_ca > 0 adds Q/K injection into the 8 cross-attentions and changes the result."""
    from anyv2v_core.protocols import ClipSpec, EditOptions, InversionOptions
    from anyv2v_core.sampling import invert, pnp_sample

    clip = ClipSpec(4, 64, 64, 8)
    frames = [video.load_image(p) for p in sorted((clip_files / "frames").glob("*.png"))]
    edited = video.load_image(clip_files / "edited.png")
    inv = invert(seine, frames, clip, InversionOptions(steps=20).resolve(seine.defaults))

    def sample(tau_ca):
        return pnp_sample(seine, inv, frames[0], edited, "a red square", clip,
                          EditOptions(steps=10, tau_ca=tau_ca).resolve(seine.defaults))

    from anyv2v_core.injection import resolve_sites

    sites = resolve_sites(seine.injection_patterns, EditOptions(steps=10, tau_ca=0.5).resolve(seine.defaults))
    assert sum(s.pattern.endswith(".attn2") and s.threshold == 0.5 for s in sites) == 8
    default = resolve_sites(seine.injection_patterns, EditOptions().resolve(seine.defaults))
    assert not any(s.pattern.endswith(".attn2") for s in default)
    assert float((sample(0.5) - sample(0.0)).abs().max()) > 1e-3


def pickled_checkpoint(tiny_seine, path, shared_freqs=True):
    """A seine.pt like the official one: {'ema': state_dict, ...}, rotary freqs shared."""
    from safetensors.torch import load_file

    state = load_file(str(tiny_seine / "seine.safetensors"))
    if shared_freqs:
        shared = next(v for k, v in state.items() if k.endswith("rotary_emb.freqs"))
        state = {k: shared if k.endswith("rotary_emb.freqs") else v for k, v in state.items()}
    torch.save({"ema": state, "model": state, "opt": {"step": 3}}, str(path))
    return state


def test_convert_round_trip_and_load(tiny_seine, clip_files, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_seine, model)
    (model / "seine.safetensors").unlink()
    state = pickled_checkpoint(tiny_seine, model / "seine.pt")

    refused = run(*edit_args(clip_files, model, tmp_path / "o.mp4"))
    assert refused.exit_code == 2
    assert "holds seine.pt (a pickle) but no seine.safetensors" in refused.output and "anyv2v seine-convert" in refused.output

    result = run("seine-convert", model / "seine.pt", model)
    assert result.exit_code == 0, result.output
    assert (model / "seine.safetensors").is_file()
    again = run("seine-convert", model / "seine.pt", model / "seine.safetensors")
    assert again.exit_code == 2 and "--force" in again.output

    from anyv2v_backbone_seine.backbone import SEINEBackbone

    loaded = SEINEBackbone(model=str(model), device="cpu").unet.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)

    half = run("seine-convert", model, tmp_path / "half.safetensors", "--fp16")
    assert half.exit_code == 0, half.output
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float16 for v in load_file(str(tmp_path / "half.safetensors")).values())


def test_convert_refuses_pickled_code(tmp_path):
    """weights_only=True: a checkpoint that would run code on load is rejected, the code not run."""
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "seine.pt"
    torch.save({"ema": {"conv_in.weight": torch.zeros(1, 9, 3, 3)}, "x": Exploit(str(marker))}, str(ckpt))
    result = run("seine-convert", ckpt, tmp_path / "out.safetensors")
    assert result.exit_code == 2, result.output
    assert "cannot be read as a weights-only checkpoint" in result.output
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


class Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_convert_rejects_a_non_seine_checkpoint(tmp_path):
    ckpt = tmp_path / "other.pt"
    torch.save({"ema": {"conv_in.weight": torch.zeros(8, 4, 3, 3)}}, str(ckpt))
    result = run("seine-convert", ckpt, tmp_path / "out.safetensors")
    assert result.exit_code == 2 and "not a SEINE UNet checkpoint" in result.output


def test_hub_ids_offline_name_the_repo(tiny_seine, clip_files, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = run(*edit_args(clip_files, "xinyuanc91/SEINE", tmp_path / "o.mp4"))
    assert result.exit_code == 2
    assert "'xinyuanc91/SEINE' are not available" in result.output and "HF_HUB_OFFLINE" in result.output
    # a folder with only the SEINE weights takes SD-1.4 from the hub (cache): named when missing
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(tiny_seine / "seine.safetensors", only)
    result = run(*edit_args(clip_files, only, tmp_path / "o.mp4"))
    assert result.exit_code == 2 and "'CompVis/stable-diffusion-v1-4' are not available" in result.output
    result = run("seine-convert", "xinyuanc91/SEINE", tmp_path / "x.safetensors")
    assert result.exit_code == 2 and "seine.pt of 'xinyuanc91/SEINE' is not available" in result.output


def test_weights_of_another_architecture_are_one_line(tiny_seine, clip_files, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_seine, model)
    config = (model / "unet" / "config.json").read_text().replace('"layers_per_block": 2', '"layers_per_block": 1')
    (model / "unet" / "config.json").write_text(config)
    result = run(*edit_args(clip_files, model, tmp_path / "o.mp4"))
    assert result.exit_code == 2, result.output
    assert "does not fit the SEINE UNet" in result.output and "unexpected" in result.output


def test_selftest_with_seine():
    result = run("selftest", "--backbone", "seine")
    assert result.exit_code == 0, result.output
    assert "selftest passed" in result.output
