"""Nothing reported as done that is not done (docs/reliability.md): checked video writes,
damaged inputs, checked inversion files, the cache's damaged entries, the batch run lock,
file permissions. The end-to-end runs on the tiny I2VGen-XL are in that plugin's
test_i2vgenxl_reliability.py."""

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.batch import LOCK_NAME, check_run_lock, run_lock
from anyv2v_core.cache import CacheKey, InversionCache
from anyv2v_core.cli import app
from anyv2v_core.errors import BatchLockedError, InputError, WriteError
from anyv2v_core.inversion import CHECKSUM_KEY, InversionResult
from anyv2v_core.protocols import ClipSpec
from anyv2v_core.testing.tiny import synthetic_frames


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- video writes ------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(64, 48), (63, 47)])
def test_written_video_is_byte_identical_to_imageio_writer(tmp_path, size):
    frames = synthetic_frames(8, *size, seed=3)
    ours = video.write_video(frames, tmp_path / "ours.mp4", fps=8)
    ref = imageio_ffmpeg.write_frames(str(tmp_path / "ref.mp4"), size, fps=8, macro_block_size=2, quality=8,
                                      ffmpeg_log_level="error")
    ref.send(None)
    for f in frames:
        ref.send(np.ascontiguousarray(np.asarray(f, dtype=np.uint8)))
    ref.close()
    assert ours.read_bytes() == (tmp_path / "ref.mp4").read_bytes()
    check = video.check_video(ours)
    assert (check.readable, check.decoded, check.promised, check.errors) == (True, 8, 8, ())


@pytest.mark.parametrize("name", ["out.webm", "x.gif", "x.txt", "noext"])
def test_unwritable_suffix_is_refused_before_writing(tmp_path, name):
    with pytest.raises(InputError, match=r"must end in \.mp4, \.mov, \.mkv, \.m4v, \.avi"):
        video.check_video_output(tmp_path / name)
    with pytest.raises(InputError, match="webm and gif are not supported"):
        video.write_video(synthetic_frames(2, 16, 16), tmp_path / name, fps=8)
    assert list(tmp_path.iterdir()) == []


def run_with_file_limit(code, cwd, limit=4096):
    """Run ``code`` in a Python whose files may not grow beyond ``limit`` bytes (a full
    disk as ffmpeg and PIL see it: writes fail with EFBIG / SIGXFSZ)."""
    prog = f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n" + textwrap.dedent(code)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", prog], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=120)


