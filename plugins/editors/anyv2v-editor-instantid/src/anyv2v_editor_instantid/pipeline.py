"""InstantID generation on diffusers' model classes: SDXL (UNet2DConditionModel, two CLIP
text encoders, AutoencoderKL, the base model's own scheduler) + IdentityNet
(ControlNetModel) + the face adapter of :mod:`.adapter`.

One denoising step, as the official ``StableDiffusionXLInstantIDPipeline`` does it
(guess mode off, classifier-free guidance on batch ``[uncond, cond]``):

* face tokens ``F = Resampler([0, e])`` for the ArcFace embedding ``e`` (un-normalised);
  the unconditional tokens are the Resampler of a zero embedding, not zeros;
* IdentityNet: ``ControlNet(x, t, context=F, cond=keypoint image, scale=s_id)``, i.e. it
  sees ONLY the 16 face tokens, with SDXL's pooled-text/time-id added embedding;
* UNet: context ``[77 text tokens, 16 face tokens]``; every cross-attention adds
  ``s_ip * attn(face tokens)`` to the text attention; ControlNet residuals added;
* ``eps = u + g (c - u)``, then the scheduler's step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from anyv2v_core.hub import resolve_model

from .adapter import install_adapter, load_adapter, resampler_from_state_dict, set_adapter_scale

DEFAULT_SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
DEFAULT_INSTANTID = "InstantX/InstantID"

SDXL_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
SDXL_REQUIRED = [
    *[f"{c}/config.json" for c in SDXL_COMPONENTS],
    *[f"{c}/*.safetensors" for c in SDXL_COMPONENTS],
    "tokenizer/*", "tokenizer_2/*", "scheduler/scheduler_config.json",
]
INSTANTID_REQUIRED = ["ControlNetModel/config.json", "ControlNetModel/*.safetensors", "ip-adapter.*"]
INSTANTID_ALLOW = ["ControlNetModel/config.json", "ControlNetModel/diffusion_pytorch_model.safetensors",
                   "ip-adapter.bin", "ip-adapter.safetensors"]


def _sdxl_allow(fp16: bool) -> list[str]:
    suffix = ".fp16" if fp16 else ""
    weights = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model",
               "text_encoder_2": "model"}
    return [p for p in SDXL_REQUIRED if "*.safetensors" not in p] + [
        f"{c}/{stem}{suffix}.safetensors" for c, stem in weights.items()] + ["model_index.json"]


def adapter_file(root: Path) -> Path:
    """``ip-adapter.safetensors`` when present (converted once), else the official .bin."""
    safe = root / "ip-adapter.safetensors"
    return safe if safe.is_file() else root / "ip-adapter.bin"


@dataclass
class GenerationSettings:
    """Sampling settings; the defaults are those of the InstantID authors' ``infer.py``."""

    steps: int = 30
    guidance_scale: float = 5.0
    identitynet_scale: float = 0.8
    adapter_scale: float = 0.8
    seed: int = 8888


