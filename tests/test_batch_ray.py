"""`anyv2v batch --ray` without a model: the optional value of --ray, addresses, worker
planning, cache resolution and the one-line errors (the real Ray run is tested on the tiny
I2VGen-XL in that plugin's test_i2vgenxl_ray.py)."""

import json
import sys

import pytest
from typer.testing import CliRunner

from anyv2v_core import batch_ray
from anyv2v_core.batch_ray import _plan_workers, _resolve_cache, is_address, run_batch_ray
from anyv2v_core.cli import app
from anyv2v_core.errors import InputError


PLUGIN = """
from anyv2v_core import hookimpl

@hookimpl
def anyv2v_register_backbones(register):
    register("fakebb", "nowhere:Backbone")
"""


@pytest.fixture
def manifest(plugin_site, tmp_path):
    plugin_site("anyv2v-fake-ray", "anyv2v_fake_ray_mod", PLUGIN, entry_name="fakeray")
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "a", "source": "a.mp4", "prompt": "p", "edited_frame": "a.png",
                                "backbone": "fakebb"}) + "\n")
    return path


@pytest.mark.parametrize("value, ok", [
    ("local", True), ("auto", True), ("ray://head:10001", True), ("127.0.0.1:6379", True), ("head:6379", True),
    ("m.jsonl", False), ("jobs", False), ("--out-dir", False), ("head", False), ("a b:1", False),
])
def test_is_address(value, ok):
    assert is_address(value) is ok


@pytest.mark.parametrize("args, address", [
    (["{m}", "--ray"], "local"),
    (["--ray", "{m}"], "local"),
    (["{m}", "--ray", "--device", "cpu"], "local"),
    (["{m}", "--ray", "auto"], "auto"),
    (["--ray", "ray://head:10001", "{m}"], "ray://head:10001"),
    (["{m}", "--ray=127.0.0.1:6379"], "127.0.0.1:6379"),
])
def test_ray_option_value_is_optional(manifest, monkeypatch, args, address):
    """Only the parsing is checked here: the call into run_batch_ray is captured."""
    seen = {}

    def capture(items, out_dir, **kwargs):
        seen.update(kwargs, ids=[i.id for i in items])
        return batch_ray.BatchSummary()

    monkeypatch.setattr(batch_ray, "run_batch_ray", capture)
    argv = [a.format(m=manifest) for a in args]
    r = CliRunner().invoke(app, ["batch", *argv, "--workers", "3", "--gpus-per-worker", "0.5"])
    assert r.exit_code == 0, r.output
    assert seen["address"] == address and seen["ids"] == ["a"]
    assert (seen["workers"], seen["gpus_per_worker"], seen["cpus_per_worker"]) == (3, 0.5, 1.0)


def test_worker_options_need_ray(manifest):
    r = CliRunner().invoke(app, ["batch", str(manifest), "--workers", "2"])
    assert r.exit_code == 2 and "--workers, --gpus-per-worker and --cpus-per-worker need --ray" in r.output


def test_help_names_the_ray_options():
    r = CliRunner().invoke(app, ["batch", "--help"], terminal_width=200)
    assert r.exit_code == 0
    for text in ("--ray", "[ADDRESS]", "--workers", "--gpus-per-worker", "--cpus-per-worker"):
        assert text in r.output


