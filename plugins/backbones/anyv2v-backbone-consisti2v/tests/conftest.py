import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model's ops are far too small for intra-op threads: with 2 threads on a
    busy 2-core machine a denoiser call costs ~10x the CPU time of 1 thread. Restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_consisti2v(tmp_path_factory):
    """A tiny random ConsistI2V saved in the official folder layout (built once per session)."""
    from anyv2v_backbone_consisti2v.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-consisti2v"))


@pytest.fixture(scope="session")
def consisti2v(tiny_consisti2v):
    from anyv2v_backbone_consisti2v.backbone import ConsistI2VBackbone

    return ConsistI2VBackbone(model=str(tiny_consisti2v), device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory):
    """A 3-frame 64x64 clip as an mp4 and as a folder of PNGs, plus an edited frame."""
    from anyv2v_core import video
    from anyv2v_core.testing.tiny import synthetic_frames

    root = tmp_path_factory.mktemp("clip")
    frames = synthetic_frames(3, 64, 64, seed=1)
    video.write_video(frames, root / "source.mp4", fps=8)
    video.write_frames_dir(frames, root / "frames")
    synthetic_frames(1, 64, 64, seed=9)[0].save(root / "edited.png")
    return root
