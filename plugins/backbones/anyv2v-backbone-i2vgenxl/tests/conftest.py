import pytest
import torch

from anyv2v_core.testing.tiny import write_clip_files


@pytest.fixture(scope="session")
def tiny_i2vgenxl(tmp_path_factory):
    """A tiny random I2VGen-XL saved in diffusers layout (built once per session)."""
    from anyv2v_backbone_i2vgenxl.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-i2vgenxl"))


@pytest.fixture(scope="session")
def i2vgenxl(tiny_i2vgenxl):
    from anyv2v_backbone_i2vgenxl.backbone import I2VGenXLBackbone

    return I2VGenXLBackbone(model=str(tiny_i2vgenxl), device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory):
    """The same 8-frame 64x64 clip as an mp4 and as a folder of PNGs, plus an edited frame."""
    return write_clip_files(tmp_path_factory.mktemp("clip"), 8, 64, 64)
