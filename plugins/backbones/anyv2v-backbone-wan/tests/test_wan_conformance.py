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
