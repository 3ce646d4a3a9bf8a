"""Long and custom videos on the toy backbone: windows, sizes, audio."""

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
from typer.testing import CliRunner

from anyv2v_core import api, sampling, video
from anyv2v_core.cli import app
from anyv2v_core.testing.tiny import synthetic_frames

FAST = ["--backbone", "toy", "--num-frames", "8", "--size", "64x64", "--steps", "5", "--inversion-steps", "10", "--device", "cpu"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    video.write_frames_dir(synthetic_frames(40, 64, 64, seed=3), root / "frames")
    return root


def test_long_clip_in_windows_keeps_every_frame_and_seams(toy_model, clip_files, long_clip, tmp_path,
                                                         monkeypatch):
    seen_firsts, window_images = [], []
    real_many, real_images = sampling.pnp_sample_many, api.to_images

    def spy_many(bb, inv, first, targets, *a, **kw):
        seen_firsts.append(targets[0].edited_frame.copy())
        return real_many(bb, inv, first, targets, *a, **kw)

    def spy_images(frames):
        images = real_images(frames)
        window_images.append(images)
        return images

    monkeypatch.setattr(sampling, "pnp_sample_many", spy_many)
    monkeypatch.setattr(api, "to_images", spy_images)
    r = run("edit", long_clip / "frames", "-e", clip_files / "edited.png", "-p", "x", "--model", toy_model,
            "--long", "--out", tmp_path / "long.mp4", "--frames-dir", tmp_path / "f", *FAST)
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "f").glob("*.png"))) == 40
    assert len(video.read_frames(tmp_path / "long.mp4")) == 40
    starts = api.plan_windows(40, 8, 1)
    assert starts == [0, 7, 14, 21, 28, 32] and len(window_images) == len(starts)
    for w in range(1, len(starts)):
        # window w's edited first frame is window w-1's frame at the seam, before blending
        prev = window_images[w - 1][starts[w] - starts[w - 1]]
        assert seen_firsts[w].tobytes() == prev.tobytes()


def test_plan_windows_and_blending():
    assert api.plan_windows(16, 16) == [0]
    assert api.plan_windows(17, 16, 1) == [0, 1]
    assert api.plan_windows(31, 16, 1) == [0, 15]
    assert api.plan_windows(40, 8, 2) == [0, 6, 12, 18, 24, 30, 32]
    with pytest.raises(Exception, match="fewer than one window"):
        api.plan_windows(5, 8)
    a, b = synthetic_frames(1, 8, 8, seed=1)[0], synthetic_frames(1, 8, 8, seed=2)[0]
    acc = [a, a]
    api._merge_window(acc, [b, b, b], 1)
    assert len(acc) == 4 and acc[0] is a and acc[2] is b and acc[3] is b
    mid = np.asarray(acc[1], dtype=float)
    assert np.allclose(mid, (np.asarray(a, dtype=float) + np.asarray(b, dtype=float)) / 2, atol=1)


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
def test_odd_size_round_trips_to_requested_size(toy_model, clip_files, tmp_path, mode):
    src = tmp_path / "odd"
    video.write_frames_dir(synthetic_frames(8, 90, 60, seed=4), src)
    r = run("edit", src, "-e", clip_files / "edited.png", "-p", "x", "--model", toy_model, "--resize-mode", mode,
            "--out-size", "source", "--out", tmp_path / f"{mode}.mp4", "--frames-dir", tmp_path / mode, *FAST)
    assert r.exit_code == 0, r.output
    frames = video.read_frames(tmp_path / mode)
    assert len(frames) == 8 and frames[0].size == (90, 60)
    assert video.read_frames(tmp_path / f"{mode}.mp4")[0].size == (90, 60)


def test_frame_selection_and_short_clip_error(toy_model, clip_files, long_clip, tmp_path):
    r = run("edit", long_clip / "frames", "-e", clip_files / "edited.png", "-p", "x", "--model", toy_model,
            "--start", "30", "--stride", "2", "--out", tmp_path / "o.mp4", *FAST)
    assert r.exit_code == 2
    assert "has 40 frames (from 30 every 2: 5), 8 are needed" in r.output


def test_audio_is_copied(toy_model, clip_files, tmp_path):
    silent = tmp_path / "silent.mp4"
    video.write_video(synthetic_frames(8, 64, 64, seed=5), silent, fps=8)
    with_audio = tmp_path / "with_audio.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(silent), "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1", "-c:v", "copy", "-c:a", "aac", "-shortest", str(with_audio)],
                   check=True)
    assert video.has_audio(with_audio) and not video.has_audio(silent)
    r = run("edit", with_audio, "-e", clip_files / "edited.png", "-p", "x", "--model", toy_model,
            "--out", tmp_path / "out.mp4", *FAST)
    assert r.exit_code == 0, r.output
    assert video.has_audio(tmp_path / "out.mp4")
    r = run("edit", with_audio, "-e", clip_files / "edited.png", "-p", "x", "--model", toy_model,
            "--out", tmp_path / "mute.mp4", "--no-audio", *FAST)
    assert r.exit_code == 0 and not video.has_audio(tmp_path / "mute.mp4")
