"""The video metrics on hand-made cases whose right answer is known (identical frames, a
shifted frame, a flashing frame), then with tiny random DINOv2 / RAFT models saved to
folders (offline), and `anyv2v eval --metrics`."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from anyv2v_core import video
from anyv2v_core import video_metrics as vm
from anyv2v_core.cli import app
from anyv2v_core.errors import InputError, ModelNotFoundError
from anyv2v_core.testing.tiny import synthetic_frames



def solid(value, size=(32, 24)):
    return Image.new("RGB", size, (value, value, value))


def texture(seed=0, size=(64, 48)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def shifted(image, dx):
    """``image`` moved ``dx`` pixels to the right (the uncovered left columns wrap around)."""
    return Image.fromarray(np.roll(np.asarray(image), dx, axis=1))


# -- flicker (VBench) ----------------------------------------------------------------------------
def test_flicker_identical_flashing_and_known_step():
    assert vm.flicker_score([solid(90)] * 4) == 1.0
    assert vm.flicker_score([solid(0), solid(255), solid(0)]) == 0.0  # a full flash every frame
    # one step of 51 between the 2 pairs of (a, a, b): MAEs 0 and 51 -> mean 25.5
    assert vm.flicker_score([solid(10), solid(10), solid(61)]) == pytest.approx((255 - 25.5) / 255, abs=1e-12)
    with pytest.raises(InputError, match="at least 2 frames"):
        vm.flicker_score([solid(1)])


# -- subject consistency (VBench formula) ---------------------------------------------------------
def test_subject_consistency_known_values():
    assert vm.subject_consistency(torch.tensor([[0.3, 0.1, 2.0]] * 5)) == pytest.approx(1.0, abs=1e-12)
    # d1=(1,0), d2=(0,1), d3=(1,1): t=2: first 0, prev 0 ; t=3: first 1/sqrt2, prev 1/sqrt2
    d = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert vm.subject_consistency(d) == pytest.approx((0 + 1 / math.sqrt(2)) / 2, abs=1e-12)
    # negative cosines are clipped at 0 (a flashing, inverted frame counts as 0, not -1)
    flash = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    assert vm.subject_consistency(flash) == pytest.approx((0 + (1 + 0) / 2) / 2, abs=1e-12)


# -- first-frame fidelity -------------------------------------------------------------------------
def test_ssim_and_psnr_known_values():
    a = texture(1)
    assert vm.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert vm.psnr(a, a) == vm.PSNR_CAP
    # uniform images a, b: no variance, so SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1)
    x, y = 40 / 255, 200 / 255
    assert vm.ssim(solid(40), solid(200)) == pytest.approx((2 * x * y + 1e-4) / (x * x + y * y + 1e-4), abs=1e-9)
    # PSNR of a constant offset d: 10 log10(1 / d^2)
    assert vm.psnr(solid(40), solid(91)) == pytest.approx(10 * math.log10(1 / (51 / 255) ** 2), abs=1e-9)
    # a shifted texture is far less similar than itself
    assert vm.ssim(a, shifted(a, 3)) < 0.2


def test_first_frame_fidelity_resizes_the_edited_frame():
    frames = [solid(100, (32, 32)), solid(0, (32, 32))]
    result = vm.first_frame_fidelity(frames, solid(100, (64, 48)))
    assert result == {"first_frame_ssim": pytest.approx(1.0), "first_frame_psnr": vm.PSNR_CAP}


# -- warp error (Lai et al.) ----------------------------------------------------------------------
def test_warp_error_of_a_shifted_frame():
    a = texture(2)
    frames = vm._to_tensor([a, shifted(a, 2)])
    n, _, h, w = frames.shape
    forward = torch.zeros(1, 2, h, w, dtype=torch.float64)
    forward[:, 0] = 2.0  # every pixel moves 2 px to the right
    backward = -forward
    mask = vm.occlusion_mask(forward, backward)
    assert not mask[0, 0, :, -2:].any() and mask[0, 0, :, :-2].all()  # the last 2 columns leave the image
    assert vm.warp_error(frames, forward, mask) == pytest.approx(0.0, abs=1e-20)
    # the same pair without motion: the plain squared difference (sum over channels, mean over pixels)
    full = torch.ones(1, 1, h, w, dtype=torch.bool)
    expected = float(((frames[0] - frames[1]) ** 2).sum(0).mean())
    assert vm.warp_error(frames, torch.zeros_like(forward), full) == pytest.approx(expected, rel=1e-12)


def test_warp_error_of_a_flashing_frame():
    frames = vm._to_tensor([solid(0), solid(255), solid(0)])
    zero = torch.zeros(2, 2, 24, 32, dtype=torch.float64)
    mask = vm.occlusion_mask(zero, zero)
    assert mask.all()
    assert vm.warp_error(frames, zero, mask) == pytest.approx(3.0)  # 3 channels x 1^2, both pairs


def test_occlusion_check_rejects_inconsistent_flow():
    forward = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    forward[..., 4:, :] = 3.0  # the lower half moves, but the backward flow says nothing moved
    mask = vm.occlusion_mask(forward, torch.zeros_like(forward))
    assert mask[0, 0, :4].all() and not mask[0, 0, 4:].any()


# -- tiny models ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory):
    return vm.save_tiny_dino(tmp_path_factory.mktemp("tiny-dino"))


@pytest.fixture(scope="module")
def tiny_raft(tmp_path_factory):
    return vm.save_tiny_raft(tmp_path_factory.mktemp("tiny-raft") / "raft_small.safetensors")


def test_dino_subject_consistency_on_the_model(tiny_dino):
    scorer = vm.load_dino(tiny_dino, device="cpu")
    frames = synthetic_frames(4, 48, 40, seed=2)
    feats = scorer.features(frames)
    assert feats.shape == (4, 32)
    with torch.no_grad():  # independently: the model's CLS token after the final layer norm
        pixels = scorer.processor(images=frames, return_tensors="pt")["pixel_values"]
        cls = scorer.model(pixel_values=pixels).last_hidden_state[:, 0]
    assert torch.allclose(feats, cls, atol=1e-5)
    assert vm.subject_consistency(scorer.features([frames[0]] * 3)) == pytest.approx(1.0, abs=1e-6)


def test_raft_flows_and_warp_error_on_the_model(tiny_raft):
    flow = vm.load_raft(tiny_raft, device="cpu")
    src = synthetic_frames(3, 48, 40, seed=1)
    fw, bw = flow.flows(vm._to_tensor(src))
    assert fw.shape == bw.shape == (2, 2, 40, 48) and torch.isfinite(fw).all()
    # whatever the (random) flow, warping a constant clip changes nothing: error 0
    assert flow.warp_error([solid(77, (48, 40))] * 3, src) == pytest.approx(0.0, abs=1e-12)
    # a flashing edited clip has error 3 wherever the source motion keeps pixels visible
    flashing = [solid(0, (48, 40)), solid(255, (48, 40)), solid(0, (48, 40))]
    assert flow.warp_error(flashing, src) == pytest.approx(3.0)


def test_raft_offline_and_bad_files_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ModelNotFoundError, match="raft_large.*HF_HUB_OFFLINE"):
        vm.load_raft("raft_large", device="cpu")
    with pytest.raises(ModelNotFoundError, match="neither raft_large nor raft_small"):
        vm.load_raft(tmp_path / "nope.pth", device="cpu")
    bad = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(bad))
    with pytest.raises(ModelNotFoundError, match="fit none"):
        vm.load_raft(bad, device="cpu")


def test_dino_offline_names_the_repo_and_batch_checks_it_first(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match="facebook/dinov2-base.*HF_HUB_OFFLINE"):
        vm.load_dino(vm.DEFAULT_DINO, device="cpu")
    with pytest.raises(ModelNotFoundError, match="facebook/dinov2-base"):
        vm.MetricSpec(("flicker", "dino")).check()
    vm.MetricSpec(("flicker", "first-frame")).check()  # model-free metrics need nothing
    video.write_frames_dir(synthetic_frames(2, 32, 32), tmp_path / "edited")
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "edited"), "-p", "x", "--metrics", "dino,flicker"])
    assert r.exit_code == 2 and "facebook/dinov2-base" in r.output and "Traceback" not in r.output


def test_model_free_metrics_load_nothing(tmp_path):
    suite = vm.load_suite(vm.MetricSpec(("flicker", "first-frame")), device="cpu")
    assert suite.models == {} and suite.name == "no model"
    frames = [solid(10), solid(10), solid(61)]
    assert suite.scores(frames, "p", edited_frame=solid(10)) == {
        "frames": 3, "flicker": pytest.approx((255 - 25.5) / 255), "first_frame_ssim": pytest.approx(1.0),
        "first_frame_psnr": vm.PSNR_CAP}


def test_parse_metrics():
    assert vm.parse_metrics(None) == vm.DEFAULT_METRICS
    assert vm.parse_metrics("warp, clip,first_frame") == ("clip", "warp", "first-frame")
    assert vm.parse_metrics("all") == tuple(vm.METRICS)
    with pytest.raises(InputError, match="unknown metric.*lpips"):
        vm.parse_metrics("clip,lpips")


# -- anyv2v eval --metrics -----------------------------------------------------------------------------
def test_eval_cli_all_metrics(tmp_path, tiny_dino, tiny_raft):
    from anyv2v_core.metrics import save_tiny_clip

    clip = save_tiny_clip(tmp_path / "clip")
    frames = synthetic_frames(4, 48, 40, seed=3)
    video.write_frames_dir(frames, tmp_path / "edited")
    video.write_frames_dir(synthetic_frames(5, 48, 40, seed=4), tmp_path / "source")
    frames[0].save(tmp_path / "first.png")
    args = ["eval", str(tmp_path / "edited"), "-p", "a square", "--source", str(tmp_path / "source"),
            "--edited-frame", str(tmp_path / "first.png"), "--metrics", "all", "--clip-model", str(clip),
            "--dino-model", str(tiny_dino), "--flow-model", str(tiny_raft), "--device", "cpu"]
    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["clip_model"], data["dino_model"], data["flow_model"]) == (str(clip), str(tiny_dino), str(tiny_raft))
    assert data["first_frame_ssim"] == pytest.approx(1.0) and data["first_frame_psnr"] == vm.PSNR_CAP
    assert data["flicker"] == pytest.approx(vm.flicker_score(frames))
    assert 0 <= data["dino_subject"] <= 1 and data["warp_error"] >= 0
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    for text in ("DINO model:", "Flow model:", "Subject consistency (VBench", "Warp error", "First-frame SSIM"):
        assert text in r.output
    r = CliRunner().invoke(app, [*args[:4], "--metrics", "clip,psnr"])
    assert r.exit_code == 2 and "unknown metric(s) psnr" in r.output
    r = CliRunner().invoke(app, [*args[:4], "--metrics", "warp", "--flow-model", str(tiny_raft)])
    assert r.exit_code == 2 and "give the source clip (--source)" in r.output


def test_ray_worker_loads_the_metric_suite(tmp_path, tiny_dino):
    """A Ray worker's body (a plain class; Ray wraps it at run time) loads the suite of the
    spec it is given once, and a spec it cannot load becomes the items' metrics_error."""
    from anyv2v_core.batch_ray import _Worker

    worker = _Worker(0, "cpu", "float32", False, False, vm.MetricSpec(("dino", "flicker"), dino_model=str(tiny_dino)),
                     None)
    worker._load_clip()
    suite = worker.runner.scorer
    assert isinstance(suite, vm.MetricSuite) and suite.models == {"dino": str(tiny_dino)}
    worker._load_clip()
    assert worker.runner.scorer is suite and worker.clip_error is None
    broken = _Worker(0, "cpu", "float32", False, False, vm.MetricSpec(("dino",), dino_model=str(tmp_path / "no")), None)
    broken._load_clip()
    assert broken.runner.scorer is None and broken.clip_error.startswith("loading the metric models: ")
