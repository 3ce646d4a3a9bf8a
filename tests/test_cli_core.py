import subprocess
import sys
import time

from typer.testing import CliRunner

from anyv2v_core.cli import app


def test_help_and_version():
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0 and "edit" in r.output and "invert" in r.output and "plugins" in r.output
    r = CliRunner().invoke(app, ["edit", "--help"])
    assert r.exit_code == 0 and "--edited-frame" in r.output and "--tau-ta" in r.output
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and "anyv2v 0.1.0" in r.output


def test_unknown_backbone_is_one_line(tmp_path):
    (tmp_path / "f.png").write_bytes(b"")
    r = CliRunner().invoke(app, ["edit", str(tmp_path), "--prompt", "x", "--backbone", "nope", "--out",
                                 str(tmp_path / "o.mp4")])
    assert r.exit_code == 2
    assert "unknown backbone 'nope'" in r.output and "Traceback" not in r.output


def test_bad_size_is_one_line(tmp_path):
    r = CliRunner().invoke(app, ["edit", str(tmp_path), "--prompt", "x", "--size", "big", "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and 'size must be "WxH", positive multiples of 8, got \'big\'' in r.output


def test_cli_starts_fast():
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "--help"], capture_output=True)
    assert proc.returncode == 0
    assert time.perf_counter() - t < 3.0  # generous for a loaded CI machine; typically ~0.2 s
