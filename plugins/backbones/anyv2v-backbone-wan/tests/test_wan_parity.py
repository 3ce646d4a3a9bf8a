"""Parity with diffusers' WanImageToVideoPipeline: with injection off and the start latent
set to the pipeline's seeded noise (t_idx 0), anyv2v's Wan sampling gives the pipeline's
latents, for the Wan2.1-I2V and the Wan2.2-TI2V layouts."""

import pytest
import torch

from anyv2v_core import sampling
from anyv2v_core.inversion import InversionResult
from anyv2v_core.protocols import EditOptions
from anyv2v_backbone_wan.tiny import tiny_clip

CLIP = tiny_clip()


FIXTURES = {"wan2.1-i2v": "tiny_wan21", "wan2.2-ti2v": "tiny_wan22", "wan2.2-i2v-a14b": "tiny_wan22_a14b"}


@pytest.mark.parametrize("family", list(FIXTURES))
def test_sampling_equals_pipeline(family, request, edited):
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline

    from anyv2v_backbone_wan.backbone import WanBackbone

    root = request.getfixturevalue(FIXTURES[family])
    bb = WanBackbone(str(root), device="cpu", dtype=torch.float32)
    assert bb.family == family
    experts_used = []
    for name in ("transformer", "transformer_2"):
        model = getattr(bb, name)
        if model is not None:
            model.register_forward_pre_hook(lambda m, a, n=name: experts_used.append(n))
    pipe = WanImageToVideoPipeline.from_pretrained(root)
    assert isinstance(pipe.scheduler, FlowMatchEulerDiscreteScheduler)
    steps, cfg, seed, prompt, negative = 5, 4.0, 3, "a snowy street", "blurry, static"
    want = pipe(image=edited, prompt=prompt, negative_prompt=negative, height=CLIP.height, width=CLIP.width,
                num_frames=CLIP.n_frames, num_inference_steps=steps, guidance_scale=cfg,
                generator=torch.Generator("cpu").manual_seed(seed), output_type="latent").frames

    sched = bb.make_scheduler()
    sched.set_timesteps(steps)
    noise = torch.randn(want.shape, generator=torch.Generator("cpu").manual_seed(seed))  # the pipeline's draw
    inversion = InversionResult(latents={t: noise for t in sched.timesteps}, backbone="wan", model_id=bb.model_id,
                                clip=CLIP, steps=steps, prompt="", source_first_frame=None)
    options = EditOptions(steps=steps, t_idx=0, cfg=cfg, tau_conv=0, tau_sa=0, tau_ta=0,
                          negative_prompt=negative).resolve(bb.defaults)
    got = sampling.pnp_sample(bb, inversion, edited, edited, prompt, CLIP, options)
    if family == "wan2.2-i2v-a14b":  # both experts ran: high noise first, then low noise
        assert experts_used[0] == "transformer" and experts_used[-1] == "transformer_2"
    delta = float((got - want).abs().max())
    print(f"{family}: max|delta| {delta:.2e} (latents up to {float(want.abs().max()):.2f})")
    assert got.shape == want.shape
    assert delta <= 1e-4 * float(want.abs().max())


def test_grid_and_steps_equal_diffusers_scheduler(wan21):
    """The stateless flow scheduler walks diffusers' stateful one step for step (bit-exact)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    ref = FlowMatchEulerDiscreteScheduler.from_config(wan21._scheduler_config)
    ref.set_timesteps(7)
    ours = wan21.make_scheduler()
    ours.set_timesteps(7)
    x = y = torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for i, key in enumerate(ours.timesteps):
        assert torch.equal(ours.model_timestep(key), ref.timesteps[i])
        v = torch.randn(x.shape, generator=torch.Generator().manual_seed(i + 1))
        x = ref.step(v, ref.timesteps[i], x).prev_sample
        y = ours.step(v, key, y).prev_sample
        assert torch.equal(x, y)
