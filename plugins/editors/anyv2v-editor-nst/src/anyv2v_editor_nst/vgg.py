"""VGG19 features for style transfer: finding, loading and running torchvision's
ImageNet weights.

The weights are torchvision's ``VGG19_Weights.IMAGENET1K_V1`` file
(``vgg19-dcbb9e9d.pth``), looked for where ``torchvision`` caches it:
``torch.hub.get_dir()/checkpoints/``. A ``.safetensors`` conversion beside it (``anyv2v
nst-convert-weights``) is preferred; a ``.pth`` is read with ``torch.load`` with
``weights_only=True`` only. ``ANYV2V_NST_WEIGHTS`` names another file.

The network is rebuilt from the state dict: the layer layout of VGG19 (configuration "E"),
channel widths read from the weight shapes, so the same code runs the real network and
the tiny random ones of the tests. Module indices equal torchvision's ``vgg19().features``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from anyv2v_core.errors import ModelNotFoundError
from anyv2v_core.hub import offline

WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"
WEIGHTS_URL = f"https://download.pytorch.org/models/{WEIGHTS_FILE}"
ENV_VAR = "ANYV2V_NST_WEIGHTS"

#: VGG19 ("E"): conv layers per block, pooling after each block.
BLOCKS = (2, 2, 4, 4, 4)
#: ImageNet statistics the torchvision weights expect (RGB, inputs in [0, 1]).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _layer_indices() -> dict[str, int]:
    """``"conv4_2" -> 21`` etc.: the index of each conv in torchvision's ``features``."""
    index, names = 0, {}
    for block, n_convs in enumerate(BLOCKS, start=1):
        for conv in range(1, n_convs + 1):
            names[f"conv{block}_{conv}"] = index
            index += 2  # conv, relu
        index += 1  # pool
    return names


LAYERS = _layer_indices()
CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def default_weights_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(explicit: str | os.PathLike | None = None) -> Path:
    """The weights file to load: ``explicit``, else ``$ANYV2V_NST_WEIGHTS``, else the
    torch hub cache (``.safetensors`` conversion first, then torchvision's ``.pth``),
    downloaded there by torchvision's URL unless ``HF_HUB_OFFLINE`` is set."""
    chosen = explicit or os.environ.get(ENV_VAR)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"VGG19 weights file not found: {path}")
        return path
    folder = default_weights_dir()
    for candidate in (folder / Path(WEIGHTS_FILE).with_suffix(".safetensors").name, folder / WEIGHTS_FILE):
        if candidate.is_file():
            return candidate
    how = f"put {WEIGHTS_FILE} ({WEIGHTS_URL}) in {folder}/ or set {ENV_VAR}=/path/to/weights"
    if offline():
        raise ModelNotFoundError(f"VGG19 weights {WEIGHTS_FILE} not found and HF_HUB_OFFLINE is set: {how}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(WEIGHTS_URL, str(folder / WEIGHTS_FILE), hash_prefix=WEIGHTS_FILE.split("-")[1][:8])
    except Exception as exc:  # noqa: BLE001 - any download failure is one line
        raise ModelNotFoundError(
            f"VGG19 weights {WEIGHTS_FILE} not found and the download failed ({type(exc).__name__}): {how}"
        ) from exc
    return folder / WEIGHTS_FILE


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.pth`` read with ``weights_only=True``."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign files are one line
        raise ModelNotFoundError(f"cannot read VGG19 weights {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict):
        raise ModelNotFoundError(f"{path} does not hold a state dict")
    return state


def convert_to_safetensors(source: str | os.PathLike | None = None, out: str | os.PathLike | None = None) -> Path:
    """Write the tensors of a torchvision ``.pth`` as ``.safetensors`` (default: beside it)."""
    from anyv2v_core.video import save_safetensors

    src = Path(source).expanduser() if source else default_weights_dir() / WEIGHTS_FILE
    if not src.is_file():
        raise ModelNotFoundError(f"{src} not found (download {WEIGHTS_URL} there first)")
    dst = Path(out).expanduser() if out else src.with_suffix(".safetensors")
    state = load_state_dict(src)
    save_safetensors({k: v.contiguous() for k, v in state.items()}, dst, metadata={"source": src.name})
    return dst


class VGG19Features(nn.Module):
    """``torchvision.models.vgg19().features`` up to the deepest layer needed, returning
    the ReLU outputs of the named conv layers. Inputs are RGB in [0, 1]."""

    def __init__(self, widths: Sequence[int], last: str = "conv5_1", pooling: str = "avg") -> None:
        super().__init__()
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be avg or max, got {pooling!r}")
        layers: list[nn.Module] = []
        channels, i = 3, 0
        stop = LAYERS[last]
        for n_convs in BLOCKS:
            for _ in range(n_convs):
                layers += [nn.Conv2d(channels, widths[i], 3, padding=1), nn.ReLU(inplace=False)]
                channels = widths[i]
                i += 1
            layers.append(nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers[: stop + 2])  # through the ReLU of ``last``
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], pooling: str = "avg") -> "VGG19Features":
        convs = sorted(int(k.split(".")[1]) for k in state if k.startswith("features.") and k.endswith(".weight"))
        expected = sorted(LAYERS.values())
        if convs[: len(expected)] != expected:
            raise ModelNotFoundError(
                f"not VGG19 weights: conv layers at features.{convs[:6]}..., expected torchvision's vgg19 layout"
            )
        widths = [int(state[f"features.{i}.weight"].shape[0]) for i in expected]
        model = cls(widths, pooling=pooling)
        wanted = {k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) < len(model.features)}
        model.load_state_dict(wanted, strict=True)
        return model.eval().requires_grad_(False)

    def forward(self, image: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        wanted = {LAYERS[n] + 1: n for n in names}  # the ReLU after the conv
        out: dict[str, torch.Tensor] = {}
        x = (image - self.mean) / self.std
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
                if len(out) == len(wanted):
                    break
        return out


def load_vgg19_features(weights: str | os.PathLike | None = None, pooling: str = "avg") -> VGG19Features:
    return VGG19Features.from_state_dict(load_state_dict(find_weights(weights)), pooling=pooling)
