"""Reading and writing clips: video files through imageio-ffmpeg, folders of frames,
single images; LANCZOS resizing; atomic writes that never overwrite without ``force``."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from .errors import InputError, OutputExistsError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    """Image files of a frames folder in natural order (``2.png`` before ``10.png``)."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)


def load_image(path: str | os.PathLike) -> "Image.Image":
    """An RGB image; a one-line :class:`InputError` if it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None


def _iter_video(path: Path) -> Iterator["Image.Image"]:
    import imageio_ffmpeg
    from PIL import Image

    try:
        gen = imageio_ffmpeg.read_frames(str(path))
        meta = next(gen)
    except (RuntimeError, OSError, StopIteration) as exc:
        raise InputError(f"cannot read video {path}: {str(exc).strip().splitlines()[-1] if str(exc) else exc}") from None
    width, height = meta["size"]
    try:
        for raw in gen:
            yield Image.frombytes("RGB", (width, height), raw)
    finally:
        gen.close()


@dataclass(frozen=True)
class FrameRange:
    """Which source frames to use: from ``start`` to ``end`` (exclusive), every ``stride``-th.
    Positions are frame indices (``12``) or times (``"1.5s"``, needs a video's frame rate)."""

    start: int | str = 0
    end: int | str | None = None
    stride: int = 1

    def bounds(self, fps: float | None) -> tuple[int, int | None]:
        start = position(self.start, fps, "--start")
        end = None if self.end is None else position(self.end, fps, "--end")
        if self.stride < 1:
            raise InputError(f"--stride must be at least 1, got {self.stride}")
        if end is not None and end <= start:
            raise InputError(f"--end ({self.end}) must come after --start ({self.start})")
        return start, end

    def describe(self) -> str:
        parts = []
        if self.start not in (0, "0"):
            parts.append(f"from {self.start}")
        if self.end is not None:
            parts.append(f"to {self.end}")
        if self.stride != 1:
            parts.append(f"every {self.stride}")
        return " ".join(parts)


def parse_size(value: str | None, flag: str = "--size") -> tuple[int, int] | None:
    """``"512x320"`` -> ``(512, 320)`` (width x height); ``None`` -> ``None``; anything else
    is an :class:`InputError` naming ``flag``."""
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(value))
    if match is None:
        raise InputError(f"{flag} must look like 512x512 (width x height), got {value!r}")
    return int(match.group(1)), int(match.group(2))


def position(value: int | str, fps: float | None, flag: str) -> int:
    """A frame index from ``12`` or ``"1.5s"`` (seconds, rounded to the nearest frame)."""
    text = str(value).strip().lower()
    try:
        if text.endswith("s"):
            if not fps:
                raise InputError(f"{flag} {value!r} is a time, but the source has no frame rate (use a frame index)")
            return int(round(float(text[:-1]) * fps))
        index = int(text)
    except ValueError:
        raise InputError(f"{flag} takes a frame index (12) or a time (1.5s), got {value!r}") from None
    if index < 0:
        raise InputError(f"{flag} must not be negative, got {value!r}")
    return index


def video_fps(source: str | os.PathLike) -> float | None:
    """The frame rate of a video file (``None`` for a frames folder or an unknown rate)."""
    import imageio_ffmpeg

    source = Path(source)
    if source.is_dir() or source.suffix.lower() not in VIDEO_SUFFIXES:
        return None
    try:
        gen = imageio_ffmpeg.read_frames(str(source))
        meta = next(gen)
        gen.close()
    except (RuntimeError, OSError, StopIteration):
        return None
    return float(meta.get("fps") or 0) or None


