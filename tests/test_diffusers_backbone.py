"""DiffusersBackbone (the shared half of diffusers-style backbones) on a toy backbone built
here from a tiny random VAE, CLIP text encoder and a one-layer denoiser, saved as
safetensors and loaded through the real loading path."""

import pytest
import torch
from torch import nn

from anyv2v_core.diffusers_backbone import DiffusersBackbone, weights_fingerprint
from anyv2v_core.errors import ModelNotFoundError
from anyv2v_core.protocols import BackboneDefaults, ClipSpec, InjectionPattern, InversionOptions, MemoryOptions
from anyv2v_core.testing.tiny import save_char_tokenizer, synthetic_frames, tiny_clip_text_encoder, tiny_vae

REQUIRED = ("vae/config.json", "vae/*.safetensors", "text_encoder/config.json", "text_encoder/*.safetensors",
            "tokenizer/*", "denoiser.safetensors")
CLIP = ClipSpec(3, 32, 32, 8)


class Denoiser(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x, t, text):  # x: (B, C, F, h, w)
        b, c, f, h, w = x.shape
        y = self.conv(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)).reshape(b, f, c, h, w)
        return y.permute(0, 2, 1, 3, 4) + text.mean() * 0.01


class ToyBackbone(DiffusersBackbone):
    name = "toy-diffusers"
    default_model = "nobody/toy-diffusers"
    defaults = BackboneDefaults(n_frames=3, width=32, height=32, fps=8, inversion_steps=10, steps=5, cfg=2.0,
                                t_idx=0, tau_conv=0.5, tau_sa=0.5, tau_ta=0.5)
    injection_patterns = (InjectionPattern("conv", "conv", "conv-output"),)

    def __init__(self, model=None, device="cpu", dtype=torch.float32, stride: int = 1):
        super().__init__(model, device, dtype, stride=stride)

    def load(self):
        from diffusers import AutoencoderKL
        from safetensors.torch import load_file
        from transformers import CLIPTextModel, CLIPTokenizer

        root = self.resolve(REQUIRED)
        self.vae = self.place(AutoencoderKL.from_pretrained(root / "vae", use_safetensors=True))
        self.text_encoder = self.place(CLIPTextModel.from_pretrained(root / "text_encoder", use_safetensors=True))
        self.tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
        self.denoiser = Denoiser()
        self.denoiser.load_state_dict(load_file(str(root / "denoiser.safetensors")))
        self.place(self.denoiser)
        return [root]

    def make_scheduler(self, sampler="ddim"):
        from diffusers import DDIMScheduler

        return DDIMScheduler()

    def make_inverse_scheduler(self):
        from diffusers import DDIMInverseScheduler

        return DDIMInverseScheduler()

    def condition(self, image, prompt, clip, *, negative=False):
        return {"text": self.encode_text(prompt)}

    def predict(self, sample, timestep, cond):
        return self.denoiser(sample, timestep, cond["text"])


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("toy-diffusers")
    tiny_vae((8, 16), sample_size=32).save_pretrained(root / "vae", safe_serialization=True)
    vocab = save_char_tokenizer(root / "tokenizer")
    tiny_clip_text_encoder(vocab, dim=16, layers=1, heads=2).save_pretrained(root / "text_encoder",
                                                                              safe_serialization=True)
    save_file(Denoiser().state_dict(), str(root / "denoiser.safetensors"))
    return root


@pytest.fixture(scope="module")
def frames():
    return synthetic_frames(CLIP.n_frames, CLIP.width, CLIP.height, seed=1)


def test_loads_and_fingerprints_weights_and_options(toy_model, tmp_path):
    a = ToyBackbone(str(toy_model))
    assert a.model_id == str(toy_model) and a.options == {"stride": 1}
    assert a.model_fingerprint == weights_fingerprint([toy_model], {"stride": 1})
    assert a.model_fingerprint.endswith("+stride=1")
    b = ToyBackbone(str(toy_model), stride=2)
    assert b.model_fingerprint != a.model_fingerprint
    assert b.model_fingerprint.split("+")[0] == a.model_fingerprint.split("+")[0]
    assert weights_fingerprint([toy_model, toy_model]) == weights_fingerprint([toy_model])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="lacks vae/config.json"):
        ToyBackbone(str(empty))


def test_offline_hub_id_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match="'nobody/toy-diffusers' are not available: HF_HUB_OFFLINE"):
        ToyBackbone()


