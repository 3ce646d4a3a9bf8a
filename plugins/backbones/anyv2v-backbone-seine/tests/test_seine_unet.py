"""Checkpoint compatibility and the temporal attention's position handling, without weights.

``data/seine_official_state_dict.json`` lists the parameter names and shapes of the
official SEINE UNet, recorded once by instantiating the official definition at full
size on the meta device (see the file's ``source``), plus the official relative-position
bucket table for 16 frames.
"""

import json
import math
from pathlib import Path

import pytest
import torch

from anyv2v_backbone_seine.backbone import unet_config
from anyv2v_backbone_seine.unet import RelativePositionBias, RotaryEmbedding, SEINEUNet3DModel

OFFICIAL = json.loads((Path(__file__).parent / "data" / "seine_official_state_dict.json").read_text())

#: CompVis/stable-diffusion-v1-4 unet/config.json (the file the loader reads).
SD14_UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.2.2",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}


def test_full_size_state_dict_matches_official_names_and_shapes():
    with torch.device("meta"):
        unet = SEINEUNet3DModel(**unet_config(SD14_UNET_CONFIG))
    ours = {k: list(v.shape) for k, v in unet.state_dict().items()}
    official = OFFICIAL["parameters"]
    assert sorted(set(official) - set(ours)) == []
    assert sorted(set(ours) - set(official)) == []
    assert {k: v for k, v in ours.items() if official[k] != v} == {}
    assert len(ours) == OFFICIAL["count"] == 830
    assert sum(math.prod(s) for s in ours.values()) == OFFICIAL["numel"]
    assert unet.conv_in.in_channels == 9


def test_rotary_matches_complex_rotation_on_first_32_dims():
    rot = RotaryEmbedding(32)
    x = torch.randn(2, 3, 5, 40, generator=torch.Generator().manual_seed(0))  # (batch, heads, frames, head_dim)
    got = rot(x)
    pairs = torch.complex(x[..., :32:2].double(), x[..., 1:32:2].double())
    freqs = 1.0 / 10000 ** (torch.arange(0, 32, 2).double() / 32)
    angle = torch.arange(5).double()[:, None] * freqs[None]
    turned = pairs * torch.polar(torch.ones_like(angle), angle)
    want = torch.stack((turned.real, turned.imag), dim=-1).flatten(-2)
    assert torch.allclose(got[..., :32].double(), want, atol=1e-5)
    assert torch.equal(got[..., 32:], x[..., 32:])  # dims beyond 32 are not rotated
    assert torch.equal(rot(x[:, :, :1]), x[:, :, :1])  # position 0 is the identity


def test_relative_position_buckets_match_official_table():
    bias = RelativePositionBias(heads=8, num_buckets=32, max_distance=32)
    want = OFFICIAL["temporal_bias_buckets_16_frames"]["buckets"]
    assert bias.buckets(16, torch.device("cpu")).tolist() == want
    assert tuple(bias(16, torch.device("cpu")).shape) == (8, 16, 16)


def test_temporal_attention_qk_are_hooked_before_rotary():
    """PnP replaces the outputs of ``to_q``/``to_k``: the rotary embedding is applied after,
    as in the reference (which replaces Q/K right after the projections)."""
    from anyv2v_backbone_seine.unet import TemporalAttention

    attn = TemporalAttention(64, heads=2, dim_head=32).eval()
    x = torch.randn(6, 4, 64, generator=torch.Generator().manual_seed(1))
    seen = {}
    hooks = [attn.to_q.register_forward_hook(lambda m, a, o: seen.setdefault("q", o)),
             attn.rotary_emb.register_forward_hook(lambda m, a, o: seen.setdefault("rot_in", a[0]))]
    with torch.no_grad():
        attn(x)
    for h in hooks:
        h.remove()
    q = seen["q"].unflatten(-1, (2, -1)).transpose(1, 2)
    assert torch.equal(seen["rot_in"], q)


def test_seine_unet_rejects_a_rotary_wider_than_the_head():
    with pytest.raises(ValueError, match="rotary"):
        SEINEUNet3DModel(block_out_channels=(16, 16, 16, 16), attention_head_dim=1, norm_num_groups=4,
                         cross_attention_dim=8)


def _fill(state, seed=1234):
    """The deterministic weights recipe recorded in ``seine_official_unet_output.json``."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(state):
        v = state[k]
        if k.endswith("rotary_emb.freqs"):
            out[k] = v.clone()
            continue
        r = torch.randn(tuple(v.shape), generator=g)
        if v.ndim >= 2:
            out[k] = r / math.sqrt(math.prod(v.shape[1:]))
        elif k.endswith(".weight"):
            out[k] = 1 + 0.1 * r
        else:
            out[k] = 0.1 * r
    return out


def test_forward_matches_official_unet_output():
    """Same weights and inputs as the official module's recorded output (2 heads of 32 and
    48 dims, 5 frames, 12x12 latents: upsampling to odd sizes)."""
    golden = json.loads((Path(__file__).parent / "data" / "seine_official_unet_output.json").read_text())
    unet = SEINEUNet3DModel(**golden["config"]).eval()
    unet.load_state_dict(_fill(unet.state_dict()), strict=True)
    g = torch.Generator().manual_seed(99)
    x = torch.randn(2, 9, 5, 12, 12, generator=g)
    text = torch.randn(2, 77, 16, generator=g)
    with torch.no_grad():
        out = unet(x, torch.tensor(541), text)
    want = torch.tensor(golden["output"]).reshape(golden["output_shape"])
    assert float((out - want).abs().max()) < 1e-4, float((out - want).abs().max())
    assert float(want.abs().max()) > 1.0  # a non-trivial output
