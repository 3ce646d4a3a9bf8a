"""`anyv2v report` on a 3-item batch run of the tiny I2VGen-XL (with --eval), opened in
headless Chromium: no console errors, the videos play, the tables sort."""

import json

import pytest
from typer.testing import CliRunner

from anyv2v_core.testing.fixtures import chromium_path
from anyv2v_core.cli import app
from anyv2v_core.metrics import save_tiny_clip
from anyv2v_core.video_metrics import METRIC_KEYS, save_tiny_dino, save_tiny_raft

SMALL = {"num_frames": 8, "size": "64x64", "steps": 4, "inversion_steps": 4}



@pytest.fixture(scope="module")
def batch_run(tmp_path_factory, tiny_i2vgenxl, clip_files):
    """A 3-item batch (two methods: tau_ta 0.6 for one item) with metrics, and its report."""
    tmp = tmp_path_factory.mktemp("report")
    source, edited = str(clip_files / "source.mp4"), str(clip_files / "edited.png")
    items = [
        {"id": "red", "source": source, "prompt": "a red square", "edited_frame": edited, **SMALL},
        {"id": "blue", "source": str(clip_files / "frames"), "prompt": "a blue square", "edited_frame": edited,
         "seed": 2, **SMALL, "meta": {"kind": "object"}},
        {"id": "ink", "source": source, "prompt": "an ink drawing", "edited_frame": edited, "tau_ta": 0.6, **SMALL},
    ]
    manifest = tmp / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(dict(i, model=str(tiny_i2vgenxl))) + "\n" for i in items))
    clip = save_tiny_clip(tmp / "clip")
    dino = save_tiny_dino(tmp / "dino")
    raft = save_tiny_raft(tmp / "raft.safetensors")
    out = tmp / "out"
    r = CliRunner().invoke(app, ["batch", str(manifest), "-o", str(out), "--eval", "--metrics", "all", "--clip-model",
                                 str(clip), "--dino-model", str(dino), "--flow-model", str(raft), "--device", "cpu",
                                 "--no-cache"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["report", str(out), "-o", str(out / "report.html"), "--title", "Tiny run"])
    assert r.exit_code == 0, r.output
    return out


def test_report_of_a_batch_run(batch_run):
    page = (batch_run / "report.html").read_text()
    assert page.count('<section class="item"') == 3
    assert "i2vgenxl / image, tau_ta=0.6" in page and "i2vgenxl / image, tau_ta=default" in page
    for name, _, _ in METRIC_KEYS.values():
        assert f"{name} " in page
    assert 'src="red.mp4"' in page and 'class="strip"' in page  # the frames-folder source as a strip
    records = [json.loads(line) for line in (batch_run / "results.jsonl").read_text().splitlines()]
    for rec in records:  # every metric of --metrics all, each naming its model
        assert set(METRIC_KEYS) <= set(rec["metrics"]), rec.get("metrics_error")
        assert {"clip_model", "dino_model", "flow_model"} <= set(rec["metrics"])
        assert 0 <= rec["metrics"]["dino_subject"] <= 1 and rec["metrics"]["warp_error"] >= 0


def test_report_in_chromium(batch_run, request):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is part of the test extra")
    chromium = chromium_path()
    artifacts = request.config.rootpath / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    problems = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto((batch_run / "report.html").as_uri())
        page.wait_for_selector("#items")
        page.screenshot(path=str(artifacts / "report.png"))

        # every output video plays once it is on screen
        outputs = page.query_selector_all(".item figure:last-child video")
        assert len(outputs) == 3
        for i, player in enumerate(outputs):
            player.scroll_into_view_if_needed()
            page.wait_for_function("v => v.currentTime > 0 && !v.paused && v.readyState >= 2", arg=player,
                                   timeout=20_000)
            assert page.evaluate("v => v.videoWidth", player) == 64, f"video {i}"

        # the items table sorts by a metric column, ascending then descending
        page.evaluate("window.scrollTo(0, 0)")

        def column(header):
            th = page.locator("#items thead th", has_text=header).first
            index = page.evaluate("th => th.cellIndex", th.element_handle())
            return th, page.evaluate(
                "i => Array.from(document.querySelectorAll('#items tbody tr')).map(r => "
                "[r.cells[0].innerText, parseFloat(r.cells[i].dataset.sort)])", index)

        th, before = column("CLIP-Text")
        th.click()
        _, up = column("CLIP-Text")
        th.click()
        _, down = column("CLIP-Text")
        assert [v for _, v in up] == sorted(v for _, v in before)
        assert [v for _, v in down] == sorted((v for _, v in before), reverse=True)
        assert th.get_attribute("aria-sort") == "descending"
        page.locator("#summary thead th", has_text="method").first.click()
        labels = page.evaluate("Array.from(document.querySelectorAll('#summary tbody tr')).map(r => r.cells[0].innerText)")
        assert labels == sorted(labels) and len(labels) == 2
        browser.close()
    assert not problems, problems


def test_ui_links_the_batch_report(batch_run, tiny_i2vgenxl, tmp_path):
    """`anyv2v ui --batch DIR`: the page links the live report, which the UI's server renders
    and whose media (only) it serves."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is part of the test extra")
    pytest.importorskip("gradio", reason="the ui extra is part of the test extra")
    from anyv2v_core.ui import EngineSettings, serve

    chromium = chromium_path()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = EngineSettings(out_dir=tmp_path / "ui-out", device="cpu", dtype="float32", cache=False,
                              models={"i2vgenxl": str(tiny_i2vgenxl)})
    demo = serve(settings, port=port, block=False, reports=[batch_run])
    problems = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/")
            link = page.wait_for_selector("#batch-reports a")
            assert link.inner_text() == batch_run.name
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(f"http://127.0.0.1:{port}{link.get_attribute('href')}")
            page.wait_for_selector("#items")
            assert page.locator(".item").count() == 3
            player = page.query_selector(".item figure:last-child video")
            player.scroll_into_view_if_needed()
            page.wait_for_function("v => v.currentTime > 0 && v.readyState >= 2", arg=player, timeout=20_000)
            base = f"http://127.0.0.1:{port}/anyv2v/report/0/file?path="
            assert page.request.get(base + str(batch_run / "red.mp4")).status == 200
            assert page.request.get(base + str(batch_run / "results.jsonl")).status == 404  # not a media file
            assert page.request.get(base + "/etc/passwd").status == 404
            browser.close()
    finally:
        demo.close()
    assert not problems, problems
