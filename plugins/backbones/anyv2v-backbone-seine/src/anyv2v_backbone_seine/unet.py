"""SEINE's 3D UNet, written on diffusers building blocks.

SEINE (Chen et al., 2023) inflates the Stable Diffusion 1.4 UNet to video: every 2D
convolution runs frame by frame, each transformer block gains a temporal self-attention
over the frames of every spatial position, and ``conv_in`` takes 9 channels (noisy
latent 4 + mask 1 + masked-video latent 4). This module reproduces that network so that
``seine.pt['ema']`` loads into it with ``strict=True`` and no key renaming: parameter
names and shapes are the official ones (checked in the tests against a list recorded
from the official definition).

Facts of the official network that the code below keeps:

* Resnet blocks and the output norm apply ``GroupNorm`` to the 5D tensor
  ``(B, C, F, H, W)``: group statistics are taken over all frames together, not per
  frame. Convolutions are per frame.
* The transformer's input ``GroupNorm`` (eps 1e-6) and the spatial and cross attentions
  run per frame (tokens ``(B*F, H*W, C)``); the text embedding is repeated per frame.
* Temporal attention (``attn_temp``, after the cross attention, pre-LayerNorm
  ``norm_temp``, residual) runs over tokens ``(B*H*W, F, C)`` with a rotary embedding on
  the first 32 dims of each head (one per head, interleaved pairs, theta 10000) and a
  learned T5-style relative position bias (32 buckets, max distance 32) added to the
  logits. ``use_relative_position`` and ``use_first_frame`` are off in the reference, so
  no UNet-level position bias and no first-frame attention exist.
* SD-1.x's config calls the number of heads ``attention_head_dim`` (8); the head size is
  ``channels // 8``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

CROSS_DOWN = {"CrossAttnDownBlock2D", "CrossAttnDownBlock3D"}
PLAIN_DOWN = {"DownBlock2D", "DownBlock3D"}
CROSS_UP = {"CrossAttnUpBlock2D", "CrossAttnUpBlock3D"}
PLAIN_UP = {"UpBlock2D", "UpBlock3D"}


def per_frame(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D module to every frame of ``(B, C, F, H, W)``."""
    b, _, f = x.shape[:3]
    y = module(x.transpose(1, 2).flatten(0, 1))
    return y.unflatten(0, (b, f)).transpose(1, 2)


