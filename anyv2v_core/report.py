"""``anyv2v report``: one self-contained HTML page of batch results.

The page reads nothing from a server or the internet: its CSS and JavaScript are inline, the
charts are inline SVG, and the media are linked relatively to the page (``--embed`` puts them
inside the file as ``data:`` URIs instead). It shows

* a table of the mean metrics per method (backbone, editor, weights and the settings that
  differ between methods), sortable by any column, and one strip chart per metric (every
  item's value as a dot, the mean as a bar, per method);
* a sortable table of all items (status, method, prompt, metrics, time);
* per item: the source, the edited first frame and the output side by side (videos play while
  they are on screen; a source given as a frames folder shows as a strip of frames), its
  prompt, settings and metric values.

Input: one or more ``results.jsonl`` files (or batch output folders); the last record of every
id counts. Relative media paths are computed from the page's folder.
"""

from __future__ import annotations

import base64
import html
import json
import math
import mimetypes
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .errors import InputError

#: Browser-playable video suffixes (others, and frame folders, become frame strips).
PLAYABLE = {".mp4": "video/mp4", ".webm": "video/webm", ".mov": "video/mp4"}
#: Frames shown in a strip, and their height in pixels.
STRIP_FRAMES, STRIP_HEIGHT = 8, 96
#: Settings that make up a method besides backbone, weights and editor.
_SETTING_KEYS = ("overrides", "backbone_options")


@dataclass
class Item:
    """One batch item (its latest record) as the page shows it."""

    record: dict[str, Any]
    results: Path
    method: str = ""

    @property
    def metrics(self) -> dict[str, Any]:
        return self.record.get("metrics") or {}

    @property
    def settings(self) -> dict[str, Any]:
        out = {}
        for key in _SETTING_KEYS:
            out.update(self.record.get(key) or {})
        return out


@dataclass
class Method:
    label: str
    items: list[Item] = field(default_factory=list)


# -- reading ---------------------------------------------------------------------------------
def results_path(path: str | os.PathLike) -> Path:
    """A ``results.jsonl`` file, or the one inside a batch output folder."""
    from .batch import RESULTS_NAME

    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_NAME
    if not path.is_file():
        raise InputError(f"results not found: {path} (give a results.jsonl or a batch output folder)")
    return path


def load_items(paths: Iterable[str | os.PathLike]) -> list[Item]:
    """The latest record of every id of every results file, in file and first-seen order."""
    from .batch import ResultsLog

    items = []
    for path in paths:
        path = results_path(path)
        latest = ResultsLog(path).latest()
        if not latest:
            raise InputError(f"{path} has no records")
        items += [Item(record, path) for record in latest.values()]
    return items


def _method_key(item: Item) -> dict[str, Any]:
    r = item.record
    return {"backbone": r.get("backbone"), "model": r.get("model"), "editor": r.get("editor"), **item.settings,
            "run": item.results.parent.name}


def _setting(name: str, value: Any) -> str:
    if value is None:
        return "default"
    return Path(str(value)).name if name == "model" else str(value)


def group_methods(items: list[Item]) -> list[Method]:
    """Items by method; a method's label names the backbone and editor, and those of the
    weights, settings and runs (the results file's folder) that differ between methods."""
    keys = [_method_key(i) for i in items]
    names = sorted({k for key in keys for k in key})
    varying = [n for n in names if n not in ("backbone", "editor") and len({json.dumps(k.get(n)) for k in keys}) > 1]
    methods: dict[str, Method] = {}
    for item, key in zip(items, keys):
        parts = [f"{key['backbone']} / {key['editor']}"]
        parts += [f"{n}={_setting(n, key.get(n))}" for n in varying]
        item.method = ", ".join(parts)
        methods.setdefault(item.method, Method(item.method)).items.append(item)
    return list(methods.values())


