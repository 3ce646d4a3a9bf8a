"""``anyv2v ui``: serve the web UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..console import err
from ..errors import InputError
from ..settings import DEFAULT_BACKBONE, DEFAULT_EDITOR
from .app import app, with_settings


def parse_models(values: list[str], backbone: str) -> dict[str, list[str]]:
    """``--model PATH`` (for ``backbone``) or ``--model NAME=PATH`` (repeatable): the weights
    offered per backbone, in order (the first is its default)."""
    models: dict[str, list[str]] = {}
    for value in values:
        name, sep, model = value.partition("=")
        if not sep or "/" in name or not name:  # a path or hub id may contain '=' only after a '/'
            name, model = backbone, value
        if not model:
            raise InputError(f"--model {value!r}: give a folder or hub id (NAME=PATH or PATH)")
        if model not in models.setdefault(name, []):
            models[name].append(model)
    return models


@app.command()
@with_settings("ui")
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (0.0.0.0 exposes the app to your "
                             "network: it has no login)."),
    port: int = typer.Option(7860, "--port", help="Port to serve on."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, "--backbone", "-b", help="Backbone selected when the page opens."),
    editor: str = typer.Option(DEFAULT_EDITOR, "--editor", help="Editor selected when the page opens."),
    model: list[str] = typer.Option([], "--model", "-m", metavar="PATH|NAME=PATH",
                                    help="Weights offered for a backbone: PATH (for --backbone) or NAME=PATH; "
                                    "repeatable (the first of a backbone is its default). The page lists them; a "
                                    "request naming other weights is refused."),
    allow_any_model: bool = typer.Option(False, "--allow-any-model", help="Let a request name any weights (a free "
                                         "text box taking any server path or hub id), not only the --model ones."),
    out_dir: Path = typer.Option(Path("anyv2v-ui-out"), "--out-dir", "-o", help="Folder for the generated videos "
                                 "(new files only, nothing overwritten)."),
    batch: list[Path] = typer.Option([], "--batch", help="A batch output folder (results.jsonl) whose report "
                                     "(anyv2v report) the page links; repeatable."),
    max_pipelines: int = typer.Option(2, "--max-pipelines", help="Backbones (and editors) kept loaded at once; "
                                      "the least recently used one is unloaded beyond this."),
    max_size: int = typer.Option(1024, "--max-size", help="Largest working size side (pixels) a request may ask "
                                 "for."),
    max_frames: int = typer.Option(64, "--max-frames", help="Most frames a request may ask for."),
    **settings: Any,
) -> None:
    """Serve the web UI (Gradio): upload a video, edit its first frame, generate the edited video."""
    from .. import settings as schema
    from ..plugins import get_registry
    from ..ui import EngineSettings, require_gradio, serve

    require_gradio()
    reg = get_registry()
    reg.backbone(backbone)  # unknown names: the registry's one-line error
    reg.editor(editor)
    if max_pipelines < 1:
        raise InputError("--max-pipelines must be at least 1")
    if max_size < 8 or max_frames < 2:
        raise InputError("--max-size must be at least 8 and --max-frames at least 2")
    models = parse_models(model, backbone)
    for name in models:
        reg.backbone(name)
    run = schema.collect(settings, "ui")
    engine = EngineSettings(out_dir=out_dir.resolve(), device=run["device"], dtype=run["dtype"], cache=run.cache(),
                            models=models, allow_any_model=allow_any_model, max_pipelines=max_pipelines,
                            max_size=max_size, max_frames=max_frames)
    err.print(f"AnyV2V UI on http://{host}:{port} (outputs in {engine.out_dir}, a folder per session); Ctrl-C to stop",
              highlight=False)
    import logging

    ui_log = logging.getLogger("anyv2v.ui")  # the server log: refused requests, failures with tracebacks
    if not ui_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        ui_log.addHandler(handler)
    ui_log.setLevel(logging.INFO)
    ui_log.propagate = False
    serve(engine, host=host, port=port, backbone=backbone, editor=editor, reports=batch)
