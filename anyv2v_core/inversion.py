"""The result of DDIM inversion, kept in memory and optionally stored as safetensors.

Only tensors and a JSON header are stored (no pickles): the latents ``z_t`` keyed by
timestep, a SHA-256 of the source's first frame (so an edit can check it is given the
same video), and what produced them (backbone, model, clip size, inversion steps, prompt).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError, InversionMismatchError, WriteError
from .protocols import ClipSpec

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

FORMAT = "anyv2v-inversion/2"
#: Metadata key of the SHA-256 over the header and every tensor (:func:`content_digest`).
CHECKSUM_KEY = "sha256"

log = logging.getLogger(__name__)


def content_digest(header: str, tensors: dict[str, "torch.Tensor"]) -> str:
    """SHA-256 of an inversion file's content: its JSON header, then every tensor's name,
    dtype, shape and bytes in name order (independent of the safetensors layout)."""
    import hashlib

    import torch

    h = hashlib.sha256(header.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def frame_digest(frame) -> str:
    """SHA-256 of an image array's shape and bytes."""
    import hashlib

    import numpy as np

    arr = np.ascontiguousarray(np.asarray(frame, dtype=np.uint8))
    return hashlib.sha256(f"{arr.shape}".encode() + arr.tobytes()).hexdigest()


def require_timesteps(available, needed, inversion_steps: int) -> None:
    """Raise :class:`InversionMismatchError` if an edit timestep in ``needed`` is not on the
    inversion grid ``available`` (the reference would silently load a missing file)."""
    have = {int(t) for t in available}
    missing = [int(t) for t in needed if int(t) not in have]
    if missing:
        shown = ", ".join(str(t) for t in missing[:6]) + (" ..." if len(missing) > 6 else "")
        raise InversionMismatchError(
            f"the inversion ({inversion_steps} steps) has no latent at edit timestep(s) {shown}; "
            "choose --inversion-steps so that its grid contains the edit schedule (e.g. a multiple of --steps)"
        )


@dataclass
class InversionResult:
    #: ``z_t^S`` by model timestep ``t``: the latent after the inverse step at ``t``.
    latents: dict[int, "torch.Tensor"]
    backbone: str
    model_id: str
    clip: ClipSpec
    steps: int
    prompt: str
    #: The source's first frame at clip size, uint8 ``(H, W, 3)`` (``None`` once loaded
    #: from a file, which keeps only its digest).
    source_first_frame: "np.ndarray | None"
    encoding: str = "mean"
    extra: dict = field(default_factory=dict)
    stored_digest: str | None = None

    @property
    def source_digest(self) -> str:
        """SHA-256 of the source's first frame (shape and pixels), to recognise the video."""
        if self.source_first_frame is None:
            return self.stored_digest or ""
        return frame_digest(self.source_first_frame)

    @property
    def timesteps(self) -> list[int]:
        return sorted(self.latents, reverse=True)

    def latent(self, t: int) -> "torch.Tensor":
        return self.latents[int(t)]

    def require(self, timesteps: list[int]) -> None:
        """Raise if any of ``timesteps`` has no inverted latent."""
        require_timesteps(self.latents, timesteps, self.steps)

    def check_compatible(self, backbone: str, model_id: str, clip: ClipSpec) -> None:
        if backbone != self.backbone:
            raise InversionMismatchError(f"the inversion was made with backbone {self.backbone!r}, not {backbone!r}")
        if model_id != self.model_id:
            raise InversionMismatchError(f"the inversion was made with model {self.model_id!r}, not {model_id!r}")
        if (clip.n_frames, clip.width, clip.height) != (self.clip.n_frames, self.clip.width, self.clip.height):
            raise InversionMismatchError(
                f"the inversion is of {self.clip.n_frames} frames at {self.clip.width}x{self.clip.height}, "
                f"the edit asks for {clip.n_frames} frames at {clip.width}x{clip.height}"
            )

    # -- storage ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        import torch
        from safetensors import SafetensorError

        from .video import atomic_path, save_safetensors

        tensors = {f"latents.{t}": v.detach().to("cpu", torch.float32).contiguous() for t, v in self.latents.items()}
        header = {
            "source_digest": self.source_digest,
            "backbone": self.backbone,
            "model_id": self.model_id,
            "clip": [self.clip.n_frames, self.clip.width, self.clip.height, self.clip.fps],
            "steps": self.steps,
            "prompt": self.prompt,
            "encoding": self.encoding,
            "extra": self.extra,
        }
        text = json.dumps(header)
        metadata = {"format": FORMAT, "anyv2v": text, CHECKSUM_KEY: content_digest(text, tensors)}
        with atomic_path(path, force) as tmp:
            try:
                save_safetensors(tensors, tmp, metadata)
            except (OSError, SafetensorError) as exc:
                raise WriteError(f"writing {path} failed: {' '.join(str(exc).split())}; nothing was written") from None
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: "torch.device | str" = "cpu") -> "InversionResult":
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise InputError(f"inversion file not found: {path}")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise InputError(f"{path} is not an anyv2v inversion file")
                header = json.loads(meta["anyv2v"])
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            raise InputError(f"cannot read inversion file {path}: {exc}") from None
        stored = meta.get(CHECKSUM_KEY)
        if stored is None:
            log.warning("inversion file %s has no checksum (written before anyv2v checked them); it is used "
                        "unverified — run `anyv2v invert` again to get a checked file", path)
        elif content_digest(meta["anyv2v"], tensors) != stored:
            raise InputError(f"inversion file {path} is damaged (its content does not match its checksum); "
                             "run `anyv2v invert` again")
        latents = {int(k.split(".", 1)[1]): v.to(device) for k, v in tensors.items() if k.startswith("latents.")}
        n, w, h, fps = header["clip"]
        return cls(
            latents=latents,
            backbone=header["backbone"],
            model_id=header["model_id"],
            clip=ClipSpec(n, w, h, fps),
            steps=header["steps"],
            prompt=header["prompt"],
            source_first_frame=None,
            stored_digest=header["source_digest"],
            encoding=header.get("encoding", "mean"),
            extra=header.get("extra", {}),
        )