def test_full_disk_write_fails_and_leaves_nothing(tmp_path):
    proc = run_with_file_limit("""
        from anyv2v_core import video
        from anyv2v_core.errors import WriteError
        from anyv2v_core.testing.tiny import synthetic_frames
        frames = synthetic_frames(8, 64, 64, seed=3)
        for write, target in ((video.write_video, "full.mp4"), (video.write_frames_dir, "frames")):
            try:
                write(frames, target, **({"fps": 8} if target.endswith(".mp4") else {}))
            except WriteError as exc:
                print("WriteError:", exc)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("WriteError: writing full.mp4 failed: ffmpeg failed (exit status")
    assert lines[1] == "WriteError: writing frames to frames failed: File too large; nothing was written"
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file or folder


def test_full_disk_inversion_image_and_cache_writes(tmp_path):
    proc = run_with_file_limit("""
        import logging
        import numpy as np, torch
        from anyv2v_core import video
        from anyv2v_core.cache import CacheKey, InversionCache
        from anyv2v_core.errors import WriteError
        from anyv2v_core.inversion import InversionResult
        from anyv2v_core.protocols import ClipSpec
        from anyv2v_core.testing.tiny import synthetic_frames
        logging.basicConfig(format="warning: %(message)s")
        inv = InversionResult({t: torch.zeros(1, 4, 8, 32, 32) for t in (961, 941)}, "b", "m", ClipSpec(8, 256, 256, 8),
                              500, "", np.zeros((8, 8, 3), np.uint8))
        for write in (lambda: inv.save("inv.safetensors"),
                      lambda: video.save_image(synthetic_frames(1, 256, 256)[0], "frame.png")):
            try:
                write()
            except WriteError as exc:
                print("WriteError:", exc)
        key = CacheKey("s", "b", "m", 500, "", 8, 256, 256, 8, "torch.float32", "cpu", "mean")
        print("stored:", InversionCache("cache").store_or_warn(key, inv))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == [
        "WriteError: writing inv.safetensors failed: Error while serializing: I/O error: File too large (os error 27); "
        "nothing was written",
        "WriteError: writing frame.png failed: File too large; nothing was written"]
    assert proc.stdout.splitlines()[2] == "stored: None"  # only a warning: the edit goes on
    assert "warning: could not store the inversion in the cache cache" in proc.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cache"]  # an empty cache folder, nothing else


def test_written_file_that_does_not_read_back_is_not_moved_into_place(tmp_path, monkeypatch):
    """The read-back check itself: a file that decodes to fewer frames than were sent."""
    real = video.check_video

    def short(path):
        check = real(path)
        return video.VideoCheck(check.readable, check.decoded - 1, check.promised, check.size, check.errors)

    monkeypatch.setattr(video, "check_video", short)
    with pytest.raises(WriteError, match=r"writing .*out.mp4 failed: it reads back as 7 of 8 frames; nothing was"):
        video.write_video(synthetic_frames(8, 32, 32), tmp_path / "out.mp4", fps=8)
    assert list(tmp_path.iterdir()) == []


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = video.write_video(synthetic_frames(2, 16, 16), tmp_path / "a.mp4", fps=8)
        folder = video.write_frames_dir(synthetic_frames(2, 16, 16), tmp_path / "frames")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644
    assert folder.stat().st_mode & 0o777 == 0o755


# -- damaged inputs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clean_mkv(tmp_path_factory):
    return video.write_video(synthetic_frames(24, 64, 64, seed=3), tmp_path_factory.mktemp("v") / "src.mkv", fps=8)


def test_truncated_video_is_read_with_a_warning(clean_mkv, tmp_path, caplog):
    data = clean_mkv.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 7 // 10])
    with caplog.at_level(logging.WARNING, logger="anyv2v_core.video"):
        frames = video.read_frames(cut)
    assert 0 < len(frames) < 24
    [record] = caplog.records
    assert record.getMessage().startswith(
        f"source {cut} is truncated or damaged: its container promises 24 frames, only {len(frames)} are there")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="anyv2v_core.video"):
        assert len(video.read_frames(cut, 4)) == 4  # a partial read: the rest is demuxed, not decoded
    assert f"promises 24 frames, only {len(frames)} are there" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="anyv2v_core.video"):
        assert len(video.read_frames(clean_mkv)) == 24
        assert len(video.read_frames(clean_mkv, 4)) == 4
    assert caplog.records == []  # an intact file reads silently


