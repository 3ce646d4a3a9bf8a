"""``anyv2v cache ls / rm / prune``: the inversion cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..console import out
from ..errors import InputError
from ..settings import BY_NAME
from .app import app

CacheDirOpt = typer.Option(None, "--cache-dir", help=BY_NAME["cache_dir"].help)

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
def cache_ls(cache_dir: Optional[Path] = CacheDirOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """List cached inversions."""
    import time

    from ..cache import InversionCache

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
def cache_rm(
    ids: list[str] = typer.Argument(None, help="Entry ids (a unique prefix is enough)."),
    all_: bool = typer.Option(False, "--all", help="Remove every entry."),
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Remove cached inversions."""
    from ..cache import InversionCache

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
def cache_prune(
    max_size: Optional[str] = typer.Option(None, "--max-size", help="Keep at most this much (e.g. 10GB), LRU first out."),
    older_than: Optional[str] = typer.Option(None, "--older-than", help="Remove entries unused for this long (30d, 12h)."),
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Remove old or excess cached inversions (and orphaned files)."""
    from ..cache import InversionCache

    store = InversionCache(cache_dir)
    removed = store.prune(parse_bytes(max_size) if max_size else None, parse_age(older_than) if older_than else None)
    out.print(f"removed {len(removed)} entries")
