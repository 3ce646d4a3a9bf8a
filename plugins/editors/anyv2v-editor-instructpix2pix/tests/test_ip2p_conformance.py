import pytest

from anyv2v_core.protocols import EditRequest
from anyv2v_core.testing.conformance import EditorConformance


class TestInstructPix2PixConformance(EditorConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def editor(cls, ip2p_editor):
        return ip2p_editor

    @pytest.fixture
    def edit_request(self):
        return EditRequest(prompt="a blue square", seed=7, options={"instruction": "make it blue", "editor_steps": 3})
