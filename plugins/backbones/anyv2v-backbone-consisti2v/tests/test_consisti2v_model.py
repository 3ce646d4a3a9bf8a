"""ConsistI2V's own mechanics, checked against independent formulations."""

import pytest
import torch

from anyv2v_core.protocols import ClipSpec, EditOptions, InversionOptions
from anyv2v_core.testing.tiny import synthetic_frames

CLIP = ClipSpec(n_frames=3, width=64, height=64, fps=8)


def test_rotary_is_complex_rotation_of_channel_pairs():
    from anyv2v_backbone_consisti2v.unet import RotaryEmbedding

    rope = RotaryEmbedding(8)  # rotates the first 8 channels of 12
    x = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(0))
    pos = torch.tensor([0.0, 1.0, 2.0, 0.0, 0.0])
    got = rope.rotate(x, pos)
    freqs = 1.0 / 10000 ** (torch.arange(0, 8, 2).float() / 8)
    pairs = torch.view_as_complex(x[..., :8].reshape(2, 5, 4, 2).contiguous())
    want = torch.view_as_real(pairs * torch.polar(torch.ones(5, 4), pos[:, None] * freqs)).reshape(2, 5, 8)
    torch.testing.assert_close(got[..., :8], want)
    assert torch.equal(got[..., 8:], x[..., 8:])
    assert torch.equal(got[:, 0], x[:, 0])  # position 0 is the identity


