"""The library API. The CLI (and any batch runner or UI) is a thin caller of these."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import sampling, video
from . import settings as schema
from .errors import InputError, InversionMismatchError
from .inversion import InversionResult, frame_digest, require_timesteps
from .plugins import get_registry
from .protocols import (
    BackboneDefaults,
    ClipSpec,
    EditOptions,
    EditRequest,
    I2VBackbone,
    InversionOptions,
    MemoryOptions,
)
from .settings import DEFAULT_BACKBONE, DEFAULT_EDITOR

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

    from .sampling import ProgressFn


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available")
    return device


def resolve_dtype(dtype: str, device: str) -> "torch.dtype":
    import torch

    dtype = schema.check("dtype", dtype)
    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_backbone(
    name: str,
    model: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    memory: MemoryOptions | None = None,
    options: dict | None = None,
) -> I2VBackbone:
    """Instantiate (and load the weights of) the backbone registered as ``name``;
    ``options`` are its declared options (validated), passed as constructor keywords."""
    from .editor_options import validate_options

    component = get_registry().backbone(name)
    values = validate_options(name, component.options, dict(options or {}), kind="backbone")
    cls = component.load()
    dev = resolve_device(device)
    backbone = cls(model=model, device=dev, dtype=resolve_dtype(dtype, dev), **values)
    configure_memory(backbone, memory)
    return backbone


def configure_memory(backbone: I2VBackbone, memory: MemoryOptions | None) -> None:
    """Apply ``memory`` to ``backbone`` unless it is already in effect (``None``: leave the
    backbone as it is). A reused backbone is switched back by ``MemoryOptions()``."""
    if memory is None:
        return
    if memory == getattr(backbone, "memory", MemoryOptions()):
        return
    apply = getattr(backbone, "configure_memory", None)
    if apply is None:
        raise InputError(f"backbone {backbone.name!r} supports no memory options")
    apply(memory)


def load_editor(name: str, model: str | None = None, device: str = "auto", dtype: str = "auto") -> Any:
    cls = get_registry().editor(name).load()
    dev = resolve_device(device)
    return cls(model=model, device=dev, dtype=resolve_dtype(dtype, dev))


def check_folder(folder: Path, what: str, create: bool = False) -> None:
    """Refuse, before any compute, a folder that is a file, cannot be created (``create``) or
    cannot be written (probed with a temporary file, so read-only mounts count too)."""
    import tempfile

    if folder.exists() and not folder.is_dir():
        raise InputError(f"{what} {folder} is a file, not a folder")
    probe_in = folder
    if not folder.exists():
        if not create:
            raise InputError(f"{what} does not exist: {folder}")
        probe_in = next((p for p in folder.parents if p.exists()), Path("."))
        if not probe_in.is_dir():
            raise InputError(f"{what} {folder} cannot be created: {probe_in} is a file")
    try:
        with tempfile.TemporaryFile(dir=probe_in):
            pass
    except OSError as exc:
        raise InputError(f"{what} {probe_in} is not writable ({exc.strerror or exc})") from None


def clip_spec(
    defaults: BackboneDefaults, n_frames: int | None = None, size: tuple[int, int] | None = None, fps: int | None = None
) -> ClipSpec:
    n = defaults.n_frames if n_frames is None else schema.check("num_frames", n_frames)
    w, h = (defaults.width, defaults.height) if size is None else schema.check("size", size)
    return ClipSpec(n, w, h, defaults.fps if fps is None else schema.check("fps", fps))


def read_clip(source: str | os.PathLike, clip: ClipSpec) -> list["Image.Image"]:
    """The first ``clip.n_frames`` frames of ``source``, resized to the clip size."""
    return [video.resize(f, clip.size) for f in video.read_frames(source, clip.n_frames)]


def prepare_request(editor: str, request: EditRequest) -> EditRequest:
    """Validate ``request.options`` against the options editor ``editor`` declares
    (types converted, defaults filled, files checked)."""
    from .editor_options import validate_options

    declared = get_registry().editor(editor).options
    request.options = validate_options(editor, declared, dict(request.options))
    return request


def edit_frame(
    source: str | os.PathLike,
    *,
    editor: str | Any = "image",
    request: EditRequest | None = None,
    out: str | os.PathLike | None = None,
    force: bool = False,
    device: str = "auto",
    dtype: str = "auto",
) -> "Image.Image":
    """Stage 1 only: edit the first frame of ``source`` (at its own resolution) and
    optionally save it, e.g. to inspect it before ``edit --editor image --edited-frame``."""
    if out is not None:
        video.image_format(out)
        video.check_writable(out, force)
    first = video.read_frames(source, 1)[0]
    request = request or EditRequest()
    if isinstance(editor, str):
        request = prepare_request(editor, request)
        editor = load_editor(editor, device=device, dtype=dtype)
    edited = editor.edit(first, request).convert("RGB")
    if out is not None:
        video.save_image(edited, out, force)
    return edited


def _backbone(
    backbone: str | I2VBackbone,
    model: str | None,
    device: str,
    dtype: str,
    memory: MemoryOptions | None = None,
    options: dict | None = None,
) -> I2VBackbone:
    if isinstance(backbone, str):
        return load_backbone(backbone, model, device, dtype, memory, options)
    configure_memory(backbone, memory)
    return backbone


def _defaults(backbone: str | I2VBackbone) -> BackboneDefaults:
    if isinstance(backbone, str):
        return get_registry().backbone(backbone).load().defaults
    return backbone.defaults


def check_memory(
    backbone: str | I2VBackbone,
    model: str | None,
    clip: ClipSpec,
    *,
    device: str,
    dtype: str,
    steps: int,
    cfg: float,
    edits_per_batch: int = 1,
    memory: MemoryOptions | None = None,
) -> None:
    """Refuse an edit the device cannot hold, from an estimate made before anything is
    loaded (:mod:`anyv2v_core.memory`). For a loaded backbone its weights are not counted
    (they already take their memory)."""
    from . import memory as mem

    dev = resolve_device(device)
    cls = get_registry().backbone(backbone).load() if isinstance(backbone, str) else backbone
    memory = memory or MemoryOptions()
    weights_of = (model or getattr(cls, "default_model", None)) if isinstance(backbone, str) else None
    estimate = mem.estimate_edit(
        mem.profile_of(cls), n_frames=clip.n_frames, width=clip.width, height=clip.height,
        dtype_bytes=mem.dtype_size(dtype, dev), edits_per_batch=edits_per_batch, guidance=cfg > 1,
        stored_latents=steps, vae_chunk=memory.vae_chunk, vae_tiling=memory.vae_tiling, model=weights_of,
    )
    mem.check_memory(estimate, dev)


def _check_solver(backbone: str | I2VBackbone, run: schema.Run, defaults: BackboneDefaults) -> None:
    """An inversion solver the backbone does not have, refused before anything loads."""
    solver = run.inversion_solver(defaults)
    if solver is not None:
        name = backbone if isinstance(backbone, str) else backbone.name
        sampling.check_solver(name, solver, sampling.solvers_of(defaults))


def _check_clip(backbone: str | I2VBackbone, clip: ClipSpec) -> None:
    """A backbone class may refuse a clip before its weights load (optional classmethod
    ``check_clip_spec(clip)``, e.g. Wan's 4k+1 frames)."""
    cls = get_registry().backbone(backbone).load() if isinstance(backbone, str) else type(backbone)
    check = getattr(cls, "check_clip_spec", None)
    if check is not None:
        check(clip)


def invert(
    source: str | os.PathLike,
    *,
    backbone: str | I2VBackbone = DEFAULT_BACKBONE,
    model: str | None = None,
    out: str | os.PathLike | None = None,
    backbone_options: dict | None = None,
    progress: "ProgressFn | None" = None,
    **settings: Any,
) -> InversionResult:
    """DDIM-invert ``source``; keep the latents on the schedule of the edit's ``steps``
    (default: the backbone's) and, with ``out``, store them as safetensors. ``settings``:
    the run settings ``anyv2v invert`` takes (:mod:`anyv2v_core.settings`), e.g.
    ``inversion_steps=500, num_frames=16, size="512x512"``; checked before anything loads.
    An inversion the device cannot hold is refused before loading anything unless not
    ``memory_check``."""
    run = schema.collect(settings, "invert")
    defaults = _defaults(backbone)
    clip = clip_spec(defaults, run["num_frames"], run["size"], run["fps"])
    _check_clip(backbone, clip)
    _check_solver(backbone, run, defaults)
    if out is not None:
        video.check_writable(out, run["force"])
    memory = MemoryOptions(**run.group("memory"))
    if run["memory_check"]:
        check_memory(backbone, model, clip, device=run["device"], dtype=run["dtype"],
                     steps=run["steps"] or defaults.steps, cfg=1.0, edits_per_batch=0, memory=memory)
    frames = read_clip(source, clip)
    bb = _backbone(backbone, model, run["device"], run["dtype"], _memory(run, backbone), backbone_options)
    opts = _inversion_options(run, bb.defaults).resolve(bb.defaults)
    keep = sampling.schedule(bb, run["steps"] or bb.defaults.steps)
    if run["compat"] != "default":  # and what an edit with this compat reads (e.g. SEINE's z_997)
        edit_opts = EditOptions(steps=run["steps"], t_idx=0, compat=run["compat"]).resolve(bb.defaults)
        keep = sorted(set(keep) | set(sampling.plan(bb, edit_opts, opts.steps).needed), reverse=True)
    inv_grid = bb.make_inverse_scheduler()
    inv_grid.set_timesteps(opts.steps)
    require_timesteps(inv_grid.timesteps, keep, opts.steps)
    result = sampling.invert(bb, frames, clip, opts, keep=keep, progress=progress)
    if out is not None:
        result.save(out, force=run["force"])
    return result


def _memory(run: schema.Run, backbone: str | I2VBackbone) -> MemoryOptions | None:
    """The memory options to apply: those of the run for a backbone loaded here; for a
    loaded backbone passed in, only when the run names some (else it keeps its own)."""
    if isinstance(backbone, str) or run.given("memory"):
        return MemoryOptions(**run.group("memory"))
    return None


def _inversion_options(run: schema.Run, defaults: BackboneDefaults) -> InversionOptions:
    return InversionOptions(steps=run.inversion_steps(defaults), prompt=run["inversion_prompt"],
                            sample_posterior=run["sample_posterior"], seed=run["seed"],
                            solver=run.inversion_solver(defaults))


@dataclass
class EditResult:
    frames: list["Image.Image"]
    edited_first_frame: "Image.Image"
    inversion: InversionResult
    clip: ClipSpec
    options: EditOptions
    prompt: str = ""
    seed: int = 0
    out: Path | None = None
    frames_dir: Path | None = None
    #: Whether the inversion came from the cache (or a stored file) instead of being computed.
    inversion_reused: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    stats: sampling.SamplingStats | None = None


@dataclass
class EditSpec:
    """One edit of :func:`edit_many`: the video prompt, the editor's request (edited
    frame, options, seed), where to write the result and, optionally, the edited first frame
    itself (``edited_image``: then no editor runs for this edit)."""

    prompt: str
    request: EditRequest = field(default_factory=EditRequest)
    out: str | os.PathLike | None = None
    frames_dir: str | os.PathLike | None = None
    edited_image: "Image.Image | None" = None


def numbered(path: "str | os.PathLike | None", i: int, k: int) -> Path | None:
    """``edited.mp4`` -> ``edited-0.mp4`` ... when a run makes ``k > 1`` edits."""
    if path is None:
        return None
    path = Path(path)
    return path if k == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")


def broadcast(
    prompts: list[str],
    *,
    edited_frames: list | None = None,
    seeds: list[int] | None = None,
    options: dict[str, Any] | None = None,
    out: "str | os.PathLike | None" = None,
    frames_dir: "str | os.PathLike | None" = None,
) -> list[EditSpec]:
    """The edits of a multi-edit run. Every per-edit value (a prompt, an edited frame, a
    seed, an editor option given as a list) comes once (shared by every edit) or once per
    edit; outputs are numbered (``edited-0.mp4``, ...) when there are several edits."""
    options = dict(options or {})
    lists: dict[str, list] = {"prompt": list(prompts), "edited_frame": list(edited_frames or []),
                              "seed": list(seeds or [])}
    lists.update({k: v for k, v in options.items() if isinstance(v, list)})
    counts = {name: len(v) for name, v in lists.items() if len(v) > 1}
    k = max(counts.values(), default=1)
    if any(c != k for c in counts.values()):
        given = ", ".join(f"{c} x {name}" for name, c in counts.items())
        raise InputError(f"per-edit values must come once or once per edit; got {given}")

    def pick(values: list, i: int) -> Any:
        return values[i] if len(values) > 1 else (values[0] if values else None)

    specs = []
    for i in range(k):
        seed = pick(lists["seed"], i)
        frame = pick(lists["edited_frame"], i)
        request = EditRequest(prompt=pick(lists["prompt"], i) or "",
                              edited_frame=Path(frame) if frame is not None else None,
                              options={key: pick(v, i) if isinstance(v, list) else v for key, v in options.items()})
        if seed is not None:
            request.seed = schema.check("seed", seed)
        specs.append(EditSpec(request.prompt, request, numbered(out, i, k), numbered(frames_dir, i, k)))
    return specs


def _cache_key(bb: I2VBackbone, frames, clip: ClipSpec, opts: InversionOptions):
    from .cache import CacheKey, frames_digest

    return CacheKey(
        source=frames_digest(frames), backbone=bb.name, model=getattr(bb, "model_fingerprint", bb.model_id),
        steps=opts.steps, prompt=opts.prompt, n_frames=clip.n_frames, width=clip.width, height=clip.height,
        fps=clip.fps, dtype=str(bb.dtype), device=bb.device.type,
        encoding=opts.encoding,
    )


def obtain_inversion(
    bb: I2VBackbone,
    frames: list["Image.Image"],
    clip: ClipSpec,
    inversion_options: InversionOptions,
    visit: list[int],
    cache: "bool | str | os.PathLike" = True,
    progress: "ProgressFn | None" = None,
) -> tuple[InversionResult, bool]:
    """The inversion of ``frames`` covering ``visit`` (the keys the edit reads,
    :attr:`~anyv2v_core.sampling.SamplingPlan.needed`): from the cache when an intact,
    matching entry exists (returns ``reused=True``), else computed (and cached)."""
    from .cache import InversionCache

    opts = inversion_options.resolve(bb.defaults)
    grid = bb.make_inverse_scheduler()
    grid.set_timesteps(opts.steps)
    require_timesteps(grid.timesteps, visit, opts.steps)
    store = None if cache is False else InversionCache(None if cache is True else cache)
    key = _cache_key(bb, frames, clip, opts) if store else None
    if store:
        hit = store.lookup(key, visit, device=bb.device)
        if hit is not None:
            return hit, True
    keep = sorted(set(visit) | set(store.timesteps(key) if store else ()), reverse=True)
    inv = sampling.invert(bb, frames, clip, opts, keep=keep, progress=progress)
    if store:
        store.store_or_warn(key, inv)
    return inv, False


def edit(
    source: str | os.PathLike,
    *,
    prompt: str,
    editor: str | Any = DEFAULT_EDITOR,
    request: EditRequest | None = None,
    edited_frame: str | os.PathLike | None = None,
    edited_image: "Image.Image | None" = None,
    out: str | os.PathLike | None = None,
    frames_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> EditResult:
    """Edit ``source`` the AnyV2V way: edit its first frame with ``editor`` (or take
    ``edited_frame``, a file, or ``edited_image``, a PIL image), invert the clip (or reuse an
    inversion: ``inversion=`` file/result, or the cache), sample the edited clip with PnP
    injection, and write it. Keyword arguments as :func:`edit_many` (the run settings by
    name, e.g. ``steps=30, seed=3``).

    Returns the edited frames (PIL images at the clip size) and what produced them.
    """
    request = request or EditRequest(prompt=prompt)
    if edited_frame is not None:
        request.edited_frame = Path(edited_frame)
    if kwargs.get("seed") is not None:  # one edit: the seed of the edit and of the run
        request.seed = schema.check("seed", kwargs["seed"])
    spec = EditSpec(prompt, request, out, frames_dir, edited_image)
    return edit_many(source, [spec], editor=editor, **kwargs)[0]


def plan_windows(total: int, window: int, overlap: int = 1) -> list[int]:
    """Start indices of consecutive windows of ``window`` frames covering ``total`` frames,
    each overlapping the previous by at least ``overlap`` frames (the last window is moved
    back to end at the last frame)."""
    if total < window:
        raise InputError(f"{total} frames are fewer than one window of {window}")
    if not 1 <= overlap < window:
        raise InputError(f"window overlap must be in [1, {window - 1}], got {overlap}")
    starts = [0]
    while starts[-1] + window < total:
        starts.append(min(starts[-1] + window - overlap, total - window))
    return starts


def edit_many(
    source: str | os.PathLike,
    edits: "list[EditSpec]",
    *,
    editor: str | Any = DEFAULT_EDITOR,
    backbone: str | I2VBackbone = DEFAULT_BACKBONE,
    model: str | None = None,
    inversion: str | os.PathLike | InversionResult | None = None,
    backbone_options: dict | None = None,
    progress: "ProgressFn | None" = None,
    **settings: Any,
) -> list[EditResult]:
    """K edits of one video in one run: one inversion, and per sampling step one denoiser
    call for up to ``max_batch`` edits sharing the source branch
    (:func:`~anyv2v_core.sampling.pnp_sample_many`). Each edit's seed is its request's; the
    ``seed`` setting seeds the run's own draws (the VAE posterior with ``sample_posterior``).

    ``settings`` are the run settings by name (:data:`anyv2v_core.settings.SETTINGS`, the
    options of ``anyv2v edit``: ``steps``, ``t_idx``, ``cfg``, ``tau_conv``, ..., ``num_frames``,
    ``size``, ``start``/``end``/``stride``, ``resize_mode``, ``out_size``, ``long``, ``overlap``,
    ``audio``, ``preset``, ``max_batch``, ``cache``/``cache_dir``, ``device``, ``dtype``,
    ``force``, the memory options); every value is checked before anything is loaded.

    ``start``/``end``/``stride`` pick the source frames, ``resize_mode`` brings them to the
    working size (stretch, crop, pad; a frames folder mixing sizes is refused unless
    ``mixed_sizes``), ``out_size`` is the output size (``None``: the working
    size; ``"source"``: the source's). With ``long``, a clip longer than the backbone's window
    is edited in consecutive windows overlapping by ``overlap`` frames: window k+1 takes window
    k's edited frame at its first index as its edited first frame, is inverted from its own
    source frames, and overlapping frames are blended linearly. The source audio is copied to
    mp4 outputs when present (``audio``).

    An edit whose estimated memory exceeds what the device has available is refused before
    anything is loaded (:func:`check_memory`), unless not ``memory_check``.
    """
    run = schema.collect(settings, "api")
    force, long = run["force"], run["long"]
    if not edits:
        raise InputError("no edits requested")
    targets_out = [Path(e.out) for e in edits if e.out is not None]
    if len(set(targets_out)) != len(targets_out):
        raise InputError("two edits would write the same output file")
    for spec in edits:
        if spec.out is not None:
            video.check_video_output(spec.out, force)
            check_folder(Path(spec.out).parent, "output folder")
        d = spec.frames_dir
        if d is not None and Path(d).exists() and any(Path(d).iterdir()) and not force:
            raise InputError(f"{d} exists and is not empty; pass --force to overwrite it")
        if d is not None:
            check_folder(Path(d), "--frames-dir", create=True)
    if run.cache() not in (True, False):
        check_folder(Path(run.cache()), "--cache-dir", create=True)

    defaults = _defaults(backbone)
    stored = InversionResult.load(inversion) if isinstance(inversion, (str, os.PathLike)) else inversion
    n_frames, size, fps = run["num_frames"], run["size"], run["fps"]
    if stored is not None:
        if long:
            raise InputError("--long inverts every window itself; it cannot reuse --inversion")
        n_frames = stored.clip.n_frames if n_frames is None else n_frames
        size = stored.clip.size if size is None else size
        fps = stored.clip.fps if fps is None else fps
    clip = clip_spec(defaults, n_frames, size, fps)
    _check_clip(backbone, clip)
    _check_solver(backbone, run, defaults)
    steps = run["steps"] or defaults.steps
    t_idx = defaults.t_idx if run["t_idx"] is None else run["t_idx"]
    if t_idx >= steps:
        raise InputError(f"t_idx must be below steps ({steps}), got {t_idx}")
    if run["memory_check"]:
        check_memory(backbone, model, clip, device=run["device"], dtype=run["dtype"], steps=steps,
                     cfg=defaults.cfg if run["cfg"] is None else run["cfg"],
                     edits_per_batch=min(len(edits), run["max_batch"] or len(edits)),
                     memory=MemoryOptions(**run.group("memory")))
    resize_mode, out_size, selection = run["resize_mode"], run["out_size"], run.frame_range()
    raw = video.read_frames(source, None if long else clip.n_frames, selection, mixed_sizes=run["mixed_sizes"])
    windows = plan_windows(len(raw), clip.n_frames, run["overlap"]) if long else [0]
    frames_all = [video.fit(f, clip.size, resize_mode) for f in raw]
    source_size = raw[0].size
    final_size = source_size if out_size == "source" else (tuple(out_size) if out_size else clip.size)

    # Stage 1: each first-frame edit, the editor loaded once, given the frame at its own resolution.
    t0 = time.perf_counter()
    device, dtype = run["device"], run["dtype"]
    need_editor = [spec for spec in edits if spec.edited_image is None]
    if isinstance(editor, str):
        requests = [spec.request if spec.edited_image is not None else prepare_request(editor, spec.request)
                    for spec in edits]
        ed = load_editor(editor, device=device, dtype=dtype) if need_editor else None
    else:
        requests, ed = [spec.request for spec in edits], editor
    edited_firsts = [
        video.fit((spec.edited_image if spec.edited_image is not None else ed.edit(raw[0], r)).convert("RGB"),
                  clip.size, resize_mode)
        for spec, r in zip(edits, requests)
    ]
    del ed
    editor_time = time.perf_counter() - t0

    # Stage 2: per window, invert (or reuse) once, then sample all edits.
    bb = _backbone(backbone, model, device, dtype, _memory(run, backbone), backbone_options)
    opts = EditOptions(**{k: v for k, v in run.group("sampling").items() if k != "seed"}).resolve(bb.defaults)
    inversion_options = _inversion_options(run, bb.defaults)
    cache = run.cache()
    # the inverted latents the edit reads (its timesteps; --compat official may add others)
    needed = sampling.plan(bb, opts, inversion_options.resolve(bb.defaults).steps).needed
    k_edits = len(edits)
    outputs: list[list[Image.Image]] = [[] for _ in range(k_edits)]
    timings = {"editor": editor_time, "invert": 0.0, "edit": 0.0, "decode": 0.0}
    stats = sampling.SamplingStats()
    reused_all = True
    firsts = edited_firsts
    inv = None
    for w, start in enumerate(windows):
        frames = frames_all[start : start + clip.n_frames]
        if w:
            firsts = [outputs[k][start] for k in range(k_edits)]  # the previous window's frame at the seam
        if progress and long:
            progress("windows", w, len(windows))
        t0 = time.perf_counter()
        if stored is not None:
            stored.check_compatible(bb.name, bb.model_id, clip)
            if stored.source_digest != frame_digest(frames[0]):
                raise InversionMismatchError("the inversion was made from a different source video (first frames differ)")
            needed_stored = sampling.plan(bb, opts, stored.steps).needed
            if opts.compat != "default" and not set(needed_stored) <= set(stored.latents):
                raise InversionMismatchError(
                    f"the inversion has no latent at timestep(s) "
                    f"{', '.join(str(t) for t in needed_stored if t not in stored.latents)}, which a --compat "
                    f"{opts.compat} edit reads; make it with `anyv2v invert --compat {opts.compat}`")
            stored.require(needed_stored)
            inv, reused = stored, True
        else:
            inv, reused = obtain_inversion(bb, frames, clip, inversion_options, needed, cache, progress)
        reused_all = reused_all and reused
        timings["invert"] += time.perf_counter() - t0

        targets = [sampling.EditTarget(f, spec.prompt, r.seed) for f, spec, r in zip(firsts, edits, requests)]
        group = run["max_batch"] or k_edits
        for g in range(0, k_edits, group):
            t0 = time.perf_counter()
            latents = sampling.pnp_sample_many(bb, inv, frames[0], targets[g : g + group], clip, opts,
                                               progress=progress, stats=stats)
            timings["edit"] += time.perf_counter() - t0
            for k, lat in enumerate(latents, start=g):
                t0 = time.perf_counter()
                images = to_images(bb.decode_video(lat))
                timings["decode"] += time.perf_counter() - t0
                _merge_window(outputs[k], images, start)

    if progress and long:
        progress("windows", len(windows), len(windows))
    results = []
    for k, (spec, req) in enumerate(zip(edits, requests)):
        images = [video.unfit(f, source_size, final_size, resize_mode) for f in outputs[k]]
        result = EditResult(images, edited_firsts[k], inv, clip, opts, spec.prompt, req.seed,
                            inversion_reused=reused_all, timings=dict(timings), stats=stats)
        if spec.out is not None:
            audio = None
            if run["audio"]:
                start_frame, _ = selection.bounds(video.video_fps(source))
                audio = (source, start_frame / (video.video_fps(source) or clip.fps))
            result.out = video.write_video(images, spec.out, clip.fps, force=force, audio=audio)
        if spec.frames_dir is not None:
            result.frames_dir = video.write_frames_dir(images, spec.frames_dir, force=force)
        results.append(result)
    return results


def _merge_window(acc: "list[Image.Image]", images: "list[Image.Image]", start: int) -> None:
    """Append a window's frames at ``start``; frames overlapping what ``acc`` already holds
    are blended, the new window's weight rising linearly across the overlap."""
    from PIL import Image

    overlap = len(acc) - start
    for j, image in enumerate(images):
        index = start + j
        if index < len(acc):
            alpha = (j + 1) / (overlap + 1)
            acc[index] = Image.blend(acc[index], image, alpha)
        else:
            acc.append(image)


def to_images(frames: "torch.Tensor") -> list["Image.Image"]:
    """``(F, H, W, 3)`` floats in [0, 1] to PIL images (rounded as diffusers does)."""
    import numpy as np
    from PIL import Image

    arr = (frames.float().cpu().numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in arr]