def metric_keys(items: list[Item]) -> list[str]:
    """The metric values present in any item, in :data:`~anyv2v_core.video_metrics.METRIC_KEYS` order."""
    from .video_metrics import METRIC_KEYS

    present = {k for i in items for k, v in i.metrics.items() if isinstance(v, (int, float))}
    return [k for k in METRIC_KEYS if k in present]


def _values(method: Method, key: str) -> list[float]:
    return [float(i.metrics[key]) for i in method.items
            if i.record.get("status") == "ok" and isinstance(i.metrics.get(key), (int, float))]


# -- media ------------------------------------------------------------------------------------
class Media:
    """Turns files into ``src`` values: relative links, or ``data:`` URIs with ``embed``."""

    def __init__(self, page: Path, embed: bool, link: Callable[[Path], str] | None = None) -> None:
        self.base = page.resolve().parent
        self.embed = embed
        self.link = link

    def src(self, path: Path) -> str:
        if self.link is not None:
            return html.escape(self.link(path.resolve()), quote=True)
        if self.embed:
            kind = PLAYABLE.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"
        return html.escape(Path(os.path.relpath(path.resolve(), self.base)).as_posix(), quote=True)

    def thumbnail(self, image: Any) -> str:
        """A ``data:`` URI of a small JPEG of a PIL image (frame strips of videos)."""
        import io

        image = image.convert("RGB")
        w, h = image.size
        image = image.resize((max(1, round(w * STRIP_HEIGHT / h)), STRIP_HEIGHT))
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=80)
        return f"data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}"

    def clip(self, path: Path, label: str) -> str:
        """A playing video for a browser-playable file, else a strip of its first frames."""
        from .video import frame_files, read_frames

        if not path.exists():
            return f'<div class="missing">{html.escape(label)}: {html.escape(str(path))} is missing</div>'
        if path.is_file() and path.suffix.lower() in PLAYABLE:
            return (f'<video src="{self.src(path)}" muted loop playsinline controls preload="metadata" '
                    f'title="{html.escape(label)}"></video>')
        try:
            if path.is_dir() and not self.embed:
                srcs = [self.src(p) for p in frame_files(path)[:STRIP_FRAMES]]
            else:
                srcs = [self.thumbnail(f) for f in read_frames(path, STRIP_FRAMES)]
        except Exception as exc:  # noqa: BLE001 - an unreadable source must not stop the page
            return f'<div class="missing">{html.escape(label)}: cannot read {html.escape(str(path))} ({exc})</div>'
        imgs = "".join(f'<img src="{s}" alt="frame {i}">' for i, s in enumerate(srcs))
        return f'<div class="strip" title="{html.escape(label)}">{imgs}</div>'

    def image(self, path: Path, label: str) -> str:
        if not path.is_file():
            return f'<div class="missing">{html.escape(label)}: {html.escape(str(path))} is missing</div>'
        return f'<img class="frame" src="{self.src(path)}" alt="{html.escape(label)}">'


# -- HTML -------------------------------------------------------------------------------------
def _fmt(value: Any, key: str = "") -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "" if value is None else html.escape(str(value))
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}" if key == "first_frame_psnr" else f"{value:.4f}"


def _cell(value: Any, key: str = "", cls: str = "") -> str:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    sort = f' data-sort="{value!r}"' if number else ""
    return f'<td class="{"num " if number else ""}{cls}"{sort}>{_fmt(value, key)}</td>'


def _header(key: str) -> str:
    from .video_metrics import METRIC_KEYS

    name, what, better = METRIC_KEYS[key]
    arrow = "↑" if better == "higher" else "↓"
    return f'<th title="{html.escape(what)}; {better} is better">{html.escape(name)} {arrow}</th>'


