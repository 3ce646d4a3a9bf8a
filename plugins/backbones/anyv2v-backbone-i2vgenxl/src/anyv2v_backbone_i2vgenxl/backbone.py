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

from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image

from anyv2v_core.diffusers_backbone import DiffusersBackbone
from anyv2v_core.hub import required_files
from anyv2v_core.settings import REFERENCE_NEGATIVE_PROMPT
from anyv2v_core.injection import unet_patterns
from anyv2v_core.errors import InputError
from anyv2v_core.modeling import image_to_tensor
from anyv2v_core.protocols import BackboneDefaults, ClipSpec, Conditioning, InjectionPattern

NEGATIVE_PROMPT = REFERENCE_NEGATIVE_PROMPT

#: Injection patterns by diffusers module name (SPEC §2; l1 = 4, l2 = l3 = 4..11): the conv2
#: output of up_blocks.1.resnets.1, spatial and temporal self-attention Q/K.
INJECTION_PATTERNS = unet_patterns(spatial="up_blocks.{b}.attentions.{a}.transformer_blocks.0.attn1",
                                   temporal="up_blocks.{b}.temp_attentions.{a}.transformer_blocks.0.attn1")

REQUIRED = required_files("unet", "vae", "text_encoder", "image_encoder",
                          other=("tokenizer/*", "feature_extractor/preprocessor_config.json",
                                 "scheduler/scheduler_config.json"))


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


class I2VGenXLBackbone(DiffusersBackbone):
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

    injection_patterns: ClassVar[tuple[InjectionPattern, ...]] = INJECTION_PATTERNS
    components: ClassVar[tuple[str, ...]] = ("text_encoder", "image_encoder", "vae")

    def load(self) -> list[Path]:
        from diffusers import AutoencoderKL, DDIMScheduler, I2VGenXLUNet
        from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

        dtype = self.dtype
        want_fp16 = dtype == torch.float16
        allow = [p for p in REQUIRED if not p.endswith(".safetensors")] + [
            f"{c}/*{'.fp16' if want_fp16 else ''}.safetensors" for c in ("unet", "vae", "text_encoder", "image_encoder")
        ] + ["model_index.json"]
        root = self.resolve(REQUIRED, allow)
        common = dict(use_safetensors=True, variant=_variant(root, dtype))
        # the UNet and VAE are loaded in dtype (diffusers warns on a later cast), the encoders cast
        self.unet = self.place(I2VGenXLUNet.from_pretrained(root / "unet", torch_dtype=dtype, **common), cast=False)
        self.vae = self.place(AutoencoderKL.from_pretrained(root / "vae", torch_dtype=dtype, **common), cast=False)
        self.text_encoder = self.place(CLIPTextModel.from_pretrained(root / "text_encoder", **common))
        self.image_encoder = self.place(CLIPVisionModelWithProjection.from_pretrained(root / "image_encoder", **common))
        self.tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
        self.feature_extractor = CLIPImageProcessor.from_pretrained(root / "feature_extractor")
        self._scheduler_config = DDIMScheduler.load_config(root / "scheduler")
        self.denoiser = self.unet
        return [root]

    # -- schedulers -------------------------------------------------------------------
    def make_scheduler(self, sampler: str = "ddim"):
        from diffusers import DDIMScheduler

        if sampler != "ddim":
            raise InputError(f"i2vgenxl samples with ddim only, not {sampler!r}")
        return DDIMScheduler.from_config(self._scheduler_config)

    def make_inverse_scheduler(self):
        from diffusers import DDIMInverseScheduler

        return DDIMInverseScheduler.from_config(self._scheduler_config)

    # -- conditioning -----------------------------------------------------------------
    def text_hidden_states(self, encoder, ids: torch.Tensor) -> torch.Tensor:
        """The penultimate layer through the final layer norm (the pipeline's ``clip_skip=1``)."""
        out = encoder(ids, output_hidden_states=True)
        text_model = getattr(encoder, "text_model", encoder)  # transformers < 5 nests it
        return text_model.final_layer_norm(out.hidden_states[-2])

    @torch.inference_mode()
    def encode_image(self, image: Image.Image, clip: ClipSpec) -> torch.Tensor:
        crop = self.feature_extractor.crop_size
        square = center_crop_wide(image, (clip.width, clip.width))
        small = square.resize((crop["width"], crop["height"]), resample=Image.BILINEAR)
        pixels = image_to_tensor(small)
        mean = torch.tensor(self.feature_extractor.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.feature_extractor.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        pixels = ((pixels - mean) / std).to(self.device, self.dtype)
        with self.on_device(self.image_encoder) as encoder:
            return encoder(pixels).image_embeds[:, None]

    @torch.inference_mode()
    def image_latents(self, image: Image.Image, clip: ClipSpec) -> torch.Tensor:
        latent = self.encode_frame(center_crop_wide(image, clip.size))[:, :, None]
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
