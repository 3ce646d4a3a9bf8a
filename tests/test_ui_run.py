"""The web UI on the toy backbone: the callbacks run the same edit as the library API,
models and inversions are reused across requests, concurrent requests wait their turn, and
a real browser (Playwright + headless Chromium) drives the served page end to end."""

import os
import socket
import threading

import numpy as np
import pytest

from anyv2v_core.testing.fixtures import chromium_path
from anyv2v_core import api, video

gr = pytest.importorskip("gradio", reason="the ui extra is part of the test extra")

from anyv2v_core.ui import EngineSettings, serve  # noqa: E402
from anyv2v_core.ui.app import Callbacks  # noqa: E402
from anyv2v_core.ui.engine import Engine  # noqa: E402

SMALL = {"steps": 4, "inversion_steps": 4, "num_frames": 8, "size": "64x64", "seed": 3}


@pytest.fixture
def engine(tmp_path, toy_model):
    return Engine(EngineSettings(out_dir=tmp_path / "out", device="cpu", dtype="float32", cache=tmp_path / "cache",
                                 models={"toy": str(toy_model)}))


class Recorder:
    """Records progress calls; falsy like gr.Progress (it has __len__), which must not matter."""

    def __init__(self):
        self.calls = []

    def __len__(self):
        return 0

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))


def frames_of(path):
    return np.stack([np.asarray(f, dtype=np.float32) for f in video.read_frames(path, None)])


def test_generate_is_the_library_edit_and_reuses_models(engine, clip_files, tmp_path):
    calls = Callbacks(engine)
    source, edited = str(clip_files / "source.mp4"), str(clip_files / "edited.png")
    frame = calls.edit_frame(source, "image", "a clip", 1, edited, [])
    progress = Recorder()
    out1, summary1 = calls.generate(source, frame, "a clip", "toy", "", SMALL, [], progress=progress)
    assert {k["desc"] for _, k in progress.calls} == {"DDIM inversion", "PnP sampling"}
    assert progress.calls[-1] == (((3, 3),), {"desc": "PnP sampling", "unit": "steps"})  # t_idx 1 of 4 steps
    out2, summary2 = calls.generate(source, frame, "a clip", "toy", "", dict(SMALL, seed=4), [])
    assert out1 != out2 and os.path.isfile(out1) and os.path.isfile(out2)  # new files, nothing overwritten
    assert "source inverted" in summary1 and "inversion reused from the cache" in summary2
    assert [k for k, *_ in engine.loads] == ["editor", "backbone"]  # loaded once, kept for the second request
    assert len(video.read_frames(out1, None)) == 8

    # the same edit through the library API
    ref = api.edit(source, prompt="a clip", edited_frame=edited, out=tmp_path / "ref.mp4", backbone="toy",
                   model=engine.settings.models["toy"], num_frames=8, size=(64, 64), steps=4, seed=3,
                   inversion_steps=4,
                   cache=False, device="cpu", dtype="float32")
    assert np.abs(frames_of(out1) - frames_of(ref.out)).max() <= 2  # mp4 re-encoding only


def test_stop_cancels_at_the_next_step_and_leaves_the_models_clean(engine, clip_files, tmp_path):
    calls = Callbacks(engine)
    source, edited = str(clip_files / "source.mp4"), str(clip_files / "edited.png")

    def stop_at_second_sampling_step(progress_args, kwargs):
        if kwargs["desc"] == "PnP sampling" and progress_args[0][0] == 1:
            assert calls.stop("other-tab") == "Nothing to stop."  # another session's Stop does nothing
            calls.stop("me")

    class Stopper(Recorder):
        def __call__(self, *args, **kwargs):
            super().__call__(*args, **kwargs)
            stop_at_second_sampling_step(args, kwargs)

    out, summary = calls.generate(source, edited, "a clip", "toy", "", SMALL, [], progress=Stopper(),
                                  session="me")
    assert out is None and summary == "Stopped during PnP sampling after 1 of 3 steps; nothing was saved."
    assert not [f for f in (tmp_path / "out").rglob("*") if f.is_file()] and calls.jobs == {}

    # the same models, used again: no injection hook or lock left behind by the stopped job
    again, summary = calls.generate(source, edited, "a clip", "toy", "", SMALL, [], session="me")
    assert "inversion reused from the cache" in summary  # the finished inversion was kept
    fresh = Engine(EngineSettings(out_dir=tmp_path / "fresh", device="cpu", dtype="float32", cache=False,
                                  models=engine.settings.models))
    ref, _ = Callbacks(fresh).generate(source, edited, "a clip", "toy", "", SMALL, [])
    assert np.array_equal(frames_of(again), frames_of(ref))
    assert [k for k, *_ in engine.loads] == ["backbone"]


