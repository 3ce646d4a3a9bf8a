"""DDIM inversion and plug-and-play sampling, backbone-agnostic (SPEC §2).

The loops only talk to the :class:`~anyv2v_core.protocols.I2VBackbone` protocol:
schedulers, VAE coding, per-branch conditioning, one denoiser call per step, and the
injection sites, which :class:`~anyv2v_core.injection.InjectionController` turns into hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from .errors import InputError
from .injection import BranchLayout, InjectionController
from .inversion import InversionResult
from .protocols import ClipSpec, EditOptions, I2VBackbone, InversionOptions

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

#: ``progress(stage, done, total)``; stages: "invert", "edit".
ProgressFn = Callable[[str, int, int], None]


def _noop(stage: str, done: int, total: int) -> None:
    pass


def schedule(backbone: I2VBackbone, steps: int, sampler: str = "ddim") -> list[int]:
    """The full ``steps``-step sampling schedule of the backbone's scheduler."""
    sched = backbone.make_scheduler(sampler)
    sched.set_timesteps(steps)
    return [int(t) for t in sched.timesteps]


def edit_timesteps(backbone: I2VBackbone, steps: int, t_idx: int, sampler: str = "ddim") -> list[int]:
    """The timesteps an edit visits: the full schedule from index ``t_idx`` on."""
    full = schedule(backbone, steps, sampler)
    if not 0 <= t_idx < len(full):
        raise InputError(f"--t-idx must be in [0, {len(full) - 1}] for {steps} steps, got {t_idx}")
    return full[t_idx:]


def step_kwargs(scheduler, generator) -> dict:
    """``eta=0`` (DDIM) and the seeded generator, for the schedulers whose ``step`` takes them."""
    import inspect

    params = inspect.signature(scheduler.step).parameters
    kwargs = {}
    if "eta" in params:
        kwargs["eta"] = 0.0
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


def _cat_conditioning(conds: Sequence[dict]) -> dict:
    import torch

    keys = conds[0].keys()
    return {k: torch.cat([c[k] for c in conds], dim=0) for k in keys}


def invert(
    backbone: I2VBackbone,
    frames: Sequence["Image.Image"],
    clip: ClipSpec,
    options: InversionOptions,
    keep: Iterable[int] | None = None,
    progress: ProgressFn | None = None,
) -> InversionResult:
    """DDIM-invert ``frames`` (already at clip size) conditioned on the first frame.

    ``options`` must be resolved. ``keep``: the timesteps whose latents are retained
    (``None``: all of them).
    """
    import numpy as np
    import torch

    progress = progress or _noop
    keep_set = None if keep is None else {int(t) for t in keep}
    generator = torch.Generator("cpu").manual_seed(options.seed) if options.sample_posterior else None
    with torch.inference_mode():
        latents = backbone.encode_video(frames, generator=generator)
        cond = backbone.condition(frames[0], options.prompt, clip)
        sched = backbone.make_inverse_scheduler()
        sched.set_timesteps(options.steps)
        timesteps = list(sched.timesteps)
        kept: dict[int, torch.Tensor] = {}
        progress("invert", 0, len(timesteps))
        for i, t in enumerate(timesteps):
            pred = backbone.predict(latents, t, cond)
            latents = sched.step(pred, t, latents).prev_sample
            if keep_set is None or int(t) in keep_set:
                kept[int(t)] = latents
            progress("invert", i + 1, len(timesteps))
    return InversionResult(
        latents=kept,
        backbone=backbone.name,
        model_id=backbone.model_id,
        clip=clip,
        steps=options.steps,
        prompt=options.prompt,
        source_first_frame=np.asarray(frames[0].convert("RGB"), dtype=np.uint8),
        encoding=f"sample(seed={options.seed})" if options.sample_posterior else "mean",
    )


def pnp_sample(
    backbone: I2VBackbone,
    inversion: InversionResult,
    source_first_frame: "Image.Image",
    edited_frame: "Image.Image",
    prompt: str,
    clip: ClipSpec,
    options: EditOptions,
    progress: ProgressFn | None = None,
) -> "torch.Tensor":
    """Sample the edited clip's latents from the inverted noise with PnP injection.

    One denoiser call per step on the batch ``[source, uncond, cond]`` (``[source, cond]``
    when ``cfg <= 1``): the source branch denoises the inverted ``z_t^S`` with the source
    first frame and the inversion prompt and only donates features; CFG combines the
    other two; the DDIM step updates the edit latent only. ``options`` must be resolved.
    """
    import torch

    progress = progress or _noop
    full = schedule(backbone, options.steps, options.sampler)
    visit = edit_timesteps(backbone, options.steps, options.t_idx, options.sampler)
    inversion.require(visit)
    sched = backbone.make_scheduler(options.sampler)
    sched.set_timesteps(options.steps)

    device, dtype = backbone.device, backbone.dtype
    generator = torch.Generator("cpu").manual_seed(options.seed)
    extra = step_kwargs(sched, generator)
    z_start = inversion.latent(visit[0]).to(device, dtype)
    x = z_start
    if options.random_ratio:
        draw = getattr(backbone, "initial_noise", None)  # optional: a backbone may fix the draw's layout
        noise = draw(tuple(z_start.shape), generator) if draw else torch.randn(z_start.shape, generator=generator)
        noise = noise.to(device, dtype)
        x = noise * options.random_ratio + z_start * (1 - options.random_ratio)
    x = x * sched.init_noise_sigma

    guided = options.cfg > 1
    with torch.inference_mode():
        branches = [backbone.condition(source_first_frame, inversion.prompt, clip)]
        if guided:
            branches.append(backbone.condition(edited_frame, options.negative_prompt, clip, negative=True))
        branches.append(backbone.condition(edited_frame, prompt, clip))
        cond = _cat_conditioning(branches)
        n = len(branches)
        layout = BranchLayout(n_branches=n, source=0, targets=tuple(range(1, n)))
        sites = backbone.injection_sites(options)
        progress("edit", 0, len(visit))
        with InjectionController(backbone.denoiser, sites, full, layout) as controller:
            for i, t in enumerate(visit):
                controller.set_timestep(t)
                source = inversion.latent(t).to(device, dtype)
                sample = torch.cat([source] + [x] * (n - 1), dim=0)
                out = backbone.predict(sample, torch.tensor(t, device=device), cond).chunk(n)
                pred = out[1] + options.cfg * (out[2] - out[1]) if guided else out[1]
                x = sched.step(pred, t, x, **extra).prev_sample
                progress("edit", i + 1, len(visit))
    return x
