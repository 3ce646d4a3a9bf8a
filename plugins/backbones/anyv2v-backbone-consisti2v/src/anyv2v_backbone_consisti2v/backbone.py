"""ConsistI2V as an anyv2v backbone.

Latent layout: ``(B, C, F, h, w)`` where frame 0 is the clean VAE latent of the clip's first
frame and frames ``1..F-1`` are the diffused frames, as the AnyV2V reference stores its
inverted latents. The UNet only denoises frames ``1..``; it sees the conditioning frame's
latent (``condition()["first_frame_latents"]``) in front of them. :meth:`predict` returns
that conditioning latent as frame 0 of its output, and the schedulers of this backbone
(:class:`FirstFrameScheduler`) step frames ``1..`` with DDIM and set frame 0 to the output's
frame 0. So frame 0 always holds the clean latent of the branch's conditioning frame: the
source first frame during inversion, the edited frame in the result — exactly what the
reference concatenates before decoding. CFG leaves it unchanged (both CFG branches carry
the edited frame's latent).

Conditioning per branch: SD-2 CLIP text embedding (last hidden state, no attention mask),
the first frame's VAE latent (posterior mean), and the frame stride (default 3).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from PIL import Image

from anyv2v_core.diffusers_backbone import DiffusersBackbone
from anyv2v_core.hub import required_files
from anyv2v_core.settings import REFERENCE_NEGATIVE_PROMPT
from anyv2v_core.injection import unet_patterns
from anyv2v_core.errors import InputError, ModelNotFoundError
from anyv2v_core.modeling import image_to_tensor
from anyv2v_core.protocols import BackboneDefaults, ClipSpec, Conditioning, EditOptions, InjectionPattern
from anyv2v_core.sampling import SamplingPlan

NEGATIVE_PROMPT = REFERENCE_NEGATIVE_PROMPT
#: Sampling stride of the source frames the model is conditioned on (reference: 3).
DEFAULT_FRAME_STRIDE = 3

#: Injection patterns (the reference's ``pnp_utils.py``): the conv2 output of up_blocks.1.resnets.1,
#: spatial and temporal self-attention Q/K in up blocks 1 (attentions 1, 2), 2 and 3 (0, 1, 2).
INJECTION_PATTERNS = unet_patterns(spatial="up_blocks.{b}.attentions.{a}.transformer_blocks.0.attn1",
                                   temporal="up_blocks.{b}.tempo_attns.{a}.transformer_blocks.0.attn1")

REQUIRED = required_files("unet", "vae", "text_encoder", other=("tokenizer/*", "scheduler/scheduler_config.json"))


class _StepOutput:
    def __init__(self, prev_sample: torch.Tensor):
        self.prev_sample = prev_sample


class FirstFrameScheduler:
    """A diffusers DDIM (or DDIM inverse) scheduler that steps frames ``1..`` and carries
    frame 0 over from the model output (the clean first-frame latent, see module doc).
    Everything else is delegated to the wrapped scheduler."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, **kwargs) -> _StepOutput:
        rest = self.inner.step(model_output[:, :, 1:], timestep, sample[:, :, 1:], **kwargs).prev_sample
        return _StepOutput(torch.cat([model_output[:, :, :1].to(rest.dtype), rest], dim=2))


class FirstFrameDDIM(FirstFrameScheduler):
    def step(self, model_output, timestep, sample, eta: float = 0.0, generator: torch.Generator | None = None):
        return self._step(model_output, timestep, sample, eta=eta, generator=generator)


class FirstFrameDDIMInverse(FirstFrameScheduler):
    def step(self, model_output, timestep, sample):
        return self._step(model_output, timestep, sample)


