"""Architecture hyper-parameters of AnyDoor, named after the official ``configs/anydoor.yaml``.

:data:`FULL` is the published model (SD-2.1 UNet + ControlNet detail extractor, SD VAE,
DINOv2 ViT-g/14 ID extractor). Tests use much smaller widths with the same structure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class AnyDoorConfig:
    # UNet and ControlNet (`unet_config` / `control_stage_config`)
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    num_head_channels: int = 64
    context_dim: int = 1024
    in_channels: int = 4
    hint_channels: int = 4  # high-frequency collage RGB + box mask
    hint_block_channels: tuple[int, ...] = (16, 32, 96, 256)
    norm_num_groups: int = 32  # the official GroupNorm32; tiny test models use fewer
    # VAE (`first_stage_config.ddconfig`)
    vae_ch: int = 128
    vae_ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    vae_num_res_blocks: int = 2
    z_channels: int = 4
    vae_norm_num_groups: int = 32
    scale_factor: float = 0.18215
    # ID extractor: DINOv2 ViT-g/14 (`FrozenDinoV2Encoder`) + projector to context_dim
    dino_hidden_size: int = 1536
    dino_layers: int = 40
    dino_heads: int = 24
    dino_mlp_ratio: int = 4
    dino_image_size: int = 518  # size the position embeddings were trained for
    dino_patch_size: int = 14
    # Diffusion schedule (ldm "linear" = diffusers "scaled_linear")
    num_train_timesteps: int = 1000
    linear_start: float = 0.00085
    linear_end: float = 0.0120
    # Working sizes of the inference preprocessing (`run_inference.py`)
    resolution: int = 512  # target crop / control hint side
    reference_size: int = 224  # DINOv2 input side
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "AnyDoorConfig":
        data = json.loads(text)
        for key in ("channel_mult", "hint_block_channels", "vae_ch_mult"):
            if key in data:
                data[key] = tuple(data[key])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


FULL = AnyDoorConfig()
