"""Small model-side helpers shared by backbones built on diffusers/transformers parts
(nothing model-specific: a VAE and a CLIP tokenizer of any backbone)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


def tokenize_prompt(tokenizer: Any, prompt: str, device: "torch.device | str") -> "torch.Tensor":
    """Token ids of ``prompt`` padded/truncated to the tokenizer's max length (CLIP style)."""
    return tokenizer(
        prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids.to(device)


def decode_latent_video(vae: Any, latents: "torch.Tensor", chunk: int = 1) -> "torch.Tensor":
    """Latents ``(1, C, F, h, w)`` -> frames ``(F, H, W, 3)`` in [0, 1] on the CPU, decoding
    ``chunk`` frames per VAE call (1 = the AnyV2V references' ``decode_chunk_size``)."""
    import torch

    frames = (latents / vae.config.scaling_factor)[0].permute(1, 0, 2, 3)
    images = torch.cat([vae.decode(frames[i : i + chunk]).sample for i in range(0, frames.shape[0], chunk)])
    return (images.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu()
