"""A toy image-to-video backbone for testing the core (and for plugin authors to copy from).

Small, pure torch, CPU, milliseconds per step: a denoiser with the module layout the PnP
injection hooks (a residual block's ``conv2`` whose output is injected; spatial, temporal
and cross attentions with ``to_q``/``to_k``/``to_v``), the DDIM schedulers of diffusers
and a fixed VAE (8x8 pixel-unshuffle + a 1x1 projection to 4 latent channels, decoded by
its pseudo-inverse). The weights are random from a seed: :meth:`ToyBackbone.build_tiny`
saves them as safetensors in a folder (``config.json`` + ``toy.safetensors``) that
``ToyBackbone(model=folder)`` loads; ``model=None`` builds them in memory (seed 0).

It is registered as backbone ``toy`` by :mod:`anyv2v_core.testing.toy_plugin` through a
real entry point only where a test installs one (:func:`install_toy_plugin`); users never
see it. Nothing here is the AnyV2V method: it only drives the core's sampling code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import torch
from torch import nn

from ..errors import InputError, ModelNotFoundError
from ..protocols import BackboneDefaults, ClipSpec, Conditioning, InjectionPattern, MemoryOptions

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

#: The injection sites by role (globs over ``denoiser.named_modules()``); the core resolves
#: each role's threshold (conv: tau_conv, spatial: tau_sa, temporal: tau_ta, cross: tau_ca).
INJECTION_PATTERNS = (
    InjectionPattern("conv", "blocks.*.res.conv2", "conv-output"),
    InjectionPattern("spatial", "blocks.*.attn1", "attn-qk"),
    InjectionPattern("temporal", "blocks.*.attn_temp", "attn-qk"),
    InjectionPattern("cross", "blocks.*.attn2", "attn-qk"),
)

SCHEDULER_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                        clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
#: The architecture of a toy model (stored in its ``config.json``).
CONFIG = dict(latent_channels=4, patch=8, channels=32, heads=2, blocks=2, text_len=8, seed=0)
WEIGHTS, CONFIG_FILE = "toy.safetensors", "config.json"


class _Attention(nn.Module):
    """Multi-head attention with the ``to_q``/``to_k``/``to_v``/``to_out`` children the
    ``attn-qk`` injection hooks; ``context`` (cross-attention) defaults to the input."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(x)
        ctx = h if context is None else context
        q, k, v = self.to_q(h), self.to_k(ctx), self.to_v(ctx)
        b, n, d = q.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(t.shape[0], t.shape[1], self.heads, d // self.heads).transpose(1, 2)

        out = torch.nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
        return x + self.to_out(out.transpose(1, 2).reshape(b, n, d))


class _Residual(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, dim)
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.time = nn.Linear(dim, dim)
        self.norm2 = nn.GroupNorm(8, dim)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x))) + self.time(temb)[:, :, None, None]
        return x + self.conv2(nn.functional.silu(self.norm2(h)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.res = _Residual(dim)
        self.attn1 = _Attention(dim, heads)  # spatial: the h*w positions of one frame
        self.attn2 = _Attention(dim, heads, context_dim=dim)  # cross: to the prompt tokens
        self.attn_temp = _Attention(dim, heads)  # temporal: the frames at one position

    def forward(self, x: torch.Tensor, temb: torch.Tensor, text: torch.Tensor, frames: int) -> torch.Tensor:
        bf, d, h, w = x.shape
        b = bf // frames
        x = self.res(x, temb)
        tokens = x.flatten(2).transpose(1, 2)  # (B*F, h*w, D): branch-major along dim 0
        tokens = self.attn1(tokens)
        tokens = self.attn2(tokens, text.repeat_interleave(frames, dim=0))
        seq = tokens.reshape(b, frames, h * w, d).transpose(1, 2).reshape(b * h * w, frames, d)
        seq = self.attn_temp(seq)  # (B*h*w, F, D): branch-major along dim 0
        tokens = seq.reshape(b, h * w, frames, d).transpose(1, 2).reshape(bf, h * w, d)
        return tokens.transpose(1, 2).reshape(bf, d, h, w)


class ToyDenoiser(nn.Module):
    """Predicts the noise of ``sample (B, C, F, h, w)`` given the first frame's latent."""

    def __init__(self, latent_channels: int, channels: int, heads: int, blocks: int, text_len: int, **_: Any) -> None:
        super().__init__()
        self.channels = channels
        self.text_embedding = nn.Embedding(256, channels)
        self.text_position = nn.Parameter(torch.zeros(text_len, channels))
        self.time_mlp = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.conv_in = nn.Conv2d(2 * latent_channels, channels, 3, padding=1)
        self.blocks = nn.ModuleList(_Block(channels, heads) for _ in range(blocks))
        self.norm_out = nn.GroupNorm(8, channels)
        self.conv_out = nn.Conv2d(channels, latent_channels, 3, padding=1)

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text_embedding(ids) + self.text_position

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, image_latent: torch.Tensor,
                text: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = sample.shape
        half = self.channels // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half).to(sample.device)
        angles = timestep.float().reshape(-1, 1).to(sample.device) * freqs
        temb = self.time_mlp(torch.cat([angles.sin(), angles.cos()], dim=-1).to(sample.dtype))
        temb = temb.expand(b, -1).repeat_interleave(f, dim=0)
        frames = sample.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        cond = image_latent.expand(b, -1, f, -1, -1).permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        x = self.conv_in(torch.cat([frames, cond], dim=1))
        for block in self.blocks:
            x = block(x, temb, text, f)
        out = self.conv_out(nn.functional.silu(self.norm_out(x)))
        return out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


class ToyVAE(nn.Module):
    """Fixed pixel-unshuffle by ``patch`` and a 1x1 projection to ``latent_channels``; the
    decoder is the projection's pseudo-inverse followed by pixel-shuffle."""

    def __init__(self, latent_channels: int, patch: int, **_: Any) -> None:
        super().__init__()
        self.patch = patch
        self.encoder = nn.Conv2d(3 * patch * patch, latent_channels, 1, bias=False)
        self.decoder = nn.Conv2d(latent_channels, 3 * patch * patch, 1, bias=False)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encoder(nn.functional.pixel_unshuffle(pixels, self.patch))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return nn.functional.pixel_shuffle(self.decoder(latents), self.patch)


def _random_modules(config: dict[str, Any]) -> tuple[ToyDenoiser, ToyVAE]:
    """The toy's modules with deterministic random weights from ``config["seed"]``."""
    generator = torch.Generator().manual_seed(int(config["seed"]))
    denoiser, vae = ToyDenoiser(**config), ToyVAE(**config)
    with torch.no_grad():
        for name, param in denoiser.named_parameters():
            if "norm" in name:
                param.copy_((1.0 if name.endswith("weight") else 0.0) + 0.05 * torch.randn(param.shape, generator=generator))
            else:
                fan_in = param[0].numel() if param.ndim > 1 else param.shape[0]
                param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(fan_in))
        # 4 orthonormal directions of the patch space: encode then decode is a projection
        basis, _ = torch.linalg.qr(torch.randn(vae.encoder.in_channels, vae.encoder.out_channels, generator=generator))
        vae.encoder.weight.copy_(basis.T[:, :, None, None] * 2.0)
        vae.decoder.weight.copy_(basis[:, :, None, None] / 2.0)
    return denoiser, vae


class ToyBackbone:
    """A tiny I2V backbone implementing :class:`~anyv2v_core.protocols.I2VBackbone`."""

    name: ClassVar[str] = "toy"
    default_model: ClassVar[str] = "(random, seed 0)"
    defaults: ClassVar[BackboneDefaults] = BackboneDefaults(
        n_frames=8, width=64, height=64, fps=8, inversion_steps=20, steps=10, cfg=5.0, t_idx=1,
        tau_conv=0.2, tau_sa=0.2, tau_ta=0.5, negative_prompt="blurry",
    )

    def __init__(self, model: str | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        from ..hub import fingerprint

        self.device, self.dtype = torch.device(device), dtype
        if model is None:
            config = dict(CONFIG)
            denoiser, vae = _random_modules(config)
            self.model_id = self.model_fingerprint = f"toy-random-seed{config['seed']}"
        else:
            root = Path(model).expanduser()
            missing = [f for f in (CONFIG_FILE, WEIGHTS) if not (root / f).is_file()]
            if missing:
                raise ModelNotFoundError(f"toy model folder {root} lacks {', '.join(missing)}")
            from safetensors.torch import load_file

            config = {**CONFIG, **json.loads((root / CONFIG_FILE).read_text())}
            denoiser, vae = _random_modules(config)
            state = load_file(str(root / WEIGHTS))
            denoiser.load_state_dict({k[len("denoiser."):]: v for k, v in state.items() if k.startswith("denoiser.")})
            vae.load_state_dict({k[len("vae."):]: v for k, v in state.items() if k.startswith("vae.")})
            self.model_id, self.model_fingerprint = str(root), fingerprint(root)
        self.config = config
        self.denoiser = denoiser.to(self.device, dtype).eval().requires_grad_(False)
        self.vae = vae.to(self.device, dtype).eval().requires_grad_(False)
        self.memory = MemoryOptions()

    @classmethod
    def build_tiny(cls, path: str | Path, seed: int = 0) -> Path:
        """Save a toy model with weights drawn from ``seed`` under ``path``; returns ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = {**CONFIG, "seed": seed}
        denoiser, vae = _random_modules(config)
        tensors = {f"denoiser.{k}": v.contiguous() for k, v in denoiser.state_dict().items()}
        tensors.update({f"vae.{k}": v.contiguous() for k, v in vae.state_dict().items()})
        save_file(tensors, str(path / WEIGHTS), metadata={"format": "pt"})
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        return path

    def configure_memory(self, options: MemoryOptions) -> None:
        """Only ``vae_chunk`` means something here (frames per VAE call); the rest is accepted."""
        self.memory = options

    # -- schedulers -------------------------------------------------------------------
    def make_scheduler(self, sampler: str = "ddim") -> Any:
        from diffusers import DDIMScheduler, DDPMScheduler

        if sampler == "ddim":
            return DDIMScheduler(**SCHEDULER_CONFIG)
        if sampler == "ddpm":
            return DDPMScheduler(**{k: v for k, v in SCHEDULER_CONFIG.items() if k != "set_alpha_to_one"})
        raise InputError(f"toy samples with ddim or ddpm, not {sampler!r}")

    def make_inverse_scheduler(self) -> Any:
        from diffusers import DDIMInverseScheduler

        return DDIMInverseScheduler(**SCHEDULER_CONFIG)

    # -- VAE --------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_video(self, frames: Sequence["Image.Image"], generator: torch.Generator | None = None) -> torch.Tensor:
        from ..modeling import image_to_tensor

        chunk = max(self.memory.vae_chunk, 1)
        pixels = torch.cat([image_to_tensor(f) for f in frames]) * 2 - 1
        latents = torch.cat([self.vae.encode(pixels[i : i + chunk].to(self.device, self.dtype))
                             for i in range(0, len(pixels), chunk)])
        if generator is not None:  # a posterior sample: the mean plus a little seeded noise
            latents = latents + 0.05 * torch.randn(latents.shape, generator=generator).to(latents)
        return latents.permute(1, 0, 2, 3)[None]

    @torch.inference_mode()
    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        frames = latents[0].permute(1, 0, 2, 3)
        chunk = max(self.memory.vae_chunk, 1)
        images = torch.cat([self.vae.decode(frames[i : i + chunk]) for i in range(0, frames.shape[0], chunk)])
        return (images.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu()

    # -- conditioning -----------------------------------------------------------------
    def _text(self, prompt: str) -> torch.Tensor:
        n = self.config["text_len"]
        ids = list(prompt.encode("utf-8")[:n]) + [0] * max(0, n - len(prompt.encode("utf-8")))
        with torch.inference_mode():
            return self.denoiser.embed_text(torch.tensor([ids], device=self.device))

    def condition(self, image: "Image.Image", prompt: str, clip: ClipSpec, *, negative: bool = False) -> Conditioning:
        from ..video import resize

        latent = self.encode_video([resize(image.convert("RGB"), clip.size)])  # (1, C, 1, h, w)
        return {"text": self._text(prompt), "image": latent}

    def predict(self, sample: torch.Tensor, timestep: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return self.denoiser(sample, timestep, cond["image"], cond["text"])

    #: The injection sites (see :data:`INJECTION_PATTERNS`).
    injection_patterns: ClassVar[tuple[InjectionPattern, ...]] = INJECTION_PATTERNS