def test_weights_and_outputs_per_server_and_session(engine, clip_files, tmp_path, toy_model):
    source, edited = str(clip_files / "source.mp4"), str(clip_files / "edited.png")
    calls = Callbacks(engine)
    out_a, _ = calls.generate(source, edited, "a clip", "toy", str(toy_model), SMALL, [], session="a")
    out_b, _ = calls.generate(source, edited, "a clip", "toy", "", SMALL, [], session="b")
    folder_a, folder_b = os.path.dirname(out_a), os.path.dirname(out_b)
    assert folder_a != folder_b and os.path.dirname(folder_a) == os.path.dirname(folder_b) == str(tmp_path / "out")
    assert os.listdir(folder_a) == [os.path.basename(out_a)] and os.listdir(folder_b) == [os.path.basename(out_b)]
    assert [k for k, *_ in engine.loads] == ["backbone"]  # the offered weights, named or by default: one model

    # weights the server was not started with: refused, unless --allow-any-model
    closed = Engine(EngineSettings(out_dir=tmp_path / "closed", device="cpu", dtype="float32", cache=False))
    with pytest.raises(gr.Error, match="are not offered for toy by this server"):
        Callbacks(closed).generate(source, edited, "a clip", "toy", str(toy_model), SMALL, [], session="a")
    assert closed.loads == []
    free = Engine(EngineSettings(out_dir=tmp_path / "free", device="cpu", dtype="float32", cache=False,
                                 allow_any_model=True))
    out, summary = Callbacks(free).generate(source, edited, "a clip", "toy", str(toy_model), SMALL, [], session="a")
    assert summary.startswith("Saved") and np.array_equal(frames_of(out), frames_of(out_a))
    assert free.loads == [("backbone", "toy", str(toy_model))]


def test_concurrent_requests_wait_their_turn(engine, clip_files):
    calls = Callbacks(engine)
    source, edited = str(clip_files / "source.mp4"), str(clip_files / "edited.png")
    results, errors = [], []

    def request(seed):
        try:
            results.append(calls.generate(source, edited, "a clip", "toy", "", dict(SMALL, seed=seed), []))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=request, args=(s,)) for s in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len({out for out, _ in results}) == 3
    assert [k for k, *_ in engine.loads] == ["backbone"]



def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _messages(page):
    """The text of the message boxes (toasts) the page shows now."""
    return page.evaluate("() => Array.from(document.querySelectorAll('.toast-body')).map(t => t.innerText)")


def _click_and_wait(page, artifacts, button, selector, timeout_s):
    """Click ``button`` and wait for ``selector``; a message the page shows after the click, or a
    timeout, fails with what the page says (and a screenshot in the test artifacts)."""
    import time

    # Gradio groups messages into one box ("Error (2)"): close the old ones so any box is new
    for close in page.query_selector_all(".toast-close"):
        close.click()
    page.wait_for_function("() => document.querySelectorAll('.toast-body').length === 0")
    page.click(button)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = page.query_selector(selector)
        if found is not None and found.is_visible():
            return found
        messages = _messages(page)
        if messages:
            page.screenshot(path=str(artifacts / "ui-failure.png"), full_page=True)
            pytest.fail(f"the page shows a message: {' '.join(' '.join(messages).split())}")
        page.wait_for_timeout(250)
    page.screenshot(path=str(artifacts / "ui-failure.png"), full_page=True)
    text = " ".join(page.inner_text("body").split())
    pytest.fail(f"no {selector} after {timeout_s} s; the page says: {text[:1500]}")


