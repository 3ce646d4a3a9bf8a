"""`anyv2v batch --ray HOST:PORT` joins a cluster started beforehand with `ray start --head`
(as on a real multi-node setup, with Ray's token authentication), on CPU with the toy
backbone. Its own module: the other Ray tests keep a local instance for their module."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anyv2v_core import video
from anyv2v_core.batch import ResultsLog

pytest.importorskip("ray")


def _script(name):
    """A console script of this environment (beside its python, else on PATH)."""
    beside = Path(sys.executable).with_name(name)
    path = str(beside) if beside.is_file() else shutil.which(name)
    if path is None:
        pytest.fail(f"no `{name}` command in this environment")
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(toy_site, tmp_path, monkeypatch):
    """A one-node cluster from `ray start --head --block` on 127.0.0.1; stopped (SIGTERM) after."""
    port = _free_port()
    # the head and the driver (a child process) use token authentication with this test's token
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    log = (tmp_path / "ray-head.log").open("w")
    head = subprocess.Popen(
        [_script("ray"), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ray start failed: {(tmp_path / 'ray-head.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()


def test_batch_on_an_existing_cluster(ray_head, toy_model, clip_files, tmp_path):
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(
        "items:\n"
        + "".join(f"  - {{id: {i}, source: {clip_files / 'source.mp4'}, edited_frame: {clip_files / 'edited.png'}, "
                  f"prompt: a clip, backbone: toy, model: {toy_model}, seed: {seed}, num_frames: 8, size: 64x64, steps: 5, "
                  f"inversion_steps: 10}}\n" for i, seed in (("a", 1), ("b", 2))))
    out_dir = tmp_path / "out"
    # the real command in its own process, as a user runs it (Ray reads RAY_AUTH_MODE on import)
    r = subprocess.run([_script("anyv2v"), "batch", str(manifest), "--out-dir",
                        str(out_dir), "--device", "cpu", "--no-cache", "--ray", ray_head],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ray: 2 worker(s) (0 GPU, 1 CPU each) on 1 node(s)" in r.stdout + r.stderr
    records = ResultsLog(out_dir / "results.jsonl").records()
    assert sorted((x["id"], x["status"]) for x in records) == [("a", "ok"), ("b", "ok")]
    assert all("worker" in x for x in records)
    assert all(len(video.read_frames(out_dir / f"{i}.mp4", None)) == 8 for i in "ab")
