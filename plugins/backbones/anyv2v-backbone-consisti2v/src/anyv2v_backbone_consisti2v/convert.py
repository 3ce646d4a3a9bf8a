"""One-time conversion of a ConsistI2V folder's pickled component weights to safetensors.

The backbone loads safetensors only. A component stored as ``pytorch_model.bin`` or
``diffusion_pytorch_model.bin`` (possibly the CLIP text encoder of ``TIGER-Lab/ConsistI2V``)
is read with ``torch.load(..., weights_only=True)`` (no code is unpickled) and written next
to it as ``model.safetensors`` / ``diffusion_pytorch_model.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

from anyv2v_core.errors import InputError

#: Pickled weight file -> safetensors file name, as transformers / diffusers name them.
NAMES = {
    "pytorch_model.bin": "model.safetensors",
    "diffusion_pytorch_model.bin": "diffusion_pytorch_model.safetensors",
}
COMPONENTS = ("unet", "vae", "text_encoder")


def convert_folder(folder: str | Path, force: bool = False) -> list[Path]:
    """Convert every component's pickled weights under ``folder``; returns the files written.

    A component that already has the safetensors file is skipped unless ``force``; a folder
    with safetensors weights and no pickled ones is already converted (nothing written)."""
    import torch
    from anyv2v_core.video import save_safetensors

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"model folder {root} not found")
    written: list[Path] = []
    found = False
    for component in COMPONENTS:
        for pickled, target in NAMES.items():
            src = root / component / pickled
            if not src.is_file():
                continue
            found = True
            dst = src.with_name(target)
            if dst.exists() and not force:
                continue
            try:
                state = torch.load(src, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - one line for a bad or unsafe pickle
                raise InputError(f"cannot read {src} as plain tensors ({type(exc).__name__}); not converting it") from exc
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise InputError(f"{src} does not hold a flat dict of tensors")
            save_safetensors({k: v.contiguous() for k, v in state.items()}, dst, metadata={"format": "pt"})
            written.append(dst)
    if not found and any((root / c / name).is_file() for c in COMPONENTS for name in NAMES.values()):
        return written  # already converted: nothing pickled left, the safetensors are there
    if not found:
        raise InputError(f"{root} has no pickled component weights (*/pytorch_model.bin, */diffusion_pytorch_model.bin)")
    return written
