"""The plugin author's guide (docs/plugin-guide.md), followed literally: its files are
extracted, built into a wheel, installed into a folder of their own (never into this
environment) and used through the real `anyv2v` command in a subprocess."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GUIDE = Path(__file__).resolve().parents[4] / "docs" / "plugin-guide.md"
FILE_BLOCK = re.compile(r"```(?:toml|python)\n# file: (\S+)\n(.*?)```", re.S)


def guide_files() -> dict[str, str]:
    return {name: body for name, body in FILE_BLOCK.findall(GUIDE.read_text())}


def _setuptools_builds_wheels_offline() -> bool:
    """setuptools >= 70.1 builds wheels by itself; older ones need the `wheel` package."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    version = tuple(int(x) for x in re.findall(r"\d+", md.version("setuptools"))[:2])
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def anyv2v(target: Path, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("anyv2v")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "anyv2v_core.cli"]
    path = os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "200"}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The guide's package, built as a wheel and installed with --target."""
    root = tmp_path_factory.mktemp("sepia")
    src = root / "anyv2v-editor-sepia"
    files = guide_files()
    assert {"pyproject.toml", "src/anyv2v_editor_sepia/plugin.py", "src/anyv2v_editor_sepia/editor.py",
            "tests/test_sepia.py"} <= set(files)
    for name, body in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(body)
    # With a capable setuptools here, build offline; else pip makes a build env from PyPI.
    isolation = ["--no-build-isolation"] if _setuptools_builds_wheels_offline() else []
    pip("wheel", "--no-deps", *isolation, "-w", str(root / "dist"), str(src))
    wheels = list((root / "dist").glob("anyv2v_editor_sepia-0.3.1-*.whl"))
    assert len(wheels) == 1
    target = root / "site"
    pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheels[0]))
    return target


def test_environment_is_not_polluted(installed):
    with pytest.raises(md.PackageNotFoundError):
        md.distribution("anyv2v-editor-sepia")


def test_listed_by_plugins_json(installed):
    proc = anyv2v(installed, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    sepia = [c for c in data["components"] if c["name"] == "sepia"]
    assert sepia and sepia[0]["kind"] == "editor"
    assert sepia[0]["package"] == "anyv2v-editor-sepia" and sepia[0]["version"] == "0.3.1"
    assert sepia[0]["options"] == ["--strength", "--tone"]
    assert data["failures"] == []
    assert "--strength" in anyv2v(installed, "editors", "sepia").stdout


def test_edit_frame_uses_it(installed, tmp_path):
    from anyv2v_core import video
    from anyv2v_core.testing.tiny import synthetic_frames

    frames = synthetic_frames(2, 48, 40, seed=2)
    video.write_frames_dir(frames, tmp_path / "clip")
    out = tmp_path / "sepia.png"
    proc = anyv2v(installed, "edit-frame", str(tmp_path / "clip"), "--editor", "sepia", "--strength", "1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    arr = np.asarray(video.load_image(out), dtype=int)
    assert arr.shape == (40, 48, 3)
    # sepia: warm tones everywhere, red >= green >= blue
    assert (arr[..., 0] >= arr[..., 1] - 1).all() and (arr[..., 1] >= arr[..., 2] - 1).all()
    assert not np.array_equal(arr, np.asarray(frames[0], dtype=int))

    bad = anyv2v(installed, "edit-frame", str(tmp_path / "clip"), "--editor", "sepia", "--strength", "3",
                 "-o", str(tmp_path / "bad.png"))
    assert bad.returncode == 2 and "--strength must be in [0, 1]" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_guides_own_tests_pass(installed):
    """The conformance test the guide shows, run against the installed package."""
    tests = installed.parent / "anyv2v-editor-sepia" / "tests"
    path = os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                          capture_output=True, text=True, cwd=tests.parent, env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "7 passed" in proc.stdout
