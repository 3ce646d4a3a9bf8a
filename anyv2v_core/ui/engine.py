"""What the web UI runs, without Gradio: loaded models kept between requests, one job at
a time, the library API underneath.

:class:`Engine` is shared by every request of an app. Backbones are kept per
``(backbone, model, backbone options)`` and editors per ``(editor, model)`` (least recently
used evicted beyond ``max_pipelines``); inversions come from the inversion cache; a lock
serialises the jobs, so concurrent callers wait instead of racing on one model.

A request may name only the weights the server offers (``models``; any with
``allow_any_model``), and each session's videos go to a folder of its own with an
unguessable name (:meth:`Engine.output_dir`).
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import AnyV2VError, InputError
from ..protocols import EditRequest
from ..settings import DEFAULT_SEED

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from ..protocols import I2VBackbone

ProgressFn = Callable[[str, int, int], None]


class JobCancelled(AnyV2VError):
    """The job was cancelled (:meth:`Job.cancel`); nothing was written."""


class Job:
    """A handle on one request: :meth:`cancel` (from any thread) stops it at its next step,
    or before it starts if it is still waiting for the models."""

    def __init__(self) -> None:
        self._event = threading.Event()
        #: The last step reported, ``(stage, done, total)``.
        self.at: tuple[str, int, int] | None = None

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise JobCancelled("stopped (the Stop button)")

    def watch(self, progress: ProgressFn | None) -> ProgressFn:
        """``progress``, checking for a cancel at every step."""

        def report(stage: str, done: int, total: int) -> None:
            self.check()
            self.at = (stage, done, total)
            if progress is not None:
                progress(stage, done, total)

        return report


@dataclass
class EngineSettings:
    """How the app runs its models (the ``anyv2v ui`` options)."""

    out_dir: Path
    device: str = "auto"
    dtype: str = "auto"
    #: ``True``: the default inversion cache; a path: that folder; ``False``: no cache.
    cache: "bool | str | os.PathLike" = True
    #: The weights offered per backbone name (local folders or hub ids; the first is the
    #: default), e.g. from ``--model``. A backbone not named offers its official weights only.
    models: "dict[str, str | Sequence[str]]" = field(default_factory=dict)
    #: ``True``: a request may name any weights (a server path or hub id), not only ``models``.
    allow_any_model: bool = False
    #: How many backbones (and, separately, editors) stay loaded at once.
    max_pipelines: int = 2
    #: Largest working size side (pixels) and frame count a request may ask for.
    max_size: int = 1024
    max_frames: int = 64


class _Kept:
    """A small LRU of loaded models."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, load: Callable[[], Any]) -> tuple[Any, bool]:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key], False
        while len(self.items) >= self.limit:  # free memory before loading the next one
            self.items.popitem(last=False)
            _release_memory()
        value = self.items[key] = load()
        return value, True


def _release_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:limit].lower() or "video"


