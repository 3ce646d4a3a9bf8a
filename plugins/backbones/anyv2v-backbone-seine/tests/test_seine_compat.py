"""``--compat official`` with SEINE: the official start latent (the most-inverted one its
inversion keeps on the 250-step grid) and the official DDPM grid (980, ..., 0 with the source
branch at t + 1); the default is unchanged."""

import dataclasses

import numpy as np
import torch

from anyv2v_core import api, video
from anyv2v_core.protocols import ClipSpec, EditOptions, InversionOptions
from anyv2v_core.sampling import invert, plan, pnp_sample

CLIP = ClipSpec(4, 64, 64, 8)


def test_official_plan_at_the_reference_settings(seine):
    """500 inversion steps (grid 1, 3, ..., 999), 50 edit steps."""
    default = plan(seine, EditOptions().resolve(seine.defaults), 500)
    assert default.visit[0] == 981 and default.start == 981 and default.needed == list(range(981, 0, -20))
    ddim = plan(seine, EditOptions(compat="official").resolve(seine.defaults), 500)
    assert ddim.visit == default.visit and ddim.start == 997
    assert all(ddim.source[t] == t for t in ddim.visit)
    assert ddim.needed == [997] + list(range(981, 0, -20))
    ddpm_default = plan(seine, EditOptions(sampler="ddpm").resolve(seine.defaults), 500)
    assert ddpm_default.visit == default.visit  # ours: the DDIM grid, source at t
    ddpm = plan(seine, EditOptions(sampler="ddpm", compat="official").resolve(seine.defaults), 500)
    assert list(ddpm.visit) == list(range(980, -1, -20)) and ddpm.start == 997
    assert all(ddpm.source[t] == t + 1 for t in ddpm.visit)
    assert ddpm.needed == ddim.needed


def _spy(backbone, fn):
    calls = []
    original = backbone.predict

    def spy(sample, t, cond):  # records each call's timestep and branch latents, then runs the real call
        calls.append((int(t), sample.clone()))
        return original(sample, t, cond)

    backbone.predict = spy
    try:
        return fn(), calls
    finally:
        del backbone.predict


def _frames(clip_files):
    frames = [video.load_image(p) for p in sorted((clip_files / "frames").glob("*.png"))]
    return frames, video.load_image(clip_files / "edited.png")


def test_official_sampling_reads_the_official_latents(seine, clip_files):
    """125 inversion steps (grid 1, 9, ..., 993, all on the 250-step grid), 5 edit steps."""
    frames, edited = _frames(clip_files)
    inv = invert(seine, frames, CLIP, InversionOptions(steps=125).resolve(seine.defaults))

    def sample(**kw):
        opts = EditOptions(steps=5, **kw).resolve(seine.defaults)
        return _spy(seine, lambda: pnp_sample(seine, inv, frames[0], edited, "a red square", CLIP, opts))

    # DDIM: the loop visits 801, ..., 1; it starts from z_993 (default: z_801); source branch at t
    default, calls = sample()
    assert [t for t, _ in calls] == [801, 601, 401, 201, 1]
    assert torch.equal(calls[0][1][0], inv.latent(801)[0]) and torch.equal(calls[0][1][1], inv.latent(801)[0])
    official, calls = sample(compat="official")
    assert [t for t, _ in calls] == [801, 601, 401, 201, 1]
    assert torch.equal(calls[0][1][0], inv.latent(801)[0]) and torch.equal(calls[0][1][1], inv.latent(993)[0])
    assert float((official - default).abs().max()) > 1e-3

    # DDPM: the official grid 800, ..., 0 with the source branch fed z_{t+1}
    _, calls = sample(sampler="ddpm", compat="official", tau_conv=1.0, tau_sa=1.0, tau_ta=1.0)
    assert [t for t, _ in calls] == [800, 600, 400, 200, 0]
    assert all(torch.equal(x[0], inv.latent(t + 1)[0]) for t, x in calls)
    assert torch.equal(calls[0][1][1], inv.latent(993)[0])
    _, calls = sample(sampler="ddpm", tau_conv=1.0, tau_sa=1.0, tau_ta=1.0)
    assert [t for t, _ in calls] == [801, 601, 401, 201, 1]
    assert all(torch.equal(x[0], inv.latent(t)[0]) for t, x in calls)

    # without injection the source branch leaves the batch: official == default started from z_993
    moved = dataclasses.replace(inv, latents={**inv.latents, 801: inv.latent(993)})
    off = dict(tau_conv=0.0, tau_sa=0.0, tau_ta=0.0)
    opts = EditOptions(steps=5, **off).resolve(seine.defaults)
    expected = pnp_sample(seine, moved, frames[0], edited, "a red square", CLIP, opts)
    assert torch.equal(sample(compat="official", **off)[0], expected)


def test_official_edit_end_to_end_keeps_what_it_needs(tiny_seine, clip_files, tmp_path):
    """Through the library API (the CLI's path): the inversion stops at the highest latent the
    edit reads, so the official edit keeps z_993 where the default stops at 801."""
    frames_dir = clip_files / "frames"
    common = dict(prompt="a red square", edited_frame=clip_files / "edited.png", backbone="seine",
                  model=str(tiny_seine), num_frames=4, size="64x64", steps=5, inversion_steps=125,
                  device="cpu", cache=False)
    default = api.edit(frames_dir, **common)
    assert max(default.inversion.latents) == 801
    official = api.edit(frames_dir, compat="official", **common)
    assert max(official.inversion.latents) == 993
    diff = np.abs(np.stack([np.asarray(f, dtype=int) for f in official.frames])
                  - np.stack([np.asarray(f, dtype=int) for f in default.frames])).max()
    assert diff > 0
    again = api.edit(frames_dir, **common)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(default.frames, again.frames))


def test_stored_inversion_for_an_official_edit(tiny_seine, clip_files, tmp_path):
    """`anyv2v invert --compat official` keeps z_993 too; an official edit from it equals the
    direct one; an inversion stored without it is refused in one line, nothing written."""
    from typer.testing import CliRunner

    from anyv2v_core.cli import app

    def run(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    grid = ["--backbone", "seine", "--model", tiny_seine, "--num-frames", "4", "--size", "64x64", "--steps", "5",
            "--inversion-steps", "125", "--device", "cpu"]
    for name, extra in (("official.safetensors", ["--compat", "official"]), ("default.safetensors", [])):
        result = run("invert", clip_files / "frames", "--out", tmp_path / name, *grid, *extra)
        assert result.exit_code == 0, result.output

    def edit(name, *extra):
        return run("edit", clip_files / "frames", "--editor", "image", "--edited-frame", clip_files / "edited.png",
                   "--prompt", "a red square", "--out", tmp_path / f"{name}.mp4", "--frames-dir", tmp_path / name,
                   "--compat", "official", "--no-cache", *grid, *extra)

    assert edit("direct").exit_code == 0
    result = edit("stored", "--inversion", tmp_path / "official.safetensors")
    assert result.exit_code == 0, result.output
    direct, stored = (sorted((tmp_path / n).glob("*.png")) for n in ("direct", "stored"))
    assert len(direct) == 4
    assert all(np.array_equal(np.asarray(video.load_image(a)), np.asarray(video.load_image(b)))
               for a, b in zip(direct, stored))
    refused = edit("refused", "--inversion", tmp_path / "default.safetensors")
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "timestep(s) 993" in refused.output and "anyv2v invert --compat official" in refused.output
    assert not (tmp_path / "refused.mp4").exists() and not (tmp_path / "refused").exists()
