"""The editor on the tiny random InstructPix2Pix, through the real loading path."""

import shutil

import numpy as np
import pytest
import torch

from anyv2v_core.errors import InputError, ModelNotFoundError
from anyv2v_core.protocols import EditRequest
from anyv2v_core.testing.tiny import synthetic_frames
from anyv2v_editor_instructpix2pix.editor import InstructPix2PixEditor, load_pipeline, working_size


def request(**options):
    return EditRequest(seed=5, options={"instruction": "make it blue", "editor_steps": 3, **options})


def test_loads_scheduler_as_shipped_without_safety_checker(ip2p_editor, tiny_ip2p):
    from diffusers import EulerAncestralDiscreteScheduler

    pipe = ip2p_editor.pipeline()
    assert isinstance(pipe.scheduler, EulerAncestralDiscreteScheduler)
    assert pipe.safety_checker is None and pipe.feature_extractor is None
    assert not (tiny_ip2p / "safety_checker").exists()  # named in model_index.json, never needed
    assert pipe.unet.config.in_channels == 8


def test_same_as_the_diffusers_pipeline_called_directly(ip2p_editor):
    """The editor is the pipeline with the recommended settings and a CPU generator
    seeded from request.seed; at a size already a multiple of 8 nothing else happens."""
    frame = synthetic_frames(1, 64, 48, seed=2)[0]
    got = ip2p_editor.edit(frame, request(editor_steps=4, guidance_scale=5.0, image_guidance_scale=1.2))
    ref = ip2p_editor.pipeline()(
        prompt="make it blue", image=frame, num_inference_steps=4, guidance_scale=5.0, image_guidance_scale=1.2,
        generator=torch.Generator().manual_seed(5),
    ).images[0]
    assert got.tobytes() == ref.tobytes()


def test_defaults_are_the_recommended_ones():
    from anyv2v_editor_instructpix2pix.options import OPTIONS

    defaults = {o.key: o.default for o in OPTIONS}
    assert defaults == {"instruction": None, "editor_steps": 100, "guidance_scale": 7.5, "image_guidance_scale": 1.5,
                        "editor_model": "timbrooks/instruct-pix2pix"}


def test_works_at_a_multiple_of_8_and_returns_source_size(ip2p_editor):
    seen = []
    handle = ip2p_editor.pipeline().vae.encoder.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape)))
    try:
        out = ip2p_editor.edit(synthetic_frames(1, 70, 45, seed=1)[0], request())
    finally:
        handle.remove()
    assert seen and seen[0][-2:] == (48, 72)  # H, W rounded to multiples of 8
    assert out.size == (70, 45) and out.mode == "RGB"
    assert working_size((4, 3)) == (8, 8) and working_size((515, 289)) == (512, 288)


def test_guidance_and_seed_matter(ip2p_editor):
    frame = synthetic_frames(1, 32, 32, seed=1)[0]
    base = np.asarray(ip2p_editor.edit(frame, request()), dtype=int)
    other_seed = ip2p_editor.edit(frame, EditRequest(seed=6, options={"instruction": "make it blue", "editor_steps": 3}))
    other_text = ip2p_editor.edit(frame, request(instruction="make it red"))
    assert np.abs(base - np.asarray(other_seed, dtype=int)).max() > 0
    assert np.abs(base - np.asarray(other_text, dtype=int)).max() > 0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"instruction": None}, "needs --instruction"),
        ({"instruction": "  "}, "--instruction must not be empty"),
        ({"editor_steps": 0}, "--editor-steps must be at least 1"),
        ({"guidance_scale": "high"}, "--guidance-scale expects float"),
    ],
)
def test_bad_options(ip2p_editor, options, message):
    opts = {"instruction": "x", "editor_steps": 3, **options}
    opts = {k: v for k, v in opts.items() if v is not None}
    with pytest.raises(InputError, match=message):
        ip2p_editor.edit(synthetic_frames(1, 32, 32)[0], EditRequest(options=opts))


