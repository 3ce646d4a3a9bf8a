"""The style transfer itself, on the tiny random VGG19 (and torchvision's real layout)."""

import numpy as np
import pytest
import torch

from anyv2v_core.errors import InputError, ModelNotFoundError
from anyv2v_core.protocols import EditRequest
from anyv2v_core.testing.tiny import synthetic_frames
from anyv2v_editor_nst import vgg
from anyv2v_editor_nst.editor import NSTEditor, gram, style_transfer, to_tensor


def test_features_equal_torchvision_vgg19():
    """Same module indices and outputs as torchvision's vgg19().features (max pooling),
    for a real-sized random state dict: the real weights load into the same layout."""
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tv = torchvision.models.vgg19().eval()
    ours = vgg.VGG19Features.from_state_dict(tv.state_dict(), pooling="max")
    x = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ours(x, vgg.CONTENT_LAYERS + vgg.STYLE_LAYERS)
        y = (x - torch.tensor(vgg.MEAN).view(1, 3, 1, 1)) / torch.tensor(vgg.STD).view(1, 3, 1, 1)
        ref = {}
        for i, layer in enumerate(tv.features[:30]):
            y = layer(y)
            for name, idx in vgg.LAYERS.items():
                if idx + 1 == i:
                    ref[name] = y.clone()
    for name in vgg.CONTENT_LAYERS + vgg.STYLE_LAYERS:
        assert torch.allclose(got[name], ref[name], atol=1e-5), name
    assert [vgg.LAYERS[n] for n in ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1")] == [0, 5, 10, 19, 21, 28]


def test_gram_is_normalised_outer_product():
    f = torch.arange(12.0).reshape(1, 3, 2, 2)
    flat = f.reshape(3, 4)
    assert torch.allclose(gram(f), flat @ flat.T / 12)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisation_lowers_the_loss_and_moves_towards_the_style(torch_home, style_image, optimizer):
    from PIL import Image

    net = vgg.load_vgg19_features()
    content = to_tensor(synthetic_frames(1, 48, 48, seed=2)[0])
    style = to_tensor(Image.open(style_image).convert("RGB").resize((48, 48)))

    def style_distance(img):
        with torch.no_grad():
            a, b = net(img, vgg.STYLE_LAYERS), net(style, vgg.STYLE_LAYERS)
            return sum(float(((gram(a[k]) - gram(b[k])) ** 2).mean()) for k in vgg.STYLE_LAYERS)

    out = style_transfer(net, content, style, content_weight=1.0, style_weight=1e4, iterations=25, optimizer=optimizer)
    assert out.shape == content.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert style_distance(out) < 0.5 * style_distance(content)
    # zero iterations: the content frame itself
    same = style_transfer(net, content, style, content_weight=1.0, style_weight=1e4, iterations=0)
    assert torch.equal(same, content)


def test_edit_returns_source_size_and_changes_it(style_image):
    frame = synthetic_frames(1, 70, 50, seed=4)[0]
    out = NSTEditor().edit(frame, EditRequest(options={"style_image": style_image, "iterations": 10, "editor_size": 40}))
    assert out.size == (70, 50) and out.mode == "RGB"
    diff = np.abs(np.asarray(out, dtype=int) - np.asarray(frame, dtype=int)).mean()
    assert diff > 2


def test_noise_init_depends_on_seed(style_image):
    frame = synthetic_frames(1, 32, 32, seed=4)[0]
    opts = {"style_image": style_image, "iterations": 2, "editor_size": 32, "init": "noise"}
    editor = NSTEditor()
    a = editor.edit(frame, EditRequest(seed=1, options=dict(opts)))
    b = editor.edit(frame, EditRequest(seed=2, options=dict(opts)))
    assert a.tobytes() != b.tobytes()


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "needs --style-image"),
        ({"style_image": "/nonexistent/starry.jpg"}, "file not found"),
        ({"optimizer": "sgd"}, "--optimizer must be one of lbfgs, adam"),
        ({"pooling": "min"}, "--pooling must be one of avg, max, got 'min'"),
        ({"iterations": "many"}, "--iterations expects int"),
    ],
)
def test_bad_options_are_input_errors(style_image, options, message):
    opts = {"style_image": style_image, **options} if options else {}
    with pytest.raises(InputError, match=message):
        NSTEditor().edit(synthetic_frames(1, 32, 32)[0], EditRequest(options=opts))


def test_unreadable_style_image(tmp_path):
    bad = tmp_path / "style.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read image"):
        NSTEditor().edit(synthetic_frames(1, 32, 32)[0], EditRequest(options={"style_image": bad}))


def test_weights_lookup_order(torch_home, tmp_path, monkeypatch):
    default = torch_home / "hub" / "checkpoints" / vgg.WEIGHTS_FILE
    assert vgg.find_weights() == default
    other = tmp_path / "mine.pth"
    other.write_bytes(default.read_bytes())
    monkeypatch.setenv(vgg.ENV_VAR, str(other))
    assert vgg.find_weights() == other
    monkeypatch.setenv(vgg.ENV_VAR, str(tmp_path / "nope.pth"))
    with pytest.raises(ModelNotFoundError, match="nope.pth"):
        vgg.find_weights()


def test_missing_weights_offline_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-home"))
    with pytest.raises(ModelNotFoundError) as info:
        vgg.find_weights()
    message = str(info.value)
    assert "vgg19-dcbb9e9d.pth" in message and str(tmp_path / "empty-home" / "hub" / "checkpoints") in message
    assert "\n" not in message


def test_pickled_weights_are_loaded_weights_only(tmp_path):
    """A .pth holding anything but tensors is refused (weights_only=True), not executed."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as f:
        pickle.dump({"features.0.weight": Evil()}, f, protocol=2)
    with pytest.raises(ModelNotFoundError, match="cannot read VGG19 weights"):
        vgg.load_state_dict(bad)


def test_safetensors_conversion_is_preferred_and_equal(torch_home, tmp_path, monkeypatch):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(torch_home, home)
    monkeypatch.setenv("TORCH_HOME", str(home))
    pth = home / "hub" / "checkpoints" / vgg.WEIGHTS_FILE
    written = vgg.convert_to_safetensors()
    assert written == pth.with_suffix(".safetensors")
    assert vgg.find_weights() == written
    a, b = vgg.load_state_dict(pth), vgg.load_state_dict(written)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
