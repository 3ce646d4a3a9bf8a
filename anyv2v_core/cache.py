"""Content-addressed cache of DDIM inversions.

An entry is addressed by everything that determines the inverted latents: the decoded
source frames (at clip size), the backbone, the model's weights fingerprint and every
inversion setting (steps, prompt, frames, size, fps, dtype, device type, VAE mode). It
stores only the latents an edit can visit, as safetensors (:class:`InversionResult`),
next to a small JSON manifest with the file's SHA-256. A corrupt or mismatching entry is
detected on lookup, removed and recomputed — never trusted blindly.

Location: ``--cache-dir``, else ``$ANYV2V_CACHE``, else ``$XDG_CACHE_HOME/anyv2v/inversions``
(``~/.cache/anyv2v/inversions``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from .errors import AnyV2VError, InputError
from .inversion import InversionResult

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

log = logging.getLogger(__name__)
MANIFEST_VERSION = 1


def default_cache_dir() -> Path:
    if os.environ.get("ANYV2V_CACHE"):
        return Path(os.environ["ANYV2V_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "anyv2v" / "inversions"


def frames_digest(frames: Sequence["Image.Image"]) -> str:
    """SHA-256 of the decoded frames (size, mode and pixels)."""
    h = hashlib.sha256()
    for frame in frames:
        h.update(f"{frame.size}{frame.mode}".encode())
        h.update(frame.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    source: str
    backbone: str
    model: str
    steps: int
    prompt: str
    n_frames: int
    width: int
    height: int
    fps: int
    dtype: str
    device: str
    encoding: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:32]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Entry:
    digest: str
    key: dict
    sha256: str
    bytes: int
    timesteps: list[int]
    created: float
    last_used: float


class InversionCache:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def _paths(self, digest: str) -> tuple[Path, Path]:
        return self.root / f"{digest}.safetensors", self.root / f"{digest}.json"

    def _read_manifest(self, digest: str) -> Entry | None:
        _, manifest = self._paths(digest)
        try:
            data = json.loads(manifest.read_text())
            if data.pop("version", None) != MANIFEST_VERSION:
                return None
            return Entry(**data)
        except (OSError, ValueError, TypeError):
            return None

    def lookup(self, key: CacheKey, needed: Iterable[int], device=None) -> InversionResult | None:
        """The cached inversion for ``key`` if it is intact, matches ``key`` and holds every
        timestep in ``needed``; else ``None`` (a damaged entry is removed)."""
        digest = key.digest
        data, _ = self._paths(digest)
        entry = self._read_manifest(digest)
        if entry is None or not data.exists():
            if entry is not None or data.exists():
                self.remove(digest)
            return None
        if entry.key != asdict(key):
            log.warning("inversion cache entry %s does not match its key; recomputing", digest)
            self.remove(digest)
            return None
        if not set(int(t) for t in needed) <= set(entry.timesteps):
            return None
        if data.stat().st_size != entry.bytes or _sha256(data) != entry.sha256:
            log.warning("inversion cache entry %s is corrupt; recomputing", digest)
            self.remove(digest)
            return None
        try:
            result = InversionResult.load(data, device=device or "cpu")
        except AnyV2VError:
            log.warning("inversion cache entry %s cannot be read; recomputing", digest)
            self.remove(digest)
            return None
        entry.last_used = time.time()
        self._write_manifest(entry)
        return result

    def timesteps(self, key: CacheKey) -> list[int]:
        """Timesteps an existing entry holds (to extend it rather than lose them)."""
        entry = self._read_manifest(key.digest)
        return list(entry.timesteps) if entry else []

    def _write_manifest(self, entry: Entry) -> None:
        from .video import atomic_path

        _, manifest = self._paths(entry.digest)
        with atomic_path(manifest, force=True) as tmp:
            tmp.write_text(json.dumps({"version": MANIFEST_VERSION, **asdict(entry)}, indent=1))

    def store(self, key: CacheKey, result: InversionResult) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        digest = key.digest
        data, _ = self._paths(digest)
        result.save(data, force=True)
        now = time.time()
        self._write_manifest(Entry(digest, asdict(key), _sha256(data), data.stat().st_size,
                                   sorted(result.latents, reverse=True), now, now))
        return data

    def store_or_warn(self, key: CacheKey, result: InversionResult) -> Path | None:
        """:meth:`store`, but a failure to write (full disk, read-only cache folder) is a
        warning, not an error: the inversion was computed, only caching it failed."""
        try:
            return self.store(key, result)
        except (OSError, AnyV2VError) as exc:
            log.warning("could not store the inversion in the cache %s (%s); continuing without", self.root,
                        " ".join(str(exc).split()))
            self.remove(key.digest)
            return None

    def entries(self) -> list[Entry]:
        """The intact-looking entries: a readable manifest and its data file (see :meth:`damaged`)."""
        if not self.root.exists():
            return []
        found = [self._read_manifest(p.stem) for p in sorted(self.root.glob("*.json"))]
        return [e for e in found if e is not None and self._paths(e.digest)[0].is_file()]

    def damaged(self) -> list[str]:
        """Digests of entries with an unreadable manifest, or whose data file is gone, or a data
        file without a manifest (``prune`` and ``rm --all`` remove them; a lookup would too)."""
        if not self.root.exists():
            return []
        good = {e.digest for e in self.entries()}
        stems = {p.stem for p in self.root.glob("*.json")} | {p.stem for p in self.root.glob("*.safetensors")}
        return sorted(d for d in stems if d not in good and not d.startswith("."))

    def remove(self, digest: str) -> bool:
        removed = False
        for path in self._paths(digest):
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                pass
        return removed

    def prune(self, max_bytes: int | None = None, older_than: float | None = None) -> list[str]:
        """Remove entries unused for ``older_than`` seconds, then the least recently used
        until the total is at most ``max_bytes``; also damaged entries and orphaned files
        (:meth:`damaged`). Returns digests."""
        if (max_bytes is not None and max_bytes < 0) or (older_than is not None and older_than < 0):
            raise InputError("cache prune limits must not be negative")
        removed = []
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        now = time.time()
        if older_than is not None:
            for e in [e for e in entries if now - e.last_used > older_than]:
                self.remove(e.digest)
                removed.append(e.digest)
            entries = [e for e in entries if e.digest not in removed]
        if max_bytes is not None:
            total = sum(e.bytes for e in entries)
            for e in entries:
                if total <= max_bytes:
                    break
                self.remove(e.digest)
                removed.append(e.digest)
                total -= e.bytes
        for digest in self.damaged():
            self.remove(digest)
            removed.append(digest)
        return removed
