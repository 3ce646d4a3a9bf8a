"""A tiny random InstructPix2Pix in the diffusers layout of ``timbrooks/instruct-pix2pix``
(a few MB), for tests and smoke runs.

Same components and file names as the hub repo: a UNet with 8 input channels (noisy
latent + image latent), a VAE with scale factor 8, a CLIP text encoder (weights stored
under ``text_model.*`` as the hub checkpoint has them), a character-level CLIP tokenizer,
the Euler-ancestral scheduler config, and a ``model_index.json`` that names a safety
checker and feature extractor that are *not* there (the editor must not need them).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from anyv2v_core.testing.tiny import (
    hub_text_encoder_keys, perturb_trivial_parameters, save_char_tokenizer, tiny_clip_text_encoder, tiny_vae,
)

SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
    steps_offset=1,
)

MODEL_INDEX = {
    "_class_name": "StableDiffusionInstructPix2PixPipeline",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "requires_safety_checker": True,
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}



def build_tiny_model(path: str | Path, seed: int = 0, channels: int = 16) -> Path:
    """Build and save the tiny model under ``path``; returns ``path``."""
    from diffusers import EulerAncestralDiscreteScheduler, UNet2DConditionModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    dim = channels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=8,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(dim, 2 * dim),
            layers_per_block=1,
            norm_num_groups=8,
            cross_attention_dim=dim,
            attention_head_dim=4,
        )
        vae = tiny_vae((8, 8, 16, 16))
        vocab_size = save_char_tokenizer(path / "tokenizer")
        text_encoder = tiny_clip_text_encoder(vocab_size, dim)
        generator = torch.Generator().manual_seed(seed + 1)
        for module in (unet, vae, text_encoder):
            perturb_trivial_parameters(module, generator)

    unet.save_pretrained(path / "unet", safe_serialization=True)
    vae.save_pretrained(path / "vae", safe_serialization=True)
    text_encoder.save_pretrained(path / "text_encoder", safe_serialization=True)
    hub_text_encoder_keys(path / "text_encoder" / "model.safetensors")
    EulerAncestralDiscreteScheduler(**SCHEDULER_CONFIG).save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2))
    return path
