import numpy as np
import pytest
from PIL import Image

from anyv2v_core.testing.fixtures import one_torch_thread  # noqa: F401 (autouse)
from anyv2v_core.testing.fixtures import toy_model, toy_site  # noqa: F401 (the toy backbone)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """(path, model): a tiny random AnyDoor saved as our safetensors file."""
    from anyv2v_editor_anydoor.tiny import build_tiny_model

    path = tmp_path_factory.mktemp("anydoor") / "tiny-anydoor.safetensors"
    return path, build_tiny_model(path)


@pytest.fixture(scope="session")
def tiny_weights(tiny_model):
    return tiny_model[0]


def save_mask(path, shape, box):
    """A white rectangle ``box`` = (y0, y1, x0, x1) on black, ``shape`` = (H, W)."""
    mask = np.zeros(shape, np.uint8)
    y0, y1, x0, x1 = box
    mask[y0:y1, x0:x1] = 255
    Image.fromarray(mask).save(path)
    return path


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """An 8-frame 64x64 clip (mp4 + frames), a 48x40 reference with its mask, a target mask."""
    from anyv2v_core import video
    from anyv2v_core.testing.tiny import synthetic_frames

    root = tmp_path_factory.mktemp("inputs")
    frames = synthetic_frames(8, 64, 64, seed=1)
    video.write_video(frames, root / "source.mp4", fps=8)
    video.write_frames_dir(frames, root / "frames")
    synthetic_frames(1, 40, 48, seed=5)[0].save(root / "dog.png")
    save_mask(root / "dog_mask.png", (48, 40), (6, 42, 5, 33))
    save_mask(root / "cat_mask.png", (64, 64), (20, 44, 18, 46))
    save_mask(root / "empty_mask.png", (64, 64), (0, 0, 0, 0))
    save_mask(root / "small_mask.png", (32, 32), (4, 20, 4, 20))
    return root
