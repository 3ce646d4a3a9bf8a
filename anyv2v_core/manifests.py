"""Batch manifests from the layouts of public video-editing benchmarks (``anyv2v manifest``).

Each converter reads a benchmark's own file as it is distributed and writes an ``anyv2v
batch`` JSONL manifest (docs/batch-and-eval.md), so running a benchmark takes two commands::

    anyv2v manifest from-tgve LOVEU-TGVE-2023_Dataset.csv --videos LOVEU-TGVE-2023 \\
        --edited-frames my-edits -o tgve.jsonl
    anyv2v batch tgve.jsonl --eval

* ``from-anyv2v`` — the AnyV2V repository's prompt lists (``group_config.json``: a JSON list of
  ``video_name``, ``edited_first_frame_path``, ``editing_prompt``, ``edited_video_name``,
  ``task_name``, ``active`` and optional settings ``ddim_init_latents_t_idx``, ``pnp_f_t``,
  ``pnp_spatial_attn_t``, ``pnp_temp_attn_t``, ``n_steps``, ``cfg``, ...). Sources are
  ``<root>/demo/<video_name>`` (frames) or ``<root>/demo/<video_name>.mp4``.
* ``from-tgve`` — LOVEU-TGVE-2023's ``LOVEU-TGVE-2023_Dataset.csv``: one row per video,
  ``Video name``, ``Our GT caption`` and one caption per edit kind (``Style Change Caption``,
  ``Object Change Caption``, ``Background Change Caption``, ``Multiple Changes Caption``); one
  item per video and kind. Videos are found under ``--videos`` by name (``<name>.mp4`` or a
  ``<name>`` frames folder, at any depth).
* ``from-five`` — FiVE-Bench's annotation JSON (``edit_prompt/edit<k>_FiVE.json``): a list of
  ``video_name``, ``source_prompt``, ``target_prompt`` (edited words in ``[...]``),
  ``editing_type_id``, ``save_dir``; frames in ``<root>/images/<video_name>/``.

TGVE and FiVE give prompts, not edited first frames: pass ``--edited-frames DIR`` (your edits,
``DIR/<id>.png``) or ``--editor NAME`` (an image editor makes them; an ``instruction`` option
gets the benchmark's instruction, else the target prompt).
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import InputError

#: AnyV2V prompt-list keys -> manifest settings.
ANYV2V_SETTINGS = {"ddim_init_latents_t_idx": "t_idx", "pnp_f_t": "tau_conv", "pnp_spatial_attn_t": "tau_sa",
                   "pnp_temp_attn_t": "tau_ta", "n_steps": "steps", "cfg": "cfg", "n_frames": "num_frames",
                   "target_fps": "fps", "random_ratio": "random_ratio", "editing_negative_prompt": "negative_prompt",
                   "seed": "seed"}
#: TGVE edit kinds -> the first word of their caption column.
TGVE_KINDS = {"style": "style", "object": "object", "background": "background", "multiple": "multiple"}
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv", ".gif")
_BAD_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Entry:
    """One benchmark edit, before the first-frame decision."""

    id: str
    source: Path
    prompt: str
    edited_frame: Path | None = None
    instruction: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def make_id(text: str) -> str:
    """A manifest id from free text: runs of other characters become ``-``."""
    cleaned = _BAD_ID.sub("-", text).strip("-._")
    return cleaned or "item"


def _unique(entries: list[Entry]) -> list[Entry]:
    seen: dict[str, int] = {}
    for e in entries:
        base = e.id
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            e.id = f"{base}-{seen[base]}"
    return entries


class SourceFinder:
    """Finds ``<name>`` videos or frame folders under a root (direct children first, then at
    any depth; videos before frame folders unless ``frames_first``)."""

    def __init__(self, root: Path, frames_first: bool = False) -> None:
        if not root.is_dir():
            raise InputError(f"videos folder not found: {root}")
        self.root, self.frames_first = root, frames_first
        self._index: dict[str, list[Path]] | None = None

    def _candidates(self, folder: Path, name: str) -> list[Path]:
        from .video import IMAGE_SUFFIXES

        videos = [folder / f"{name}{s}" for s in VIDEO_SUFFIXES if (folder / f"{name}{s}").is_file()]
        frames = folder / name
        has_frames = frames.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in frames.iterdir())
        found = ([frames] if has_frames else [])
        return found + videos if self.frames_first else videos + found

    def find(self, name: str) -> Path | None:
        direct = self._candidates(self.root, name)
        if direct:
            return direct[0]
        if self._index is None:
            self._index = {}
            for path in sorted(self.root.rglob("*")):
                key = path.stem if path.suffix.lower() in VIDEO_SUFFIXES else path.name
                self._index.setdefault(key, []).append(path.parent)
        for folder in self._index.get(name, []):
            found = self._candidates(folder, name)
            if found:
                return found[0]
        return None


def _require_sources(entries: list[Entry], missing: list[str], where: Path) -> None:
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"no video or frames folder named {missing[0]!r}{more} under {where}")


def _load_json_list(path: Path, what: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise InputError(f"{path}: expected a JSON list of objects ({what})")
    return data


def _need(obj: dict[str, Any], keys: Iterable[str], path: Path, index: int) -> None:
    missing = [k for k in keys if not isinstance(obj.get(k), str) or not obj[k].strip()]
    if missing:
        raise InputError(f"{path}: entry {index} lacks {', '.join(missing)}")


# -- the layouts --------------------------------------------------------------------------------
def read_anyv2v(path: str | os.PathLike, root: str | os.PathLike, include_inactive: bool = False) -> list[Entry]:
    """Entries of an AnyV2V ``group_config.json`` (``root``: the folder its paths start from,
    the repository root)."""
    path, root = Path(path), Path(root)
    finder = SourceFinder(root / "demo" if (root / "demo").is_dir() else root, frames_first=True)
    entries, missing = [], []
    for i, obj in enumerate(_load_json_list(path, "AnyV2V prompt list")):
        if not include_inactive and obj.get("active") is False:
            continue
        _need(obj, ("video_name", "edited_first_frame_path", "editing_prompt"), path, i)
        source = finder.find(obj["video_name"])
        if source is None:
            missing.append(obj["video_name"])
            continue
        settings = {ANYV2V_SETTINGS[k]: v for k, v in obj.items() if k in ANYV2V_SETTINGS}
        if isinstance(obj.get("image_size"), list) and len(obj["image_size"]) == 2:
            settings["size"] = f"{obj['image_size'][0]}x{obj['image_size'][1]}"
        name = obj.get("edited_video_name") or Path(obj["edited_first_frame_path"]).stem
        entries.append(Entry(
            id=make_id(f"{obj['video_name']}-{name}"), source=source, prompt=obj["editing_prompt"],
            edited_frame=root / obj["edited_first_frame_path"], settings=settings,
            meta={"benchmark": "anyv2v", "video": obj["video_name"], "kind": obj.get("task_name", "")}))
    _require_sources(entries, missing, finder.root)
    return _unique(entries)


def read_tgve(path: str | os.PathLike, videos: str | os.PathLike, kinds: Iterable[str] | None = None) -> list[Entry]:
    """Entries of LOVEU-TGVE-2023's CSV: one per video and edit kind (``kinds``: some of
    :data:`TGVE_KINDS`, default all). Rows before the header and section rows (a single
    non-empty cell, e.g. ``DAVIS_480p``) are skipped."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"TGVE CSV not found: {path}")
    wanted = list(TGVE_KINDS) if kinds is None else list(kinds)
    bad = [k for k in wanted if k not in TGVE_KINDS]
    if bad:
        raise InputError(f"unknown TGVE edit kind(s) {', '.join(bad)}; known: {', '.join(TGVE_KINDS)}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    header_at = next((i for i, r in enumerate(rows) if r and r[0].strip().lower() == "video name"), None)
    if header_at is None:
        raise InputError(f"{path}: no header row starting with 'Video name' (is it LOVEU-TGVE-2023_Dataset.csv?)")
    header = [h.strip().lower() for h in rows[header_at]]
    columns: dict[str, int] = {}
    for kind in wanted:
        at = [i for i, h in enumerate(header) if h.startswith(TGVE_KINDS[kind]) and "caption" in h]
        if not at:
            raise InputError(f"{path}: no '{kind.title()} ... Caption' column in the header")
        columns[kind] = at[0]
    gt = next((i for i, h in enumerate(header) if "gt caption" in h), None)
    finder = SourceFinder(Path(videos))
    entries, missing = [], []
    above = [r[0].strip() for r in rows[:header_at] if r and r[0].strip() and not any(c.strip() for c in r[1:])]
    section = above[-1] if above else ""  # a section name written above the first header
    for row in rows[header_at + 1:]:
        cells = [c.strip() for c in row]
        if sum(bool(c) for c in cells) <= 1:
            section = cells[0] if cells and cells[0] else section
            continue
        if cells[0].lower() == "video name":
            continue
        name = cells[0]
        source = finder.find(name)
        if source is None:
            missing.append(name)
            continue
        for kind, col in columns.items():
            prompt = cells[col] if col < len(cells) else ""
            if not prompt:
                continue
            meta = {"benchmark": "tgve", "video": name, "kind": kind}
            if section:
                meta["section"] = section
            if gt is not None and gt < len(cells):
                meta["source_prompt"] = cells[gt]
            entries.append(Entry(id=make_id(f"{name}-{kind}"), source=source, prompt=prompt, meta=meta))
    _require_sources(entries, missing, finder.root)
    if not entries:
        raise InputError(f"{path}: no video rows under the header")
    return _unique(entries)


def read_five(path: str | os.PathLike, root: str | os.PathLike) -> list[Entry]:
    """Entries of a FiVE-Bench annotation JSON (``root``: the folder holding ``images/``)."""
    path, root = Path(path), Path(root)
    finder = SourceFinder(root / "images" if (root / "images").is_dir() else root, frames_first=True)
    entries, missing = [], []
    for i, obj in enumerate(_load_json_list(path, "FiVE-Bench annotation file")):
        _need(obj, ("video_name", "target_prompt"), path, i)
        source = finder.find(obj["video_name"])
        if source is None:
            missing.append(obj["video_name"])
            continue
        strip = lambda s: " ".join(str(s).replace("[", "").replace("]", "").split())  # noqa: E731
        meta = {"benchmark": "five", "file": path.stem, "video": obj["video_name"],
                "kind": str(obj.get("editing_type_id", ""))}
        if obj.get("source_prompt"):
            meta["source_prompt"] = strip(obj["source_prompt"])
        suffix = obj.get("save_dir") or f"{i:03d}"
        entries.append(Entry(id=make_id(f"{path.stem}-{obj['video_name']}-{suffix}"), source=source,
                             prompt=strip(obj["target_prompt"]), meta=meta,
                             instruction=obj.get("editing_instruction") or obj.get("instruction")))
    _require_sources(entries, missing, finder.root)
    return _unique(entries)


# -- writing ------------------------------------------------------------------------------------------
def _frame_in(folder: Path, item_id: str) -> Path | None:
    from .video import IMAGE_SUFFIXES

    for suffix in sorted(IMAGE_SUFFIXES):
        if (folder / f"{item_id}{suffix}").is_file():
            return folder / f"{item_id}{suffix}"
    return None


def to_items(entries: list[Entry], manifest: Path, *, edited_frames: str | os.PathLike | None = None,
             editor: str | None = None, backbone: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """Manifest lines of ``entries``; paths relative to the manifest's folder. An entry's own
    edited frame wins; else ``edited_frames/<id>.<png|jpg|...>``; else ``editor`` makes it."""
    from .plugins import get_registry

    if edited_frames is not None and not Path(edited_frames).is_dir():
        raise InputError(f"edited frames folder not found: {edited_frames}")
    options = {o.key for o in get_registry().editor(editor).options} if editor else set()
    base = manifest.resolve().parent

    def rel(p: Path) -> str:
        return os.path.relpath(p.resolve(), base)

    items, missing = [], []
    for e in entries:
        item: dict[str, Any] = {"id": e.id, "source": rel(e.source), "prompt": e.prompt}
        frame = e.edited_frame or (_frame_in(Path(edited_frames), e.id) if edited_frames else None)
        if frame is not None and editor is None:
            item["edited_frame"] = rel(frame)
        elif editor is not None:
            item["editor"] = editor
            if "instruction" in options:
                item["editor_options"] = {"instruction": e.instruction or e.prompt}
        else:
            missing.append(e.id)
            continue
        if backbone:
            item["backbone"] = backbone
        if model:
            item["model"] = model
        items.append({**item, **e.settings, "meta": e.meta})
    if missing:
        where = f"in {edited_frames} " if edited_frames else ""
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"no edited first frame {where}for {missing[0]}{more}: pass --edited-frames DIR holding "
                         f"<id>.png per item, or --editor NAME to make them")
    return items


def write_manifest(items: list[dict[str, Any]], path: str | os.PathLike, *, comment: str = "",
                   force: bool = False) -> Path:
    """Write ``items`` as a JSONL manifest atomically, after checking it as ``anyv2v batch``
    would (:func:`anyv2v_core.batch.parse_manifest`)."""
    from .batch import YAML_SUFFIXES, parse_manifest
    from .video import atomic_path

    path = Path(path)
    if path.suffix.lower() in YAML_SUFFIXES:
        raise InputError(f"{path}: converters write JSONL manifests (name it .jsonl)")
    lines = [f"# {line}\n" for line in comment.splitlines()] + [json.dumps(i, ensure_ascii=False) + "\n" for i in items]
    with atomic_path(path, force) as tmp:
        tmp.write_text("".join(lines), encoding="utf-8")
        parse_manifest(tmp, path.parent / f"{path.stem}-out")
    return path


def convert(reader: Callable[..., list[Entry]], out: str | os.PathLike, *args: Any, edited_frames: Any = None,
            editor: str | None = None, backbone: str | None = None, model: str | None = None, force: bool = False,
            comment: str = "", **kwargs: Any) -> tuple[Path, int]:
    """Read a benchmark with ``reader(*args, **kwargs)`` and write the manifest ``out``;
    returns the path and the number of items."""
    out = Path(out)
    entries = reader(*args, **kwargs)
    items = to_items(entries, out, edited_frames=edited_frames, editor=editor, backbone=backbone, model=model)
    return write_manifest(items, out, comment=comment, force=force), len(items)
