"""How much memory an edit needs, estimated before anything is loaded, and the check
that refuses an edit the device cannot hold (``--skip-memory-check`` overrides it).

The estimate is deliberately simple and errs high; it counts the peak of a run:

* **weights**: the size of the model folder's weight files (a local folder, or the hub
  cache's copy), converted to the run's dtype; or the backbone's declared parameter count;
* **denoiser activations**: per branch (the source branch plus, per edit in a denoiser
  batch, an unconditional and a conditional one) the widest UNet feature map
  (``unet_channels`` x frames x latent pixels) times ``activation_factor`` live copies;
* **VAE**: encoding/decoding ``vae_chunk`` frames at full resolution through its widest
  layer (``vae_channels``) times ``vae_factor`` (a tile of ``vae_tile`` pixels with
  ``--vae-tiling``);
* **latents**: the stored inverted latents (float32) and the clip's frames.

The denoiser and the VAE do not run at the same time, so the larger of the two counts.
A backbone may describe itself with a ``memory_profile`` class attribute
(:class:`MemoryProfile`); the default fits Stable-Diffusion-style UNets (I2VGen-XL,
ConsistI2V, SEINE).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt")
_GB = 1 << 30


@dataclass(frozen=True)
class MemoryProfile:
    """What the estimate needs to know of a backbone (optional ``memory_profile`` attribute)."""

    #: Parameters of all its components, for when the weight files cannot be measured.
    parameters: int | None = None
    latent_channels: int = 4
    #: Pixels per latent pixel along each side.
    vae_scale: int = 8
    #: Channels of the denoiser's widest feature map at full latent resolution.
    unet_channels: int = 320
    #: Live tensors of that size per branch at the peak (activations, residuals, attention).
    activation_factor: float = 16.0
    #: Channels of the VAE's widest full-resolution layer.
    vae_channels: int = 128
    vae_factor: float = 6.0
    #: Tile side (pixels) of tiled VAE decoding.
    vae_tile: int = 512


DEFAULT_PROFILE = MemoryProfile()


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int | None
    denoiser: int
    vae: int
    latents: int
    branches: int

    @property
    def total(self) -> int:
        return (self.weights or 0) + max(self.denoiser, self.vae) + self.latents

    def describe(self) -> str:
        weights = f"weights {gb(self.weights)}" if self.weights is not None else "weights not counted"
        return (f"{weights}, denoiser {gb(self.denoiser)} for {self.branches} branches, VAE {gb(self.vae)}, "
                f"latents {gb(self.latents)}")


def gb(n: int | float) -> str:
    return f"{n / _GB:.1f} GB"


def weight_bytes(model: str | None, dtype_bytes: int) -> int | None:
    """The weights of ``model`` (a folder, or a hub id already in the local hub cache) at
    ``dtype_bytes`` per parameter, from the sizes of its weight files; ``None`` if unknown.
    Files stored in another precision are scaled (fp16 files are assumed when a folder
    holds ``*.fp16.*`` variants, float32 otherwise)."""
    if not model:
        return None
    folder = Path(model).expanduser()
    if not folder.is_dir():
        folder = _hub_cache_folder(model)
        if folder is None:
            return None
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES]
    fp16 = [p for p in files if ".fp16." in p.name]
    chosen = fp16 if fp16 and dtype_bytes == 2 else [p for p in files if ".fp16." not in p.name]
    stored = 2 if chosen is fp16 else 4
    return int(sum(p.stat().st_size for p in chosen) * dtype_bytes / stored)


def _hub_cache_folder(model: str) -> Path | None:
    if model.count("/") != 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or no hub library): unknown
        return None


def estimate_edit(
    profile: MemoryProfile | None,
    *,
    n_frames: int,
    width: int,
    height: int,
    dtype_bytes: int,
    edits_per_batch: int = 1,
    guidance: bool = True,
    stored_latents: int = 50,
    vae_chunk: int = 1,
    vae_tiling: bool = False,
    model: str | None = None,
) -> MemoryEstimate:
    """The peak memory of one edit (see the module docstring)."""
    p = profile or DEFAULT_PROFILE
    lh, lw = -(-height // p.vae_scale), -(-width // p.vae_scale)
    branches = 1 + (2 if guidance else 1) * edits_per_batch
    denoiser = int(branches * n_frames * p.unet_channels * lh * lw * dtype_bytes * p.activation_factor)
    side_h, side_w = (min(height, p.vae_tile), min(width, p.vae_tile)) if vae_tiling else (height, width)
    vae = int(max(1, vae_chunk) * p.vae_channels * side_h * side_w * dtype_bytes * p.vae_factor)
    latents = stored_latents * n_frames * p.latent_channels * lh * lw * 4 + 4 * n_frames * height * width * 3
    weights = weight_bytes(model, dtype_bytes)
    if weights is None and p.parameters is not None:
        weights = p.parameters * dtype_bytes
    return MemoryEstimate(weights, denoiser, vae, latents, branches)


def available_bytes(device: str) -> int | None:
    """Memory the ``device`` can still give: free CUDA memory, or on the CPU the kernel's
    ``MemAvailable`` (capped by a cgroup limit); ``None`` where it cannot be told."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    if device != "cpu":
        return None
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_memory(estimate: MemoryEstimate, device: str, available: int | None = None) -> None:
    """Refuse (one-line :class:`InputError`) an edit whose estimate exceeds what ``device``
    has available, saying what to change."""
    available = available_bytes(device) if available is None else available
    if available is None or estimate.total <= available:
        return
    hints = ["a smaller --size", "fewer --num-frames"]
    if estimate.branches > 3:
        hints.append("a smaller --max-batch")
    if estimate.vae >= estimate.denoiser:
        hints.append("--vae-tiling")
    raise InputError(
        f"this edit needs about {gb(estimate.total)} ({estimate.describe()}) but {device} has {gb(available)} "
        f"available; use {', '.join(hints)}, or --skip-memory-check if you know better"
    )


def profile_of(backbone: Any) -> MemoryProfile | None:
    """A backbone class's (or instance's) ``memory_profile``, if it declares one."""
    profile = getattr(backbone, "memory_profile", None)
    return profile if isinstance(profile, MemoryProfile) else None


def dtype_size(dtype: str, device: str) -> int:
    """Bytes per element of a ``--dtype`` value (``auto``: float16 on CUDA, else float32)."""
    if dtype == "auto":
        return 2 if device.startswith("cuda") else 4
    return 2 if dtype in {"float16", "fp16", "bfloat16", "bf16"} else 4
