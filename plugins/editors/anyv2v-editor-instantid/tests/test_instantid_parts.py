"""The parts of the InstantID path checked in isolation: keypoint drawing against the
official draw_kps, the Resampler's sizes, the decoupled cross-attention, the adapter's
processor numbering, and what the UNet and the IdentityNet see."""

from pathlib import Path

import numpy as np
import pytest
import torch

from anyv2v_core.errors import InputError
from anyv2v_editor_instantid.adapter import (DecoupledCrossAttnProcessor, install_adapter, load_adapter_file,
                                             resampler_config)
from anyv2v_editor_instantid.faces import KPS_COLORS, Face, draw_keypoints, largest_face, resize_like_infer

DATA = Path(__file__).parent / "data"


def test_draw_keypoints_matches_official_draw_kps():
    """tests/data/official_draw_kps.npz: the official draw_kps (OpenCV) on 6 random face
    poses at 256x192, made once in a reference environment."""
    ref = np.load(DATA / "official_draw_kps.npz")
    for kps, image in zip(ref["kps"], ref["images"]):
        ours = np.asarray(draw_keypoints((256, 192), kps))
        assert ours.shape == image.shape
        assert (ours != image).any(axis=-1).sum() <= 3  # OpenCV's and PIL's polygon edges may differ by a pixel


