"""Inversion and plug-and-play sampling, backbone-agnostic (SPEC §2, §8).

The loops only talk to the :class:`~anyv2v_core.protocols.I2VBackbone` protocol:
schedulers, VAE coding, per-branch conditioning, one denoiser call per step, and the
injection patterns, whose sites :class:`~anyv2v_core.injection.InjectionController` turns into hooks.
The sampler follows the backbone's scheduler family: DDIM-like schedulers (integer
timesteps, the diffusers inverse scheduler) or flow matching
(:class:`~anyv2v_core.flow.FlowMatchScheduler`: integer level keys, the model called at
:meth:`~anyv2v_core.flow.FlowMatchScheduler.model_timestep`, inversion by
:func:`~anyv2v_core.flow.invert_ode` with the options' solver).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

from .errors import InputError
from .injection import BranchLayout, InjectionController, resolve_sites
from .inversion import InversionResult
from .protocols import ClipSpec, EditOptions, I2VBackbone, InversionOptions
from .settings import DEFAULT_SEED

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

#: ``progress(stage, done, total)``; stages: "invert", "edit".
ProgressFn = Callable[[str, int, int], None]


def _noop(stage: str, done: int, total: int) -> None:
    pass


def make_scheduler(backbone: I2VBackbone, sampler: str = "ddim", compat: str = "default"):
    """The backbone's edit scheduler; a ``compat`` other than "default" reaches a backbone
    whose ``make_scheduler`` takes a ``compat`` keyword (the others have one behaviour)."""
    import inspect

    if compat != "default" and "compat" in inspect.signature(backbone.make_scheduler).parameters:
        return backbone.make_scheduler(sampler, compat=compat)
    return backbone.make_scheduler(sampler)


def schedule(backbone: I2VBackbone, steps: int, sampler: str = "ddim", compat: str = "default") -> list[int]:
    """The full ``steps``-step sampling schedule of the backbone's scheduler."""
    sched = make_scheduler(backbone, sampler, compat)
    sched.set_timesteps(steps)
    return [int(t) for t in sched.timesteps]


def edit_timesteps(backbone: I2VBackbone, steps: int, t_idx: int, sampler: str = "ddim",
                   compat: str = "default") -> list[int]:
    """The timesteps an edit visits: the full schedule from index ``t_idx`` on."""
    full = schedule(backbone, steps, sampler, compat)
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


def model_timestep(scheduler, t: int, device) -> "torch.Tensor":
    """The denoiser's timestep at schedule entry ``t``: ``t`` itself for DDIM-like
    schedulers, the flow level's float timestep for a flow scheduler."""
    import torch

    convert = getattr(scheduler, "model_timestep", None)
    if convert is None:
        return torch.tensor(t, device=device)
    return convert(t).to(device)


def inversion_solvers(scheduler) -> tuple[str, ...]:
    """The inversion solvers a backbone's inverse scheduler supports."""
    from . import ddim_inversion
    from .flow import SOLVERS, FlowMatchScheduler

    return SOLVERS if isinstance(scheduler, FlowMatchScheduler) else ddim_inversion.SOLVERS


def solvers_of(defaults) -> tuple[str, ...]:
    """The inversion solvers of a backbone known by its defaults only (before it loads):
    the family of its default solver."""
    from . import ddim_inversion, flow

    return ddim_inversion.SOLVERS if defaults.inversion_solver in ddim_inversion.SOLVERS else flow.SOLVERS


def check_solver(backbone_name: str, solver: str, solvers: Sequence[str]) -> None:
    """One line if ``solver`` is not one of the backbone's ``solvers``."""
    if solver not in solvers:
        raise InputError(f"backbone {backbone_name!r} inverts with {' or '.join(solvers)}, not {solver!r}")


