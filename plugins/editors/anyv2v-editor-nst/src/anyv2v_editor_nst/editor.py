"""Neural style transfer (Gatys, Ecker, Bethge, "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016) as an anyv2v editor.

The image is optimised, starting from the content frame, so that its VGG19 ``conv4_2``
response matches the frame's (content loss: mean squared difference) and the Gram
matrices of its ``conv1_1 .. conv5_1`` responses match the style image's (style loss:
sum over the layers of the mean squared Gram difference, Gram = F Fᵀ / (C·H·W)).
Responses are taken after the ReLUs; pooling is average pooling as in the paper (or max).
The total is ``content_weight · L_content + style_weight · L_style``, minimised with
L-BFGS (default) or Adam over the RGB pixels in [0, 1], clamped after each step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from anyv2v_core.editor_options import validate_options
from anyv2v_core.errors import InputError
from anyv2v_core.protocols import EditorOption, EditRequest
from anyv2v_core.video import load_image

from .options import OPTIONS
from anyv2v_core.progress import stage_progress
from .vgg import CONTENT_LAYERS, STYLE_LAYERS, VGG19Features, load_vgg19_features

LEARNING_RATES = {"lbfgs": 1.0, "adam": 0.02}


def working_size(size: tuple[int, int], longer: int) -> tuple[int, int]:
    """``size`` scaled so that its longer side is ``longer`` (aspect kept, at least 1)."""
    w, h = size
    scale = longer / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def to_tensor(image: Image.Image) -> torch.Tensor:
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def to_image(tensor: torch.Tensor) -> Image.Image:
    arr = (tensor.detach()[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``F Fᵀ / (C·H·W)`` of ``(1, C, H, W)`` features."""
    _, c, h, w = features.shape
    flat = features.reshape(c, h * w)
    return flat @ flat.T / (c * h * w)


def style_transfer(
    vgg: VGG19Features,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    content_weight: float,
    style_weight: float,
    iterations: int,
    optimizer: str = "lbfgs",
    learning_rate: float | None = None,
    init: torch.Tensor | None = None,
    progress: Any = None,
) -> torch.Tensor:
    """Optimise an image (``(1, 3, H, W)`` in [0, 1], from ``init`` or ``content``)."""
    with torch.no_grad():
        target_content = {k: v.detach() for k, v in vgg(content, CONTENT_LAYERS).items()}
        target_gram = {k: gram(v).detach() for k, v in vgg(style, STYLE_LAYERS).items()}
    image = (content if init is None else init).detach().clone().requires_grad_(True)
    lr = LEARNING_RATES[optimizer] if learning_rate is None else learning_rate
    if optimizer == "lbfgs":
        opt: torch.optim.Optimizer = torch.optim.LBFGS([image], lr=lr, max_iter=1, history_size=50)
    else:
        opt = torch.optim.Adam([image], lr=lr)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        feats = vgg(image, CONTENT_LAYERS + STYLE_LAYERS)
        loss_c = sum(torch.mean((feats[k] - target_content[k]) ** 2) for k in CONTENT_LAYERS)
        loss_s = sum(torch.mean((gram(feats[k]) - target_gram[k]) ** 2) for k in STYLE_LAYERS)
        loss = content_weight * loss_c + style_weight * loss_s
        loss.backward()
        return loss

    for _ in range(iterations):
        opt.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)
        if progress is not None:
            progress(1)
    return image.detach()


class NSTEditor:
    """``anyv2v edit SOURCE --editor nst --style-image starry.jpg -p "..."``."""

    name: ClassVar[str] = "nst"
    options: ClassVar[tuple[EditorOption, ...]] = OPTIONS

    def __init__(self, device: str = "cpu", dtype: Any = None, model: str | None = None) -> None:
        self.device = torch.device(device)
        self.weights = model  # None: $ANYV2V_NST_WEIGHTS or the torch hub cache
        self._vgg: dict[str, VGG19Features] = {}

    def network(self, pooling: str) -> VGG19Features:
        if pooling not in self._vgg:
            self._vgg[pooling] = load_vgg19_features(self.weights, pooling=pooling).to(self.device)
        return self._vgg[pooling]

    def edit(self, first_frame: Image.Image, request: EditRequest) -> Image.Image:
        opts = validate_options(self.name, OPTIONS, dict(request.options))  # choices checked here
        if opts["iterations"] < 0 or opts["editor_size"] < 16:
            raise InputError("--iterations must be >= 0 and --editor-size >= 16")
        style_image = load_image(opts["style_image"])
        size = working_size(first_frame.size, opts["editor_size"])
        content = to_tensor(first_frame.resize(size, Image.LANCZOS)).to(self.device)
        style = to_tensor(style_image.resize(working_size(style_image.size, opts["editor_size"]), Image.LANCZOS)).to(self.device)
        init = None
        if opts["init"] == "noise":
            generator = torch.Generator().manual_seed(request.seed)
            init = torch.rand(content.shape, generator=generator).to(self.device)
        vgg = self.network(opts["pooling"])
        with stage_progress(request.progress, "style transfer", opts["iterations"]) as advance:
            result = style_transfer(
                vgg, content, style, content_weight=opts["content_weight"], style_weight=opts["style_weight"],
                iterations=opts["iterations"], optimizer=opts["optimizer"], learning_rate=opts["learning_rate"],
                init=init, progress=advance,
            )
        out = to_image(result)
        return out if out.size == first_frame.size else out.resize(first_frame.size, Image.LANCZOS)