def _summary_table(methods: list[Method], keys: list[str]) -> str:
    rows = []
    for m in methods:
        ok = sum(i.record.get("status") == "ok" for i in m.items)
        cells = [f'<td class="method">{html.escape(m.label)}</td>', _cell(len(m.items)), _cell(ok)]
        for key in keys:
            vals = _values(m, key)
            mean = sum(vals) / len(vals) if vals else None
            cells.append(_cell(mean, key))
        times = [float(i.record.get("timings", {}).get("total", 0)) for i in m.items if i.record.get("status") == "ok"]
        cells.append(_cell(sum(times) / len(times) if times else None))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(["<th>method</th><th>items</th><th>ok</th>", *map(_header, keys), "<th>mean time (s)</th>"])
    return (f'<div class="scroll"><table class="sortable" id="summary"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _chart(methods: list[Method], key: str) -> str:
    """An SVG strip chart: one row per method, a dot per item, a bar at the mean."""
    from .video_metrics import METRIC_KEYS

    name, what, better = METRIC_KEYS[key]
    rows = [(m.label, _values(m, key)) for m in methods]
    allv = [v for _, vals in rows for v in vals]
    if not allv:
        return ""
    lo, hi = min(allv), max(allv)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    width, left, right, row_h = 420, 8, 8, 30
    height = 30 + row_h * len(rows)

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(name)} per method">',
             f'<text x="{left}" y="12" class="t">{html.escape(name)} ({"↑" if better == "higher" else "↓"} better)'
             f'</text>']
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
    for r, (label, vals) in enumerate(rows):
        y = 30 + r * row_h + row_h / 2
        color = palette[r % len(palette)]
        parts.append(f'<text x="{left}" y="{y - 9}" class="s" fill="{color}">{html.escape(label)}</text>'
                     f'<line x1="{left}" x2="{width - right}" y1="{y}" y2="{y}" class="axis"/>')
        for v in vals:
            parts.append(f'<circle cx="{x(v):.1f}" cy="{y}" r="4" fill="{color}" fill-opacity="0.55">'
                         f'<title>{html.escape(label)}: {_fmt(v, key)}</title></circle>')
        if vals:
            mean = sum(vals) / len(vals)
            parts.append(f'<rect x="{x(mean) - 1.5:.1f}" y="{y - 8}" width="3" height="16" fill="{color}">'
                         f'<title>{html.escape(label)} mean {_fmt(mean, key)}</title></rect>')
    parts.append(f'<text x="{left}" y="{height - 1}" class="s">{_fmt(lo, key)}</text>'
                 f'<text x="{width - right}" y="{height - 1}" class="s" text-anchor="end">{_fmt(hi, key)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _items_table(items: list[Item], keys: list[str]) -> str:
    rows = []
    for i in items:
        r = i.record
        anchor = f'<a href="#item-{html.escape(str(r["id"]), quote=True)}">{html.escape(str(r["id"]))}</a>'
        cells = [f"<td>{anchor}</td>", f'<td class="{r.get("status")}">{html.escape(str(r.get("status")))}</td>',
                 f'<td class="method">{html.escape(i.method)}</td>', f'<td class="prompt">{html.escape(str(r.get("prompt", "")))}</td>']
        cells += [_cell(i.metrics.get(k), k) for k in keys]
        cells.append(_cell(r.get("timings", {}).get("total")))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(["<th>id</th><th>status</th><th>method</th><th>prompt</th>", *map(_header, keys),
                    "<th>time (s)</th>"])
    return (f'<div class="scroll"><table class="sortable" id="items"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _kv(data: dict[str, Any]) -> str:
    return "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}"
                   f"</dd>" for k, v in data.items())


def _item_card(item: Item, keys: list[str], media: Media) -> str:
    from .video_metrics import METRIC_KEYS

    r = item.record
    rid = html.escape(str(r["id"]), quote=True)
    source = media.clip(Path(r["source"]), "source") if r.get("source") else ""
    edited = media.image(Path(r["edited_frame"]), "edited first frame") if r.get("edited_frame") else \
        f'<div class="missing">made by the {html.escape(str(r.get("editor")))} editor (not saved)</div>'
    if r.get("status") == "ok":
        output = media.clip(Path(r["out"]), "output")
    else:
        output = f'<div class="error">failed: {html.escape(str(r.get("error")))}</div>'
    settings = {"backbone": r.get("backbone"), "editor": r.get("editor"), "model": r.get("model"), "seed": r.get("seed"),
                **item.settings, **(r.get("meta") or {})}
    values = {METRIC_KEYS[k][0]: _fmt(item.metrics[k], k) for k in keys if k in item.metrics}
    models = {k: v for k, v in item.metrics.items() if k.endswith("_model")}
    if r.get("metrics_error"):
        values["metrics error"] = r["metrics_error"]
    return (f'<section class="item" id="item-{rid}"><h3>{html.escape(str(r["id"]))} '
            f'<span class="{r.get("status")}">{html.escape(str(r.get("status")))}</span></h3>'
            f'<p class="prompt">{html.escape(str(r.get("prompt", "")))}</p>'
            f'<div class="media"><figure>{source}<figcaption>source</figcaption></figure>'
            f'<figure>{edited}<figcaption>edited first frame</figcaption></figure>'
            f'<figure>{output}<figcaption>output</figcaption></figure></div>'
            f'<div class="facts"><dl>{_kv({k: v for k, v in settings.items() if v not in (None, {}, "")})}</dl>'
            f'<dl>{_kv(values)}{_kv(models)}</dl></div></section>')


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.2em;margin:1.4em 0 .5em}h3{margin:.2em 0}
table{border-collapse:collapse;background:#fff;margin-bottom:1em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.prompt{max-width:24em}td.method{white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
.ok{color:#1a7f37}.failed{color:#c62828}.error{color:#c62828;max-width:24em}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fff;border:1px solid #ddd}
.chart .t{font-size:12px;font-weight:600}.chart .s{font-size:10px;fill:#666}.chart .axis{stroke:#ccc}
.item{background:#fff;border:1px solid #ddd;padding:10px;margin:12px 0}
.media{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0}figcaption{font-size:12px;color:#555}
video,img.frame{height:220px;max-width:100%;background:#000}
.strip{display:flex;overflow-x:auto;max-width:560px;height:220px;align-items:center;background:#eee}
.strip img{height:96px;margin-right:2px}
.facts{display:flex;gap:2em;flex-wrap:wrap}dl{display:grid;grid-template-columns:auto auto;gap:0 1em;margin:.5em 0}
dt{color:#555}dd{margin:0}.missing{color:#888;font-style:italic;max-width:20em}
"""

JS = """
(function () {
  function key(cell) {
    var s = cell.getAttribute('data-sort');
    return s === null ? cell.textContent.trim().toLowerCase() : parseFloat(s);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('thead th').forEach(function (th, col) {
      th.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        table.querySelectorAll('thead th').forEach(function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          var xe = x === '' || (typeof x === 'number' && isNaN(x)), ye = y === '' || (typeof y === 'number' && isNaN(y));
          if (xe || ye) { return xe === ye ? 0 : (xe ? 1 : -1); }
          var c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  var videos = document.querySelectorAll('video');
  if ('IntersectionObserver' in window) {
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { var p = e.target.play(); if (p && p.catch) { p.catch(function () {}); } }
        else { e.target.pause(); }
      });
    }, {threshold: 0.25});
    videos.forEach(function (v) { seen.observe(v); });
  }
})();
"""


def render(items: list[Item], page: Path, *, title: str = "AnyV2V results", embed: bool = False,
           sources: Sequence[Path] = (), link: Callable[[Path], str] | None = None) -> str:
    """The HTML of the report page for ``items`` (written at ``page``: links are relative to it,
    or ``link(absolute path)``)."""
    from . import __version__

    methods = group_methods(items)
    keys = metric_keys(items)
    media = Media(page, embed, link)
    ok = sum(i.record.get("status") == "ok" for i in items)
    models = sorted({f"{k.removesuffix('_model')}: {v}" for i in items for k, v in i.metrics.items()
                     if k.endswith("_model")})
    charts = "".join(_chart(methods, k) for k in keys)
    where = ", ".join(html.escape(os.path.relpath(Path(s).resolve(), media.base)) for s in sources)
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(items)} items ({ok} ok) in {len(methods)} method(s) from {where}. "
        f"Metric models: {html.escape('; '.join(models)) or 'none'}. Definitions: docs/batch-and-eval.md "
        f"(anyv2v {html.escape(__version__)}). Click a column to sort.</p>",
        "<h2>Mean metrics per method</h2>", _summary_table(methods, keys),
        f'<div class="charts">{charts}</div>' if charts else "<p>No metrics (run the batch with --eval).</p>",
        "<h2>Items</h2>", _items_table(items, keys),
        "".join(_item_card(i, keys, media) for i in items),
        f"<script>{JS}</script></body></html>",
    ])


def write_report(results: Sequence[str | os.PathLike], out: str | os.PathLike, *, title: str = "AnyV2V results",
                 embed: bool = False, force: bool = False) -> Path:
    """Write the report of ``results`` (``results.jsonl`` files or batch folders) to ``out``
    atomically; returns its path."""
    from .video import atomic_path

    if not results:
        raise InputError("give at least one results.jsonl or batch output folder")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"the report is an HTML file: name it .html, got {out}")
    paths = [results_path(p) for p in results]
    items = load_items(paths)
    text = render(items, out, title=title, embed=embed, sources=paths)
    with atomic_path(out, force) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out


# -- serving (anyv2v ui --batch) ------------------------------------------------------------
REPORT_ROUTE = "/anyv2v/report"


def media_files(items: list[Item]) -> set[Path]:
    """Every file a (linked) report of ``items`` shows: outputs, sources (or their first
    frames), edited frames — all that :func:`serve_reports` lets a browser fetch."""
    from .video import frame_files

    files: set[Path] = set()
    for i in items:
        r = i.record
        for key in ("out", "source", "edited_frame"):
            if not r.get(key):
                continue
            path = Path(r[key]).resolve()
            if path.is_dir():
                files.update(p.resolve() for p in frame_files(path)[:STRIP_FRAMES])
            elif path.is_file():
                files.add(path)
    return files


def serve_reports(server: Any, folders: Sequence[str | os.PathLike], title: str = "AnyV2V results") -> list[str]:
    """Add routes serving the live report of each batch folder to a running FastAPI/Starlette
    ``server`` (the UI's): ``/anyv2v/report/<n>/report.html``, rendered from its
    ``results.jsonl`` on every request, and the media that page links (those files only).
    Returns the pages' paths."""
    from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse

    folders = [Path(f).resolve() for f in folders]
    for folder in folders:
        results_path(folder)  # a missing results.jsonl: one line, before serving

    def page(index: int, path: str, file: str | None) -> Any:
        from urllib.parse import quote

        if not 0 <= index < len(folders):
            return PlainTextResponse("no such report", status_code=404)
        folder = folders[index]
        items = load_items([folder])
        if path == "report.html":
            return HTMLResponse(render(items, folder / "report.html", title=f"{title}: {folder.name}",
                                       sources=[results_path(folder)],
                                       link=lambda p: f"{REPORT_ROUTE}/{index}/file?path={quote(str(p))}"))
        if path == "file" and file and Path(file).resolve() in media_files(items):
            return FileResponse(Path(file).resolve())
        return PlainTextResponse("not a file of this report", status_code=404)

    async def route(request: Any) -> Any:
        import anyio

        index, path = request.path_params["index"], request.path_params["path"]
        return await anyio.to_thread.run_sync(page, int(index), path, request.query_params.get("path"))

    server.add_route(REPORT_ROUTE + "/{index:int}/{path}", route, methods=["GET"])
    return [report_url(i) for i in range(len(folders))]


def report_url(index: int) -> str:
    """The path of the ``index``-th batch report a UI serves."""
    return f"{REPORT_ROUTE}/{index}/report.html"


__all__ = ["Item", "Method", "load_items", "group_methods", "render", "write_report"]
