"""State-dict compatibility with the official AnyDoor checkpoint, without its weights.

``data/official_state_dict.tsv`` lists every tensor of the official ``ControlLDM`` (name and
shape), recorded once from the official model definition built at full size on the meta
device.
"""

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from anyv2v_editor_anydoor.config import FULL
from anyv2v_editor_anydoor.mapping import (
    SCHEDULE_BUFFERS,
    convert_official_state_dict,
    map_official_key,
    mapped_shapes,
    to_official_state_dict,
)

DATA = Path(__file__).parent / "data" / "official_state_dict.tsv"


def official_shapes() -> dict[str, tuple[int, ...]]:
    out = {}
    for line in DATA.read_text().splitlines():
        if line.startswith("#"):
            continue
        name, shape = line.split("\t")
        out[name] = tuple(int(s) for s in shape.split(",")) if shape else ()
    return out


def test_recorded_facts_are_complete():
    shapes = official_shapes()
    assert len(shapes) == 1856
    # DINOv2 ViT-g/14: 40 blocks, 1536 wide, 37x37+1 positions; projector 1536 -> 1024
    assert shapes["cond_stage_model.model.pos_embed"] == (1, 1370, 1536)
    assert shapes["cond_stage_model.projector.weight"] == (1024, 1536)
    assert shapes["control_model.input_hint_block.0.weight"] == (16, 4, 3, 3)
    assert sum(1 for k in shapes if re.fullmatch(r"cond_stage_model\.model\.blocks\.\d+\.ls1\.gamma", k)) == 40


def test_full_size_model_has_exactly_the_official_tensors():
    from anyv2v_editor_anydoor.model import AnyDoorModel

    expected: dict[str, tuple[int, ...]] = {}
    dropped = set()
    for name, shape in official_shapes().items():
        key = map_official_key(name, FULL)
        if key is None:
            dropped.add(name)
            continue
        for ours, ours_shape in mapped_shapes(key, shape).items():
            assert ours not in expected, f"two official tensors map to {ours}"
            expected[ours] = ours_shape
    assert dropped == SCHEDULE_BUFFERS
    model = AnyDoorModel.build_meta(FULL)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(ours) - set(expected)) == []
    assert sorted(set(expected) - set(ours)) == []
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == sum(torch.Size(s).numel() for n, s in official_shapes().items() if n not in SCHEDULE_BUFFERS)


def test_unknown_official_name_is_an_error():
    with pytest.raises(KeyError):
        map_official_key("model.diffusion_model.something.weight")
    with pytest.raises(KeyError):
        map_official_key("lvlb_weights_unknown")


def tiny_official_names(config) -> list[str]:
    """The official names of a model with the published structure and fewer DINOv2 blocks."""
    names = []
    for name in official_shapes():
        m = re.match(r"cond_stage_model\.model\.blocks\.(\d+)\.", name)
        if m and int(m[1]) >= config.dino_layers:
            continue
        names.append(name)
    return names


@pytest.fixture(scope="module")
def tiny_official_ckpt(tiny_model, tmp_path_factory):
    """A tiny checkpoint in the official Lightning layout (pickled, as published)."""
    from anyv2v_editor_anydoor.tiny import TINY

    _, model = tiny_model
    ours = model.state_dict()
    names = tiny_official_names(TINY)
    state = to_official_state_dict(ours, names, TINY)
    assert set(state) | SCHEDULE_BUFFERS == set(names)
    assert set(convert_official_state_dict(state, TINY)) == set(ours), "the tiny official layout covers every tensor"
    for buffer in SCHEDULE_BUFFERS:
        state[buffer] = torch.linspace(0, 1, TINY.num_train_timesteps)
    root = tmp_path_factory.mktemp("official")
    ckpt = root / "epoch=1-step=8687.ckpt"
    torch.save({"epoch": 1, "global_step": 8687, "pytorch-lightning_version": "1.5.0", "state_dict": state}, ckpt)
    (root / "tiny.json").write_text(TINY.to_json())
    return ckpt, root / "tiny.json"


def cli(*args):
    from anyv2v_core.cli import app
    from anyv2v_core.plugins import get_registry

    get_registry().register_commands(app)  # what `anyv2v` (main) does before running
    return CliRunner().invoke(app, [str(a) for a in args])


def test_converter_round_trips_an_official_layout_checkpoint(tiny_model, tiny_official_ckpt, tmp_path):
    from safetensors.torch import load_file

    from anyv2v_editor_anydoor.model import AnyDoorModel

    ckpt, config = tiny_official_ckpt
    out = tmp_path / "anydoor.safetensors"
    result = cli("anydoor-convert", ckpt, out, "--config", config)
    assert result.exit_code == 0, result.output
    converted = load_file(str(out))
    original = tiny_model[1].state_dict()
    assert set(converted) == set(original)
    assert all(torch.equal(converted[k], original[k]) for k in original)
    loaded = AnyDoorModel.from_file(out)
    assert loaded.config == tiny_model[1].config
    # exists -> refused without --force; fp16 conversion halves the floats
    assert cli("anydoor-convert", ckpt, out, "--config", config).exit_code == 2
    assert cli("anydoor-convert", ckpt, out, "--config", config, "--dtype", "float16", "--force").exit_code == 0
    assert load_file(str(out))["projector.weight"].dtype == torch.float16


class NotAWeight:
    pass


@pytest.mark.parametrize("case", ["pickled-object", "missing-tensor", "missing-file", "wrong-architecture"])
def test_converter_errors_are_one_line(tiny_official_ckpt, tmp_path, case):
    ckpt, config = tiny_official_ckpt
    args = ["anydoor-convert", ckpt, tmp_path / "o.safetensors", "--config", config]
    if case == "pickled-object":
        bad = tmp_path / "bad.ckpt"
        torch.save({"state_dict": {"betas": torch.zeros(3)}, "callbacks": NotAWeight()}, bad)
        args[1] = bad
        expect = "weights_only=True"
    elif case == "missing-tensor":
        state = torch.load(ckpt, weights_only=True)["state_dict"]
        del state["control_model.zero_convs.3.0.weight"]
        args[1] = tmp_path / "partial.ckpt"
        torch.save({"state_dict": state}, args[1])
        expect = "lacks 1 AnyDoor tensors (e.g. controlnet.controlnet_down_blocks.3.weight)"
    elif case == "missing-file":
        args[1] = tmp_path / "nope.ckpt"
        expect = "checkpoint not found"
    else:
        args = args[:3]  # the published architecture (40 DINOv2 blocks), but a tiny checkpoint
        expect = "lacks 760 AnyDoor tensors"
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert expect in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.safetensors").exists()
