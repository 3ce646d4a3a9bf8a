"""A tiny random ConsistI2V in the official ``TIGER-Lab/ConsistI2V`` folder layout (a few MB).

Same module names as the real model (4 down/up blocks, 3 layers per up block, spatial and
temporal transformers, temporal resnets), saved as safetensors with the official UNet class
name in ``unet/config.json``, so loading goes through the real code path. Following SPEC §6:
4 GroupNorm groups in the spatial layers (8 values per group even at the 1x1 bottom of a
64x64 clip; the temporal resnets keep the official 32), an 8x VAE as the real one, every parameter that
default init leaves exactly 0 or 1 perturbed, and every ``alpha`` mixer drawn in [0.2, 0.8]
(so that neither branch of a mix is a no-op).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from anyv2v_core.testing.tiny import (
    hub_text_encoder_keys, perturb_trivial_parameters, save_char_tokenizer, tiny_clip_text_encoder, tiny_vae,
)

#: The official checkpoint's UNet class (``unet/config.json`` ``_class_name``).
OFFICIAL_UNET_CLASS = "VideoLDMUNet3DConditionModel"

SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="linear",
    steps_offset=1,
    clip_sample=False,
    set_alpha_to_one=False,
    prediction_type="epsilon",
    timestep_spacing="leading",
)

TINY_UNET = dict(
    sample_size=8,
    block_out_channels=(32, 32, 32, 32),
    layers_per_block=2,
    norm_num_groups=4,
    cross_attention_dim=32,
    attention_head_dim=(2, 2, 2, 2),
    n_temp_heads=4,
    n_frames=8,
)



def build_tiny_model(path: str | Path, seed: int = 0) -> Path:
    """Build and save the tiny model under ``path``; returns ``path``."""
    from diffusers import DDIMScheduler

    from .unet import ConsistI2VUNet

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    dim = 32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = ConsistI2VUNet(**TINY_UNET)
        vae = tiny_vae((16, 16, 32, 32))
        vocab_size = save_char_tokenizer(path / "tokenizer")
        text_encoder = tiny_clip_text_encoder(vocab_size, dim)
        generator = torch.Generator().manual_seed(seed + 1)
        for module in (unet, vae, text_encoder):
            perturb_trivial_parameters(module, generator)
        with torch.no_grad():
            for name, param in unet.named_parameters():
                if name.endswith("alpha"):
                    param.copy_(0.2 + 0.6 * torch.rand(param.shape, generator=generator))

    unet.save_pretrained(path / "unet", safe_serialization=True)
    config_file = path / "unet" / "config.json"
    config = json.loads(config_file.read_text())
    config["_class_name"] = OFFICIAL_UNET_CLASS
    config_file.write_text(json.dumps(config, indent=2))
    vae.save_pretrained(path / "vae", safe_serialization=True)
    text_encoder.save_pretrained(path / "text_encoder", safe_serialization=True)
    hub_text_encoder_keys(path / "text_encoder" / "model.safetensors")
    DDIMScheduler(**SCHEDULER_CONFIG).save_pretrained(path / "scheduler")
    index = {
        "_class_name": "ConditionalAnimationPipeline",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["videoldm_unet", OFFICIAL_UNET_CLASS],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    return path
