"""A tiny deterministic :class:`~anyv2v_editor_instantid.faces.FaceAnalyzer` for tests
and offline smoke runs (select it with ``--face-analyzer anyv2v_editor_instantid.testing:MarkerFaceAnalyzer``).

It is not a face detector: a "face" is a blob of the marker colour (magenta) such as
:func:`draw_marker_face` paints. Each 4-connected blob of at least 12 marker pixels is a
face; its box is the blob's box; the 5 keypoints sit at fixed places in the box (eyes,
nose, mouth corners); the 512-d "identity embedding" is a fixed random projection of the
box's 4x4 colour thumbnail, scaled to the norm of a typical ArcFace embedding. So two
differently painted faces get different embeddings, and the same image always the same.
Everything after detection (keypoint drawing, IdentityNet, adapter, SDXL) is the real path.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .faces import Face

MARKER = (255, 0, 255)
#: Keypoints as fractions of the box: left eye, right eye, nose, left/right mouth corner.
KPS_IN_BOX = np.array([[0.32, 0.38], [0.68, 0.38], [0.5, 0.56], [0.36, 0.76], [0.64, 0.76]], dtype=np.float32)
EMBEDDING_NORM = 22.0  # typical |ArcFace embedding| of antelopev2 (un-normalised)


def draw_marker_face(image: Image.Image, box: tuple[int, int, int, int], skin: tuple[int, int, int] = (200, 150, 120)) -> Image.Image:
    """A copy of ``image`` with a marker-coloured face in ``box`` whose centre is ``skin``."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    x0, y0, x1, y1 = box
    draw.ellipse(box, fill=MARKER)
    w, h = x1 - x0, y1 - y0
    draw.rectangle([x0 + w * 0.35, y0 + h * 0.35, x1 - w * 0.35, y1 - h * 0.35], fill=skin)
    return out


def _components(mask: np.ndarray, min_size: int) -> list[tuple[int, int, int, int]]:
    seen = np.zeros_like(mask, dtype=bool)
    boxes = []
    h, w = mask.shape
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        queue, seen[y, x] = deque([(y, x)]), True
        ys, xs = [], []
        while queue:
            cy, cx = queue.popleft()
            ys.append(cy)
            xs.append(cx)
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        if len(ys) >= min_size:
            boxes.append((min(xs), min(ys), max(xs) + 1, max(ys) + 1))
    return boxes


class MarkerFaceAnalyzer:
    """Finds marker-coloured blobs (see the module docstring). ``folder``/``device`` are
    accepted for the analyzer factory signature and ignored."""

    def __init__(self, folder: str | Path | None = None, device: str = "cpu", tolerance: int = 60) -> None:
        self.tolerance = tolerance
        self._projection = np.random.default_rng(1234).standard_normal((48, 512)).astype(np.float32)

    def detect(self, image: Image.Image) -> list[Face]:
        rgb = np.asarray(image.convert("RGB")).astype(np.int16)
        mask = (np.abs(rgb - np.array(MARKER, dtype=np.int16)) <= self.tolerance).all(axis=-1)
        faces = []
        for x0, y0, x1, y1 in _components(mask, min_size=12):
            kps = np.array([x0, y0], dtype=np.float32) + KPS_IN_BOX * np.array([x1 - x0, y1 - y0], dtype=np.float32)
            thumb = np.asarray(image.convert("RGB").crop((x0, y0, x1, y1)).resize((4, 4), Image.BILINEAR), dtype=np.float32)
            feature = thumb.reshape(-1) / 127.5 - 1.0
            embedding = feature @ self._projection
            embedding *= EMBEDDING_NORM / max(float(np.linalg.norm(embedding)), 1e-6)
            faces.append(Face((float(x0), float(y0), float(x1), float(y1)), kps, embedding.astype(np.float32)))
        return faces

#: The ``--face-analyzer`` value that selects :class:`MarkerFaceAnalyzer`.
ANALYZER_REF = "anyv2v_editor_instantid.testing:MarkerFaceAnalyzer"
#: Two "skin" colours, i.e. two identities of the marker analyzer.
SKIN_A, SKIN_B = (210, 160, 120), (60, 110, 200)
