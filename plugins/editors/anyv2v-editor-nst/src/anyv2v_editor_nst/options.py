"""The options the ``nst`` editor declares (no torch import: read at plugin discovery)."""

from __future__ import annotations

from anyv2v_core.protocols import EditorOption

DEFAULT_ITERATIONS = 300
DEFAULT_SIZE = 512

OPTIONS: tuple[EditorOption, ...] = (
    EditorOption("style-image", "path", required=True, help="The image whose style is transferred."),
    EditorOption("style-weight", "float", 1e6, help="Weight of the style (Gram matrix) loss."),
    EditorOption("content-weight", "float", 1.0, help="Weight of the content (conv4_2) loss."),
    EditorOption("iterations", "int", DEFAULT_ITERATIONS, help="Optimisation steps."),
    EditorOption("editor-size", "int", DEFAULT_SIZE,
                 help="Working size: the longer side, in pixels, of the optimised image (not `edit --size`)."),
    EditorOption("optimizer", "choice", "lbfgs", choices=("lbfgs", "adam"), help="The optimiser."),
    EditorOption("learning-rate", "float", None, help="Step size (default: 1 for lbfgs, 0.02 for adam)."),
    EditorOption("pooling", "choice", "avg", choices=("avg", "max"), help="avg (Gatys et al.) or max (VGG19 as trained)."),
    EditorOption("init", "choice", "content", choices=("content", "noise"),
                 help="content (start from the frame) or noise (seeded by --seed)."),
)
