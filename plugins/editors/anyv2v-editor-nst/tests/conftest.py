import pytest

from anyv2v_core.testing.fixtures import one_torch_thread  # noqa: F401 (autouse)
from anyv2v_core.testing.fixtures import toy_model, toy_site  # noqa: F401 (the toy backbone)
from anyv2v_core.testing.tiny import write_clip_files


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory):
    """A TORCH_HOME whose hub cache holds a tiny random VGG19-shaped network under
    torchvision's file name, where the editor looks by default."""
    from anyv2v_editor_nst.tiny import build_tiny_vgg19

    home = tmp_path_factory.mktemp("torch-home")
    build_tiny_vgg19(home / "hub" / "checkpoints")
    return home


@pytest.fixture(autouse=True)
def _tiny_weights_env(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ANYV2V_NST_WEIGHTS", raising=False)


@pytest.fixture(scope="session")
def style_image(tmp_path_factory):
    """A striped, colourful style image (different size and aspect from the frames)."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:40, 0:56]
    arr = np.stack([(xx * 37) % 256, (yy * 53) % 256, ((xx + yy) * 11) % 256], -1).astype(np.uint8)
    path = tmp_path_factory.mktemp("style") / "style.png"
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory):
    """An 8-frame 64x64 clip as an mp4 and as a folder of PNGs."""
    return write_clip_files(tmp_path_factory.mktemp("clip"), 8, 64, 64, edited=False)
