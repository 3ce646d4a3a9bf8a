"""End-to-end `anyv2v` runs with the instantid editor: the whole SDXL + IdentityNet +
face-adapter path on tiny random weights saved in the real layouts, faces found by the
deterministic marker analyzer (see anyv2v_editor_instantid.testing)."""

import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core.cli import app


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def edit_frame(images, editor_args, out, *extra, source="clip"):
    result = run("edit-frame", images / source, "--out", out, "--prompt", "a person", "--device", "cpu",
                 *editor_args, *extra)
    assert result.exit_code == 0, result.output
    return np.asarray(video.load_image(out)).astype(int)


def with_option(args, flag, value):
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


def test_edit_frame_deterministic_and_driven_by_identity_and_pose(images, editor_args, tmp_path):
    a = edit_frame(images, editor_args, tmp_path / "a.png")
    assert a.shape == (64, 64, 3)
    assert np.array_equal(a, edit_frame(images, editor_args, tmp_path / "b.png"))
    other_identity = edit_frame(images, with_option(editor_args, "--face-image", images / "face-other.png"),
                                tmp_path / "c.png")
    assert np.abs(a - other_identity).max() > 10, "the face image must change the result"
    other_pose = edit_frame(images, editor_args, tmp_path / "d.png", source="clip-moved")
    assert np.abs(a - other_pose).max() > 3, "the first frame's keypoints must change the result"
    no_adapter = edit_frame(images, editor_args, tmp_path / "e.png", "--adapter-scale", "0")
    assert np.abs(a - no_adapter).max() > 10, "--adapter-scale 0 must drop the face tokens' effect"


def test_largest_face_is_used_and_logged(images, editor_args, tmp_path, caplog):
    single = edit_frame(images, editor_args, tmp_path / "single.png")
    with caplog.at_level(logging.WARNING, logger="anyv2v.instantid"):
        two = edit_frame(images, with_option(editor_args, "--face-image", images / "two-faces.png"),
                         tmp_path / "two.png")
    assert np.array_equal(single, two)
    assert "2 faces found in the face image two-faces.png; using the largest" in caplog.text


