"""Batch editing from a manifest, resumable (``anyv2v batch``).

A manifest holds one JSON object per line (JSONL; blank lines and lines starting with ``#``
are skipped) or, as a ``.yaml``/``.yml`` file, a YAML list of the same objects; see
:data:`FIELDS` and docs/batch-and-eval.md for the schema. Items are run grouped by
``(backbone, model, backbone options)`` so each backbone is loaded once; inversions of a source
shared by several items come from the inversion cache. Every attempt appends one line to
``<out-dir>/results.jsonl`` (written, flushed and fsynced per item); a re-run skips the
items whose latest result is ``ok`` and whose output exists, and retries the others.
"""

from __future__ import annotations

import gc
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from . import settings as schema
from .errors import AnyV2VError, InputError, one_line
from .settings import DEFAULT_BACKBONE, DEFAULT_EDITOR, DEFAULT_SEED

if TYPE_CHECKING:  # pragma: no cover
    from .metrics import ClipScorer
    from .protocols import MemoryOptions

RESULTS_NAME = "results.jsonl"
#: Manifests with these suffixes are read as YAML, all others as JSONL.
YAML_SUFFIXES = (".yaml", ".yml")
#: Per-item run settings a manifest line may give (:mod:`anyv2v_core.settings`, place ``manifest``).
OVERRIDES = tuple(s.name for s in schema.for_place("manifest") if s.name != "seed")
#: Every key a manifest line may have.
FIELDS = ("id", "source", "prompt", "editor", "editor_options", "edited_frame", "backbone", "backbone_options", "model",
          "seed", "out", *OVERRIDES)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Items sharing a loaded backbone: ``(backbone, model, sorted backbone options)``.
Group = tuple[str, "str | None", tuple]


@dataclass
class BatchItem:
    """One validated manifest line (paths absolute)."""

    line: int
    id: str
    source: Path
    prompt: str
    out: Path
    editor: str = DEFAULT_EDITOR
    editor_options: dict[str, Any] = field(default_factory=dict)
    edited_frame: Path | None = None
    backbone: str = DEFAULT_BACKBONE
    model: str | None = None
    seed: int = DEFAULT_SEED
    overrides: dict[str, Any] = field(default_factory=dict)
    backbone_options: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> Group:
        return (self.backbone, self.model, tuple(sorted(self.backbone_options.items())))


# -- manifest --------------------------------------------------------------------------------

def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _check_override(name: str, value: Any) -> Any:
    """A per-item setting, checked as everywhere else (kept as written, for the results log)."""
    try:
        schema.check(name, value)
    except InputError as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_editor_options(editor: str, options: Any, base: Path) -> dict[str, Any]:
    """Keys known, non-path values converted, required options present; path options are
    resolved against the manifest folder (their existence is checked when the item runs)."""
    from .editor_options import validate_options
    from .plugins import get_registry

    if not isinstance(options, dict):
        raise ValueError(f"editor_options must be an object, got {options!r}")
    declared = get_registry().editor(editor).options
    known = {o.key: o for o in declared}
    options = {k.replace("-", "_"): v for k, v in options.items()}
    unknown = sorted(set(options) - set(known))
    if unknown:
        names = ", ".join(known) or "none"
        raise ValueError(f"editor {editor!r} has no option(s) {', '.join(unknown)} (its options: {names})")
    plain = [o for o in declared if o.type != "path"]
    checked = validate_options(editor, plain, {k: v for k, v in options.items() if k in {o.key for o in plain}})
    result = {k: v for k, v in checked.items() if k in options}
    for o in declared:
        if o.type != "path":
            continue
        if options.get(o.key) is None:
            if o.required:
                raise ValueError(f"editor {editor!r} needs option {o.key}" + (f" ({o.help})" if o.help else ""))
            continue
        if not isinstance(options[o.key], str):
            raise ValueError(f"editor option {o.key} must be a path string, got {options[o.key]!r}")
        result[o.key] = str(_resolve(base, options[o.key]))
    return result


def _check_backbone_options(backbone: str, options: Any) -> dict[str, Any]:
    """The backbone's declared options (``anyv2v plugins``), typed and checked."""
    from .editor_options import validate_options
    from .plugins import get_registry

    if not isinstance(options, dict):
        raise ValueError(f"backbone_options must be an object, got {options!r}")
    declared = get_registry().backbone(backbone).options
    options = {k.replace("-", "_"): v for k, v in options.items()}
    unknown = sorted(set(options) - {o.key for o in declared})
    if unknown:
        names = ", ".join(o.key for o in declared) or "none"
        raise ValueError(f"backbone {backbone!r} has no option(s) {', '.join(unknown)} (its options: {names})")
    checked = validate_options(backbone, declared, options, kind="backbone")
    return {k: v for k, v in checked.items() if k in options}


