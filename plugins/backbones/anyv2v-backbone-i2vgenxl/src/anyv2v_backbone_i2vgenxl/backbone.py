"""I2VGen-XL as an anyv2v backbone.

Built on diffusers' ``I2VGenXLUNet`` and ``AutoencoderKL`` and transformers' CLIP models;
the conditioning is I2VGen-XL's own, computed here as its diffusers pipeline does (the
pipeline class itself is deprecated and not used):

* text: CLIP text encoder, penultimate layer + final layer norm (the pipeline's
  ``clip_skip=1``), prompt padded to the tokenizer's max length;
* image embedding: the frame centre-cropped to a square, bilinearly resized to the CLIP
  crop size, CLIP-normalised, ``image_embeds``; the CFG-negative branch gets zeros;
* image latents: VAE latent (posterior mean) of the frame, then ``n_frames - 1``
  frame-position masks ``(i+1)/(n_frames-1)``;
* ``fps`` micro-condition.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Iterator, Sequence

import torch
from PIL import Image

from anyv2v_core.errors import InputError
from anyv2v_core.hub import fingerprint, resolve_model
from anyv2v_core.injection import pnp_sites
from anyv2v_core.modeling import decode_latent_video, encode_latents, image_to_tensor, tokenize_prompt
from anyv2v_core.protocols import BackboneDefaults, ClipSpec, Conditioning, EditOptions, InjectionSite, MemoryOptions

NEGATIVE_PROMPT = (
    "Distorted, discontinuous, Ugly, blurry, low resolution, motionless, static, disfigured, "
    "disconnected limbs, Ugly faces, incomplete arms"
)

#: Injection sites by diffusers module name (SPEC §2; l1 = 4, l2 = l3 = 4..11).
CONV_SITES = ("up_blocks.1.resnets.1.conv2",)
ATTN_POSITIONS = ((1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2))
SPATIAL_SITES = tuple(f"up_blocks.{b}.attentions.{a}.transformer_blocks.0.attn1" for b, a in ATTN_POSITIONS)
TEMPORAL_SITES = tuple(f"up_blocks.{b}.temp_attentions.{a}.transformer_blocks.0.attn1" for b, a in ATTN_POSITIONS)

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "image_encoder", "feature_extractor", "scheduler")
REQUIRED = (
    "unet/config.json",
    "unet/*.safetensors",
    "vae/config.json",
    "vae/*.safetensors",
    "text_encoder/config.json",
    "text_encoder/*.safetensors",
    "image_encoder/config.json",
    "image_encoder/*.safetensors",
    "tokenizer/*",
    "feature_extractor/preprocessor_config.json",
    "scheduler/scheduler_config.json",
)


def center_crop_wide(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale (BOX) so that ``size`` fits inside, then centre-crop to ``size`` — I2VGen-XL's
    preprocessing. The identity for an image already at ``size``."""
    width, height = size
    scale = min(image.width / width, image.height / height)
    image = image.resize((round(image.width // scale), round(image.height // scale)), resample=Image.BOX)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def _variant(root: Path, dtype: torch.dtype) -> str | None:
    if dtype == torch.float16 and any((root / "unet").glob("*.fp16.safetensors")):
        return "fp16"
    return None


class I2VGenXLBackbone:
    name: ClassVar[str] = "i2vgenxl"
    default_model: ClassVar[str] = "ali-vilab/i2vgen-xl"
    defaults: ClassVar[BackboneDefaults] = BackboneDefaults(
        n_frames=16,
        width=512,
        height=512,
        fps=8,
        inversion_steps=500,
        steps=50,
        cfg=9.0,
        t_idx=1,
        tau_conv=0.2,
        tau_sa=0.2,
        tau_ta=0.5,
        negative_prompt=NEGATIVE_PROMPT,
        inversion_prompt="",
    )

    def __init__(self, model: str | None = None, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        from diffusers import AutoencoderKL, DDIMScheduler, I2VGenXLUNet
        from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

        self.model_id = model or self.default_model
        want_fp16 = dtype == torch.float16
        allow = [p for p in REQUIRED if not p.endswith(".safetensors")] + [
            f"{c}/*{'.fp16' if want_fp16 else ''}.safetensors" for c in ("unet", "vae", "text_encoder", "image_encoder")
        ] + ["model_index.json"]
        root = resolve_model(self.model_id, REQUIRED, allow_patterns=allow)
        self.model_fingerprint = fingerprint(root)
        self.device = torch.device(device)
        self.dtype = dtype
        variant = _variant(root, dtype)
        common = dict(use_safetensors=True, variant=variant)
        self.unet = I2VGenXLUNet.from_pretrained(root / "unet", torch_dtype=dtype, **common)
        self.vae = AutoencoderKL.from_pretrained(root / "vae", torch_dtype=dtype, **common)
        self.text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder", **common)
        self.image_encoder = CLIPVisionModelWithProjection.from_pretrained(root / "image_encoder", **common)
        self.tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
        self.feature_extractor = CLIPImageProcessor.from_pretrained(root / "feature_extractor")
        self._scheduler_config = DDIMScheduler.load_config(root / "scheduler")
        for module in (self.unet, self.vae):  # already in dtype (diffusers warns on a later cast)
            module.to(self.device).eval().requires_grad_(False)
        for module in (self.text_encoder, self.image_encoder):
            module.to(self.device, self.dtype).eval().requires_grad_(False)
        self.denoiser = self.unet
        self._text_cache: dict[str, torch.Tensor] = {}
        self.memory = MemoryOptions()

    # -- memory options -----------------------------------------------------------------
    def configure_memory(self, options: MemoryOptions) -> None:
        """Apply :class:`MemoryOptions` (all off by default: the reference's numbers)."""
        self.memory = options
        if options.vae_tiling:
            self.vae.enable_tiling()
        else:
            self.vae.disable_tiling()
        if options.channels_last:  # the 2D convolutions only (the UNet also has 3D ones)
            for module in self.unet.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.to(memory_format=torch.channels_last)
        for module in (self.text_encoder, self.image_encoder, self.vae):
            module.to("cpu" if options.offload else self.device)

    @contextmanager
    def _on_device(self, module: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """With ``offload``, move a CPU-resident module to the device while it runs."""
        if not self.memory.offload or self.device.type == "cpu":
            yield module
            return
        module.to(self.device)
        try:
            yield module
        finally:
            module.to("cpu")

    # -- schedulers -------------------------------------------------------------------
    def make_scheduler(self, sampler: str = "ddim"):
        from diffusers import DDIMScheduler

        if sampler != "ddim":
            raise InputError(f"i2vgenxl samples with ddim only, not {sampler!r}")
        return DDIMScheduler.from_config(self._scheduler_config)

    def make_inverse_scheduler(self):
        from diffusers import DDIMInverseScheduler

        return DDIMInverseScheduler.from_config(self._scheduler_config)

    # -- VAE --------------------------------------------------------------------------
    def _encode_frame(self, image: Image.Image, generator: torch.Generator | None) -> torch.Tensor:
        pixels = (image_to_tensor(image) * 2 - 1).to(self.device, self.dtype)
        with self._on_device(self.vae) as vae:
            return encode_latents(vae, pixels, generator)

    @torch.inference_mode()
    def encode_video(self, frames: Sequence[Image.Image], generator: torch.Generator | None = None) -> torch.Tensor:
        """VAE encoding, ``memory.vae_chunk`` frames per call (1, the reference's, by
        default), ``(1, C, F, h, w)``."""
        chunk = self.memory.vae_chunk
        pixels = [image_to_tensor(center_crop_wide(f, f.size)) for f in frames]
        latents = []
        with self._on_device(self.vae):
            for i in range(0, len(pixels), chunk):
                batch = (torch.cat(pixels[i : i + chunk]) * 2 - 1).to(self.device, self.dtype)
                latents.append(encode_latents(self.vae, batch, generator))
        return torch.cat(latents).permute(1, 0, 2, 3)[None]

    @torch.inference_mode()
    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE decoding, ``memory.vae_chunk`` frames per call (1 = the reference's
        ``decode_chunk_size=1``)."""
        with self._on_device(self.vae) as vae:
            return decode_latent_video(vae, latents, self.memory.vae_chunk)

    # -- conditioning -----------------------------------------------------------------
    @torch.inference_mode()
    def encode_text(self, prompt: str) -> torch.Tensor:
        if prompt not in self._text_cache:
            ids = tokenize_prompt(self.tokenizer, prompt, self.device)
            with self._on_device(self.text_encoder) as encoder:
                out = encoder(ids, output_hidden_states=True)
                text_model = getattr(encoder, "text_model", encoder)  # transformers < 5 nests it
                hidden = text_model.final_layer_norm(out.hidden_states[-2])
            self._text_cache[prompt] = hidden.to(self.device, self.dtype)
        return self._text_cache[prompt]

    @torch.inference_mode()
    def encode_image(self, image: Image.Image, clip: ClipSpec) -> torch.Tensor:
        crop = self.feature_extractor.crop_size
        square = center_crop_wide(image, (clip.width, clip.width))
        small = square.resize((crop["width"], crop["height"]), resample=Image.BILINEAR)
        pixels = image_to_tensor(small)
        mean = torch.tensor(self.feature_extractor.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.feature_extractor.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        pixels = ((pixels - mean) / std).to(self.device, self.dtype)
        with self._on_device(self.image_encoder) as encoder:
            return encoder(pixels).image_embeds[:, None]

    @torch.inference_mode()
    def image_latents(self, image: Image.Image, clip: ClipSpec) -> torch.Tensor:
        latent = self._encode_frame(center_crop_wide(image, clip.size), None)[:, :, None]
        masks = [torch.full_like(latent, (i + 1) / (clip.n_frames - 1)) for i in range(clip.n_frames - 1)]
        return torch.cat([latent, *masks], dim=2)

    def condition(self, image: Image.Image, prompt: str, clip: ClipSpec, *, negative: bool = False) -> Conditioning:
        embeds = self.encode_image(image, clip)
        return {
            "text": self.encode_text(prompt),
            "image_embeds": torch.zeros_like(embeds) if negative else embeds,
            "image_latents": self.image_latents(image, clip),
            "fps": torch.tensor([clip.fps], device=self.device),
        }

    def predict(self, sample: torch.Tensor, timestep: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return self.unet(
            sample,
            timestep,
            fps=cond["fps"],
            image_latents=cond["image_latents"],
            image_embeddings=cond["image_embeds"],
            encoder_hidden_states=cond["text"],
            return_dict=False,
        )[0]

    def initial_noise(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Noise for ``random_ratio``, drawn as the reference draws it: ``randn_like`` of its
        inverted latent, which is stored frame-major (strides of ``(B, F, C, h, w)``).
        Filling that strided layout makes the same seed give the same numbers."""
        b, c, f, h, w = shape
        return torch.empty((b, f, c, h, w)).permute(0, 2, 1, 3, 4).normal_(generator=generator).contiguous()

    # -- injection --------------------------------------------------------------------
    def injection_sites(self, options: EditOptions) -> list[InjectionSite]:
        return pnp_sites(options, CONV_SITES, SPATIAL_SITES, TEMPORAL_SITES)

    # -- tiny model for tests and `anyv2v selftest` -----------------------------------
    @classmethod
    def build_tiny(cls, path: str | Path, seed: int = 0) -> Path:
        from .tiny import build_tiny_model

        return build_tiny_model(path, seed=seed)
