"""The toy backbone of ``anyv2v_core.testing``: a real plugin as far as the core can tell
(entry point, registry, loading, the conformance kit), and fast."""

import pytest
import torch

from anyv2v_core.testing.conformance import BackboneConformance
from anyv2v_core.testing.toy import ToyBackbone


class TestToyConformance(BackboneConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls, toy_model):
        return ToyBackbone(model=str(toy_model), device="cpu", dtype=torch.float32)


def test_weights_come_from_the_folder_and_the_seed(toy_model, tmp_path):
    a = ToyBackbone(model=str(toy_model)).denoiser.state_dict()
    fresh = ToyBackbone().denoiser.state_dict()  # no folder: the same seed-0 weights, in memory
    other = ToyBackbone(model=str(ToyBackbone.build_tiny(tmp_path / "seed1", seed=1))).denoiser.state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in a.items())
    assert not all(torch.equal(v, other[k]) for k, v in a.items())


def test_missing_weights_name_the_file(tmp_path):
    from anyv2v_core.errors import ModelNotFoundError

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="lacks toy.safetensors"):
        ToyBackbone(model=str(tmp_path))
