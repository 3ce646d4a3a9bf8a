"""The options the ``anydoor`` editor declares (no heavy imports: read at plugin discovery)."""

from anyv2v_core.protocols import EditorOption

WEIGHTS_ENV = "ANYV2V_ANYDOOR_MODEL"

OPTIONS = (
    EditorOption("reference", "path", required=True, help="Image of the subject to insert (RGB, or RGBA whose alpha is the mask)."),
    EditorOption("reference-mask", "path", help="Binary mask of the subject in --reference (white = subject; default: its alpha)."),
    EditorOption("target-mask", "path", help="Binary mask of the region of the first frame to replace (white = region)."),
    EditorOption("target-box", "str", help="The region to replace as a box x0,y0,x1,y1 in first-frame pixels (instead of --target-mask)."),
    EditorOption("anydoor-model", "str", help=f"AnyDoor weights (.safetensors from `anyv2v anydoor-convert`; default ${WEIGHTS_ENV})."),
    EditorOption("ddim-steps", "int", default=50, help="DDIM steps (official: 50, eta 0)."),
    EditorOption("guidance", "float", default=5.0, help="Classifier-free guidance scale on the ID tokens (official: 5)."),
    EditorOption("control-strength", "float", default=1.0, help="Scale of the detail extractor's residuals (official: 1)."),
)
