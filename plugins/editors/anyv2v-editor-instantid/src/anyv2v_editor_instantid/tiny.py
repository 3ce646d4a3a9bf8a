"""Tiny random SDXL base and InstantID weights in the real layouts (a few MB), for tests.

* :func:`build_tiny_sdxl`: ``unet/ vae/ text_encoder/ text_encoder_2/ tokenizer/
  tokenizer_2/ scheduler/ model_index.json`` as ``stabilityai/stable-diffusion-xl-base-1.0``
  (SDXL's added text/time embedding, two CLIP encoders, Euler scheduler, VAE factor 8).
* :func:`build_tiny_instantid`: ``ControlNetModel/`` (an IdentityNet made from that UNet)
  and ``ip-adapter.bin`` pickled exactly as the official file: ``{"image_proj": Resampler
  state, "ip_adapter": {"<n>.to_k_ip.weight", ...}}`` numbered over all processors.

SPEC §6: few GroupNorm groups, and every exact-0/1 parameter perturbed, so no layer (zero
convolutions of the ControlNet included) is a no-op.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from anyv2v_core.testing.tiny import hub_text_encoder_keys, perturb_trivial_parameters, save_char_tokenizer, tiny_vae

from .adapter import Resampler

#: SDXL base's scheduler config (``scheduler/scheduler_config.json``).
SDXL_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    prediction_type="epsilon", steps_offset=1, timestep_spacing="leading", interpolation_type="linear",
    use_karras_sigmas=False, sample_max_value=1.0, clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True,
)
TEXT_DIM = 16  # each text encoder; the UNet's cross-attention width is 2 * TEXT_DIM as in SDXL (768 + 1280)


def _clip_config(vocab_size: int, **extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=vocab_size, hidden_size=TEXT_DIM, intermediate_size=2 * TEXT_DIM,
                          num_hidden_layers=3, num_attention_heads=2, max_position_embeddings=77,
                          bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1, **extra)



def tiny_unet(seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
        transformer_layers_per_block=(1, 2), attention_head_dim=(2, 4),
        cross_attention_dim=2 * TEXT_DIM, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=TEXT_DIM + 6 * 8,
    )


def build_tiny_sdxl(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny random SDXL base under ``path``; returns ``path``."""
    from diffusers import EulerDiscreteScheduler
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = save_char_tokenizer(path / "tokenizer")
    save_char_tokenizer(path / "tokenizer_2")
    with torch.random.fork_rng(devices=[]):
        unet = tiny_unet(seed)
        vae = tiny_vae((8, 16, 16, 16), scaling_factor=0.13025, force_upcast=True)
        text_encoder = CLIPTextModel(_clip_config(vocab))
        text_encoder_2 = CLIPTextModelWithProjection(_clip_config(vocab, projection_dim=TEXT_DIM))
        generator = torch.Generator().manual_seed(seed + 1)
        for module in (unet, vae, text_encoder, text_encoder_2):
            perturb_trivial_parameters(module, generator)
    unet.save_pretrained(path / "unet", safe_serialization=True)
    vae.save_pretrained(path / "vae", safe_serialization=True)
    for name, enc in (("text_encoder", text_encoder), ("text_encoder_2", text_encoder_2)):
        enc.save_pretrained(path / name, safe_serialization=True)
        hub_text_encoder_keys(path / name / "model.safetensors")
    EulerDiscreteScheduler(**{k: v for k, v in SDXL_SCHEDULER.items() if k not in
                              ("clip_sample", "set_alpha_to_one", "skip_prk_steps", "sample_max_value")}
                           ).save_pretrained(path / "scheduler")
    index = {"_class_name": "StableDiffusionXLPipeline",
             "scheduler": ["diffusers", "EulerDiscreteScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"],
             "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    return path


def official_adapter_state(unet, resampler: Resampler, generator: torch.Generator) -> dict:
    """``{"image_proj": ..., "ip_adapter": ...}`` as the official ``ip-adapter.bin``:
    random ``to_k_ip``/``to_v_ip`` for every cross-attention, numbered by its position
    among ALL of ``unet.attn_processors``."""
    ip: dict[str, torch.Tensor] = {}
    blocks = list(unet.config.block_out_channels)
    for n, name in enumerate(unet.attn_processors):
        if not name.endswith("attn2.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = blocks[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(blocks))[int(name.split(".")[1])]
        else:
            hidden = blocks[int(name.split(".")[1])]
        for proj in ("to_k_ip", "to_v_ip"):
            ip[f"{n}.{proj}.weight"] = torch.randn(hidden, unet.config.cross_attention_dim, generator=generator) * 0.5
    return {"image_proj": resampler.state_dict(), "ip_adapter": ip}


def build_tiny_instantid(path: str | Path, sdxl: str | Path, seed: int = 0, safetensors: bool = False) -> Path:
    """Save tiny InstantID weights fitting the tiny SDXL at ``sdxl``: ``ControlNetModel/``
    and ``ip-adapter.bin`` (pickled, official layout; ``safetensors=True`` also writes the
    converted ``ip-adapter.safetensors``). Returns ``path``."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    from .adapter import convert_adapter

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    unet = UNet2DConditionModel.from_pretrained(Path(sdxl) / "unet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 10)
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 16, 16))
        resampler = Resampler(dim=32, depth=2, dim_head=64, heads=2, num_queries=16, embedding_dim=512,
                              output_dim=unet.config.cross_attention_dim, ff_mult=4)
        generator = torch.Generator().manual_seed(seed + 11)
        for module in (controlnet, resampler):
            perturb_trivial_parameters(module, generator)
        # a zero-initialised hint embedding makes the keypoint image nearly irrelevant; give
        # it weight so that the pose visibly steers a tiny model
        with torch.no_grad():
            for conv in controlnet.controlnet_cond_embedding.modules():
                if isinstance(conv, torch.nn.Conv2d):  # He init: the hint keeps its scale
                    std = (2.0 / conv.weight[0].numel()) ** 0.5
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
        state = official_adapter_state(unet, resampler, generator)
    controlnet.save_pretrained(path / "ControlNetModel", safe_serialization=True)
    torch.save(state, path / "ip-adapter.bin")
    if safetensors:
        convert_adapter(path / "ip-adapter.bin", path / "ip-adapter.safetensors")
    return path
