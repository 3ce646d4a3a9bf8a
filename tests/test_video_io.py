import numpy as np
import pytest

from anyv2v_core import video
from anyv2v_core.errors import InputError, OutputExistsError
from anyv2v_core.testing.tiny import synthetic_frames


def test_mp4_roundtrip(tmp_path):
    frames = synthetic_frames(6, 48, 32)
    path = video.write_video(frames, tmp_path / "a.mp4", fps=8)
    back = video.read_frames(path)
    assert len(back) == 6 and back[0].size == (48, 32)
    assert np.abs(np.asarray(back[3], dtype=int) - np.asarray(frames[3], dtype=int)).mean() < 12
    assert video.read_frames(path, 4)[3].size == (48, 32)
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_frames_folder_natural_order(tmp_path):
    frames = synthetic_frames(12, 16, 16)
    for i, f in enumerate(frames):
        f.save(tmp_path / f"f{i}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    back = video.read_frames(tmp_path)
    assert [f.tobytes() for f in back] == [f.tobytes() for f in frames]


def test_errors(tmp_path):
    with pytest.raises(InputError, match="source not found"):
        video.read_frames(tmp_path / "nope.mp4")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="neither a folder of frames nor a video"):
        video.read_frames(tmp_path / "x.txt")
    (tmp_path / "bad.mp4").write_text("not a video")
    with pytest.raises(InputError, match="cannot read video"):
        video.read_frames(tmp_path / "bad.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="has no frames"):
        video.read_frames(empty)
    video.write_frames_dir(synthetic_frames(3, 16, 16), tmp_path / "three")
    with pytest.raises(InputError, match="has 3 frames, 5 are needed"):
        video.read_frames(tmp_path / "three", 5)
    with pytest.raises(InputError, match="image not found"):
        video.load_image(tmp_path / "none.png")
    with pytest.raises(InputError, match="cannot read image"):
        video.load_image(tmp_path / "x.txt")


def test_no_overwrite_without_force_and_atomic_failure(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        video.write_video(synthetic_frames(2, 16, 16), target, fps=8)
    assert target.read_bytes() == b"keep"
    with pytest.raises(RuntimeError):
        with video.atomic_path(tmp_path / "new.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    video.write_video(synthetic_frames(2, 16, 16), target, fps=8, force=True)
    assert len(video.read_frames(target)) == 2


def test_frames_dir_refuses_non_empty(tmp_path):
    video.write_frames_dir(synthetic_frames(2, 8, 8), tmp_path / "d")
    with pytest.raises(OutputExistsError):
        video.write_frames_dir(synthetic_frames(2, 8, 8), tmp_path / "d")
    video.write_frames_dir(synthetic_frames(3, 8, 8), tmp_path / "d", force=True)
    assert len(list((tmp_path / "d").iterdir())) == 3


def test_resize_lanczos_only_when_needed():
    f = synthetic_frames(1, 40, 30)[0]
    assert video.resize(f, (40, 30)) is f
    assert video.resize(f, (64, 48)).size == (64, 48)


def test_frame_selection(tmp_path):
    frames = synthetic_frames(12, 16, 16)
    video.write_frames_dir(frames, tmp_path / "f")
    got = video.read_frames(tmp_path / "f", 3, video.FrameRange(start=2, stride=3))
    assert [g.tobytes() for g in got] == [frames[i].tobytes() for i in (2, 5, 8)]
    got = video.read_frames(tmp_path / "f", None, video.FrameRange(start=1, end=4))
    assert len(got) == 3
    with pytest.raises(InputError, match="is a time, but the source has no frame rate"):
        video.read_frames(tmp_path / "f", 2, video.FrameRange(start="1s"))
    mp4 = video.write_video(frames, tmp_path / "a.mp4", fps=4)
    assert len(video.read_frames(mp4, None, video.FrameRange(start="0.5s", end="2s"))) == 6  # frames 2..7
    with pytest.raises(InputError, match="--end .* must come after --start"):
        video.read_frames(mp4, 2, video.FrameRange(start=5, end=3))


def test_fit_and_unfit_modes():
    img = synthetic_frames(1, 90, 60)[0]
    for mode in video.RESIZE_MODES:
        fitted = video.fit(img, (64, 64), mode)
        assert fitted.size == (64, 64)
        assert video.unfit(fitted, img.size, img.size, mode).size == (90, 60)
    padded = np.asarray(video.fit(img, (64, 64), "pad"))
    assert padded[:5].max() == 0  # black bars top and bottom
    with pytest.raises(InputError, match="--resize-mode"):
        video.fit(img, (64, 64), "zoom")
