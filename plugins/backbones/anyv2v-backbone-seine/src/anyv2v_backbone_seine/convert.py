"""One-time conversion of the official ``seine.pt`` (a pickle) to safetensors.

``seine.pt`` (hub ``xinyuanc91/SEINE``) is a ``torch.save`` dict whose ``'ema'`` entry is
the UNet state dict the reference loads. It is read with ``torch.load`` with
``weights_only=True`` — PyTorch's restricted unpickler that only rebuilds tensors and
plain containers and refuses arbitrary objects — and written as ``seine.safetensors``.
No key is renamed: :class:`~anyv2v_backbone_seine.unet.SEINEUNet3DModel` uses the
official parameter names. Each tensor is stored as its own copy (the official model
shares one rotary ``freqs`` tensor between all temporal attentions; safetensors
does not store aliases).
"""

from __future__ import annotations

import os
from pathlib import Path

from anyv2v_core.errors import InputError, ModelNotFoundError

SEINE_REPO = "xinyuanc91/SEINE"
CHECKPOINT = "seine.pt"
CONVERTED = "seine.safetensors"
STATE_KEY = "ema"


def _locate(source: str) -> Path:
    """``source``: a ``seine.pt`` file, a folder holding one, or a hub id."""
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT
    if path.is_file():
        return path
    if path.exists() or source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise InputError(f"checkpoint not found: {source} (give seine.pt, a folder holding it, or {SEINE_REPO})")
    from huggingface_hub import hf_hub_download

    from anyv2v_core.hub import offline

    try:
        return Path(hf_hub_download(source, CHECKPOINT, local_files_only=offline()))
    except Exception as exc:  # noqa: BLE001 - any hub failure is one line
        how = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline() else f"download failed ({type(exc).__name__})"
        raise ModelNotFoundError(
            f"{CHECKPOINT} of {source!r} is not available: {how}; download it where there is network "
            f"(`huggingface-cli download {source} {CHECKPOINT}`) and pass the file"
        ) from exc


def load_pickled_state_dict(path: str | Path) -> dict:
    """The UNet state dict of a SEINE ``.pt`` checkpoint, unpickled with ``weights_only=True``."""
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler raises several types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path} cannot be read as a weights-only checkpoint: {first}") from exc
    if isinstance(obj, dict) and isinstance(obj.get(STATE_KEY), dict):
        obj = obj[STATE_KEY]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path} holds no tensor state dict (expected seine.pt with an {STATE_KEY!r} entry)")
    weight = obj.get("conv_in.weight")
    if weight is None or weight.ndim != 4 or weight.shape[1] != 9:
        raise InputError(f"{path} is not a SEINE UNet checkpoint (conv_in.weight with 9 input channels expected)")
    return obj


def convert_checkpoint(source: str | Path, output: str | Path, *, fp16: bool = False, force: bool = False) -> Path:
    """Convert ``source`` (see :func:`_locate`) to safetensors at ``output`` (a file, or a
    folder that receives ``seine.safetensors``). Returns the written path."""
    import torch
    from anyv2v_core.video import save_safetensors

    src = _locate(str(source))
    dst = Path(output).expanduser()
    if dst.is_dir() or (not dst.suffix and not dst.exists()):
        dst = dst / CONVERTED
    if dst.suffix != ".safetensors":
        raise InputError(f"output must be a .safetensors file or a folder, got {dst}")
    if dst.exists() and not force:
        raise InputError(f"{dst} exists; pass --force to overwrite it")
    state = load_pickled_state_dict(src)
    tensors = {}
    for key, value in state.items():
        value = value.detach().to("cpu")
        if fp16 and value.is_floating_point():
            value = value.to(torch.float16)
        tensors[key] = value.clone().contiguous()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        save_safetensors(tensors, tmp, metadata={"format": "pt", "source": src.name, "entry": STATE_KEY})
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dst
