import pytest

from anyv2v_core.protocols import EditRequest
from anyv2v_core.testing.conformance import EditorConformance


class TestNSTConformance(EditorConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def editor(cls, torch_home):
        from anyv2v_editor_nst.editor import NSTEditor

        return NSTEditor(device="cpu")

    @pytest.fixture
    def edit_request(self, style_image):
        return EditRequest(prompt="a painting", seed=3,
                           options={"style_image": style_image, "iterations": 5, "editor_size": 48, "init": "noise"})
