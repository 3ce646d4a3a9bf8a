"""The ConsistI2V video UNet (Ren et al., 2024), rebuilt on diffusers building blocks.

An SD-2.1-style 2D UNet inflated to video. Parameter names and shapes are those of the
official ``VideoLDMUNet3DConditionModel`` (``TIGER-Lab/ConsistI2V``, ``unet/``), so the
official checkpoint loads unchanged (``tests/data/official_unet_params.tsv`` pins them).

What makes it ConsistI2V:

* **first frame as frame 0**: the clean latent of the conditioning frame is concatenated
  in front of the ``F`` noisy frames; the UNet runs on ``F + 1`` frames and drops frame 0
  of its output (``first_frame_condition_mode="concat"``);
* **spatial self-attention** (``attentions.*.attn1``): keys and values are computed from the
  frame's own tokens followed by the first frame's tokens (queries: the frame's own);
* **temporal attention** (``tempo_attns.*``): per spatial position over the frames, with
  keys/values extended by the first frame's 3x3 neighbourhood (the 8 neighbours,
  replicate-padded) of that position; rotary position embeddings on the first half of the
  channels (queries at positions ``0..F``, extra keys at position 0); a second temporal
  attention attends to the text; a learned ``alpha`` mixes input and output;
* **temporal convolutions** (``conv3ds.*``): a (3,1,1) 3D-conv resnet after every spatial
  resnet, also mixed by a learned ``alpha``;
* **frame-stride conditioning**: a second timestep embedding of the sampling stride of the
  source frames is added to the time embedding.

Unlike the official code, the number of frames is taken from the input (not the config),
``alpha`` is clamped functionally (the official forward clamps the parameter in place) and
only the ``concat`` first-frame mode with rotary temporal embeddings is implemented (the one
the released checkpoint uses).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

#: The 8 neighbours of a 3x3 window in row-major order (the centre is excluded).
NEIGHBOURS = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=torch.bool)


# -- rotary embeddings -----------------------------------------------------------------
class RotaryEmbedding(nn.Module):
    """Rotary position embedding over the first ``dim`` channels (``lang`` frequencies,
    interleaved pairs). ``freqs`` is a frozen parameter, as in the checkpoint."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
        self.freqs = nn.Parameter(freqs, requires_grad=False)

    def angles(self, positions: torch.Tensor) -> torch.Tensor:
        """``(L, dim)``: each frequency repeated twice (pairs)."""
        angles = positions.to(self.freqs.dtype)[:, None] * self.freqs[None, :]
        return angles.repeat_interleave(2, dim=-1)

    def rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` ``(..., L, C)`` at sequence ``positions`` ``(L,)`` on its first ``dim`` channels."""
        angles = self.angles(positions).to(x)
        n = angles.shape[-1]
        head, tail = x[..., :n], x[..., n:]
        pairs = head.unflatten(-1, (-1, 2))
        rotated_half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return torch.cat((head * angles.cos() + rotated_half * angles.sin(), tail), dim=-1)


class RelativePositionBias(nn.Module):
    """Bucketed relative-position bias table. Present in the checkpoint but not used by the
    released model's forward (kept for state-dict compatibility)."""

    def __init__(self, heads: int, num_buckets: int = 32):
        super().__init__()
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)


# -- attention -------------------------------------------------------------------------
class TemporalAttention(nn.Module):
    """Attention over frames at each spatial position, with rotary embeddings.

    ``to_q``/``to_k`` are called once per forward, before the rotation, so hooks on their
    outputs see (and may replace) the un-rotated queries and keys, branch-major along dim 0
    (``(branch·batch·h·w, frames[, +8], C)``).
    """

    def __init__(self, query_dim: int, heads: int, dim_head: int, cross_attention_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(cross_attention_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(cross_attention_dim or query_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])
        self.rotary_bias = RelativePositionBias(heads)
        self.rotary_emb = RotaryEmbedding(inner // 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        n_frames: int,
        encoder_hidden_states: torch.Tensor | None = None,
        neighbours: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``hidden_states`` ``(B·F, HW, C)``; ``encoder_hidden_states`` ``(B·F, N, D)`` (text,
        cross-attention) or ``neighbours`` ``(B, HW, 8, C)`` (first-frame 3x3 neighbourhood)."""
        bf, hw, c = hidden_states.shape
        b = bf // n_frames
        x = hidden_states.reshape(b, n_frames, hw, c).transpose(1, 2).reshape(b * hw, n_frames, c)
        positions = torch.arange(n_frames, device=x.device, dtype=x.dtype)
        key_positions = None
        if encoder_hidden_states is not None:
            context = encoder_hidden_states[::n_frames].repeat_interleave(hw, dim=0)
        elif neighbours is not None:
            context = torch.cat([x, neighbours.reshape(b * hw, -1, c)], dim=1)
            pad = torch.zeros(neighbours.shape[2], device=x.device, dtype=x.dtype)
            key_positions = torch.cat([positions, pad])
        else:
            context = x
            key_positions = positions
        query = self.rotary_emb.rotate(self.to_q(x), positions)
        key = self.to_k(context)
        if key_positions is not None:
            key = self.rotary_emb.rotate(key, key_positions)
        value = self.to_v(context)
        heads = self.heads
        q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).flatten(-2).to(query.dtype)
        out = self.to_out[1](self.to_out[0](out))
        return out.reshape(b, hw, n_frames, c).transpose(1, 2).reshape(bf, hw, c)


def first_frame_neighbours(states: torch.Tensor, n_frames: int, height: int, width: int) -> torch.Tensor:
    """The 8 neighbours of every position of each video's first frame, ``(B, HW, 8, C)``,
    from tokens ``(B·F, HW, C)`` (edges replicate-padded)."""
    bf, hw, c = states.shape
    first = states.reshape(bf // n_frames, n_frames, hw, c)[:, 0]
    grid = first.reshape(-1, height, width, c).permute(0, 3, 1, 2)
    windows = F.pad(grid, (1, 1, 1, 1), mode="replicate").unfold(2, 3, 1).unfold(3, 3, 1)  # B C H W 3 3
    picked = windows[..., NEIGHBOURS.to(states.device)]  # B C H W 8
    return picked.flatten(2, 3).permute(0, 2, 3, 1)


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention to the text, feed-forward (pre-LayerNorm).

    Spatial: ``attn1`` keys/values also see the first frame's tokens. Temporal: attention
    over frames with the first frame's 3x3 neighbourhood, ``attn2`` over frames too."""

    def __init__(self, dim: int, heads: int, dim_head: int, cross_attention_dim: int, temporal: bool):
        super().__init__()
        self.temporal = temporal
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        if temporal:
            self.attn1 = TemporalAttention(dim, heads, dim_head)
            self.attn2 = TemporalAttention(dim, heads, dim_head, cross_attention_dim)
        else:
            self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=dim_head)
            self.attn2 = Attention(query_dim=dim, cross_attention_dim=cross_attention_dim, heads=heads, dim_head=dim_head)
        self.ff = FeedForward(dim, activation_fn="geglu")

    def forward(self, x: torch.Tensor, text: torch.Tensor, n_frames: int, height: int, width: int) -> torch.Tensor:
        h = self.norm1(x)
        if self.temporal:
            x = x + self.attn1(h, n_frames, neighbours=first_frame_neighbours(h, n_frames, height, width))
            x = x + self.attn2(self.norm2(x), n_frames, encoder_hidden_states=text)
        else:
            bf, hw, c = h.shape
            first = h.reshape(bf // n_frames, n_frames, hw, c)[:, :1].expand(-1, n_frames, -1, -1).reshape(bf, hw, c)
            x = x + self.attn1(h, encoder_hidden_states=torch.cat([h, first], dim=1))
            x = x + self.attn2(self.norm2(x), encoder_hidden_states=text)
        return x + self.ff(self.norm3(x))


class VideoTransformer(nn.Module):
    """GroupNorm, projection in, one :class:`TransformerBlock`, projection out, residual.
    The temporal variant mixes input and output with a learned ``alpha`` in [0, 1]."""

    def __init__(self, channels: int, heads: int, cross_attention_dim: int, groups: int, linear_projection: bool,
                 temporal: bool):
        super().__init__()
        self.linear_projection = linear_projection
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        proj = (lambda: nn.Linear(channels, channels)) if linear_projection else (lambda: nn.Conv2d(channels, channels, 1))
        self.proj_in = proj()
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(channels, heads, channels // heads, cross_attention_dim, temporal)]
        )
        self.proj_out = proj()
        self.alpha = nn.Parameter(torch.ones(1)) if temporal else None

    def forward(self, x: torch.Tensor, text: torch.Tensor, n_frames: int) -> torch.Tensor:
        bf, c, height, width = x.shape
        h = self.norm(x)
        if not self.linear_projection:
            h = self.proj_in(h)
        h = h.permute(0, 2, 3, 1).reshape(bf, height * width, c)
        if self.linear_projection:
            h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, text, n_frames, height, width)
        if self.linear_projection:
            h = self.proj_out(h)
        h = h.reshape(bf, height, width, c).permute(0, 3, 1, 2).contiguous()
        if not self.linear_projection:
            h = self.proj_out(h)
        out = h + x
        if self.alpha is not None:
            alpha = self.alpha.clamp(0, 1)
            out = alpha * x + (1 - alpha) * out
        return out


# -- temporal convolution ----------------------------------------------------------------
class FrameConv(nn.Conv3d):
    """(3, 1, 1) convolution over frames of ``(B·F, C, H, W)`` features."""

    def __init__(self, channels: int):
        super().__init__(channels, channels, kernel_size=(3, 1, 1), padding=(1, 0, 0))

    def forward(self, x: torch.Tensor, n_frames: int) -> torch.Tensor:  # type: ignore[override]
        bf, c, h, w = x.shape
        y = x.reshape(bf // n_frames, n_frames, c, h, w).transpose(1, 2)
        y = super().forward(y)
        return y.transpose(1, 2).reshape(bf, c, h, w)


class TemporalResnet(nn.Module):
    """Resnet of two frame convolutions, mixed with its input by a learned ``alpha``.

    ``time_emb_proj`` exists in the checkpoint but is unused (the official forward passes
    no time embedding here); GroupNorm uses 32 groups as the official module hard-codes."""

    def __init__(self, channels: int, groups: int = 32, temb_channels: int = 512):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels, eps=1e-6)
        self.conv1 = FrameConv(channels)
        self.time_emb_proj = nn.Linear(temb_channels, channels)
        self.norm2 = nn.GroupNorm(groups, channels, eps=1e-6)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = FrameConv(channels)
        self.alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, n_frames: int) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), n_frames)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))), n_frames)
        alpha = self.alpha.clamp(0, 1)
        return alpha * x + (1 - alpha) * (x + h)


# -- blocks ------------------------------------------------------------------------------
class _Cfg:
    """What every block needs to know, from the UNet config."""

    def __init__(self, temb: int, groups: int, eps: float, cross_dim: int, linear: bool, temp_heads: int):
        self.temb, self.groups, self.eps, self.cross_dim, self.linear, self.temp_heads = (
            temb, groups, eps, cross_dim, linear, temp_heads)

    def resnet(self, cin: int, cout: int) -> ResnetBlock2D:
        return ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=self.temb, eps=self.eps,
                             groups=self.groups, non_linearity="silu")

    def spatial(self, channels: int, heads: int) -> VideoTransformer:
        return VideoTransformer(channels, heads, self.cross_dim, self.groups, self.linear, temporal=False)

    def temporal(self, channels: int) -> VideoTransformer:
        return VideoTransformer(channels, self.temp_heads, self.cross_dim, self.groups, self.linear, temporal=True)


class DownBlock(nn.Module):
    """Resnets (each followed by a temporal resnet and, with attention, a spatial then a
    temporal transformer), then an optional strided-conv downsampler."""

    def __init__(self, cfg: _Cfg, cin: int, cout: int, layers: int, heads: int | None, downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([cfg.resnet(cin if i == 0 else cout, cout) for i in range(layers)])
        self.conv3ds = nn.ModuleList([TemporalResnet(cout) for _ in range(layers)])
        self.has_attention = heads is not None
        if self.has_attention:
            self.attentions = nn.ModuleList([cfg.spatial(cout, heads) for _ in range(layers)])
            self.tempo_attns = nn.ModuleList([cfg.temporal(cout) for _ in range(layers)])
        self.downsamplers = (
            nn.ModuleList([Downsample2D(cout, use_conv=True, out_channels=cout, padding=1, name="op")]) if downsample else None
        )

    def forward(self, x, temb, text, n_frames):
        skips = []
        for i, (resnet, conv3d) in enumerate(zip(self.resnets, self.conv3ds)):
            x = conv3d(resnet(x, temb), n_frames)
            if self.has_attention:
                x = self.attentions[i](x, text, n_frames)
                x = self.tempo_attns[i](x, text, n_frames)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class MidBlock(nn.Module):
    """resnet, temporal resnet, then (spatial transformer, resnet, temporal resnet)."""

    def __init__(self, cfg: _Cfg, channels: int, heads: int):
        super().__init__()
        self.resnets = nn.ModuleList([cfg.resnet(channels, channels) for _ in range(2)])
        self.conv3ds = nn.ModuleList([TemporalResnet(channels) for _ in range(2)])
        self.attentions = nn.ModuleList([cfg.spatial(channels, heads)])

    def forward(self, x, temb, text, n_frames):
        x = self.conv3ds[0](self.resnets[0](x, temb), n_frames)
        x = self.attentions[0](x, text, n_frames)
        return self.conv3ds[1](self.resnets[1](x, temb), n_frames)


class UpBlock(nn.Module):
    """Like :class:`DownBlock` on the skip-concatenated features, then an upsampler."""

    def __init__(self, cfg: _Cfg, cin: int, cout: int, prev: int, layers: int, heads: int | None, upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([
            cfg.resnet((prev if i == 0 else cout) + (cin if i == layers - 1 else cout), cout) for i in range(layers)
        ])
        self.conv3ds = nn.ModuleList([TemporalResnet(cout) for _ in range(layers)])
        self.has_attention = heads is not None
        if self.has_attention:
            self.attentions = nn.ModuleList([cfg.spatial(cout, heads) for _ in range(layers)])
            self.tempo_attns = nn.ModuleList([cfg.temporal(cout) for _ in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout, use_conv=True, out_channels=cout)]) if upsample else None

    def forward(self, x, skips, temb, text, n_frames, upsample_size=None):
        for i, (resnet, conv3d) in enumerate(zip(self.resnets, self.conv3ds)):
            x = torch.cat([x, skips.pop()], dim=1)
            x = conv3d(resnet(x, temb), n_frames)
            if self.has_attention:
                x = self.attentions[i](x, text, n_frames)
                x = self.tempo_attns[i](x, text, n_frames)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x


def _per_block(value, n: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


class ConsistI2VUNet(ModelMixin, ConfigMixin):
    """ConsistI2V's video UNet. Config keys follow the official ``unet/config.json``;
    ``attention_head_dim`` is the number of heads per block (the SD-2 naming quirk)."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        down_block_types: Sequence[str] = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types: Sequence[str] = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels: Sequence[int] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 1024,
        attention_head_dim: int | Sequence[int] = (5, 10, 20, 20),
        use_linear_projection: bool = True,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        act_fn: str = "silu",
        # ConsistI2V additions
        n_frames: int = 16,
        n_temp_heads: int = 8,
        first_frame_condition_mode: str = "concat",
        augment_temporal_attention: bool = True,
        temp_pos_embedding: str = "rotary",
        use_frame_stride_condition: bool = True,
        use_temporal: bool = True,
        # SD UNet options the released config may carry: only these values are implemented
        mid_block_type: str | None = "UNetMidBlock2DCrossAttn",
        resnet_time_scale_shift: str = "default",
        time_embedding_type: str = "positional",
        class_embed_type: str | None = None,
        addition_embed_type: str | None = None,
        encoder_hid_dim: int | None = None,
        only_cross_attention: bool = False,
        dual_cross_attention: bool = False,
        center_input_sample: bool = False,
        transformer_layers_per_block: int = 1,
        conv_in_kernel: int = 3,
        conv_out_kernel: int = 3,
        num_class_embeds: int | None = None,
    ):
        super().__init__()
        unsupported = {
            "first_frame_condition_mode": (first_frame_condition_mode, "concat"),
            "augment_temporal_attention": (augment_temporal_attention, True),
            "temp_pos_embedding": (temp_pos_embedding, "rotary"),
            "use_temporal": (use_temporal, True),
            "act_fn": (act_fn, "silu"),
            "mid_block_type": (mid_block_type, "UNetMidBlock2DCrossAttn"),
            "resnet_time_scale_shift": (resnet_time_scale_shift, "default"),
            "time_embedding_type": (time_embedding_type, "positional"),
            "class_embed_type": (class_embed_type, None),
            "addition_embed_type": (addition_embed_type, None),
            "encoder_hid_dim": (encoder_hid_dim, None),
            "only_cross_attention": (only_cross_attention, False),
            "dual_cross_attention": (dual_cross_attention, False),
            "center_input_sample": (center_input_sample, False),
            "transformer_layers_per_block": (transformer_layers_per_block, 1),
            "conv_in_kernel": (conv_in_kernel, 3),
            "conv_out_kernel": (conv_out_kernel, 3),
            "num_class_embeds": (num_class_embeds, None),
        }
        for key, (got, want) in unsupported.items():
            if got != want:
                raise ValueError(f"ConsistI2V UNet: only {key}={want!r} is implemented, config has {got!r}")
        n = len(block_out_channels)
        heads = _per_block(attention_head_dim, n)
        channels = list(block_out_channels)
        time_dim = channels[0] * 4
        cfg = _Cfg(time_dim, norm_num_groups, norm_eps, cross_attention_dim, use_linear_projection, n_temp_heads)

        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.time_proj = Timesteps(channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(channels[0], time_dim)
        self.frame_stride_embedding = TimestepEmbedding(channels[0], time_dim) if use_frame_stride_condition else None

        self.down_blocks = nn.ModuleList()
        cout = channels[0]
        for i, kind in enumerate(down_block_types):
            cin, cout = cout, channels[i]
            attn = heads[i] if kind == "CrossAttnDownBlock2D" else None
            self.down_blocks.append(DownBlock(cfg, cin, cout, layers_per_block, attn, downsample=i < n - 1))
        self.mid_block = MidBlock(cfg, channels[-1], heads[-1])

        rev, rev_heads = channels[::-1], heads[::-1]
        self.up_blocks = nn.ModuleList()
        cout = rev[0]
        for i, kind in enumerate(up_block_types):
            prev, cout = cout, rev[i]
            cin = rev[min(i + 1, n - 1)]
            attn = rev_heads[i] if kind == "CrossAttnUpBlock2D" else None
            self.up_blocks.append(UpBlock(cfg, cin, cout, prev, layers_per_block + 1, attn, upsample=i < n - 1))

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, channels[0], eps=norm_eps)
        self.conv_out = nn.Conv2d(channels[0], out_channels, 3, padding=1)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        encoder_hidden_states: torch.Tensor,
        first_frame_latents: torch.Tensor,
        frame_stride: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """``sample`` ``(B, C, F, h, w)`` noisy frames, ``first_frame_latents`` ``(B, C, 1, h, w)``
        clean latent of the conditioning frame, ``encoder_hidden_states`` ``(B, N, D)`` text,
        ``frame_stride`` scalar or ``(B,)``. Returns the prediction for the ``F`` frames."""
        x = torch.cat([first_frame_latents.to(sample.dtype), sample], dim=2)
        b, _, n_frames, h, w = x.shape
        x = x.transpose(1, 2).reshape(b * n_frames, -1, h, w)
        text = encoder_hidden_states.repeat_interleave(n_frames, dim=0)

        def per_frame(value) -> torch.Tensor:
            value = torch.as_tensor(value, device=x.device).reshape(-1)
            value = value.expand(b) if value.numel() == 1 else value
            return value.repeat_interleave(n_frames)

        temb = self.time_embedding(self.time_proj(per_frame(timestep)).to(x.dtype))
        if self.frame_stride_embedding is not None:
            if frame_stride is None:
                raise ValueError("this ConsistI2V UNet is conditioned on the frame stride; pass frame_stride")
            temb = temb + self.frame_stride_embedding(self.time_proj(per_frame(frame_stride)).to(x.dtype))

        x = self.conv_in(x)
        skips = [x]
        for block in self.down_blocks:
            x, out = block(x, temb, text, n_frames)
            skips.extend(out)
        x = self.mid_block(x, temb, text, n_frames)
        n_up = len(self.up_blocks)
        odd = any(s % 2 ** (n_up - 1) for s in (h, w))  # then upsamplers are told the skip's size
        for i, block in enumerate(self.up_blocks):
            take = len(block.resnets)
            mine, skips = skips[-take:], skips[:-take]
            size = skips[-1].shape[2:] if odd and i < n_up - 1 else None
            x = block(x, mine, temb, text, n_frames, upsample_size=size)
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        x = x.reshape(b, n_frames, -1, h, w).transpose(1, 2)
        return x[:, :, 1:]