def read_frames(
    source: str | os.PathLike, n_frames: int | None = None, selection: FrameRange | None = None
) -> list["Image.Image"]:
    """The first ``n_frames`` frames (all if ``None``) of a video file or frames folder,
    within ``selection``, as RGB images at their own size. Fewer frames than asked for is
    an :class:`InputError` that gives the numbers."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"source not found: {source}")
    selection = selection or FrameRange()
    start, end = selection.bounds(video_fps(source))

    def wanted(i: int) -> bool:
        return i >= start and (i - start) % selection.stride == 0 and (end is None or i < end)

    total = 0
    if source.is_dir():
        files = frame_files(source)
        total = len(files)
        chosen = [p for i, p in enumerate(files) if wanted(i)]
        frames = [load_image(p) for p in (chosen if n_frames is None else chosen[:n_frames])]
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        frames = []
        with contextlib.closing(_iter_video(source)) as it:
            for i, frame in enumerate(it):
                total = i + 1
                if end is not None and i >= end:
                    break
                if wanted(i):
                    frames.append(frame)
                    if n_frames is not None and len(frames) >= n_frames:
                        break
    else:
        raise InputError(
            f"source {source} is neither a folder of frames nor a video file ({', '.join(sorted(VIDEO_SUFFIXES))})"
        )
    if total == 0:
        raise InputError(f"source {source} has no frames")
    if not frames or (n_frames is not None and len(frames) < n_frames):
        picked = f" ({selection.describe()}: {len(frames)})" if selection.describe() else ""
        need = f", {n_frames} are needed (see --num-frames)" if n_frames is not None else ""
        raise InputError(f"source {source} has {total} frames{picked}{need}")
    return frames


RESIZE_MODES = ("stretch", "crop", "pad")


def fit(image: "Image.Image", size: tuple[int, int], mode: str = "stretch") -> "Image.Image":
    """Bring ``image`` to ``size``: ``stretch`` (LANCZOS, no crop: the reference's), ``crop``
    (scale to cover, centre crop) or ``pad`` (scale to fit, centred on black)."""
    from PIL import Image

    if mode == "stretch" or image.size == tuple(size):
        return resize(image, size)
    w, h = size
    if mode not in RESIZE_MODES:
        raise InputError(f"--resize-mode must be one of {', '.join(RESIZE_MODES)}, got {mode!r}")
    scale = (max if mode == "crop" else min)(w / image.width, h / image.height)
    scaled = resize(image, (max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    if mode == "crop":
        left, top = (scaled.width - w) // 2, (scaled.height - h) // 2
        return scaled.crop((left, top, left + w, top + h))
    canvas = Image.new("RGB", (w, h))
    canvas.paste(scaled, ((w - scaled.width) // 2, (h - scaled.height) // 2))
    return canvas


def unfit(image: "Image.Image", source_size: tuple[int, int], out_size: tuple[int, int], mode: str) -> "Image.Image":
    """Map a frame at working size back to ``out_size``: for ``pad`` the padding is cut away
    first; ``stretch`` and ``crop`` are resized (a crop's lost borders stay lost)."""
    if mode == "pad" and image.size != tuple(source_size):
        w, h = image.size
        scale = min(w / source_size[0], h / source_size[1])
        cw, ch = max(1, round(source_size[0] * scale)), max(1, round(source_size[1] * scale))
        left, top = (w - cw) // 2, (h - ch) // 2
        image = image.crop((left, top, left + cw, top + ch))
    return resize(image, out_size)


def has_audio(path: str | os.PathLike) -> bool:
    import subprocess

    import imageio_ffmpeg

    if Path(path).is_dir():
        return False
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                          text=True)
    return "Audio:" in proc.stderr


def add_audio(video_path: str | os.PathLike, source: str | os.PathLike, start_seconds: float = 0.0) -> bool:
    """Mux the audio of ``source`` (from ``start_seconds``) into ``video_path`` in place,
    atomically; returns whether there was audio to copy."""
    import subprocess

    import imageio_ffmpeg

    if not has_audio(source):
        return False
    with atomic_path(video_path, force=True) as tmp:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video_path),
               "-ss", f"{start_seconds:.3f}", "-i", str(source), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
               "-c:a", "aac", "-shortest", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise InputError(f"cannot copy the audio of {source}: {proc.stderr.strip().splitlines()[-1:]}")
    return True


def resize(image: "Image.Image", size: tuple[int, int]) -> "Image.Image":
    """Resize to ``size`` = (width, height) with LANCZOS, no crop (as the reference does)."""
    from PIL import Image

    return image if image.size == tuple(size) else image.resize(tuple(size), resample=Image.Resampling.LANCZOS)


def image_format(path: str | os.PathLike) -> str:
    """PIL format name for an output image path (png, jpg, webp, bmp)."""
    suffix = Path(path).suffix.lower()
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}
    if suffix not in formats:
        raise InputError(f"output image {path} must end in one of {', '.join(formats)}")
    return formats[suffix]


def check_writable(path: str | os.PathLike, force: bool) -> Path:
    """Refuse an existing output unless ``force``; the parent folder must exist."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.exists():
        raise InputError(f"output folder does not exist: {path.parent}")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically,
    on failure it is deleted, so nothing half-written is ever left behind."""
    path = check_writable(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
    try:
        yield tmp_path
        if path.exists() and not force:  # appeared meanwhile
            raise OutputExistsError(f"{path} exists; pass --force to overwrite it")
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def write_video(frames: Sequence["Image.Image"], path: str | os.PathLike, fps: int, force: bool = False) -> Path:
    """Write RGB frames as an H.264 mp4 (yuv420p) atomically."""
    import imageio_ffmpeg
    import numpy as np

    if not frames:
        raise InputError("no frames to write")
    width, height = frames[0].size
    with atomic_path(path, force) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (width, height), fps=fps, macro_block_size=2, quality=8, ffmpeg_log_level="error"
        )
        writer.send(None)
        try:
            for frame in frames:
                writer.send(np.ascontiguousarray(np.asarray(frame.convert("RGB"), dtype=np.uint8)))
        finally:
            writer.close()
    return Path(path)


def write_frames_dir(frames: Sequence["Image.Image"], folder: str | os.PathLike, force: bool = False) -> Path:
    """Write frames as ``00000.png, 00001.png, ...`` into ``folder`` (created; an existing
    non-empty folder needs ``force``). Frames are written to a temporary sibling folder
    first and moved into place at the end."""
    import shutil

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not force:
        raise OutputExistsError(f"{folder} exists and is not empty; pass --force to overwrite it")
    if not folder.parent.exists():
        raise InputError(f"output folder does not exist: {folder.parent}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for i, frame in enumerate(frames):
            frame.save(tmp / f"{i:05d}.png")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