def test_text_cache_and_vae_chunks(toy_model, frames):
    bb = ToyBackbone(str(toy_model))
    text = bb.encode_text("a prompt")
    assert bb.encode_text("a prompt") is text and text.shape[0] == 1
    one = bb.encode_video(frames)
    assert one.shape == (1, 4, 3, 16, 16)
    assert torch.equal(bb.encode_frame(frames[1]), one[:, :, 1])
    decoded = bb.decode_video(one)
    assert decoded.shape == (3, 32, 32, 3) and decoded.device.type == "cpu"
    bb.configure_memory(MemoryOptions(vae_chunk=2))
    assert torch.allclose(bb.encode_video(frames), one, atol=1e-5)
    assert torch.allclose(bb.decode_video(one), decoded, atol=1e-5)
    g1, g2 = (torch.Generator().manual_seed(4) for _ in range(2))
    bb.configure_memory(MemoryOptions())
    assert torch.equal(bb.encode_video(frames, g1), bb.encode_video(frames, g2))
    assert not torch.equal(bb.encode_video(frames, torch.Generator().manual_seed(5)), one)


def test_every_memory_option_applies_and_undoes(toy_model, frames):
    from anyv2v_core.sampling import invert

    bb = ToyBackbone(str(toy_model))
    opts = InversionOptions(steps=4, prompt="")
    base = invert(bb, frames, CLIP, opts)
    bb.configure_memory(MemoryOptions(vae_chunk=3, vae_tiling=True, offload=True, channels_last=True))
    models = (bb.text_encoder, bb.vae, bb.denoiser)
    assert all(hasattr(m, "_hf_hook") for m in models)  # accelerate's offload hooks
    assert bb.vae.use_tiling
    assert bb.denoiser.conv.weight.is_contiguous(memory_format=torch.channels_last)
    bb._text_cache.clear()
    low = invert(bb, frames, CLIP, opts)
    for t in base.latents:
        assert torch.allclose(low.latents[t], base.latents[t], atol=1e-4)
    bb.configure_memory(MemoryOptions())
    assert not any(hasattr(m, "_hf_hook") for m in models) and not bb.vae.use_tiling
    assert bb.denoiser.conv.weight.is_contiguous()
    again = invert(bb, frames, CLIP, opts)
    assert all(torch.equal(again.latents[t], base.latents[t]) for t in base.latents)


def test_offload_moves_a_model_used_outside_forward_to_the_device(toy_model, frames):
    """The VAE runs through ``encode``/``decode``, which accelerate's hook on ``forward``
    never sees: ``on_device`` moves it in itself (and the hook offloads it after)."""
    bb = ToyBackbone(str(toy_model))
    bb.configure_memory(MemoryOptions(offload=True))
    moved = []
    original = bb.vae.to
    bb.vae.to = lambda *a, **k: (moved.append(a), original(*a, **k))[1]
    with bb.on_device(bb.vae):
        assert moved and moved[0][0] == bb.device
    bb.configure_memory(MemoryOptions())


def test_backbone_options_are_part_of_the_cache_key(toy_model, frames, tmp_path):
    from anyv2v_core.api import obtain_inversion

    visit = [800, 600]
    opts = InversionOptions(steps=5)
    _, reused = obtain_inversion(ToyBackbone(str(toy_model)), frames, CLIP, opts, visit, cache=tmp_path)
    assert not reused
    _, reused = obtain_inversion(ToyBackbone(str(toy_model)), frames, CLIP, opts, visit, cache=tmp_path)
    assert reused
    _, reused = obtain_inversion(ToyBackbone(str(toy_model), stride=2), frames, CLIP, opts, visit, cache=tmp_path)
    assert not reused



def test_api_configure_memory_switches_a_reused_backbone_back(toy_model):
    from anyv2v_core import api

    bb = ToyBackbone(str(toy_model))
    api.configure_memory(bb, MemoryOptions(offload=True, vae_chunk=2))
    assert hasattr(bb.vae, "_hf_hook") and bb.memory.vae_chunk == 2
    api.configure_memory(bb, None)  # None leaves the backbone as it is
    assert hasattr(bb.vae, "_hf_hook")
    api.configure_memory(bb, MemoryOptions())
    assert not hasattr(bb.vae, "_hf_hook") and bb.memory == MemoryOptions()