def test_keep_background_pastes_only_the_face_region(images, editor_args, tmp_path):
    source = np.asarray(video.read_frames(images / "clip", 1)[0]).astype(int)
    full = edit_frame(images, editor_args, tmp_path / "full.png")
    kept = edit_frame(images, editor_args, tmp_path / "kept.png", "--keep-background")
    # face box of frame 0 is (18, 12, 46, 48); grown by 25 % and feathered: the corners
    # are far outside, the centre inside
    for y, x in ((0, 0), (0, 63), (63, 0), (63, 63)):
        assert np.array_equal(kept[y, x], source[y, x]), (y, x)
    assert np.array_equal(kept[30, 32], full[30, 32])
    assert np.abs(full - source).max() > 10


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a, i: with_option(a, "--face-image", i / "noface.png"), "no face found in the face image noface.png"),
        (lambda a, i: with_option(a, "--face-image", i / "missing.png"), "file not found"),
        (lambda a, i: a[:1 + 1] + a[1 + 3:], "editor 'instantid' needs --face-image"),
        (lambda a, i: with_option(a, "--face-analyzer", "nope"), "--face-analyzer 'nope'"),
        (lambda a, i: with_option(a, "--face-analyzer", "antelopev2") + ["--antelopev2-dir", i / "no-models"],
         "no-models"),
        (lambda a, i: with_option(a, "--instantid-model", i / "no-weights"), "no-weights"),
    ],
)
def test_bad_input_is_one_line_exit_2(images, editor_args, tmp_path, change, message):
    args = change(list(editor_args), images)
    result = run("edit-frame", images / "clip", "--out", tmp_path / "o.png", "--device", "cpu", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error:")
    assert not (tmp_path / "o.png").exists()


def test_no_face_in_first_frame(images, editor_args, tmp_path):
    frames = tmp_path / "faceless"
    video.write_frames_dir([video.load_image(images / "noface.png")] * 2, frames)
    result = run("edit-frame", frames, "--out", tmp_path / "o.png", "--device", "cpu", *editor_args)
    assert result.exit_code == 2 and "no face found in the first frame" in result.output


def test_missing_antelopev2_names_the_folder(images, editor_args, tmp_path):
    args = with_option(editor_args, "--face-analyzer", "antelopev2") + ["--antelopev2-dir", tmp_path / "antelopev2"]
    result = run("edit-frame", images / "clip", "--out", tmp_path / "o.png", *args)
    assert result.exit_code == 2
    assert f"face analysis models antelopev2 not found in {tmp_path / 'antelopev2'}" in " ".join(result.output.split())


def test_antelopev2_without_insightface_says_what_to_install(images, editor_args, tmp_path, monkeypatch):
    folder = tmp_path / "models" / "antelopev2"
    folder.mkdir(parents=True)
    (folder / "scrfd_10g_bnkps.onnx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "insightface", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "insightface.app", None)
    args = with_option(editor_args, "--face-analyzer", "antelopev2") + ["--antelopev2-dir", folder]
    result = run("edit-frame", images / "clip", "--out", tmp_path / "o.png", *args)
    assert result.exit_code == 2, result.output
    assert "needs insightface and onnxruntime" in result.output and "pip install insightface onnxruntime" in result.output


@pytest.mark.parametrize("flag, repo", [("--sdxl-model", "stabilityai/stable-diffusion-xl-base-1.0"),
                                        ("--instantid-model", "InstantX/InstantID")])
def test_hub_ids_offline_name_the_repo(images, editor_args, tmp_path, monkeypatch, flag, repo):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = run("edit-frame", images / "clip", "--out", tmp_path / "o.png", *with_option(editor_args, flag, repo))
    assert result.exit_code == 2
    assert f"'{repo}' are not available" in result.output and "HF_HUB_OFFLINE" in result.output


def test_convert_command_and_safetensors_preferred(images, editor_args, tiny_instantid, tmp_path):
    """`anyv2v instantid-convert` (the plugin's command, through the console entry) writes
    safetensors equal to the pickle; the editor then uses it, even beside a broken .bin."""
    from anyv2v_editor_instantid.adapter import load_adapter_file

    folder = tmp_path / "instantid"
    shutil.copytree(tiny_instantid, folder)
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "instantid-convert", folder / "ip-adapter.bin"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    converted = folder / "ip-adapter.safetensors"
    assert converted.is_file()
    for a, b in zip(load_adapter_file(folder / "ip-adapter.bin"), load_adapter_file(converted)):
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    again = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "instantid-convert", folder / "ip-adapter.bin"],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr

    reference = edit_frame(images, editor_args, tmp_path / "bin.png")
    (folder / "ip-adapter.bin").write_bytes(b"not a pickle")
    from_safetensors = edit_frame(images, with_option(editor_args, "--instantid-model", folder), tmp_path / "st.png")
    assert np.array_equal(reference, from_safetensors)


class _Evaluates:
    """Unpickles by calling eval: what weights_only=True must refuse."""

    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_convert_refuses_unsafe_pickle(tmp_path):
    import torch

    bad = tmp_path / "ip-adapter.bin"
    torch.save({"image_proj": {}, "ip_adapter": {}, "x": _Evaluates()}, bad)
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "instantid-convert", bad, tmp_path / "o.safetensors"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "weights_only=True" in proc.stderr, proc.stderr
    assert not (tmp_path / "o.safetensors").exists()


def test_edit_video_with_a_backbone(images, editor_args, toy_model, tmp_path):
    """The whole AnyV2V edit: instantid on frame 0, then a backbone (the toy) propagates it;
    identical to `--editor image` given the frame `edit-frame` produced."""
    fast = ["--num-frames", "4", "--size", "64x64", "--steps", "10", "--inversion-steps", "20", "--device", "cpu",
            "--backbone", "toy", "--model", toy_model, "--prompt", "a person"]
    result = run("edit", images / "clip", "--out", tmp_path / "id.mp4", "--frames-dir", tmp_path / "id", *fast,
                 *editor_args)
    assert result.exit_code == 0, result.output
    assert len(video.read_frames(tmp_path / "id.mp4")) == 4
    edit_frame(images, editor_args, tmp_path / "frame0.png")
    result = run("edit", images / "clip", "--out", tmp_path / "img.mp4", "--frames-dir", tmp_path / "img", *fast,
                 "--editor", "image", "--edited-frame", tmp_path / "frame0.png")
    assert result.exit_code == 0, result.output
    for p, q in zip(sorted((tmp_path / "id").glob("*.png")), sorted((tmp_path / "img").glob("*.png"))):
        assert np.array_equal(np.asarray(video.load_image(p)), np.asarray(video.load_image(q)))


def test_listed_by_editors_and_plugins():
    result = run("editors", "instantid")
    assert result.exit_code == 0
    for flag in ("--face-image", "--keep-background", "--face-analyzer", "--sdxl-model", "--instantid-model"):
        assert flag in result.output
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "plugins", "--json"], capture_output=True, text=True)
    import json

    data = json.loads(proc.stdout)
    names = {(c["kind"], c["name"]): c for c in data["components"]}
    assert names[("editor", "instantid")]["package"] == "anyv2v-editor-instantid"
    assert not [f for f in data["failures"] if f["plugin"] == "instantid"]
