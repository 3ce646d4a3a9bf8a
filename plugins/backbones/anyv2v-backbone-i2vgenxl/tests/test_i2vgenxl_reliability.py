"""Nothing reported as done that is not done, end to end on the tiny I2VGen-XL
(docs/reliability.md): each case gives one line, exit code 2 (or a failed batch record),
and writes nothing."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from anyv2v_core.batch import LOCK_NAME
from anyv2v_core.cli import app

FAST = ["--num-frames", "8", "--size", "64x64", "--steps", "10", "--inversion-steps", "20", "--device", "cpu"]


def edit_args(clip_files, model, out, *extra):
    return ["edit", str(clip_files / "source.mp4"), "--edited-frame", str(clip_files / "edited.png"), "--prompt", "x",
            "--model", str(model), "--out", str(out), *FAST, *extra]


def error_line(result):
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("name", ["out.webm", "x.gif", "x.txt"])
def test_edit_to_an_unwritable_format_is_refused_before_compute(tiny_i2vgenxl, clip_files, tmp_path, name):
    r = CliRunner().invoke(app, edit_args(clip_files, tiny_i2vgenxl, tmp_path / name))
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: cannot write video {tmp_path / name}: the output must end in .mp4, .mov, .mkv, "
                             ".m4v, .avi (H.264; webm and gif are not supported)")
    assert list(tmp_path.iterdir()) == []


def cli_with_file_limit(args, cwd, limit=4096):
    """``anyv2v ARGS`` in a process whose files may not grow beyond ``limit`` bytes (a full disk)."""
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from anyv2v_core.cli import main
        sys.argv = ["anyv2v", *{[str(a) for a in args]!r}]
        main()
    """)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_edit_on_a_full_disk_fails_and_writes_nothing(tiny_i2vgenxl, clip_files, tmp_path):
    out = tmp_path / "out.mp4"
    proc = cli_with_file_limit(edit_args(clip_files, tiny_i2vgenxl, out, "--no-cache"), tmp_path)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: writing {out} failed: ffmpeg failed (exit status -25); nothing was written"]
    assert "wrote" not in proc.stdout
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_batch_on_a_full_disk_records_failed_and_resume_retries(tiny_i2vgenxl, clip_files, tmp_path):
    manifest, out_dir = tmp_path / "jobs.jsonl", tmp_path / "out"
    manifest.write_text(json.dumps({
        "id": "k1", "source": str(clip_files / "source.mp4"), "prompt": "x",
        "edited_frame": str(clip_files / "edited.png"), "model": str(tiny_i2vgenxl), "num_frames": 8,
        "size": "64x64", "steps": 10, "inversion_steps": 20}) + "\n")
    proc = cli_with_file_limit(["batch", manifest, "--out-dir", out_dir, "--device", "cpu", "--no-cache"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    [record] = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]
    assert record["status"] == "failed"
    assert record["error"] == f"writing {out_dir / 'k1.mp4'} failed: ffmpeg failed (exit status -25); nothing was written"
    assert sorted(p.name for p in out_dir.iterdir()) == ["results.jsonl"]  # no video, no lock left
    from anyv2v_core.batch import ResultsLog, is_done, parse_manifest

    [item] = parse_manifest(manifest, out_dir)
    assert not is_done(item, ResultsLog(out_dir / "results.jsonl").latest())  # a resume retries it


def test_batch_manifest_output_the_writer_cannot_produce(tiny_i2vgenxl, clip_files, tmp_path):
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"id": "k1", "source": str(clip_files / "source.mp4"), "prompt": "x",
                                    "edited_frame": str(clip_files / "edited.png"), "out": "k1.webm"}) + "\n")
    r = CliRunner().invoke(app, ["batch", str(manifest), "--out-dir", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert error_line(r) == f"Error: {manifest}:1: out 'k1.webm' must end in .mp4, .mov, .mkv, .m4v, .avi"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.jsonl"]


def test_second_batch_run_on_the_same_folder_is_refused(tiny_i2vgenxl, clip_files, tmp_path):
    manifest, out_dir = tmp_path / "jobs.jsonl", tmp_path / "out"
    manifest.write_text(json.dumps({"id": "k1", "source": str(clip_files / "source.mp4"), "prompt": "x",
                                    "edited_frame": str(clip_files / "edited.png"),
                                    "model": str(tiny_i2vgenxl)}) + "\n")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        out_dir.mkdir()
        owner = {"pid": holder.pid, "host": socket.gethostname(), "started": "2026-11-29T14:00:00+00:00"}
        (out_dir / LOCK_NAME).write_text(json.dumps(owner))
        r = CliRunner().invoke(app, ["batch", str(manifest), "--out-dir", str(out_dir), "--device", "cpu"])
    finally:
        holder.kill()
        holder.wait()
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: another `anyv2v batch` run is writing to {out_dir} (PID {holder.pid} on "
                             f"{socket.gethostname()}, since 2026-11-29T14:00:00+00:00); wait for it to finish, or "
                             f"delete {out_dir / LOCK_NAME} if that process is gone")
    assert sorted(p.name for p in out_dir.iterdir()) == [LOCK_NAME]  # no results log, no output


def test_flipped_bit_in_a_stored_inversion_is_refused(tiny_i2vgenxl, clip_files, tmp_path):
    inv = tmp_path / "inv.safetensors"
    r = CliRunner().invoke(app, ["invert", str(clip_files / "source.mp4"), "--model", str(tiny_i2vgenxl), "--out",
                                 str(inv), "--num-frames", "8", "--size", "64x64", "--steps", "10",
                                 "--inversion-steps", "20", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    data = bytearray(inv.read_bytes())
    data[len(data) - 100] ^= 0x04  # one bit of a stored latent
    inv.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    r = CliRunner().invoke(app, edit_args(clip_files, tiny_i2vgenxl, out, "--inversion", str(inv)))
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: inversion file {inv} is damaged (its content does not match its checksum); "
                             "run `anyv2v invert` again")
    assert not out.exists()


def test_selftest_leaves_the_users_cache_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYV2V_CACHE", str(tmp_path / "user-cache"))
    r = CliRunner().invoke(app, ["selftest"])
    assert r.exit_code == 0 and "selftest passed" in r.output, r.output
    assert not (tmp_path / "user-cache").exists()


def test_edit_too_large_for_the_device_is_refused_before_loading(clip_files, tmp_path):
    """--size 8192x8192: refused from the estimate, before the (here missing) model is looked at."""
    out = tmp_path / "out.mp4"
    missing = tmp_path / "no-model"
    args = ["edit", str(clip_files / "source.mp4"), "-e", str(clip_files / "edited.png"), "-p", "x", "--model",
            str(missing), "--out", str(out), "--num-frames", "8", "--size", "8192x8192", "--device", "cpu"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    line = error_line(r)
    assert line.startswith("Error: this edit needs about ") and " but cpu has " in line
    assert line.endswith("available; use a smaller --size, fewer --num-frames, or --skip-memory-check if you "
                         "know better")
    assert list(tmp_path.iterdir()) == []
    r = CliRunner().invoke(app, [*args, "--skip-memory-check"])  # skipped: the next problem is the model
    assert r.exit_code == 2 and "model" in error_line(r) and str(missing) in error_line(r)
    r = CliRunner().invoke(app, ["invert", str(clip_files / "source.mp4"), "--model", str(missing), "--out",
                                 str(tmp_path / "inv.safetensors"), "--size", "8192x8192", "--device", "cpu"])
    assert r.exit_code == 2 and error_line(r).startswith("Error: this edit needs about ")
    assert list(tmp_path.iterdir()) == []


def test_frames_folder_of_mixed_sizes_is_refused(tiny_i2vgenxl, clip_files, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for png in sorted((clip_files / "frames").glob("*.png")):
        (folder / png.name).write_bytes(png.read_bytes())
    from PIL import Image

    Image.new("RGB", (80, 64)).save(folder / "00003.png")
    out = tmp_path / "out.mp4"
    args = ["edit", str(folder), "-e", str(clip_files / "edited.png"), "-p", "x", "--model", str(tiny_i2vgenxl),
            "--out", str(out), *FAST]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: frames folder {folder} mixes frame sizes (00000.png is 64x64, 00003.png is "
                             "80x64); bring them to one size, or pass --mixed-sizes to resize each frame on its own")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_relative_source_named_like_a_protocol(tiny_i2vgenxl, clip_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "2024-01-01T12:30.mp4").write_bytes((clip_files / "source.mp4").read_bytes())
    r = CliRunner().invoke(app, ["edit", "2024-01-01T12:30.mp4", "-e", str(clip_files / "edited.png"), "-p", "x",
                                 "--model", str(tiny_i2vgenxl), "--out", "edited-12:30.mp4", "--no-cache", *FAST])
    assert r.exit_code == 0, r.output
    from anyv2v_core import video

    assert len(video.read_frames(tmp_path / "edited-12:30.mp4")) == 8
