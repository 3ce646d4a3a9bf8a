"""Video-editing metrics beyond CLIP: temporal consistency, motion faithfulness, first-frame
fidelity (``anyv2v eval --metrics``, ``anyv2v batch --eval --metrics``).

Every metric is named after the paper or benchmark that defines it (docs/batch-and-eval.md
gives formulas, ranges and directions); every report names the model it used.

* ``clip`` — CLIP-Text, CLIP-Image (frame-to-frame CLIP consistency), source fidelity
  (:mod:`anyv2v_core.metrics`; AnyV2V paper §5.3).
* ``dino`` — **subject consistency** (VBench): DINOv2 CLS features, the first frame and the
  previous frame against every frame.
* ``warp`` — **warp error** (Lai et al., ECCV 2018): the *source's* optical flow (RAFT,
  torchvision) warps each edited frame onto the next; mean squared error over the pixels
  visible in both (forward-backward check).
* ``flicker`` — **temporal flickering** (VBench): ``(255 - MAE) / 255`` with MAE the mean
  absolute difference of consecutive 8-bit frames.
* ``first-frame`` — **first-frame fidelity**: SSIM (Wang et al. 2004) and PSNR between frame 0
  of the output and the edited first frame.

The pure functions take tensors or images and are independent of any model;
:class:`MetricSuite` loads the models once and scores clips.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import AnyV2VError, InputError, ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

    from .metrics import ClipScorer

#: The metric groups, in report order: name -> (result keys, what it needs besides the clip).
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "clip": (("clip_text", "clip_image", "source_fidelity"), "a CLIP model; source_fidelity needs the source"),
    "dino": (("dino_subject",), "a DINOv2 model"),
    "warp": (("warp_error",), "a RAFT model and the source clip"),
    "flicker": (("flicker",), "nothing"),
    "first-frame": (("first_frame_ssim", "first_frame_psnr"), "the edited first frame"),
}
DEFAULT_METRICS = ("clip", "flicker", "first-frame")
DEFAULT_DINO = "facebook/dinov2-base"
DINO_REQUIRED = ("config.json", "*.safetensors", "preprocessor_config.json")
#: torchvision's RAFT variants: name -> (builder, weights enum name).
RAFT_ARCHS = {"raft_large": ("raft_large", "Raft_Large_Weights"), "raft_small": ("raft_small", "Raft_Small_Weights")}
DEFAULT_FLOW = "raft_large"
#: PSNR of identical images (MSE 0) is reported as this many dB.
PSNR_CAP = 100.0
#: Shortest side RAFT sees (its correlation pyramid needs feature maps of at least 16 px at 1/8 scale).
RAFT_MIN_SIDE = 128


# -- metric names ---------------------------------------------------------------------------
def parse_metrics(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"clip,dino"`` (or a list; ``all``) -> the metric group names, in :data:`METRICS` order."""
    if value is None:
        return DEFAULT_METRICS
    names = [n.strip().lower().replace("_", "-") for part in ([value] if isinstance(value, str) else value)
             for n in str(part).split(",") if n.strip()]
    if "all" in names:
        return tuple(METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise InputError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(METRICS)}, all")
    return tuple(n for n in METRICS if n in names)