def test_first_frame_neighbours_are_the_8_replicate_padded_neighbours():
    from anyv2v_backbone_consisti2v.unet import first_frame_neighbours

    h, w, frames = 3, 4, 2
    grid = torch.arange(h * w, dtype=torch.float32).reshape(h, w)
    tokens = torch.stack([grid.reshape(-1), -grid.reshape(-1)], dim=0)[..., None].repeat(1, 1, 2)  # (F, HW, C=2)
    got = first_frame_neighbours(tokens, frames, h, w)  # (B=1, HW, 8, C)
    assert got.shape == (1, h * w, 8, 2)
    for i in range(h):
        for j in range(w):
            want = [grid[min(max(i + di, 0), h - 1), min(max(j + dj, 0), w - 1)]
                    for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
            assert got[0, i * w + j, :, 0].tolist() == [float(v) for v in want]


def _inputs(backbone):
    frames = synthetic_frames(CLIP.n_frames, CLIP.width, CLIP.height, seed=1)
    latents = backbone.encode_video(frames)
    return frames, latents, backbone.condition(frames[0], "a prompt", CLIP)


def test_spatial_keys_include_first_frame_tokens_and_temporal_keys_its_neighbourhood(consisti2v):
    unet = consisti2v.unet
    spatial = unet.up_blocks[1].attentions[0].transformer_blocks[0].attn1
    temporal = unet.up_blocks[1].tempo_attns[0].transformer_blocks[0].attn1
    seen = {}
    hooks = [spatial.to_k.register_forward_pre_hook(lambda m, a: seen.__setitem__("s", a[0])),
             spatial.to_q.register_forward_pre_hook(lambda m, a: seen.__setitem__("sq", a[0])),
             temporal.to_k.register_forward_pre_hook(lambda m, a: seen.__setitem__("t", a[0]))]
    try:
        frames, latents, cond = _inputs(consisti2v)
        with torch.inference_mode():
            consisti2v.predict(latents, torch.tensor(501), cond)
    finally:
        for h in hooks:
            h.remove()
    n = CLIP.n_frames  # the UNet sees the conditioning latent + n-1 diffused frames
    s, q = seen["s"], seen["sq"]
    hw = q.shape[1]
    assert s.shape == (n, 2 * hw, q.shape[2])
    assert torch.equal(s[:, :hw], q)
    assert all(torch.equal(s[f, hw:], q[0]) for f in range(n))
    assert seen["t"].shape[1] == n + 8


def test_frame_stride_conditions_the_prediction(consisti2v, tiny_consisti2v):
    frames, latents, cond = _inputs(consisti2v)
    with torch.inference_mode():
        a = consisti2v.predict(latents, torch.tensor(501), cond)
        b = consisti2v.predict(latents, torch.tensor(501), {**cond, "frame_stride": torch.tensor([5])})
    assert torch.equal(a[:, :, 0], b[:, :, 0]) and float((a - b).abs().max()) > 1e-4
    assert int(cond["frame_stride"]) == 3

    from anyv2v_backbone_consisti2v.backbone import ConsistI2VBackbone
    from anyv2v_core.errors import InputError

    with pytest.raises(InputError, match="--frame-stride must be a positive integer, got 0"):
        ConsistI2VBackbone(model=str(tiny_consisti2v), frame_stride=0)


def test_frame_stride_is_part_of_the_cache_identity(tiny_consisti2v, consisti2v):
    from anyv2v_backbone_consisti2v.backbone import ConsistI2VBackbone

    other = ConsistI2VBackbone(model=str(tiny_consisti2v), frame_stride=5)
    assert other.frame_stride == 5 and consisti2v.frame_stride == 3
    assert other.model_fingerprint != consisti2v.model_fingerprint
    assert consisti2v.model_fingerprint.endswith("+frame_stride=3")


def test_another_frame_stride_misses_the_inversion_cache(tiny_consisti2v, consisti2v, tmp_path):
    """Through the library's cache: same source and settings, other --frame-stride -> recomputed."""
    from anyv2v_backbone_consisti2v.backbone import ConsistI2VBackbone
    from anyv2v_core.api import obtain_inversion

    frames = synthetic_frames(CLIP.n_frames, CLIP.width, CLIP.height, seed=1)
    opts, visit = InversionOptions(steps=10), [501, 401]
    first, reused = obtain_inversion(consisti2v, frames, CLIP, opts, visit, cache=tmp_path)
    assert not reused
    assert obtain_inversion(consisti2v, frames, CLIP, opts, visit, cache=tmp_path)[1]
    other = ConsistI2VBackbone(model=str(tiny_consisti2v), frame_stride=2)
    second, reused = obtain_inversion(other, frames, CLIP, opts, visit, cache=tmp_path)
    assert not reused
    assert not torch.equal(first.latent(501), second.latent(501))


def test_frame_zero_is_the_branch_first_frame_latent_and_source_branch_sees_the_source(consisti2v):
    """Inverted latents carry the clean source first-frame latent as frame 0 (as the
    reference stores them); the edit result carries the edited frame's latent; the source
    branch of every PnP call is conditioned on the SOURCE first frame."""
    from anyv2v_core.sampling import invert, pnp_sample

    frames = synthetic_frames(CLIP.n_frames, CLIP.width, CLIP.height, seed=1)
    edited = synthetic_frames(1, CLIP.width, CLIP.height, seed=5)[0]
    source_latent = consisti2v.first_frame_latent(frames[0], CLIP)[:, :, 0]
    edited_latent = consisti2v.first_frame_latent(edited, CLIP)[:, :, 0]
    inv = invert(consisti2v, frames, CLIP, InversionOptions(steps=10).resolve(consisti2v.defaults))
    assert all(torch.equal(z[:, :, 0], source_latent) for z in inv.latents.values())

    seen = []
    original = consisti2v.predict

    def spy(sample, t, cond):
        seen.append(cond["first_frame_latents"][:, :, 0].clone())
        return original(sample, t, cond)

    consisti2v.predict = spy
    try:
        opts = EditOptions(steps=10, t_idx=4).resolve(consisti2v.defaults)  # visits 501..1; injects at 501
        out = pnp_sample(consisti2v, inv, frames[0], edited, "an edit", CLIP, opts)
    finally:
        del consisti2v.predict
    assert torch.equal(out[:, :, 0], edited_latent)
    assert len(seen[0]) == 3 and torch.equal(seen[0][0], source_latent[0])
    assert torch.equal(seen[0][1], edited_latent[0]) and torch.equal(seen[0][2], edited_latent[0])
