"""The Gradio app of ``anyv2v ui``.

The page is built from the plugin registry: every installed editor and backbone is in the
drop-downs, and each one's declared options become form fields (shown while it is
selected). The callbacks (:class:`Callbacks`) are plain methods over an
:class:`~anyv2v_core.ui.engine.Engine`; they turn every failure into a one-line
``gr.Error`` shown in the page, never a traceback.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..console import STAGE_LABELS
from ..errors import AnyV2VError, one_line
from ..settings import DEFAULT_BACKBONE, DEFAULT_EDITOR, DEFAULT_SEED
from .engine import Engine, EngineSettings, Job, JobCancelled

if TYPE_CHECKING:  # pragma: no cover
    import gradio as gr

log = logging.getLogger("anyv2v.ui")

EXAMPLE = Path(__file__).parent / "assets" / "example.mp4"
def sampling_fields() -> list[Any]:
    """The stage-2 fields of the page, in order: the run settings the page takes
    (:mod:`anyv2v_core.settings`, place ``page``)."""
    from .. import settings as schema

    return schema.for_place("page")


def backbone_defaults(name: str) -> dict[str, Any]:
    """The page's stage-2 field values for backbone ``name`` (its reference settings)."""
    from .. import settings as schema
    from ..plugins import get_registry

    values = schema.backbone_values(get_registry().backbone(name).load().defaults, "page")
    return {k: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else v for k, v in values.items()}


def _friendly(func: Callable) -> Callable:
    """Run a callback; any failure becomes a ``gr.Error`` carrying one readable line."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import gradio as gr

        try:
            return func(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - the page gets a line, the server log the traceback
            if isinstance(exc, AnyV2VError):
                log.info("request refused: %s", one_line(exc))  # the page shows it; the server log keeps it
            else:
                log.exception("UI callback failed")
            raise gr.Error(one_line(exc), print_exception=False) from None

    return wrapper


def _progress_fn(progress: Any) -> Callable[[str, int, int], None]:
    def update(stage: str, done: int, total: int) -> None:
        progress((done, total), desc=STAGE_LABELS.get(stage, stage), unit="steps")

    return update


@dataclass
class OptionField:
    """A form field for a declared option of a plugin."""

    kind: str  # "editor" or "backbone"
    plugin: str
    key: str
    type: str


def _clean(value: Any, type_: str) -> Any:
    """A form value as the option parser expects it; ``None`` for an empty field."""
    if value is None or value == "":
        return None
    if type_ == "path":
        return str(getattr(value, "name", value))
    if type_ == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Callbacks:
    """The page's actions, as plain methods (unit-tested without a browser)."""

    def __init__(self, engine: Engine, option_fields: list[OptionField] | None = None) -> None:
        self.engine = engine
        self.option_fields = option_fields or []
        #: The running (or waiting) job of each browser session, for its Stop button.
        self.jobs: dict[str, Job] = {}

    def _job(self, session: str | None) -> Job:
        job = Job()
        if session is not None:
            self.jobs[session] = job
        return job

    def _done(self, session: str | None, job: Job) -> None:
        if session is not None and self.jobs.get(session) is job:
            del self.jobs[session]

    def stop(self, session: str | None) -> str:
        """Cancel this session's job (other sessions' jobs are not touched)."""
        job = self.jobs.get(session) if session is not None else None
        if job is None:
            return "Nothing to stop."
        job.cancel()
        return "Stopping after the current step ..."

    def options_of(self, kind: str, plugin: str, values: list[Any]) -> dict[str, Any]:
        """The filled-in options of ``plugin`` from the values of all option fields."""
        return {f.key: v for f, raw in zip(self.option_fields, values)
                if f.kind == kind and f.plugin == plugin and (v := _clean(raw, f.type)) is not None}

    @_friendly
    def show_first_frame(self, source: str | None) -> Any:
        return self.engine.first_frame(source) if source else None

    @_friendly
    def edit_frame(self, source: str | None, editor: str, prompt: str, seed: float | None,
                   edited_upload: str | None, option_values: list[Any], progress: Any = None,
                   session: str | None = None) -> Any:
        options = self.options_of("editor", editor, option_values)
        job = self._job(session)
        try:
            return self.engine.edit_frame(source, editor, options, prompt=prompt or "",
                                          seed=DEFAULT_SEED if seed is None else int(seed),
                                          edited_frame=edited_upload if editor == "image" else None,
                                          progress=_progress_fn(progress) if progress is not None else None,
                                          job=job)
        finally:
            self._done(session, job)

    @_friendly
    def generate(self, source: str | None, edited: Any, prompt: str, backbone: str, model: str | None,
                 sampling: dict[str, Any], option_values: list[Any], progress: Any = None,
                 session: str | None = None) -> tuple[str | None, str]:
        """Returns the video's path and a one-line summary for the page (no video and a
        "Stopped" line when the session's Stop button cancelled it)."""
        values = {f.name: _clean(sampling.get(f.name), f.type) for f in sampling_fields()}
        values = {k: v for k, v in values.items() if v is not None}
        if isinstance(edited, (str, os.PathLike)):
            from ..video import load_image

            edited = load_image(edited)
        job = self._job(session)
        try:
            out = self.engine.generate(source, edited, prompt, backbone=backbone, model=model,
                                       backbone_options=self.options_of("backbone", backbone, option_values),
                                       settings=values, session=session,
                                       progress=_progress_fn(progress) if progress is not None else None, job=job)
        except JobCancelled:
            where = ""
            if job.at:
                stage, done, total = job.at
                where = f" during {STAGE_LABELS.get(stage, stage)} after {done} of {total} steps"
            return None, f"Stopped{where}; nothing was saved."
        finally:
            self._done(session, job)
        return str(out.out), out.summary()


