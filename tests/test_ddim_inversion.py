"""Few-step inversion solvers of DDIM-family backbones (anyv2v_core.ddim_inversion)."""

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler

from anyv2v_core import ddim_inversion as di
from anyv2v_core.errors import InputError

REFERENCE = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", rescale_betas_zero_snr=True,
                 steps_offset=1, timestep_spacing="leading", set_alpha_to_one=True, clip_sample=False)


def _inverse(steps, prediction_type="v_prediction"):
    sched = DDIMInverseScheduler(**REFERENCE, prediction_type=prediction_type)
    sched.set_timesteps(steps)
    return sched


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_the_ddim_step_is_diffusers_inverse_step(prediction_type):
    """to_epsilon + ddim_move reproduce the reference's inverse step for every prediction type."""
    sched = _inverse(50, prediction_type)
    g = torch.Generator().manual_seed(0)
    x, out = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    levels = di._Levels(sched)
    # (an x0-prediction carries no ε at the clean level: the first step is not comparable)
    for t in (21, 481, 961) if prediction_type == "sample" else (1, 21, 481, 961):
        lower = t - levels.stride
        a_from, a_to = levels.alpha(lower if lower >= 0 else None), levels.alpha(t)
        ours = di.ddim_move(x, di.to_epsilon(out, x, a_from, prediction_type), a_from, a_to)
        theirs = sched.step(out, torch.tensor(t), x).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def _linear_field(sched, rate=0.8):
    """ε(x, t) = rate·x/√ā_t: in x̄ = x/√ā the ODE dx̄/ds = rate·x̄, solved by x̄₀·exp(rate·s)."""
    alphas = sched.alphas_cumprod

    def predict(x, t):
        return rate * x / alphas[int(t)].sqrt()

    def exact(x0, t):
        s = ((1 - alphas[t]) / alphas[t]).sqrt()
        return alphas[t].sqrt() * x0 * torch.exp(rate * s)

    return predict, exact


def _solve(solver, steps, x0, predict, up_to=481):
    sched = _inverse(steps, "epsilon")
    levels = {}
    timesteps = [int(t) for t in sched.timesteps if int(t) <= up_to]
    if solver == "ddim":  # the reference's steps, through diffusers
        x = x0
        for t in timesteps:
            x = sched.step(predict(x, t), torch.tensor(t), x).prev_sample
            levels[t] = x
    else:
        di.invert_ddim(predict, x0, sched, timesteps, solver, on_level=levels.__setitem__)
    return levels, sched


def test_heun_is_second_order():
    x0 = torch.linspace(-1, 1, 8, dtype=torch.float64).reshape(1, 2, 2, 2)
    errors = {}
    for solver, steps in [("heun", 50), ("heun", 100), ("ddim", 50), ("ddim", 500)]:
        levels, sched = _solve(solver, steps, x0, _linear_field(_inverse(steps, "epsilon"))[0])
        exact = _linear_field(sched)[1](x0, 481)
        errors[solver, steps] = float((levels[481] - exact).abs().max() / exact.abs().max())
    assert 3.0 < errors["heun", 50] / errors["heun", 100] < 5.0  # halving the step quarters the error
    # 50 Heun steps (100 calls) are about as close to the ODE as the reference's 500 DDIM steps
    assert errors["heun", 100] < errors["ddim", 500] < errors["ddim", 50] / 5
    assert errors["heun", 50] < errors["ddim", 50] / 5


def test_renoise_latents_are_what_a_ddim_sampler_maps_back():
    """The implicit step's fixed point: one DDIM sampling step from ``z_t`` lands on ``z_{t-20}``."""
    predict, _ = _linear_field(_inverse(50, "epsilon"), rate=0.3)
    x0 = torch.linspace(-1, 1, 8, dtype=torch.float64).reshape(1, 2, 2, 2)
    levels, _ = _solve("renoise", 50, x0, predict, up_to=101)
    sampler = DDIMScheduler(**REFERENCE, prediction_type="epsilon")
    sampler.set_timesteps(50)
    gap_ddim = gap_renoise = 0.0
    ddim_levels, _ = _solve("ddim", 50, x0, predict, up_to=101)
    for t in (101, 81, 61, 41):
        back = sampler.step(predict(levels[t], t), torch.tensor(t), levels[t]).prev_sample
        gap_renoise = max(gap_renoise, float((back - levels[t - 20]).abs().max()))
        back = sampler.step(predict(ddim_levels[t], t), torch.tensor(t), ddim_levels[t]).prev_sample
        gap_ddim = max(gap_ddim, float((back - ddim_levels[t - 20]).abs().max()))
    assert gap_renoise < gap_ddim / 20


