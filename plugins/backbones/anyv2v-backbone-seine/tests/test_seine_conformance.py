import pytest

from anyv2v_core.testing.conformance import BackboneConformance


class TestSEINEConformance(BackboneConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls, seine):
        return seine
