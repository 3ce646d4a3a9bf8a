"""AnyDoor's inference preprocessing (numpy + OpenCV), following ``run_inference.py`` and
``datasets/data_utils.py`` of the official code step by step.

Boxes are ``(y1, y2, x1, x2)`` as there. Facts of the reference kept on purpose:

* a mask's box ends at the *last* masked row/column and is then used as an exclusive
  slice end (the last row/column is cut); a mask with fewer than 10 pixels means the
  whole image;
* the reference crop is padded by ``randint(12, 13) / 10`` (always 1.2), the target box
  grown by ``randint(11, 12) / 10`` (always 1.1) and the context crop by
  ``randint(15, 30) / 10`` (1.5–2.9): the only real random draw. All three come from a
  numpy ``Generator`` here (the reference uses numpy's global RNG);
* the hint's 4th channel marks the pasted box *and* the square padding as 1 (the
  reference pads that mask with -1 and casts to uint8, i.e. 255);
* the decoded 512² prediction loses its first row before it is resized back, and a 5-pixel
  margin of the crop is left untouched when pasting.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from anyv2v_core.errors import InputError

Box = tuple[int, int, int, int]  # y1, y2, x1, x2
HF_SIZE = 256  # the high-frequency map is computed at this size
PASTE_MARGIN = 5


def mask_box(mask: np.ndarray) -> Box:
    """The reference's ``get_bbox_from_mask``: inclusive last index; tiny masks → whole image."""
    h, w = mask.shape[:2]
    if mask.sum() < 10:
        return (0, h, 0, w)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1]))


def expand_box(box: Box, shape: tuple[int, ...], ratio: float) -> Box:
    """Grow a box around its centre by ``ratio`` (sizes counted inclusively), clipped."""
    y1, y2, x1, x2 = box
    h, w = shape[0], shape[1]
    yc, xc = 0.5 * (y1 + y2), 0.5 * (x1 + x2)
    bh, bw = ratio * (y2 - y1 + 1), ratio * (x2 - x1 + 1)
    return (max(0, int(yc - 0.5 * bh)), min(h, int(yc + 0.5 * bh)), max(0, int(xc - 0.5 * bw)), min(w, int(xc + 0.5 * bw)))


def square_box(box: Box, shape: tuple[int, ...]) -> Box:
    """Make the box square around its centre using the longer side (then clip)."""
    y1, y2, x1, x2 = box
    h, w = shape[0], shape[1]
    cy, cx = (y1 + y2) // 2, (x1 + x2) // 2
    if y2 - y1 >= x2 - x1:
        half = (y2 - y1) // 2
        x1, x2 = cx - half, cx + half
    else:
        half = (x2 - x1) // 2
        y1, y2 = cy - half, cy + half
    return (max(0, y1), min(h, y2), max(0, x1), min(w, x2))


def pad_square(image: np.ndarray, value: float) -> np.ndarray:
    """Pad the shorter side on both sides (floor half first) to a square."""
    h, w = image.shape[:2]
    if h == w:
        return image
    first = abs(h - w) // 2
    second = abs(h - w) - first
    pad = [(0, 0), (first, second)] if h > w else [(first, second), (0, 0)]
    pad += [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="constant", constant_values=value)


def pad_around(image: np.ndarray, ratio: float, value: float) -> np.ndarray:
    """Pad to ``int(size * ratio)`` on each axis, centred (``expand_image_mask``)."""
    h, w = image.shape[:2]
    dh, dw = int(h * ratio) - h, int(w * ratio) - w
    pad = [(dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="constant", constant_values=value)


def high_frequency_map(image: np.ndarray, mask: np.ndarray, threshold: int = 50) -> np.ndarray:
    """The collage's detail map: Sobel magnitude (|x|, |y| averaged, max over channels) on
    the eroded subject mask at 256², thresholded, used to weight the image; back to size."""
    h, w = image.shape[:2]
    img = cv2.resize(image, (HF_SIZE, HF_SIZE))
    m = (cv2.resize(mask, (HF_SIZE, HF_SIZE)) > 0.5).astype(np.uint8)
    m = cv2.erode(m, np.ones((5, 5), np.uint8), iterations=2)
    gx = cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_64F, 1, 0, ksize=3))
    gy = cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_64F, 0, 1, ksize=3))
    edges = np.max(cv2.addWeighted(gx, 0.5, gy, 0.5, 0), -1) * m
    edges[edges < threshold] = 0
    edges = np.repeat(edges[:, :, None], 3, axis=-1)
    out = (edges.astype(np.float32) / 255 * img.astype(np.float32)).astype(np.uint8)
    return cv2.resize(out, (w, h))


