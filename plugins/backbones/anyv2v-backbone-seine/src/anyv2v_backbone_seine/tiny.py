"""A tiny random SEINE in the layout the real loader reads (a few MB), for tests,
``anyv2v selftest --backbone seine`` and plugin authors::

    tiny/
      seine.safetensors          the SEINE UNet (official parameter names)
      unet/config.json           SD-1.x-style UNet config the SEINE UNet is built from
      vae/                       AutoencoderKL (3 blocks: factor 4, so a 64x64 clip has
                                 16x16 latents and the UNet's bottom is 2x2, not 1x1)
      text_encoder/, tokenizer/  CLIP text model and a character-level CLIP tokenizer

The UNet keeps every module name the injection uses (4 up blocks of 3 resnets, 3 cross
attention up blocks). Head size 32/64 (one head) so the 32-dim rotary embedding fits.
Following SPEC §6: few GroupNorm groups (8), and every parameter that default init leaves
exactly 0 or 1 is perturbed (SEINE zero-initialises the temporal output projection and
the relative position bias starts random), so no layer is a silent no-op.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from anyv2v_core.testing.tiny import hub_text_encoder_keys, perturb_trivial_parameters, save_char_tokenizer, tiny_vae

TINY_UNET = {
    "_class_name": "UNet2DConditionModel",
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "block_out_channels": [32, 32, 64, 64],
    "layers_per_block": 2,
    "attention_head_dim": 1,
    "cross_attention_dim": 32,
    "norm_num_groups": 8,
    "norm_eps": 1e-5,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "sample_size": 8,
}



def build_tiny_unet(seed: int = 0):
    """The tiny random SEINE UNet (perturbed as described above)."""
    from .backbone import unet_config
    from .unet import SEINEUNet3DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = SEINEUNet3DModel(**unet_config(TINY_UNET))
    perturb_trivial_parameters(unet, torch.Generator().manual_seed(seed + 1))
    return unet


def build_tiny_model(path: str | Path, seed: int = 0, vae_blocks: int = 3) -> Path:
    """Build and save the tiny model under ``path``; returns ``path``. ``vae_blocks`` 4
    gives SD's downsampling factor 8 (the official scripts hard-code it)."""
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    unet = build_tiny_unet(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        vae = tiny_vae((8,) + (16,) * (vae_blocks - 1), scaling_factor=0.18215)
        vocab_size = save_char_tokenizer(path / "tokenizer")
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=vocab_size,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                projection_dim=32,
                bos_token_id=vocab_size - 2,
                eos_token_id=vocab_size - 1,
                pad_token_id=vocab_size - 1,
            )
        )
    generator = torch.Generator().manual_seed(seed + 3)
    for module in (vae, text_encoder):
        perturb_trivial_parameters(module, generator)

    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(path / "seine.safetensors"),
              metadata={"format": "pt"})
    (path / "unet").mkdir(exist_ok=True)
    (path / "unet" / "config.json").write_text(json.dumps(TINY_UNET, indent=2))
    vae.save_pretrained(path / "vae", safe_serialization=True)
    text_encoder.save_pretrained(path / "text_encoder", safe_serialization=True)
    hub_text_encoder_keys(path / "text_encoder" / "model.safetensors")
    return path