# -- pure functions ---------------------------------------------------------------------------
def _unit(x: "torch.Tensor") -> "torch.Tensor":
    x = x.double()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def subject_consistency(features: "torch.Tensor") -> float:
    """VBench subject consistency of per-frame features (N, D), N >= 2:
    ``1/(N-1) * sum_{t=2..N} (max(0, cos(d_1, d_t)) + max(0, cos(d_{t-1}, d_t))) / 2``."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise InputError(f"subject consistency needs at least 2 frames, got features of shape {tuple(features.shape)}")
    d = _unit(features)
    first = (d[:1] * d[1:]).sum(-1).clamp_min(0)
    previous = (d[:-1] * d[1:]).sum(-1).clamp_min(0)
    return float(((first + previous) / 2).mean())


def _as_uint8(frames: Sequence["Image.Image"]) -> Any:
    import numpy as np

    if len(frames) < 2:
        raise InputError(f"temporal metrics need at least 2 frames, got {len(frames)}")
    arrays = [np.asarray(f.convert("RGB"), dtype=np.uint8) for f in frames]
    if any(a.shape != arrays[0].shape for a in arrays):
        raise InputError("frames differ in size")
    return np.stack(arrays)


def flicker_score(frames: Sequence["Image.Image"]) -> float:
    """VBench temporal flickering: ``(255 - mean_t MAE(f_t, f_{t+1})) / 255`` on 8-bit RGB frames."""
    import numpy as np

    x = _as_uint8(frames).astype(np.float64)
    mae = np.abs(x[1:] - x[:-1]).mean(axis=(1, 2, 3))
    return float((255.0 - mae.mean()) / 255.0)


def _to_tensor(frames: Sequence["Image.Image"]) -> "torch.Tensor":
    """(N, 3, H, W) float64 in [0, 1]."""
    import torch

    return torch.from_numpy(_as_uint8(frames)).permute(0, 3, 1, 2).double() / 255.0


def backward_warp(image: "torch.Tensor", flow: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Sample ``image`` (B, C, H, W) at ``p + flow(p)`` (flow (B, 2, H, W) in pixels, x then y),
    bilinearly; returns the warped image and a (B, 1, H, W) mask of the points inside the image."""
    import torch
    import torch.nn.functional as F

    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing="ij")
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    inside = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).unsqueeze(1)
    grid = torch.stack((2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1), dim=-1)
    warped = F.grid_sample(image.to(flow.dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped, inside


def occlusion_mask(forward: "torch.Tensor", backward: "torch.Tensor") -> "torch.Tensor":
    """Pixels of frame t visible in frame t+1 (B, 1, H, W booleans): inside the image after the
    forward flow and passing the forward-backward check of Ruder et al. (2016):
    ``|w + w^| ^2 <= 0.01 (|w|^2 + |w^|^2) + 0.5``, ``w^`` the backward flow at ``p + w(p)``."""
    back_at, inside = backward_warp(backward, forward)
    total = ((forward + back_at) ** 2).sum(1, keepdim=True)
    bound = 0.01 * ((forward ** 2).sum(1, keepdim=True) + (back_at ** 2).sum(1, keepdim=True)) + 0.5
    return inside & (total <= bound)


def warp_error(frames: "torch.Tensor", forward: "torch.Tensor", masks: "torch.Tensor") -> float:
    """Warp error (Lai et al. 2018) of frames (N, C, H, W) in [0, 1] under the forward flows
    (N-1, 2, H, W) from frame t to t+1 and masks (N-1, 1, H, W):
    ``1/(N-1) * sum_t sum_p M_t(p) |f_t(p) - f_{t+1}(p + w_t(p))|^2 / sum_p M_t(p)``
    (squared L2 over the channels). A pair with no visible pixel is left out."""
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise InputError(f"warp error needs at least 2 frames, got shape {tuple(frames.shape)}")
    n = frames.shape[0]
    if forward.shape[0] != n - 1 or masks.shape[0] != n - 1 or forward.shape[-2:] != frames.shape[-2:]:
        raise InputError(f"warp error: {n} frames need {n - 1} flows of their size, got {tuple(forward.shape)}")
    frames = frames.double()
    warped, _ = backward_warp(frames[1:], forward.double())
    sq = ((frames[:-1] - warped) ** 2).sum(1, keepdim=True)
    m = masks.double()
    per_pair = [float((sq[i] * m[i]).sum() / m[i].sum()) for i in range(n - 1) if m[i].sum() > 0]
    if not per_pair:
        raise InputError("warp error: no pixel of the source is visible in two consecutive frames")
    return sum(per_pair) / len(per_pair)


def ssim(a: "Image.Image", b: "Image.Image") -> float:
    """SSIM (Wang et al. 2004) of two RGB images of the same size: 11x11 Gaussian window
    (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 1 on [0, 1] values; the mean over the windows
    inside the image and over the 3 channels."""
    import torch
    import torch.nn.functional as F

    if a.size != b.size:
        raise InputError(f"SSIM compares images of one size, got {a.size} and {b.size}")
    x, y = _to_tensor([a, b])
    x, y = x.unsqueeze(1), y.unsqueeze(1)  # channels as a batch: (3, 1, H, W)
    size = min(11, x.shape[-1], x.shape[-2])
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * 1.5 ** 2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :])[None, None]
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = F.conv2d(x * x, window) - mu_x ** 2
    var_y = F.conv2d(y * y, window) - mu_y ** 2
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return float(s.mean())


def psnr(a: "Image.Image", b: "Image.Image") -> float:
    """PSNR in dB of two RGB images on [0, 1] values: ``10 log10(1 / MSE)``; identical
    images give :data:`PSNR_CAP`."""
    if a.size != b.size:
        raise InputError(f"PSNR compares images of one size, got {a.size} and {b.size}")
    x, y = _to_tensor([a, b])
    mse = float(((x - y) ** 2).mean())
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(1.0 / mse))