def test_flipped_bytes_are_read_with_a_warning(tmp_path, caplog):
    src = video.write_video(synthetic_frames(24, 64, 64, seed=3), tmp_path / "src.mp4", fps=8)
    data = bytearray(src.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 300, 5):
        data[i] ^= 0xFF
    bad = tmp_path / "flipped.mp4"
    bad.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="anyv2v_core.video"):
        video.read_frames(bad, 8)
    [record] = caplog.records
    assert "is truncated or damaged" in record.getMessage() and "decoding error(s)" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_frames_folder_of_mixed_sizes_is_refused_unless_asked(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(synthetic_frames(3, 64, 64)):
        f.save(folder / f"{i}.png")
    synthetic_frames(1, 80, 64)[0].save(folder / "3.png")
    with pytest.raises(InputError, match=r"mixes frame sizes \(0.png is 64x64, 3.png is 80x64\).*--mixed-sizes"):
        video.read_frames(folder)
    assert len(video.read_frames(folder, 3)) == 3  # the frames used agree
    assert [f.size for f in video.read_frames(folder, mixed_sizes=True)][-1] == (80, 64)


def test_relative_name_with_a_colon_is_a_plain_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "2024-01-01T12:30.mp4"
    video.write_video(synthetic_frames(8, 32, 32), name, fps=8)
    assert len(video.read_frames(name)) == 8 and video.video_fps(name) == 8.0
    assert video.ffmpeg_file(name) == str(tmp_path / name)


# -- stored inversion files --------------------------------------------------------------------
def inversion():
    g = torch.Generator().manual_seed(0)
    return InversionResult(
        latents={t: torch.randn(1, 4, 3, 8, 8, generator=g) for t in (961, 941)}, backbone="b", model_id="m",
        clip=ClipSpec(3, 64, 64, 8), steps=500, prompt="", source_first_frame=np.zeros((64, 64, 3), np.uint8),
    )


def test_inversion_file_with_one_flipped_bit_is_refused(tmp_path):
    path = inversion().save(tmp_path / "inv.safetensors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # a bit of the last tensor's data
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as exc:
        InversionResult.load(path)
    assert str(exc.value) == (f"inversion file {path} is damaged (its content does not match its checksum); "
                              "run `anyv2v invert` again")


def test_inversion_file_without_checksum_loads_with_a_warning(tmp_path, caplog):
    from safetensors import safe_open
    from safetensors.torch import save_file

    inv = inversion()
    path = inv.save(tmp_path / "inv.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    assert len(meta.pop(CHECKSUM_KEY)) == 64
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata=meta)  # as anyv2v wrote it before checksums
    with caplog.at_level(logging.WARNING, logger="anyv2v_core.inversion"):
        back = InversionResult.load(old)
    assert torch.equal(back.latents[961], inv.latents[961])
    assert "has no checksum" in caplog.text and "used unverified" in caplog.text


# -- cache -------------------------------------------------------------------------------------
def cache_key(steps=500):
    return CacheKey(source="s", backbone="b", model="m", steps=steps, prompt="", n_frames=3, width=64, height=64,
                    fps=8, dtype="torch.float32", device="cpu", encoding="mean")


def test_cache_lists_and_removes_damaged_entries(tmp_path):
    cache = InversionCache(tmp_path)
    good, gone, broken = (cache_key(s).digest for s in (500, 250, 100))
    for s in (500, 250, 100):
        cache.store(cache_key(s), inversion())
    (tmp_path / f"{gone}.safetensors").unlink()  # data file gone
    (tmp_path / f"{broken}.json").write_text("{not json")  # manifest damaged
    assert [e.digest for e in cache.entries()] == [good]
    assert cache.damaged() == sorted([gone, broken])
    r = CliRunner().invoke(app, ["cache", "ls", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 0 and "1 entries" in r.output and "2 damaged entries" in r.output
    r = CliRunner().invoke(app, ["cache", "rm", "--all", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 0 and "removed 3 entries" in r.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--older-than", "-5d"], "--older-than must not be negative, got '-5d'"),
    (["--max-size", "-1GB"], "--max-size must not be negative, got '-1GB'"),
])
def test_cache_prune_refuses_negative_limits(tmp_path, args, message):
    cache = InversionCache(tmp_path)
    cache.store(cache_key(), inversion())
    r = CliRunner().invoke(app, ["cache", "prune", *args, "--cache-dir", str(tmp_path)])
    assert r.exit_code == 2 and r.output.strip() == f"Error: {message}"
    assert len(cache.entries()) == 1  # nothing removed


# -- batch run lock ----------------------------------------------------------------------------
@pytest.fixture
def other_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def write_lock(folder, pid, host=None):
    folder.mkdir(parents=True, exist_ok=True)
    owner = {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}
    (folder / LOCK_NAME).write_text(json.dumps(owner))


def test_run_lock_refuses_a_live_holder(tmp_path, other_process):
    write_lock(tmp_path, other_process.pid)
    message = (f"another `anyv2v batch` run is writing to {tmp_path} (PID {other_process.pid} on "
               f"{socket.gethostname()}, since 2026-01-01T00:00:00+00:00); wait for it to finish, or delete "
               f"{tmp_path / LOCK_NAME} if that process is gone")
    with pytest.raises(BatchLockedError) as exc:
        check_run_lock(tmp_path)
    assert str(exc.value) == message and exc.value.exit_code == 2
    with pytest.raises(BatchLockedError):
        with run_lock(tmp_path):
            pass
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == other_process.pid  # left alone


def test_run_lock_takes_over_a_stale_lock_and_is_reentrant(tmp_path, other_process):
    other_process.kill()
    other_process.wait()
    write_lock(tmp_path, other_process.pid)  # its process is gone
    with run_lock(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with run_lock(tmp_path):  # run_batch inside the CLI's hold
            check_run_lock(tmp_path)
        assert path.exists()
    assert not path.exists()
    write_lock(tmp_path, other_process.pid, host="elsewhere")  # another host: never presumed stale
    with pytest.raises(BatchLockedError, match="on elsewhere"):
        check_run_lock(tmp_path)


def test_two_processes_never_hold_the_lock_at_once(tmp_path):
    release = tmp_path / "release"
    code = textwrap.dedent(f"""
        import os, time
        from anyv2v_core.batch import run_lock
        from anyv2v_core.errors import BatchLockedError
        try:
            with run_lock({str(tmp_path)!r}):
                print("held", flush=True)
                while not os.path.exists({str(release)!r}):
                    time.sleep(0.05)
        except BatchLockedError as exc:
            print("refused", flush=True)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = sorted(p.stdout.readline().strip() for p in procs)  # every contender has tried
    release.touch()
    for p in procs:
        p.communicate(timeout=60)
    assert outs == ["held", "refused", "refused"]
    assert not (tmp_path / LOCK_NAME).exists()


# -- hints name the right flag -----------------------------------------------------------------
def test_offline_clip_model_hint_names_clip_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    clip = video.write_video(synthetic_frames(2, 16, 16), tmp_path / "clip.mp4", fps=8)
    r = CliRunner().invoke(app, ["eval", str(clip), "-p", "x", "--clip-model", "nobody/no-clip"])
    assert r.exit_code == 2
    assert "or pass --clip-model /path/to/local/folder" in r.output and "--model " not in r.output


# -- memory estimate ---------------------------------------------------------------------------
def test_memory_estimate_grows_with_the_request_and_names_its_parts(tmp_path):
    from anyv2v_core.memory import MemoryProfile, estimate_edit, weight_bytes

    small = estimate_edit(None, n_frames=16, width=512, height=512, dtype_bytes=2)
    assert small.branches == 3 and small.weights is None
    assert small.denoiser == 3 * 16 * 320 * 64 * 64 * 2 * 16  # branches x frames x channels x latent px x bytes x live
    bigger = estimate_edit(None, n_frames=16, width=1024, height=512, dtype_bytes=2, edits_per_batch=4)
    assert bigger.branches == 9 and bigger.denoiser == small.denoiser * 2 * 3
    tiled = estimate_edit(None, n_frames=16, width=8192, height=8192, dtype_bytes=2, vae_tiling=True)
    assert tiled.vae == small.vae  # a 512-pixel tile, whatever the frame size
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "w.safetensors").write_bytes(b"\0" * 4000)
    (tmp_path / "config.json").write_text("{}")
    assert weight_bytes(str(tmp_path), 4) == 4000 and weight_bytes(str(tmp_path), 2) == 2000
    declared = estimate_edit(MemoryProfile(parameters=10**9), n_frames=2, width=64, height=64, dtype_bytes=2)
    assert declared.weights == 2 * 10**9


def test_memory_check_refuses_with_the_estimate_and_what_to_change():
    from anyv2v_core.memory import available_bytes, check_memory, estimate_edit

    estimate = estimate_edit(None, n_frames=16, width=8192, height=8192, dtype_bytes=4, edits_per_batch=2)
    with pytest.raises(InputError) as exc:
        check_memory(estimate, "cpu", available=16 << 30)
    assert str(exc.value) == (
        f"this edit needs about {estimate.total / (1 << 30):.1f} GB (weights not counted, denoiser 1600.0 GB for 5 "
        "branches, VAE 192.0 GB, latents 24.5 GB) but cpu has 16.0 GB available; use a smaller --size, fewer "
        "--num-frames, a smaller --max-batch, or --skip-memory-check if you know better")
    check_memory(estimate_edit(None, n_frames=8, width=64, height=64, dtype_bytes=4), "cpu", available=16 << 30)
    assert available_bytes("cpu") > 0


def test_ui_server_caps_and_memory_check_before_loading(tmp_path):
    from PIL import Image

    from anyv2v_core.ui.engine import Engine, EngineSettings

    source = video.write_video(synthetic_frames(8, 32, 32), tmp_path / "clip.mp4", fps=8)
    engine = Engine(EngineSettings(out_dir=tmp_path / "out", device="cpu", dtype="float32", max_size=256,
                                   max_frames=16, models={"i2vgenxl": str(tmp_path / "no-model")}))
    first = Image.new("RGB", (32, 32))
    with pytest.raises(InputError, match=r"^this server allows sizes up to 256 pixels a side, not 512x256 "
                                         r"\(anyv2v ui --max-size\)$"):
        engine.generate(str(source), first, "p", backbone="i2vgenxl", settings={"size": "512x256"})
    with pytest.raises(InputError, match=r"^this server allows up to 16 frames, not 32 \(anyv2v ui --max-frames\)$"):
        engine.generate(str(source), first, "p", backbone="i2vgenxl", settings={"num_frames": 32})
    engine.settings.max_size = 8192
    with pytest.raises(InputError, match=r"^this edit needs about .* but cpu has .* available"):
        engine.generate(str(source), first, "p", backbone="i2vgenxl", settings={"size": "8192x8192"})
    assert engine.loads == [] and not (tmp_path / "out").exists()
    r = CliRunner().invoke(app, ["ui", "--max-size", "4"])
    assert r.exit_code == 2 and "--max-size must be at least 8" in r.output
