"""Injection on Wan's DiT blocks: it changes the edit, touches only video tokens, and the
hooked Q/K are exactly the normalised (then rotated) Q/K the attention processor uses."""

import pytest
import torch

from anyv2v_core import sampling
from anyv2v_core.errors import InputError
from anyv2v_core.injection import KIND_TARGETS, InjectionController, match_sites, resolve_sites
from anyv2v_core.protocols import EditOptions, InversionOptions
from anyv2v_backbone_wan.backbone import WanBackbone, parse_blocks
from anyv2v_backbone_wan.tiny import tiny_clip

CLIP = tiny_clip()
STEPS = 6


@pytest.fixture(scope="module")
def inversion(wan21, frames):
    return sampling.invert(wan21, frames, CLIP, InversionOptions(steps=STEPS).resolve(wan21.defaults))


def edit(bb, inversion, frames, edited, **kw):
    opts = EditOptions(steps=STEPS, t_idx=1, **kw).resolve(bb.defaults)
    return sampling.pnp_sample(bb, inversion, frames[0], edited, "a snowy street", CLIP, opts)


def test_each_kind_changes_the_edit(wan21, inversion, frames, edited):
    off = edit(wan21, inversion, frames, edited, tau_conv=0, tau_ta=0)
    qk_only = edit(wan21, inversion, frames, edited, tau_conv=0)
    feature_only = edit(wan21, inversion, frames, edited, tau_ta=0, tau_conv=0.5)  # 0.2 x 6 steps: none after t_idx
    assert float((qk_only - off).abs().max()) > 1e-3
    assert float((feature_only - off).abs().max()) > 1e-3
    # tau_sa has no Wan site: it changes nothing
    assert wan21.defaults.tau_sa == 0.0
    assert torch.equal(edit(wan21, inversion, frames, edited, tau_sa=0.5), edit(wan21, inversion, frames, edited))