def test_unknown_solver_is_one_line_error():
    with pytest.raises(InputError, match="unknown DDIM inversion solver 'midpoint'; choose one of ddim, heun, renoise"):
        di.invert_ddim(lambda x, t: x, torch.zeros(1), _inverse(50), [1], "midpoint", on_level=lambda t, x: None)


def test_solver_calls():
    assert [di.SOLVER_CALLS[s](49) for s in di.SOLVERS] == [49, 98, 49 * (1 + di.RENOISE_ITERATIONS)]


@pytest.fixture(scope="module")
def toy(toy_model):
    from anyv2v_core import api

    return api.load_backbone("toy", str(toy_model), "cpu", "float32")


def test_renoise_on_a_backbone_reconstructs_better_than_ddim(toy):
    """Through the real inversion and sampling code: invert with each solver on the edit's
    own 10-step grid, sample back with the unedited first frame (CFG 1, injection on); the
    few-step solvers land closer to the source latents than DDIM with as many steps."""
    from anyv2v_core import sampling
    from anyv2v_core.protocols import ClipSpec, EditOptions, InversionOptions
    from anyv2v_core.testing.tiny import synthetic_frames

    clip = ClipSpec(4, 32, 32, 8)
    frames = synthetic_frames(4, 32, 32, seed=1)
    clean = toy.encode_video(frames)
    opts = EditOptions(steps=10, cfg=1.0).resolve(toy.defaults)
    visit = sampling.edit_timesteps(toy, 10, opts.t_idx)
    error, calls = {}, {}
    for solver in di.SOLVERS:
        count = []
        predict = toy.predict
        toy.predict = lambda x, t, c: count.append(x.shape[0]) or predict(x, t, c)
        try:
            inv = sampling.invert(toy, frames, clip, InversionOptions(steps=10, solver=solver).resolve(toy.defaults),
                                  keep=visit)
        finally:
            del toy.predict
        assert sorted(inv.latents, reverse=True) == visit
        assert inv.encoding == ("mean" if solver == "ddim" else f"mean;solver={solver}")  # in the cache key
        calls[solver] = len(count)
        x = sampling.pnp_sample(toy, inv, frames[0], frames[0], inv.prompt, clip, opts)
        error[solver] = float((x - clean).abs().mean())
    assert calls == {s: di.SOLVER_CALLS[s](len(visit)) for s in di.SOLVERS}
    assert error["renoise"] < error["ddim"] / 5, error


def test_a_flow_solver_on_a_ddim_backbone_is_refused(toy):
    from anyv2v_core import sampling
    from anyv2v_core.protocols import ClipSpec, InversionOptions
    from anyv2v_core.testing.tiny import synthetic_frames

    with pytest.raises(InputError, match="inverts with ddim or heun or renoise, not 'midpoint'"):
        sampling.invert(toy, synthetic_frames(2, 32, 32), ClipSpec(2, 32, 32, 8),
                        InversionOptions(steps=10, solver="midpoint").resolve(toy.defaults))


def test_fast_preset_inverts_with_renoise_on_the_edit_grid(toy_model, clip_files):
    """``preset="fast"`` through the library API (as ``anyv2v invert --preset fast``):
    the edit's grid, the fast solver, recorded in the result (and so in the cache key)."""
    from anyv2v_core import api

    common = dict(backbone="toy", model=str(toy_model), num_frames=4, size="32x32", steps=8, device="cpu")
    fast = api.invert(clip_files / "source.mp4", preset="fast", **common)
    assert fast.steps == 8 and fast.encoding == f"mean;solver={di.FAST_SOLVER}" and di.FAST_SOLVER == "renoise"
    plain = api.invert(clip_files / "source.mp4", preset="fast", inversion_solver="ddim", **common)
    assert plain.steps == 8 and plain.encoding == "mean"
    assert not fast.latent(fast.timesteps[0]).equal(plain.latent(plain.timesteps[0]))
