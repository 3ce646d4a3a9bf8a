"""The injection controller on a small hand-built model (no diffusers)."""

import pytest
import torch
from torch import nn

from anyv2v_core.errors import InjectionError
from anyv2v_core.injection import BranchLayout, InjectionController, active_timesteps, match_sites
from anyv2v_core.protocols import InjectionSite


class Attn(nn.Module):
    def __init__(self, dim=4):
        super().__init__()
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        return torch.softmax(q @ k.transpose(-1, -2), -1) @ v


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 1)
        self.attn = Attn()

    def forward(self, x):  # x: (B, 2, N)
        h = self.conv(x).transpose(1, 2)  # (B, N, 4)
        return self.attn(h)


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList([Block(), Block()])

    def forward(self, x):
        return sum(b(x) for b in self.blocks)


FULL = list(range(981, 0, -20))  # the T=50 leading schedule 981, 961, ..., 1


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 2, 5, generator=g)


def test_active_timesteps_counts_on_full_schedule():
    assert len(FULL) == 50 and FULL[1] == 961 and FULL[-1] == 1
    visited = set(FULL[1:])
    assert len(visited & active_timesteps(FULL, 0.2)) == 9
    assert len(visited & active_timesteps(FULL, 0.5)) == 24
    visited = set(FULL[4:])
    assert len(visited & active_timesteps(FULL, 0.2)) == 6
    assert len(visited & active_timesteps(FULL, 0.5)) == 21
    assert active_timesteps(FULL, 0.0) == frozenset()
    assert min(active_timesteps(FULL, 0.2)) == 801 and min(active_timesteps(FULL, 0.5)) == 501


def test_pattern_matching_and_no_match_error():
    model = Toy()
    matches = match_sites(model, [InjectionSite("blocks.*.attn", "attn-qk", 0.5)])
    assert [n for _, n in matches] == ["blocks.0.attn", "blocks.1.attn"]
    with pytest.raises(InjectionError, match="'blocks.7.attn' .* matches no module"):
        InjectionController(model, [InjectionSite("blocks.7.attn", "attn-qk", 0.5)], FULL)


def test_conv_output_replaced_only_when_active():
    model = Toy()
    sites = [InjectionSite("blocks.0.conv", "conv-output", 0.2)]
    x = batch()
    with InjectionController(model, sites, FULL) as ctl:
        ctl.set_timestep(501)  # beyond 0.2 of the schedule: inactive
        inactive = model(x)
        ctl.set_timestep(961)
        active = model(x)
    assert ctl.calls == 1
    reference = model(x)
    assert torch.equal(inactive, reference)
    assert not torch.equal(active, reference)
    # the source chunk is untouched; with block 0's conv output copied, only block 1 differs per branch
    assert torch.equal(active[0], reference[0])


def test_attn_qk_replaces_queries_and_keys_not_values():
    model = Toy()
    x = batch()
    captured = {}
    attn = model.blocks[1].attn
    sites = [InjectionSite("blocks.1.attn", "attn-qk", 1.0)]
    with InjectionController(model, sites, FULL) as ctl:
        hooks = [getattr(attn, n).register_forward_hook(lambda m, a, o, n=n: captured.__setitem__(n, o))
                 for n in ("to_q", "to_k", "to_v")]
        ctl.set_timestep(981)
        model(x)
        for h in hooks:
            h.remove()
    q, k, v = (captured[n].chunk(3) for n in ("to_q", "to_k", "to_v"))
    assert torch.equal(q[1], q[0]) and torch.equal(q[2], q[0])
    assert torch.equal(k[1], k[0]) and torch.equal(k[2], k[0])
    assert not torch.equal(v[1], v[0])
    assert ctl.calls == 2


def test_two_branch_layout_and_bad_batch():
    model = Toy()
    sites = [InjectionSite("blocks.0.conv", "conv-output", 1.0)]
    with InjectionController(model, sites, FULL, BranchLayout(2, 0, (1,))) as ctl:
        ctl.set_timestep(981)
        out = model(batch()[:2])
        assert out.shape[0] == 2
        with pytest.raises(InjectionError, match="cannot split a batch of 1 into 2"):
            model(batch()[:1])


def snapshot(model):
    return (
        {n: (dict(m._forward_hooks), dict(m._forward_pre_hooks), m.__dict__.get("forward")) for n, m in model.named_modules()},
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def test_restores_model_exactly_also_on_error():
    model = Toy()
    hooks_before, params_before = snapshot(model)
    sites = [InjectionSite("blocks.*.conv", "conv-output", 1.0), InjectionSite("blocks.*.attn", "attn-qk", 1.0)]
    with pytest.raises(RuntimeError, match="half-way"):
        with InjectionController(model, sites, FULL) as ctl:
            ctl.set_timestep(981)
            model(batch())
            raise RuntimeError("half-way")
    hooks_after, params_after = snapshot(model)
    assert {n: (len(a), len(b), f) for n, (a, b, f) in hooks_before.items()} == \
           {n: (len(a), len(b), f) for n, (a, b, f) in hooks_after.items()}
    assert all(torch.equal(params_before[k], params_after[k]) for k in params_before)
    assert torch.equal(model(batch()), Toy()(batch()))


def test_bad_site_leaves_no_hooks():
    model = Toy()
    sites = [InjectionSite("blocks.0.conv", "conv-output", 1.0), InjectionSite("blocks.0.conv", "attn-qk", 1.0)]
    with pytest.raises(InjectionError, match="has no to_q, to_k"):
        with InjectionController(model, sites, FULL):
            pass
    assert all(not m._forward_hooks for m in model.modules())
