import pytest
import torch

from anyv2v_core.testing.fixtures import one_torch_thread  # noqa: F401 (autouse)
from anyv2v_core.testing.tiny import write_clip_files


@pytest.fixture(scope="session")
def tiny_consisti2v(tmp_path_factory):
    """A tiny random ConsistI2V saved in the official folder layout (built once per session)."""
    from anyv2v_backbone_consisti2v.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-consisti2v"))


@pytest.fixture(scope="session")
def consisti2v(tiny_consisti2v):
    from anyv2v_backbone_consisti2v.backbone import ConsistI2VBackbone

    return ConsistI2VBackbone(model=str(tiny_consisti2v), device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory):
    """A 3-frame 64x64 clip as an mp4 and as a folder of PNGs, plus an edited frame."""
    return write_clip_files(tmp_path_factory.mktemp("clip"), 3, 64, 64)
