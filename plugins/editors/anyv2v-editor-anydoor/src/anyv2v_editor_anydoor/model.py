"""AnyDoor on diffusers/transformers building blocks.

The official model (``cldm.cldm.ControlLDM``) has four parts; ours keeps them as children
of :class:`AnyDoorModel` (state-dict names are mapped in :mod:`.mapping`):

* ``unet`` — :class:`diffusers.UNet2DConditionModel`, the SD-2.1 denoiser
  (``model.diffusion_model``), cross-attending to the ID tokens instead of text;
* ``controlnet`` — :class:`diffusers.ControlNetModel`, the detail extractor
  (``control_model``) fed by the 4-channel collage hint. AnyDoor differs from a standard
  ControlNet: the hint embedding *replaces* the first block's output, so the noisy latent
  never enters the detail extractor (its ``conv_in`` weights exist but are unused);
* ``vae`` — :class:`diffusers.AutoencoderKL` (``first_stage_model``);
* ``image_encoder`` + ``projector`` — :class:`transformers.Dinov2Model` (ViT-g/14,
  ``cond_stage_model.model``) and the ``Linear(1536, 1024)`` that maps its normalised
  class + patch tokens to the cross-attention context (``cond_stage_model.projector``).
"""

from __future__ import annotations

import math
import types
from pathlib import Path

import torch
from torch import nn

from .config import AnyDoorConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CONFIG_METADATA_KEY = "anydoor_config"


def _official_pos_interpolation(self: nn.Module, embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """DINOv2's own position-embedding interpolation (the vendored ``vision_transformer``):
    bicubic with ``scale_factor=(n + 0.1) / sqrt(N)``, which samples a slightly different
    grid than transformers' ``size=n`` version."""
    num_patches = embeddings.shape[1] - 1
    pos = self.position_embeddings
    n_pos = pos.shape[1] - 1
    if num_patches == n_pos and height == width:
        return pos
    dtype = pos.dtype
    pos = pos.float()
    side = int(math.sqrt(n_pos))
    patch = self.patch_embeddings.patch_size
    patch = patch[0] if isinstance(patch, (tuple, list)) else patch
    h0, w0 = height // patch + 0.1, width // patch + 0.1
    grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = nn.functional.interpolate(grid, scale_factor=(w0 / side, h0 / side), mode="bicubic")
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])
    return torch.cat((pos[:, :1], grid), dim=1).to(dtype)