def test_hub_id_offline_names_the_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match="'timbrooks/instruct-pix2pix' are not available.*HF_HUB_OFFLINE"):
        InstructPix2PixEditor().edit(synthetic_frames(1, 32, 32)[0], EditRequest(options={"instruction": "x"}))


def test_pickle_only_folder_is_refused(tiny_ip2p, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(tiny_ip2p, broken)
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(ModelNotFoundError, match="unet/\\*.safetensors"):
        load_pipeline(str(broken), torch.device("cpu"), torch.float32)


def test_guidance_is_the_original_instructpix2pix_formula(ip2p_editor):
    """An independent loop written from the original `edit_cli.py`: image condition = the
    VAE posterior *mode* of the frame in [-1, 1], unscaled; branches (text, image),
    (no text, image), (no text, zero image); eps = u + s_T (c - i) + s_I (i - u); the
    weights' Euler-ancestral scheduler. The editor's output must match it."""
    from diffusers import EulerAncestralDiscreteScheduler

    pipe = ip2p_editor.pipeline()
    frame = synthetic_frames(1, 64, 48, seed=2)[0]
    text_scale, image_scale, steps = 6.0, 1.3, 4
    got = np.asarray(ip2p_editor.edit(frame, EditRequest(seed=11, options={
        "instruction": "make it blue", "editor_steps": steps, "guidance_scale": text_scale,
        "image_guidance_scale": image_scale})), dtype=int)

    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        pixels = torch.from_numpy(np.asarray(frame, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        image_latent = pipe.vae.encode(pixels).latent_dist.mode()
        tokens = pipe.tokenizer(["make it blue", ""], padding="max_length", truncation=True,
                                max_length=pipe.tokenizer.model_max_length, return_tensors="pt")
        emb = pipe.text_encoder(tokens.input_ids)[0]
        text = torch.cat([emb[:1], emb[1:], emb[1:]])
        concat = torch.cat([image_latent, image_latent, torch.zeros_like(image_latent)])
        sched = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
        sched.set_timesteps(steps)
        z = torch.randn((1, 4, 6, 8), generator=generator) * sched.init_noise_sigma
        for t in sched.timesteps:
            x = torch.cat([sched.scale_model_input(torch.cat([z] * 3), t), concat], dim=1)
            c, i, u = pipe.unet(x, t, encoder_hidden_states=text).sample.chunk(3)
            z = sched.step(u + text_scale * (c - i) + image_scale * (i - u), t, z, generator=generator).prev_sample
        decoded = pipe.vae.decode(z / pipe.vae.config.scaling_factor).sample
    ref = ((decoded[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(int)
    assert np.abs(got - ref).max() <= 1


def test_pickled_folder_converted_once_gives_the_same_edit(ip2p_editor, tiny_ip2p, tmp_path):
    """A MagicBrush-style folder with .bin weights is refused with a hint; after
    `anyv2v ip2p-convert-weights` it loads and edits exactly like the original."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_ip2p, pickled)
    for component in ("unet", "vae", "text_encoder"):
        (st,) = (pickled / component).glob("*.safetensors")
        name = "pytorch_model.bin" if component == "text_encoder" else "diffusion_pytorch_model.bin"
        torch.save(load_file(str(st)), pickled / component / name)
        st.unlink()
    with pytest.raises(ModelNotFoundError, match="ip2p-convert-weights"):
        load_pipeline(str(pickled), torch.device("cpu"), torch.float32)

    converted = tmp_path / "converted"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "anyv2v_core.cli", "ip2p-convert-weights", str(pickled), "--out",
                           str(converted)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not list(converted.rglob("*.bin"))
    frame = synthetic_frames(1, 32, 32, seed=1)[0]
    a = ip2p_editor.edit(frame, request())
    b = InstructPix2PixEditor(model=str(converted)).edit(frame, request())
    assert a.tobytes() == b.tobytes()