class InstantIDGenerator:
    """Loaded SDXL + IdentityNet + face adapter; :meth:`generate` makes one image."""

    def __init__(self, sdxl: str = DEFAULT_SDXL, instantid: str = DEFAULT_INSTANTID, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        import diffusers
        from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

        self.device, self.dtype = torch.device(device), dtype
        fp16 = dtype == torch.float16
        base = resolve_model(sdxl, SDXL_REQUIRED, allow_patterns=_sdxl_allow(fp16), flag="--sdxl-model")
        ident = resolve_model(instantid, INSTANTID_REQUIRED, allow_patterns=INSTANTID_ALLOW,
                              flag="--instantid-model")
        variant = "fp16" if fp16 and any((base / "unet").glob("*.fp16.safetensors")) else None
        common: dict[str, Any] = dict(use_safetensors=True, variant=variant, torch_dtype=dtype)
        self.unet = UNet2DConditionModel.from_pretrained(base / "unet", **common)
        self.vae = AutoencoderKL.from_pretrained(base / "vae", **{**common, "torch_dtype": torch.float32})
        self.text_encoder = CLIPTextModel.from_pretrained(base / "text_encoder", **common)
        self.text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(base / "text_encoder_2", **common)
        self.tokenizer = CLIPTokenizer.from_pretrained(base / "tokenizer")
        self.tokenizer_2 = CLIPTokenizer.from_pretrained(base / "tokenizer_2")
        config = diffusers.EulerDiscreteScheduler.load_config(base / "scheduler")
        self._scheduler_cls = getattr(diffusers, config.get("_class_name", "EulerDiscreteScheduler"))
        self._scheduler_config = config
        self.controlnet = ControlNetModel.from_pretrained(ident / "ControlNetModel", use_safetensors=True, torch_dtype=dtype)

        self.adapter_path = adapter_file(ident)
        image_proj, ip_weights, adapter_config = load_adapter(self.adapter_path)
        self.resampler = resampler_from_state_dict(image_proj, adapter_config)
        self.num_tokens = self.resampler.latents.shape[1]
        install_adapter(self.unet, ip_weights, self.num_tokens, scale=GenerationSettings.adapter_scale)

        # The SDXL VAE overflows in float16 (config.force_upcast): it always runs in float32
        # (one decode per image, so this costs little).
        self.vae_dtype = torch.float32
        self.resampler.to(dtype)
        for module in (self.unet, self.text_encoder, self.text_encoder_2, self.controlnet, self.resampler):
            module.to(self.device).eval().requires_grad_(False)
        self.vae.to(self.device).eval().requires_grad_(False)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.sdxl_path, self.instantid_path = base, ident

    # -- conditioning -----------------------------------------------------------------
    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """SDXL text conditioning: penultimate hidden states of both CLIP encoders,
        concatenated (``(1, 77, 2048)``), and the pooled projection of the second."""
        states, pooled = [], None
        for tokenizer, encoder in ((self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2)):
            ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids.to(self.device)
            out = encoder(ids, output_hidden_states=True)
            states.append(out.hidden_states[-2])
            if encoder is self.text_encoder_2:
                pooled = out.text_embeds
        return torch.cat(states, dim=-1).to(self.dtype), pooled.to(self.dtype)

    @torch.no_grad()
    def face_tokens(self, embedding: Any, guidance: bool) -> torch.Tensor:
        """``Resampler([0, e])`` (``[e]`` without guidance): ``(B, num_tokens, D)``."""
        e = torch.as_tensor(embedding, dtype=torch.float32).reshape(1, -1, self.resampler.embedding_dim)
        e = torch.cat([torch.zeros_like(e), e]) if guidance else e
        return self.resampler(e.to(self.device, self.dtype))

    def control_tensor(self, image: Image.Image) -> torch.Tensor:
        from diffusers.image_processor import VaeImageProcessor

        processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True, do_normalize=False)
        return processor.preprocess(image, height=image.height, width=image.width).to(self.device, self.dtype)

    # -- sampling ---------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompt: str, negative_prompt: str, embedding: Any, control_image: Image.Image,
                 settings: GenerationSettings = GenerationSettings()) -> Image.Image:
        """An image of ``control_image``'s size (a multiple of 8) with the identity of
        ``embedding`` posed by the keypoints drawn in ``control_image``."""
        from diffusers.image_processor import VaeImageProcessor
        from diffusers.utils.torch_utils import randn_tensor

        width, height = control_image.size
        f = self.vae_scale_factor
        if width % f or height % f:
            raise ValueError(f"image size {width}x{height} must be a multiple of {f}")
        guidance = settings.guidance_scale > 1.0
        set_adapter_scale(self.unet, settings.adapter_scale)

        text, pooled = self.encode_prompt(prompt)
        faces = self.face_tokens(embedding, guidance)
        if guidance:
            neg_text, neg_pooled = self.encode_prompt(negative_prompt)
            text, pooled = torch.cat([neg_text, text]), torch.cat([neg_pooled, pooled])
        batch = text.shape[0]
        context = torch.cat([text, faces], dim=1)
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=self.dtype, device=self.device)
        added = {"text_embeds": pooled, "time_ids": time_ids.repeat(batch, 1)}
        control = self.control_tensor(control_image).repeat(batch, 1, 1, 1)

        scheduler = self._scheduler_cls.from_config(self._scheduler_config)
        scheduler.set_timesteps(settings.steps, device=self.device)
        generator = torch.Generator("cpu").manual_seed(settings.seed)
        shape = (1, self.unet.config.in_channels, height // f, width // f)
        latents = randn_tensor(shape, generator=generator, device=self.device, dtype=self.dtype)
        latents = latents * scheduler.init_noise_sigma
        step_kwargs = {"generator": generator} if "generator" in _parameters(scheduler.step) else {}

        for t in scheduler.timesteps:
            model_in = scheduler.scale_model_input(torch.cat([latents] * batch), t)
            down, mid = self.controlnet(model_in, t, encoder_hidden_states=faces, controlnet_cond=control,
                                        conditioning_scale=settings.identitynet_scale, guess_mode=False,
                                        added_cond_kwargs=added, return_dict=False)
            eps = self.unet(model_in, t, encoder_hidden_states=context, added_cond_kwargs=added,
                            down_block_additional_residuals=down, mid_block_additional_residual=mid,
                            return_dict=False)[0]
            if guidance:
                uncond, cond = eps.chunk(2)
                eps = uncond + settings.guidance_scale * (cond - uncond)
            latents = scheduler.step(eps, t, latents, **step_kwargs, return_dict=False)[0]

        image = self.vae.decode(latents.to(self.vae_dtype) / self.vae.config.scaling_factor, return_dict=False)[0]
        return VaeImageProcessor(vae_scale_factor=f).postprocess(image.float(), output_type="pil")[0]


def _parameters(fn: Any) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)
