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


class _CountingBackbone:
    """The least a backbone needs for ``sampling.invert``: DDIM schedulers, zero latents and a
    denoiser that counts its calls."""

    name, model_id = "counting", "counting"

    def __init__(self):
        self.calls = []

    def make_inverse_scheduler(self):
        return DDIMInverseScheduler(**CONFIG)

    def encode_video(self, frames, generator=None):
        import torch

        return torch.ones(1, 4, len(frames), 2, 2)

    def condition(self, image, prompt, clip):
        return {}

    def predict(self, sample, t, cond):
        import torch

        self.calls.append(int(t))
        return torch.full_like(sample, 0.1)


def test_inversion_stops_at_the_highest_kept_timestep():
    from anyv2v_core.protocols import ClipSpec, InversionOptions
    from anyv2v_core.sampling import invert
    from anyv2v_core.testing.tiny import synthetic_frames

    frames, clip = synthetic_frames(2, 16, 16), ClipSpec(2, 16, 16, 8)
    full, cut = _CountingBackbone(), _CountingBackbone()
    everything = invert(full, frames, clip, InversionOptions(steps=500, prompt=""))
    visit = [961, 941, 21, 1]
    kept = invert(cut, frames, clip, InversionOptions(steps=500, prompt=""), keep=visit)
    assert len(full.calls) == 500 and cut.calls == full.calls[: full.calls.index(961) + 1]
    assert len(cut.calls) == 481  # the 19 steps above t=961 are not run
    for t in visit:  # and what is kept is what the whole inversion computes, bit for bit
        assert kept.latents[t].equal(everything.latents[t])
