"""``anyv2v manifest from-anyv2v | from-tgve | from-five``: batch manifests from public
benchmark layouts (the readers are in :mod:`anyv2v_core.manifests`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..console import out
from ..manifests import TGVE_KINDS, convert, read_anyv2v, read_five, read_tgve
from .app import app

sub = typer.Typer(help="Write `anyv2v batch` manifests from public benchmark layouts.", no_args_is_help=True)
OutOpt = typer.Option(..., "--out", "-o", help="The manifest to write (JSONL).")
FramesOpt = typer.Option(None, "--edited-frames", help="Folder of your edited first frames, <id>.png per item.")
EditorOpt = typer.Option(None, "--editor", help="Image editor that makes the first frames instead "
                         "(e.g. instructpix2pix).")
BackboneOpt = typer.Option(None, "--backbone", "-b", help="Backbone of every item (default: batch's default).")
ModelOpt = typer.Option(None, "--model", "-m", help="Backbone weights of every item (folder or hub id).")
ForceOpt = typer.Option(False, "--force", "-f", help="Overwrite the manifest.")


def done(path: Path, count: int) -> None:
    out.print(f"wrote {count} items to {path}; run them with: anyv2v batch {path} --eval", highlight=False,
              soft_wrap=True)


@sub.command("from-anyv2v")
def from_anyv2v(
    config: Path = typer.Argument(..., help="AnyV2V prompt list (i2vgen-xl/configs/group_pnp_edit/group_config.json)."),
    root: Path = typer.Option(Path("."), "--root", help="Folder the list's paths start from (the AnyV2V "
                              "repository root, holding demo/)."),
    include_inactive: bool = typer.Option(False, "--all", help="Also the entries with \"active\": false."),
    output: Path = OutOpt, backbone: Optional[str] = BackboneOpt, model: Optional[str] = ModelOpt,
    force: bool = ForceOpt,
) -> None:
    """The AnyV2V repository's prompt lists (edited first frames included)."""
    done(*convert(read_anyv2v, output, config, root, include_inactive, backbone=backbone, model=model,
                  force=force, comment=f"from {config} (AnyV2V prompt list) by anyv2v manifest from-anyv2v"))


@sub.command("from-tgve")
def from_tgve(
    csv_file: Path = typer.Argument(..., help="LOVEU-TGVE-2023_Dataset.csv."),
    videos: Path = typer.Option(..., "--videos", help="Folder holding the videos (<name>.mp4 or <name>/ "
                                "frames, at any depth)."),
    kinds: str = typer.Option(",".join(TGVE_KINDS), "--kinds", help="Edit kinds: "
                              f"{', '.join(TGVE_KINDS)} (comma-separated)."),
    output: Path = OutOpt, edited_frames: Optional[Path] = FramesOpt, editor: Optional[str] = EditorOpt,
    backbone: Optional[str] = BackboneOpt, model: Optional[str] = ModelOpt, force: bool = ForceOpt,
) -> None:
    """LOVEU-TGVE-2023 (one item per video and edit kind; ids <video>-<kind>)."""
    done(*convert(read_tgve, output, csv_file, videos, [k.strip() for k in kinds.split(",") if k.strip()],
                  edited_frames=edited_frames, editor=editor, backbone=backbone, model=model, force=force,
                  comment=f"from {csv_file} (LOVEU-TGVE-2023) by anyv2v manifest from-tgve"))


@sub.command("from-five")
def from_five(
    annotations: Path = typer.Argument(..., help="FiVE-Bench annotation JSON (edit_prompt/edit<k>_FiVE.json)."),
    root: Path = typer.Option(..., "--root", help="FiVE-Bench data folder (holding images/<video>/)."),
    output: Path = OutOpt, edited_frames: Optional[Path] = FramesOpt, editor: Optional[str] = EditorOpt,
    backbone: Optional[str] = BackboneOpt, model: Optional[str] = ModelOpt, force: bool = ForceOpt,
) -> None:
    """FiVE-Bench (one item per annotation; ids <file>-<video>-<save_dir>)."""
    done(*convert(read_five, output, annotations, root, edited_frames=edited_frames, editor=editor,
                  backbone=backbone, model=model, force=force,
                  comment=f"from {annotations} (FiVE-Bench) by anyv2v manifest from-five"))


app.add_typer(sub, name="manifest")
