"""The core's flow-matching pieces (anyv2v_core.flow) on analytic ODEs and against diffusers."""

import pytest
import torch

from anyv2v_core.errors import InputError
from anyv2v_core.flow import SOLVERS, FlowMatchScheduler, invert_ode, sigma_key

CONFIG = {"num_train_timesteps": 1000, "shift": 3.0}


def linear_velocity(x, sigma):
    """dx/dσ = A·x + σ: smooth, x-dependent, with a σ-dependent forcing."""
    return -0.8 * x + sigma


def test_grid_matches_diffusers_and_keys_round_trip():
    from diffusers import FlowMatchEulerDiscreteScheduler

    ref = FlowMatchEulerDiscreteScheduler(**CONFIG)
    ref.set_timesteps(12)
    ours = FlowMatchScheduler(CONFIG)
    ours.set_timesteps(12)
    assert torch.equal(ours.sigmas, ref.sigmas)
    assert ours.timesteps == [sigma_key(s) for s in ref.sigmas[:-1]]
    assert ours.timesteps[0] == 1_000_000 and ours.timesteps == sorted(ours.timesteps, reverse=True)
    assert all(torch.equal(ours.model_timestep(k), t) for k, t in zip(ours.timesteps, ref.timesteps))
    inverse = FlowMatchScheduler(CONFIG, inverse=True)
    inverse.set_timesteps(12)
    assert inverse.timesteps == ours.timesteps[::-1]


def test_unipc_flow_shift_is_the_shift():
    a = FlowMatchScheduler({"flow_shift": 5.0, "use_flow_sigmas": True, "_class_name": "UniPCMultistepScheduler"})
    b = FlowMatchScheduler({"shift": 5.0})
    a.set_timesteps(6)
    b.set_timesteps(6)
    assert torch.equal(a.sigmas, b.sigmas)


def test_step_is_stateless_and_exact():
    sched = FlowMatchScheduler(CONFIG)
    sched.set_timesteps(4)
    x, v = torch.ones(2, 3), torch.full((2, 3), 0.5)
    t = sched.timesteps[2]
    first = sched.step(v, t, x).prev_sample
    assert torch.equal(first, sched.step(v, t, x).prev_sample)  # same call, same result: no state
    assert torch.equal(first, x + (sched.sigmas[3] - sched.sigmas[2]) * v)


def exact_solution(x0, sigma):
    """x(σ) for dx/dσ = -0.8x + σ with x(0) = x0."""
    a = -0.8
    return (x0 + 1 / a**2) * torch.exp(torch.tensor(a * sigma)) - sigma / a - 1 / a**2


@pytest.mark.parametrize("steps", [6, 20])
def test_second_order_solvers_beat_euler(steps):
    sched = FlowMatchScheduler(CONFIG, inverse=True)
    sched.set_timesteps(steps)
    x0 = torch.linspace(-1, 1, 5, dtype=torch.float64)
    truth = exact_solution(x0, 1.0)
    errors = {s: float((invert_ode(linear_velocity, x0, sched, s) - truth).abs().max()) for s in SOLVERS}
    print(steps, errors)
    assert errors["midpoint"] < errors["euler"] / 5
    assert errors["fireflow"] < errors["euler"] / 3


def test_invert_ode_reports_levels_and_midpoints():
    sched = FlowMatchScheduler(CONFIG, inverse=True)
    sched.set_timesteps(5)
    seen, steps = [], []
    invert_ode(linear_velocity, torch.zeros(3), sched, "fireflow", on_level=lambda k, x, lvl: seen.append((k, lvl)),
               on_step=lambda done, total: steps.append((done, total)))
    levels = [k for k, lvl in seen if k == lvl]
    assert levels == sched.timesteps and steps[-1] == (5, 5)
    mids = [k for k, lvl in seen if k != lvl]
    assert len(mids) == 5 and all(k < lvl for k, lvl in seen if k != lvl)


def test_solver_errors():
    with pytest.raises(InputError, match="unknown flow"):
        FlowMatchScheduler(CONFIG, solver="rk45")
    sched = FlowMatchScheduler(CONFIG)
    sched.set_timesteps(3)
    with pytest.raises(InputError, match="not on the grid"):
        sched.sigma(123)


def test_invert_ode_stops_after_steps():
    sched = FlowMatchScheduler(CONFIG, inverse=True)
    sched.set_timesteps(6)
    seen = []
    invert_ode(linear_velocity, torch.zeros(3), sched, "euler", on_level=lambda k, x, lvl: seen.append(k), steps=4)
    assert seen == sched.timesteps[:4]
