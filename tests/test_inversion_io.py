import numpy as np
import pytest
import torch

from anyv2v_core.errors import InputError, InversionMismatchError, OutputExistsError
from anyv2v_core.inversion import InversionResult
from anyv2v_core.protocols import ClipSpec


def make():
    g = torch.Generator().manual_seed(0)
    return InversionResult(
        latents={t: torch.randn(1, 4, 3, 8, 8, generator=g) for t in (961, 941, 1)},
        backbone="b", model_id="m", clip=ClipSpec(3, 64, 64, 8), steps=500, prompt="",
        source_first_frame=np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3),
    )


def test_roundtrip_is_exact_and_safetensors(tmp_path):
    inv = make()
    path = inv.save(tmp_path / "inv.safetensors")
    back = InversionResult.load(path)
    assert back.timesteps == [961, 941, 1]
    assert all(torch.equal(back.latents[t], inv.latents[t]) for t in inv.latents)
    assert back.source_first_frame is None and back.source_digest == inv.source_digest  # digest only, not pixels
    assert (back.backbone, back.model_id, back.clip, back.steps) == ("b", "m", inv.clip, 500)
    assert path.read_bytes()[8:9] == b"{"  # safetensors header, no pickle


def test_refuses_overwrite_and_bad_files(tmp_path):
    inv = make()
    inv.save(tmp_path / "inv.safetensors")
    with pytest.raises(OutputExistsError):
        inv.save(tmp_path / "inv.safetensors")
    with pytest.raises(InputError, match="not found"):
        InversionResult.load(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk" * 10)
    with pytest.raises(InputError, match="cannot read inversion"):
        InversionResult.load(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(InputError, match="not an anyv2v inversion"):
        InversionResult.load(tmp_path / "other.safetensors")


def test_require_and_compatibility():
    inv = make()
    inv.require([961, 1])
    with pytest.raises(InversionMismatchError, match="no latent at edit timestep.*921"):
        inv.require([961, 921])
    with pytest.raises(InversionMismatchError, match="backbone"):
        inv.check_compatible("other", "m", inv.clip)
    with pytest.raises(InversionMismatchError, match="3 frames at 64x64"):
        inv.check_compatible("b", "m", ClipSpec(4, 64, 64, 8))
