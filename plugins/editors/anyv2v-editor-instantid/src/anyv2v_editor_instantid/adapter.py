"""InstantID's image-prompt adapter, state-dict compatible with ``ip-adapter.bin``.

* :class:`Resampler` maps the 512-d ArcFace embedding to ``num_queries`` (16) tokens of
  the UNet's cross-attention width (a Perceiver-style resampler: learned latent queries
  attend to the projected embedding and to themselves, ``depth`` times). Its sizes are
  read from the weights (:func:`resampler_from_state_dict`), its head size from the
  checkpoint's config when it has one (:func:`load_adapter`), else 64.
* :class:`DecoupledCrossAttnProcessor` replaces the processor of every cross-attention
  (``attn2``) of the UNet: the last ``num_tokens`` context tokens are face tokens,
  attended with their own key/value projections ``to_k_ip``/``to_v_ip``; the output is
  ``attn(text) + scale * attn(face)``.

Checkpoint layout (``ip-adapter.bin``): ``{"image_proj": <Resampler state>, "ip_adapter":
{"<n>.to_k_ip.weight", "<n>.to_v_ip.weight"}}`` where ``n`` counts over ALL attention
processors of the UNet in ``unet.attn_processors`` order (self-attentions have no
weights, so cross-attentions get the odd numbers). Our safetensors form flattens it to
``image_proj.<key>`` and ``ip_adapter.<key>``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anyv2v_core.errors import InputError, ModelNotFoundError

#: InstantID's Resampler uses heads of 64 channels; the head count is inner_dim / 64 —
#: unless the checkpoint's config says otherwise (:func:`load_adapter`).
RESAMPLER_DIM_HEAD = 64
#: Where a checkpoint may carry the Resampler's constructor arguments (``dim_head``,
#: ``heads``): an entry of ``ip-adapter.bin``, a metadata key of ``ip-adapter.safetensors``.
CONFIG_KEY = "image_proj_config"


# -- Resampler ---------------------------------------------------------------------------
class PerceiverAttention(nn.Module):
    """Latent queries attend to ``[features, latents]`` (parameter names as the checkpoint)."""

    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, features: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        features, latents = self.norm1(features), self.norm2(latents)
        q = self._heads(self.to_q(latents))
        k, v = (self._heads(t) for t in self.to_kv(torch.cat([features, latents], dim=1)).chunk(2, dim=-1))
        # scores scaled by dim_head^-1/2, split over q and k for half-precision stability;
        # softmax in float32
        s = 1.0 / math.sqrt(math.sqrt(self.dim_head))
        weights = torch.softmax(((q * s) @ (k * s).transpose(-2, -1)).float(), dim=-1).to(q.dtype)
        out = (weights @ v).transpose(1, 2).reshape(latents.shape[0], latents.shape[1], -1)
        return self.to_out(out)


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(),
                         nn.Linear(dim * mult, dim, bias=False))


class Resampler(nn.Module):
    """Embedding ``(B, N, embedding_dim)`` -> tokens ``(B, num_queries, output_dim)``."""

    def __init__(self, dim: int, depth: int, dim_head: int, heads: int, num_queries: int, embedding_dim: int,
                 output_dim: int, ff_mult: int) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, num_queries, dim) / dim**0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, dim_head, heads), _feed_forward(dim, ff_mult)]) for _ in range(depth)
        )
        self.embedding_dim = embedding_dim

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        latents = self.latents.repeat(embedding.shape[0], 1, 1)
        features = self.proj_in(embedding)
        for attn, ff in self.layers:
            latents = attn(features, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))


def resampler_config(state: dict[str, torch.Tensor], config: dict[str, Any] | None = None) -> dict[str, int]:
    """The Resampler's sizes, read from its weights (the official code hard-codes them); the
    head size is the checkpoint ``config``'s ``dim_head`` (or inner width / ``heads``) when it
    gives one, else :data:`RESAMPLER_DIM_HEAD`."""
    config = config or {}
    try:
        _, num_queries, dim = state["latents"].shape
        depth = len({k.split(".")[1] for k in state if k.startswith("layers.") and k.endswith(".0.to_q.weight")})
        inner = state["layers.0.0.to_q.weight"].shape[0]
        ff_inner = state["layers.0.1.1.weight"].shape[0]
        heads = _config_int(config, "heads")
        dim_head = _config_int(config, "dim_head") or (inner // heads if heads else RESAMPLER_DIM_HEAD)
        sizes = dict(dim=dim, depth=depth, dim_head=dim_head, heads=inner // dim_head, num_queries=num_queries,
                     embedding_dim=state["proj_in.weight"].shape[1], output_dim=state["proj_out.weight"].shape[0],
                     ff_mult=ff_inner // dim)
    except (KeyError, ValueError, IndexError) as exc:
        raise InputError(f"the adapter's image_proj weights are not an InstantID Resampler (missing {exc})") from None
    if not dim_head or inner % dim_head or ff_inner % dim or (heads and heads * dim_head != inner):
        raise InputError(f"the adapter's Resampler has inner width {inner}, not "
                         f"{heads or 'a whole number of'} heads of {dim_head} channels")
    return sizes


def _config_int(config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"the adapter's {CONFIG_KEY} has {key}={value!r}; expected a positive integer")
    return value


def resampler_from_state_dict(state: dict[str, torch.Tensor], config: dict[str, Any] | None = None) -> Resampler:
    model = Resampler(**resampler_config(state, config))
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


# -- decoupled cross-attention -------------------------------------------------------------
class DecoupledCrossAttnProcessor(nn.Module):
    """Cross-attention over ``[text tokens, face tokens]``: the last ``num_tokens`` of the
    context are attended separately with ``to_k_ip``/``to_v_ip`` and added with ``scale``.
    Works on diffusers' ``Attention`` modules (as called by ``Attention.forward``)."""

    def __init__(self, hidden_size: int, cross_attention_dim: int, num_tokens: int, scale: float = 1.0) -> None:
        super().__init__()
        self.num_tokens, self.scale = num_tokens, scale
        self.to_k_ip = nn.Linear(cross_attention_dim, hidden_size, bias=False)
        self.to_v_ip = nn.Linear(cross_attention_dim, hidden_size, bias=False)

    @staticmethod
    def _attend(attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, heads = q.shape[0], attn.heads
        head_dim = k.shape[-1] // heads
        split = [t.view(b, -1, heads, head_dim).transpose(1, 2) for t in (q, k, v)]
        out = F.scaled_dot_product_attention(*split, attn_mask=mask, dropout_p=0.0, is_causal=False)
        return out.transpose(1, 2).reshape(b, -1, heads * head_dim).to(q.dtype)

    def forward(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        if encoder_hidden_states is None or encoder_hidden_states.shape[1] <= self.num_tokens:
            raise ValueError(f"the adapter's cross-attention needs text tokens followed by {self.num_tokens} face tokens")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch = hidden_states.shape[0]
        text, face = encoder_hidden_states[:, : -self.num_tokens], encoder_hidden_states[:, -self.num_tokens :]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, text.shape[1], batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            text = attn.norm_encoder_hidden_states(text)
        out = self._attend(attn, query, attn.to_k(text), attn.to_v(text), attention_mask)
        out = out + self.scale * self._attend(attn, query, self.to_k_ip(face), self.to_v_ip(face), None)
        out = attn.to_out[1](attn.to_out[0](out))
        if ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _hidden_size(unet: Any, name: str) -> int:
    channels = list(unet.config.block_out_channels)
    if name.startswith("mid_block"):
        return channels[-1]
    block = int(name.split(".")[1])
    return list(reversed(channels))[block] if name.startswith("up_blocks") else channels[block]


def install_adapter(unet: Any, weights: dict[str, torch.Tensor], num_tokens: int, scale: float) -> dict[str, Any]:
    """Give every cross-attention of ``unet`` a :class:`DecoupledCrossAttnProcessor` with
    the ``<n>.to_k_ip/to_v_ip`` weights (``n`` = position in ``unet.attn_processors``).
    Returns the previous processors (``unet.set_attn_processor(old)`` restores them)."""
    old = dict(unet.attn_processors)
    names = list(old)
    cross = [n for n, name in enumerate(names) if name.endswith("attn2.processor")]
    wanted = {f"{n}.{p}.weight" for n in cross for p in ("to_k_ip", "to_v_ip")}
    if set(weights) != wanted:
        extra, missing = sorted(set(weights) - wanted), sorted(wanted - set(weights))
        raise InputError(
            f"the ip_adapter weights do not fit this UNet ({len(cross)} cross-attentions): "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {extra[:3]}{'...' if len(extra) > 3 else ''}"
        )
    procs: dict[str, Any] = {}
    for n, name in enumerate(names):
        if n not in cross:
            procs[name] = old[name]
            continue
        proc = DecoupledCrossAttnProcessor(_hidden_size(unet, name), unet.config.cross_attention_dim, num_tokens, scale)
        proc.load_state_dict({"to_k_ip.weight": weights[f"{n}.to_k_ip.weight"],
                              "to_v_ip.weight": weights[f"{n}.to_v_ip.weight"]})
        procs[name] = proc.to(unet.device, unet.dtype).requires_grad_(False)
    unet.set_attn_processor(procs)
    return old


def set_adapter_scale(unet: Any, scale: float) -> None:
    for proc in unet.attn_processors.values():
        if isinstance(proc, DecoupledCrossAttnProcessor):
            proc.scale = scale


# -- checkpoint files ----------------------------------------------------------------------
def load_adapter_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(image_proj, ip_adapter)`` state dicts from ``ip-adapter.safetensors`` (ours) or
    the official ``ip-adapter.bin`` (unpickled with ``weights_only=True`` only)."""
    image_proj, ip, _ = load_adapter(path)
    return image_proj, ip


def load_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """:func:`load_adapter_file` and the Resampler config the checkpoint carries
    (:data:`CONFIG_KEY`; ``{}`` if none — the official ``ip-adapter.bin`` has none)."""
    import json

    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"adapter weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        flat = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get(CONFIG_KEY)
        try:
            config = json.loads(text) if text else {}
        except ValueError:
            raise InputError(f"{path}: its {CONFIG_KEY} metadata is not JSON") from None
        nested: dict[str, Any] = {"image_proj": {}, "ip_adapter": {}}
        for key, value in flat.items():
            group, _, rest = key.partition(".")
            if group not in nested or not rest:
                raise InputError(f"{path}: unexpected key {key!r} (expected image_proj.* and ip_adapter.*)")
            nested[group][rest] = value
    else:
        try:
            nested = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling refusal is one clear line
            raise InputError(f"{path} cannot be read safely (torch.load weights_only=True): {type(exc).__name__}") from None
        config = nested.get(CONFIG_KEY, {}) if isinstance(nested, dict) else {}
    if not isinstance(nested, dict) or not {"image_proj", "ip_adapter"} <= set(nested):
        raise InputError(f"{path} is not an InstantID adapter (expected the keys 'image_proj' and 'ip_adapter')")
    if not isinstance(config, dict):
        raise InputError(f"{path}: {CONFIG_KEY} must be a mapping, got {config!r}")
    ip = nested["ip_adapter"]
    if not all(re.fullmatch(r"\d+\.to_[kv]_ip\.weight", k) for k in ip):
        raise InputError(f"{path}: ip_adapter keys must look like '<n>.to_k_ip.weight'")
    return dict(nested["image_proj"]), dict(ip), config


def convert_adapter(src: str | Path, dst: str | Path, force: bool = False) -> Path:
    """Convert the official ``ip-adapter.bin`` to ``ip-adapter.safetensors`` (once)."""
    from anyv2v_core.video import save_safetensors

    dst = Path(dst)
    if dst.exists() and not force:
        raise InputError(f"{dst} exists; pass --force to overwrite it")
    image_proj, ip, config = load_adapter(src)
    flat = {f"image_proj.{k}": v.contiguous() for k, v in image_proj.items()}
    flat.update({f"ip_adapter.{k}": v.contiguous() for k, v in ip.items()})
    tmp = dst.with_name(f".{dst.name}.tmp")
    metadata = {"format": "pt", "source": Path(src).name}
    if config:
        import json

        metadata[CONFIG_KEY] = json.dumps(config)
    save_safetensors(flat, tmp, metadata=metadata)
    tmp.replace(dst)
    return dst