def test_draw_keypoints_colours():
    kps = np.array([[20, 30], [70, 30], [45, 55], [25, 80], [65, 80]], dtype=np.float32)
    image = np.asarray(draw_keypoints((96, 112), kps))
    for (x, y), colour in zip(kps.astype(int), KPS_COLORS):
        assert tuple(image[y, x]) == colour  # dots in full colour
    # limbs at 60 %: halfway between the left mouth corner (yellow) and the nose, outside both dots
    assert tuple(image[(80 + 55) // 2 - 1, (25 + 45) // 2]) in {(153, 153, 0)}
    assert tuple(image[0, 0]) == (0, 0, 0)


def test_resize_like_infer():
    from PIL import Image

    assert resize_like_infer(Image.new("RGB", (512, 512))).size == (1280, 1280)
    assert resize_like_infer(Image.new("RGB", (640, 480))).size == (1280, 960)
    assert resize_like_infer(Image.new("RGB", (64, 64)), 64, 64).size == (64, 64)


def test_largest_face_and_errors():
    small = Face((0, 0, 10, 10), np.zeros((5, 2)), np.zeros(512))
    big = Face((0, 0, 30, 20), np.zeros((5, 2)), np.ones(512))
    assert largest_face([small, big, small], "x") is big
    with pytest.raises(InputError, match="no face found in the first frame"):
        largest_face([], "the first frame")


def test_resampler_size_is_derived_from_the_weights():
    """The official checkpoint's shapes give the official hard-coded configuration."""
    meta = lambda *s: torch.empty(*s, device="meta")  # noqa: E731
    state = {"latents": meta(1, 16, 1280), "proj_in.weight": meta(1280, 512), "proj_out.weight": meta(2048, 1280)}
    for i in range(4):
        state |= {f"layers.{i}.0.to_q.weight": meta(1280, 1280), f"layers.{i}.1.1.weight": meta(5120, 1280)}
    assert resampler_config(state) == dict(dim=1280, depth=4, dim_head=64, heads=20, num_queries=16, embedding_dim=512,
                                           output_dim=2048, ff_mult=4)


@pytest.fixture(scope="module")
def generator(tiny_sdxl, tiny_instantid):
    from anyv2v_editor_instantid.pipeline import InstantIDGenerator

    return InstantIDGenerator(str(tiny_sdxl), str(tiny_instantid))


def test_adapter_numbering_and_mismatch(generator, tiny_instantid):
    from diffusers import UNet2DConditionModel

    _, ip = load_adapter_file(tiny_instantid / "ip-adapter.bin")
    numbers = {int(k.split(".")[0]) for k in ip}
    names = list(generator.unet.attn_processors)
    assert all(n % 2 == 1 and names[n].endswith("attn2.processor") for n in numbers)
    assert len(numbers) == sum(n.endswith("attn2.processor") for n in names)
    procs = [p for p in generator.unet.attn_processors.values() if isinstance(p, DecoupledCrossAttnProcessor)]
    assert len(procs) == len(numbers) and all(p.num_tokens == 16 for p in procs)

    unet = UNet2DConditionModel.from_pretrained(generator.sdxl_path / "unet")
    shifted = {f"{int(k.split('.')[0]) - 1}.{k.split('.', 1)[1]}": v for k, v in ip.items()}
    with pytest.raises(InputError, match="do not fit this UNet"):
        install_adapter(unet, shifted, 16, 1.0)
    before = {k: type(v) for k, v in unet.attn_processors.items()}
    old = install_adapter(unet, ip, 16, 1.0)
    unet.set_attn_processor(old)
    assert {k: type(v) for k, v in unet.attn_processors.items()} == before


def test_adapter_scale_zero_is_the_plain_unet(generator, tiny_sdxl):
    """With scale 0 the face tokens drop out: the UNet on [text, face] equals the stock
    UNet (diffusers' own processors) on the text alone."""
    from diffusers import UNet2DConditionModel

    from anyv2v_editor_instantid.adapter import set_adapter_scale

    plain = UNet2DConditionModel.from_pretrained(tiny_sdxl / "unet").eval()
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g)
    face = torch.randn(2, 16, 32, generator=g)
    added = {"text_embeds": torch.randn(2, 16, generator=g), "time_ids": torch.tensor([[64., 64, 0, 0, 64, 64]] * 2)}
    t = torch.tensor(500)
    with torch.no_grad():
        set_adapter_scale(generator.unet, 0.0)
        ours = generator.unet(x, t, encoder_hidden_states=torch.cat([text, face], 1), added_cond_kwargs=added).sample
        ref = plain(x, t, encoder_hidden_states=text, added_cond_kwargs=added).sample
        set_adapter_scale(generator.unet, 0.8)
        with_face = generator.unet(x, t, encoder_hidden_states=torch.cat([text, face], 1), added_cond_kwargs=added).sample
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert (with_face - ref).abs().max() > 1e-2


def test_decoupled_attention_is_text_plus_scaled_face(generator):
    """out(s) = to_out(attn(text) + s * attn_ip(face)): affine in the scale."""
    name = next(k for k, p in generator.unet.attn_processors.items() if isinstance(p, DecoupledCrossAttnProcessor))
    attn = generator.unet.get_submodule(name.rsplit(".processor", 1)[0])
    g = torch.Generator().manual_seed(1)
    hidden, context = torch.randn(2, 10, attn.inner_dim, generator=g), torch.randn(2, 77 + 16, 32, generator=g)
    outs = []
    with torch.no_grad():
        for s in (0.0, 1.0, 2.0):
            attn.processor.scale = s
            outs.append(attn(hidden, encoder_hidden_states=context))
    attn.processor.scale = 0.8
    torch.testing.assert_close(outs[2] - outs[1], outs[1] - outs[0], rtol=1e-4, atol=1e-5)
    assert (outs[1] - outs[0]).abs().max() > 1e-3


def test_what_unet_and_identitynet_see(generator):
    """UNet context: 77 text + 16 face tokens; IdentityNet context: the 16 face tokens only;
    unconditional face tokens = Resampler(zero embedding); the embedding is not normalised."""
    seen = {}

    def grab(name):
        def hook(module, args, kwargs):
            seen[name] = kwargs["encoder_hidden_states"].clone()
        return hook

    handles = [generator.unet.register_forward_pre_hook(grab("unet"), with_kwargs=True),
               generator.controlnet.register_forward_pre_hook(grab("controlnet"), with_kwargs=True)]
    emb = np.random.default_rng(0).standard_normal(512).astype(np.float32) * 20
    from anyv2v_editor_instantid.faces import draw_keypoints
    from anyv2v_editor_instantid.pipeline import GenerationSettings

    kps = np.array([[20, 25], [44, 25], [32, 36], [23, 48], [41, 48]], dtype=np.float32)
    try:
        generator.generate("a", "b", emb, draw_keypoints((64, 64), kps), GenerationSettings(steps=1))
    finally:
        for h in handles:
            h.remove()
    assert seen["unet"].shape == (2, 77 + 16, 32) and seen["controlnet"].shape == (2, 16, 32)
    with torch.no_grad():
        zero = generator.resampler(torch.zeros(1, 1, 512))
        cond = generator.resampler(torch.from_numpy(emb).reshape(1, 1, 512))
        normalised = generator.resampler(torch.from_numpy(emb / np.linalg.norm(emb)).reshape(1, 1, 512))
    torch.testing.assert_close(seen["controlnet"], torch.cat([zero, cond]))
    torch.testing.assert_close(seen["unet"][:, 77:], torch.cat([zero, cond]))
    assert (normalised - cond).abs().max() > 1e-3