def first_frame_fidelity(frames: Sequence["Image.Image"], edited_frame: "Image.Image") -> dict[str, float]:
    """SSIM and PSNR of frame 0 against the edited first frame (resized to the clip's size)."""
    from .video import resize

    first = frames[0].convert("RGB")
    target = edited_frame.convert("RGB")
    if target.size != first.size:
        target = resize(target, first.size)
    return {"first_frame_ssim": ssim(first, target), "first_frame_psnr": psnr(first, target)}


# -- DINOv2 -----------------------------------------------------------------------------------
@dataclass
class DinoScorer:
    """A loaded DINOv2 (transformers ``Dinov2Model``) and its image processor."""

    model: Any
    processor: Any
    name: str
    device: str = "cpu"
    batch_size: int = 16

    def features(self, frames: Sequence["Image.Image"]) -> "torch.Tensor":
        """CLS features (the model's ``pooler_output``), (N, D) float32 on the CPU."""
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                batch = [f.convert("RGB") for f in frames[start : start + self.batch_size]]
                pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
                out = self.model(pixel_values=pixels.to(self.device, self.model.dtype))
                chunks.append(out.pooler_output.float().cpu())
        return torch.cat(chunks)


def load_dino(model: str | os.PathLike = DEFAULT_DINO, device: str = "auto") -> DinoScorer:
    """Load a DINOv2 model: a local folder or a hub id (safetensors only, offline-aware)."""
    from transformers import AutoImageProcessor, Dinov2Model

    from .api import resolve_device
    from .hub import resolve_model

    folder = resolve_model(str(model), DINO_REQUIRED)
    dev = resolve_device(device)
    net = Dinov2Model.from_pretrained(folder, use_safetensors=True).to(dev).eval()
    return DinoScorer(net, AutoImageProcessor.from_pretrained(folder), name=str(model), device=dev)


