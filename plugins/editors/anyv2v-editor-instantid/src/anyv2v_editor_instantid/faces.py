"""Faces: the small :class:`FaceAnalyzer` protocol, the insightface ``antelopev2``
analyzer InstantID was trained with, choosing the face to use, and the IdentityNet
control image (the five keypoints drawn as coloured limbs and dots).

Only :class:`InsightFaceAnalyzer` needs insightface + onnxruntime; they are imported when
it is constructed, so everything else here works without them.
"""

from __future__ import annotations

import importlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image, ImageDraw

from anyv2v_core.errors import InputError, ModelNotFoundError, PluginError

log = logging.getLogger("anyv2v.instantid")

#: Where insightface keeps ``antelopev2`` by default (``FaceAnalysis(root="~/.insightface")``).
DEFAULT_ANTELOPEV2_DIR = "~/.insightface/models/antelopev2"

#: Keypoint colours (RGB) of the official ``draw_kps``: left eye, right eye, nose, left
#: and right mouth corner.
KPS_COLORS: tuple[tuple[int, int, int], ...] = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255))
#: Limbs: every keypoint joined to the nose, coloured as its first keypoint.
KPS_LIMBS: tuple[tuple[int, int], ...] = ((0, 2), (1, 2), (3, 2), (4, 2))


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the analysed image."""

    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1
    kps: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth, right mouth
    embedding: np.ndarray  # (512,) ArcFace identity embedding, NOT normalised
    score: float = 1.0

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@runtime_checkable
class FaceAnalyzer(Protocol):
    """Finds faces in an RGB image: boxes, 5 keypoints and a 512-d identity embedding."""

    def detect(self, image: Image.Image) -> list[Face]:
        ...


class InsightFaceAnalyzer:
    """insightface's ``FaceAnalysis`` with the ``antelopev2`` models (SCRFD-10G detector,
    glintr100 ArcFace recogniser), prepared as the InstantID authors' ``infer.py`` does:
    ``det_size=(640, 640)``, detection threshold 0.5."""

    MODEL_NAME = "antelopev2"

    def __init__(self, folder: str | Path | None = None, device: str = "cpu") -> None:
        folder = Path(folder or DEFAULT_ANTELOPEV2_DIR).expanduser()
        if not any(folder.glob("*.onnx")) and any((folder / self.MODEL_NAME).glob("*.onnx")):
            folder = folder / self.MODEL_NAME  # the release zip unpacks to antelopev2/antelopev2/
        if not any(folder.glob("*.onnx")):
            raise ModelNotFoundError(
                f"face analysis models antelopev2 not found in {folder} (expected its *.onnx files there); "
                "download antelopev2 for insightface and pass --antelopev2-dir DIR"
            )
        try:
            from insightface.app import FaceAnalysis
        except ImportError as exc:
            raise PluginError(
                f"the antelopev2 face analyzer needs insightface and onnxruntime ({exc}); "
                "pip install insightface onnxruntime (the plugin's 'faces' extra)"
            ) from None
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
        # FaceAnalysis looks in <root>/models/<name>: give it exactly that layout, so it
        # never tries to download anything.
        root, name = folder.parent.parent, folder.name
        if folder.parent.name != "models":
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="anyv2v-antelopev2-")
            (Path(self._tmp.name) / "models").mkdir()
            (Path(self._tmp.name) / "models" / name).symlink_to(folder.resolve(), target_is_directory=True)
            root = Path(self._tmp.name)
        self._app = FaceAnalysis(name=name, root=str(root), providers=providers,
                                 allowed_modules=["detection", "recognition"])
        self._app.prepare(ctx_id=0 if device.startswith("cuda") else -1, det_size=(640, 640))

    def detect(self, image: Image.Image) -> list[Face]:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        faces = []
        for f in self._app.get(bgr):
            faces.append(Face(tuple(float(v) for v in f["bbox"]), np.asarray(f["kps"], dtype=np.float32),
                              np.asarray(f["embedding"], dtype=np.float32), float(f.get("det_score", 1.0))))
        return faces


#: Built-in analyzers by name. Any other value of ``--face-analyzer`` is read as an
#: import reference ``module:attr`` to a class or factory taking ``(folder, device)``.
ANALYZERS: dict[str, Callable[..., FaceAnalyzer]] = {"antelopev2": InsightFaceAnalyzer}


def load_analyzer(spec: str, folder: str | None = None, device: str = "cpu") -> FaceAnalyzer:
    """The analyzer named ``spec`` (``antelopev2``) or imported from ``module:attr``."""
    factory = ANALYZERS.get(spec)
    if factory is None:
        module_name, sep, attr = spec.partition(":")
        if not sep or not module_name or not attr:
            raise InputError(f"--face-analyzer {spec!r}: use one of {', '.join(ANALYZERS)} or a 'module:Class' reference")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"--face-analyzer {spec!r} cannot be imported: {type(exc).__name__}: {exc}") from None
    analyzer = factory(folder=folder, device=device)
    if not isinstance(analyzer, FaceAnalyzer):
        raise InputError(f"--face-analyzer {spec!r} does not provide detect(image) -> list[Face]")
    return analyzer


def largest_face(faces: Sequence[Face], what: str) -> Face:
    """The face with the largest box (as ``infer.py`` picks it); an error naming ``what``
    when there is none; a log line when there were several."""
    if not faces:
        raise InputError(f"no face found in {what}")
    best = max(faces, key=lambda f: f.area)
    if len(faces) > 1:
        box = ", ".join(f"{v:.0f}" for v in best.bbox)
        log.warning("%d faces found in %s; using the largest (box %s)", len(faces), what, box)
    return best


def resize_like_infer(image: Image.Image, min_side: int = 1024, max_side: int = 1280, multiple: int = 64) -> Image.Image:
    """The working size of the InstantID authors' ``resize_img``: scale the short side to
    ``min_side``, then the long side to ``max_side``, and round both down to ``multiple``
    (two BILINEAR resizes, as there)."""
    w, h = image.size
    ratio = min_side / min(h, w)
    w, h = round(ratio * w), round(ratio * h)
    ratio = max_side / max(h, w)
    image = image.resize((round(ratio * w), round(ratio * h)), Image.BILINEAR)
    new_w = max(multiple, (round(ratio * w) // multiple) * multiple)
    new_h = max(multiple, (round(ratio * h) // multiple) * multiple)
    return image.resize((new_w, new_h), Image.BILINEAR)


def _ellipse_polygon(center: tuple[int, int], axes: tuple[int, int], angle: int) -> list[tuple[int, int]]:
    """The integer polygon of a rotated ellipse, one vertex per degree (as OpenCV's
    ``ellipse2Poly`` with ``delta=1`` computes it)."""
    a = math.radians(angle % 360)
    ca, sa = math.cos(a), math.sin(a)
    points: list[tuple[int, int]] = []
    for deg in range(0, 361):
        t = math.radians(deg)
        x, y = axes[0] * math.cos(t), axes[1] * math.sin(t)
        p = (int(np.rint(center[0] + x * ca - y * sa)), int(np.rint(center[1] + x * sa + y * ca)))
        if not points or p != points[-1]:
            points.append(p)
    return points


def draw_keypoints(size: tuple[int, int], kps: np.ndarray, stick_width: int = 4, radius: int = 10) -> Image.Image:
    """The IdentityNet control image: on black, each keypoint joined to the nose by an
    ellipse ``stick_width`` thick in the first keypoint's colour at 60 % intensity, then a
    filled dot of ``radius`` pixels per keypoint in its full colour."""
    w, h = size
    kps = np.asarray(kps, dtype=np.float64)
    limbs = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(limbs)
    for i, j in KPS_LIMBS:
        (x0, y0), (x1, y1) = kps[i], kps[j]
        length = math.hypot(x0 - x1, y0 - y1)
        angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
        center = (int((x0 + x1) / 2), int((y0 + y1) / 2))
        draw.polygon(_ellipse_polygon(center, (int(length / 2), stick_width), int(angle)), fill=KPS_COLORS[i])
    out = (np.asarray(limbs, dtype=np.float64) * 0.6).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for idx, (x, y) in enumerate(kps):
        disk = (xx - int(x)) ** 2 + (yy - int(y)) ** 2 <= radius * radius
        out[disk] = KPS_COLORS[idx]
    return Image.fromarray(out)


def scale_face(face: Face, sx: float, sy: float) -> Face:
    """The same face in an image scaled by ``(sx, sy)``."""
    x0, y0, x1, y1 = face.bbox
    kps = np.asarray(face.kps, dtype=np.float32) * np.array([sx, sy], dtype=np.float32)
    return Face((x0 * sx, y0 * sy, x1 * sx, y1 * sy), kps, face.embedding, face.score)
