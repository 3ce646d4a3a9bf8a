"""The random I2VGen-XL models the benchmarks run on, one place for every benchmark script.

    from models import SCALES, build_model
    folder = build_model("compute", "/tmp/models")   # -> /tmp/models/compute (built once)

Two scales, both 16 frames, random weights in the diffusers ``ali-vilab/i2vgen-xl`` layout
(built by the I2VGen-XL plugin's tiny builder, so the config carries both
``attention_head_dim`` and ``num_attention_heads`` for diffusers 0.26 and >= 0.27, every
exact-zero/one parameter is perturbed, GroupNorm has 8 groups):

- ``tiny``: 32 channels, 64x64 frames (16x16 latents; the tiny VAE downsamples 4x), the
  model of the plugin's tests.
- ``compute``: 64 channels (head dim 16 instead of 8), so more of a call is dense
  convolution/matmul work, as in the real model. Measured on a 2-core Xeon, one thread,
  under load: a call costs ~45 ms of fixed overhead (2 frames 8x8), tiny batch 1 / 3 ~0.30 /
  0.85 s, compute ~0.55 / 1.6 s: both are far above the per-call overhead and linear in
  the batch, so CPU wall ratios track the ratios of UNet work. 128x128 frames (32 channels:
  ~2.3 s a batch-1 call) would not fit one A/B pair of every workload in ~20 minutes.
  ``python benchmarks/models.py DIR --time`` measures a call on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Scale:
    name: str
    channels: int  # UNet width (all four levels), CLIP hidden size
    frames: int
    size: int  # frame width = height, pixels
    seed: int = 0

    @property
    def size_arg(self) -> str:
        return f"{self.size}x{self.size}"


SCALES: dict[str, Scale] = {s.name: s for s in (
    Scale("tiny", channels=32, frames=16, size=64),
    Scale("compute", channels=64, frames=16, size=64),
)}


def build_model(scale: str | Scale, folder: str | Path) -> Path:
    """Build the model of ``scale`` under ``folder/<name>`` (once: a folder whose
    ``build.json`` matches is reused) and return that path."""
    from anyv2v_backbone_i2vgenxl.tiny import build_tiny_model

    s = SCALES[scale] if isinstance(scale, str) else scale
    path = Path(folder) / s.name
    stamp = path / "build.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == asdict(s):
        return path
    build_tiny_model(path, seed=s.seed, channels=s.channels)
    stamp.write_text(json.dumps(asdict(s)))
    return path


def time_unet_call(model: Path, scale: Scale, batch: int, repeats: int = 3) -> float:
    """Median seconds of one UNet forward at ``batch`` branches (this process's threads)."""
    import torch
    from diffusers import I2VGenXLUNet

    unet = I2VGenXLUNet.from_pretrained(model / "unet").eval()
    g = torch.Generator().manual_seed(0)
    lat = scale.size // 4  # the tiny VAE downsamples 4x
    dim = unet.config.cross_attention_dim
    kwargs = dict(
        encoder_hidden_states=torch.randn(batch, 77, dim, generator=g),  # CLIP text length
        fps=torch.full((batch,), 8),
        image_latents=torch.randn(batch, 4, scale.frames, lat, lat, generator=g),
        image_embeddings=torch.randn(batch, dim, generator=g),
        return_dict=False,
    )
    x = torch.randn(batch, 4, scale.frames, lat, lat, generator=g)
    times = []
    with torch.no_grad():
        unet(x, 961, **kwargs)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            unet(x, 961, **kwargs)
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="where the models are built")
    p.add_argument("--scales", default=",".join(SCALES))
    p.add_argument("--time", action="store_true", help="time one UNet call at batch 1 and 3 per scale")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    for name in args.scales.split(","):
        s = SCALES[name]
        path = build_model(s, args.folder)
        line = f"{name}: {path}"
        if args.time:
            line += "  " + "  ".join(f"batch {b}: {time_unet_call(path, s, b):.3f} s" for b in (1, 3))
        print(line, file=sys.stdout, flush=True)


if __name__ == "__main__":
    main()