# -- temporal attention ---------------------------------------------------------------
class RotaryEmbedding(nn.Module):
    """Rotary position embedding on the first ``dim`` features of each head, pairs
    interleaved (feature 2i and 2i+1 rotate together by ``pos * freqs[i]``).

    ``freqs`` is a persistent buffer because the official checkpoint stores it (as a
    non-trained parameter) under every temporal attention."""

    def __init__(self, dim: int = 32, theta: float = 10000.0) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("freqs", 1.0 / theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(..., seq, head_dim)``; positions ``0..seq-1`` along dim -2."""
        seq = x.shape[-2]
        pos = torch.arange(seq, device=x.device, dtype=torch.float32)
        angles = (pos[:, None] * self.freqs.float()[None, :]).repeat_interleave(2, dim=-1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        rot, rest = x[..., : self.dim], x[..., self.dim :]
        pairs = rot.unflatten(-1, (-1, 2))
        rotated_half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return torch.cat((rot * cos + rotated_half * sin, rest), dim=-1)


class RelativePositionBias(nn.Module):
    """T5-style bucketed relative position bias: ``(heads, F, F)`` added to the logits."""

    def __init__(self, heads: int, num_buckets: int = 32, max_distance: int = 32) -> None:
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)

    def buckets(self, n: int, device: torch.device) -> torch.Tensor:
        pos = torch.arange(n, device=device)
        back = pos[:, None] - pos[None, :]  # query minus key: > 0 looks back
        half = self.num_buckets // 2
        out = (back < 0).long() * half
        dist = back.abs()
        exact = half // 2
        log_part = torch.log(dist.clamp(min=1).float() / exact) / math.log(self.max_distance / exact)
        large = (exact + (log_part * (half - exact)).long()).clamp(max=half - 1)
        return out + torch.where(dist < exact, dist, large)

    def forward(self, n: int, device: torch.device) -> torch.Tensor:
        return self.relative_attention_bias(self.buckets(n, device)).permute(2, 0, 1)


class TemporalAttnProcessor:
    """Self-attention over frames: ``to_q``/``to_k``/``to_v`` (which PnP hooks see, so
    queries and keys are replaced BEFORE the rotary embedding, as in the reference),
    rotary embedding, relative position bias, softmax attention, ``to_out``."""

    def __call__(self, attn: "TemporalAttention", hidden_states: torch.Tensor, encoder_hidden_states=None,
                 attention_mask=None, **_: object) -> torch.Tensor:
        batch, frames, _ = hidden_states.shape
        heads = attn.heads
        q, k, v = (proj(hidden_states).unflatten(-1, (heads, -1)).transpose(1, 2)
                   for proj in (attn.to_q, attn.to_k, attn.to_v))
        q, k = attn.rotary_emb(q), attn.rotary_emb(k)
        bias = attn.time_rel_pos_bias(frames, hidden_states.device).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None])
        out = out.transpose(1, 2).flatten(2)
        return attn.to_out[1](attn.to_out[0](out))


class TemporalAttention(Attention):
    """diffusers ``Attention`` plus SEINE's rotary embedding and relative position bias."""

    def __init__(self, dim: int, heads: int, dim_head: int, rotary_dim: int = 32, num_buckets: int = 32,
                 max_distance: int = 32) -> None:
        super().__init__(query_dim=dim, heads=heads, dim_head=dim_head, bias=False, processor=TemporalAttnProcessor())
        self.time_rel_pos_bias = RelativePositionBias(heads, num_buckets, max_distance)
        self.rotary_emb = RotaryEmbedding(rotary_dim)


# -- transformer ----------------------------------------------------------------------
class BasicTransformerBlock3D(nn.Module):
    """Spatial self-attention, text cross-attention, temporal self-attention, feed-forward
    (each pre-LayerNorm with a residual)."""

    def __init__(self, dim: int, heads: int, cross_attention_dim: int, rotary_dim: int, num_buckets: int,
                 max_distance: int) -> None:
        super().__init__()
        head_dim = dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=head_dim, bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(query_dim=dim, cross_attention_dim=cross_attention_dim, heads=heads,
                               dim_head=head_dim, bias=False)
        self.norm_temp = nn.LayerNorm(dim)
        self.attn_temp = TemporalAttention(dim, heads, head_dim, rotary_dim, num_buckets, max_distance)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")

    def forward(self, x: torch.Tensor, text: torch.Tensor, frames: int) -> torch.Tensor:
        """``x``: ``(B*F, H*W, C)``; ``text``: ``(B*F, L, D)``."""
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), encoder_hidden_states=text) + x
        bf, tokens, c = x.shape
        t = x.unflatten(0, (bf // frames, frames)).transpose(1, 2).flatten(0, 1)  # (B*HW, F, C)
        t = self.attn_temp(self.norm_temp(t)) + t
        x = t.unflatten(0, (bf // frames, tokens)).transpose(1, 2).flatten(0, 1)
        return self.ff(self.norm3(x)) + x


class Transformer3D(nn.Module):
    def __init__(self, channels: int, heads: int, cross_attention_dim: int, groups: int, rotary_dim: int,
                 num_buckets: int, max_distance: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock3D(channels, heads, cross_attention_dim, rotary_dim, num_buckets, max_distance)]
        )
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        frames = x.transpose(1, 2).flatten(0, 1)  # (B*F, C, H, W)
        text = text.repeat_interleave(f, dim=0)
        hidden = self.proj_in(self.norm(frames)).flatten(2).transpose(1, 2)  # (B*F, HW, C)
        for block in self.transformer_blocks:
            hidden = block(hidden, text, f)
        hidden = self.proj_out(hidden.transpose(1, 2).reshape(b * f, c, h, w).contiguous()) + frames
        return hidden.unflatten(0, (b, f)).transpose(1, 2)


# -- convolutional parts ----------------------------------------------------------------
class ResnetBlock3D(nn.Module):
    """SD's resnet block with 5D group norms (statistics over all frames) and per-frame convs.
    ``conv2``'s output is the residual branch before the skip add (the PnP conv site)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, groups: int, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = per_frame(self.conv1, F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None, None]
        h = per_frame(self.conv2, F.silu(self.norm2(h)))
        skip = x if self.conv_shortcut is None else per_frame(self.conv_shortcut, x)
        return skip + h


class Downsample(nn.Module):
    def __init__(self, channels: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(self.conv, x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        frames = x.transpose(1, 2).flatten(0, 1)
        if size is None:
            frames = F.interpolate(frames, scale_factor=2.0, mode="nearest")
        else:
            frames = F.interpolate(frames, size=tuple(size), mode="nearest")
        return self.conv(frames).unflatten(0, x.shape[:1] + x.shape[2:3]).transpose(1, 2)


class DownBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, n_layers: int, cross: bool, downsample: bool,
                 **kw) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock3D(in_channels if i == 0 else out_channels, out_channels, kw["temb"], kw["groups"], kw["eps"])
             for i in range(n_layers)]
        )
        if cross:
            self.attentions = nn.ModuleList([_transformer(out_channels, kw) for _ in range(n_layers)])
        self.downsamplers = nn.ModuleList([Downsample(out_channels, kw["padding"])]) if downsample else None

    def forward(self, x, temb, text):
        states = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if hasattr(self, "attentions"):
                x = self.attentions[i](x, text)
            states.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            states.append(x)
        return x, states


class UpBlock(nn.Module):
    def __init__(self, in_channels: int, prev_channels: int, out_channels: int, n_layers: int, cross: bool,
                 upsample: bool, **kw) -> None:
        super().__init__()
        resnets = []
        for i in range(n_layers):
            skip = in_channels if i == n_layers - 1 else out_channels
            inner = prev_channels if i == 0 else out_channels
            resnets.append(ResnetBlock3D(inner + skip, out_channels, kw["temb"], kw["groups"], kw["eps"]))
        self.resnets = nn.ModuleList(resnets)
        if cross:
            self.attentions = nn.ModuleList([_transformer(out_channels, kw) for _ in range(n_layers)])
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if upsample else None

    def forward(self, x, skips, temb, text, size=None):
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
            if hasattr(self, "attentions"):
                x = self.attentions[i](x, text)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, size)
        return x


class MidBlock(nn.Module):
    def __init__(self, channels: int, **kw) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock3D(channels, channels, kw["temb"], kw["groups"], kw["eps"]) for _ in range(2)]
        )
        self.attentions = nn.ModuleList([_transformer(channels, kw)])

    def forward(self, x, temb, text):
        x = self.resnets[0](x, temb)
        return self.resnets[1](self.attentions[0](x, text), temb)


def _transformer(channels: int, kw: dict) -> Transformer3D:
    return Transformer3D(channels, kw["heads"], kw["cross_dim"], kw["groups"], kw["rotary_dim"], kw["num_buckets"],
                         kw["max_distance"])


# -- the UNet -------------------------------------------------------------------------
class SEINEUNet3DModel(ModelMixin, ConfigMixin):
    """SEINE's video UNet. Config keys are SD-1.x's ``unet/config.json`` keys (so that
    file builds it) plus the temporal-attention sizes; ``in_channels`` is 9 for SEINE."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 9,
        out_channels: int = 4,
        down_block_types: Sequence[str] = ("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
        up_block_types: Sequence[str] = ("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
        block_out_channels: Sequence[int] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        attention_head_dim: int = 8,
        cross_attention_dim: int = 768,
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        downsample_padding: int = 1,
        rotary_dim: int = 32,
        rel_pos_num_buckets: int = 32,
        rel_pos_max_distance: int = 32,
    ) -> None:
        super().__init__()
        if len(down_block_types) != len(block_out_channels) or len(up_block_types) != len(block_out_channels):
            raise ValueError("down_block_types, up_block_types and block_out_channels must have the same length")
        heads = attention_head_dim  # SD-1.x names the head count attention_head_dim
        if isinstance(heads, (list, tuple)):
            if len(set(heads)) != 1:
                raise ValueError("SEINE uses one head count for every block")
            heads = heads[0]
        if min(block_out_channels) // heads < rotary_dim:
            raise ValueError(f"the {rotary_dim}-dim rotary embedding needs heads of at least {rotary_dim} dims "
                             f"(channels {tuple(block_out_channels)} / {heads} heads)")
        temb = block_out_channels[0] * 4
        kw = dict(temb=temb, groups=norm_num_groups, eps=norm_eps, padding=downsample_padding, heads=heads,
                  cross_dim=cross_attention_dim, rotary_dim=rotary_dim, num_buckets=rel_pos_num_buckets,
                  max_distance=rel_pos_max_distance)
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], 3, padding=1)
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], temb)

        self.down_blocks = nn.ModuleList()
        out_ch = block_out_channels[0]
        for i, kind in enumerate(down_block_types):
            if kind not in CROSS_DOWN | PLAIN_DOWN:
                raise ValueError(f"unsupported down block type {kind!r}")
            in_ch, out_ch = out_ch, block_out_channels[i]
            last = i == len(block_out_channels) - 1
            self.down_blocks.append(DownBlock(in_ch, out_ch, layers_per_block, kind in CROSS_DOWN, not last, **kw))

        self.mid_block = MidBlock(block_out_channels[-1], **kw)

        self.up_blocks = nn.ModuleList()
        rev = list(reversed(block_out_channels))
        out_ch = rev[0]
        for i, kind in enumerate(up_block_types):
            if kind not in CROSS_UP | PLAIN_UP:
                raise ValueError(f"unsupported up block type {kind!r}")
            prev, out_ch = out_ch, rev[i]
            in_ch = rev[min(i + 1, len(rev) - 1)]
            last = i == len(rev) - 1
            self.up_blocks.append(UpBlock(in_ch, prev, out_ch, layers_per_block + 1, kind in CROSS_UP, not last, **kw))

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[0], eps=norm_eps)
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, 3, padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """``sample``: ``(B, in_channels, F, h, w)``; returns the noise prediction ``(B, out, F, h, w)``."""
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(sample.shape[0]) if t.numel() == 1 else t
        emb = self.time_embedding(self.time_proj(t).to(self.conv_in.weight.dtype))
        x = per_frame(self.conv_in, sample)
        skips = [x]
        for block in self.down_blocks:
            x, states = block(x, emb, encoder_hidden_states)
            skips.extend(states)
        x = self.mid_block(x, emb, encoder_hidden_states)
        for block in self.up_blocks:
            n = len(block.resnets)
            own, skips = skips[-n:], skips[:-n]
            size = skips[-1].shape[-2:] if skips and block.upsamplers is not None else None
            x = block(x, own, emb, encoder_hidden_states, size)
        x = per_frame(self.conv_out, F.silu(self.conv_norm_out(x)))
        return x