DEFAULT_WEIGHTS = "the backbone's default weights"


def weights_choices(engine: Engine, backbone: str) -> list[tuple[str, str]]:
    """The weights list of ``backbone``: ``(label, value)`` of each model the server offers."""
    return [(m or DEFAULT_WEIGHTS, m or "") for m in engine.offered(backbone)]


def weights_field(gr: Any, engine: Engine, backbone: str) -> Any:
    """The "Weights" field: a list of the offered models, or a free text box with ``allow_any_model``."""
    if engine.settings.allow_any_model:
        return gr.Textbox(engine.model_for(backbone, None) or "", label="Weights",
                          placeholder="default: the backbone's official weights (a hub id or a local folder)",
                          elem_id="model")
    choices = weights_choices(engine, backbone)
    return gr.Dropdown(choices, value=choices[0][1], label="Weights", allow_custom_value=False, elem_id="model",
                       info="the weights this server offers (anyv2v ui --model)")


def weights_update(gr: Any, engine: Engine, backbone: str) -> Any:
    if engine.settings.allow_any_model:
        return gr.update(value=engine.model_for(backbone, None) or "")
    choices = weights_choices(engine, backbone)
    return gr.update(choices=choices, value=choices[0][1])


def _option_component(gr: Any, option: Any, elem_id: str) -> Any:
    label = option.name + (" (required)" if option.required else "")
    common = {"label": label, "info": option.help or None, "elem_id": elem_id}
    if option.type == "bool":
        return gr.Checkbox(value=bool(option.default), **common)
    if option.type in ("int", "float") and option.default is None:  # a number field cannot be blank
        return gr.Textbox("", placeholder=f"blank: the plugin's default ({option.type})", **common)
    if option.type == "int":
        return gr.Number(value=option.default, precision=0, **common)
    if option.type == "float":
        return gr.Number(value=option.default, **common)
    if option.type == "choice":
        return gr.Dropdown(choices=list(option.choices), value=option.default, **common)
    if option.type == "path":
        common.pop("info")
        return gr.File(label=label, type="filepath", elem_id=elem_id)
    return gr.Textbox(value=option.default or "", **common)


