import pytest

from anyv2v_core.editors.image import ImageEditor
from anyv2v_core.protocols import EditRequest
from anyv2v_core.testing.conformance import EditorConformance
from anyv2v_core.testing.tiny import synthetic_frames


class TestImageEditor(EditorConformance):
    @pytest.fixture
    def editor(self):
        return ImageEditor()

    @pytest.fixture
    def edit_request(self, tmp_path):
        path = tmp_path / "edited.png"
        synthetic_frames(1, 48, 32, seed=11)[0].save(path)
        return EditRequest(prompt="x", edited_frame=path)
