"""Building blocks for tiny random models (tests, smoke runs, plugin authors' fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _byte_unicode_chars() -> list[str]:
    """The 256 printable characters byte-level BPE (GPT-2/CLIP) maps bytes to."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def save_char_tokenizer(folder: str | Path, model_max_length: int = 77) -> int:
    """Save a character-level CLIP tokenizer (no merges) to ``folder``; returns the vocab
    size. The last two ids are ``<|startoftext|>`` and ``<|endoftext|>``. Both the
    ``tokenizer.json`` of recent transformers and ``vocab.json``/``merges.txt`` are written."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_unicode_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    try:
        tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)
    except TypeError:  # transformers < 5: file-based constructor
        tokenizer = CLIPTokenizer(
            vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"), model_max_length=model_max_length
        )
    tokenizer.save_pretrained(folder)
    return len(vocab)


def perturb_trivial_parameters(module: "torch.nn.Module", generator: "torch.Generator", std: float = 0.05) -> int:
    """Add N(0, std²) noise to every parameter tensor that is all zeros or all ones
    (zero-initialised projections, norm weights), so no layer of a random test model is
    an exact no-op. Returns how many tensors were changed."""
    import torch

    changed = 0
    with torch.no_grad():
        for param in module.parameters():
            flat = param.detach()
            if flat.numel() and (bool((flat == 0).all()) or bool((flat == 1).all())):
                param.add_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * std)
                changed += 1
    return changed


def synthetic_frames(n_frames: int = 8, width: int = 64, height: int = 64, seed: int = 0) -> list:
    """A small deterministic clip: a coloured square moving over a smooth gradient with
    a little texture (PIL RGB images)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    color = rng.integers(60, 255, 3).astype(np.float32)
    side = max(4, min(width, height) // 4)
    frames = []
    for i in range(n_frames):
        base = np.stack([255 * xx / width, 255 * yy / height, np.full_like(xx, 128.0)], axis=-1) + texture
        x0 = int((width - side) * i / max(n_frames - 1, 1))
        y0 = (height - side) // 2
        base[y0 : y0 + side, x0 : x0 + side] = color
        frames.append(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)))
    return frames


def install_fake_plugin(folder: str | Path, dist: str, module: str, source: str, entry_name: str | None = None,
                        version: str = "0.1") -> Path:
    """Write ``module.py`` and a ``<dist>-<version>.dist-info`` with an ``anyv2v`` entry
    point into ``folder``; with ``folder`` on ``sys.path`` importlib.metadata discovers it
    like an installed distribution. For testing plugin discovery."""
    import textwrap

    folder = Path(folder)
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return install_entry_point(folder, dist, module, entry_name, version)


def install_entry_point(folder: str | Path, dist: str, module: str, entry_name: str | None = None,
                        version: str = "0.1") -> Path:
    """Write only a ``<dist>-<version>.dist-info`` whose ``anyv2v`` entry point names the
    importable ``module``; with ``folder`` on ``sys.path`` (or ``PYTHONPATH``, for child
    processes and Ray workers) the plugin is discovered like an installed one."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    info = folder / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[anyv2v]\n{entry_name or dist} = {module}\n")
    return folder


def install_toy_plugin(folder: str | Path) -> Path:
    """Make the toy backbone (:mod:`anyv2v_core.testing.toy`) discoverable as backbone
    ``toy`` of a distribution ``anyv2v-toy`` from ``folder`` (see :func:`install_entry_point`)."""
    return install_entry_point(folder, "anyv2v-toy", "anyv2v_core.testing.toy_plugin", "toy")


def tiny_clip_text_encoder(vocab_size: int, dim: int = 32, layers: int = 2, heads: int = 4):
    """A small random ``CLIPTextModel`` matching :func:`save_char_tokenizer`'s vocabulary
    (the last two ids are the start/end tokens), 77 positions, ``projection_dim = dim``."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=dim,
            intermediate_size=2 * dim,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            max_position_embeddings=77,
            projection_dim=dim,
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        )
    )


def write_clip_files(root: str | Path, n_frames: int = 8, width: int = 64, height: int = 64,
                     edited: bool = True) -> Path:
    """A test clip under ``root``: ``source.mp4`` (8 fps) and ``frames/`` (PNGs) of
    :func:`synthetic_frames` (seed 1), plus ``edited.png``, another frame of the same size
    (seed 9), when ``edited``. Returns ``root``."""
    from .. import video

    root = Path(root)
    frames = synthetic_frames(n_frames, width, height, seed=1)
    video.write_video(frames, root / "source.mp4", fps=8)
    video.write_frames_dir(frames, root / "frames")
    if edited:
        synthetic_frames(1, width, height, seed=9)[0].save(root / "edited.png")
    return root


def tiny_vae(block_out_channels: tuple[int, ...] = (16, 16, 32, 32), **config: Any):
    """A small random ``AutoencoderKL`` shaped like Stable Diffusion's (4 latent channels,
    one downsampling per block after the first: 8x for 4 blocks); ``config`` adds or
    overrides settings (e.g. ``scaling_factor``)."""
    from diffusers import AutoencoderKL

    n = len(block_out_channels)
    settings = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                    up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(block_out_channels),
                    layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=64)
    return AutoencoderKL(**{**settings, **config})


def hub_text_encoder_keys(file: str | Path) -> None:
    """Rename the CLIP text weights in ``file`` to ``text_model.*``, as hub checkpoints (and
    transformers < 5) store them; transformers >= 5 saves them unprefixed. ``text_projection``
    keys stay as they are; a file already in the hub layout is left alone."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(file))
    if any(k.startswith("text_model.") for k in tensors):
        return
    renamed = {(k if k.startswith("text_projection") else f"text_model.{k}"): v.contiguous() for k, v in tensors.items()}
    save_file(renamed, str(file), metadata={"format": "pt"})
