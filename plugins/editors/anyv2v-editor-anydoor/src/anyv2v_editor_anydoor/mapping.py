"""State-dict names of the official AnyDoor checkpoint → names in :class:`~.model.AnyDoorModel`.

The official ``epoch=1-step=8687.ckpt`` is a PyTorch Lightning checkpoint of
``cldm.cldm.ControlLDM``; its ``state_dict`` has five groups (prefix → our child):

=================================  ==========================  ===========================
official prefix                    what                        ours
=================================  ==========================  ===========================
``model.diffusion_model.``         SD-2.1 UNet (openaimodel)   ``unet.`` (UNet2DConditionModel)
``control_model.``                 ControlNet detail extractor ``controlnet.`` (ControlNetModel)
``first_stage_model.``             ldm AutoencoderKL           ``vae.`` (diffusers AutoencoderKL)
``cond_stage_model.model.``        DINOv2 ViT-g/14             ``image_encoder.`` (Dinov2Model)
``cond_stage_model.projector.``    Linear(1536, 1024)          ``projector.``
``betas``, ``alphas_cumprod``, …   diffusion schedule buffers  — (recomputed by the scheduler)
=================================  ==========================  ===========================

Inside the UNet/ControlNet (``R`` = ``num_res_blocks``, 2; levels 0–3):

* ``time_embed.{0,2}`` → ``time_embedding.linear_{1,2}``; ``out.{0,2}`` → ``conv_norm_out``/``conv_out``;
  ``input_blocks.0.0`` → ``conv_in``;
* ``input_blocks.i`` (i ≥ 1; level ``(i-1)//(R+1)``, slot ``j=(i-1)%(R+1)``): ``.0`` →
  ``down_blocks.L.resnets.j``, ``.1`` → ``down_blocks.L.attentions.j``; slot ``R`` is the
  downsampler ``.0.op`` → ``down_blocks.L.downsamplers.0.conv``;
* ``middle_block.{0,1,2}`` → ``mid_block.resnets.0`` / ``attentions.0`` / ``resnets.1``;
* ``output_blocks.i`` (level ``i//(R+1)``, slot ``i%(R+1)``): ``.0`` → ``up_blocks.L.resnets.j``,
  ``.1`` → ``attentions.j`` (levels ≥ 1) and the last slot's upsampler ``.{1|2}.conv`` →
  ``up_blocks.L.upsamplers.0.conv``;
* resnets: ``in_layers.0/2`` → ``norm1``/``conv1``, ``emb_layers.1`` → ``time_emb_proj``,
  ``out_layers.0/3`` → ``norm2``/``conv2``, ``skip_connection`` → ``conv_shortcut``;
  transformer blocks keep their names (``proj_in``, ``transformer_blocks.0.attn1.to_q``, …);
* ControlNet only: ``input_hint_block.{0, 2…12, 14}`` → ``controlnet_cond_embedding.{conv_in,
  blocks.0…5, conv_out}``; ``zero_convs.i.0`` → ``controlnet_down_blocks.i``;
  ``middle_block_out.0`` → ``controlnet_mid_block``.

VAE: ``{encoder,decoder}.norm_out`` → ``conv_norm_out``; ``encoder.down.i.block.j`` →
``encoder.down_blocks.i.resnets.j`` (``nin_shortcut`` → ``conv_shortcut``);
``encoder.down.i.downsample.conv`` → ``…downsamplers.0.conv``; ``decoder.up.i`` →
``decoder.up_blocks.{n-1-i}`` (reversed order) with ``upsample.conv`` → ``upsamplers.0.conv``;
``mid.block_{1,2}`` → ``mid_block.resnets.{0,1}``; ``mid.attn_1.{norm,q,k,v,proj_out}`` →
``mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0}`` — these are 1x1 convolutions
officially and linear layers here (weights ``[C, C, 1, 1]`` → ``[C, C]``, kind ``squeeze``).

DINOv2: ``cls_token``, ``mask_token``, ``pos_embed``, ``patch_embed.proj`` →
``embeddings.{cls_token, mask_token, position_embeddings, patch_embeddings.projection}``;
``norm`` → ``layernorm``; ``blocks.i`` → ``encoder.layer.i`` with ``norm1``/``norm2`` kept,
``attn.qkv`` split in three → ``attention.{q,k,v}_proj`` (kind ``split``), ``attn.proj`` →
``attention.o_proj``, ``ls{1,2}.gamma`` → ``layer_scale{1,2}.lambda1``, ``mlp.w12`` split in
two → ``mlp.{gate,up}_proj`` (SwiGLU: silu of the first half times the second), ``mlp.w3`` →
``mlp.down_proj``. (transformers ≥ 5 module names.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Mapping

from .config import AnyDoorConfig

Kind = Literal["copy", "split", "squeeze"]

#: Diffusion-schedule buffers of ``ldm.models.diffusion.ddpm.LatentDiffusion``: not weights;
#: our scheduler recomputes them from the config, so the converter drops them.
SCHEDULE_BUFFERS = frozenset({
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "logvar",
})


@dataclass(frozen=True)
class KeyMap:
    """Where one official tensor goes: ``copy`` to one name, ``split`` into equal chunks along
    dim 0 (fused qkv / SwiGLU w12), ``squeeze`` a 1x1 conv weight into a linear weight."""

    official: str
    ours: tuple[str, ...]
    kind: Kind = "copy"


_RESNET = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
           "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}


def _resnet(rest: str) -> str:
    for old, new in _RESNET.items():
        if rest == old or rest.startswith(old + "."):
            return new + rest[len(old):]
    raise KeyError(rest)


def _unet_body(name: str, config: AnyDoorConfig, controlnet: bool) -> str:
    """Map a name inside the official UNet/ControlNet (prefix removed)."""
    r = config.num_res_blocks
    for old, new in (("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
                     ("input_blocks.0.0.", "conv_in.")):
        if name.startswith(old):
            return new + name[len(old):]
    if not controlnet:
        for old, new in (("out.0.", "conv_norm_out."), ("out.2.", "conv_out.")):
            if name.startswith(old):
                return new + name[len(old):]
    m = re.fullmatch(r"input_blocks\.(\d+)\.(\d+)\.(.+)", name)
    if m:
        i, sub, rest = int(m[1]), int(m[2]), m[3]
        level, slot = divmod(i - 1, r + 1)
        if slot == r:
            return f"down_blocks.{level}.downsamplers.0.conv." + rest.removeprefix("op.")
        if sub == 0:
            return f"down_blocks.{level}.resnets.{slot}.{_resnet(rest)}"
        return f"down_blocks.{level}.attentions.{slot}.{rest}"
    m = re.fullmatch(r"middle_block\.(\d)\.(.+)", name)
    if m:
        sub, rest = int(m[1]), m[2]
        return f"mid_block.attentions.0.{rest}" if sub == 1 else f"mid_block.resnets.{sub // 2}.{_resnet(rest)}"
    m = re.fullmatch(r"output_blocks\.(\d+)\.(\d+)\.(.+)", name)
    if m and not controlnet:
        i, sub, rest = int(m[1]), int(m[2]), m[3]
        level, slot = divmod(i, r + 1)
        if sub == 0:
            return f"up_blocks.{level}.resnets.{slot}.{_resnet(rest)}"
        if sub == 1 and level > 0:  # up level 0 has no attention
            return f"up_blocks.{level}.attentions.{slot}.{rest}"
        return f"up_blocks.{level}.upsamplers.0.{rest}"
    if controlnet:
        m = re.fullmatch(r"input_hint_block\.(\d+)\.(.+)", name)
        if m:
            k, rest = int(m[1]), m[2]
            last = 4 * len(config.hint_block_channels) - 2  # conv_in, 2 per width step, conv_out; SiLUs between
            if k == 0:
                return f"controlnet_cond_embedding.conv_in.{rest}"
            if k == last:
                return f"controlnet_cond_embedding.conv_out.{rest}"
            return f"controlnet_cond_embedding.blocks.{k // 2 - 1}.{rest}"
        m = re.fullmatch(r"zero_convs\.(\d+)\.0\.(.+)", name)
        if m:
            return f"controlnet_down_blocks.{m[1]}.{m[2]}"
        if name.startswith("middle_block_out.0."):
            return "controlnet_mid_block." + name[len("middle_block_out.0."):]
    raise KeyError(name)


_VAE_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def _vae(name: str, config: AnyDoorConfig) -> KeyMap | str:
    n = len(config.vae_ch_mult)
    for part in ("encoder", "decoder"):
        if name.startswith(part + ".norm_out."):
            return f"{part}.conv_norm_out." + name[len(part) + len(".norm_out."):]
    m = re.fullmatch(r"(encoder|decoder)\.mid\.block_(\d)\.(.+)", name)
    if m:
        return f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{m[3].replace('nin_shortcut', 'conv_shortcut')}"
    m = re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)", name)
    if m:
        ours = f"{m[1]}.mid_block.attentions.0.{_VAE_ATTN[m[2]]}.{m[3]}"
        return ours if m[2] == "norm" or m[3] == "bias" else KeyMap(name, (ours,), "squeeze")
    m = re.fullmatch(r"encoder\.down\.(\d+)\.(block\.(\d+)|downsample)\.(.+)", name)
    if m:
        if m[2] == "downsample":
            return f"encoder.down_blocks.{m[1]}.downsamplers.0.{m[4]}"
        return f"encoder.down_blocks.{m[1]}.resnets.{m[3]}.{m[4].replace('nin_shortcut', 'conv_shortcut')}"
    m = re.fullmatch(r"decoder\.up\.(\d+)\.(block\.(\d+)|upsample)\.(.+)", name)
    if m:
        level = n - 1 - int(m[1])
        if m[2] == "upsample":
            return f"decoder.up_blocks.{level}.upsamplers.0.{m[4]}"
        return f"decoder.up_blocks.{level}.resnets.{m[3]}.{m[4].replace('nin_shortcut', 'conv_shortcut')}"
    if re.fullmatch(r"(encoder|decoder)\.conv_(in|out)\.(weight|bias)|(post_)?quant_conv\.(weight|bias)", name):
        return name
    raise KeyError(name)


_DINO_TOP = {"cls_token": "embeddings.cls_token", "mask_token": "embeddings.mask_token",
             "pos_embed": "embeddings.position_embeddings"}
_DINO_BLOCK = {"norm1": "norm1", "norm2": "norm2", "attn.proj": "attention.o_proj",
               "ls1.gamma": "layer_scale1.lambda1", "ls2.gamma": "layer_scale2.lambda1", "mlp.w3": "mlp.down_proj"}


def _dino(name: str) -> KeyMap | str:
    if name in _DINO_TOP:
        return _DINO_TOP[name]
    if name.startswith("patch_embed.proj."):
        return "embeddings.patch_embeddings.projection." + name[len("patch_embed.proj."):]
    if name.startswith("norm."):
        return "layernorm." + name[len("norm."):]
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias|gamma)", name)
    if m:
        i, part, leaf = m[1], m[2], m[3]
        base = f"encoder.layer.{i}."
        if part == "attn.qkv":
            return KeyMap(name, tuple(f"{base}attention.{p}_proj.{leaf}" for p in "qkv"), "split")
        if part == "mlp.w12":
            return KeyMap(name, (f"{base}mlp.gate_proj.{leaf}", f"{base}mlp.up_proj.{leaf}"), "split")
        if leaf == "gamma":
            return base + _DINO_BLOCK[f"{part}.gamma"]
        if part in _DINO_BLOCK:
            return f"{base}{_DINO_BLOCK[part]}.{leaf}"
    raise KeyError(name)


def map_official_key(name: str, config: AnyDoorConfig | None = None) -> KeyMap | None:
    """Where the official tensor ``name`` goes in :class:`~.model.AnyDoorModel`; ``None`` for
    the schedule buffers we do not keep. Unknown names raise :class:`KeyError`."""
    config = config or AnyDoorConfig()
    if name in SCHEDULE_BUFFERS:
        return None
    groups = (("model.diffusion_model.", "unet."), ("control_model.", "controlnet."), ("first_stage_model.", "vae."),
              ("cond_stage_model.model.", "image_encoder."), ("cond_stage_model.projector.", "projector."))
    for prefix, ours in groups:
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        if ours == "unet.":
            target: KeyMap | str = _unet_body(rest, config, controlnet=False)
        elif ours == "controlnet.":
            target = _unet_body(rest, config, controlnet=True)
        elif ours == "vae.":
            target = _vae(rest, config)
        elif ours == "image_encoder.":
            target = _dino(rest)
        else:
            target = rest
        if isinstance(target, str):
            return KeyMap(name, (ours + target,))
        return KeyMap(name, tuple(ours + t for t in target.ours), target.kind)
    raise KeyError(name)


def mapped_shapes(key: KeyMap, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The shapes our tensors get from an official tensor of ``shape``."""
    if key.kind == "split":
        n = len(key.ours)
        return {k: (shape[0] // n, *shape[1:]) for k in key.ours}
    if key.kind == "squeeze":
        return {key.ours[0]: tuple(shape[:2])}
    return {key.ours[0]: tuple(shape)}


def convert_official_state_dict(state: Mapping[str, "object"], config: AnyDoorConfig | None = None) -> dict:
    """Official ``state_dict`` → ours (tensors are views/chunks, not copies)."""
    out = {}
    for name, tensor in state.items():
        key = map_official_key(name, config)
        if key is None:
            continue
        if key.kind == "split":
            for ours, chunk in zip(key.ours, tensor.chunk(len(key.ours), dim=0)):
                out[ours] = chunk
        elif key.kind == "squeeze":
            out[key.ours[0]] = tensor.reshape(tensor.shape[:2])
        else:
            out[key.ours[0]] = tensor
    return out


def to_official_state_dict(ours: Mapping[str, "object"], official_names: list[str], config: AnyDoorConfig | None = None) -> dict:
    """The inverse of :func:`convert_official_state_dict` for the given official names
    (schedule buffers are skipped): used to build official-layout test checkpoints."""
    import torch

    out = {}
    for name in official_names:
        key = map_official_key(name, config)
        if key is None:
            continue
        if key.kind == "split":
            out[name] = torch.cat([ours[k] for k in key.ours], dim=0)
        elif key.kind == "squeeze":
            out[name] = ours[key.ours[0]][:, :, None, None]
        else:
            out[name] = ours[key.ours[0]]
    return out
