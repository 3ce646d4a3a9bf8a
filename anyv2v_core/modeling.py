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


def image_to_tensor(image: Any) -> "torch.Tensor":
    """A PIL image as an RGB float tensor ``(1, 3, H, W)`` in [0, 1] (``* 2 - 1`` for a VAE)."""
    import numpy as np
    import torch

    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None]


def encode_latents(vae: Any, pixels: "torch.Tensor", generator: "torch.Generator | None" = None) -> "torch.Tensor":
    """VAE latents of ``pixels`` (``(B, 3, H, W)`` in [-1, 1], on the VAE's device and dtype),
    scaled by the VAE's scaling factor: the posterior mean, or a sample drawn with ``generator``."""
    dist = vae.encode(pixels).latent_dist
    latent = dist.mean if generator is None else dist.sample(generator=generator)
    return latent * vae.config.scaling_factor