@dataclass(frozen=True)
class SamplingPlan:
    """Which inverted latents an edit reads: it steps the scheduler through ``visit`` from
    the latent ``start``; at visited ``t`` the source branch denoises the latent
    ``source[t]``, conditioned on the source first frame (``source_frame`` "source") or,
    as the official ConsistI2V code does, on the edited one ("edited").

    By default ``start`` is ``visit[0]`` and ``source[t]`` is ``t``; a backbone's
    ``compat_plan`` changes them for ``--compat official``."""

    visit: tuple[int, ...]
    start: int
    source: Mapping[int, int] = field(default_factory=dict)
    source_frame: str = "source"

    @property
    def needed(self) -> list[int]:
        """The inversion keys the edit reads, highest first (what an inversion must keep)."""
        return sorted({int(self.start), *(int(k) for k in self.source.values())}, reverse=True)


def plan(backbone: I2VBackbone, options: EditOptions, inversion_steps: int) -> SamplingPlan:
    """The :class:`SamplingPlan` of an edit with resolved ``options`` from an inversion of
    ``inversion_steps`` steps; with ``options.compat`` other than "default", the backbone's
    ``compat_plan(plan, options, inversion_steps)`` (if it has one) adjusts it."""
    visit = edit_timesteps(backbone, options.steps, options.t_idx, options.sampler, options.compat)
    base = SamplingPlan(tuple(visit), visit[0], {t: t for t in visit})
    hook = getattr(backbone, "compat_plan", None)
    if options.compat == "default" or hook is None:
        return base
    return hook(base, options, inversion_steps)


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
    """Invert ``frames`` (already at clip size) conditioned on the first frame: DDIM
    inversion, or for a flow backbone the flow ODE with ``options.solver``.

    ``options`` must be resolved. ``keep``: the timesteps whose latents are retained
    (``None``: all of them); the inversion stops at the highest of them (the steps above it
    would change nothing that is kept: the default edit starts at t=961, so the 500-step
    inversion's 19 steps above it are skipped).
    """
    import numpy as np
    import torch

    from .flow import FlowMatchScheduler

    progress = progress or _noop
    keep_set = None if keep is None else {int(t) for t in keep}
    generator = torch.Generator("cpu").manual_seed(options.seed) if options.sample_posterior else None
    sched = backbone.make_inverse_scheduler()
    solver = options.solver or "ddim"
    check_solver(backbone.name, solver, inversion_solvers(sched))
    with torch.inference_mode():
        latents = backbone.encode_video(frames, generator=generator)
        cond = backbone.condition(frames[0], options.prompt, clip)
        sched.set_timesteps(options.steps)
        timesteps = list(sched.timesteps)
        if keep_set:  # no step above the highest latent kept: it would be computed for nothing
            last = max((i for i, t in enumerate(timesteps) if int(t) in keep_set), default=len(timesteps) - 1)
            timesteps = timesteps[: last + 1]
        kept: dict[int, torch.Tensor] = {}
        progress("invert", 0, len(timesteps))
        if isinstance(sched, FlowMatchScheduler):
            from .flow import invert_ode

            def velocity(x, sigma):
                return backbone.predict(x, sched.timestep_of_sigma(sigma).to(backbone.device), cond)

            def record(key, x, level):  # a midpoint latent is kept with its step's level
                if keep_set is None or level in keep_set:
                    kept[key] = x

            invert_ode(velocity, latents, sched, solver, on_level=record, steps=len(timesteps),
                       on_step=lambda done, total: progress("invert", done, total))
        elif solver != "ddim":  # a few-step DDIM-family solver (anyv2v_core.ddim_inversion)
            from .ddim_inversion import invert_ddim

            def record_level(t, x):
                if keep_set is None or t in keep_set:
                    kept[t] = x

            invert_ddim(lambda x, t: backbone.predict(x, torch.tensor(t), cond), latents, sched,
                        [int(t) for t in timesteps], solver, on_level=record_level,
                        on_step=lambda done, total: progress("invert", done, total))
        else:
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
        encoding=options.encoding,
    )


@dataclass(frozen=True)
class EditTarget:
    """One edit of a multi-edit run: its edited first frame (clip size), prompt and seed
    (the seed of its ``random_ratio`` noise and of a stochastic sampler)."""

    edited_frame: "Image.Image"
    prompt: str
    seed: int