def build_app(settings: EngineSettings, backbone: str = DEFAULT_BACKBONE, editor: str = DEFAULT_EDITOR,
              reports: "Sequence[str | os.PathLike]" = ()) -> "gr.Blocks":
    """The Gradio Blocks of the UI (not launched). Models load on first use. ``reports``:
    batch folders linked at the top (their pages are served by :func:`anyv2v_core.report.serve_reports`)."""
    import gradio as gr
    from gradio import processing_utils

    from ..plugins import get_registry

    registry = get_registry()
    editors = sorted(registry.editors)
    backbones = sorted(registry.backbones)
    if not backbones:
        raise AnyV2VError("no backbone plugin is installed (e.g. pip install anyv2v-backbone-i2vgenxl)")
    backbone = backbone if backbone in backbones else backbones[0]
    editor = editor if editor in editors else editors[0]
    engine = Engine(settings)
    option_fields: list[OptionField] = []
    option_components: list[Any] = []
    calls = Callbacks(engine, option_fields)

    with gr.Blocks(title="AnyV2V") as demo:
        gr.Markdown("## AnyV2V: edit a video by editing its first frame\n"
                    "1. Upload a video. 2. Edit its first frame with an image editor (or upload your own edit). "
                    "3. Generate: the image-to-video model carries the edit through the clip.")
        if reports:
            from ..report import report_url

            links = ", ".join(f"[{Path(f).resolve().name}]({report_url(i)})" for i, f in enumerate(reports))
            gr.Markdown(f"Batch reports (metrics, outputs side by side): {links}", elem_id="batch-reports")
        with gr.Row():
            with gr.Column():
                source = gr.Video(label="Source video", sources=["upload"], elem_id="source-video")
                if EXAMPLE.is_file():
                    gr.Examples([[str(EXAMPLE)]], inputs=[source], label="Example clip")
                first = gr.Image(label="First frame", interactive=False, elem_id="first-frame")
                prompt = gr.Textbox(label="Prompt", placeholder="describe the edited video, e.g. 'a red car on a road'",
                                    elem_id="prompt")
            with gr.Column():
                editor_dd = gr.Dropdown(editors, value=editor, label="Image editor (stage 1)", elem_id="editor")
                editor_groups = {}
                image_upload = None
                for name in editors:
                    component = registry.editor(name)
                    with gr.Group(visible=name == editor) as group:
                        gr.Markdown(component.description or name)
                        if name == "image":
                            image_upload = gr.Image(label="Your edited first frame", type="filepath",
                                                    sources=["upload"], elem_id="editor-image-upload")
                        for option in component.options:
                            option_fields.append(OptionField("editor", name, option.key, option.type))
                            option_components.append(_option_component(gr, option, f"editor-{name}-{option.name}"))
                    editor_groups[name] = group
                frame_seed = gr.Number(DEFAULT_SEED, precision=0, label="Editor seed", elem_id="editor-seed")
                if image_upload is None:  # no `image` editor registered
                    image_upload = gr.State(None)
                edit_button = gr.Button("Edit frame", elem_id="edit-frame")
                edited = gr.Image(label="Edited first frame (retry, or upload your own)", type="pil",
                                  sources=["upload"], interactive=True, elem_id="edited-frame")
            with gr.Column():
                backbone_dd = gr.Dropdown(backbones, value=backbone, label="Image-to-video backbone (stage 2)",
                                          elem_id="backbone")
                model = weights_field(gr, engine, backbone)
                backbone_groups = {}
                for name in backbones:
                    component = registry.backbone(name)
                    with gr.Group(visible=name == backbone and bool(component.options)) as group:
                        for option in component.options:
                            option_fields.append(OptionField("backbone", name, option.key, option.type))
                            option_components.append(_option_component(gr, option, f"backbone-{name}-{option.name}"))
                    backbone_groups[name] = group
                defaults = backbone_defaults(backbone)
                sampling: dict[str, Any] = {}
                with gr.Accordion("Sampling options (the backbone's reference settings)", open=False):
                    for field in sampling_fields():
                        key = field.name
                        common = {"label": field.label or key, "info": field.help, "elem_id": f"opt-{key}"}
                        if field.type in ("int", "float"):
                            sampling[key] = gr.Number(defaults[key], precision=0 if field.type == "int" else None,
                                                      **common)
                        elif field.type == "choice":
                            sampling[key] = gr.Dropdown(list(field.choices), value=defaults[key], **common)
                        else:
                            sampling[key] = gr.Textbox(defaults[key], **common)
                with gr.Row():
                    generate_button = gr.Button("Generate video", variant="primary", elem_id="generate", scale=3)
                    stop_button = gr.Button("Stop", variant="stop", elem_id="stop", scale=1)
                result = gr.Video(label="Edited video", interactive=False, elem_id="result-video")
                status = gr.Markdown(elem_id="status")

        source.change(calls.show_first_frame, source, first)

        def on_editor(name: str) -> list[Any]:
            return [gr.update(visible=n == name) for n in editor_groups]

        editor_dd.change(on_editor, editor_dd, list(editor_groups.values()))

        def on_backbone(name: str) -> list[Any]:
            values = backbone_defaults(name)
            return ([weights_update(gr, engine, name)]
                    + [gr.update(visible=n == name and bool(registry.backbone(n).options)) for n in backbone_groups]
                    + [gr.update(value=values[f.name]) for f in sampling_fields()])

        backbone_dd.change(on_backbone, backbone_dd, [model, *backbone_groups.values(), *sampling.values()])

        # Inputs as a set: the callback gets one {component: value} dict, and Gradio sees its
        # gr.Progress parameter (with *args it would not track progress).
        def option_values(data: dict) -> list[Any]:
            return [data[c] for c in option_components]

        # Gradio passes the request (for the session's id) to a parameter annotated gr.Request;
        # the annotations are set as objects: this module's are strings naming a local import
        def with_request(fn: Callable) -> Callable:
            fn.__annotations__ = {"request": gr.Request}
            return fn

        @with_request
        def do_edit(data, request, progress=gr.Progress()):
            return calls.edit_frame(data[source], data[editor_dd], data[prompt], data[frame_seed],
                                    data[image_upload], option_values(data), progress=progress,
                                    session=request.session_hash)

        edit_button.click(do_edit, {source, editor_dd, prompt, frame_seed, image_upload, *option_components},
                          edited, concurrency_id="models")

        @with_request
        def do_generate(data, request, progress=gr.Progress()):
            settings = {key: data[c] for key, c in sampling.items()}
            out, summary = calls.generate(data[source], data[edited], data[prompt], data[backbone_dd], data[model],
                                          settings, option_values(data), progress=progress,
                                          session=request.session_hash)
            # the page gets a copy in Gradio's cache (an unguessable hashed path): the output
            # folder itself is not served (serve() allows no path), so no one fetches others' videos
            return (processing_utils.save_file_to_cache(out, demo.GRADIO_CACHE) if out else None), summary

        generate_button.click(do_generate, {source, edited, prompt, backbone_dd, model, *option_components,
                                            *sampling.values()}, [result, status], concurrency_id="models")

        @with_request
        def do_stop(request):
            gr.Info(calls.stop(request.session_hash))

        # outside the queue: it must run while this session's job holds the models. Its reply is
        # a message box, not the status line: a job that stops at once writes "Stopped ..."
        # there first, and the reply arriving after it must not replace it
        stop_button.click(do_stop, None, None, queue=False)
    demo.queue(default_concurrency_limit=1)
    demo.engine = engine  # type: ignore[attr-defined]
    return demo


def theme() -> Any:
    """A theme using the system's fonts (the page fetches nothing from the internet)."""
    import gradio as gr

    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=system, font_mono=["ui-monospace", "monospace"])
