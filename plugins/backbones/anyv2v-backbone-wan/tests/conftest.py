import pytest
import torch

from anyv2v_backbone_wan.tiny import tiny_clip

CLIP = tiny_clip()


@pytest.fixture(scope="session")
def tiny_wan21(tmp_path_factory):
    """A tiny random Wan2.1-I2V saved in diffusers layout (built once per session)."""
    from anyv2v_backbone_wan.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-wan21"), family="wan2.1-i2v")


@pytest.fixture(scope="session")
def tiny_wan22(tmp_path_factory):
    """A tiny random Wan2.2-TI2V (expand_timesteps) saved in diffusers layout."""
    from anyv2v_backbone_wan.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-wan22"), family="wan2.2-ti2v")


@pytest.fixture(scope="session")
def tiny_wan22_a14b(tmp_path_factory):
    """A tiny random Wan2.2-I2V-A14B layout: two experts switched at boundary_ratio."""
    from anyv2v_backbone_wan.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-wan22-a14b"), family="wan2.2-i2v-a14b")


@pytest.fixture(scope="session")
def wan21(tiny_wan21):
    from anyv2v_backbone_wan.backbone import WanBackbone

    return WanBackbone(model=str(tiny_wan21), device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def wan22(tiny_wan22):
    from anyv2v_backbone_wan.backbone import WanBackbone

    return WanBackbone(model=str(tiny_wan22), device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session", params=["wan2.1-i2v", "wan2.2-ti2v"])
def wan(request):
    return request.getfixturevalue("wan21" if request.param == "wan2.1-i2v" else "wan22")


@pytest.fixture(scope="session")
def frames():
    from anyv2v_core.testing.tiny import synthetic_frames

    return synthetic_frames(CLIP.n_frames, CLIP.width, CLIP.height, seed=1)


@pytest.fixture(scope="session")
def edited():
    from anyv2v_core.testing.tiny import synthetic_frames

    return synthetic_frames(1, CLIP.width, CLIP.height, seed=5)[0]
