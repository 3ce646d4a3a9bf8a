"""CLIP metrics of an edited clip (paper §5.3, SPEC §4).

* **CLIP-Text** — mean over frames of ``cos(text_emb(prompt), image_emb(frame))``:
  how well the edited clip matches the prompt.
* **CLIP-Image** — mean over consecutive frame pairs of
  ``cos(image_emb(f_i), image_emb(f_{i+1}))``: temporal consistency.
* **Source fidelity** (ours, optional) — mean over frames of
  ``cos(image_emb(edited_i), image_emb(source_i))``: how much of the source survives.

Embeddings are the projected CLIP features (``text_projection`` / ``visual_projection``)
of a transformers ``CLIPModel``; the default model is ``openai/clip-vit-large-patch14``,
the one the field reports with. Every report names the model used.

The pure functions (:func:`text_alignment`, :func:`temporal_consistency`,
:func:`pairwise_fidelity`) take embeddings and are independent of any model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
#: Files a CLIP model folder must hold (safetensors weights only).
CLIP_REQUIRED = ("config.json", "*.safetensors", "preprocessor_config.json", "vocab.json", "merges.txt")
CLIP_ALLOW = (*CLIP_REQUIRED, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


# -- pure functions on embeddings ----------------------------------------------------------
def _normalize(x: "torch.Tensor") -> "torch.Tensor":
    x = x.double()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def text_alignment(text_emb: "torch.Tensor", image_embs: "torch.Tensor") -> float:
    """CLIP-Text: mean over the N rows of ``image_embs`` (N, D) of their cosine with
    ``text_emb`` (D,) or (1, D)."""
    t = _normalize(text_emb.reshape(1, -1))
    if image_embs.ndim != 2 or image_embs.shape[0] < 1 or image_embs.shape[1] != t.shape[1]:
        raise InputError(f"expected (N, {t.shape[1]}) image embeddings, got {tuple(image_embs.shape)}")
    return float((_normalize(image_embs) @ t.T).mean())


def temporal_consistency(image_embs: "torch.Tensor") -> float:
    """CLIP-Image: mean over the N-1 consecutive pairs of rows of ``image_embs`` (N, D)
    of their cosine."""
    if image_embs.ndim != 2 or image_embs.shape[0] < 2:
        raise InputError(f"CLIP-Image needs at least 2 frames, got embeddings of shape {tuple(image_embs.shape)}")
    e = _normalize(image_embs)
    return float((e[:-1] * e[1:]).sum(-1).mean())


def pairwise_fidelity(edited_embs: "torch.Tensor", source_embs: "torch.Tensor") -> float:
    """Source fidelity: mean over i of ``cos(edited_embs[i], source_embs[i])``."""
    if edited_embs.shape != source_embs.shape or edited_embs.ndim != 2:
        raise InputError(f"edited and source embeddings differ in shape: {tuple(edited_embs.shape)} vs "
                         f"{tuple(source_embs.shape)}")
    return float((_normalize(edited_embs) * _normalize(source_embs)).sum(-1).mean())


# -- the CLIP model -------------------------------------------------------------------------
@dataclass
class ClipScorer:
    """A loaded CLIP model with its tokenizer and image processor."""

    model: Any
    tokenizer: Any
    processor: Any
    name: str
    device: str = "cpu"
    batch_size: int = 16

    def image_embeddings(self, frames: Sequence["Image.Image"]) -> "torch.Tensor":
        """Projected image features (N, D) in float32 on the CPU."""
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                batch = [f.convert("RGB") for f in frames[start : start + self.batch_size]]
                pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
                pixels = pixels.to(self.device, self.model.dtype)
                pooled = self.model.vision_model(pixel_values=pixels).pooler_output
                chunks.append(self.model.visual_projection(pooled).float().cpu())
        return torch.cat(chunks)

    def text_embedding(self, prompt: str) -> "torch.Tensor":
        """Projected text features (D,) in float32 on the CPU (prompt truncated to the
        model's context length, 77 tokens for OpenAI CLIP)."""
        import torch

        tokens = self.tokenizer([prompt], padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            pooled = self.model.text_model(
                input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
            ).pooler_output
            return self.model.text_projection(pooled)[0].float().cpu()

    def scores(self, frames: Sequence["Image.Image"], prompt: str, source: Sequence["Image.Image"] | None = None,
               edited_frame: Any = None) -> dict[str, Any]:
        """The metrics of ``frames`` (see the module docstring) and the model name
        (``edited_frame`` is not used: the signature of :class:`~anyv2v_core.video_metrics.MetricSuite`)."""
        if len(frames) < 2:
            raise InputError(f"CLIP-Image needs at least 2 frames, got {len(frames)}")
        emb = self.image_embeddings(frames)
        result: dict[str, Any] = {
            "clip_model": self.name,
            "frames": len(frames),
            "clip_text": text_alignment(self.text_embedding(prompt), emb),
            "clip_image": temporal_consistency(emb),
        }
        if source is not None:
            if len(source) != len(frames):
                raise InputError(f"source fidelity pairs frames: {len(frames)} edited vs {len(source)} source frames")
            result["source_fidelity"] = pairwise_fidelity(emb, self.image_embeddings(source))
        return result


def load_clip(model: str | os.PathLike = DEFAULT_CLIP, device: str = "auto", dtype: str = "float32") -> ClipScorer:
    """Load a CLIP model (a local folder or a hub id; safetensors only, offline-aware:
    a missing model is a one-line :class:`~anyv2v_core.errors.ModelNotFoundError`)."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from .api import resolve_device, resolve_dtype
    from .hub import resolve_model

    folder = resolve_model(str(model), CLIP_REQUIRED, CLIP_ALLOW, flag="--clip-model")
    dev = resolve_device(device)
    clip = CLIPModel.from_pretrained(folder, use_safetensors=True, dtype=resolve_dtype(dtype, dev))
    clip.to(dev).eval()
    return ClipScorer(clip, CLIPTokenizer.from_pretrained(folder), CLIPImageProcessor.from_pretrained(folder),
                      name=str(model), device=dev)


def clip_scores(
    frames: Sequence["Image.Image"],
    prompt: str,
    model: str | os.PathLike | ClipScorer = DEFAULT_CLIP,
    device: str = "auto",
    source: Sequence["Image.Image"] | None = None,
) -> dict[str, Any]:
    """CLIP-Text and CLIP-Image of ``frames`` for ``prompt`` (plus ``source_fidelity``
    with ``source`` frames, paired by index): ``{"clip_model", "frames", "clip_text",
    "clip_image"[, "source_fidelity"]}``. ``model``: a hub id, a folder or a loaded
    :class:`ClipScorer` (to score many clips with one model)."""
    scorer = model if isinstance(model, ClipScorer) else load_clip(model, device)
    return scorer.scores(list(frames), prompt, None if source is None else list(source))


def evaluate_files(edited: str | os.PathLike, prompt: str, source: str | os.PathLike | None = None,
                   model: str | os.PathLike | ClipScorer = DEFAULT_CLIP, device: str = "auto") -> dict[str, Any]:
    """:func:`clip_scores` of a video file or frames folder (all its frames; with
    ``source``, its first as many frames)."""
    from . import video

    frames = video.read_frames(edited)
    src = None if source is None else video.read_frames(source, len(frames))
    result = clip_scores(frames, prompt, model, device, src)
    result["edited"] = str(edited)
    if source is not None:
        result["source"] = str(source)
    return result


def format_report(result: dict[str, Any]) -> str:
    """A few human-readable lines naming the CLIP model."""
    lines = [
        f"CLIP model: {result['clip_model']} ({result['frames']} frames)",
        f"CLIP-Text  (mean cos(prompt, frame))            {result['clip_text']:.4f}",
        f"CLIP-Image (mean cos(frame i, frame i+1))       {result['clip_image']:.4f}",
    ]
    if "source_fidelity" in result:
        lines.append(f"Source fidelity (mean cos(edited i, source i)) {result['source_fidelity']:.4f}")
    return "\n".join(lines)


def save_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random CLIP (a few hundred KB: model, char-level tokenizer, 32 px image
    processor) to ``folder`` — for tests and smoke runs of the metrics, offline."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from .testing.tiny import perturb_trivial_parameters, save_char_tokenizer

    folder = Path(folder)
    vocab = save_char_tokenizer(folder)
    tok = CLIPTokenizer.from_pretrained(folder)
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4),
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):  # weight init draws from the global RNG: isolate and seed it
        torch.manual_seed(seed)
        model = CLIPModel(config)
    perturb_trivial_parameters(model, torch.Generator().manual_seed(seed))
    model.save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
