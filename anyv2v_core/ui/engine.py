"""What the web UI runs, without Gradio: loaded models kept between requests, one job at
a time, the library API underneath.

:class:`Engine` is shared by every request of an app. Backbones are kept per
``(backbone, model, backbone options)`` and editors per ``(editor, model)`` (least recently
used evicted beyond ``max_pipelines``); inversions come from the inversion cache; a lock
serialises the jobs, so concurrent callers wait instead of racing on one model.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import InputError
from ..protocols import EditRequest

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from ..protocols import EditOptions
    from ..protocols import I2VBackbone

ProgressFn = Callable[[str, int, int], None]


@dataclass
class EngineSettings:
    """How the app runs its models (the ``anyv2v ui`` options)."""

    out_dir: Path
    device: str = "auto"
    dtype: str = "auto"
    #: ``True``: the default inversion cache; a path: that folder; ``False``: no cache.
    cache: "bool | str | os.PathLike" = True
    #: Default weights per backbone name (a local folder or hub id), e.g. from ``--model``.
    models: dict[str, str] = field(default_factory=dict)
    #: How many backbones (and, separately, editors) stay loaded at once.
    max_pipelines: int = 2


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
        self._counter = itertools.count(1)
        #: ``(kind, name, model)`` of every model load, in order (what was loaded, not reused).
        self.loads: list[tuple[str, str, str | None]] = []

    # -- models ------------------------------------------------------------------------------
    def model_for(self, backbone: str, model: str | None) -> str | None:
        """The weights to use: the page's field, else the app's ``--model`` for this backbone."""
        model = (model or "").strip() or self.settings.models.get(backbone)
        return model or None

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
                   prompt: str = "", seed: int = 8888, edited_frame: str | os.PathLike | None = None,
                   progress: ProgressFn | None = None) -> "Image.Image":
        """Stage 1: the first frame of ``source`` edited by ``editor`` with its declared
        ``options`` (validated; ``edited_frame`` is the image editor's input)."""
        from .. import api

        first = self.first_frame(source)
        request = EditRequest(prompt=prompt, seed=int(seed), options=dict(options), progress=progress,
                              edited_frame=Path(edited_frame) if edited_frame else None)
        api.prepare_request(editor, request)
        with self._lock:
            return self.editor(editor).edit(first, request).convert("RGB")

    def generate(self, source: str | os.PathLike | None, edited_first: "Image.Image | None", prompt: str, *,
                 backbone: str, model: str | None = None, backbone_options: dict | None = None,
                 options: "EditOptions | None" = None, n_frames: int | None = None,
                 size: tuple[int, int] | None = None, fps: int | None = None, inversion_steps: int | None = None,
                 progress: ProgressFn | None = None) -> "Generated":
        """Stage 2: propagate ``edited_first`` through ``source`` with ``backbone`` into a
        new mp4 in the output folder (never overwriting one). ``None``: the backbone's default."""
        from .. import api
        from ..protocols import EditOptions, InversionOptions

        if not source:
            raise InputError("upload a video first")
        if edited_first is None:
            raise InputError("edit the first frame first (or upload your edited first frame)")
        if not (prompt or "").strip():
            raise InputError("write a prompt describing the edited video")
        options = options or EditOptions()
        out_dir = Path(self.settings.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = out_dir / f"{_slug(Path(source).stem)}-{backbone}-{stamp}-{next(self._counter)}.mp4"
        started = time.perf_counter()
        with self._lock:
            bb = self.backbone(backbone, model, backbone_options)
            result = api.edit(
                source, prompt=prompt, editor=_GivenFrame(edited_first), request=EditRequest(prompt=prompt,
                seed=options.seed), out=out, backbone=bb, n_frames=n_frames, size=size, fps=fps,
                options=options, inversion_options=InversionOptions(steps=inversion_steps),
                cache=self.settings.cache, device=self.settings.device, dtype=self.settings.dtype,
                progress=progress,
            )
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


class _GivenFrame:
    """An editor returning the frame already shown in the page (stage 1 ran before)."""

    name = "given-frame"

    def __init__(self, frame: "Image.Image") -> None:
        self.frame = frame

    def edit(self, first_frame: "Image.Image", request: EditRequest) -> "Image.Image":
        return self.frame