def test_sites_are_video_tokens_only_and_exact(wan21, inversion, frames):
    """At an active step every hooked tensor has the video token count on dim 1 (text tokens
    are never replaced), attn2 (text K/V) is never hooked, and the processor's normalised
    Q/K of the edit branches equal the source branch's."""
    opts = EditOptions(steps=STEPS, t_idx=1, tau_conv=0.5).resolve(wan21.defaults)
    sites = resolve_sites(wan21.injection_patterns, opts)
    names = [name for _, name in match_sites(wan21.denoiser, sites)]
    assert names and not any("attn2" in n for n in names)
    sched = wan21.make_scheduler()
    sched.set_timesteps(STEPS)
    t = sched.timesteps[1]
    seen, normed = [], []
    controller = InjectionController(wan21.denoiser, sites, sched.timesteps, layout=sampling.BranchLayout())
    handles = []
    with controller:
        for site, name in match_sites(wan21.denoiser, sites):
            module = wan21.denoiser.get_submodule(name)
            targets = KIND_TARGETS[site.kind]
            for target in [module] if targets is None else [getattr(module, p) for p in targets]:
                handles.append(target.register_forward_hook(lambda m, a, o: seen.append(o)))
            if site.kind == "attn-qk":
                for norm in (module.norm_q, module.norm_k):
                    handles.append(norm.register_forward_hook(lambda m, a, o: normed.append(o)))
        controller.set_timestep(t)
        cond = sampling._cat_conditioning([wan21.condition(frames[0], "", CLIP)] * 3)
        x = inversion.latent(t)
        with torch.inference_mode():
            wan21.predict(torch.cat([x, x + 0.1, x - 0.1]), sched.model_timestep(t), cond)
    for h in handles:
        h.remove()
    _, _, f, h, w = x.shape
    video_tokens = f * (h // wan21.patch_size[1]) * (w // wan21.patch_size[2])
    assert seen and controller.calls == len(seen)
    assert all(tensor.shape[1] == video_tokens for tensor in seen)
    assert normed
    for tensor in seen + normed:
        src, a, b = tensor.chunk(3)
        assert torch.equal(src, a) and torch.equal(src, b)


def test_block_options(tiny_wan21):
    bb = WanBackbone(str(tiny_wan21), wan_attn_blocks="0,2-3", wan_feature_blocks="none", wan_attn_kinds="qkv",
                     wan_feature="block")
    opts = EditOptions(steps=STEPS).resolve(bb.defaults)
    patterns = {(p.pattern, p.kind, p.role) for p in bb.injection_patterns}
    assert ("transformer.blocks.0.attn1", "attn-qk", "temporal") in patterns
    assert ("transformer.blocks.2.attn1", "attn-v", "temporal") in patterns
    assert not any(".blocks.1." in p for p, _, _ in patterns) and not any(r == "conv" for _, _, r in patterns)
    bb2 = WanBackbone(str(tiny_wan21), wan_feature="block")
    assert {p.pattern for p in bb2.injection_patterns if p.role == "conv"} == {"transformer.blocks.2"}
    assert bb2.model_fingerprint == bb.model_fingerprint  # injection options never change an inversion
    assert len(resolve_sites(bb.injection_patterns, opts)) == len(bb.injection_patterns)
    assert parse_blocks("late", 4, "x") == (2, 3) and parse_blocks("mid", 40, "x") == (20,)
    for bad in ("7", "a-b"):
        with pytest.raises(InputError, match="--wan-attn-blocks"):
            WanBackbone(str(tiny_wan21), wan_attn_blocks=bad)
    with pytest.raises(InputError, match="--wan-attn-kinds"):
        WanBackbone(str(tiny_wan21), wan_attn_kinds="qx")
    only_v = WanBackbone(str(tiny_wan21), wan_attn_kinds="v")
    assert {p.kind for p in only_v.injection_patterns if p.role == "temporal"} == {"attn-v"}
    with pytest.raises(InputError, match="--wan-feature"):
        WanBackbone(str(tiny_wan21), wan_feature="conv")


def test_clip_shape_checks(wan21, frames):
    with pytest.raises(InputError, match="4k\\+1"):
        wan21.encode_video(frames[:8])
    with pytest.raises(InputError, match="multiple of 16"):
        wan21.check_clip(9, 72, 64)


def test_memory_options(tiny_wan22, frames, edited):
    """Model CPU offload (accelerate hooks; on the CPU a no-op move) gives the same edit;
    VAE tiling is applied and removed; MemoryOptions() restores the layout."""
    from anyv2v_core.protocols import MemoryOptions

    bb = WanBackbone(str(tiny_wan22), device="cpu", dtype=torch.float32)
    inv = sampling.invert(bb, frames, CLIP, InversionOptions(steps=4).resolve(bb.defaults))
    opts = EditOptions(steps=4).resolve(bb.defaults)
    plain = sampling.pnp_sample(bb, inv, frames[0], edited, "x", CLIP, opts)
    bb.configure_memory(MemoryOptions(offload=True, vae_tiling=True))
    assert bb.vae.use_tiling and len(bb._offload_hooks) == 3  # text encoder, VAE, denoiser
    bb._image_cache.clear()
    assert torch.equal(sampling.pnp_sample(bb, inv, frames[0], edited, "x", CLIP, opts), plain)
    bb.configure_memory(MemoryOptions())
    assert not bb.vae.use_tiling and not bb._offload_hooks


def test_clip_refused_before_weights_load(tmp_path, monkeypatch):
    """A wrong frame count is a one-line error before any model is loaded."""
    from anyv2v_core import api
    from anyv2v_core.testing.tiny import write_clip_files

    def no_load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(WanBackbone, "__init__", no_load)
    clip = write_clip_files(tmp_path, 9, 64, 64)
    with pytest.raises(InputError, match="4k\\+1"):
        api.edit(clip / "source.mp4", prompt="x", edited_frame=clip / "edited.png", backbone="wan", model="m",
                 num_frames=8, size=(64, 64), out=tmp_path / "o.mp4")
