"""The ``anyv2v`` command line. Thin: parse, call :mod:`anyv2v_core.api`, print.

User mistakes print one line and exit with code 2; unexpected errors exit with 1;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .errors import AnyV2VError, InputError
from .video import parse_size

app = typer.Typer(
    name="anyv2v",
    help="Edit a video by editing its first frame: an image editor changes frame 0, an image-to-video "
    "model propagates the change through the clip (AnyV2V).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"anyv2v {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and library logs."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug
    if not debug:
        import logging
        import os

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        logging.getLogger("diffusers").setLevel(logging.ERROR)
        logging.getLogger("transformers").setLevel(logging.ERROR)


def handle_errors(func: Callable) -> Callable:
    """One line for user errors (exit 2) and for bugs (exit 1); tracebacks with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except AnyV2VError as exc:
            if _state["debug"]:
                raise
            err.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[red]Interrupted.[/]")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001
            if _state["debug"]:
                raise
            err.print(
                f"[bold red]Error:[/] unexpected {type(exc).__name__}: {escape(str(exc))} (run `anyv2v --debug ...` for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(stage, done, total)`` callback drawing one rich bar per stage."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    labels = {"invert": "DDIM inversion", "edit": "PnP sampling", "windows": "Windows"}
    progress = Progress(
        TextColumn("{task.description:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if not tasks:
            progress.start()  # lazily: a command that reports nothing prints nothing
        if stage not in tasks:
            tasks[stage] = progress.add_task(labels.get(stage, stage), total=total)
        progress.update(tasks[stage], completed=done, total=total)

    try:
        yield update
    finally:
        if tasks:
            progress.stop()


# -- shared options ---------------------------------------------------------------------
BackboneOpt = typer.Option("i2vgenxl", "--backbone", "-b", help="Image-to-video backbone (see `anyv2v plugins`).")
ModelOpt = typer.Option(None, "--model", "-m", help="Backbone weights: a local diffusers-layout folder or a hub id "
                        "(default: the backbone's official weights).")
FramesOpt = typer.Option(None, "--num-frames", "-n", help="Frames to edit, from the start of the clip "
                         "(default: the backbone's, 16 for i2vgenxl).")
SizeOpt = typer.Option(None, "--size", help="Working size WxH, frames resized with LANCZOS (default 512x512).")
FpsOpt = typer.Option(None, "--fps", help="Output frame rate and fps micro-condition (default 8).")
InvStepsOpt = typer.Option(None, "--inversion-steps", help="DDIM inversion steps (default: the backbone's; 500).")
DeviceOpt = typer.Option("auto", "--device", help="cpu, cuda, cuda:1, ... (auto: cuda if available).")
DtypeOpt = typer.Option("auto", "--dtype", help="float32, float16, bfloat16 (auto: float16 on cuda, else float32).")
ForceOpt = typer.Option(False, "--force", "-f", help="Overwrite existing outputs.")
VaeChunkOpt = typer.Option(1, "--vae-chunk", help="Frames per VAE call (1: the reference; more is faster).")
VaeTilingOpt = typer.Option(False, "--vae-tiling", help="Tiled VAE decoding (less memory for large frames).")
OffloadOpt = typer.Option(False, "--offload", help="Keep encoders and VAE on the CPU except while they run.")
ChannelsLastOpt = typer.Option(False, "--channels-last", help="channels-last memory format for the denoiser.")
NoCacheOpt = typer.Option(False, "--no-cache", help="Neither read nor write the inversion cache.")
CacheDirOpt = typer.Option(None, "--cache-dir", help="Inversion cache folder (default: $ANYV2V_CACHE or "
                           "~/.cache/anyv2v/inversions).")
InvSolverOpt = typer.Option(None, "--inversion-solver", help="Inversion solver (default: the backbone's): ddim for "
                            "DDIM backbones; euler, midpoint or fireflow for flow-matching ones (wan).")


def memory_options(vae_chunk: int, vae_tiling: bool, offload: bool, channels_last: bool):
    from .protocols import MemoryOptions

    return MemoryOptions(vae_chunk=vae_chunk, vae_tiling=vae_tiling, offload=offload, channels_last=channels_last)


EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
EditorOpt = typer.Option("image", "--editor", help="First-frame editor (see `anyv2v editors`). Its own options "
                         "(e.g. --instruction, --style-image) follow as extra --name value pairs.")
EditedFrameOpt = typer.Option(None, "--edited-frame", "-e", help="Your edited first frame (for --editor image).")


def editor_request(ctx: typer.Context, editor: str, prompt: str, edited_frame: Optional[Path], seed: int):
    """The EditRequest with the editor's own options parsed from the extra arguments."""
    requests = editor_requests(ctx, editor, [prompt], [edited_frame] if edited_frame else [], [seed])
    if len(requests) != 1:
        raise InputError("this command makes one edit: give each option once")
    return requests[0]


def backbone_extras(ctx: typer.Context, editor: Optional[str], backbone: str) -> tuple[dict, dict]:
    """The extra ``--name value`` arguments, split into the editor's and the backbone's."""
    from .editor_options import split_extras
    from .plugins import get_registry

    reg = get_registry()
    parties = {}
    if editor is not None:
        parties[f"editor '{editor}'"] = reg.editor(editor).options
    parties[f"backbone '{backbone}'"] = reg.backbone(backbone).options
    values = split_extras(ctx.args, parties)
    editor_values = values.get(f"editor '{editor}'", {}) if editor is not None else {}
    return editor_values, values[f"backbone '{backbone}'"]


def editor_requests(ctx: typer.Context, editor: str, prompts: list, edited_frames: list, seeds: list,
                    options: Optional[dict] = None) -> list:
    """One EditRequest per edit. Every per-edit value (--prompt, --edited-frame, --seeds,
    a repeated editor option) is given once (shared) or K times (one per edit)."""
    from .editor_options import parse_cli_args
    from .plugins import get_registry
    from .protocols import EditRequest

    if options is None:
        options = parse_cli_args(editor, get_registry().editor(editor).options, ctx.args)
    lists = {"--prompt": prompts, "--edited-frame": edited_frames, "--seeds": seeds}
    lists.update({f"--{k.replace('_', '-')}": v for k, v in options.items() if isinstance(v, list)})
    counts = {name: len(v) for name, v in lists.items() if len(v) > 1}
    k = max(counts.values(), default=1)
    if any(c != k for c in counts.values()):
        given = ", ".join(f"{c} x {name}" for name, c in counts.items())
        raise InputError(f"per-edit values must come once or once per edit; got {given}")

    def pick(values: list, i: int):
        return values[i] if len(values) > 1 else (values[0] if values else None)

    return [
        EditRequest(prompt=pick(prompts, i) or "", edited_frame=pick(edited_frames, i), seed=pick(seeds, i),
                    options={key: pick(v, i) if isinstance(v, list) else v for key, v in options.items()})
        for i in range(k)
    ]


def apply_preset(preset: str, backbone: str, steps: Optional[int], inversion_steps: Optional[int]) -> Optional[int]:
    """The inversion steps a preset implies (an explicit --inversion-steps wins)."""
    if preset == "default":
        return inversion_steps
    if preset != "fast":
        raise InputError(f"unknown --preset {preset!r}; use default or fast")
    if inversion_steps is not None:
        return inversion_steps
    from .plugins import get_registry

    return steps or get_registry().backbone(backbone).load().defaults.steps


def numbered(path: Optional[Path], i: int, k: int) -> Optional[Path]:
    """``edited.mp4`` -> ``edited-0.mp4`` ... when a run makes several edits."""
    if path is None or k == 1:
        return path
    return path.with_name(f"{path.stem}-{i}{path.suffix}")


def parse_seeds(value: Optional[str], seed: int) -> list[int]:
    if not value:
        return [seed]
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--seeds takes comma-separated integers, got {value!r}") from None


@app.command(context_settings=EXTRA)
@handle_errors
def edit(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Source video (mp4, mov, webm, ...) or a folder of frames."),
    prompt: list[str] = typer.Option(..., "--prompt", "-p", help="Prompt describing the edited video "
                                     "(repeat for several edits)."),
    edited_frame: list[Path] = typer.Option([], "--edited-frame", "-e", help="Your edited first frame, for "
                                            "--editor image (repeat for several edits)."),
    editor: str = EditorOpt,
    backbone: str = BackboneOpt,
    model: Optional[str] = ModelOpt,
    output: Path = typer.Option(Path("edited.mp4"), "--out", "-o", help="Output mp4 (several edits: NAME-0.mp4, ...)."),
    frames_dir: Optional[Path] = typer.Option(None, "--frames-dir", help="Also write the edited frames as PNGs here."),
    inversion: Optional[Path] = typer.Option(None, "--inversion", help="Reuse an inversion saved by `anyv2v invert`."),
    seed: int = typer.Option(8888, "--seed", help="Seed of every random draw (noise blend, stochastic editors)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Several edits, one per seed: 1,2,3."),
    max_batch: int = typer.Option(8, "--max-batch", help="At most this many edits per denoiser batch (1 + 2N "
                                  "branches; 8 fits I2VGen-XL 512x512x16 fp16 in 24 GB, see docs/performance.md)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps T of the full schedule (default: the backbone's; i2vgenxl 50)."),
    inversion_steps: Optional[int] = InvStepsOpt,
    inversion_solver: Optional[str] = InvSolverOpt,
    t_idx: Optional[int] = typer.Option(None, "--t-idx", help="Start index into the T-step schedule (default: the backbone's; i2vgenxl 1, t=961)."),
    tau_conv: Optional[float] = typer.Option(None, "--tau-conv", help="Fraction of T with conv injection (default 0.2)."),
    tau_sa: Optional[float] = typer.Option(None, "--tau-sa", help="Fraction of T with spatial-attention Q/K injection (0.2)."),
    tau_ta: Optional[float] = typer.Option(None, "--tau-ta", help="Fraction of T with temporal-attention Q/K injection (0.5)."),
    tau_ca: Optional[float] = typer.Option(None, "--tau-ca", help="Fraction of T with cross-attention Q/K injection, for "
                                           "backbones that offer it (default 0)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Classifier-free guidance scale (default: the backbone's; i2vgenxl 9)."),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="Negative prompt (default: the reference's)."),
    random_ratio: float = typer.Option(0.0, "--random-ratio", min=0.0, max=1.0, help="Blend of fresh noise into the inverted latent."),
    sampler: str = typer.Option("ddim", "--sampler", help="Edit sampler: ddim (the paper's; a flow backbone's Euler) or one the backbone offers (wan: midpoint, fireflow)."),
    num_frames: Optional[int] = FramesOpt,
    size: Optional[str] = SizeOpt,
    fps: Optional[int] = FpsOpt,
    start: str = typer.Option("0", "--start", help="First source frame: an index (12) or a time (1.5s)."),
    end: Optional[str] = typer.Option(None, "--end", help="Stop before this frame index or time."),
    stride: int = typer.Option(1, "--stride", help="Take every N-th source frame."),
    resize_mode: str = typer.Option("stretch", "--resize-mode", help="stretch (the reference's), crop or pad to --size."),
    out_size: Optional[str] = typer.Option(None, "--out-size", help="Output size WxH, or 'source' (default: --size)."),
    long: bool = typer.Option(False, "--long", help="Edit a clip longer than the backbone's window in overlapping "
                              "windows (see docs/long-videos.md)."),
    overlap: int = typer.Option(1, "--overlap", help="Frames shared by consecutive --long windows."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Do not copy the source's audio track."),
    preset: str = typer.Option("default", "--preset", help="default: the paper's settings; fast: invert with as "
                               "many steps as the edit (latents exactly on the edit grid; see docs/performance.md)."),
    no_cache: bool = NoCacheOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    vae_chunk: int = VaeChunkOpt,
    vae_tiling: bool = VaeTilingOpt,
    offload: bool = OffloadOpt,
    channels_last: bool = ChannelsLastOpt,
    force: bool = ForceOpt,
) -> None:
    """Edit SOURCE: edit its first frame, then propagate the edit through the clip.

    Several edits of one video in one run share the inversion and the source branch:
    repeat --edited-frame / --prompt / an editor option, or give --seeds."""
    from .api import EditSpec, edit_many
    from .protocols import EditOptions, InversionOptions
    from .video import FrameRange

    options = EditOptions(steps=steps, t_idx=t_idx, cfg=cfg, tau_conv=tau_conv, tau_sa=tau_sa, tau_ta=tau_ta,
                          tau_ca=tau_ca, negative_prompt=negative_prompt, random_ratio=random_ratio, seed=seed,
                          sampler=sampler)
    inversion_steps = apply_preset(preset, backbone, steps, inversion_steps)
    editor_values, backbone_values = backbone_extras(ctx, editor, backbone)
    requests = editor_requests(ctx, editor, list(prompt), list(edited_frame), parse_seeds(seeds, seed), editor_values)
    k = len(requests)
    specs = [EditSpec(r.prompt, r, numbered(output, i, k), numbered(frames_dir, i, k)) for i, r in enumerate(requests)]
    with progress_bars() as progress:
        for r in requests:
            r.progress = progress
        results = edit_many(
            source, specs, editor=editor, backbone=backbone, model=model, inversion=inversion, n_frames=num_frames,
            size=parse_size(size), fps=fps, selection=FrameRange(start, end, stride), resize_mode=resize_mode,
            out_size=out_size if out_size == "source" else parse_size(out_size, "--out-size"), long=long, overlap=overlap,
            keep_audio=not no_audio, backbone_options=backbone_values, options=options, inversion_options=InversionOptions(steps=inversion_steps, solver=inversion_solver),
            cache=False if no_cache else (cache_dir or True), max_batch=max_batch, force=force, device=device,
            dtype=dtype, memory=memory_options(vae_chunk, vae_tiling, offload, channels_last), progress=progress,
        )
    first = results[0]
    how = "reused" if first.inversion_reused else f"{first.timings.get('invert', 0):.1f}s"
    err.print(f"inversion {how}, sampling {sum(r.timings['edit'] for r in results):.1f}s "
              f"({first.stats.denoiser_calls if first.stats else 0} denoiser calls per batch)")
    for r in results:
        out.print(f"wrote {r.out} ({len(r.frames)} frames, {r.clip.width}x{r.clip.height}, {r.clip.fps} fps)")
        if r.frames_dir:
            out.print(f"wrote frames to {r.frames_dir}")


@app.command("edit-frame", context_settings=EXTRA)
@handle_errors
def edit_frame(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Source video or folder of frames (its first frame is edited)."),
    output: Path = typer.Option(..., "--out", "-o", help="Where to save the edited frame (.png, .jpg, .webp)."),
    editor: str = EditorOpt,
    prompt: str = typer.Option("", "--prompt", "-p", help="The video prompt (some editors use it)."),
    edited_frame: Optional[Path] = EditedFrameOpt,
    seed: int = typer.Option(8888, "--seed", help="Seed of the editor's random draws."),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    force: bool = ForceOpt,
) -> None:
    """Stage 1 only: edit the first frame and save it, to inspect or retry before the video
    stage (then `anyv2v edit SOURCE --edited-frame OUT ...`)."""
    from .api import edit_frame as run_edit_frame

    request = editor_request(ctx, editor, prompt, edited_frame, seed)
    with progress_bars() as progress:
        request.progress = progress
        image = run_edit_frame(source, editor=editor, request=request, out=output, force=force, device=device,
                               dtype=dtype)
    out.print(f"wrote {output} ({image.width}x{image.height})")


@app.command()
@handle_errors
def editors(name: Optional[str] = typer.Argument(None, help="Show this editor's options.")) -> None:
    """List the editors and the options each declares."""
    from rich.table import Table

    from .plugins import get_registry

    reg = get_registry()
    comps = [reg.editor(name)] if name else list(reg.editors.values())
    for comp in comps:
        out.print(f"[bold]{comp.name}[/] ({comp.plugin.package} {comp.plugin.version}): {comp.description}")
        if not comp.options:
            out.print("  no options of its own")
            continue
        table = Table("option", "type", "default", "help", box=None, padding=(0, 2))
        table.columns[0].overflow = "fold"
        table.columns[0].no_wrap = True
        for o in comp.options:
            table.add_row(o.flag + (" (required)" if o.required else ""), o.type,
                          "" if o.default is None else str(o.default), o.help)
        out.print(table)


@app.command(context_settings=EXTRA)
@handle_errors
def invert(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Source video or folder of frames."),
    output: Path = typer.Option(..., "--out", "-o", help="Where to save the inversion (.safetensors)."),
    backbone: str = BackboneOpt,
    model: Optional[str] = ModelOpt,
    inversion_steps: Optional[int] = InvStepsOpt,
    inversion_solver: Optional[str] = InvSolverOpt,
    steps: Optional[int] = typer.Option(None, "--steps", help="Keep the latents of this edit schedule (default 50)."),
    num_frames: Optional[int] = FramesOpt,
    size: Optional[str] = SizeOpt,
    fps: Optional[int] = FpsOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    vae_chunk: int = VaeChunkOpt,
    offload: bool = OffloadOpt,
    force: bool = ForceOpt,
) -> None:
    """DDIM-invert SOURCE once and save it; `anyv2v edit --inversion FILE` reuses it."""
    from .api import invert as run_invert
    from .protocols import InversionOptions

    with progress_bars() as progress:
        result = run_invert(
            source, backbone=backbone, model=model, n_frames=num_frames, size=parse_size(size), fps=fps,
            options=InversionOptions(steps=inversion_steps, solver=inversion_solver), edit_steps=steps, out=output, force=force,
            backbone_options=backbone_extras(ctx, None, backbone)[1],
            device=device, dtype=dtype, memory=memory_options(vae_chunk, False, offload, False), progress=progress,
        )
    out.print(f"wrote {output} ({len(result.latents)} latents, {result.steps} inversion steps)")


@app.command()
@handle_errors
def plugins(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the loaded editors and backbones, and plugins that failed to load."""
    from .plugins import get_registry

    reg = get_registry()
    rows = [
        {"kind": c.kind, "name": c.name, "package": c.plugin.package, "version": c.plugin.version,
         "description": c.description, "options": [o.flag for o in c.options]}
        for c in [*reg.editors.values(), *reg.backbones.values()]
    ]
    failures = [f.__dict__ for f in reg.failures]
    if as_json:
        print(json.dumps({"components": rows, "failures": failures}, indent=2))
        return
    from rich.table import Table

    table = Table("kind", "name", "package", "version", "options", "description")
    for r in rows:
        table.add_row(r["kind"], r["name"], r["package"], r["version"], " ".join(r["options"]), r["description"])
    out.print(table)
    for f in reg.failures:
        err.print(f"[red]failed:[/] plugin {f.plugin} ({f.package} {f.version}): {f.error}", highlight=False)


@app.command()
@handle_errors
def selftest(
    backbone: str = BackboneOpt,
    keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the tiny model, clip and result in this folder."),
) -> None:
    """Run a whole edit on a tiny random model built on the spot (offline, CPU, seconds)."""
    from .testing.selftest import run_selftest

    with progress_bars() as progress:
        report = run_selftest(backbone, keep=keep, progress=progress)
    out.print(report)


def parse_models(values: list[str], backbone: str) -> dict[str, str]:
    """``--model PATH`` (for ``backbone``) or ``--model NAME=PATH`` (repeatable)."""
    models: dict[str, str] = {}
    for value in values:
        name, sep, model = value.partition("=")
        if not sep or "/" in name or not name:  # a path or hub id may contain '=' only after a '/'
            name, model = backbone, value
        if not model:
            raise InputError(f"--model {value!r}: give a folder or hub id (NAME=PATH or PATH)")
        models[name] = model
    return models


@app.command()
@handle_errors
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (0.0.0.0 exposes the app to your "
                             "network: it has no login)."),
    port: int = typer.Option(7860, "--port", help="Port to serve on."),
    backbone: str = typer.Option("i2vgenxl", "--backbone", "-b", help="Backbone selected when the page opens."),
    editor: str = typer.Option("image", "--editor", help="Editor selected when the page opens."),
    model: list[str] = typer.Option([], "--model", "-m", metavar="PATH|NAME=PATH", help="Weights of a backbone: PATH (for --backbone) or "
                                    "NAME=PATH; repeatable. Shown (and editable) in the page."),
    out_dir: Path = typer.Option(Path("anyv2v-ui-out"), "--out-dir", "-o", help="Folder for the generated videos "
                                 "(new files only, nothing overwritten)."),
    max_pipelines: int = typer.Option(2, "--max-pipelines", help="Backbones (and editors) kept loaded at once; "
                                      "the least recently used one is unloaded beyond this."),
    no_cache: bool = NoCacheOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Serve the web UI (Gradio): upload a video, edit its first frame, generate the edited video."""
    from .plugins import get_registry
    from .ui import EngineSettings, require_gradio, serve

    require_gradio()
    reg = get_registry()
    reg.backbone(backbone)  # unknown names: the registry's one-line error
    reg.editor(editor)
    if max_pipelines < 1:
        raise InputError("--max-pipelines must be at least 1")
    models = parse_models(model, backbone)
    for name in models:
        reg.backbone(name)
    settings = EngineSettings(out_dir=out_dir.resolve(), device=device, dtype=dtype,
                              cache=False if no_cache else (cache_dir or True), models=models,
                              max_pipelines=max_pipelines)
    err.print(f"AnyV2V UI on http://{host}:{port} (outputs in {settings.out_dir}); Ctrl-C to stop", highlight=False)
    import logging

    ui_log = logging.getLogger("anyv2v.ui")  # the server log: refused requests, failures with tracebacks
    if not ui_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        ui_log.addHandler(handler)
    ui_log.setLevel(logging.INFO)
    ui_log.propagate = False
    serve(settings, host=host, port=port, backbone=backbone, editor=editor)


cache_app = typer.Typer(help="Inspect and clean the inversion cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def parse_bytes(value: str) -> int:
    units = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}
    text = value.strip().lower().replace(" ", "")
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)]) * units[unit])
            except ValueError:
                break
    try:
        return int(text)
    except ValueError:
        raise InputError(f"--max-size takes a size like 10GB or 500MB, got {value!r}") from None


