"""The web UI (``anyv2v ui``; needs the ``ui`` extra: ``pip install "anyv2v[ui]"``).

:func:`serve` builds the Gradio app (:mod:`.app`) over an :class:`.engine.Engine` and
serves it. Gradio is imported only here, when the UI is used.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from ..errors import AnyV2VError, InputError
from ..settings import DEFAULT_BACKBONE, DEFAULT_EDITOR
from .engine import Engine, EngineSettings, Generated, Job, JobCancelled

__all__ = ["Engine", "EngineSettings", "Generated", "Job", "JobCancelled", "require_gradio", "serve"]


def require_gradio() -> Any:
    """Import gradio, or fail with one line saying how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home
    try:
        import gradio
    except ImportError:
        raise AnyV2VError('the web UI needs gradio: pip install "anyv2v[ui]"') from None
    return gradio


def serve(settings: EngineSettings, *, host: str = "127.0.0.1", port: int = 7860, backbone: str = DEFAULT_BACKBONE,
          editor: str = DEFAULT_EDITOR, block: bool = True, reports: Sequence[str | os.PathLike] = ()) -> Any:
    """Build and launch the app on ``host:port``; returns the Blocks (running in the
    background when ``block`` is false: call ``.close()`` to stop it). ``reports``: batch
    output folders whose live report (``anyv2v report``) the page links."""
    require_gradio()
    from ..report import results_path, serve_reports
    from .app import build_app, theme

    for folder in reports:
        results_path(folder)  # one line if it is not a batch folder
    demo = build_app(settings, backbone=backbone, editor=editor, reports=reports)
    try:
        demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, theme=theme(),
                    show_error=True, inbrowser=False)  # no allowed_paths: the output folder is never served
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise InputError(f"cannot serve on {host}:{port} ({' '.join(str(exc).split()[:8])} ...); "
                         f"choose another --port or --host") from None
    if reports:
        serve_reports(demo.app, reports)
    if block:
        demo.block_thread()
    return demo