def _fill(page, values):
    """Fill the fields ``#opt-<key>``, and check that every value held (a field that was still
    being rendered can drop what was typed into it)."""
    for _ in range(5):
        for key, value in values.items():
            if page.input_value(f"#opt-{key} :is(input, textarea)") != str(value):
                page.fill(f"#opt-{key} :is(input, textarea)", str(value))
        page.wait_for_timeout(300)
        held = {key: page.input_value(f"#opt-{key} :is(input, textarea)") for key in values}
        if held == {key: str(value) for key, value in values.items()}:
            return
    pytest.fail(f"the sampling fields did not keep the values typed into them: {held}")


def test_browser_upload_edit_generate(tmp_path, toy_model, clip_files, request):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is part of the test extra")
    chromium = chromium_path()
    artifacts = request.config.rootpath / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    port = _free_port()
    settings = EngineSettings(out_dir=tmp_path / "out", device="cpu", dtype="float32", cache=tmp_path / "cache",
                              models={"toy": str(toy_model)})
    demo = serve(settings, port=port, backbone="toy", block=False)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#generate")

            # a bad request shows a readable message in the page, not a traceback
            page.click("#generate")
            page.get_by_text("upload a video first").first.wait_for()
            assert "Traceback" not in page.inner_text("body")

            page.set_input_files("#source-video input[type=file]", str(clip_files / "source.mp4"))
            page.wait_for_selector("#first-frame img")
            page.fill("#prompt textarea", "a test clip")
            page.set_input_files("#editor-image-upload input[type=file]", str(clip_files / "edited.png"))
            page.wait_for_selector("#editor-image-upload img")
            page.click("#edit-frame")
            page.wait_for_selector("#edited-frame img")

            page.click("text=Sampling options")
            _fill(page, dict(SMALL, inversion_steps=40))  # inversion long enough to show progress
            # record every progress text the result box shows, however fast the job runs
            page.evaluate("""() => {
                window.seenProgress = [];
                const box = document.querySelector('#result-video');
                new MutationObserver(() => window.seenProgress.push(box.innerText))
                    .observe(box, {subtree: true, childList: true, characterData: true});
            }""")
            player = _click_and_wait(page, artifacts, "#generate", "#result-video video", timeout_s=240)
            seen = " ".join(page.evaluate("window.seenProgress"))
            assert "DDIM inversion" in seen and "PnP sampling" in seen, seen[:500]  # live progress of both passes
            src = player.get_attribute("src")
            page.get_by_text("Saved").first.wait_for()
            page.screenshot(path=str(artifacts / "ui-generate.png"), full_page=True)
            # the page plays a copy in Gradio's cache; the output folder itself is not served
            saved = next((tmp_path / "out").rglob("*.mp4"))
            served = {url: page.request.get(url).status for url in
                      (f"http://127.0.0.1:{port}/gradio_api/file={saved}", src if src.startswith("http") else
                       f"http://127.0.0.1:{port}{src}")}

            # Stop: a long inversion, stopped while it runs; the page says so and nothing is saved
            # (a larger working size: the toy backbone inverts a 64x64 clip in moments)
            _fill(page, {"inversion_steps": 400, "size": "256x256"})
            page.click("#generate")
            page.wait_for_function("() => document.querySelector('#result-video').innerText.includes('DDIM inversion')")
            page.click("#stop")
            page.wait_for_function("() => document.querySelector('#status').innerText.includes('Stopped')",
                                   timeout=120_000)
            stopped = " ".join(page.inner_text("#status").split())
            assert page.query_selector("#result-video video") is None
            page.screenshot(path=str(artifacts / "ui-stopped.png"))
            browser.close()
    finally:
        demo.close()
    assert src and src.endswith(".mp4")
    assert list(served.values()) == [403, 200], served
    outputs = list((tmp_path / "out").rglob("*.mp4"))
    assert len(outputs) == 1 and len(video.read_frames(outputs[0], None)) == 8
    assert stopped.startswith("Stopped during DDIM inversion after ") and "nothing was saved" in stopped
    assert (artifacts / "ui-generate.png").stat().st_size > 10_000