def parse_age(value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value) * 86400
    except (ValueError, IndexError):
        raise InputError(f"--older-than takes an age like 30d, 12h or 90m, got {value!r}") from None


@cache_app.command("ls")
@handle_errors
def cache_ls(cache_dir: Optional[Path] = CacheDirOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """List cached inversions."""
    import time

    from .cache import InversionCache

    store = InversionCache(cache_dir)
    entries = store.entries()
    if as_json:
        print(json.dumps([e.__dict__ for e in entries], indent=2))
        return
    from rich.table import Table

    table = Table("id", "backbone", "frames", "size", "steps", "latents", "bytes", "last used")
    for e in entries:
        k = e.key
        table.add_row(e.digest[:12], k["backbone"], str(k["n_frames"]), f"{k['width']}x{k['height']}", str(k["steps"]),
                      str(len(e.timesteps)), _human(e.bytes), f"{(time.time() - e.last_used) / 3600:.1f} h ago")
    out.print(table)
    out.print(f"{len(entries)} entries, {_human(sum(e.bytes for e in entries))} in {store.root}")


@cache_app.command("rm")
@handle_errors
def cache_rm(
    ids: list[str] = typer.Argument(None, help="Entry ids (a unique prefix is enough)."),
    all_: bool = typer.Option(False, "--all", help="Remove every entry."),
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Remove cached inversions."""
    from .cache import InversionCache

    store = InversionCache(cache_dir)
    digests = [e.digest for e in store.entries()]
    if all_:
        chosen = digests
    else:
        if not ids:
            raise InputError("name entries to remove (see `anyv2v cache ls`) or pass --all")
        chosen = []
        for prefix in ids:
            hits = [d for d in digests if d.startswith(prefix)]
            if len(hits) != 1:
                raise InputError(f"{prefix!r} matches {len(hits)} cache entries; give a unique prefix")
            chosen.append(hits[0])
    for d in chosen:
        store.remove(d)
    out.print(f"removed {len(chosen)} entries")


@cache_app.command("prune")
@handle_errors
def cache_prune(
    max_size: Optional[str] = typer.Option(None, "--max-size", help="Keep at most this much (e.g. 10GB), LRU first out."),
    older_than: Optional[str] = typer.Option(None, "--older-than", help="Remove entries unused for this long (30d, 12h)."),
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Remove old or excess cached inversions (and orphaned files)."""
    from .cache import InversionCache

    store = InversionCache(cache_dir)
    removed = store.prune(parse_bytes(max_size) if max_size else None, parse_age(older_than) if older_than else None)
    out.print(f"removed {len(removed)} entries")


from . import cli_extra  # noqa: E402  (eval, batch)

cli_extra.register(app)


def _register_plugin_commands() -> None:
    from .plugins import get_registry

    get_registry().register_commands(app)


def main() -> None:
    _register_plugin_commands()
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
