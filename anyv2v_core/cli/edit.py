"""``anyv2v edit``, ``edit-frame``, ``invert``, ``editors``, ``plugins`` and ``selftest``.

Thin: parse, call :mod:`anyv2v_core.api`, print. The run settings' options come from
:mod:`anyv2v_core.settings` (``with_settings``); editor and backbone options follow as extra
``--name value`` arguments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ..console import err, out, progress_bars
from ..errors import InputError
from ..settings import DEFAULT_BACKBONE, DEFAULT_EDITOR
from .app import app, with_settings

EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
BackboneOpt = typer.Option(DEFAULT_BACKBONE, "--backbone", "-b", help="Image-to-video backbone (see `anyv2v plugins`).")
ModelOpt = typer.Option(None, "--model", "-m", help="Backbone weights: a local diffusers-layout folder or a hub id "
                        "(default: the backbone's official weights).")
EditorOpt = typer.Option(DEFAULT_EDITOR, "--editor", help="First-frame editor (see `anyv2v editors`). Its own options "
                         "(e.g. --instruction, --style-image) follow as extra --name value pairs.")


def extra_options(ctx: typer.Context, editor: Optional[str], backbone: Optional[str]) -> tuple[dict, dict]:
    """The extra ``--name value`` arguments, split into the editor's and the backbone's."""
    from ..editor_options import split_extras
    from ..plugins import get_registry

    reg = get_registry()
    parties = {}
    if editor is not None:
        parties[f"editor '{editor}'"] = reg.editor(editor).options
    if backbone is not None:
        parties[f"backbone '{backbone}'"] = reg.backbone(backbone).options
    values = split_extras(ctx.args, parties)
    return (values.get(f"editor '{editor}'", {}), values.get(f"backbone '{backbone}'", {}))


def parse_seeds(value: Optional[str]) -> list[int]:
    if not value:
        return []
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--seeds takes comma-separated integers, got {value!r}") from None


@app.command(context_settings=EXTRA)
@with_settings("edit")
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
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Several edits, one per seed: 1,2,3."),
    **settings: Any,
) -> None:
    """Edit SOURCE: edit its first frame, then propagate the edit through the clip.

    Several edits of one video in one run share the inversion and the source branch:
    repeat --edited-frame / --prompt / an editor option, or give --seeds."""
    from ..api import broadcast, edit_many

    editor_values, backbone_values = extra_options(ctx, editor, backbone)
    seed = settings.pop("seed")
    specs = broadcast(list(prompt), edited_frames=list(edited_frame), seeds=parse_seeds(seeds) or [seed],
                      options=editor_values, out=output, frames_dir=frames_dir)
    with progress_bars() as progress:
        for spec in specs:
            spec.request.progress = progress
        results = edit_many(source, specs, editor=editor, backbone=backbone, model=model, inversion=inversion,
                            backbone_options=backbone_values, progress=progress, **settings)
    first = results[0]
    how = "reused" if first.inversion_reused else f"{first.timings.get('invert', 0):.1f}s"
    err.print(f"inversion {how}, sampling {first.timings['edit']:.1f}s "
              f"({first.stats.denoiser_calls if first.stats else 0} denoiser calls)")
    for r in results:
        out.print(f"wrote {r.out} ({len(r.frames)} frames, {r.clip.width}x{r.clip.height}, {r.clip.fps} fps)")
        if r.frames_dir:
            out.print(f"wrote frames to {r.frames_dir}")


@app.command("edit-frame", context_settings=EXTRA)
@with_settings("edit-frame")
def edit_frame(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Source video or folder of frames (its first frame is edited)."),
    output: Path = typer.Option(..., "--out", "-o", help="Where to save the edited frame (.png, .jpg, .webp)."),
    editor: str = EditorOpt,
    prompt: str = typer.Option("", "--prompt", "-p", help="The video prompt (some editors use it)."),
    edited_frame: Optional[Path] = typer.Option(None, "--edited-frame", "-e", help="Your edited first frame "
                                                "(for --editor image)."),
    **settings: Any,
) -> None:
    """Stage 1 only: edit the first frame and save it, to inspect or retry before the video
    stage (then `anyv2v edit SOURCE --edited-frame OUT ...`)."""
    from ..api import broadcast
    from ..api import edit_frame as run_edit_frame

    editor_values, _ = extra_options(ctx, editor, None)
    specs = broadcast([prompt], edited_frames=[edited_frame] if edited_frame else [], seeds=[settings["seed"]],
                      options=editor_values)
    if len(specs) != 1:
        raise InputError("this command makes one edit: give each option once")
    request = specs[0].request
    with progress_bars() as progress:
        request.progress = progress
        image = run_edit_frame(source, editor=editor, request=request, out=output, force=settings["force"],
                               device=settings["device"], dtype=settings["dtype"])
    out.print(f"wrote {output} ({image.width}x{image.height})")


@app.command(context_settings=EXTRA)
@with_settings("invert")
def invert(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Source video or folder of frames."),
    output: Path = typer.Option(..., "--out", "-o", help="Where to save the inversion (.safetensors)."),
    backbone: str = BackboneOpt,
    model: Optional[str] = ModelOpt,
    **settings: Any,
) -> None:
    """DDIM-invert SOURCE once and save it; `anyv2v edit --inversion FILE` reuses it (the
    latents kept are those of the --steps schedule)."""
    from ..api import invert as run_invert

    _, backbone_values = extra_options(ctx, None, backbone)
    with progress_bars() as progress:
        result = run_invert(source, backbone=backbone, model=model, out=output, backbone_options=backbone_values,
                            progress=progress, **settings)
    out.print(f"wrote {output} ({len(result.latents)} latents, {result.steps} inversion steps)")


@app.command()
def editors(name: Optional[str] = typer.Argument(None, help="Show this editor's options.")) -> None:
    """List the editors and the options each declares."""
    from rich.table import Table

    from ..plugins import get_registry

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


@app.command()
def plugins(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the loaded editors and backbones, and plugins that failed to load."""
    from ..plugins import get_registry

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
def selftest(
    backbone: str = BackboneOpt,
    keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the tiny model, clip and result in this folder."),
) -> None:
    """Run a whole edit on a tiny random model built on the spot (offline, CPU, seconds)."""
    from ..testing.selftest import run_selftest

    with progress_bars() as progress:
        report = run_selftest(backbone, keep=keep, progress=progress)
    out.print(report)
