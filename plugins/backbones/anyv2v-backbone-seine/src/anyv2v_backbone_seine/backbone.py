"""SEINE as an anyv2v backbone.

Weights: the SEINE UNet (``seine.safetensors``, converted once from the official
``seine.pt`` EMA weights with ``anyv2v seine-convert``) on top of Stable Diffusion 1.4's
VAE, CLIP text encoder, tokenizer and ``unet/config.json`` (which SEINE inflates).

Conditioning of one branch, as the official AnyV2V ``seine/`` code computes it:

* text: CLIP ``last_hidden_state`` of the prompt padded to the tokenizer's max length;
* masked video: the conditioning frame followed by ``n_frames - 1`` all-zero frames (in
  the [-1, 1] pixel range, i.e. mid-grey), each VAE-encoded (posterior mean here)
  times the scaling factor;
* mask: one channel, 0 on frame 0 (kept) and 1 on the frames to generate.

The denoiser's input is ``cat([latent, mask, masked_video], channel)`` (9 channels);
it predicts noise (epsilon). Schedulers: linear betas 0.0001-0.02 (as the reference
overrides SD-1.4's scaled-linear), 1000 steps, ``steps_offset`` 1, ``set_alpha_to_one``
False, no clipping; DDIM by default, DDPM on request.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image

from anyv2v_core.diffusers_backbone import DiffusersBackbone
from anyv2v_core.injection import unet_patterns
from anyv2v_core.errors import InputError, ModelNotFoundError
from anyv2v_core.hub import offline, resolve_model
from anyv2v_core.protocols import BackboneDefaults, ClipSpec, Conditioning, EditOptions, InjectionPattern
from anyv2v_core.sampling import SamplingPlan

from .convert import CHECKPOINT, CONVERTED, SEINE_REPO

SD14_REPO = "CompVis/stable-diffusion-v1-4"
#: What the SD-1.4 part of a model folder must hold.
SD_REQUIRED = (
    "unet/config.json",
    "vae/config.json",
    "vae/*.safetensors",
    "text_encoder/config.json",
    "text_encoder/*.safetensors",
    "tokenizer/*",
)
SD_ALLOW = (
    "unet/config.json",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/*",
)

SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.0001,
    beta_end=0.02,
    beta_schedule="linear",
    steps_offset=1,
    set_alpha_to_one=False,
    clip_sample=False,
    timestep_spacing="leading",
    prediction_type="epsilon",
)
SAMPLERS = ("ddim", "ddpm")
#: The official inversion keeps its latents on the grid of this many steps (``n_save_steps``
#: of its ``ddim_inversion.yaml``); its edit starts from the most-inverted one kept.
OFFICIAL_SAVE_STEPS = 250

#: PnP patterns by module name (SPEC §2's positions: l1 = 4, l2 = l3 = 4..11): conv, spatial
#: and temporal self-attention Q/K, and the cross-attention Q/K (text keys of the source
#: prompt), which the core only adds when ``tau_ca > 0`` (the reference's default is 0).
_BLOCK = "up_blocks.{b}.attentions.{a}.transformer_blocks.0"
INJECTION_PATTERNS = unet_patterns(spatial=f"{_BLOCK}.attn1", temporal=f"{_BLOCK}.attn_temp", cross=f"{_BLOCK}.attn2")

#: Keys of SD's ``unet/config.json`` that shape the SEINE UNet (the rest is ignored).
UNET_KEYS = ("out_channels", "down_block_types", "up_block_types", "block_out_channels", "layers_per_block",
             "attention_head_dim", "cross_attention_dim", "norm_num_groups", "norm_eps", "flip_sin_to_cos",
             "freq_shift", "downsample_padding", "rotary_dim", "rel_pos_num_buckets", "rel_pos_max_distance")


def unet_config(sd_unet_config: dict) -> dict:
    """SEINE UNet kwargs from SD-1.x's ``unet/config.json`` (``conv_in`` widened to 9)."""
    cfg = {k: sd_unet_config[k] for k in UNET_KEYS if k in sd_unet_config}
    cfg["in_channels"] = 9
    return cfg


#: The Stable Diffusion folder SEINE's own README puts beside ``pretrained/SEINE``.
SD_SIBLING = "stable-diffusion-v1-4"
_SD_LAYOUT = "Stable Diffusion 1.4 in the diffusers layout (unet/config.json, vae/, text_encoder/, tokenizer/)"


