"""State-dict compatibility with the official ConsistI2V checkpoint, without the weights.

``data/official_unet_params.tsv`` lists every parameter name and shape of the official
``VideoLDMUNet3DConditionModel`` built at full size (SD-2.1-base UNet config plus the
released model's ConsistI2V options) on the meta device with diffusers 0.21.2 (the
version the official code needs), from the code AnyV2V vendors. Our UNet, built the same
way, must match it exactly: no key mapping is needed."""

import json
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data" / "official_unet_params.tsv"

#: The official checkpoint's unet/config.json values that shape the model (SD-2.1-base +
#: ConsistI2V's configs/inference/inference.yaml unet_additional_kwargs).
FULL_CONFIG = dict(
    sample_size=32,
    in_channels=4,
    out_channels=4,
    block_out_channels=[320, 640, 1280, 1280],
    layers_per_block=2,
    norm_num_groups=32,
    cross_attention_dim=1024,
    attention_head_dim=[5, 10, 20, 20],
    use_linear_projection=True,
    n_frames=16,
    n_temp_heads=8,
    first_frame_condition_mode="concat",
    augment_temporal_attention=True,
    temp_pos_embedding="rotary",
    use_frame_stride_condition=True,
)


def official_params() -> dict[str, tuple[int, ...]]:
    out = {}
    for line in DATA.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")
        out[name] = tuple(int(s) for s in shape.split("x")) if shape else ()
    return out


def test_full_size_unet_matches_official_state_dict():
    from anyv2v_backbone_consisti2v.unet import ConsistI2VUNet

    with torch.device("meta"):
        unet = ConsistI2VUNet(**FULL_CONFIG)
    ours = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    official = official_params()
    assert len(official) == 1397
    assert sorted(set(official) - set(ours)) == [], "official parameters we lack"
    assert sorted(set(ours) - set(official)) == [], "parameters the official checkpoint lacks"
    assert {k: v for k, v in ours.items() if v != official[k]} == {}
    assert sum(torch.Size(s).numel() for s in ours.values()) == 1_249_975_241


def test_loads_official_class_name_config(tiny_consisti2v):
    """The tiny model's unet/config.json names the official class; it loads with every key
    matched (missing or unexpected keys would raise or warn)."""
    from anyv2v_backbone_consisti2v.unet import ConsistI2VUNet

    config = json.loads((tiny_consisti2v / "unet" / "config.json").read_text())
    assert config["_class_name"] == "VideoLDMUNet3DConditionModel"
    unet, info = ConsistI2VUNet.from_pretrained(tiny_consisti2v / "unet", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


@pytest.mark.parametrize("key, value", [("first_frame_condition_mode", "conv2d"), ("temp_pos_embedding", "sinusoidal"),
                                        ("resnet_time_scale_shift", "scale_shift"), ("only_cross_attention", True)])
def test_unsupported_variant_is_refused(key, value):
    from anyv2v_backbone_consisti2v.unet import ConsistI2VUNet

    with pytest.raises(ValueError, match=key):
        with torch.device("meta"):
            ConsistI2VUNet(**{**FULL_CONFIG, key: value})
