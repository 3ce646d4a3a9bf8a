"""The options the ``instantid`` editor declares (light: no torch import)."""

from __future__ import annotations

from anyv2v_core.protocols import EditorOption

#: The negative prompt of the InstantID authors' ``infer.py``.
NEGATIVE_PROMPT = (
    "(lowres, low quality, worst quality:1.2), (text:1.2), watermark, painting, drawing, illustration, glitch, "
    "deformed, mutated, cross-eyed, ugly, disfigured (lowres, low quality, worst quality:1.2), (text:1.2), watermark, "
    "painting, drawing, illustration, glitch,deformed, mutated, cross-eyed, ugly, disfigured"
)

OPTIONS: tuple[EditorOption, ...] = (
    EditorOption("face-image", "path", required=True, help="Photo of the person whose identity is put into the first frame."),
    EditorOption("face-prompt", "str", None, help="Prompt of the image stage (default: the video --prompt)."),
    EditorOption("face-negative-prompt", "str", None, help="Negative prompt of the image stage (default: the one of InstantID's infer.py)."),
    EditorOption("instantid-steps", "int", 30, help="Sampling steps of the image stage."),
    EditorOption("instantid-guidance", "float", 5.0, help="Classifier-free guidance scale of the image stage."),
    EditorOption("identitynet-scale", "float", 0.8, help="IdentityNet (keypoint ControlNet) conditioning scale."),
    EditorOption("adapter-scale", "float", 0.8, help="Weight of the face tokens in the decoupled cross-attention."),
    EditorOption("keep-background", "bool", False, help="Paste only the edited face region back into the frame (feathered)."),
    EditorOption("min-side", "int", 1024, help="Working size: short side scaled to this, as infer.py's resize_img."),
    EditorOption("max-side", "int", 1280, help="Working size: then long side scaled to this, rounded down to 64."),
    EditorOption("sdxl-model", "str", "stabilityai/stable-diffusion-xl-base-1.0",
                 help="SDXL base weights: a local diffusers folder or a hub id."),
    EditorOption("instantid-model", "str", "InstantX/InstantID",
                 help="InstantID weights (ControlNetModel/, ip-adapter.bin or .safetensors): folder or hub id."),
    EditorOption("face-analyzer", "str", "antelopev2",
                 help="Face detector/embedder: 'antelopev2' (insightface) or a 'module:Class' implementing FaceAnalyzer."),
    EditorOption("antelopev2-dir", "str", "~/.insightface/models/antelopev2",
                 help="Folder holding the antelopev2 *.onnx models."),
)
