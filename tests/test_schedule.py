"""SPEC §2 timestep arithmetic with the reference scheduler configuration."""

import pytest
from diffusers import DDIMInverseScheduler, DDIMScheduler

from anyv2v_core.injection import active_timesteps

CONFIG = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
              rescale_betas_zero_snr=True, steps_offset=1, timestep_spacing="leading", set_alpha_to_one=True,
              clip_sample=False)


def test_edit_schedule_t50():
    s = DDIMScheduler(**CONFIG)
    s.set_timesteps(50)
    ts = [int(t) for t in s.timesteps]
    assert ts[:3] == [981, 961, 941] and ts[-1] == 1 and len(ts) == 50
    assert ts[1] == 961  # t_idx = 1


def test_inverse_schedule_500_is_odd_grid():
    s = DDIMInverseScheduler(**CONFIG)
    s.set_timesteps(500)
    ts = [int(t) for t in s.timesteps]
    assert ts == list(range(1, 1000, 2))
    edit = DDIMScheduler(**CONFIG)
    edit.set_timesteps(50)
    assert {int(t) for t in edit.timesteps} <= set(ts)


@pytest.mark.parametrize("t_idx, conv, temporal, last_conv, last_temporal", [(1, 9, 24, 801, 501), (4, 6, 21, 801, 501)])
def test_thresholds(t_idx, conv, temporal, last_conv, last_temporal):
    s = DDIMScheduler(**CONFIG)
    s.set_timesteps(50)
    full = [int(t) for t in s.timesteps]
    visit = full[t_idx:]
    on_conv = [t for t in visit if t in active_timesteps(full, 0.2)]
    on_temp = [t for t in visit if t in active_timesteps(full, 0.5)]
    assert (len(on_conv), len(on_temp)) == (conv, temporal)
    assert on_conv[-1] == last_conv and on_temp[-1] == last_temporal
