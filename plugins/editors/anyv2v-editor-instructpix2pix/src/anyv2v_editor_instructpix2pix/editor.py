"""InstructPix2Pix (Brooks, Holynski, Efros, CVPR 2023) as an anyv2v editor.

diffusers' ``StableDiffusionInstructPix2PixPipeline`` on the diffusers layout of
``timbrooks/instruct-pix2pix`` (or weights of the same architecture, e.g. MagicBrush),
with the scheduler the weights ship (Euler ancestral for the official ones). Only
safetensors are loaded; the safety checker and its feature extractor are neither loaded
nor downloaded. The frame is edited at its own resolution rounded to a multiple of 8 and
returned at the source size.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch
from PIL import Image

from anyv2v_core.editor_options import validate_options
from anyv2v_core.errors import InputError, ModelNotFoundError
from anyv2v_core.hub import required_files, resolve_model
from anyv2v_core.protocols import EditorOption, EditRequest

from .options import DEFAULT_MODEL, OPTIONS
from anyv2v_core.progress import stage_progress

#: What must be present (globs, relative to the model root).
REQUIRED = ("model_index.json", *required_files("unet", "vae", "text_encoder",
                                                 other=("tokenizer/*", "scheduler/scheduler_config.json")))
#: What is downloaded from the hub: full-precision safetensors of the needed components
#: (no safety checker, no pickles, no single-file checkpoint).
ALLOW = (
    "model_index.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/*",
    "scheduler/scheduler_config.json",
)


def working_size(size: tuple[int, int], multiple: int = 8) -> tuple[int, int]:
    """``size`` rounded to the nearest multiple of ``multiple`` (at least ``multiple``)."""
    return tuple(max(multiple, int(round(s / multiple)) * multiple) for s in size)  # type: ignore[return-value]


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``dtype=`` for diffusers that renamed ``torch_dtype`` (and deprecate the old name)."""
    try:
        from diffusers.utils.deprecation_utils import _TORCH_DTYPE_DEPRECATION_MESSAGE  # noqa: F401
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No diffusers/transformers loading bars (restored afterwards)."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    states = [(mod, mod.is_progress_bar_enabled()) for mod in (dlog, tlog)]
    for mod, _ in states:
        mod.disable_progress_bar()
    try:
        yield
    finally:
        for mod, enabled in states:
            if enabled:
                mod.enable_progress_bar()


def load_pipeline(model: str, device: torch.device, dtype: torch.dtype) -> Any:
    """The pipeline from a local folder or hub id (offline-aware, one-line errors)."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    try:
        root: Path = resolve_model(model, REQUIRED, ALLOW, flag="--editor-model")
    except ModelNotFoundError as exc:
        local = Path(model).expanduser()
        if local.is_dir() and any(local.glob("*/*.bin")):
            raise ModelNotFoundError(
                f"{exc} (it has .bin pickles: convert them once with `anyv2v ip2p-convert-weights {local}`)"
            ) from None
        raise
    with _quiet_loading():
        pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            str(root),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            use_safetensors=True,
            **_dtype_kwarg(dtype),
        )
    pipe.set_progress_bar_config(disable=True)  # our own bar, see edit()
    return pipe.to(device)


class InstructPix2PixEditor:
    """``anyv2v edit SOURCE --editor instructpix2pix --instruction "turn the car blue" -p "a blue car"``."""

    name: ClassVar[str] = "instructpix2pix"
    options: ClassVar[tuple[EditorOption, ...]] = OPTIONS

    def __init__(self, device: str = "cpu", dtype: torch.dtype | None = None, model: str | None = None) -> None:
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.default_model = model or DEFAULT_MODEL
        self._pipes: dict[str, Any] = {}

    def pipeline(self, model: str | None = None) -> Any:
        """The loaded pipeline of ``model`` (cached per editor instance)."""
        key = model or self.default_model
        if key not in self._pipes:
            self._pipes[key] = load_pipeline(key, self.device, self.dtype)
        return self._pipes[key]

    def edit(self, first_frame: Image.Image, request: EditRequest) -> Image.Image:
        opts = validate_options(self.name, OPTIONS, dict(request.options))
        instruction = opts["instruction"].strip()
        if not instruction:
            raise InputError("--instruction must not be empty")
        if opts["editor_steps"] < 1:
            raise InputError(f"--editor-steps must be at least 1, got {opts['editor_steps']}")
        model = opts["editor_model"] if opts["editor_model"] != DEFAULT_MODEL else None
        pipe = self.pipeline(model)
        source_size = first_frame.size
        size = working_size(source_size, 8)
        image = first_frame.convert("RGB")
        if image.size != size:
            image = image.resize(size, Image.LANCZOS)
        generator = torch.Generator().manual_seed(request.seed)  # CPU: same numbers on every device
        with stage_progress(request.progress, "InstructPix2Pix", opts["editor_steps"]) as advance:

            def step_end(_pipe: Any, _i: int, _t: Any, kwargs: dict) -> dict:
                advance(1)
                return kwargs

            out = pipe(
                prompt=instruction,
                image=image,
                num_inference_steps=opts["editor_steps"],
                guidance_scale=opts["guidance_scale"],
                image_guidance_scale=opts["image_guidance_scale"],
                generator=generator,
                output_type="pil",
                callback_on_step_end=step_end,
            ).images[0]
        out = out.convert("RGB")
        return out if out.size == source_size else out.resize(source_size, Image.LANCZOS)