def _parse_item(obj: Any, line: int, base: Path, out_dir: Path) -> BatchItem:
    from .plugins import get_registry

    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    for key in ("id", "source", "prompt"):
        if key not in obj:
            raise ValueError(f"missing required key {key!r}")
    item_id = obj["id"]
    if not isinstance(item_id, str) or not _ID.match(item_id):
        raise ValueError(f"id must be a string of letters, digits, '.', '_' or '-', got {item_id!r}")
    for key in ("source", "prompt", "editor", "edited_frame", "backbone", "model", "out"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise ValueError(f"{key} must be a string, got {obj[key]!r}")
    if not obj["source"]:
        raise ValueError("source must not be empty")
    if "seed" in obj:
        _check_override("seed", obj["seed"])
    editor = obj.get("editor") or DEFAULT_EDITOR
    backbone = obj.get("backbone") or DEFAULT_BACKBONE
    try:
        get_registry().backbone(backbone)
        get_registry().editor(editor)
    except AnyV2VError as exc:
        raise ValueError(str(exc)) from None
    options = _check_editor_options(editor, obj.get("editor_options") or {}, base)
    backbone_options = _check_backbone_options(backbone, obj.get("backbone_options") or {})
    edited = obj.get("edited_frame")
    if editor == "image" and not edited:
        raise ValueError('editor "image" needs edited_frame (the first frame, edited by you)')
    if editor != "image" and edited:
        raise ValueError(f'edited_frame is for editor "image"; editor {editor!r} makes the first frame itself')
    overrides = {k: _check_override(k, obj[k]) for k in OVERRIDES if obj.get(k) is not None}
    model = obj.get("model")
    if model and not Path(model).expanduser().is_absolute() and (base / model).exists():
        model = str(base / model)  # a relative model folder; hub ids stay as they are
    return BatchItem(
        line=line, id=item_id, source=_resolve(base, obj["source"]), prompt=obj["prompt"],
        out=_resolve(base, obj["out"]) if obj.get("out") else out_dir / f"{item_id}.mp4",
        editor=editor, editor_options=options, edited_frame=_resolve(base, edited) if edited else None,
        backbone=backbone, model=model or None, seed=obj.get("seed", DEFAULT_SEED), overrides=overrides,
        backbone_options=backbone_options,
    )


def _jsonl_entries(text: str) -> Iterator[tuple[int, Any]]:
    """``(line, object or ValueError)`` of every item line of a JSONL manifest."""
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            yield number, json.loads(stripped)
        except json.JSONDecodeError as exc:
            yield number, ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})")


def _yaml_entries(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    """``(line, object)`` of every item of a YAML manifest: a list of mappings, at the top
    or under ``items:``; the line is where the item starts."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise InputError(f"{where}: invalid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if root is None:
        return
    if isinstance(root, yaml.MappingNode):
        keys = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        if set(keys) != {"items"}:
            raise InputError(f"{path}:{root.start_mark.line + 1}: a YAML manifest is a list of items "
                             f"(or a mapping with just 'items:'), got keys {', '.join(map(str, keys))}")
        root = keys["items"]
    if not isinstance(root, yaml.SequenceNode):
        raise InputError(f"{path}:{root.start_mark.line + 1}: a YAML manifest is a list of items")
    for node in root.value:
        try:
            yield node.start_mark.line + 1, yaml.SafeLoader("").construct_document(node)
        except yaml.YAMLError as exc:
            yield node.start_mark.line + 1, ValueError(f"invalid YAML ({exc})")


def parse_manifest(path: str | os.PathLike, out_dir: str | os.PathLike) -> list[BatchItem]:
    """The validated items of a manifest: JSONL (one object per line) or, for ``.yaml`` /
    ``.yml`` files, YAML (a list of mappings). A bad item is an :class:`InputError` naming
    the file and line number."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest not found: {path}")
    base, out_dir = path.resolve().parent, Path(out_dir).resolve()
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    outs: dict[Path, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read manifest {path}: {exc}") from None
    entries = _yaml_entries(text, path) if path.suffix.lower() in YAML_SUFFIXES else _jsonl_entries(text)
    for number, obj in entries:
        try:
            if isinstance(obj, ValueError):
                raise obj
            item = _parse_item(obj, number, base, out_dir)
            if item.id in seen:
                raise ValueError(f"duplicate id {item.id!r} (first on line {seen[item.id]})")
            if item.out.resolve() in outs:
                raise ValueError(f"output {item.out} is also written by line {outs[item.out.resolve()]}")
        except (ValueError, InputError) as exc:
            raise InputError(f"{path}:{number}: {exc}") from None
        seen[item.id] = number
        outs[item.out.resolve()] = number
        items.append(item)
    if not items:
        raise InputError(f"manifest {path} has no items")
    return items


# -- results log ------------------------------------------------------------------------------
class ResultsLog:
    """``results.jsonl``: one JSON line per attempt, appended durably (flush + fsync)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def records(self) -> list[dict[str, Any]]:
        """All records in order; a torn last line (a crash mid-write) is ignored."""
        if not self.path.is_file():
            return []
        records = []
        for raw in self.path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and "id" in obj:
                records.append(obj)
        return records

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last record of every id."""
        return {r["id"]: r for r in self.records()}

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(record, default=str) + "\n").encode()
        prefix = b""
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb") as fh:  # a torn last line must not swallow this record
                fh.seek(-1, os.SEEK_END)
                prefix = b"" if fh.read(1) == b"\n" else b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, prefix + data)
            os.fsync(fd)
        finally:
            os.close(fd)


