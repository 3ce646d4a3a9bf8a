import pytest

from anyv2v_core.testing.fixtures import one_torch_thread  # noqa: F401 (autouse)
from anyv2v_core.testing.fixtures import toy_model, toy_site  # noqa: F401 (the toy backbone)
from anyv2v_core.testing.tiny import write_clip_files


@pytest.fixture(scope="session")
def tiny_ip2p(tmp_path_factory):
    """A tiny random InstructPix2Pix in the diffusers layout (built once per session)."""
    from anyv2v_editor_instructpix2pix.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-ip2p"))


@pytest.fixture(scope="session")
def ip2p_editor(tiny_ip2p):
    import torch

    from anyv2v_editor_instructpix2pix.editor import InstructPix2PixEditor

    return InstructPix2PixEditor(device="cpu", dtype=torch.float32, model=str(tiny_ip2p))


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory):
    """A 4-frame 64x48 clip as an mp4 and as a folder of PNGs."""
    return write_clip_files(tmp_path_factory.mktemp("clip"), 4, 64, 48, edited=False)
