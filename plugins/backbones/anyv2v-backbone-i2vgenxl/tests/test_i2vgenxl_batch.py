"""`anyv2v batch` on the tiny I2VGen-XL: a failing item does not stop the others, the model
is loaded once, and a re-run retries only the failed item (resume)."""

import json

from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app
from anyv2v_core.metrics import save_tiny_clip


FAST = {"num_frames": 8, "size": "64x64", "steps": 10, "inversion_steps": 20}


def write_manifest(path, clip_files, model, c_source):
    edited = str(clip_files / "edited.png")
    lines = [
        {"id": "a", "source": str(clip_files / "source.mp4"), "prompt": "a red square", "edited_frame": edited,
         "model": str(model), **FAST},
        {"id": "b", "source": str(clip_files / "source.mp4"), "prompt": "a blue square", "edited_frame": edited,
         "model": str(model), "seed": 2, "random_ratio": 0.1, **FAST},
        {"id": "c", "source": c_source, "prompt": "a green square", "edited_frame": edited, "model": str(model),
         "out": "custom/c.mp4", **FAST},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def records(out_dir):
    return [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]


def test_batch_failure_then_resume(tiny_i2vgenxl, clip_files, tmp_path, monkeypatch):
    from anyv2v_backbone_i2vgenxl.backbone import I2VGenXLBackbone

    constructed = []
    original_init = I2VGenXLBackbone.__init__

    def counting_init(self, *args, **kwargs):
        constructed.append(kwargs.get("model"))
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(I2VGenXLBackbone, "__init__", counting_init)
    manifest, out_dir = tmp_path / "jobs.jsonl", tmp_path / "out"
    common = ["--out-dir", str(out_dir), "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]

    # run 1: c's source is missing -> c fails, a and b are written, exit 1, one model load
    write_manifest(manifest, clip_files, tiny_i2vgenxl, "missing.mp4")
    r = CliRunner().invoke(app, ["batch", str(manifest), *common])
    assert r.exit_code == 1, r.output
    assert len(constructed) == 1 and r.output.count("loaded backbone i2vgenxl") == 1
    assert "2 ok, 0 skipped (done before), 1 failed" in r.output
    assert f"failed c: source not found: {tmp_path / 'missing.mp4'}" in r.output
    first = records(out_dir)
    assert [(x["id"], x["status"]) for x in first] == [("a", "ok"), ("b", "ok"), ("c", "failed")]
    assert (first[0]["inversion_reused"], first[1]["inversion_reused"]) == (False, True)  # one inversion
    assert first[2]["error"] == f"source not found: {tmp_path / 'missing.mp4'}"
    for x in first[:2]:
        assert x["error"] is None and x["timings"]["total"] > 0 and x["timings"]["edit"] > 0
        frames = video.read_frames(x["out"])
        assert len(frames) == 8 and frames[0].size == (64, 64)
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.mp4", "b.mp4", "results.jsonl"]
    assert not (tmp_path / "custom" / "c.mp4").exists()
    mtimes = {n: (out_dir / n).stat().st_mtime_ns for n in ("a.mp4", "b.mp4")}

    # run 2: fixed manifest (relative source, resolved against the manifest folder), with metrics
    (tmp_path / "clip.mp4").write_bytes((clip_files / "source.mp4").read_bytes())
    write_manifest(manifest, clip_files, tiny_i2vgenxl, "clip.mp4")
    clip_model = save_tiny_clip(tmp_path / "tiny-clip")
    r = CliRunner().invoke(app, ["batch", str(manifest), *common, "--eval", "--clip-model", str(clip_model)])
    assert r.exit_code == 0, r.output
    assert "skipping 2 item(s) already done" in r.output
    assert "1 ok, 2 skipped (done before), 0 failed" in r.output
    assert f"metrics: CLIP model {clip_model}" in r.output
    assert len(constructed) == 2  # one more load in the second process-equivalent run
    second = records(out_dir)
    assert len(second) == 4 and second[:3] == first
    c = second[3]
    assert c["id"] == "c" and c["status"] == "ok" and c["out"] == str(tmp_path / "custom" / "c.mp4")
    assert c["inversion_reused"] is True  # same clip as items a and b: the inversion came from the cache
    m = c["metrics"]
    assert m["clip_model"] == str(clip_model) and m["frames"] == 8
    assert -1 <= m["clip_text"] <= 1 and 0 < m["clip_image"] <= 1 and 0 < m["source_fidelity"] <= 1
    assert len(video.read_frames(tmp_path / "custom" / "c.mp4")) == 8
    assert {n: (out_dir / n).stat().st_mtime_ns for n in mtimes} == mtimes  # ok outputs untouched

    # run 3: everything done -> nothing runs, nothing loads
    r = CliRunner().invoke(app, ["batch", str(manifest), *common])
    assert r.exit_code == 0, r.output
    assert "0 ok, 3 skipped" in r.output and len(constructed) == 2 and len(records(out_dir)) == 4


def test_batch_frame_selection_and_long_match_the_cli(tiny_i2vgenxl, clip_files, tmp_path):
    """Manifest fields start/stride/out_size/long/overlap/audio run the same edit as `anyv2v edit`."""
    source, edited = str(clip_files / "source.mp4"), str(clip_files / "edited.png")
    small = {"size": "64x64", "steps": 4, "inversion_steps": 4}
    items = [
        {"id": "sel", "source": source, "prompt": "p", "edited_frame": edited, "model": str(tiny_i2vgenxl),
         "start": 2, "stride": 2, "num_frames": 3, "out_size": "32x32", "audio": False, **small},
        {"id": "long", "source": source, "prompt": "p", "edited_frame": edited, "model": str(tiny_i2vgenxl),
         "num_frames": 4, "long": True, "overlap": 2, **small},
    ]
    manifest = tmp_path / "jobs.yaml"  # YAML accepts JSON flow mappings
    manifest.write_text("".join(f"- {json.dumps(item)}\n" for item in items))
    out_dir = tmp_path / "out"
    r = CliRunner().invoke(app, ["batch", str(manifest), "--out-dir", str(out_dir), "--device", "cpu"])
    assert r.exit_code == 0, r.output

    common = ["-e", edited, "-p", "p", "--model", str(tiny_i2vgenxl), "--device", "cpu", "--size", "64x64",
              "--steps", "4", "--inversion-steps", "4"]
    r = CliRunner().invoke(app, ["edit", source, *common, "--start", "2", "--stride", "2", "--num-frames", "3",
                                 "--out-size", "32x32", "--no-audio", "-o", str(tmp_path / "sel.mp4")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["edit", source, *common, "--num-frames", "4", "--long", "--overlap", "2",
                                 "-o", str(tmp_path / "long.mp4")])
    assert r.exit_code == 0, r.output
    for name, n_frames, size in (("sel", 3, (32, 32)), ("long", 8, (64, 64))):
        ours, ref = video.read_frames(out_dir / f"{name}.mp4", None), video.read_frames(tmp_path / f"{name}.mp4", None)
        assert len(ours) == len(ref) == n_frames and ours[0].size == size
        assert [f.tobytes() for f in ours] == [f.tobytes() for f in ref]