def is_done(item: BatchItem, latest: dict[str, dict[str, Any]]) -> bool:
    """Whether a re-run may skip ``item``: its latest result is ok and its output exists."""
    record = latest.get(item.id)
    return bool(record and record.get("status") == "ok" and item.out.is_file()
                and Path(record.get("out", "")).resolve() == item.out.resolve())


# -- running ----------------------------------------------------------------------------------
class Reporter:
    """Callbacks of :func:`run_batch` (the CLI draws them; the default does nothing)."""

    def start(self, pending: int, skipped: int) -> None: ...
    def log(self, message: str) -> None: ...
    def item_started(self, item: BatchItem) -> None: ...
    def stage(self, stage: str, done: int, total: int) -> None: ...
    def item_finished(self, item: BatchItem, record: dict[str, Any]) -> None: ...


@dataclass
class BatchSummary:
    ok: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    results: Path | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _run_item(item: BatchItem, bb: Any, editors: dict[str, Any], *, device: str, dtype: str,
              cache: "bool | str | os.PathLike", force: bool, scorer: "ClipScorer | None",
              progress: Callable[[str, int, int], None]) -> dict[str, Any]:
    from . import api
    from .protocols import EditRequest
    from .video import fit, read_frames

    o = item.overrides
    request = EditRequest(prompt=item.prompt, edited_frame=item.edited_frame, seed=item.seed,
                          options=dict(item.editor_options), progress=progress)
    api.prepare_request(item.editor, request)
    if item.editor not in editors:
        editors[item.editor] = api.load_editor(item.editor, device=device, dtype=dtype)
    item.out.parent.mkdir(parents=True, exist_ok=True)
    result = api.edit(item.source, prompt=item.prompt, editor=editors[item.editor], request=request, out=item.out,
                      backbone=bb, **schema.cache_values(cache),
                      force=force, device=device, dtype=dtype, progress=progress, **o)
    record: dict[str, Any] = {"inversion_reused": result.inversion_reused,
                              "timings": {k: round(v, 3) for k, v in result.timings.items()}}
    if scorer is not None:
        t0 = time.perf_counter()
        try:
            size, mode = result.frames[0].size, o.get("resize_mode", schema.get("resize_mode").default)
            selection = schema.Run(o).frame_range()
            source = [fit(f, size, mode) for f in read_frames(item.source, len(result.frames), selection)]
            record["metrics"] = scorer.scores(result.frames, item.prompt, source=source)
        except Exception as exc:  # noqa: BLE001 - the output is fine; only the metrics failed
            record["metrics_error"] = one_line(exc)
        record["timings"]["eval"] = round(time.perf_counter() - t0, 3)
    return record