@dataclass
class Prepared:
    """What one AnyDoor call needs and what pasting back needs."""

    reference: np.ndarray  # (S, S, 3) float32 in [0, 1]: masked, boxed, padded reference
    hint: np.ndarray  # (R, R, 4) float32: collage in [-1, 1] + box/padding mask in {0, 1}
    crop_box: Box  # the context crop in the target image
    sizes: tuple[int, int, int, int]  # crop H, W before and after squaring


def prepare(
    reference: np.ndarray,
    reference_mask: np.ndarray,
    target: np.ndarray,
    target_mask: np.ndarray,
    rng: np.random.Generator,
    resolution: int = 512,
    reference_size: int = 224,
) -> Prepared:
    """``process_pairs``: uint8 RGB images ``(H, W, 3)`` and 0/1 masks ``(H, W)``."""
    # reference: white outside the subject, cut to its box, padded, squared, resized
    ref_mask = reference_mask.astype(np.uint8)
    y1, y2, x1, x2 = mask_box(ref_mask)
    m3 = np.repeat(ref_mask[:, :, None], 3, axis=-1)
    masked = reference * m3 + np.full_like(reference, 255) * (1 - m3)
    masked, ref_mask = masked[y1:y2, x1:x2], ref_mask[y1:y2, x1:x2]
    if masked.size == 0:
        raise InputError("the reference mask covers too little of the reference (its box is empty)")
    ratio = rng.integers(12, 13) / 10
    masked, ref_mask = pad_around(masked, ratio, 255), pad_around(ref_mask, ratio, 0)
    size = (reference_size, reference_size)
    masked = cv2.resize(pad_square(masked, 255), size).astype(np.uint8)
    ref_mask3 = np.repeat(ref_mask[:, :, None] * 255, 3, axis=-1).astype(np.uint8)
    ref_mask = cv2.resize(pad_square(ref_mask3, 0), size).astype(np.uint8)[:, :, 0]
    detail = high_frequency_map(masked, ref_mask / 255)

    # target: box grown by 1.1, context crop grown by 1.5-2.9 and squared
    box = expand_box(mask_box(target_mask.astype(np.uint8)), target_mask.shape, rng.integers(11, 12) / 10)
    crop = square_box(expand_box(box, target.shape, rng.integers(15, 30) / 10), target.shape)
    cy1, cy2, cx1, cx2 = crop
    cropped = target[cy1:cy2, cx1:cx2]
    y1, y2, x1, x2 = box[0] - cy1, box[1] - cy1, box[2] - cx1, box[3] - cx1
    if y2 <= y1 or x2 <= x1:
        raise InputError("the target region is empty after cropping; give a larger --target-mask/--target-box")

    collage = cropped.copy()
    collage[y1:y2, x1:x2] = cv2.resize(detail, (x2 - x1, y2 - y1))
    box_mask = np.zeros(cropped.shape[:2], np.uint8)
    box_mask[y1:y2, x1:x2] = 1
    h1, w1 = collage.shape[:2]
    collage = pad_square(collage, 0)
    box_mask = pad_square(box_mask, 255)  # the reference's -1 cast to uint8
    h2, w2 = collage.shape[:2]
    side = (resolution, resolution)
    collage = cv2.resize(collage, side).astype(np.float32) / 127.5 - 1.0
    box_mask = (cv2.resize(box_mask, side).astype(np.float32) > 0.5).astype(np.float32)
    hint = np.concatenate([collage, box_mask[:, :, None]], axis=-1)
    return Prepared(masked.astype(np.float32) / 255, hint, crop, (h1, w1, h2, w2))


def paste_back(prediction: np.ndarray, target: np.ndarray, prepared: Prepared) -> np.ndarray:
    """``crop_back``: the decoded square ``(R, R, 3)`` in [0, 255] (float) resized to the
    squared crop, un-padded and pasted into a copy of ``target`` inside a 5-pixel margin."""
    h1, w1, h2, w2 = prepared.sizes
    y1, y2, x1, x2 = prepared.crop_box
    pred = np.clip(prediction, 0, 255)[1:]  # the reference drops the first row
    pred = cv2.resize(pred.astype(np.float32), (w2, h2))
    if w1 < w2:
        first = (w2 - w1) // 2
        pred = pred[:, first : first + w1]
    elif h1 < h2:
        first = (h2 - h1) // 2
        pred = pred[first : first + h1]
    m = PASTE_MARGIN
    out = target.copy()
    if y2 - y1 > 2 * m and x2 - x1 > 2 * m:
        out[y1 + m : y2 - m, x1 + m : x2 - m] = pred[m:-m, m:-m].astype(np.uint8)
    return out
