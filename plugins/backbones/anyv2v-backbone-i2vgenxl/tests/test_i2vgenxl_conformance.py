import pytest

from anyv2v_core.testing.conformance import BackboneConformance


class TestI2VGenXLConformance(BackboneConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls, i2vgenxl):
        return i2vgenxl