@dataclass
class SamplingStats:
    """Work done by one sampling run (for benchmarks and tests)."""

    steps: int = 0
    denoiser_calls: int = 0
    #: Sum over calls of the batch size in branches (source + uncond/cond per edit).
    batch_units: int = 0
    denoiser_seconds: float = 0.0
    total_seconds: float = 0.0


def pnp_sample(
    backbone: I2VBackbone,
    inversion: InversionResult,
    source_first_frame: "Image.Image",
    edited_frame: "Image.Image",
    prompt: str,
    clip: ClipSpec,
    options: EditOptions,
    progress: ProgressFn | None = None,
    drop_source: bool = True,
    stats: SamplingStats | None = None,
    seed: int = DEFAULT_SEED,
) -> "torch.Tensor":
    """Sample one edited clip's latents (``seed``: its noise blend and stochastic sampler);
    see :func:`pnp_sample_many`."""
    target = EditTarget(edited_frame, prompt, seed)
    return pnp_sample_many(backbone, inversion, source_first_frame, [target], clip, options, progress,
                           drop_source=drop_source, stats=stats)[0]


def pnp_sample_many(
    backbone: I2VBackbone,
    inversion: InversionResult,
    source_first_frame: "Image.Image",
    targets: Sequence[EditTarget],
    clip: ClipSpec,
    options: EditOptions,
    progress: ProgressFn | None = None,
    drop_source: bool = True,
    stats: SamplingStats | None = None,
) -> list["torch.Tensor"]:
    """Sample K edited clips' latents from the inverted noise with PnP injection, sharing
    one source branch.

    Per visited timestep, ONE denoiser call (two for a second-order flow sampler: the
    second at the step's midpoint, whose source latent the inversion recorded) on the batch
    ``[source, uncond_1, cond_1, ..., uncond_K, cond_K]`` (no ``uncond_k`` when
    ``cfg <= 1``). The source branch denoises the inverted ``z_t^S`` with the source first
    frame and the inversion prompt and only donates features: the injection controller
    replaces every edit branch's hooked tensors with the source's. CFG combines each
    edit's pair; the sampler step updates the edit latents only. With ``drop_source``,
    once no injection site is active for any remaining timestep the source branch leaves
    the batch (it no longer affects anything). ``options`` must be resolved; each
    target carries its own seed. Which latents are read (start, source branch) and the
    source branch's first frame follow :func:`plan` (``options.compat``).
    """
    import time

    import torch

    progress = progress or _noop
    stats = stats if stats is not None else SamplingStats()
    the_plan = plan(backbone, options, inversion.steps)
    if the_plan.source_frame == "edited" and len(targets) > 1:  # each edit has its own source branch
        return [x for target in targets
                for x in pnp_sample_many(backbone, inversion, source_first_frame, [target], clip, options, progress,
                                         drop_source=drop_source, stats=stats)]
    started = time.perf_counter()
    full = schedule(backbone, options.steps, options.sampler, options.compat)
    visit = list(the_plan.visit)
    sched = make_scheduler(backbone, options.sampler, options.compat)
    sched.set_timesteps(options.steps)
    solver = getattr(sched, "solver", "euler")
    inversion.require(the_plan.needed)
    if solver != "euler" and not set(sched.midpoint_keys(visit)) <= set(inversion.latents):
        from .errors import InversionMismatchError

        raise InversionMismatchError(
            f"--sampler {options.sampler} needs the midpoint latents a second-order inversion records; "
            "invert with --inversion-solver midpoint or fireflow on the same grid")

    # a backbone may keep its latents in another dtype than its model (Wan: float32 latents
    # for a bfloat16 model, so the ODE steps do not accumulate in bfloat16)
    device, dtype = backbone.device, getattr(backbone, "latent_dtype", backbone.dtype)
    z_start = inversion.latent(the_plan.start).to(device, dtype)
    draw = getattr(backbone, "initial_noise", None)  # optional: a backbone may fix the draw's layout
    latents, extras = [], []
    for target in targets:
        generator = torch.Generator("cpu").manual_seed(target.seed)
        x = z_start
        if options.random_ratio:
            noise = draw(tuple(z_start.shape), generator) if draw else torch.randn(z_start.shape, generator=generator)
            x = noise.to(device, dtype) * options.random_ratio + z_start * (1 - options.random_ratio)
        latents.append(x * sched.init_noise_sigma)
        extras.append(step_kwargs(sched, generator))

    guided = options.cfg > 1
    per = 2 if guided else 1
    with torch.inference_mode():
        source_frame = targets[0].edited_frame if the_plan.source_frame == "edited" else source_first_frame
        source_cond = backbone.condition(source_frame, inversion.prompt, clip)
        edit_conds = []
        for target in targets:
            if guided:
                edit_conds.append(backbone.condition(target.edited_frame, options.negative_prompt, clip, negative=True))
            edit_conds.append(backbone.condition(target.edited_frame, target.prompt, clip))
        cond_with_source = _cat_conditioning([source_cond, *edit_conds])
        cond_edits_only = None
        n = 1 + len(edit_conds)
        layout = BranchLayout(n_branches=n, source=0, targets=tuple(range(1, n)))
        sites = resolve_sites(backbone.injection_patterns, options)
        progress("edit", 0, len(visit))
        with InjectionController(backbone.denoiser, sites, full, layout) as controller:

            def guided_velocities(xs, t_model, source_latent):
                """One denoiser call on ``[source?, uncond_k?, cond_k...]``; each edit's
                (CFG-combined) prediction."""
                nonlocal cond_edits_only
                branches = [x for x in xs for _ in range(per)]
                if source_latent is not None:
                    branches.insert(0, source_latent.to(device, dtype))
                    cond = cond_with_source
                else:
                    if cond_edits_only is None:
                        cond_edits_only = _cat_conditioning(edit_conds)
                    cond = cond_edits_only
                call_start = time.perf_counter()
                out = backbone.predict(torch.cat(branches, dim=0), t_model, cond)
                stats.denoiser_seconds += time.perf_counter() - call_start
                stats.denoiser_calls += 1
                stats.batch_units += len(branches)
                out = out.chunk(len(branches))[0 if source_latent is None else 1 :]
                preds = []
                for k in range(len(xs)):
                    u, c = out[per * k], out[per * k + per - 1]
                    preds.append(u + options.cfg * (c - u) if guided else c)
                return preds

            carried = None  # fireflow: each edit's last midpoint velocity
            for i, t in enumerate(visit):
                with_source = not drop_source or controller.any_active_from(visit[i:])
                controller.set_timestep(t if with_source else None)
                source = inversion.latent(the_plan.source[t]) if with_source else None
                if solver == "euler":
                    preds = guided_velocities(latents, model_timestep(sched, t, device), source)
                    for k in range(len(latents)):
                        latents[k] = sched.step(preds[k], t, latents[k], **extras[k]).prev_sample
                else:  # second-order flow step: the velocity at the interval's midpoint
                    from .flow import euler, midpoint, sigma_key

                    hi, lo = sched.sigma(t), sched.sigmas[sched.index(t) + 1]
                    mid = midpoint(lo, hi)
                    starts = carried
                    if solver == "midpoint" or starts is None:
                        starts = guided_velocities(latents, model_timestep(sched, t, device), source)
                    halfway = [euler(x, v, hi, mid) for x, v in zip(latents, starts)]
                    source_mid = inversion.latent(sigma_key(mid)) if with_source else None
                    carried = guided_velocities(halfway, sched.timestep_of_sigma(mid).to(device), source_mid)
                    latents = [euler(x, v, hi, lo) for x, v in zip(latents, carried)]
                stats.steps += 1
                progress("edit", i + 1, len(visit))
    finish = getattr(backbone, "finish_latents", None)
    if finish is not None:
        cond_of = [edit_conds[per * k + per - 1] for k in range(len(latents))]
        with torch.inference_mode():
            latents = [finish(x, c) for x, c in zip(latents, cond_of)]
    stats.total_seconds += time.perf_counter() - started
    return latents
