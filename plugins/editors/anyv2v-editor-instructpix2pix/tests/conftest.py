import pytest


@pytest.fixture(scope="session")
def tiny_ip2p(tmp_path_factory):
    """A tiny random InstructPix2Pix in the diffusers layout (built once per session)."""
    from anyv2v_editor_instructpix2pix.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-ip2p"))


@pytest.fixture(scope="session")
def ip2p_editor(tiny_ip2p):
    import torch

    from anyv2v_editor_instructpix2pix.editor import InstructPix2PixEditor

    return InstructPix2PixEditor(device="cpu", dtype=torch.float32, model=str(tiny_ip2p))


@pytest.fixture(scope="session")
def tiny_i2vgenxl(tmp_path_factory):
    from anyv2v_backbone_i2vgenxl.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-i2vgenxl"))


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory):
    """A 4-frame 64x48 clip as an mp4 and as a folder of PNGs."""
    from anyv2v_core import video
    from anyv2v_core.testing.tiny import synthetic_frames

    root = tmp_path_factory.mktemp("clip")
    frames = synthetic_frames(4, 64, 48, seed=1)
    video.write_video(frames, root / "source.mp4", fps=8)
    video.write_frames_dir(frames, root / "frames")
    return root


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine OpenMP threads that
    spin-wait for each other make them 10-100x slower: run them on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
