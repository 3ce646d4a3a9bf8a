"""One-time conversion of the official AnyDoor checkpoint to safetensors.

The published ``epoch=1-step=8687.ckpt`` is a pickled PyTorch Lightning checkpoint. It is
read only with ``torch.load(..., weights_only=True)`` (no arbitrary code runs), its
``state_dict`` is renamed with :mod:`.mapping`, checked against the model and written as
one safetensors file with the architecture config in the metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from anyv2v_core.errors import InputError, ModelNotFoundError

from .config import AnyDoorConfig

COMMAND = "anydoor-convert"


def load_official_state_dict(checkpoint: str | Path) -> dict:
    """The ``state_dict`` of an official checkpoint (Lightning ``.ckpt``/``.pth``, pickled),
    loaded with ``weights_only=True`` and memory-mapped."""
    import torch

    path = Path(checkpoint)
    if not path.is_file():
        raise ModelNotFoundError(f"AnyDoor checkpoint not found: {path}")
    try:
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:  # a legacy (non-zip) pickle cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling refused or unreadable: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {path} with torch.load(weights_only=True): {first}") from None
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not state:
        raise InputError(f"{path} holds no state_dict")
    return state


def convert_checkpoint(
    checkpoint: str | Path, out: str | Path, config: AnyDoorConfig | None = None, dtype: str | None = None,
    force: bool = False,
) -> Path:
    """Convert ``checkpoint`` (official layout) to ``out`` (our safetensors layout)."""
    import torch
    from safetensors.torch import save_file

    from anyv2v_core.video import atomic_path, check_writable

    from .mapping import convert_official_state_dict
    from .model import CONFIG_METADATA_KEY, AnyDoorModel

    check_writable(out, force)
    config = config or AnyDoorConfig()
    state = load_official_state_dict(checkpoint)
    try:
        ours = convert_official_state_dict(state, config)
    except KeyError as exc:
        raise InputError(f"{checkpoint} is not an AnyDoor checkpoint: unknown tensor {exc.args[0]!r}") from None
    expected = {k: tuple(v.shape) for k, v in AnyDoorModel.build_meta(config).state_dict().items()}
    missing = sorted(set(expected) - set(ours))
    if missing:
        raise InputError(f"{checkpoint} lacks {len(missing)} AnyDoor tensors (e.g. {missing[0]})")
    for name, tensor in ours.items():
        if tuple(tensor.shape) != expected[name]:
            raise InputError(f"{checkpoint}: {name} has shape {tuple(tensor.shape)}, expected {expected[name]}")
    cast = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, None: None}[dtype]
    tensors = {k: (v.to(cast) if cast is not None and v.is_floating_point() else v).contiguous() for k, v in ours.items()}
    with atomic_path(out, force) as tmp:
        save_file(tensors, str(tmp), metadata={CONFIG_METADATA_KEY: config.to_json(), "format": "pt"})
    return Path(out)


def register_command(app) -> None:
    """Add ``anyv2v anydoor-convert CKPT OUT.safetensors`` to the Typer app."""
    import typer

    from anyv2v_core.console import out


    @app.command(COMMAND)
    def anydoor_convert(
        checkpoint: Path = typer.Argument(..., help="The official checkpoint, e.g. epoch=1-step=8687.ckpt."),
        output: Path = typer.Argument(..., help="Where to write the safetensors file."),
        dtype: str = typer.Option("float32", "--dtype", help="float32 (as published), float16 or bfloat16."),
        config: Optional[Path] = typer.Option(None, "--config", help="JSON of AnyDoorConfig fields for a "
                                              "non-standard architecture (default: the published one)."),
        force: bool = typer.Option(False, "--force", "-f", help="Overwrite OUTPUT."),
    ) -> None:
        """Convert the official AnyDoor checkpoint (pickled Lightning .ckpt, read with
        weights_only=True) to the safetensors file the `anydoor` editor loads."""
        if dtype not in ("float32", "float16", "bfloat16"):
            raise InputError(f"--dtype must be float32, float16 or bfloat16, got {dtype!r}")
        arch = None
        if config is not None:
            try:
                arch = AnyDoorConfig.from_json(config.read_text())
            except (OSError, ValueError, TypeError) as exc:
                raise InputError(f"--config {config}: not a readable AnyDoorConfig JSON ({exc})") from None
        path = convert_checkpoint(checkpoint, output, config=arch, dtype=dtype, force=force)
        out.print(f"wrote {path} (use it with --anydoor-model {path})")
