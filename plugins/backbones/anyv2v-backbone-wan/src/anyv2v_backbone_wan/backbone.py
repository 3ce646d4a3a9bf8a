"""Wan image-to-video as an anyv2v backbone (flow-matching diffusion transformer).

Built on diffusers' ``WanTransformer3DModel`` and ``AutoencoderKLWan`` and transformers'
UMT5 and CLIP vision encoders; every denoiser input is computed as diffusers'
``WanImageToVideoPipeline`` computes it, per model family (read from the folder):

* **Wan2.1-I2V** (the transformer has ``image_dim``): the latent input is the noisy latent
  concatenated on the channel axis with 4 mask channels (1 on the first latent frame) and
  the VAE latent of the video ``[frame, 0, 0, ...]``; CLIP vision penultimate hidden states
  of the frame enter cross-attention (both CFG branches get them).
* **Wan2.2-TI2V-5B** (``expand_timesteps`` in ``model_index.json``): the first latent frame
  of the input is the VAE latent of the frame, and its tokens get timestep 0; the final
  latent's first frame is that latent too (:meth:`WanBackbone.finish_latents`).
* **Wan2.2-I2V-A14B** (``boundary_ratio`` and ``transformer_2``): as 2.1 without CLIP; the
  high-noise expert ``transformer`` runs at timesteps >= ``boundary_ratio * 1000``, the
  low-noise expert ``transformer_2`` below.

Text: UMT5 last hidden state of the cleaned prompt, 512 tokens, zeroed past the prompt.
Latents are the VAE posterior mean normalised with the VAE's ``latents_mean``/``latents_std``.
The scheduler is flow matching with the model's shift
(:class:`anyv2v_core.flow.FlowMatchScheduler`, the grid of diffusers'
``FlowMatchEulerDiscreteScheduler``; a UniPC config's ``flow_shift`` is used as the shift).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import ClassVar, Sequence

import torch
from PIL import Image

from anyv2v_core.diffusers_backbone import DiffusersBackbone
from anyv2v_core.hub import required_files
from anyv2v_core.errors import InputError, ModelNotFoundError
from anyv2v_core.flow import SOLVERS, FlowMatchScheduler
from anyv2v_core.modeling import image_to_tensor
from anyv2v_core.protocols import BackboneDefaults, ClipSpec, Conditioning, InjectionPattern, MemoryOptions

#: The English negative prompt of diffusers' Wan examples.
NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards"
)
#: UMT5 context length of every Wan model (the 2.1 attention processor assumes it).
TEXT_LEN = 512

REQUIRED = ("model_index.json", *required_files("transformer", "vae", "text_encoder",
                                                 other=("tokenizer/*", "scheduler/scheduler_config.json")))
#: Present only in some families (checked once the family is known).
OPTIONAL = ("transformer_2/*", "image_encoder/*", "image_processor/*")

#: Image conditionings kept (source frame + a few edited frames).
IMAGE_CACHE_SIZE = 8

#: (temporal compression, size multiple) of every Wan model: the 4k+1 frames of its VAE and
#: its smallest VAE x patch size (2.1 / A14B: 8 x 2; TI2V-5B: 16 x 2).
MIN_FACTORS = (4, 16, 16)

BLOCK_SETS = ("late", "mid", "early", "all", "none")


def parse_blocks(spec: str, n_layers: int, option: str) -> tuple[int, ...]:
    """Block indices of a ``--wan-*-blocks`` value: a named set or indices/ranges ``0,3,20-39``."""
    spec = str(spec).strip().lower()
    half = n_layers // 2
    named = {"late": range(half, n_layers), "mid": range(half, half + 1), "early": range(0, half),
             "all": range(n_layers), "none": range(0)}
    if spec in named:
        return tuple(named[spec])
    out: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise InputError(f"--{option} must be one of {', '.join(BLOCK_SETS)} or indices like 0,3,20-39, "
                         f"got {spec!r}") from None
    bad = [i for i in out if not 0 <= i < n_layers]
    if bad:
        raise InputError(f"--{option}: block {bad[0]} does not exist (the model has blocks 0-{n_layers - 1})")
    return tuple(sorted(set(out)))


def _check_clip(n_frames: int, width: int, height: int, temporal: int, mult_w: int, mult_h: int) -> None:
    if n_frames < 1 or (n_frames - 1) % temporal:
        raise InputError(f"wan needs {temporal}k+1 frames (e.g. 33, 49, 81), got {n_frames}")
    if width % mult_w or height % mult_h:
        raise InputError(f"wan needs a width that is a multiple of {mult_w} and a height that is a multiple of "
                         f"{mult_h}, got {width}x{height}")


def prompt_clean(text: str) -> str:
    """The Wan pipelines' prompt cleaning: ftfy, HTML unescaping, whitespace collapsed."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # pragma: no cover - ftfy is a dependency
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class WanDenoiser(torch.nn.Module):
    """The denoiser the injection patterns refer to: ``transformer`` and, for the
    two-expert Wan2.2-A14B, ``transformer_2`` (run below the boundary timestep)."""

    def __init__(self, transformer: torch.nn.Module, transformer_2: torch.nn.Module | None = None,
                 boundary: float | None = None) -> None:
        super().__init__()
        self.transformer = transformer
        self.transformer_2 = transformer_2
        self.boundary = boundary

    def expert(self, timestep: torch.Tensor) -> torch.nn.Module:
        if self.transformer_2 is None or self.boundary is None or float(timestep.max()) >= self.boundary:
            return self.transformer
        return self.transformer_2

    def forward(self, hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image=None,
                expert_timestep=None):
        model = self.expert(timestep if expert_timestep is None else expert_timestep)
        return model(hidden_states=hidden_states, timestep=timestep, encoder_hidden_states=encoder_hidden_states,
                     encoder_hidden_states_image=encoder_hidden_states_image, return_dict=False)[0]


