"""A tiny random I2VGen-XL in diffusers layout (a few MB), for tests and smoke runs.

It has the real module names the injection uses (4 up blocks; 3 resnets, 3 spatial and
3 temporal attentions in each cross-attention up block) and is saved with
``save_pretrained`` as safetensors, so loading goes through the real code path.
Following SPEC §6: few GroupNorm groups (8) so that the model is not chaotic, and every
parameter that default init leaves exactly 0 or 1 is perturbed, so no layer is a no-op.
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
    beta_schedule="squaredcos_cap_v2",
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    steps_offset=1,
    timestep_spacing="leading",
    set_alpha_to_one=True,
    clip_sample=False,
)



def build_tiny_model(path: str | Path, seed: int = 0, channels: int = 32) -> Path:
    """Build and save the tiny model under ``path``; returns ``path``."""
    from diffusers import DDIMScheduler, I2VGenXLUNet
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    dim = channels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = I2VGenXLUNet(
            in_channels=4,
            out_channels=4,
            block_out_channels=(dim, dim, dim, dim),
            layers_per_block=2,
            norm_num_groups=8,
            cross_attention_dim=dim,
            attention_head_dim=4,
            num_attention_heads=4,  # diffusers <0.27 read this key; write both
        )
        vae = tiny_vae((16, 32, 32))
        vocab_size = save_char_tokenizer(path / "tokenizer")
        text_encoder = tiny_clip_text_encoder(vocab_size, dim)
        image_encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=dim,
                intermediate_size=2 * dim,
                num_hidden_layers=2,
                num_attention_heads=4,
                image_size=32,
                patch_size=8,
                projection_dim=dim,
            )
        )
        generator = torch.Generator().manual_seed(seed + 1)
        for module in (unet, vae, text_encoder, image_encoder):
            perturb_trivial_parameters(module, generator)

    unet.save_pretrained(path / "unet", safe_serialization=True)
    vae.save_pretrained(path / "vae", safe_serialization=True)
    text_encoder.save_pretrained(path / "text_encoder", safe_serialization=True)
    hub_text_encoder_keys(path / "text_encoder" / "model.safetensors")
    image_encoder.save_pretrained(path / "image_encoder", safe_serialization=True)
    CLIPImageProcessor(
        crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32}
    ).save_pretrained(path / "feature_extractor")
    DDIMScheduler(**SCHEDULER_CONFIG).save_pretrained(path / "scheduler")
    index = {
        "_class_name": "I2VGenXLPipeline",
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "I2VGenXLUNet"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    return path