def test_missing_ray_is_one_line_error(manifest, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(InputError, match=r'^Ray is not installed: pip install "anyv2v\[ray\]"$'):
        run_batch_ray([], manifest.parent / "out")
    r = CliRunner().invoke(app, ["batch", str(manifest), "--ray"])
    assert r.exit_code == 2 and 'Ray is not installed: pip install "anyv2v[ray]"' in r.output


def test_bad_address_is_one_line_error_before_starting_ray(manifest):
    pytest.importorskip("ray")
    r = CliRunner().invoke(app, ["batch", str(manifest), "--ray=head"])
    assert r.exit_code == 2, r.output
    assert "not a Ray address: 'head' (use local, auto, ray://HOST:PORT or HOST:PORT)" in r.output
    assert not sys.modules["ray"].is_initialized()


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_unreachable_address_is_one_line_error_at_once(manifest, scheme):
    import socket
    import time

    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    r = CliRunner().invoke(app, ["batch", str(manifest), f"--ray={scheme}127.0.0.1:{port}"])
    assert r.exit_code == 2, r.output
    assert f"cannot reach Ray at {scheme}127.0.0.1:{port}: Connection refused (is the cluster running?" in r.output
    assert time.monotonic() - started < 10 and not sys.modules["ray"].is_initialized()  # not Ray's long retries


def test_plan_workers():
    gpus = {"GPU": 4.0, "CPU": 32.0}
    assert _plan_workers(gpus, None, None, 1, pending=100) == (4, 1.0)
    assert _plan_workers(gpus, None, 0.5, 1, pending=100) == (8, 0.5)
    assert _plan_workers(gpus, None, None, 1, pending=3) == (3, 1.0)  # never more than the items
    assert _plan_workers(gpus, 2, None, 1, pending=100) == (2, 1.0)
    cpus = {"CPU": 2.0}
    assert _plan_workers(cpus, None, None, 1, pending=10) == (2, 0.0)
    assert _plan_workers(cpus, None, None, 2, pending=10) == (1, 0.0)
    assert _plan_workers(cpus, None, None, 1, pending=1) == (1, 0.0)
    with pytest.raises(InputError, match="has 0 GPU.*2 worker.*need 2 GPU"):
        _plan_workers(cpus, 2, 1, 1, pending=10)
    with pytest.raises(InputError, match="has 4 GPU.*5 worker"):
        _plan_workers(gpus, 5, None, 1, pending=10)


def test_cache_is_resolved_on_the_driver(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYV2V_CACHE", str(tmp_path / "env-cache"))
    assert _resolve_cache(True) == str(tmp_path / "env-cache")
    assert _resolve_cache(False) is False
    monkeypatch.chdir(tmp_path)
    assert _resolve_cache("rel") == str(tmp_path / "rel")


DYING = """
import os

from anyv2v_core import hookimpl


class Crash:
    def __init__(self, **kwargs):
        os._exit(3)  # the worker process dies (like a segfault or the OOM killer)


class Broken:
    def __init__(self, **kwargs):
        raise RuntimeError("no weights here")


@hookimpl
def anyv2v_register_backbones(register):
    register("crashbb", "anyv2v_fake_raydie_mod:Crash")
    register("brokenbb", "anyv2v_fake_raydie_mod:Broken")
"""


def test_dead_worker_is_recorded_and_replaced(plugin_site, tmp_path, monkeypatch):
    """A real local Ray instance: the worker dies under item x (recorded failed), a new
    worker runs item y, whose backbone fails to load (recorded failed)."""
    pytest.importorskip("ray")
    from anyv2v_core.batch import ResultsLog
    from anyv2v_core.batch_ray import ray_session

    plugin_site("anyv2v-fake-raydie", "anyv2v_fake_raydie_mod", DYING, entry_name="fakeraydie")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the worker processes find the fake plugin too
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"id": i, "source": "a.mp4", "prompt": "p", "edited_frame": "a.png",
                                     "backbone": bb}) + "\n" for i, bb in (("x", "crashbb"), ("y", "brokenbb"))))
    with ray_session("local", num_cpus=1):
        r = CliRunner().invoke(app, ["batch", str(m), "--ray", "--no-cache"])
    assert r.exit_code == 1, r.output
    assert "0 ok, 0 skipped (done before), 2 failed" in r.output
    records = ResultsLog(tmp_path / "m-out" / "results.jsonl").records()
    assert [(x["id"], x["status"], x["worker"]) for x in records] == [("x", "failed", 0), ("y", "failed", 0)]
    assert records[0]["error"].startswith("worker 0 died while running this item (")
    assert records[1]["error"] == "loading backbone brokenbb: unexpected RuntimeError: no weights here"
    assert not sys.modules["ray"].is_initialized()