class WanBackbone(DiffusersBackbone):
    name: ClassVar[str] = "wan"
    default_model: ClassVar[str] = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
    defaults: ClassVar[BackboneDefaults] = BackboneDefaults(
        n_frames=81,
        width=832,
        height=480,
        fps=16,
        inversion_steps=50,
        steps=50,
        cfg=5.0,
        t_idx=1,
        tau_conv=0.2,
        tau_sa=0.0,  # no site: Wan has no frame-wise spatial attention (README)
        tau_ta=0.5,
        negative_prompt=NEGATIVE_PROMPT,
        inversion_prompt="",
        inversion_solver="euler",
    )
    components: ClassVar[tuple[str, ...]] = ("text_encoder", "image_encoder", "vae")
    #: Latents stay float32 whatever the model's dtype: flow ODE steps accumulated in
    #: bfloat16 cost the inversion a 4-5x larger reconstruction error (README).
    latent_dtype = torch.float32
    #: ``anyv2v selftest``: 4k+1 frames, inversion on the edit's 10-step grid.
    selftest_settings: ClassVar[dict] = {"n_frames": 9, "inversion_steps": 10}

    def __init__(
        self,
        model: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        wan_attn_blocks: str = "late",
        wan_attn_kinds: str = "qk",
        wan_feature_blocks: str = "mid",
        wan_feature: str = "ffn",
        wan_group_offload: bool = False,
    ):
        if wan_feature not in ("ffn", "block"):
            raise InputError(f"--wan-feature must be ffn or block, got {wan_feature!r}")
        kinds = str(wan_attn_kinds).strip().lower()
        if not kinds or set(kinds) - set("qkv"):
            raise InputError(f"--wan-attn-kinds must be letters of q, k, v (e.g. qk, qkv), got {wan_attn_kinds!r}")
        self.group_offload = bool(wan_group_offload)
        if self.group_offload and torch.device(device).type != "cuda":
            raise InputError("--wan-group-offload needs a CUDA device")
        # The options only change where the edit injects, never an inversion: they stay out
        # of the fingerprint, so cached inversions are shared across them.
        super().__init__(model, device, dtype)
        n_layers = int(self.transformer.config.num_layers)
        self.attn_blocks = parse_blocks(wan_attn_blocks, n_layers, "wan-attn-blocks")
        self.attn_kinds = ("attn-qk",) * ("q" in kinds and "k" in kinds) + tuple(
            f"attn-{c}" for c in "qkv" if c in kinds and not (c in "qk" and "q" in kinds and "k" in kinds))
        self.feature_blocks = parse_blocks(wan_feature_blocks, n_layers, "wan-feature-blocks")
        self.feature = wan_feature
        self.injection_patterns = self._injection_patterns()
        self._image_cache: dict[tuple, dict[str, torch.Tensor]] = {}
        if self.group_offload:
            self._apply_group_offload()

    def load(self) -> list[Path]:
        from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        root = self.resolve(REQUIRED, [*REQUIRED, *OPTIONAL, "*.json", "*.txt"])
        index = json.loads((root / "model_index.json").read_text())
        self.expand_timesteps = bool(index.get("expand_timesteps", False))
        self.boundary_ratio = index.get("boundary_ratio")
        dtype, common = self.dtype, dict(use_safetensors=True)
        # group offloading places the transformers' blocks itself
        place = (lambda m: m.eval().requires_grad_(False)) if self.group_offload else (
            lambda m: self.place(m, cast=False))
        self.transformer = place(WanTransformer3DModel.from_pretrained(root / "transformer", torch_dtype=dtype,
                                                                       **common))
        self.transformer_2 = None
        if self.boundary_ratio is not None:
            if not (root / "transformer_2" / "config.json").is_file():
                raise ModelNotFoundError(f"model {self.model_id!r} has a boundary_ratio but lacks transformer_2/")
            self.transformer_2 = place(WanTransformer3DModel.from_pretrained(root / "transformer_2",
                                                                             torch_dtype=dtype, **common))
        # Wan's VAE and CLIP run in float32 (as diffusers' examples load them): small and sensitive.
        self.vae = self.place(AutoencoderKLWan.from_pretrained(root / "vae", torch_dtype=torch.float32, **common),
                              cast=False)
        self.text_encoder = self.place(UMT5EncoderModel.from_pretrained(root / "text_encoder", torch_dtype=dtype,
                                                                        **common), cast=False)
        self.tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
        self.image_encoder = self.image_processor = None
        if self.transformer.config.image_dim is not None:
            from transformers import CLIPImageProcessor, CLIPVisionModel

            for sub in ("image_encoder/config.json", "image_processor/preprocessor_config.json"):
                if not (root / sub).is_file():
                    raise ModelNotFoundError(f"model {self.model_id!r} conditions on CLIP image tokens but lacks {sub}")
            self.image_encoder = self.place(CLIPVisionModel.from_pretrained(
                root / "image_encoder", torch_dtype=torch.float32, **common), cast=False)
            self.image_processor = CLIPImageProcessor.from_pretrained(root / "image_processor")
        self._scheduler_config = dict(FlowMatchEulerDiscreteScheduler.load_config(root / "scheduler"))
        boundary = None if self.boundary_ratio is None else self.boundary_ratio * self.num_train_timesteps
        self.denoiser = WanDenoiser(self.transformer, self.transformer_2, boundary)
        cfg = self.transformer.config
        self.patch_size = tuple(cfg.patch_size)
        self.scale_temporal = int(self.vae.config.scale_factor_temporal)
        self.scale_spatial = int(self.vae.config.scale_factor_spatial)
        return [root]

    @property
    def num_train_timesteps(self) -> int:
        return int(self._scheduler_config.get("num_train_timesteps", 1000))

    @property
    def family(self) -> str:
        if self.expand_timesteps:
            return "wan2.2-ti2v"
        if self.transformer_2 is not None:
            return "wan2.2-i2v-a14b"
        return "wan2.1-i2v"

    # -- memory options -----------------------------------------------------------------
    def configure_memory(self, options: MemoryOptions) -> None:
        """The base's options (``offload``: accelerate model CPU offload, one model on the
        device at a time; ``vae_tiling``) — with ``--wan-group-offload`` the transformers are
        left to their group offloading. ``vae_chunk`` does not apply: Wan's causal VAE codes
        a clip at once; ``channels_last`` only touches 2D convolutions (Wan has none)."""
        super().configure_memory(options)

    def _models(self) -> list[torch.nn.Module]:
        models = super()._models()
        return [m for m in models if m is not self.denoiser] if self.group_offload else models

    def _apply_group_offload(self) -> None:
        for model in (self.transformer, self.transformer_2):
            if model is not None:
                model.enable_group_offload(onload_device=self.device, offload_device=torch.device("cpu"),
                                           offload_type="block_level", num_blocks_per_group=1)

    # -- schedulers ---------------------------------------------------------------------
    def make_scheduler(self, sampler: str = "ddim") -> FlowMatchScheduler:
        """The flow ODE sampler: ``euler`` (also the core's default name ``ddim``: the
        pipeline's steps), or the second-order ``midpoint`` / ``fireflow`` (pair them with the
        same ``--inversion-solver``)."""
        solver = "euler" if sampler == "ddim" else sampler
        if solver not in SOLVERS:
            raise InputError(f"wan samples the flow ODE with {', '.join(SOLVERS)}, not {sampler!r}")
        return FlowMatchScheduler.from_config(self._scheduler_config, solver=solver)

    def make_inverse_scheduler(self) -> FlowMatchScheduler:
        return FlowMatchScheduler.from_config(self._scheduler_config, inverse=True)

    # -- clip checks ----------------------------------------------------------------------
    @classmethod
    def check_clip_spec(cls, clip: ClipSpec) -> None:
        """Before any weights load: what every Wan model needs (4k+1 frames, sizes in
        multiples of 16); the loaded model checks its own factors (TI2V-5B: 32)."""
        _check_clip(clip.n_frames, clip.width, clip.height, *MIN_FACTORS)

    def check_clip(self, n_frames: int, width: int, height: int) -> None:
        """Frame counts of the form 4k+1 and sizes in multiples of VAE x patch size."""
        _check_clip(n_frames, width, height, self.scale_temporal, self.scale_spatial * self.patch_size[1],
                    self.scale_spatial * self.patch_size[2])

    # -- VAE ----------------------------------------------------------------------------
    def _latent_stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.vae.config
        mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1).to(like.device, like.dtype)
        inv_std = 1.0 / torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1).to(like.device, like.dtype)
        return mean, inv_std

    def _encode(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised latents of a pixel video ``(1, 3, F, H, W)`` in [-1, 1]."""
        with self.on_device(self.vae) as vae:
            dist = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
            latent = dist.mode() if generator is None else dist.sample(generator=generator)
        latent = latent.to(self.device, torch.float32)
        mean, inv_std = self._latent_stats(latent)
        return (latent - mean) * inv_std

    @staticmethod
    def _pixels(frames: Sequence[Image.Image]) -> torch.Tensor:
        return torch.cat([image_to_tensor(f) * 2 - 1 for f in frames]).permute(1, 0, 2, 3)[None]

    @torch.inference_mode()
    def encode_video(self, frames: Sequence[Image.Image], generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised VAE latents ``(1, C, (F-1)/4+1, H/8, W/8)`` (factors from the VAE config),
        float32."""
        self.check_clip(len(frames), frames[0].width, frames[0].height)
        return self._encode(self._pixels(frames), generator).to(self.latent_dtype)

    @torch.inference_mode()
    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """Frames ``(F, H, W, 3)`` in [0, 1] on the CPU."""
        with self.on_device(self.vae) as vae:
            z = latents.to(vae.device, vae.dtype)
            mean, inv_std = self._latent_stats(z)
            video = vae.decode(z / inv_std + mean, return_dict=False)[0]
        return (video[0].float() / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0).cpu()

    # -- conditioning -------------------------------------------------------------------
    @torch.inference_mode()
    def encode_text(self, prompt: str) -> torch.Tensor:
        if prompt not in self._text_cache:
            inputs = self.tokenizer([prompt_clean(prompt)], padding="max_length", max_length=TEXT_LEN,
                                    truncation=True, add_special_tokens=True, return_attention_mask=True,
                                    return_tensors="pt")
            mask = inputs.attention_mask
            with self.on_device(self.text_encoder) as encoder:
                hidden = encoder(inputs.input_ids.to(encoder.device), mask.to(encoder.device)).last_hidden_state
            n = int(mask.gt(0).sum())
            hidden = hidden.to(self.device, self.text_encoder.dtype)[0]
            padded = torch.cat([hidden[:n], hidden.new_zeros(TEXT_LEN - n, hidden.shape[1])])[None]
            self._text_cache[prompt] = padded.to(self.transformer.dtype)
        return self._text_cache[prompt]

    @torch.inference_mode()
    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """CLIP vision penultimate hidden states (Wan2.1 only)."""
        with self.on_device(self.image_encoder) as encoder:
            pixels = self.image_processor(images=image, return_tensors="pt").to(encoder.device)
            hidden = encoder(**pixels, output_hidden_states=True).hidden_states[-2]
        return hidden.to(self.device, self.transformer.dtype)

    @torch.inference_mode()
    def image_condition(self, image: Image.Image, clip: ClipSpec) -> torch.Tensor:
        """2.2-TI2V: the frame's latent ``(1, C, 1, h, w)``; otherwise the 4 mask channels and
        the latent of ``[frame, 0, ..., 0]`` (``n_frames`` frames), ``(1, 4 + C, F', h, w)``."""
        self.check_clip(clip.n_frames, image.width, image.height)
        first = self._pixels([image])[:, :, :1]
        if self.expand_timesteps:
            return self._encode(first)
        video = torch.cat([first, first.new_zeros(1, 3, clip.n_frames - 1, image.height, image.width)], dim=2)
        latent = self._encode(video)
        mask = torch.zeros(1, self.scale_temporal, *latent.shape[2:], device=latent.device)
        mask[:, :, 0] = 1
        return torch.cat([mask, latent], dim=1)

    def _image_inputs(self, image: Image.Image, clip: ClipSpec) -> dict[str, torch.Tensor]:
        """The image part of a branch's conditioning, cached for the last few frames (the
        source branch, each edit's two branches and every window reuse them)."""
        import hashlib

        rgb = image.convert("RGB")
        key = (hashlib.sha256(rgb.tobytes()).hexdigest(), rgb.size, clip.n_frames)
        if key not in self._image_cache:
            inputs = {"image": self.image_condition(rgb, clip)}
            if self.image_encoder is not None:
                inputs["image_embeds"] = self.encode_image(rgb)
            if len(self._image_cache) >= IMAGE_CACHE_SIZE:
                self._image_cache.pop(next(iter(self._image_cache)))
            self._image_cache[key] = inputs
        return self._image_cache[key]

    def condition(self, image: Image.Image, prompt: str, clip: ClipSpec, *, negative: bool = False) -> Conditioning:
        # The CFG-negative branch keeps the image conditioning (as the Wan pipelines do).
        return {"text": self.encode_text(prompt), **self._image_inputs(image, clip)}

    def _first_frame_mask(self, sample: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(1, 1, *sample.shape[2:], dtype=torch.float32, device=sample.device)
        mask[:, :, 0] = 0
        return mask

    def predict(self, sample: torch.Tensor, timestep: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """The velocity for a batch of branches at the (float) model ``timestep``."""
        dtype = self.transformer.dtype
        timestep = timestep.to(sample.device, torch.float32)
        batch = sample.shape[0]
        if self.expand_timesteps:
            mask = self._first_frame_mask(sample)
            model_input = ((1 - mask) * cond["image"] + mask * sample).to(dtype)
            _, ph, pw = self.patch_size
            per_token = (mask[0][0][:, ::ph, ::pw] * timestep).flatten()
            model_t = per_token.unsqueeze(0).expand(batch, -1)
        else:
            model_input = torch.cat([sample, cond["image"].to(sample.dtype)], dim=1).to(dtype)
            model_t = timestep.expand(batch)
        return self.denoiser(model_input, model_t, cond["text"], cond.get("image_embeds"),
                             expert_timestep=timestep)

    def finish_latents(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """2.2-TI2V: the first latent frame is the conditioning frame's latent (as the
        pipeline sets it after sampling); the identity for the other families."""
        if not self.expand_timesteps:
            return latents
        mask = self._first_frame_mask(latents)
        return ((1 - mask) * cond["image"] + mask * latents).to(latents.dtype)

    # -- injection ----------------------------------------------------------------------
    def _injection_patterns(self) -> tuple[InjectionPattern, ...]:
        """attn1 Q/K (``--wan-attn-kinds``, default qk) of ``--wan-attn-blocks`` in the
        ``temporal`` role (``tau_ta``: the only attention that mixes frames); the
        ``--wan-feature`` output of ``--wan-feature-blocks`` in the ``conv`` role
        (``tau_conv``). ``tau_sa`` has no site: Wan has no frame-wise spatial attention
        (README). Only video tokens are hooked (attn1, ffn and block outputs hold no text)."""
        experts = ("transformer",) if self.transformer_2 is None else ("transformer", "transformer_2")
        suffix = ".ffn" if self.feature == "ffn" else ""
        patterns = [InjectionPattern("conv", f"{e}.blocks.{i}{suffix}", "block-output")
                    for e in experts for i in self.feature_blocks]
        for kind in self.attn_kinds:
            patterns += [InjectionPattern("temporal", f"{e}.blocks.{i}.attn1", kind)
                         for e in experts for i in self.attn_blocks]
        return tuple(patterns)

    # -- tiny models for tests and `anyv2v selftest` -------------------------------------
    @classmethod
    def build_tiny(cls, path: str | Path, seed: int = 0, family: str = "wan2.1-i2v") -> Path:
        from .tiny import build_tiny_model

        return build_tiny_model(path, seed=seed, family=family)

