"""The injection controller on a small hand-built model (no diffusers)."""

import pytest
import torch
from torch import nn

from anyv2v_core.errors import InjectionError
from anyv2v_core.injection import (
    ROLE_THRESHOLDS,
    BranchLayout,
    InjectionController,
    active_timesteps,
    match_sites,
    resolve_sites,
)
from anyv2v_core.protocols import BackboneDefaults, EditOptions, InjectionPattern, InjectionSite


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


class TupleBlock(nn.Module):
    """A block returning ``(hidden_states, extra)``, as many transformer blocks do."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, h):
        out = self.proj(h)
        return out, out.sum()


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


def test_tuple_output_replaces_element_zero_only():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("block", TupleBlock())
    h = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(2))
    sites = [InjectionSite("block", "block-output", 1.0)]
    with InjectionController(model, sites, FULL) as ctl:
        ctl.set_timestep(981)
        out, extra = model.block(h)
    a, b, c = out.chunk(3)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert torch.equal(extra, model.block.proj(h).sum())  # element 1 is the module's own
    assert ctl.calls == 1


@pytest.mark.parametrize("kind, replaced", [("attn-q", {"to_q"}), ("attn-k", {"to_k"}), ("attn-v", {"to_v"}),
                                            ("attn-qk", {"to_q", "to_k"})])
def test_each_projection_kind_replaces_only_its_projections(kind, replaced):
    model = Toy()
    attn = model.blocks[0].attn
    captured = {}
    with InjectionController(model, [InjectionSite("blocks.0.attn", kind, 1.0)], FULL) as ctl:
        hooks = [getattr(attn, n).register_forward_hook(lambda m, a, o, n=n: captured.__setitem__(n, o))
                 for n in ("to_q", "to_k", "to_v")]
        ctl.set_timestep(981)
        model(batch())
        for h in hooks:
            h.remove()
    for name, tensor in captured.items():
        src, a, b = tensor.chunk(3)
        equal = torch.equal(src, a) and torch.equal(src, b)
        assert equal == (name in replaced), name
    assert ctl.calls == len(replaced)


def test_block_output_on_a_whole_block():
    model = Toy()
    x = batch()
    with InjectionController(model, [InjectionSite("blocks.1", "block-output", 1.0)], FULL) as ctl:
        ctl.set_timestep(981)
        out = model(x)
    block1 = model.blocks[1](x)
    block0 = model.blocks[0](x)
    for k in (1, 2):
        assert torch.allclose(out[k], block0[k] + block1[0])


def test_token_range_replaces_only_those_tokens():
    model = Toy()
    attn = model.blocks[0].attn
    captured = {}
    sites = [InjectionSite("blocks.0.attn", "attn-k", 1.0, tokens=(2, None), token_dim=1)]
    with InjectionController(model, sites, FULL) as ctl:
        handle = attn.to_k.register_forward_hook(lambda m, a, o: captured.__setitem__("k", o))
        ctl.set_timestep(981)
        model(batch())
        handle.remove()
    reference = attn.to_k(model.blocks[0].conv(batch()).transpose(1, 2))  # unhooked keys (B, N=5, 4)
    src, a, b = captured["k"].chunk(3)
    for k, got in ((1, a), (2, b)):
        assert torch.equal(got[:, 2:], src[:, 2:])          # video tokens from the source
        assert torch.equal(got[:, :2], reference[k : k + 1, :2])  # text tokens the branch's own
        assert not torch.equal(got[:, :2], src[:, :2])
    assert torch.equal(src, reference[:1])


def test_token_range_on_another_dim_and_batch_dim():
    model = nn.Sequential()
    model.add_module("lin", nn.Linear(4, 4))
    x = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(3))  # (tokens, batch, dim)
    captured = {}
    sites = [InjectionSite("lin", "conv-output", 1.0, batch_dim=1, tokens=(None, 2), token_dim=0)]
    with InjectionController(model, sites, FULL) as ctl:
        handle = model.lin.register_forward_hook(lambda m, a, o: captured.__setitem__("o", o))
        ctl.set_timestep(981)
        model(x)
        handle.remove()
    ref = model.lin(x)
    got = captured["o"]
    assert torch.equal(got[:2, 1], ref[:2, 0]) and torch.equal(got[:2, 2], ref[:2, 0])
    assert torch.equal(got[2:], ref[2:])


def test_step_range_restricts_the_threshold():
    model = Toy()
    site = InjectionSite("blocks.0.conv", "conv-output", 0.5, steps=(2, 5))
    ctl = InjectionController(model, [site], FULL)
    active = [i for i, t in enumerate(FULL) if ctl.is_active(site, t)]
    assert active == [2, 3, 4]
    late = InjectionSite("blocks.0.conv", "conv-output", 0.1, steps=(3, 50))
    ctl = InjectionController(model, [late], FULL)
    assert [i for i, t in enumerate(FULL) if ctl.is_active(late, t)] == [3, 4]  # int(50 * 0.1) = 5
    assert not ctl.any_active_from(FULL[5:]) and ctl.any_active_from(FULL[4:])


def test_missing_projection_names_the_module():
    model = Toy()
    for kind, name in (("attn-v", "to_v"), ("attn-q", "to_q")):
        with pytest.raises(InjectionError, match=f"{kind} site 'blocks.0.conv' has no {name} projection"):
            with InjectionController(model, [InjectionSite("blocks.0.conv", kind, 1.0)], FULL):
                pass
    with pytest.raises(InjectionError, match="unknown injection kind 'attn-x'"):
        with InjectionController(model, [InjectionSite("blocks.0.attn", "attn-x", 1.0)], FULL):
            pass
    assert all(not m._forward_hooks for m in model.modules())


DEFAULTS = BackboneDefaults(n_frames=4, width=64, height=64, fps=8, inversion_steps=20, steps=10, cfg=4.0, t_idx=1,
                            tau_conv=0.2, tau_sa=0.3, tau_ta=0.5, tau_ca=0.0)
PATTERNS = (
    InjectionPattern("conv", "blocks.0.conv", "conv-output"),
    InjectionPattern("spatial", "blocks.*.attn", "attn-qk"),
    InjectionPattern("temporal", "blocks.1.attn", "attn-v", tokens=(1, None), token_dim=2, batch_dim=0),
    InjectionPattern("cross", "blocks.0.attn", "attn-k"),
)


def test_resolve_sites_maps_roles_to_thresholds():
    assert set(ROLE_THRESHOLDS) == {"conv", "spatial", "temporal", "cross"}
    sites = resolve_sites(PATTERNS, EditOptions().resolve(DEFAULTS))
    assert [(s.pattern, s.kind, s.threshold) for s in sites] == [
        ("blocks.0.conv", "conv-output", 0.2), ("blocks.*.attn", "attn-qk", 0.3), ("blocks.1.attn", "attn-v", 0.5)]
    assert sites[2].tokens == (1, None) and sites[2].token_dim == 2 and sites[2].steps is None
    with_cross = resolve_sites(PATTERNS, EditOptions(tau_ca=0.4, tau_conv=0.0).resolve(DEFAULTS))
    assert [s.threshold for s in with_cross] == [0.0, 0.3, 0.5, 0.4]
    with pytest.raises(InjectionError, match="unknown injection role 'motion'"):
        resolve_sites([InjectionPattern("motion", "x", "attn-qk")], EditOptions().resolve(DEFAULTS))
    # resolved sites drive the controller on the toy model
    with InjectionController(Toy(), with_cross, FULL) as ctl:
        ctl.set_timestep(981)
        Toy()(batch())
