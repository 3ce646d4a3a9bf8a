"""The options the ``instructpix2pix`` editor declares (no torch import: read at plugin
discovery). Defaults are the ones the InstructPix2Pix authors recommend."""

from __future__ import annotations

from anyv2v_core.protocols import EditorOption

DEFAULT_MODEL = "timbrooks/instruct-pix2pix"

OPTIONS: tuple[EditorOption, ...] = (
    EditorOption("instruction", "str", required=True, help='The edit, e.g. "turn the car blue".'),
    EditorOption("editor-steps", "int", 100, help="Denoising steps of the editor (not `edit --steps`)."),
    EditorOption("guidance-scale", "float", 7.5, help="Text (instruction) guidance scale."),
    EditorOption("image-guidance-scale", "float", 1.5, help="Image guidance scale: higher stays closer to the frame."),
    EditorOption("editor-model", "str", DEFAULT_MODEL,
                 help="Weights: a hub id or local diffusers folder with the same architecture (e.g. MagicBrush)."),
)