def _has_sd(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return all(any(fnmatch.fnmatchcase(f, pattern) for f in files) for pattern in SD_REQUIRED)


def _local_sd(seine_dir: Path, sd_model: str | None) -> Path | None:
    """The local SD-1.4 folder: ``sd_model`` if it is a complete one, else the SEINE folder
    itself or its sibling ``stable-diffusion-v1-4`` when complete (``None``: none found)."""
    if sd_model is not None:
        path = Path(sd_model).expanduser()
        return path if _has_sd(path) else None
    for folder in (seine_dir, seine_dir.parent / SD_SIBLING):
        if _has_sd(folder):
            return folder
    return None


def _sd_todo(seine_dir: Path, sd_model: str | None) -> str:
    """What the user must do when no local SD-1.4 is found (for the one-line message)."""
    if sd_model is not None:
        return f"--sd-model {sd_model} must hold {_SD_LAYOUT}"
    return (f"put {_SD_LAYOUT} in {seine_dir.parent / SD_SIBLING} (beside {seine_dir.name}, as SEINE's README does) "
            f"or pass --sd-model FOLDER")


def _resolve_seine(model: str, sd_model: str | None = None) -> Path:
    """The folder holding ``seine.safetensors`` (a local folder or a hub snapshot). A folder
    that cannot be used is refused with everything the user has to do, in one message."""
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / CONVERTED).is_file():
            return path
        sd = _local_sd(path, sd_model)
        sd_note = f" (Stable Diffusion 1.4 found in {sd})" if sd else f"; and {_sd_todo(path, sd_model)}"
        if (path / CHECKPOINT).is_file():
            raise ModelNotFoundError(
                f"{path} holds {CHECKPOINT} (a pickle) but no {CONVERTED}; convert it once: "
                f"anyv2v seine-convert {path / CHECKPOINT} {path}{sd_note}"
            )
        if _has_sd(path):
            raise ModelNotFoundError(
                f"{path} is a Stable Diffusion folder without SEINE's weights: pass the folder holding "
                f"{CHECKPOINT} as --model (e.g. {path.parent / 'SEINE'}; this folder is found beside it, or name it "
                f"with --sd-model {path})"
            )
        raise ModelNotFoundError(
            f"model folder {path} lacks {CONVERTED}: put the official {CHECKPOINT} there and convert it once with "
            f"`anyv2v seine-convert {path / CHECKPOINT} {path}`{sd_note}"
        )
    try:
        return resolve_model(model, [CONVERTED], allow_patterns=[CONVERTED])
    except ModelNotFoundError as exc:
        if offline() or path.exists():
            raise
        raise ModelNotFoundError(
            f"{exc}; {SEINE_REPO} ships {CHECKPOINT} (a pickle): convert it once with "
            f"`anyv2v seine-convert {SEINE_REPO} ./seine` and pass --model ./seine"
        ) from exc


def _resolve_sd(seine_root: Path, sd_model: str | None = None, local_model: bool = True) -> Path:
    """SD-1.4's VAE/text encoder/tokenizer/UNet config: ``sd_model`` (a folder or hub id)
    when given, else the model folder itself or (``local_model``: the user's own folder) its
    sibling ``stable-diffusion-v1-4`` when complete, else the ``CompVis/stable-diffusion-v1-4``
    hub snapshot (offline-aware)."""
    if sd_model is not None:
        try:
            return resolve_model(sd_model, SD_REQUIRED, allow_patterns=SD_ALLOW, flag="--sd-model")
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(f"--sd-model: {exc} (it must be {_SD_LAYOUT})") from exc
    local = _local_sd(seine_root, None) if local_model else (seine_root if _has_sd(seine_root) else None)
    if local is not None:
        return local
    try:
        return resolve_model(SD14_REPO, SD_REQUIRED, allow_patterns=SD_ALLOW, flag="--sd-model")
    except ModelNotFoundError as exc:
        if not local_model:
            raise
        raise ModelNotFoundError(f"{exc} (or {_sd_todo(seine_root, None)})") from exc


def load_unet(seine_file: Path, sd_root: Path):
    """Build the SEINE UNet from SD's ``unet/config.json`` and load ``seine.safetensors``
    into it (strictly: every official parameter, nothing else)."""
    from safetensors.torch import load_file

    from .unet import SEINEUNet3DModel

    config_file = sd_root / "unet" / "config.json"
    try:
        with torch.device("meta"):
            unet = SEINEUNet3DModel(**unet_config(json.loads(config_file.read_text())))
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelNotFoundError(f"{config_file} does not describe an SD-1.x UNet SEINE can inflate: {exc}") from exc
    state = load_file(str(seine_file))
    want = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    shapes = sorted(k for k in set(want) & set(state) if tuple(state[k].shape) != want[k])
    if missing or extra or shapes:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
                 f"{len(shapes)} of another shape (e.g. {shapes[0]})" if shapes else ""]
        raise ModelNotFoundError(
            f"{seine_file} does not fit the SEINE UNet built from {config_file}: "
            + ", ".join(p for p in parts if p)
        )
    unet.load_state_dict(state, strict=True, assign=True)
    return unet


