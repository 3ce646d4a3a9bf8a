"""Benchmark of an AnyV2V edit: reference mode vs anyv2v's default mode, in one run.

    python benchmarks/bench_edit.py                    # tiny random I2VGen-XL, CPU
    python benchmarks/bench_edit.py --backbone wan     # tiny random Wan2.1-I2V (9 frames: 4k+1)
    python benchmarks/bench_edit.py --model ./i2vgen-xl --device cuda --dtype float16 \
        --frames 16 --size 512 --inversion-steps 500   # real weights, if you have them

Reference mode = what the official scripts do: no inversion cache (every edit inverts),
the source branch in the batch at every step, every inverted step kept (the reference
pickles all of them to disk). Default mode = the inversion cache and dropping the source
branch once injection is over. The figures are ratios measured side by side.
Also: K edits sharing the source branch vs K separate edits, and the "fast" preset's
distance to the full inversion (DDIM backbones) or, for a flow-matching backbone, the
reconstruction error of each inversion solver paired with the same sampler.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (default: build a tiny random I2VGen-XL)")
    p.add_argument("--backbone", default="i2vgenxl")
    p.add_argument("--frames", type=int, help="default: 8, or the backbone's tiny setting (wan: 9)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--inversion-steps", type=int, help="default: 100, or --steps for a flow backbone (its grid "
                   "is only nested in itself)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--ks", default="1,2,4", help="edit counts for the shared-source comparison")
    p.add_argument("--skip-preset", action="store_true", help="skip the fast-preset fidelity figures")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()

    import torch

    from anyv2v_core import api, sampling
    from anyv2v_core.cache import InversionCache
    from anyv2v_core.flow import SOLVERS, FlowMatchScheduler
    from anyv2v_core.plugins import get_registry
    from anyv2v_core.protocols import EditOptions, InversionOptions
    from anyv2v_core.testing.tiny import synthetic_frames

    tmp = Path(tempfile.mkdtemp(prefix="anyv2v-bench-"))
    cls = get_registry().backbone(args.backbone).load()
    if args.frames is None:
        args.frames = getattr(cls, "selftest_settings", {}).get("n_frames", 8)
    model = args.model or str(cls.build_tiny(tmp / "model"))
    bb = api.load_backbone(args.backbone, model, args.device, args.dtype)
    flow = isinstance(bb.make_scheduler(), FlowMatchScheduler)
    if args.inversion_steps is None:
        args.inversion_steps = args.steps if flow else 100
    clip = api.clip_spec(bb.defaults, args.frames, (args.size, args.size), None)
    frames = synthetic_frames(args.frames, args.size, args.size, seed=1)
    edited = [synthetic_frames(1, args.size, args.size, seed=10 + i)[0] for i in range(8)]
    opts = EditOptions(steps=args.steps).resolve(bb.defaults)
    inv_opts = InversionOptions(steps=args.inversion_steps)
    visit = sampling.edit_timesteps(bb, opts.steps, opts.t_idx)
    fig: dict = {"backbone": args.backbone, "model": "tiny random" if not args.model else model,
                 "frames": args.frames, "size": args.size, "inversion_steps": args.inversion_steps,
                 "steps": args.steps, "t_idx": opts.t_idx, "device": args.device, "dtype": args.dtype}

    def sync():
        if torch.cuda.is_available() and args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def one_edit(frame, cache, drop_source, keep_all=False):
        t0 = time.perf_counter()
        if keep_all:  # the reference keeps every inverted step
            inv = sampling.invert(bb, frames, clip, inv_opts.resolve(bb.defaults), keep=None)
            reused = False
        else:
            inv, reused = api.obtain_inversion(bb, frames, clip, inv_opts, visit, cache)
        sync()
        t_inv = time.perf_counter() - t0
        stats = sampling.SamplingStats()
        lat = sampling.pnp_sample(bb, inv, frames[0], frame, "an edit", clip, opts, drop_source=drop_source,
                                  stats=stats)
        bb.decode_video(lat)
        sync()
        return {"wall": time.perf_counter() - t0, "invert": t_inv, "reused": reused, "stats": stats, "inv": inv}

    cache_dir = tmp / "cache"
    ref1 = one_edit(edited[0], False, drop_source=False, keep_all=True)
    new1 = one_edit(edited[0], cache_dir, drop_source=True)
    ref2 = one_edit(edited[1], False, drop_source=False, keep_all=True)
    new2 = one_edit(edited[1], cache_dir, drop_source=True)
    assert new2["reused"], "the repeat edit should hit the inversion cache"

    latent_bytes = next(iter(ref1["inv"].latents.values())).numel() * 4
    cache_bytes = sum(e.bytes for e in InversionCache(cache_dir).entries())
    s_ref, s_new = ref1["stats"], new1["stats"]
    fig.update({
        "reference_first_edit_s": ref1["wall"], "reference_repeat_edit_s": ref2["wall"],
        "first_edit_s": new1["wall"], "repeat_edit_s": new2["wall"], "inversion_s": new1["invert"],
        "repeat_over_first": new2["wall"] / new1["wall"],
        "repeat_over_reference_repeat": new2["wall"] / ref2["wall"],
        "denoiser_calls_per_step": s_new.denoiser_calls / s_new.steps,
        "batch_units_per_step_reference": s_ref.batch_units / s_ref.steps,
        "batch_units_per_step": s_new.batch_units / s_new.steps,
        "overhead_outside_denoiser": 1 - s_new.denoiser_seconds / s_new.total_seconds,
        "cache_bytes": cache_bytes, "all_steps_latents_bytes_500": latent_bytes * 500,
        "cache_over_500_latents": cache_bytes / (latent_bytes * 500),
    })

    # K edits sharing the source branch vs K separate edits (inversion excluded).
    inv = new2["inv"]
    for k in [int(x) for x in args.ks.split(",")]:
        targets = [sampling.EditTarget(edited[i % len(edited)], f"edit {i}", i) for i in range(k)]
        t0 = time.perf_counter()
        shared = sampling.SamplingStats()
        sampling.pnp_sample_many(bb, inv, frames[0], targets, clip, opts, stats=shared)
        sync()
        t_shared = time.perf_counter() - t0
        t0 = time.perf_counter()
        units = 0
        for t in targets:
            alone = sampling.SamplingStats()
            sampling.pnp_sample(bb, inv, frames[0], t.edited_frame, t.prompt, clip, opts, stats=alone)
            units += alone.batch_units
        sync()
        t_sep = time.perf_counter() - t0
        fig[f"k{k}_units_shared"], fig[f"k{k}_units_separate"] = shared.batch_units, units
        fig[f"k{k}_time_ratio"] = t_shared / t_sep

    if flow and not args.skip_preset:  # flow: each solver's invert-and-reconstruct error (no edit)
        clean = bb.encode_video(frames)
        for solver in SOLVERS:
            inv_s = sampling.invert(bb, frames, clip, InversionOptions(steps=opts.steps, solver=solver).resolve(bb.defaults))
            rec = EditOptions(steps=opts.steps, t_idx=0, cfg=1.0, sampler=solver).resolve(bb.defaults)
            x = sampling.pnp_sample(bb, inv_s, frames[0], frames[0], inv_s.prompt, clip, rec)
            fig[f"reconstruction_rmse_{solver}"] = float((x - clean).pow(2).mean().sqrt())
    elif not args.skip_preset:  # fast preset: inversion on the edit's own grid vs the full inversion
        full = sampling.invert(bb, frames, clip, InversionOptions(steps=500).resolve(bb.defaults), keep=visit)
        fast = sampling.invert(bb, frames, clip, InversionOptions(steps=opts.steps).resolve(bb.defaults), keep=visit)
        a = sampling.pnp_sample(bb, full, frames[0], edited[0], "an edit", clip, opts)
        b = sampling.pnp_sample(bb, fast, frames[0], edited[0], "an edit", clip, opts)
        fa, fb = bb.decode_video(a), bb.decode_video(b)
        t0 = visit[0]
        fig["preset_fast_latent_max_abs_diff_at_start"] = float((full.latent(t0) - fast.latent(t0)).abs().max())
        fig["preset_fast_latent_rel_rmse_at_start"] = float(
            (full.latent(t0) - fast.latent(t0)).pow(2).mean().sqrt() / full.latent(t0).pow(2).mean().sqrt())
        fig["preset_fast_frames_mean_abs_diff"] = float((fa - fb).abs().mean())
        fig["preset_fast_frames_max_abs_diff"] = float((fa - fb).abs().max())

    fig["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    width = max(len(k) for k in fig)
    for key, value in fig.items():
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
