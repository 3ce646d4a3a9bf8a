"""The Resampler's head size comes from the checkpoint's config when it carries one
(docs/reliability.md); the official ip-adapter.bin carries none and keeps 64-channel heads."""

import pytest
import torch

from anyv2v_core.errors import InputError
from anyv2v_editor_instantid.adapter import (CONFIG_KEY, Resampler, convert_adapter, load_adapter,
                                             resampler_from_state_dict)


def checkpoint(path, config=None):
    """An ip-adapter.bin whose Resampler has 8 heads of 16 channels (inner width 128)."""
    torch.manual_seed(0)
    model = Resampler(dim=32, depth=2, dim_head=16, heads=8, num_queries=4, embedding_dim=12, output_dim=24,
                      ff_mult=2).eval()
    nested = {"image_proj": model.state_dict(), "ip_adapter": {"1.to_k_ip.weight": torch.zeros(4, 24)}}
    if config is not None:
        nested[CONFIG_KEY] = config
    torch.save(nested, path)
    return model


@pytest.mark.parametrize("config", [{"dim_head": 16}, {"heads": 8}, {"dim_head": 16, "heads": 8}])
def test_head_size_read_from_the_checkpoint_config(tmp_path, config):
    reference = checkpoint(tmp_path / "ip-adapter.bin", config)
    x = torch.randn(2, 1, 12, generator=torch.Generator().manual_seed(1))
    image_proj, _, read = load_adapter(tmp_path / "ip-adapter.bin")
    assert read == config
    ours = resampler_from_state_dict(image_proj, read)
    assert (ours.layers[0][0].heads, ours.layers[0][0].dim_head) == (8, 16)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
        assumed = resampler_from_state_dict(image_proj)  # the 64-channel assumption: 2 heads, other output
        assert (assumed.layers[0][0].heads, assumed.layers[0][0].dim_head) == (2, 64)
        assert not torch.allclose(assumed(x), reference(x))
    converted = convert_adapter(tmp_path / "ip-adapter.bin", tmp_path / "ip-adapter.safetensors")
    assert load_adapter(converted)[2] == config  # the conversion keeps it


def test_official_checkpoint_without_config_keeps_64_channel_heads(tmp_path):
    checkpoint(tmp_path / "ip-adapter.bin")
    image_proj, _, config = load_adapter(tmp_path / "ip-adapter.bin")
    assert config == {}
    assert resampler_from_state_dict(image_proj).layers[0][0].dim_head == 64


@pytest.mark.parametrize("config, message", [
    ({"heads": 3}, "inner width 128, not 3 heads of 42 channels"),
    ({"dim_head": 16, "heads": 4}, "inner width 128, not 4 heads of 16 channels"),
    ({"dim_head": "16"}, "has dim_head='16'; expected a positive integer"),
])
def test_inconsistent_config_is_one_line(tmp_path, config, message):
    checkpoint(tmp_path / "ip-adapter.bin", config)
    image_proj, _, read = load_adapter(tmp_path / "ip-adapter.bin")
    with pytest.raises(InputError, match=message):
        resampler_from_state_dict(image_proj, read)