class Engine:
    """Loaded models and the jobs of the web UI (also usable from Python)."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._backbones = _Kept(settings.max_pipelines)
        self._editors = _Kept(settings.max_pipelines)
        self._lock = threading.Lock()
        self._lock_sessions = threading.Lock()
        self._counter = itertools.count(1)
        #: ``(kind, name, model)`` of every model load, in order (what was loaded, not reused).
        self.loads: list[tuple[str, str, str | None]] = []
        self._sessions: dict[str, str] = {}

    # -- models ------------------------------------------------------------------------------
    def offered(self, backbone: str) -> list[str | None]:
        """The weights a request may name for ``backbone``, the default first (``None``: the
        backbone's official weights, offered when the server was given none for it)."""
        given = self.settings.models.get(backbone) or []
        given = [given] if isinstance(given, str) else list(given)
        return list(dict.fromkeys(m.strip() for m in given if m and m.strip())) or [None]

    def model_for(self, backbone: str, model: str | None) -> str | None:
        """The weights to use: the request's (refused unless offered, or ``allow_any_model``),
        else the server's default for this backbone."""
        offered = self.offered(backbone)
        model = (model or "").strip() or None
        if model is None or model in offered or self.settings.allow_any_model:
            return model or offered[0]
        names = ", ".join(m or "the official weights" for m in offered)
        raise InputError(f"weights {model!r} are not offered for {backbone} by this server (it offers {names}; "
                         "anyv2v ui --model adds weights, --allow-any-model allows any)")

    def output_dir(self, session: str | None) -> Path:
        """Where the videos of ``session`` go: a folder of its own under ``out_dir`` with an
        unguessable name (``out_dir`` itself without a session: a library caller)."""
        out_dir = Path(self.settings.out_dir)
        if session is None:
            return out_dir
        with self._lock_sessions:
            token = self._sessions.setdefault(session, secrets.token_urlsafe(16))
        return out_dir / token

    def backbone(self, name: str, model: str | None = None, options: dict | None = None) -> "I2VBackbone":
        from .. import api

        model = self.model_for(name, model)
        opts = dict(options or {})
        key = (name, model, tuple(sorted(opts.items())))

        def load() -> Any:
            self.loads.append(("backbone", name, model))
            return api.load_backbone(name, model, self.settings.device, self.settings.dtype, options=opts)

        return self._backbones.get(key, load)[0]

    def editor(self, name: str) -> Any:
        from .. import api

        def load() -> Any:
            self.loads.append(("editor", name, None))
            return api.load_editor(name, device=self.settings.device, dtype=self.settings.dtype)

        return self._editors.get((name, None), load)[0]

    # -- jobs --------------------------------------------------------------------------------
    @staticmethod
    def first_frame(source: str | os.PathLike | None) -> "Image.Image":
        from .. import video

        if not source:
            raise InputError("upload a video first")
        return video.read_frames(source, 1)[0]

    def edit_frame(self, source: str | os.PathLike | None, editor: str, options: dict[str, Any], *,
                   prompt: str = "", seed: int = DEFAULT_SEED, edited_frame: str | os.PathLike | None = None,
                   progress: ProgressFn | None = None, job: Job | None = None) -> "Image.Image":
        """Stage 1: the first frame of ``source`` edited by ``editor`` with its declared
        ``options`` (validated; ``edited_frame`` is the image editor's input). ``job``: a
        handle to cancel it by (an editor that reports progress stops at its next step)."""
        from .. import api

        job = job or Job()
        first = self.first_frame(source)
        request = EditRequest(prompt=prompt, seed=int(seed), options=dict(options), progress=job.watch(progress),
                              edited_frame=Path(edited_frame) if edited_frame else None)
        api.prepare_request(editor, request)
        with self._lock:
            job.check()
            edited = self.editor(editor).edit(first, request).convert("RGB")
        job.check()
        return edited

    def generate(self, source: str | os.PathLike | None, edited_first: "Image.Image | None", prompt: str, *,
                 backbone: str, model: str | None = None, backbone_options: dict | None = None,
                 settings: dict[str, Any] | None = None, progress: ProgressFn | None = None,
                 job: Job | None = None, session: str | None = None) -> "Generated":
        """Stage 2: propagate ``edited_first`` through ``source`` with ``backbone`` into a
        new mp4 in the output folder (never overwriting one). ``settings``: run settings by
        name (the page's sampling fields, :mod:`anyv2v_core.settings`); a missing one is the
        backbone's default. ``job``: a handle to cancel it by; a cancelled job raises
        :class:`JobCancelled` at its next step and writes nothing (a cached inversion is kept
        only if it was finished). ``session``: the browser session, whose own folder
        (:meth:`output_dir`) gets the video. ``model`` must be one the server offers."""
        from .. import api
        from .. import settings as schema
        from ..plugins import get_registry

        if not source:
            raise InputError("upload a video first")
        if edited_first is None:
            raise InputError("edit the first frame first (or upload your edited first frame)")
        if not (prompt or "").strip():
            raise InputError("write a prompt describing the edited video")
        settings = dict(settings or {})
        run = schema.collect(settings, "page")  # every value checked before anything loads
        cap = self.settings
        size, n_frames = run["size"], run["num_frames"]
        if size is not None and max(size) > cap.max_size:
            raise InputError(f"this server allows sizes up to {cap.max_size} pixels a side, not {size[0]}x{size[1]} "
                             "(anyv2v ui --max-size)")
        if n_frames is not None and n_frames > cap.max_frames:
            raise InputError(f"this server allows up to {cap.max_frames} frames, not {n_frames} "
                             "(anyv2v ui --max-frames)")
        cls = get_registry().backbone(backbone).load()
        model = self.model_for(backbone, model)  # weights the server does not offer: refused before loading
        key = (backbone, model, tuple(sorted((backbone_options or {}).items())))
        # Before loading anything; the weights of a backbone already loaded take their memory already.
        api.check_memory(cls if key in self._backbones.items else backbone, key[1],
                         api.clip_spec(cls.defaults, n_frames, size, run["fps"]), device=self.settings.device,
                         dtype=self.settings.dtype, steps=run["steps"] or cls.defaults.steps,
                         cfg=cls.defaults.cfg if run["cfg"] is None else run["cfg"])
        out_dir = self.output_dir(session)
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = out_dir / f"{_slug(Path(source).stem)}-{backbone}-{stamp}-{next(self._counter)}.mp4"
        started = time.perf_counter()
        job = job or Job()
        cache = self.settings.cache
        with self._lock:
            job.check()
            bb = self.backbone(backbone, model, backbone_options)
            result = api.edit(source, prompt=prompt, edited_image=edited_first, out=out, backbone=bb,
                              **schema.cache_values(cache),
                              device=self.settings.device, dtype=self.settings.dtype, memory_check=False,
                              progress=job.watch(progress), **settings)
        assert result.out is not None
        return Generated(result.out, result.inversion_reused, time.perf_counter() - started,
                         f"{result.clip.n_frames} frames {result.clip.width}x{result.clip.height}")


@dataclass
class Generated:
    """A finished "Generate video" request."""

    out: Path
    inversion_reused: bool
    seconds: float
    clip: str

    def summary(self) -> str:
        inversion = "inversion reused from the cache" if self.inversion_reused else "source inverted"
        return f"Saved {self.out} ({self.clip}; {inversion}; {self.seconds:.1f} s)"
