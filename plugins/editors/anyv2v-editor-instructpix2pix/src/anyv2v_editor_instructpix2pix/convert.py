"""One-time conversion of a diffusers-layout folder whose weights are pickles (``.bin``,
e.g. the MagicBrush ports) to safetensors, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import shutil
from pathlib import Path

from anyv2v_core.errors import InputError

#: Component folder -> the safetensors file name diffusers/transformers look for.
TARGETS = {
    "unet": "diffusion_pytorch_model.safetensors",
    "vae": "diffusion_pytorch_model.safetensors",
    "text_encoder": "model.safetensors",
}


def convert_folder(source: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write ``<component>/<name>.safetensors`` next to each component's ``.bin`` (in
    ``out``, a copy of the folder without the pickles, if given). Returns the files written."""
    import torch
    from anyv2v_core.video import save_safetensors

    src = Path(source).expanduser()
    if not (src / "model_index.json").is_file():
        raise InputError(f"{src} is not a diffusers model folder (no model_index.json); "
                         "download it first, e.g. `huggingface-cli download OWNER/NAME --local-dir DIR`")
    dst = Path(out).expanduser() if out else src
    if dst != src:
        if dst.exists():
            raise InputError(f"{dst} exists; choose a new folder for --out")
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.bin", "*.ckpt", "*.pt", "*.pth", "safety_checker"))
    written = []
    for component, name in TARGETS.items():
        folder = src / component
        if any(folder.glob("*.safetensors")):
            continue
        bins = sorted(folder.glob("*.bin"))
        if len(bins) != 1:
            raise InputError(f"{folder}: expected one .bin weights file to convert, found {len(bins)}")
        try:
            state = torch.load(str(bins[0]), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - anything but plain tensors is refused
            raise InputError(f"cannot read {bins[0]} as plain tensors (weights_only): {type(exc).__name__}") from None
        target = dst / component / name
        save_safetensors({k: v.detach().clone().contiguous() for k, v in state.items()}, target, metadata={"format": "pt"})
        written.append(target)
    return written
