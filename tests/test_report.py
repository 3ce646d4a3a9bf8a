"""`anyv2v report` on hand-written results.jsonl files (no model): methods, means, charts,
relative links or embedded media, and the one-line errors. The browser test on a real
batch run is in the I2VGen-XL plugin (test_i2vgenxl_report.py)."""

import json
import re

import pytest
from typer.testing import CliRunner

from anyv2v_core import report, video
from anyv2v_core.cli import app
from anyv2v_core.errors import InputError, OutputExistsError
from anyv2v_core.testing.tiny import synthetic_frames



def record(item_id, out, source, status="ok", tau_ta=None, **metrics):
    rec = {"id": item_id, "status": status, "error": None if status == "ok" else "boom", "out": str(out),
           "source": str(source), "edited_frame": None, "prompt": f"prompt of {item_id}", "editor": "image",
           "backbone": "i2vgenxl", "model": None, "backbone_options": {}, "seed": 1,
           "overrides": {"steps": 4} | ({"tau_ta": tau_ta} if tau_ta is not None else {}),
           "timings": {"total": 2.0}, "meta": {"kind": "style"}}
    if metrics:
        rec["metrics"] = {"clip_model": "tiny-clip", "frames": 4, **metrics}
    return rec


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    frames = synthetic_frames(4, 32, 32)
    video.write_video(frames, d / "a.mp4", fps=8)
    video.write_video(frames, d / "b.mp4", fps=8)
    video.write_frames_dir(frames, tmp_path / "src-frames")
    video.write_video(frames, tmp_path / "src.mp4", fps=8)
    frames[0].save(tmp_path / "edit.png")
    recs = [
        record("a", d / "a.mp4", tmp_path / "src.mp4", clip_text=0.2, flicker=0.9),
        record("b", d / "b.mp4", tmp_path / "src-frames", clip_text=0.4, flicker=0.7),
        record("c", d / "c.mp4", tmp_path / "src.mp4", tau_ta=0.6, clip_text=0.3, flicker=0.95),
        record("d", d / "d.mp4", tmp_path / "src.mp4", status="failed", tau_ta=0.6),
    ]
    recs[0]["edited_frame"] = str(tmp_path / "edit.png")
    lines = [json.dumps(dict(recs[1], status="failed"))] + [json.dumps(r) for r in recs] + ['{"id": "torn']
    (d / "results.jsonl").write_text("\n".join(lines) + "\n")
    return d


def test_report_groups_methods_and_links_media(run_dir, tmp_path):
    out = tmp_path / "site" / "report.html"
    out.parent.mkdir()
    r = CliRunner().invoke(app, ["report", str(run_dir), "-o", str(out)])
    assert r.exit_code == 0, r.output
    page = out.read_text()
    items = report.load_items([run_dir])
    assert [i.record["id"] for i in items] == ["b", "a", "c", "d"] and items[0].record["status"] == "ok"  # latest
    methods = report.group_methods(items)
    assert [m.label for m in methods] == ["i2vgenxl / image, tau_ta=default", "i2vgenxl / image, tau_ta=0.6"]
    # the summary row of the first method: 2 items, 2 ok, mean CLIP-Text 0.3, mean flicker 0.8
    summary = page[page.index('id="summary"'):page.index("</table>", page.index('id="summary"'))]
    first, second = re.findall(r"<tr><td class=\"method\">.*?</tr>", summary)
    cells = re.findall(r">([^<]*)</td>", first)
    assert cells == ["i2vgenxl / image, tau_ta=default", "2", "2", "0.3000", "0.8000", "2.0000"]
    assert re.findall(r">([^<]*)</td>", second)[1:5] == ["2", "1", "0.3000", "0.9500"]  # the failed item has none
    assert "CLIP-Text ↑" in page and "Temporal flickering ↑" in page and page.count("<svg") == 2
    # media linked relatively from the page's folder; a frames folder shows as a strip
    assert 'src="../run/a.mp4"' in page and 'src="../src.mp4"' in page and 'src="../edit.png"' in page
    assert 'class="strip"' in page and 'src="../src-frames/00000.png"' in page
    assert "failed: boom" in page.split('id="item-d"')[1]
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network
    assert "metric models: clip: tiny-clip".lower() in page.lower()


def test_two_runs_are_two_methods(run_dir, tmp_path):
    other = tmp_path / "rerun"
    other.mkdir()
    lines = (run_dir / "results.jsonl").read_text().splitlines()[1:3]  # a and b, same settings as in run/
    (other / "results.jsonl").write_text("\n".join(lines) + "\n")
    methods = report.group_methods(report.load_items([run_dir, other]))
    assert [m.label for m in methods] == ["i2vgenxl / image, run=run, tau_ta=default",
                                          "i2vgenxl / image, run=run, tau_ta=0.6",
                                          "i2vgenxl / image, run=rerun, tau_ta=default"]
    assert [len(m.items) for m in methods] == [2, 2, 2]


def test_report_embed_is_one_portable_file(run_dir, tmp_path):
    out = tmp_path / "embedded.html"
    report.write_report([run_dir / "results.jsonl"], out, embed=True, title="Mine")
    page = out.read_text()
    assert "<title>Mine</title>" in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:") for s in srcs)
    assert any(s.startswith("data:video/mp4;base64,") for s in srcs)


def test_report_errors_are_one_line(run_dir, tmp_path):
    with pytest.raises(InputError, match="results not found"):
        report.write_report([tmp_path / "nowhere"], tmp_path / "r.html")
    with pytest.raises(InputError, match="name it .html"):
        report.write_report([run_dir], tmp_path / "r.txt")
    report.write_report([run_dir], tmp_path / "r.html")
    with pytest.raises(OutputExistsError):
        report.write_report([run_dir], tmp_path / "r.html")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results.jsonl").write_text("")
    r = CliRunner().invoke(app, ["report", str(tmp_path / "empty"), "-o", str(tmp_path / "e.html")])
    assert r.exit_code == 2 and "has no records" in r.output
