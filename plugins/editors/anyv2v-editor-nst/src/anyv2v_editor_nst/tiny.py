"""A tiny random network with VGG19's layer layout (few channels), saved as torchvision
saves ``vgg19-dcbb9e9d.pth`` (a state dict with ``features.N.*`` and ``classifier.*``
keys), for tests and smoke runs."""

from __future__ import annotations

from pathlib import Path

import torch

from .vgg import BLOCKS, WEIGHTS_FILE, VGG19Features


def build_tiny_vgg19(folder: str | Path, seed: int = 0, widths: tuple[int, ...] = (4, 8, 8, 8, 8),
                     file_name: str = WEIGHTS_FILE) -> Path:
    """Save a random VGG19-shaped state dict (``widths`` per block) to ``folder/file_name``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    per_conv = [w for w, n in zip(widths, BLOCKS, strict=True) for _ in range(n)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = VGG19Features(per_conv, last="conv5_4", pooling="max")
        for module in net.features:
            if isinstance(module, torch.nn.Conv2d):  # He init keeps the activations alive
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                torch.nn.init.normal_(module.bias, std=0.05)
        classifier = torch.nn.Linear(widths[-1], 10)
    state = {f"features.{k.split('.', 1)[1]}": v for k, v in net.state_dict().items()}
    state.update({f"classifier.0.{k}": v for k, v in classifier.state_dict().items()})
    path = folder / file_name
    torch.save(state, path)
    return path
