import pytest
import torch


@pytest.fixture(scope="session")
def tiny_i2vgenxl(tmp_path_factory):
    """A tiny random I2VGen-XL saved in diffusers layout (built once per session)."""
    from anyv2v_backbone_i2vgenxl.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-i2vgenxl"))


@pytest.fixture(scope="session")
def i2vgenxl(tiny_i2vgenxl):
    from anyv2v_backbone_i2vgenxl.backbone import I2VGenXLBackbone

    return I2VGenXLBackbone(model=str(tiny_i2vgenxl), device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory):
    """The same 8-frame 64x64 clip as an mp4 and as a folder of PNGs, plus an edited frame."""
    from anyv2v_core import video
    from anyv2v_core.testing.tiny import synthetic_frames

    root = tmp_path_factory.mktemp("clip")
    frames = synthetic_frames(8, 64, 64, seed=1)
    video.write_video(frames, root / "source.mp4", fps=8)
    video.write_frames_dir(frames, root / "frames")
    synthetic_frames(1, 64, 64, seed=9)[0].save(root / "edited.png")
    return root
