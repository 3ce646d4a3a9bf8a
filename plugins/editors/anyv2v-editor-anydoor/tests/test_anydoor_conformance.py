import pytest

from anyv2v_core.protocols import EditRequest
from anyv2v_core.testing.conformance import EditorConformance


class TestAnyDoorConformance(EditorConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def editor(cls, tiny_weights):
        from anyv2v_editor_anydoor.editor import AnyDoorEditor

        return AnyDoorEditor(device="cpu", model=str(tiny_weights))

    @pytest.fixture
    def edit_request(self, files):
        return EditRequest(prompt="a dog", seed=7, options={
            "reference": files / "dog.png", "reference_mask": files / "dog_mask.png",
            "target_mask": files / "cat_mask.png", "ddim_steps": 3, "guidance": 5.0, "control_strength": 1.0,
        })