def make_record(item: BatchItem, status: str, error: str | None, started: float,
                extra: dict[str, Any]) -> dict[str, Any]:
    """The ``results.jsonl`` record of one attempt (``started``: its ``time.perf_counter()``)."""
    rec = {"id": item.id, "line": item.line, "status": status, "error": error, "out": str(item.out),
           "source": str(item.source), "prompt": item.prompt, "editor": item.editor, "backbone": item.backbone,
           "model": item.model, "backbone_options": item.backbone_options, "seed": item.seed,
           "overrides": item.overrides,
           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
    rec.setdefault("timings", {})["total"] = round(time.perf_counter() - started, 3)
    return rec


class ItemRunner:
    """Runs items one at a time, keeping one loaded backbone (of the current
    ``(backbone, model, backbone options)`` group) and every editor it loaded; shared by :func:`run_batch`
    and the Ray workers of :mod:`anyv2v_core.batch_ray`. :meth:`run` returns the item's
    record and never raises for a failing item (``KeyboardInterrupt`` propagates)."""

    def __init__(self, *, device: str, dtype: str, cache: "bool | str | os.PathLike", force: bool,
                 scorer: "ClipScorer | None", memory: "MemoryOptions | None",
                 log: Callable[[str], None] = lambda message: None) -> None:
        self.device, self.dtype, self.cache, self.force = device, dtype, cache, force
        self.scorer, self.memory, self.log = scorer, memory, log
        self.editors: dict[str, Any] = {}
        self.group: Group | None = None
        self.backbone: Any = None
        self.load_error: str | None = None

    def use(self, group: Group) -> None:
        """Load the backbone of ``group`` (dropping the previous one) unless it is loaded;
        a failure to load is remembered and fails every item of the group."""
        from . import api

        if group == self.group:
            return
        self.release()
        self.group = group
        name, model, options = group
        t0 = time.perf_counter()
        try:
            self.backbone = api.load_backbone(name, model, self.device, self.dtype, self.memory, dict(options))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - every item of the group fails with this line
            self.load_error = f"loading backbone {name}: {one_line(exc)}"
            return
        self.log(f"loaded backbone {name} ({model or 'default weights'}) in {time.perf_counter() - t0:.1f}s")

    def release(self) -> None:
        """Drop the loaded backbone and free its memory."""
        loaded = self.backbone is not None
        self.group, self.backbone, self.load_error = None, None, None
        if loaded:
            gc.collect()
            _empty_cuda_cache()

    def run(self, item: BatchItem, progress: Callable[[str, int, int], None]) -> dict[str, Any]:
        """One attempt at ``item``: its record (``status`` ok or failed)."""
        self.use(item.group)
        started = time.perf_counter()
        if self.load_error is not None:
            return make_record(item, "failed", self.load_error, started, {})
        try:
            extra = _run_item(item, self.backbone, self.editors, device=self.device, dtype=self.dtype,
                              cache=self.cache, force=self.force, scorer=self.scorer, progress=progress)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failing item never stops the others
            return make_record(item, "failed", one_line(exc), started, {})
        return make_record(item, "ok", None, started, extra)


def start_run(items: list[BatchItem], out_dir: str | os.PathLike,
              force: bool) -> tuple[ResultsLog, BatchSummary, list[BatchItem]]:
    """Open ``<out_dir>/results.jsonl`` and split the items: the returned list holds those
    to run (all with ``force``); the others are counted as skipped (and ok) in the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = ResultsLog(out_dir / RESULTS_NAME)
    latest = log.latest()
    summary = BatchSummary(results=log.path)
    pending = []
    for item in items:
        if not force and is_done(item, latest):
            summary.skipped.append(item.id)
            summary.ok.append(item.id)
        else:
            pending.append(item)
    return log, summary, pending


def finish_item(log: ResultsLog, summary: BatchSummary, reporter: Reporter, item: BatchItem,
                record: dict[str, Any]) -> None:
    """Append ``record`` durably, count it, and report it."""
    log.append(record)
    if record["status"] == "ok":
        summary.ok.append(item.id)
    else:
        summary.failed.append((item.id, record.get("error") or ""))
    reporter.item_finished(item, record)


def group_items(items: list[BatchItem]) -> dict[Group, list[BatchItem]]:
    """Items by their :data:`Group`, groups in the order of their first item."""
    groups: dict[Group, list[BatchItem]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    return groups


def run_batch(
    items: list[BatchItem],
    out_dir: str | os.PathLike,
    *,
    device: str = "auto",
    dtype: str = "auto",
    cache: "bool | str | os.PathLike" = True,
    force: bool = False,
    scorer: "ClipScorer | None" = None,
    memory: "MemoryOptions | None" = None,
    reporter: Reporter | None = None,
) -> BatchSummary:
    """Run the items not yet done (all with ``force``), one loaded backbone per
    ``(backbone, model, backbone options)``; record every attempt in ``<out_dir>/results.jsonl``.

    A failing item is recorded and the others go on. ``KeyboardInterrupt`` propagates
    (outputs are written atomically, so none is left half-written)."""
    reporter = reporter or Reporter()
    log, summary, pending = start_run(items, out_dir, force)
    reporter.start(len(pending), len(summary.skipped))
    runner = ItemRunner(device=device, dtype=dtype, cache=cache, force=force, scorer=scorer, memory=memory,
                        log=reporter.log)
    for group, members in group_items(pending).items():
        runner.use(group)
        for item in members:
            reporter.item_started(item)
            finish_item(log, summary, reporter, item, runner.run(item, reporter.stage))
        runner.release()
    return summary


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