class ConsistI2VBackbone(DiffusersBackbone):
    name: ClassVar[str] = "consisti2v"
    default_model: ClassVar[str] = "TIGER-Lab/ConsistI2V"
    defaults: ClassVar[BackboneDefaults] = BackboneDefaults(
        n_frames=16,
        width=256,
        height=256,
        fps=8,
        inversion_steps=500,
        steps=50,
        cfg=35.0,
        t_idx=4,
        tau_conv=0.2,
        tau_sa=0.2,
        tau_ta=0.5,
        negative_prompt=NEGATIVE_PROMPT,
        inversion_prompt="",
    )

    injection_patterns: ClassVar[tuple[InjectionPattern, ...]] = INJECTION_PATTERNS

    def __init__(
        self,
        model: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        frame_stride: int = DEFAULT_FRAME_STRIDE,
    ):
        if int(frame_stride) < 1:
            raise InputError(f"--frame-stride must be a positive integer, got {frame_stride}")
        self.frame_stride = int(frame_stride)
        # the frame stride changes the inversion: it is part of the fingerprint
        super().__init__(model, device, dtype, frame_stride=self.frame_stride)

    def load(self) -> list[Path]:
        from diffusers import AutoencoderKL, DDIMScheduler
        from transformers import CLIPTextModel, CLIPTokenizer

        from .unet import ConsistI2VUNet

        try:
            root = self.resolve(REQUIRED, list(REQUIRED) + ["model_index.json"])
        except ModelNotFoundError as exc:
            if "lacks" in str(exc) and ".safetensors" in str(exc):
                raise ModelNotFoundError(f"{exc} (a component shipped as *.bin pickles: download the repository "
                                         f"to a folder and convert it once with `anyv2v consisti2v-convert FOLDER`)"
                                         ) from exc
            raise
        self.unet = self.place(ConsistI2VUNet.from_pretrained(root / "unet", use_safetensors=True))
        self.vae = self.place(AutoencoderKL.from_pretrained(root / "vae", use_safetensors=True))
        self.text_encoder = self.place(CLIPTextModel.from_pretrained(root / "text_encoder", use_safetensors=True))
        self.tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
        self._scheduler_config = DDIMScheduler.load_config(root / "scheduler")
        self.denoiser = self.unet
        return [root]

    # -- schedulers -------------------------------------------------------------------
    def make_scheduler(self, sampler: str = "ddim") -> FirstFrameDDIM:
        from diffusers import DDIMScheduler

        if sampler != "ddim":
            raise InputError(f"consisti2v samples with ddim only, not {sampler!r}")
        return FirstFrameDDIM(DDIMScheduler.from_config(self._scheduler_config))

    def make_inverse_scheduler(self) -> FirstFrameDDIMInverse:
        from diffusers import DDIMInverseScheduler

        return FirstFrameDDIMInverse(DDIMInverseScheduler.from_config(self._scheduler_config))

    def compat_plan(self, plan: SamplingPlan, options: EditOptions, inversion_steps: int) -> SamplingPlan:
        """``--compat official``: condition the source branch on the EDITED first frame, as
        the official ``sample_with_pnp`` does (its defect; see the README)."""
        return replace(plan, source_frame="edited")

    # -- VAE --------------------------------------------------------------------------
    def encode_video(self, frames: Sequence[Image.Image], generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-frame VAE latents ``(1, C, F, h, w)``; frame 0 is the first frame's latent.

        With ``generator`` the diffused frames are sampled from the posterior; frame 0 is
        always the posterior mean (it must equal the conditioning latent)."""
        pixels = [image_to_tensor(f) * 2 - 1 for f in frames]
        latents = torch.cat([self.vae_encode(pixels[:1]), self.vae_encode(pixels[1:], generator)])
        return latents.permute(1, 0, 2, 3)[None]

    # -- conditioning -----------------------------------------------------------------
    @torch.inference_mode()
    def first_frame_latent(self, image: Image.Image, clip: ClipSpec) -> torch.Tensor:
        """``(1, C, 1, h, w)``: VAE latent (posterior mean) of ``image`` at the clip size."""
        if image.size != clip.size:
            image = image.resize(clip.size, resample=Image.BILINEAR)
        return self.encode_frame(image)[:, :, None]

    def condition(self, image: Image.Image, prompt: str, clip: ClipSpec, *, negative: bool = False) -> Conditioning:
        return {
            "text": self.encode_text(prompt),
            "first_frame_latents": self.first_frame_latent(image, clip),
            "frame_stride": torch.tensor([self.frame_stride], device=self.device),
        }

    def predict(self, sample: torch.Tensor, timestep: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Noise prediction for frames ``1..``; frame 0 of the output is the branch's clean
        first-frame latent (see the module doc). Frame 0 of ``sample`` is not used."""
        first = cond["first_frame_latents"]
        eps = self.unet(
            sample[:, :, 1:],
            timestep,
            encoder_hidden_states=cond["text"],
            first_frame_latents=first,
            frame_stride=cond["frame_stride"],
        )
        return torch.cat([first.to(eps.dtype), eps], dim=2)
