"""CLIP metrics: the pure functions on hand-made embeddings, then `anyv2v eval` on a tiny
random CLIP saved to a folder (offline)."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from anyv2v_core import metrics, video
from anyv2v_core.cli import app
from anyv2v_core.errors import InputError, ModelNotFoundError
from anyv2v_core.testing.tiny import synthetic_frames



# -- pure functions ----------------------------------------------------------------------------
def test_text_alignment_is_mean_cosine():
    text = torch.tensor([1.0, 0.0])
    # cosines with (1,0): 1, 0, 1/sqrt2, -1 ; scale of a row must not matter
    images = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-5.0, 0.0]])
    assert metrics.text_alignment(text, images) == pytest.approx((1 + 0 + 1 / math.sqrt(2) - 1) / 4, abs=1e-12)
    assert metrics.text_alignment(text.reshape(1, 2) * 7, images) == pytest.approx(0.1767766952966369, abs=1e-12)


def test_temporal_consistency_uses_consecutive_pairs_only():
    # pairs (0,1): cos 0 ; (1,2): cos 1/sqrt2 ; the non-consecutive pair (0,2) (cos 1/sqrt2) is not counted
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert metrics.temporal_consistency(e) == pytest.approx((0 + 1 / math.sqrt(2)) / 2, abs=1e-12)
    still = torch.tensor([[0.2, 0.4, 0.1]] * 5)
    assert metrics.temporal_consistency(still) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(InputError, match="at least 2 frames"):
        metrics.temporal_consistency(torch.ones(1, 3))


def test_pairwise_fidelity_pairs_by_index():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0]])  # cos 1 and cos 0
    assert metrics.pairwise_fidelity(a, b) == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(InputError, match="differ in shape"):
        metrics.pairwise_fidelity(a, b[:1])


# -- with a tiny random CLIP -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return metrics.save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def scorer(tiny_clip):
    return metrics.load_clip(tiny_clip, device="cpu")


def test_clip_scores_match_the_definitions(scorer):
    frames = synthetic_frames(5, 48, 40, seed=2)
    result = metrics.clip_scores(frames, "a red square", scorer)
    # recompute independently: embeddings via the model's own get_*_features paths
    model, proc, tok = scorer.model, scorer.processor, scorer.tokenizer
    with torch.no_grad():
        img = model.visual_projection(model.vision_model(**proc(images=frames, return_tensors="pt")).pooler_output)
        ids = tok(["a red square"], return_tensors="pt")
        txt = model.text_projection(model.text_model(**ids).pooler_output)[0]
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm()
    assert result["clip_text"] == pytest.approx(float((img @ txt).mean()), abs=1e-5)
    assert result["clip_image"] == pytest.approx(float((img[:-1] * img[1:]).sum(-1).mean()), abs=1e-5)
    assert result["clip_model"] == scorer.name and result["frames"] == 5
    # batching must not change the embeddings
    scorer.batch_size = 2
    try:
        again = metrics.clip_scores(frames, "a red square", scorer)
        assert again["clip_text"] == pytest.approx(result["clip_text"], abs=1e-5)
    finally:
        scorer.batch_size = 16


def test_fidelity_is_one_against_itself_and_lower_against_other_frames(scorer):
    frames = synthetic_frames(4, 64, 64, seed=1)
    other = synthetic_frames(4, 64, 64, seed=5)
    same = metrics.clip_scores(frames, "x", scorer, source=frames)
    assert same["source_fidelity"] == pytest.approx(1.0, abs=1e-6)
    diff = metrics.clip_scores(frames, "x", scorer, source=other)
    assert diff["source_fidelity"] < same["source_fidelity"] - 1e-6


def test_eval_cli_text_and_json(tiny_clip, tmp_path):
    frames = synthetic_frames(6, 64, 64, seed=3)
    video.write_frames_dir(frames, tmp_path / "edited")
    video.write_frames_dir(synthetic_frames(8, 64, 64, seed=4), tmp_path / "source")
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "edited"), "--prompt", "a red square", "--clip-model",
                                 str(tiny_clip), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert f"CLIP model: {tiny_clip}" in r.output and "CLIP-Text" in r.output and "CLIP-Image" in r.output
    assert "Source fidelity" not in r.output
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "edited"), "--source", str(tmp_path / "source"), "--prompt",
                                 "a red square", "--clip-model", str(tiny_clip), "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["clip_model"] == str(tiny_clip) and data["frames"] == 6
    expected = metrics.clip_scores(frames, "a red square", tiny_clip, "cpu",
                                   source=synthetic_frames(8, 64, 64, seed=4)[:6])
    for key in ("clip_text", "clip_image", "source_fidelity"):
        assert data[key] == pytest.approx(expected[key], abs=1e-6)


def test_eval_offline_names_the_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    video.write_frames_dir(synthetic_frames(2, 32, 32), tmp_path / "edited")
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "edited"), "--prompt", "x", "--device", "cpu"])
    assert r.exit_code == 2
    assert "openai/clip-vit-large-patch14" in r.output and "HF_HUB_OFFLINE" in r.output
    assert "Traceback" not in r.output
    with pytest.raises(ModelNotFoundError, match="openai/clip-vit-large-patch14"):
        metrics.load_clip(metrics.DEFAULT_CLIP, device="cpu")


def test_eval_single_frame_is_one_line_error(tiny_clip, tmp_path):
    video.write_frames_dir(synthetic_frames(1, 32, 32), tmp_path / "edited")
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "edited"), "--prompt", "x", "--clip-model", str(tiny_clip),
                                 "--device", "cpu"])
    assert r.exit_code == 2 and "at least 2 frames" in r.output


def test_batch_and_eval_registered_once():
    assert sum(c.name == "batch" for c in app.registered_commands) == 1
    assert sum(c.name == "eval" for c in app.registered_commands) == 1
