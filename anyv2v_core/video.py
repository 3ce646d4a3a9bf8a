"""Reading and writing clips: video files through imageio-ffmpeg, folders of frames,
single images; LANCZOS resizing; atomic writes that never overwrite without ``force``."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from .errors import InputError, OutputExistsError, WriteError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif", ".m4v"}
#: Containers the H.264 writer can produce (webm and gif need other codecs).
WRITABLE_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v", ".avi")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
#: Frames the container may promise beyond those decoded before a read counts as truncated.
TRUNCATION_SLACK = 1

log = logging.getLogger(__name__)


def ffmpeg_file(path: str | os.PathLike) -> str:
    """``path`` as ffmpeg must be given a plain file: absolute, so that a relative name such
    as ``2024-01-01T12:30.mp4`` is not read as the protocol ``2024-01-01T12``."""
    return os.path.abspath(os.fspath(path))


@dataclass(frozen=True)
class VideoCheck:
    """What a decode of a video file (``ffmpeg -f null``) found."""

    readable: bool
    #: Frames decoded (at most the ``decode_frames`` asked for).
    decoded: int
    #: Frames the container announces (duration x frame rate), ``None`` if it does not say.
    promised: int | None
    size: tuple[int, int] | None
    #: ffmpeg's error lines (decoding errors, corrupt frames, a premature end), in order.
    errors: tuple[str, ...]
    #: Video packets the whole file holds (demuxed, not decoded), when the decode was partial.
    packets: int | None = None

    @property
    def present(self) -> int:
        """Frames the file holds: packets if only part was decoded, else frames decoded."""
        return self.decoded if self.packets is None else self.packets


def _ffmpeg_null(path: str | os.PathLike, extra: list[str]) -> tuple[int, str]:
    import subprocess

    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "level+info", "-i",
           ffmpeg_file(path), "-map", "0:v:0", *extra, "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    return proc.returncode, proc.stderr


def _errors(text: str) -> tuple[str, ...]:
    return tuple(
        re.sub(r"^(\[[^\]]*@ 0x[0-9a-f]+\] )*\[(error|fatal|warning)\] ", "", line).strip()
        for line in text.splitlines()
        if "[error]" in line or "[fatal]" in line or ("[warning]" in line and "corrupt" in line)
    )


def _frame_count(text: str) -> int:
    frames = re.findall(r"frame=\s*(\d+)", text)
    return int(frames[-1]) if frames else 0


def check_video(path: str | os.PathLike, decode_frames: int | None = None) -> VideoCheck:
    """Decode ``path``'s first video stream (all of it, or its first ``decode_frames``
    frames, then also demux the whole stream to count its packets cheaply) and report
    what ffmpeg says."""
    status, text = _ffmpeg_null(path, [] if decode_frames is None else ["-frames:v", str(decode_frames)])
    head = text.split("Output #0", 1)[0]
    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", head)
    stream = re.search(r"Stream #0:\d+.*?Video:.*?(\d{2,5})x(\d{2,5}).*?(\d+(?:\.\d+)?) fps", head)
    promised = None
    if duration and stream:
        hours, minutes, seconds = duration.groups()
        promised = round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * float(stream.group(3)))
    errors, packets = _errors(text), None
    if decode_frames is not None and status == 0:
        copy_status, copy_text = _ffmpeg_null(path, ["-c", "copy"])
        packets = _frame_count(copy_text) if copy_status == 0 else None
        errors += tuple(e for e in _errors(copy_text) if e not in errors)
    return VideoCheck(
        readable=status == 0, decoded=_frame_count(text), promised=promised,
        size=(int(stream.group(1)), int(stream.group(2))) if stream else None, errors=errors, packets=packets,
    )


def warn_if_damaged(path: str | os.PathLike, decode_frames: int | None = None) -> VideoCheck:
    """Log a warning when ``path`` decodes with errors (in its first ``decode_frames``
    frames, or all) or holds fewer frames than its container promises (a truncated or
    damaged file); returns the check."""
    check = check_video(path, decode_frames)
    problems = []
    if check.promised is not None and check.present + TRUNCATION_SLACK < check.promised:
        problems.append(f"its container promises {check.promised} frames, only {check.present} are there")
    if check.errors:
        problems.append(f"ffmpeg reported {len(check.errors)} decoding error(s), the first: {check.errors[0]}")
    if problems:
        log.warning("source %s is truncated or damaged: %s; the frames read may be missing or show artefacts",
                    path, "; ".join(problems))
    return check


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
        gen = imageio_ffmpeg.read_frames(ffmpeg_file(path))
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
        gen = imageio_ffmpeg.read_frames(ffmpeg_file(source))
        meta = next(gen)
        gen.close()
    except (RuntimeError, OSError, StopIteration):
        return None
    return float(meta.get("fps") or 0) or None


def read_frames(
    source: str | os.PathLike, n_frames: int | None = None, selection: FrameRange | None = None,
    mixed_sizes: bool = False,
) -> list["Image.Image"]:
    """The first ``n_frames`` frames (all if ``None``) of a video file or frames folder,
    within ``selection``, as RGB images at their own size. Fewer frames than asked for is
    an :class:`InputError` that gives the numbers. A video file that decodes with errors or
    holds fewer frames than its container promises is read with a warning
    (:func:`warn_if_damaged`); a frames folder whose frames differ in size is refused
    unless ``mixed_sizes``."""
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
        chosen = chosen if n_frames is None else chosen[:n_frames]
        frames = [load_image(p) for p in chosen]
        odd = next((i for i, f in enumerate(frames) if f.size != frames[0].size), None)
        if odd is not None and not mixed_sizes:
            (w0, h0), (w1, h1) = frames[0].size, frames[odd].size
            raise InputError(
                f"frames folder {source} mixes frame sizes ({chosen[0].name} is {w0}x{h0}, {chosen[odd].name} is "
                f"{w1}x{h1}); bring them to one size, or pass --mixed-sizes to resize each frame on its own"
            )
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        frames = []
        stopped = False
        with contextlib.closing(_iter_video(source)) as it:
            for i, frame in enumerate(it):
                total = i + 1
                if end is not None and i >= end:
                    stopped = True
                    break
                if wanted(i):
                    frames.append(frame)
                    if n_frames is not None and len(frames) >= n_frames:
                        stopped = True
                        break
        warn_if_damaged(source, total if stopped else None)  # decode errors in the frames read; truncation
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
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", ffmpeg_file(path)],
                          capture_output=True, text=True, errors="replace")
    return "Audio:" in proc.stderr


def _mux_audio(video_path: Path, source: str | os.PathLike, start_seconds: float, dest: Path) -> None:
    """Write ``video_path``'s video with ``source``'s audio to ``dest``, checked."""
    import subprocess

    import imageio_ffmpeg

    expected = check_video(video_path)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-nostdin", "-loglevel", "error", "-i", ffmpeg_file(video_path),
           "-ss", f"{start_seconds:.3f}", "-i", ffmpeg_file(source), "-map", "0:v:0", "-map", "1:a:0",
           "-c:v", "copy", "-c:a", "aac", "-shortest", ffmpeg_file(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or [f"ffmpeg failed (exit status {proc.returncode})"])[-1]
        raise WriteError(f"cannot copy the audio of {source}: {last}; nothing was written")
    _verify_written(dest, dest, expected.decoded, expected.size)


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


def save_image(image: "Image.Image", path: str | os.PathLike, force: bool = False) -> Path:
    """Save ``image`` atomically in the format its suffix names; a failed write (full disk)
    is a :class:`WriteError` that leaves nothing behind."""
    fmt = image_format(path)
    with atomic_path(path, force) as tmp:
        try:
            image.save(tmp, format=fmt)
        except OSError as exc:
            raise WriteError(f"writing {path} failed: {exc.strerror or exc}; nothing was written") from None
    return Path(path)


def check_writable(path: str | os.PathLike, force: bool) -> Path:
    """Refuse an existing output unless ``force``; the parent folder must exist."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.exists():
        raise InputError(f"output folder does not exist: {path.parent}")
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """``safetensors.torch.save_file``, leaving the file with the permissions the user's umask
    gives (safetensors itself creates it 0600)."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, 0o666 & ~_umask())
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically,
    on failure it is deleted, so nothing half-written is ever left behind."""
    path = check_writable(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
    try:
        yield tmp_path
        if path.exists() and not force:  # appeared meanwhile
            raise OutputExistsError(f"{path} exists; pass --force to overwrite it")
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def check_video_output(path: str | os.PathLike, force: bool = False) -> Path:
    """:func:`check_writable`, and the suffix must be one the writer can produce."""
    if Path(path).suffix.lower() not in WRITABLE_VIDEO_SUFFIXES:
        raise InputError(f"cannot write video {path}: the output must end in {', '.join(WRITABLE_VIDEO_SUFFIXES)} "
                         "(H.264; webm and gif are not supported)")
    return check_writable(path, force)


def _h264_encoder() -> str:
    try:
        from imageio_ffmpeg._io import get_first_available_h264_encoder
    except ImportError:  # pragma: no cover - older imageio-ffmpeg
        return "libx264"
    return get_first_available_h264_encoder()


def _verify_written(tmp: Path, path: Path, n_frames: int, size: tuple[int, int] | None) -> None:
    """Raise :class:`WriteError` unless ``tmp`` decodes cleanly to ``n_frames`` frames of ``size``."""
    check = check_video(tmp)
    problem = None
    if not check.readable or check.errors:
        problem = f"it does not read back ({(check.errors or ('unreadable',))[-1]})"
    elif check.decoded != n_frames:
        problem = f"it reads back as {check.decoded} of {n_frames} frames"
    elif size is not None and check.size != tuple(size):
        problem = f"it reads back at {check.size}, not {size}"
    if problem:
        raise WriteError(f"writing {path} failed: {problem}; nothing was written")


def write_video(frames: Sequence["Image.Image"], path: str | os.PathLike, fps: int, force: bool = False,
                audio: "tuple[str | os.PathLike, float] | None" = None) -> Path:
    """Write RGB frames as H.264 (yuv420p, CRF 10) atomically: ffmpeg's exit status is
    checked and the file must decode to every frame before it is moved into place; any
    failure is a :class:`WriteError` that leaves nothing behind. The command line is the
    one ``imageio_ffmpeg.write_frames(quality=8, macro_block_size=2)`` runs, so the file
    is byte-identical to it. ``audio=(source, start_seconds)`` muxes the source's audio
    (if it has any) in before the file is moved into place."""
    import subprocess
    from fractions import Fraction

    import imageio_ffmpeg
    import numpy as np

    if not frames:
        raise InputError("no frames to write")
    path = check_video_output(path, force)
    width, height = frames[0].size
    out_w, out_h = width + width % 2, height + height % 2  # even sizes for yuv420p, as imageio pads them
    codec = _h264_encoder()
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{width}x{height}",
           "-pix_fmt", "rgb24", "-r", str(Fraction(fps).limit_denominator()), "-i", "-", "-an", "-vcodec", codec,
           "-pix_fmt", "yuv420p", *(["-crf", "10"] if codec == "libx264" else ["-qscale:v", "7"])]
    if (out_w, out_h) != (width, height):
        cmd += ["-vf", f"scale={out_w}:{out_h}"]
    with atomic_path(path, force) as tmp, tempfile.TemporaryFile() as log_file:
        cmd += ["-v", "error", ffmpeg_file(tmp)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log_file)
        try:
            for frame in frames:
                if frame.size != (width, height):
                    raise InputError(f"frames to write differ in size ({frame.size} vs {(width, height)})")
                proc.stdin.write(np.ascontiguousarray(np.asarray(frame.convert("RGB"), dtype=np.uint8)).tobytes())
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # ffmpeg stopped; its exit status and log say why
        except BaseException:
            proc.kill()
            raise
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            status = proc.wait()
        if status:
            log_file.seek(0)
            lines = log_file.read().decode(errors="replace").strip().splitlines()
            raise WriteError(f"writing {path} failed: {lines[-1] if lines else f'ffmpeg failed (exit status {status})'}; "
                             "nothing was written")
        _verify_written(tmp, path, len(frames), (out_w, out_h))
        if audio is not None and has_audio(audio[0]):
            muxed = tmp.with_name(f"{tmp.stem}.audio{tmp.suffix}")
            try:
                _mux_audio(tmp, audio[0], audio[1], muxed)
                os.replace(muxed, tmp)
            finally:
                muxed.unlink(missing_ok=True)
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
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; give the folder normal permissions
        try:
            for i, frame in enumerate(frames):
                frame.save(tmp / f"{i:05d}.png")
        except OSError as exc:
            raise WriteError(f"writing frames to {folder} failed: {exc.strerror or exc}; nothing was written") from None
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
