"""Properties of the AnyDoor networks that hold for any weights (tiny random ones here)."""

import math

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def model(tiny_weights):
    from anyv2v_editor_anydoor.model import AnyDoorModel

    return AnyDoorModel.from_file(tiny_weights)


def inputs(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = model.config
    side = c.resolution // 8
    x = torch.randn(1, c.in_channels, side, side, generator=g)
    ctx = torch.randn(1, 5, c.context_dim, generator=g)
    hint = torch.randn(1, c.hint_channels, c.resolution, c.resolution, generator=g)
    return x, ctx, hint


@torch.no_grad()
def test_control_strength_zero_is_the_plain_unet_and_the_hint_matters(model):
    x, ctx, hint = inputs(model)
    t = torch.tensor(501)
    plain = model.unet(x, t, encoder_hidden_states=ctx).sample
    assert torch.allclose(model.predict_noise(x, t, ctx, hint, strength=0.0), plain, atol=1e-6)
    with_hint = model.predict_noise(x, t, ctx, hint)
    assert (with_hint - plain).abs().max() > 1e-3
    assert (model.predict_noise(x, t, ctx, -hint) - with_hint).abs().max() > 1e-3


@torch.no_grad()
def test_detail_extractor_does_not_see_the_noisy_latent(model):
    """AnyDoor's ControlNet replaces its first block's output by the hint embedding."""
    _, ctx, hint = inputs(model)
    t = torch.tensor(981)
    down, mid = model.control_residuals(t, ctx, hint)
    assert len(down) == 12 and mid.shape[1] == model.config.model_channels * model.config.channel_mult[-1]
    # the unused conv_in is part of the checkpoint, but changing it changes nothing
    before = [d.clone() for d in down]
    conv_in = model.controlnet.conv_in.weight
    saved = conv_in.clone()
    conv_in.add_(1.0)
    try:
        after, _ = model.control_residuals(t, ctx, hint)
    finally:
        conv_in.copy_(saved)
    assert all(torch.equal(a, b) for a, b in zip(before, after))


@torch.no_grad()
def test_position_embeddings_interpolate_like_official_dinov2(model):
    emb = model.image_encoder.embeddings
    size = model.config.reference_size
    n = size // model.config.dino_patch_size
    pos = emb.position_embeddings
    side = int(math.sqrt(pos.shape[1] - 1))
    grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, scale_factor=((n + 0.1) / side,) * 2, mode="bicubic")
    expected = torch.cat([pos[:, :1], expected.permute(0, 2, 3, 1).reshape(1, n * n, -1)], 1)
    got = emb.interpolate_pos_encoding(torch.zeros(1, n * n + 1, pos.shape[-1]), size, size)
    assert torch.equal(got, expected)
    tokens = model.encode_reference(torch.rand(1, 3, size, size))
    assert tokens.shape == (1, n * n + 1, model.config.context_dim)


def test_scheduler_is_the_official_ddim():
    from anyv2v_editor_anydoor.config import FULL
    from anyv2v_editor_anydoor.model import AnyDoorModel

    scheduler = AnyDoorModel.make_scheduler(type("M", (), {"config": FULL})())
    scheduler.set_timesteps(50)
    assert scheduler.timesteps.tolist() == list(range(981, 0, -20))
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000, dtype=np.float64) ** 2  # ldm "linear"
    alphas = np.cumprod(1 - betas)
    assert np.allclose(scheduler.alphas_cumprod.numpy(), alphas, rtol=1e-5)
    assert float(scheduler.final_alpha_cumprod) == pytest.approx(alphas[0], rel=1e-6)  # last step: to t=0
    assert scheduler.config.prediction_type == "epsilon" and not scheduler.config.clip_sample
