import pytest

from anyv2v_backbone_wan.tiny import tiny_clip
from anyv2v_core.testing.conformance import STEPS, BackboneConformance


class TestWan21Conformance(BackboneConformance):
    clip = tiny_clip()
    latent_frames = 3
    inversion_steps = STEPS  # inversion on the edit's own sigma grid

    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls, wan21):
        return wan21


class TestWan22Conformance(BackboneConformance):
    clip = tiny_clip()
    latent_frames = 3
    inversion_steps = STEPS  # inversion on the edit's own sigma grid

    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls, wan22):
        return wan22


class TestWan22A14BConformance(BackboneConformance):
    """Two experts: the injection patterns name both; each step runs one."""

    clip = tiny_clip()
    latent_frames = 3
    inversion_steps = STEPS

    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls, tiny_wan22_a14b):
        import torch

        from anyv2v_backbone_wan.backbone import WanBackbone

        return WanBackbone(str(tiny_wan22_a14b), device="cpu", dtype=torch.float32)
