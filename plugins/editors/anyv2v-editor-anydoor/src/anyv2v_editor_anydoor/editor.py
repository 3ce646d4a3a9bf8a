"""The ``anydoor`` editor: put a reference subject into a region of the first frame
(AnyV2V §5.4, subject-driven editing), the way the official ``run_inference.py`` does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from anyv2v_core.errors import InputError, ModelNotFoundError
from anyv2v_core.protocols import EditRequest

from .options import OPTIONS, WEIGHTS_ENV


def _read_rgba(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            alpha = np.asarray(img.getchannel("A")) > 128 if "A" in img.getbands() else None
            return np.asarray(img.convert("RGB")), alpha
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None


def read_mask(path: Path, size: tuple[int, int], what: str) -> np.ndarray:
    """A binary mask (white > 128) of exactly ``size`` (W, H); empty masks are refused."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            mask = np.asarray(img.convert("L")) > 128
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from None
    if (mask.shape[1], mask.shape[0]) != tuple(size):
        raise InputError(f"{what} {path} is {mask.shape[1]}x{mask.shape[0]}, the image is {size[0]}x{size[1]}")
    if not mask.any():
        raise InputError(f"{what} {path} is empty (no pixel above 128)")
    return mask


def parse_box(text: str, size: tuple[int, int]) -> np.ndarray:
    """``x0,y0,x1,y1`` (x1, y1 exclusive) → a mask of ``size`` (W, H)."""
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in text.split(","))
    except ValueError:
        raise InputError(f"--target-box expects x0,y0,x1,y1, got {text!r}") from None
    w, h = size
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise InputError(f"--target-box {text} is empty or outside the {w}x{h} first frame")
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


class AnyDoorEditor:
    """AnyDoor: DINOv2 ID tokens of the masked reference + its high-frequency collage in the
    target box → a new 512² crop around the box, pasted back into the first frame."""

    name: ClassVar[str] = "anydoor"
    options: ClassVar[tuple] = OPTIONS

    def __init__(self, device: Any = "cpu", dtype: Any = None, model: str | None = None) -> None:
        import torch

        self.device = torch.device(device)
        self.dtype = dtype if isinstance(dtype, torch.dtype) else torch.float32
        self.model_path = model
        self._model = None
        self._loaded_from: Path | None = None

    # -- weights ---------------------------------------------------------------------------
    def weights_path(self, request: EditRequest) -> Path:
        given = request.options.get("anydoor_model") or self.model_path or os.environ.get(WEIGHTS_ENV)
        if not given:
            raise ModelNotFoundError(
                f"AnyDoor weights not given: pass --anydoor-model anydoor.safetensors or set {WEIGHTS_ENV} "
                "(convert the official epoch=1-step=8687.ckpt once with `anyv2v anydoor-convert`)"
            )
        path = Path(given).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"AnyDoor weights not found: {path} (convert the official checkpoint with "
                                     "`anyv2v anydoor-convert CKPT OUT.safetensors`)")
        if path.suffix != ".safetensors":
            raise ModelNotFoundError(f"AnyDoor weights {path} are not .safetensors; convert the official checkpoint "
                                     f"once with `anyv2v anydoor-convert {path} anydoor.safetensors`")
        return path

    def model(self, path: Path):
        from .model import AnyDoorModel

        if self._model is None or self._loaded_from != path:
            self._model = AnyDoorModel.from_file(path, device=self.device, dtype=self.dtype)
            self._loaded_from = path
        return self._model

    # -- the edit ----------------------------------------------------------------------------
    def inputs(self, first_frame, request: EditRequest) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Reference RGB, reference mask, target RGB, target mask (validated)."""
        opts = request.options
        if opts.get("reference") is None:
            raise InputError("editor 'anydoor' needs --reference (the subject image)")
        reference, alpha = _read_rgba(Path(opts["reference"]))
        ref_size = (reference.shape[1], reference.shape[0])
        if opts.get("reference_mask") is not None:
            ref_mask = read_mask(Path(opts["reference_mask"]), ref_size, "--reference-mask")
        elif alpha is not None:
            if not alpha.any():
                raise InputError(f"the alpha channel of --reference {opts['reference']} is empty")
            ref_mask = alpha
        else:
            raise InputError("editor 'anydoor' needs --reference-mask (or a --reference with an alpha channel)")
        target = np.asarray(first_frame.convert("RGB")).copy()
        size = (target.shape[1], target.shape[0])
        if (opts.get("target_mask") is None) == (opts.get("target_box") is None):
            raise InputError("editor 'anydoor' needs exactly one of --target-mask or --target-box")
        if opts.get("target_mask") is not None:
            tar_mask = read_mask(Path(opts["target_mask"]), size, "--target-mask")
        else:
            tar_mask = parse_box(str(opts["target_box"]), size)
        return reference, ref_mask, target, tar_mask

    def edit(self, first_frame, request: EditRequest):
        import torch
        from PIL import Image

        from .preprocess import paste_back, prepare

        opts = request.options
        steps = int(opts.get("ddim_steps") or 50)
        guidance = float(opts.get("guidance") if opts.get("guidance") is not None else 5.0)
        strength = float(opts.get("control_strength") if opts.get("control_strength") is not None else 1.0)
        if steps < 1:
            raise InputError(f"--ddim-steps must be at least 1, got {steps}")
        reference, ref_mask, target, tar_mask = self.inputs(first_frame, request)
        model = self.model(self.weights_path(request))
        cfg = model.config
        prepared = prepare(reference, ref_mask, target, tar_mask, np.random.default_rng(request.seed),
                           resolution=cfg.resolution, reference_size=cfg.reference_size)
        generator = torch.Generator().manual_seed(request.seed)
        prediction = self.sample(model, prepared, steps, guidance, strength, generator)
        return Image.fromarray(paste_back(prediction, target, prepared))

    def sample(self, model, prepared, steps: int, guidance: float, strength: float, generator) -> np.ndarray:
        """DDIM (eta 0) with classifier-free guidance on the ID tokens; both branches see the
        same collage hint. Returns the decoded crop ``(R, R, 3)`` in [0, 255] (float)."""
        import torch

        dev, dt = model.device, model.dtype
        with torch.inference_mode():
            ref = torch.from_numpy(prepared.reference).permute(2, 0, 1)[None].to(dev, dt)
            hint = torch.from_numpy(prepared.hint).permute(2, 0, 1)[None].to(dev, dt)
            cond = model.encode_reference(ref)
            if guidance != 1.0:
                uncond = model.encode_reference(torch.zeros_like(ref))  # the official empty reference
                context, hints = torch.cat([uncond, cond]), torch.cat([hint, hint])
            else:
                context, hints = cond, hint
            scheduler = model.make_scheduler()
            scheduler.set_timesteps(steps)
            side = model.config.resolution // 8
            latents = torch.randn((1, model.config.in_channels, side, side), generator=generator).to(dev, dt)
            for t in scheduler.timesteps:
                batch = latents.expand(context.shape[0], -1, -1, -1)
                eps = model.predict_noise(batch, t.to(dev), context, hints, strength)
                if guidance != 1.0:
                    uncond_eps, cond_eps = eps.chunk(2)
                    eps = uncond_eps + guidance * (cond_eps - uncond_eps)
                latents = scheduler.step(eps, t, latents, eta=0.0).prev_sample
            image = model.decode(latents)[0].permute(1, 2, 0).float().cpu()
        return (image * 127.5 + 127.5).numpy()
