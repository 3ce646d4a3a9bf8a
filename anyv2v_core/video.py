"""Reading and writing clips: video files through imageio-ffmpeg, folders of frames,
single images; LANCZOS resizing; atomic writes that never overwrite without ``force``."""

from __future__ import annotations

import contextlib
import os
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


def read_frames(source: str | os.PathLike, n_frames: int | None = None) -> list["Image.Image"]:
    """The first ``n_frames`` frames (all if ``None``) of a video file or frames folder, as
    RGB images at their own size. Fewer frames than asked for is an :class:`InputError`."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"source not found: {source}")
    if source.is_dir():
        files = frame_files(source)
        if n_frames is not None:
            files = files[:n_frames]
        frames = [load_image(p) for p in files]
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        frames = []
        with contextlib.closing(_iter_video(source)) as it:
            for frame in it:
                frames.append(frame)
                if n_frames is not None and len(frames) >= n_frames:
                    break
    else:
        raise InputError(
            f"source {source} is neither a folder of frames nor a video file ({', '.join(sorted(VIDEO_SUFFIXES))})"
        )
    if not frames:
        raise InputError(f"source {source} has no frames")
    if n_frames is not None and len(frames) < n_frames:
        raise InputError(f"source {source} has {len(frames)} frames, {n_frames} are needed (see --num-frames)")
    return frames


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