def save_tiny_dino(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random DINOv2 (about 130 KB, 32 px input) to ``folder`` — for tests."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = Path(folder)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                          image_size=32, patch_size=8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Dinov2Model(config)
    model.save_pretrained(folder, safe_serialization=True)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


# -- RAFT -------------------------------------------------------------------------------------
@dataclass
class FlowScorer:
    """A loaded torchvision RAFT."""

    model: Any
    name: str
    device: str = "cpu"
    updates: int = 12

    def flows(self, frames: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """Forward (t -> t+1) and backward (t+1 -> t) flows, (N-1, 2, H, W) in pixels of the
        frames (N, 3, H, W) in [0, 1]. RAFT runs at a size whose sides are multiples of 8 and
        at least :data:`RAFT_MIN_SIDE`; the flow is resized back and rescaled."""
        import torch
        import torch.nn.functional as F

        n, _, h, w = frames.shape
        scale = max(1.0, RAFT_MIN_SIDE / min(h, w))
        rh, rw = (max(8, int(round(h * scale / 8)) * 8), max(8, int(round(w * scale / 8)) * 8))
        x = F.interpolate(frames.float(), size=(rh, rw), mode="bilinear", align_corners=False) * 2 - 1
        x = x.to(self.device)
        with torch.inference_mode():
            fw = self.model(x[:-1], x[1:], num_flow_updates=self.updates)[-1]
            bw = self.model(x[1:], x[:-1], num_flow_updates=self.updates)[-1]

        def back(flow: "torch.Tensor") -> "torch.Tensor":
            flow = F.interpolate(flow.float().cpu(), size=(h, w), mode="bilinear", align_corners=False)
            return torch.stack((flow[:, 0] * w / rw, flow[:, 1] * h / rh), dim=1).double()

        return back(fw), back(bw)

    def warp_error(self, edited: Sequence["Image.Image"], source: Sequence["Image.Image"]) -> float:
        """Warp error of ``edited`` under the motion of ``source`` (paired by index, resized
        to the edited size)."""
        from .video import resize

        if len(source) != len(edited):
            raise InputError(f"warp error pairs frames: {len(edited)} edited vs {len(source)} source frames")
        size = edited[0].size
        src = _to_tensor([f if f.size == size else resize(f, size) for f in source])
        fw, bw = self.flows(src)
        return warp_error(_to_tensor(edited), fw, occlusion_mask(fw, bw))


def _optical_flow() -> Any:
    """torchvision's optical-flow models, or a one-line error saying how to install them."""
    try:
        from torchvision.models import optical_flow
    except ImportError:
        raise AnyV2VError('the warp metric needs torchvision (RAFT): pip install "anyv2v[metrics]"') from None
    return optical_flow


def _raft_arch(name: str) -> Any:
    return getattr(_optical_flow(), RAFT_ARCHS[name][0])


def load_raft(model: str | os.PathLike = DEFAULT_FLOW, device: str = "auto") -> FlowScorer:
    """Load RAFT: ``raft_large`` / ``raft_small`` (torchvision's weights, from the torch hub
    cache; downloaded unless ``HF_HUB_OFFLINE`` is set) or a local weights file
    (``.safetensors``, or a torchvision ``.pth`` loaded with ``weights_only=True``) of either."""
    import torch

    from .api import resolve_device
    from .hub import offline

    dev = resolve_device(device)
    name = str(model)
    if name in RAFT_ARCHS:
        weights = getattr(_optical_flow(), RAFT_ARCHS[name][1]).DEFAULT
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if offline() and not cached.is_file():
            raise ModelNotFoundError(f"RAFT weights {name!r} are not available: HF_HUB_OFFLINE is set and "
                                     f"{cached} is missing; download {weights.url} there, or pass a weights file")
        try:
            state = torch.hub.load_state_dict_from_url(weights.url, progress=False, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - every download failure becomes one line
            raise ModelNotFoundError(f"RAFT weights {name!r} are not available ({type(exc).__name__}); download "
                                     f"{weights.url} into {cached.parent}, or pass a weights file") from exc
        candidates = [name]
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"flow model {name!r} is neither {' nor '.join(RAFT_ARCHS)} nor a weights file")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001
                raise ModelNotFoundError(f"cannot read RAFT weights {path}: {type(exc).__name__}") from exc
        candidates = list(RAFT_ARCHS)
    for arch in candidates:
        net = _raft_arch(arch)(weights=None)
        if set(net.state_dict()) == set(state):
            net.load_state_dict(state)
            return FlowScorer(net.to(dev).eval(), name=name, device=dev)
    raise ModelNotFoundError(f"{name}: the weights fit none of torchvision's {', '.join(candidates)}")


def save_tiny_raft(path: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised torchvision ``raft_small`` (4 MB) as safetensors — for tests."""
    import torch
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _raft_arch("raft_small")(weights=None)
    path = Path(path)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


# -- the suite ----------------------------------------------------------------------------------
@dataclass
class MetricSpec:
    """Which metrics to compute and with which models (picklable: sent to Ray workers)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    clip_model: str = ""
    dino_model: str = DEFAULT_DINO
    flow_model: str = DEFAULT_FLOW

    def __post_init__(self) -> None:
        if not self.clip_model:
            from .metrics import DEFAULT_CLIP

            self.clip_model = DEFAULT_CLIP

    def describe(self) -> str:
        """``clip, flicker; CLIP model openai/...`` — the metrics and the models they use."""
        models = [f"{label} model {name}" for metric, label, name in
                  (("clip", "CLIP", self.clip_model), ("dino", "DINO", self.dino_model),
                   ("warp", "flow", self.flow_model)) if metric in self.metrics]
        return "; ".join([", ".join(self.metrics), *models])

    def check(self) -> None:
        """Fail now (one line) if a needed hub model is not available; loads nothing."""
        from .hub import resolve_model
        from .metrics import CLIP_ALLOW, CLIP_REQUIRED

        if "clip" in self.metrics:
            resolve_model(self.clip_model, CLIP_REQUIRED, CLIP_ALLOW)
        if "dino" in self.metrics:
            resolve_model(self.dino_model, DINO_REQUIRED)


@dataclass
class MetricSuite:
    """The loaded models of a :class:`MetricSpec`; :meth:`scores` scores one clip."""

    spec: MetricSpec
    clip: "ClipScorer | None" = None
    dino: DinoScorer | None = None
    flow: FlowScorer | None = None
    models: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The models used, e.g. ``clip=openai/clip-vit-large-patch14, dino=facebook/dinov2-base``."""
        return ", ".join(f"{k}={v}" for k, v in self.models.items()) or "no model"

    def scores(self, frames: Sequence["Image.Image"], prompt: str, source: Sequence["Image.Image"] | None = None,
               edited_frame: "Image.Image | None" = None) -> dict[str, Any]:
        """The metrics of ``frames``: the keys of :data:`METRICS` that apply (``source_fidelity``
        and ``warp_error`` need ``source``, ``first_frame_*`` ``edited_frame``), the models
        used (``clip_model``, ``dino_model``, ``flow_model``) and ``frames``."""
        frames = list(frames)
        if len(frames) < 2:
            raise InputError(f"the metrics need at least 2 frames, got {len(frames)}")
        result: dict[str, Any] = {"frames": len(frames)}
        if self.clip is not None:
            result.update(self.clip.scores(frames, prompt, None if source is None else list(source)))
        if self.dino is not None:
            result["dino_model"] = self.dino.name
            result["dino_subject"] = subject_consistency(self.dino.features(frames))
        if self.flow is not None and source is not None:
            result["flow_model"] = self.flow.name
            result["warp_error"] = self.flow.warp_error(frames, list(source))
        if "flicker" in self.spec.metrics:
            result["flicker"] = flicker_score(frames)
        if "first-frame" in self.spec.metrics and edited_frame is not None:
            result.update(first_frame_fidelity(frames, edited_frame))
        return result


def load_suite(spec: MetricSpec, device: str = "auto") -> MetricSuite:
    """Load the models ``spec`` needs (each once)."""
    suite = MetricSuite(spec)
    if "clip" in spec.metrics:
        from .metrics import load_clip

        suite.clip = load_clip(spec.clip_model, device)
        suite.models["clip"] = spec.clip_model
    if "dino" in spec.metrics:
        suite.dino = load_dino(spec.dino_model, device)
        suite.models["dino"] = spec.dino_model
    if "warp" in spec.metrics:
        suite.flow = load_raft(spec.flow_model, device)
        suite.models["flow"] = spec.flow_model
    return suite


def evaluate_files(edited: str | os.PathLike, prompt: str, source: str | os.PathLike | None = None,
                   edited_frame: str | os.PathLike | None = None, spec: MetricSpec | None = None,
                   device: str = "auto", suite: MetricSuite | None = None) -> dict[str, Any]:
    """The metrics of a video file or frames folder (all its frames; with ``source``, its
    first as many frames; with ``edited_frame``, an image)."""
    from . import video

    wanted = suite.spec.metrics if suite is not None else (spec or MetricSpec()).metrics
    if "warp" in wanted and source is None:
        raise InputError("the warp metric follows the source's motion: give the source clip (--source)")
    frames = video.read_frames(edited)
    src = None if source is None else video.read_frames(source, len(frames))
    first = None if edited_frame is None else video.load_image(edited_frame)
    suite = suite or load_suite(spec or MetricSpec(), device)
    result = suite.scores(frames, prompt, src, first)
    result["edited"] = str(edited)
    if source is not None:
        result["source"] = str(source)
    if edited_frame is not None:
        result["edited_frame"] = str(edited_frame)
    return result


#: Every metric value: key -> (short name, what it is, the better direction). Reports and docs use these.
METRIC_KEYS: dict[str, tuple[str, str, str]] = {
    "clip_text": ("CLIP-Text", "mean cos(prompt, frame)", "higher"),
    "clip_image": ("CLIP-Image", "mean cos(frame i, frame i+1)", "higher"),
    "source_fidelity": ("Source fidelity", "mean cos(edited i, source i), CLIP", "higher"),
    "dino_subject": ("Subject consistency", "VBench, DINOv2 features", "higher"),
    "warp_error": ("Warp error", "Lai et al. 2018, the source's RAFT flow", "lower"),
    "flicker": ("Temporal flickering", "VBench, (255 - MAE) / 255", "higher"),
    "first_frame_ssim": ("First-frame SSIM", "frame 0 vs the edited frame", "higher"),
    "first_frame_psnr": ("First-frame PSNR", "dB, frame 0 vs the edited frame", "higher"),
}


def format_report(result: dict[str, Any]) -> str:
    """Human-readable lines naming every model used."""
    lines = [f"{label} model: {result[key]} ({result['frames']} frames)"
             for key, label in (("clip_model", "CLIP"), ("dino_model", "DINO"), ("flow_model", "Flow")) if key in result]
    lines = lines or [f"no model ({result['frames']} frames)"]
    labels = {key: f"{name} ({what}) [{better}]" for key, (name, what, better) in METRIC_KEYS.items()}
    width = max(len(v) for v in labels.values())
    lines += [f"{label:<{width}}  {result[key]:.4f}" for key, label in labels.items() if key in result]
    return "\n".join(lines)
