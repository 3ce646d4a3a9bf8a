"""``--compat official`` with ConsistI2V: the source branch is conditioned on the EDITED
first frame, as the official ``sample_with_pnp`` does; the default keeps the source frame."""

import torch

from anyv2v_core.protocols import ClipSpec, EditOptions, InversionOptions
from anyv2v_core.testing.tiny import synthetic_frames

CLIP = ClipSpec(n_frames=3, width=64, height=64, fps=8)


def run_with_spy(backbone, fn):
    seen = []
    original = backbone.predict

    def spy(sample, t, cond):  # records what each call's branches are conditioned on, then runs the real call
        seen.append(cond["first_frame_latents"][:, :, 0].clone())
        return original(sample, t, cond)

    backbone.predict = spy
    try:
        return fn(), seen
    finally:
        del backbone.predict


def test_official_source_branch_is_conditioned_on_the_edited_frame(consisti2v):
    from anyv2v_core.sampling import EditTarget, invert, pnp_sample, pnp_sample_many

    frames = synthetic_frames(CLIP.n_frames, CLIP.width, CLIP.height, seed=1)
    edited = synthetic_frames(2, CLIP.width, CLIP.height, seed=5)
    source_latent = consisti2v.first_frame_latent(frames[0], CLIP)[0, :, 0]
    edited_latents = [consisti2v.first_frame_latent(e, CLIP)[0, :, 0] for e in edited]
    inv = invert(consisti2v, frames, CLIP, InversionOptions(steps=10).resolve(consisti2v.defaults))

    def sample(compat, frame=edited[0]):
        opts = EditOptions(steps=10, t_idx=4, compat=compat).resolve(consisti2v.defaults)
        return pnp_sample(consisti2v, inv, frames[0], frame, "an edit", CLIP, opts)

    official, seen = run_with_spy(consisti2v, lambda: sample("official"))
    assert len(seen[0]) == 3 and all(torch.equal(s, edited_latents[0]) for s in seen[0])  # source branch too
    default, seen = run_with_spy(consisti2v, lambda: sample("default"))
    assert torch.equal(seen[0][0], source_latent) and torch.equal(seen[0][1], edited_latents[0])
    assert float((official - default).abs().max()) > 1e-4
    assert torch.equal(default, sample("default"))  # the default path is deterministic and unchanged by the option

    # several edits: each gets the source branch of its own edited frame, as separate official runs
    opts = EditOptions(steps=10, t_idx=4, compat="official").resolve(consisti2v.defaults)
    targets = [EditTarget(e, "an edit", 8888) for e in edited]
    both = pnp_sample_many(consisti2v, inv, frames[0], targets, CLIP, opts)
    assert torch.equal(both[0], official) and torch.equal(both[1], sample("official", edited[1]))
