import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These tiny models are dominated by per-op overhead; on a shared 2-core machine two
    intra-op threads make them several times slower. Set per test module of this plugin and
    restored after it, so other plugins' tests keep their setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_seine(tmp_path_factory):
    """A tiny random SEINE saved in the layout the real loader reads (built once)."""
    from anyv2v_backbone_seine.backbone import SEINEBackbone

    return SEINEBackbone.build_tiny(tmp_path_factory.mktemp("tiny-seine"))


@pytest.fixture(scope="session")
def seine(tiny_seine):
    from anyv2v_backbone_seine.backbone import SEINEBackbone

    return SEINEBackbone(model=str(tiny_seine), device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory):
    """A 4-frame 64x64 clip as an mp4 and as a folder of PNGs, plus an edited frame."""
    from anyv2v_core import video
    from anyv2v_core.testing.tiny import synthetic_frames

    root = tmp_path_factory.mktemp("clip")
    frames = synthetic_frames(4, 64, 64, seed=1)
    video.write_video(frames, root / "source.mp4", fps=8)
    video.write_frames_dir(frames, root / "frames")
    synthetic_frames(1, 64, 64, seed=9)[0].save(root / "edited.png")
    return root
