"""Locating model weights: a local folder or a Hugging Face hub id, offline-aware.

Only safetensors are accepted. When the hub cannot be reached (``HF_HUB_OFFLINE=1`` or
no network) and the files are not in the local cache, the error names the repository and
the missing files and says how to provide them.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Sequence

from .errors import ModelNotFoundError


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _missing(root: Path, required: Sequence[str]) -> list[str]:
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return [pattern for pattern in required if not any(fnmatch.fnmatchcase(f, pattern) for f in files)]


def resolve_model(model: str, required: Sequence[str], allow_patterns: Sequence[str] | None = None,
                  flag: str = "--model") -> Path:
    """A local folder holding ``required`` (glob patterns relative to the model root).

    ``model`` is a folder (used as is) or a hub id (``owner/name``), fetched with
    ``huggingface_hub.snapshot_download`` restricted to ``allow_patterns`` (default:
    ``required``) — from the local cache only when offline. ``flag`` is the option that
    names this model, for the hint of the error when it is not available.
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"model path {path} is not a folder (expected a diffusers-layout model folder)")
        missing = _missing(path, required)
        if missing:
            raise ModelNotFoundError(f"model folder {path} lacks {', '.join(missing)}")
        return path
    if model.count("/") != 1 or model.startswith((".", "/")):
        raise ModelNotFoundError(f"model {model!r} is neither an existing folder nor a hub id (owner/name)")
    try:
        from huggingface_hub import snapshot_download

        local = Path(
            snapshot_download(
                model, allow_patterns=list(allow_patterns or required), local_files_only=offline()
            )
        )
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one clear line
        how = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline() else f"download failed ({type(exc).__name__})"
        raise ModelNotFoundError(
            f"weights of {model!r} are not available: {how}; download them where there is network "
            f"(`huggingface-cli download {model}`) or pass {flag} /path/to/local/folder"
        ) from exc
    missing = _missing(local, required)
    if missing:
        raise ModelNotFoundError(f"hub repo {model!r} (cached at {local}) lacks {', '.join(missing)}")
    return local


def fingerprint(root: str | os.PathLike) -> str:
    """A cheap identity of a model folder's weights: SHA-256 over the relative path, size
    and modification time of every weight and config file (hub snapshot folders are named
    by commit, which this includes). Used to address cached inversions."""
    import hashlib

    root = Path(root).resolve()
    h = hashlib.sha256(str(root).encode())
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in {".safetensors", ".json", ".txt", ".bin", ".pt", ".ckpt"}:
            st = path.stat()
            h.update(f"{path.relative_to(root).as_posix()}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:32]


def required_files(*weighted: str, other: Sequence[str] = ()) -> tuple[str, ...]:
    """The files a diffusers-layout folder must hold: ``config.json`` and safetensors of each
    ``weighted`` component (``unet``, ``vae``, ...), then the ``other`` patterns."""
    return (*(f for c in weighted for f in (f"{c}/config.json", f"{c}/*.safetensors")), *other)
