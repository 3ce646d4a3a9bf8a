"""The conformance kit on the instantid editor (tiny weights, the marker face analyzer)."""

import pytest
import torch

from anyv2v_core.testing.conformance import EditorConformance
from anyv2v_core.testing.tiny import synthetic_frames
from anyv2v_editor_instantid.editor import InstantIDEditor
from anyv2v_editor_instantid.testing import ANALYZER_REF as ANALYZER
from anyv2v_editor_instantid.testing import SKIN_A, draw_marker_face


class TestInstantIDConformance(EditorConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def editor(cls):
        return InstantIDEditor(device="cpu", dtype=torch.float32)

    @pytest.fixture
    def first_frame(self):
        # the kit's frame has no face, and an identity editor refuses a frame without one
        return draw_marker_face(synthetic_frames(1, 64, 64, seed=3)[0], (16, 10, 48, 50), SKIN_A)

    @pytest.fixture
    def edit_request(self, images, tiny_sdxl, tiny_instantid):
        from anyv2v_core.protocols import EditRequest

        return EditRequest(prompt="a person", seed=5, options={
            "face_image": images / "face.png", "face_analyzer": ANALYZER, "sdxl_model": str(tiny_sdxl),
            "instantid_model": str(tiny_instantid), "instantid_steps": 2, "min_side": 64, "max_side": 64})