class SEINEBackbone(DiffusersBackbone):
    name: ClassVar[str] = "seine"
    default_model: ClassVar[str] = SEINE_REPO
    defaults: ClassVar[BackboneDefaults] = BackboneDefaults(
        n_frames=16,
        width=512,
        height=512,
        fps=8,
        inversion_steps=500,
        steps=50,
        cfg=4.0,
        t_idx=0,
        tau_conv=0.2,
        tau_sa=0.2,
        tau_ta=0.5,
        negative_prompt="",
        inversion_prompt="",
        tau_ca=0.0,
    )

    injection_patterns: ClassVar[tuple[InjectionPattern, ...]] = INJECTION_PATTERNS

    def __init__(self, model: str | None = None, device: "str | torch.device" = "cpu",
                 dtype: "torch.dtype | None" = None, sd_model: str | None = None) -> None:
        #: The Stable Diffusion 1.4 folder or hub id (``--sd-model``); ``None``: found (see load).
        #: Not an option of the fingerprint: the folder it resolves to is one of its roots.
        self.sd_model = None if sd_model in (None, "") else str(sd_model)
        super().__init__(model, device, dtype)

    def load(self) -> list[Path]:
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel, CLIPTokenizer

        seine_root = _resolve_seine(self.model_id, self.sd_model)
        sd_root = _resolve_sd(seine_root, self.sd_model, local_model=Path(self.model_id).expanduser().is_dir())
        self.unet = self.place(load_unet(seine_root / CONVERTED, sd_root))
        self.vae = self.place(AutoencoderKL.from_pretrained(sd_root / "vae", use_safetensors=True))
        self.text_encoder = self.place(CLIPTextModel.from_pretrained(sd_root / "text_encoder", use_safetensors=True))
        self.tokenizer = CLIPTokenizer.from_pretrained(sd_root / "tokenizer")
        self.denoiser = self.unet
        return [seine_root, sd_root]

    # -- schedulers -------------------------------------------------------------------
    def make_scheduler(self, sampler: str = "ddim", compat: str = "default"):
        """DDIM or DDPM; with ``compat="official"`` the DDPM grid ignores ``steps_offset``
        (980, ..., 0 for 50 steps) as the official code's diffusers 0.15 does."""
        from diffusers import DDIMScheduler, DDPMScheduler

        if sampler == "ddim":
            return DDIMScheduler(**SCHEDULER)
        if sampler == "ddpm":
            cfg = {k: v for k, v in SCHEDULER.items() if k != "set_alpha_to_one"}
            if compat == "official":
                cfg["steps_offset"] = 0
            return DDPMScheduler(**cfg, variance_type="fixed_small")
        raise InputError(f"seine samples with {' or '.join(SAMPLERS)}, not {sampler!r}")

    def compat_plan(self, plan: SamplingPlan, options: EditOptions, inversion_steps: int) -> SamplingPlan:
        """``--compat official``: start from the most-inverted latent the official inversion
        keeps (its grid: the inversion's timesteps on the ``OFFICIAL_SAVE_STEPS`` grid; z_997
        for 500 steps), and with DDPM feed the source branch the latent inverted to ``t + 1``."""
        inverse = self.make_inverse_scheduler()
        inverse.set_timesteps(inversion_steps)
        save = self.make_scheduler("ddim")
        save.set_timesteps(OFFICIAL_SAVE_STEPS)
        kept = {int(t) for t in inverse.timesteps} & {int(t) for t in save.timesteps}
        if not kept:
            raise InputError(f"--compat official: no timestep of the {inversion_steps}-step inversion is on the "
                             f"official {OFFICIAL_SAVE_STEPS}-step grid it keeps latents on")
        source = {t: t + 1 for t in plan.visit} if options.sampler == "ddpm" else dict(plan.source)
        return replace(plan, start=max(kept), source=source)

    def make_inverse_scheduler(self):
        from diffusers import DDIMInverseScheduler

        return DDIMInverseScheduler(**SCHEDULER)

    # -- conditioning -----------------------------------------------------------------
    @torch.inference_mode()
    def masked_video(self, image: Image.Image, clip: ClipSpec) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mask, masked_video_latents)`` for a clip whose first frame is ``image``."""
        if image.size != clip.size:
            image = image.resize(clip.size, resample=Image.LANCZOS)
        first = self.encode_frame(image)
        blank = self.vae_encode([torch.zeros(1, 3, clip.height, clip.width)])
        latents = torch.cat([first] + [blank] * (clip.n_frames - 1)).transpose(0, 1)[None]
        mask = torch.ones(1, 1, clip.n_frames, *latents.shape[-2:], device=self.device, dtype=self.dtype)
        mask[:, :, 0] = 0
        return mask, latents

    def condition(self, image: Image.Image, prompt: str, clip: ClipSpec, *, negative: bool = False) -> Conditioning:
        mask, masked = self.masked_video(image, clip)
        return {"text": self.encode_text(prompt), "mask": mask, "masked_video": masked}

    def predict(self, sample: torch.Tensor, timestep: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        model_input = torch.cat([sample, cond["mask"], cond["masked_video"]], dim=1)
        return self.unet(model_input, timestep, cond["text"])
