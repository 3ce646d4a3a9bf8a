import pytest
import torch

from anyv2v_core.testing.fixtures import one_torch_thread  # noqa: F401 (autouse)
from anyv2v_core.testing.tiny import write_clip_files


@pytest.fixture(scope="session")
def tiny_seine(tmp_path_factory):
    """A tiny random SEINE saved in the layout the real loader reads (built once)."""
    from anyv2v_backbone_seine.backbone import SEINEBackbone

    return SEINEBackbone.build_tiny(tmp_path_factory.mktemp("tiny-seine"))


@pytest.fixture(scope="session")
def seine(tiny_seine):
    from anyv2v_backbone_seine.backbone import SEINEBackbone

    return SEINEBackbone(model=str(tiny_seine), device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory):
    """A 4-frame 64x64 clip as an mp4 and as a folder of PNGs, plus an edited frame."""
    return write_clip_files(tmp_path_factory.mktemp("clip"), 4, 64, 64)
