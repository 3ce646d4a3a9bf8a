import pytest
import torch

from anyv2v_core.testing.fixtures import toy_model, toy_site  # noqa: F401 (the toy backbone)

# The tiny models are far too small to gain from intra-op threads, and on a shared 2-core
# machine a second thread mostly spins: one thread keeps the suite fast and deterministic.
torch.set_num_threads(1)

from anyv2v_editor_instantid.testing import ANALYZER_REF as ANALYZER
from anyv2v_editor_instantid.testing import SKIN_A, SKIN_B


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory):
    from anyv2v_editor_instantid.tiny import build_tiny_sdxl

    return build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def tiny_instantid(tmp_path_factory, tiny_sdxl):
    """Tiny InstantID weights with the official pickled ip-adapter.bin only."""
    from anyv2v_editor_instantid.tiny import build_tiny_instantid

    return build_tiny_instantid(tmp_path_factory.mktemp("tiny-instantid"), tiny_sdxl)


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    """A source clip (PNG frames) with a face in every frame, the same clip with the face
    moved, a face image, a face image with two faces (the larger one = the face image's),
    and an image without a face."""
    from anyv2v_core import video
    from anyv2v_core.testing.tiny import synthetic_frames
    from anyv2v_editor_instantid.testing import draw_marker_face

    root = tmp_path_factory.mktemp("faces")
    frames = synthetic_frames(8, 64, 64, seed=1)
    video.write_frames_dir([draw_marker_face(f, (18 + i, 12, 46 + i, 48), SKIN_A) for i, f in enumerate(frames)],
                           root / "clip")
    video.write_frames_dir([draw_marker_face(f, (4, 20, 30, 56), SKIN_A) for f in frames], root / "clip-moved")
    background = synthetic_frames(1, 80, 64, seed=7)[0]
    draw_marker_face(background, (20, 10, 56, 54), SKIN_B).save(root / "face.png")
    draw_marker_face(draw_marker_face(background, (20, 10, 56, 54), SKIN_B), (62, 4, 74, 16), SKIN_A).save(
        root / "two-faces.png")
    draw_marker_face(background, (20, 10, 56, 54), SKIN_A).save(root / "face-other.png")
    background.save(root / "noface.png")
    return root


@pytest.fixture
def editor_args(tiny_sdxl, tiny_instantid, images):
    """The instantid options of a fast run on the tiny weights and the marker analyzer."""
    return ["--editor", "instantid", "--face-image", images / "face.png", "--face-analyzer", ANALYZER,
            "--sdxl-model", tiny_sdxl, "--instantid-model", tiny_instantid, "--instantid-steps", "3",
            "--min-side", "64", "--max-side", "64"]
