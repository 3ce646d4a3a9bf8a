"""Inversion solvers of a DDIM backbone: work, reconstruction and distance to the default.

    python benchmarks/bench_inversion.py                       # tiny random I2VGen-XL, 16x64x64
    python benchmarks/bench_inversion.py --scale compute       # the compute-bound random model
    python benchmarks/bench_inversion.py --model ./i2vgen-xl --device cuda --dtype float16 \\
        --frames 16 --size 512                                # real weights, if you have them

For each inversion (the reference's 500-step DDIM first, then each few-step solver on the
edit's own 50-step grid) it prints:
- ``units``: denoiser batch units the inversion costs (it stops at the highest timestep the
  edit visits, 961 by default);
- ``psnr_cfg1`` / ``psnr_default``: reconstruction — invert, then sample back conditioned on
  the unedited first frame with the inversion prompt, injection on, at CFG 1 (what an
  inversion can reconstruct) and at the default CFG with the default negative prompt —
  as PSNR in dB of the decoded frames against the decoded clean latents (a random VAE does
  not reproduce the pixels, so this isolates the inversion);
- ``start_rel``: relative RMS distance of the start latent z_961 to the 500-step one;
- ``edit_mean_abs`` / ``edit_max_abs``: an edit (another first frame, another prompt, default
  settings) from this inversion against the same edit from the 500-step inversion, on
  decoded frames in [0, 1] (the fast preset's target: ≤ 0.02 mean);
and the model's sensitivity: the same edit after a 0.1 % and a 1 % random perturbation of
the 500-step latents, which bounds how close any other inversion can get on this model.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (default: build the random model of --scale)")
    p.add_argument("--scale", default="tiny", help="random model scale when no --model (benchmarks/models.py)")
    p.add_argument("--backbone", default="i2vgenxl")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, help="default: the scale's")
    p.add_argument("--solvers", default="ddim:50,heun:50,renoise:50",
                   help="solver:steps to compare with the 500-step DDIM inversion")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from anyv2v_core import api, sampling
    from anyv2v_core.protocols import EditOptions, InversionOptions
    from anyv2v_core.testing.tiny import synthetic_frames

    tmp = Path(tempfile.mkdtemp(prefix="anyv2v-bench-inv-"))
    if args.model:
        model, size = args.model, args.size or 512
    else:
        from models import SCALES, build_model

        model = str(build_model(args.scale, tmp / "model"))
        size = args.size or SCALES[args.scale].size
    bb = api.load_backbone(args.backbone, model, args.device, args.dtype)
    clip = api.clip_spec(bb.defaults, args.frames, (size, size), None)
    frames = synthetic_frames(args.frames, size, size, seed=1)
    edited = synthetic_frames(1, size, size, seed=10)[0]
    opts = EditOptions().resolve(bb.defaults)
    recon = EditOptions(cfg=1.0).resolve(bb.defaults)
    visit = sampling.edit_timesteps(bb, opts.steps, opts.t_idx)
    with torch.inference_mode():
        clean = bb.decode_video(bb.encode_video(frames)).float()

    def psnr(x):
        mse = float((bb.decode_video(x).float() - clean).pow(2).mean())
        return 10 * torch.log10(torch.tensor(1.0 / mse)).item()

    def edit(inv):
        return bb.decode_video(sampling.pnp_sample(bb, inv, frames[0], edited, "an edit", clip, opts)).float()

    def invert(solver, steps):
        units, predict = [], bb.predict
        bb.predict = lambda x, t, c: units.append(x.shape[0]) or predict(x, t, c)
        try:
            t0 = time.perf_counter()
            inv = sampling.invert(bb, frames, clip, InversionOptions(steps=steps, solver=solver).resolve(bb.defaults),
                                  keep=visit)
            return inv, sum(units), time.perf_counter() - t0
        finally:
            del bb.predict

    fig: dict = {"model": args.model or f"random ({args.scale})", "frames": args.frames, "size": size,
                 "steps": opts.steps, "t_idx": opts.t_idx, "cfg": opts.cfg, "rows": []}
    ref, ref_units, ref_s = invert("ddim", 500)
    ref_edit = edit(ref)
    z0 = visit[0]
    specs = [("ddim", 500)] + [(s.split(":")[0], int(s.split(":")[1])) for s in args.solvers.split(",")]
    for solver, steps in specs:
        inv, units, seconds = (ref, ref_units, ref_s) if (solver, steps) == ("ddim", 500) else invert(solver, steps)
        rec1 = psnr(sampling.pnp_sample(bb, inv, frames[0], frames[0], inv.prompt, clip, recon))
        rec_d = psnr(sampling.pnp_sample(bb, inv, frames[0], frames[0], inv.prompt, clip, opts))
        diff = (edit(inv) - ref_edit).abs() if inv is not ref else torch.zeros(1)
        start_rel = float((inv.latent(z0) - ref.latent(z0)).pow(2).mean().sqrt() / ref.latent(z0).pow(2).mean().sqrt())
        row = {"inversion": f"{solver}:{steps}", "units": units, "seconds": seconds, "psnr_cfg1": rec1,
               "psnr_default": rec_d, "start_rel": start_rel, "edit_mean_abs": float(diff.mean()),
               "edit_max_abs": float(diff.max())}
        fig["rows"].append(row)
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    g = torch.Generator().manual_seed(0)
    for eps in (1e-3, 1e-2):
        noisy = copy.copy(ref)
        noisy.latents = {t: z + eps * z.std() * torch.randn(z.shape, generator=g).to(z) for t, z in ref.latents.items()}
        fig[f"sensitivity_{eps:g}"] = float((edit(noisy) - ref_edit).abs().mean())
        print(f"edit after a {eps:.1%} random perturbation of the 500-step latents: mean abs "
              f"{fig[f'sensitivity_{eps:g}']:.4f}", flush=True)
    print("\n| inversion | units | PSNR CFG 1 (dB) | PSNR default CFG (dB) | z_961 vs 500-step | edit vs default: mean / max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in fig["rows"]:
        print(f"| {r['inversion']} | {r['units']} | {r['psnr_cfg1']:.2f} | {r['psnr_default']:.2f} | "
              f"{r['start_rel']:.2%} | {r['edit_mean_abs']:.3f} / {r['edit_max_abs']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
