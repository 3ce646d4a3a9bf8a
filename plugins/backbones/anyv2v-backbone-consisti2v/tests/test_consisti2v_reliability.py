"""ConsistI2V's rough edges (docs/reliability.md): its option spelled either way everywhere,
`consisti2v-convert` on a converted folder, converted weights' permissions."""

import os
import shutil

import pytest
import torch
from typer.testing import CliRunner

from anyv2v_core import api
from anyv2v_core.batch import _check_backbone_options
from anyv2v_core.cli import app
from anyv2v_core.errors import InputError
from anyv2v_core.plugins import get_registry


def run(*args):
    get_registry().register_commands(app)
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("spelling", ["frame-stride", "frame_stride", "--frame-stride"])
def test_frame_stride_either_spelling_in_the_library_api(tiny_consisti2v, spelling):
    bb = api.load_backbone("consisti2v", str(tiny_consisti2v), device="cpu", dtype="float32",
                           options={spelling: "5"})
    assert bb.frame_stride == 5
    assert _check_backbone_options("consisti2v", {spelling: 5}) == {"frame_stride": 5}  # manifests alike


def test_frame_stride_given_both_ways_is_refused():
    with pytest.raises(InputError, match="option frame_stride is given twice"):
        api.load_backbone("consisti2v", "unused", options={"frame-stride": 3, "frame_stride": 4})


def test_convert_on_a_converted_folder_says_so(tiny_consisti2v, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_consisti2v, model)
    before = {p: p.stat().st_mtime_ns for p in model.rglob("*")}
    result = run("consisti2v-convert", model)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{model} is already converted: every component has safetensors weights " \
                                    "(nothing to do)"
    assert {p: p.stat().st_mtime_ns for p in model.rglob("*")} == before
    empty = tmp_path / "empty"
    (empty / "unet").mkdir(parents=True)
    result = run("consisti2v-convert", empty)
    assert result.exit_code == 2 and "has no pickled component weights" in result.output


def test_converted_weights_follow_the_umask(tiny_consisti2v, tmp_path):
    from safetensors.torch import load_file

    model = tmp_path / "model"
    shutil.copytree(tiny_consisti2v, model)
    st = model / "text_encoder" / "model.safetensors"
    torch.save(load_file(str(st)), model / "text_encoder" / "pytorch_model.bin")
    st.unlink()
    old = os.umask(0o022)
    try:
        result = run("consisti2v-convert", model)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert st.stat().st_mode & 0o777 == 0o644
