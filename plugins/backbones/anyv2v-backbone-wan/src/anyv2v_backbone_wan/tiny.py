"""Tiny random Wan models in diffusers layout (a few MB), for tests and smoke runs.

Three layouts: ``wan2.1-i2v`` (mask + first-frame latent channels, CLIP vision tokens through
``add_k_proj``/``add_v_proj``), ``wan2.2-ti2v`` (``expand_timesteps``, a patchified
residual VAE with 16x spatial compression) and ``wan2.2-i2v-a14b`` (2.1's latent input
without CLIP, two experts switched at ``boundary_ratio``), each with the real module names the injection
uses, the real 4x temporal VAE compression (4k+1 frames) and a UMT5 text encoder with an
offline-built tokenizer. Following SPEC §6, every parameter default init leaves exactly 0
or 1 is perturbed, so no layer is a no-op. Saved with ``save_pretrained`` as safetensors, so
loading goes through the real code path (and ``WanImageToVideoPipeline.from_pretrained``).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

from anyv2v_core.testing.tiny import perturb_trivial_parameters

FAMILIES = ("wan2.1-i2v", "wan2.2-ti2v", "wan2.2-i2v-a14b")
#: The tiny A14B's expert boundary (the real model's is 0.9).
BOUNDARY_RATIO = 0.9
#: The scheduler of the tiny models: flow matching with Wan2.1-480P's shift.
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, shift=3.0)


def save_tiny_t5_tokenizer(folder: Path) -> int:
    """A character-level Unigram tokenizer saved as ``T5Tokenizer`` (``</s>`` appended,
    ``<pad>`` = 0), built offline; returns the vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    try:
        from transformers import T5TokenizerFast as T5
    except ImportError:  # pragma: no cover - transformers >= 5 names the fast one T5Tokenizer
        from transformers import T5Tokenizer as T5

    chars = list(string.ascii_letters + string.digits + string.punctuation) + ["\u2581"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in chars]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    tokenizer = T5(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", extra_ids=0,
                   model_max_length=512)
    tokenizer.save_pretrained(folder)
    return len(vocab)


def build_tiny_model(path: str | Path, seed: int = 0, family: str = "wan2.1-i2v", dim: int = 16,
                     layers: int = 4) -> Path:
    """Build and save a tiny Wan of ``family`` under ``path``; returns ``path``."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    ti2v = family == "wan2.2-ti2v"
    experts = family == "wan2.2-i2v-a14b"
    clip_tokens = family == "wan2.1-i2v"
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    z_dim = 8 if ti2v else 4
    heads, head_dim = 2, dim // 2
    vocab_size = save_tiny_t5_tokenizer(path / "tokenizer")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        stats = torch.Generator().manual_seed(seed + 7)
        vae_kwargs = dict(
            base_dim=8, z_dim=z_dim, dim_mult=[1, 1, 2, 2], num_res_blocks=1, temperal_downsample=[False, True, True],
            latents_mean=(torch.randn(z_dim, generator=stats) * 0.2).tolist(),
            latents_std=(0.5 + torch.rand(z_dim, generator=stats)).tolist(),
        )
        if ti2v:
            vae_kwargs.update(is_residual=True, in_channels=12, out_channels=12, patch_size=2,
                              scale_factor_spatial=16)
        vae = AutoencoderKLWan(**vae_kwargs)
        transformer_config = dict(
            patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=head_dim,
            in_channels=z_dim if ti2v else 2 * z_dim + 4, out_channels=z_dim, text_dim=dim, freq_dim=16,
            ffn_dim=2 * dim, num_layers=layers, image_dim=dim if clip_tokens else None,
            added_kv_proj_dim=dim if clip_tokens else None, rope_max_seq_len=64,
        )
        transformer = WanTransformer3DModel(**transformer_config)
        transformer_2 = WanTransformer3DModel(**transformer_config) if experts else None
        text_encoder = UMT5EncoderModel(UMT5Config(
            vocab_size=vocab_size, d_model=dim, d_kv=head_dim, d_ff=2 * dim, num_layers=2, num_heads=heads,
            relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        ))
        image_encoder = None if not clip_tokens else CLIPVisionModel(CLIPVisionConfig(
            hidden_size=dim, intermediate_size=2 * dim, num_hidden_layers=2, num_attention_heads=heads,
            image_size=32, patch_size=8,
        ))
        generator = torch.Generator().manual_seed(seed + 1)
        for module in (transformer, transformer_2, vae, text_encoder, image_encoder):
            if module is not None:
                perturb_trivial_parameters(module, generator)

    transformer.save_pretrained(path / "transformer", safe_serialization=True)
    if transformer_2 is not None:
        transformer_2.save_pretrained(path / "transformer_2", safe_serialization=True)
    vae.save_pretrained(path / "vae", safe_serialization=True)
    text_encoder.save_pretrained(path / "text_encoder", safe_serialization=True)
    FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG).save_pretrained(path / "scheduler")
    index = {
        "_class_name": "WanImageToVideoPipeline",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "transformer_2": ["diffusers", "WanTransformer3DModel"] if experts else [None, None],
        "vae": ["diffusers", "AutoencoderKLWan"],
        "boundary_ratio": BOUNDARY_RATIO if experts else None,
        "expand_timesteps": ti2v,
    }
    if not clip_tokens:
        index.update(image_encoder=[None, None], image_processor=[None, None])
    else:
        image_encoder.save_pretrained(path / "image_encoder", safe_serialization=True)
        CLIPImageProcessor(crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32}).save_pretrained(
            path / "image_processor")
        index.update(image_encoder=["transformers", "CLIPVisionModel"],
                     image_processor=["transformers", "CLIPImageProcessor"])
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    return path


def tiny_clip():
    """A clip the tiny models handle: 9 frames (4k+1) at 64x64 (3 latent frames)."""
    from anyv2v_core.protocols import ClipSpec

    return ClipSpec(n_frames=9, width=64, height=64, fps=8)
