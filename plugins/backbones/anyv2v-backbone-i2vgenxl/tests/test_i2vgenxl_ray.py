"""`anyv2v batch --ray` on a real local Ray instance (CPU, 2 workers) with the tiny
I2VGen-XL: same outputs as the serial run, a failing item recorded, resume, Ctrl-C."""

import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.batch import Reporter, ResultsLog, parse_manifest, run_batch
from anyv2v_core.cli import app

ray = pytest.importorskip("ray")

FAST = {"num_frames": 8, "size": "64x64", "steps": 10, "inversion_steps": 20}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; `--ray` reuses it."""
    from anyv2v_core.batch_ray import ray_session

    with ray_session("local", num_cpus=2) as session:
        yield session
    assert not ray.is_initialized()


def write_manifest(path, clip_files, model):
    common = {"source": str(clip_files / "source.mp4"), "model": str(model), **FAST}
    lines = [
        {"id": "a", "prompt": "a red square", "edited_frame": str(clip_files / "edited.png"), **common},
        {"id": "b", "prompt": "a blue square", "edited_frame": str(clip_files / "edited.png"), "seed": 2,
         "random_ratio": 0.1, **common},
        {"id": "c", "prompt": "a green square", "edited_frame": "c-edited.png", **common},  # missing at first
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def frames_of(path):
    return np.stack([np.asarray(f, dtype=np.int16) for f in video.read_frames(path)])


def test_ray_batch_matches_serial_and_resumes(local_ray, tiny_i2vgenxl, clip_files, tmp_path):
    manifest = write_manifest(tmp_path / "jobs.jsonl", clip_files, tiny_i2vgenxl)
    out_dir = tmp_path / "out"
    common = ["--out-dir", str(out_dir), "--device", "cpu", "--cache-dir", str(tmp_path / "cache-ray")]

    # run 1 on 2 workers: c's edited frame is missing -> c fails, a and b are written, exit 1
    r = CliRunner().invoke(app, ["batch", str(manifest), *common, "--ray"])
    assert r.exit_code == 1, r.output
    assert "ray: 2 worker(s) (0 GPU, 1 CPU each) on 1 node(s)" in r.output
    assert "2 ok, 0 skipped (done before), 1 failed" in r.output
    missing = tmp_path / "c-edited.png"
    assert f"failed c: image not found: {missing}" in r.output
    first = ResultsLog(out_dir / "results.jsonl").records()
    assert sorted((x["id"], x["status"]) for x in first) == [("a", "ok"), ("b", "ok"), ("c", "failed")]
    assert {x["worker"] for x in first} <= {0, 1}
    by_id = {x["id"]: x for x in first}
    assert by_id["c"]["error"] == f"image not found: {missing}" and by_id["c"]["line"] == 3
    for x in (by_id["a"], by_id["b"]):
        assert x["error"] is None and x["timings"]["edit"] > 0 and x["overrides"] == FAST | (
            {"random_ratio": 0.1} if x["id"] == "b" else {})
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.mp4", "b.mp4", "results.jsonl"]

    # the serial run of the same items (own cache) gives the same videos
    serial_dir = tmp_path / "serial"
    summary = run_batch(parse_manifest(manifest, serial_dir), serial_dir, device="cpu",
                        cache=tmp_path / "cache-serial")
    assert summary.ok == ["a", "b"] and [i for i, _ in summary.failed] == ["c"]
    for name in ("a.mp4", "b.mp4"):
        ray_frames, serial_frames = frames_of(out_dir / name), frames_of(serial_dir / name)
        assert ray_frames.shape == (8, 64, 64, 3)
        assert np.abs(ray_frames - serial_frames).max() <= 2, name
    mtimes = {n: (out_dir / n).stat().st_mtime_ns for n in ("a.mp4", "b.mp4")}

    # run 2 (--ray before the manifest, one worker): only c runs, now ok
    missing.write_bytes((clip_files / "edited.png").read_bytes())
    r = CliRunner().invoke(app, ["batch", "--ray", str(manifest), *common, "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "ray: 1 worker(s)" in r.output and "1 ok, 2 skipped (done before), 0 failed" in r.output
    second = ResultsLog(out_dir / "results.jsonl").records()
    assert second[:3] == first and len(second) == 4
    assert second[3]["id"] == "c" and second[3]["status"] == "ok" and second[3]["worker"] == 0
    assert second[3]["inversion_reused"] is True  # same clip as a and b: from the shared cache
    assert {n: (out_dir / n).stat().st_mtime_ns for n in mtimes} == mtimes
    assert frames_of(out_dir / "c.mp4").shape == (8, 64, 64, 3)

    # run 3: all done -> nothing runs
    r = CliRunner().invoke(app, ["batch", str(manifest), *common, "--ray", "local"])
    assert r.exit_code == 0 and "0 ok, 3 skipped" in r.output, r.output
    assert len(ResultsLog(out_dir / "results.jsonl").records()) == 4


def _cpus_free_again(total, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0) == total:
            return True
        time.sleep(0.1)
    return False


class _StopAfterFirst(Reporter):
    def __init__(self):
        self.finished = []

    def item_finished(self, item, record):
        self.finished.append(item.id)
        raise KeyboardInterrupt


def test_ray_batch_ctrl_c_kills_workers_and_resume_continues(local_ray, tiny_i2vgenxl, clip_files, tmp_path):
    from anyv2v_core.batch_ray import run_batch_ray

    manifest = write_manifest(tmp_path / "jobs.jsonl", clip_files, tiny_i2vgenxl)
    (tmp_path / "c-edited.png").write_bytes((clip_files / "edited.png").read_bytes())
    items = parse_manifest(manifest, tmp_path / "out")
    reporter = _StopAfterFirst()
    with pytest.raises(KeyboardInterrupt):
        run_batch_ray(items, tmp_path / "out", workers=1, device="cpu", reporter=reporter)
    log = ResultsLog(tmp_path / "out" / "results.jsonl")
    assert [x["id"] for x in log.records()] == reporter.finished == ["a"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "results.jsonl"]
    assert _cpus_free_again(2)  # the worker actor was killed: its CPU is back
    # the resumed run does the rest (the inversion of the clip comes from the cache)
    summary = run_batch_ray(items, tmp_path / "out", workers=1, device="cpu")
    assert summary.skipped == ["a"] and sorted(summary.ok) == ["a", "b", "c"] and not summary.failed
    assert [x["id"] for x in log.records()] == ["a", "b", "c"]
