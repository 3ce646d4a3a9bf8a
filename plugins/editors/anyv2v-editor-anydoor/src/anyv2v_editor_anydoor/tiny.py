"""A tiny random AnyDoor with the published structure (4 UNet/ControlNet levels, 2 res
blocks each, attention on the first three, 8-conv hint block, 4-level VAE, SwiGLU DINOv2
with layer scale, projector) at small widths, for tests and smoke runs (about 3 MB).

Following SPEC §6: 8 GroupNorm groups, and every parameter left exactly 0 or 1 by default
init (ControlNet zero convolutions, norm weights, layer scales) is perturbed, so no layer
is a no-op.
"""

from __future__ import annotations

from pathlib import Path

from .config import AnyDoorConfig

TINY = AnyDoorConfig(
    model_channels=16,
    channel_mult=(1, 2, 4, 4),
    num_res_blocks=2,
    num_head_channels=8,
    context_dim=32,
    hint_block_channels=(8, 8, 16, 16),
    norm_num_groups=8,
    vae_ch=8,
    vae_ch_mult=(1, 2, 4, 4),
    vae_num_res_blocks=2,
    vae_norm_num_groups=8,
    dino_hidden_size=32,
    dino_layers=2,
    dino_heads=4,
    dino_image_size=42,  # 3x3 position grid, interpolated to 2x2 for 28² references
    resolution=64,
    reference_size=28,
)


def build_tiny_model(path: str | Path, seed: int = 0, config: AnyDoorConfig = TINY):
    """Build the tiny model and save it as one safetensors file at ``path``; returns the model."""
    import torch

    from anyv2v_core.testing.tiny import perturb_trivial_parameters

    from .model import AnyDoorModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AnyDoorModel(config)
    perturb_trivial_parameters(model, torch.Generator().manual_seed(seed + 1))
    model.eval().requires_grad_(False)
    model.save(path)
    return model
