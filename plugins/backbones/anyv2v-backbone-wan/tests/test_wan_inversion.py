"""Flow inversion on the tiny models: invert a clip, sample it back conditioned on its own
first frame with no edit. Second-order solvers (inversion and sampling paired) reconstruct
far better than Euler at the same step count; injection does not make it worse."""

import pytest
import torch

from anyv2v_core import sampling
from anyv2v_core.errors import InputError, InversionMismatchError
from anyv2v_core.protocols import EditOptions, InversionOptions
from anyv2v_backbone_wan.tiny import tiny_clip

CLIP = tiny_clip()
STEPS = 8


def test_second_order_inversion_reconstructs_better(wan, frames):
    clean = wan.encode_video(frames)
    errors = {}
    for solver in ("euler", "midpoint", "fireflow"):
        inv = sampling.invert(wan, frames, CLIP, InversionOptions(steps=STEPS, solver=solver).resolve(wan.defaults))
        for tau in (0.0, 0.5):
            opts = EditOptions(steps=STEPS, t_idx=0, cfg=1.0, tau_conv=tau, tau_sa=tau, tau_ta=tau,
                               sampler=solver).resolve(wan.defaults)
            x = sampling.pnp_sample(wan, inv, frames[0], frames[0], inv.prompt, CLIP, opts)
            errors[(solver, tau)] = float(((x - clean) ** 2).mean().sqrt())
    print(wan.family, {f"{s} tau={t}": f"{e:.5f}" for (s, t), e in errors.items()})
    for solver in ("midpoint", "fireflow"):
        assert errors[(solver, 0)] < 0.5 * errors[("euler", 0)]
    for solver in ("euler", "midpoint", "fireflow"):  # injection on: at least as good (float noise aside)
        assert errors[(solver, 0.5)] <= errors[(solver, 0.0)] * 1.02 + 1e-5


def test_solver_calls_and_midpoint_latents(wan21, frames):
    calls = []
    handle = wan21.denoiser.register_forward_hook(lambda *a: calls.append(1))
    try:
        for solver, want in (("euler", STEPS), ("midpoint", 2 * STEPS), ("fireflow", STEPS + 1)):
            calls.clear()
            inv = sampling.invert(wan21, frames, CLIP, InversionOptions(steps=STEPS, solver=solver).resolve(wan21.defaults))
            assert len(calls) == want
            assert len(inv.latents) == (STEPS if solver == "euler" else 2 * STEPS)  # levels (+ midpoints)
            assert inv.encoding == f"mean;solver={solver}"  # part of the cache key
    finally:
        handle.remove()


def test_second_order_sampler_needs_second_order_inversion(wan21, frames, edited):
    inv = sampling.invert(wan21, frames, CLIP, InversionOptions(steps=STEPS).resolve(wan21.defaults))
    opts = EditOptions(steps=STEPS, sampler="fireflow").resolve(wan21.defaults)
    with pytest.raises(InversionMismatchError, match="second-order inversion"):
        sampling.pnp_sample(wan21, inv, frames[0], edited, "x", CLIP, opts)


def test_unknown_solvers_are_one_line_errors(wan21, frames):
    with pytest.raises(InputError, match="not 'ddim'"):
        sampling.invert(wan21, frames, CLIP, InversionOptions(steps=2, solver="ddim"))
    with pytest.raises(InputError, match="not 'rk4'"):
        wan21.make_scheduler("rk4")


def test_inversion_file_round_trip(wan22, frames, tmp_path):
    from anyv2v_core.inversion import InversionResult

    inv = sampling.invert(wan22, frames, CLIP, InversionOptions(steps=4, solver="fireflow").resolve(wan22.defaults))
    back = InversionResult.load(inv.save(tmp_path / "inv.safetensors"))
    assert back.latents.keys() == inv.latents.keys() and back.encoding == inv.encoding
    assert all(torch.equal(back.latents[k], inv.latents[k]) for k in inv.latents)


def test_bfloat16_model_keeps_float32_latents(tiny_wan22, frames):
    """A bfloat16 model's flow steps accumulate in float32 latents (the model sees bfloat16)."""
    from anyv2v_backbone_wan.backbone import WanBackbone

    bb = WanBackbone(str(tiny_wan22), device="cpu", dtype=torch.bfloat16)
    assert bb.transformer.dtype == torch.bfloat16
    inv = sampling.invert(bb, frames, CLIP, InversionOptions(steps=3, solver="fireflow").resolve(bb.defaults))
    assert {v.dtype for v in inv.latents.values()} == {torch.float32}
    opts = EditOptions(steps=3, t_idx=0, cfg=1.0, sampler="fireflow").resolve(bb.defaults)
    x = sampling.pnp_sample(bb, inv, frames[0], frames[0], "", CLIP, opts)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
