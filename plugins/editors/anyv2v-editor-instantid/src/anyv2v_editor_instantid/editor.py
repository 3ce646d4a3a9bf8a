"""The ``instantid`` editor: replace the identity of the person in the first frame.

The target identity is the ArcFace embedding of the largest face in ``--face-image``; the
pose is the five keypoints of the largest face in the first frame, drawn as IdentityNet's
control image, so the edited face sits where the source face was. The image stage works
at infer.py's working size (short side 1024, long side 1280, multiples of 64) and the
result is resized back to the frame's size; ``--keep-background`` pastes only the face
region back with a feathered mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image, ImageDraw, ImageFilter

from anyv2v_core.errors import InputError
from anyv2v_core.protocols import EditRequest
from anyv2v_core.video import load_image

from .faces import FaceAnalyzer, draw_keypoints, largest_face, load_analyzer, resize_like_infer, scale_face
from .options import NEGATIVE_PROMPT, OPTIONS
from .pipeline import GenerationSettings, InstantIDGenerator

#: The pasted region: the face box grown by this fraction of its size on each side ...
PASTE_MARGIN = 0.25
#: ... with an elliptical mask blurred by this fraction of the box's longer side.
PASTE_FEATHER = 0.08


def _defaults() -> dict[str, Any]:
    return {o.key: o.default for o in OPTIONS}


def paste_face(frame: Image.Image, edited: Image.Image, bbox: tuple[float, float, float, float]) -> Image.Image:
    """``edited`` inside an ellipse around ``bbox`` (grown by :data:`PASTE_MARGIN`, edges
    feathered), ``frame`` elsewhere. Both images have the same size."""
    x0, y0, x1, y1 = bbox
    mx, my = (x1 - x0) * PASTE_MARGIN, (y1 - y0) * PASTE_MARGIN
    mask = Image.new("L", frame.size, 0)
    ImageDraw.Draw(mask).ellipse([x0 - mx, y0 - my, x1 + mx, y1 + my], fill=255)
    radius = max(1.0, PASTE_FEATHER * max(x1 - x0, y1 - y0))
    return Image.composite(edited, frame.convert("RGB"), mask.filter(ImageFilter.GaussianBlur(radius)))


class InstantIDEditor:
    """InstantID on SDXL. Weights load on first use (per ``--sdxl-model``/``--instantid-model``)
    and are kept for further edits; ``model`` (library use) overrides ``--instantid-model``."""

    name: ClassVar[str] = "instantid"
    options: ClassVar[tuple] = OPTIONS

    def __init__(self, device: str = "cpu", dtype: torch.dtype = torch.float32, model: str | None = None) -> None:
        self.device, self.dtype, self.model = str(device), dtype, model
        self._generators: dict[tuple[str, str], InstantIDGenerator] = {}
        self._analyzers: dict[tuple[str, str | None], FaceAnalyzer] = {}

    def generator(self, sdxl: str, instantid: str) -> InstantIDGenerator:
        key = (sdxl, instantid)
        if key not in self._generators:
            self._generators.clear()  # keep one set of weights in memory
            self._generators[key] = InstantIDGenerator(sdxl, instantid, device=self.device, dtype=self.dtype)
        return self._generators[key]

    def analyzer(self, spec: str, folder: str | None) -> FaceAnalyzer:
        key = (spec, folder)
        if key not in self._analyzers:
            self._analyzers[key] = load_analyzer(spec, folder, device=self.device)
        return self._analyzers[key]

    def edit(self, first_frame: Image.Image, request: EditRequest) -> Image.Image:
        opts = {**_defaults(), **{k: v for k, v in request.options.items() if v is not None}}
        if opts.get("face_image") is None:
            raise InputError("the instantid editor needs --face-image PATH (a photo of the new person)")
        face_path = Path(opts["face_image"])
        if not face_path.is_file():
            raise InputError(f"--face-image: file not found: {face_path}")
        min_side, max_side = int(opts["min_side"]), int(opts["max_side"])
        if min_side < 64 or max_side < 64:
            raise InputError("--min-side and --max-side must be at least 64")

        analyzer = self.analyzer(opts["face_analyzer"], opts["antelopev2_dir"])
        face_image = resize_like_infer(load_image(face_path), min_side, max_side)
        identity = largest_face(analyzer.detect(face_image), f"the face image {face_path.name}")
        frame = first_frame.convert("RGB")
        work = resize_like_infer(frame, min_side, max_side)
        pose = largest_face(analyzer.detect(work), "the first frame")
        control = draw_keypoints(work.size, pose.kps)

        generator = self.generator(opts["sdxl_model"], self.model or opts["instantid_model"])
        settings = GenerationSettings(steps=int(opts["instantid_steps"]), guidance_scale=float(opts["instantid_guidance"]),
                                      identitynet_scale=float(opts["identitynet_scale"]),
                                      adapter_scale=float(opts["adapter_scale"]), seed=request.seed)
        prompt = opts["face_prompt"] if opts["face_prompt"] is not None else request.prompt
        negative = opts["face_negative_prompt"] if opts["face_negative_prompt"] is not None else NEGATIVE_PROMPT
        edited = generator.generate(prompt, negative, identity.embedding, control, settings)
        edited = edited.resize(frame.size, Image.LANCZOS)
        if opts["keep_background"]:
            box = scale_face(pose, frame.width / work.width, frame.height / work.height).bbox
            edited = paste_face(frame, edited, box)
        return edited