class AnyDoorModel(nn.Module):
    """The four AnyDoor networks; build with a config, load with :meth:`from_file`."""

    def __init__(self, config: AnyDoorConfig) -> None:
        super().__init__()
        from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
        from transformers import Dinov2Config, Dinov2Model

        self.config = config
        c = config
        widths = tuple(c.model_channels * m for m in c.channel_mult)
        heads = tuple(w // c.num_head_channels for w in widths)
        n = len(widths)
        down = ("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",)
        shared = dict(
            in_channels=c.in_channels,
            flip_sin_to_cos=True,
            freq_shift=0,
            down_block_types=down,
            block_out_channels=widths,
            layers_per_block=c.num_res_blocks,
            norm_num_groups=c.norm_num_groups,
            cross_attention_dim=c.context_dim,
            attention_head_dim=heads,  # diffusers' legacy name: the number of heads
            use_linear_projection=True,
        )
        self.unet = UNet2DConditionModel(
            sample_size=c.resolution // 8,
            out_channels=c.in_channels,
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
            **shared,
        )
        self.controlnet = ControlNetModel(
            conditioning_channels=c.hint_channels,
            conditioning_embedding_out_channels=c.hint_block_channels,
            **shared,
        )
        vae_widths = tuple(c.vae_ch * m for m in c.vae_ch_mult)
        self.vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * len(vae_widths),
            up_block_types=("UpDecoderBlock2D",) * len(vae_widths),
            block_out_channels=vae_widths,
            layers_per_block=c.vae_num_res_blocks,
            latent_channels=c.z_channels,
            norm_num_groups=c.vae_norm_num_groups,
            sample_size=c.resolution,
            scaling_factor=c.scale_factor,
        )
        self.image_encoder = Dinov2Model(
            Dinov2Config(
                hidden_size=c.dino_hidden_size,
                num_hidden_layers=c.dino_layers,
                num_attention_heads=c.dino_heads,
                mlp_ratio=c.dino_mlp_ratio,
                use_swiglu_ffn=True,
                image_size=c.dino_image_size,
                patch_size=c.dino_patch_size,
                layerscale_value=1.0,
                layer_norm_eps=1e-6,
                qkv_bias=True,
            )
        )
        emb = self.image_encoder.embeddings
        emb.interpolate_pos_encoding = types.MethodType(_official_pos_interpolation, emb)
        self.projector = nn.Linear(c.dino_hidden_size, c.context_dim)

    # -- pieces of one denoising step ------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.projector.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.projector.weight.device

    def encode_reference(self, image: torch.Tensor) -> torch.Tensor:
        """ID tokens ``(B, 1 + patches, context_dim)`` of reference images ``(B, 3, S, S)`` in
        [0, 1] (ImageNet-normalised here; the unconditional branch passes zeros)."""
        mean = torch.tensor(IMAGENET_MEAN, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
        pixels = ((image - mean) / std).to(self.dtype)
        tokens = self.image_encoder(pixel_values=pixels).last_hidden_state  # layer-normed cls + patches
        return self.projector(tokens)

    def control_residuals(
        self, timestep: torch.Tensor, context: torch.Tensor, hint: torch.Tensor, strength: float = 1.0
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The detail extractor's 12 skip residuals and 1 middle residual, each times
        ``strength`` (the official ``control_scales``). It does not see the noisy latent."""
        cn = self.controlnet
        batch = hint.shape[0]
        t = timestep.expand(batch) if timestep.dim() else timestep.repeat(batch)
        emb = cn.time_embedding(cn.time_proj(t).to(self.dtype))
        h = cn.controlnet_cond_embedding(hint.to(self.dtype))
        states = [h]
        for block in cn.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=context)
            else:
                h, res = block(hidden_states=h, temb=emb)
            states.extend(res)
        h = cn.mid_block(h, emb, encoder_hidden_states=context)
        down = [zero(s) * strength for zero, s in zip(cn.controlnet_down_blocks, states)]
        return down, cn.controlnet_mid_block(h) * strength

    def predict_noise(
        self, latents: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor, hint: torch.Tensor,
        strength: float = 1.0,
    ) -> torch.Tensor:
        """ε-prediction of the UNet with the detail extractor's residuals added."""
        down, mid = self.control_residuals(timestep, context, hint, strength)
        return self.unet(
            latents.to(self.dtype),
            timestep,
            encoder_hidden_states=context,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latents (divided by the scale factor first)."""
        return self.vae.decode(latents.to(self.dtype) / self.config.scale_factor).sample

    def make_scheduler(self):
        """The official DDIM sampler as a diffusers scheduler: ldm's ``linear`` betas
        (sqrt-spaced), uniform timesteps ``1, 21, …, 981`` for 50 steps, last step towards
        ``alphas_cumprod[0]``, ε-prediction, no clipping."""
        from diffusers import DDIMScheduler

        c = self.config
        return DDIMScheduler(
            num_train_timesteps=c.num_train_timesteps,
            beta_start=c.linear_start,
            beta_end=c.linear_end,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
            timestep_spacing="leading",
            prediction_type="epsilon",
        )

    # -- files -----------------------------------------------------------------------------
    @classmethod
    def build_meta(cls, config: AnyDoorConfig) -> "AnyDoorModel":
        """The model with parameters on the meta device (no memory; for shapes and loading)."""
        with torch.device("meta"):
            return cls(config)

    def save(self, path: str | Path) -> Path:
        """Write the weights (our names) and the config to one safetensors file."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(tensors, str(path), metadata={CONFIG_METADATA_KEY: self.config.to_json(), "format": "pt"})
        return Path(path)

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> "AnyDoorModel":
        """Load a file written by :meth:`save` or ``anyv2v anydoor-convert``."""
        from safetensors import safe_open

        from anyv2v_core.errors import ModelNotFoundError

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
                tensors = {}
                for k in f.keys():  # cast one by one: no second full copy in memory
                    t = f.get_tensor(k)
                    tensors[k] = t.to(dtype) if t.is_floating_point() else t
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear line
            raise ModelNotFoundError(f"AnyDoor weights {path} are not a readable safetensors file ({exc})") from exc
        config = AnyDoorConfig.from_json(meta[CONFIG_METADATA_KEY]) if CONFIG_METADATA_KEY in meta else AnyDoorConfig()
        model = cls.build_meta(config)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape)]
        if missing or unexpected or wrong:
            what = (missing and f"{len(missing)} missing (e.g. {missing[0]})") or (
                unexpected and f"{len(unexpected)} unexpected (e.g. {unexpected[0]})") or f"wrong shape of {wrong[0]}"
            raise ModelNotFoundError(f"AnyDoor weights {path} do not fit the model: {what}")
        model.load_state_dict(tensors, strict=True, assign=True)
        return model.to(device).eval().requires_grad_(False)


__all__ = ["AnyDoorModel", "CONFIG_METADATA_KEY"]
