import pytest

from anyv2v_core.testing.conformance import BackboneConformance


class TestConsistI2VConformance(BackboneConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls, consisti2v):
        return consisti2v
