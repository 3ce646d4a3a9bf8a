"""Every run setting of anyv2v, declared once.

A :class:`Setting` holds a setting's name, type, default (a value, or :data:`BACKBONE`: "the
backbone's reference value"), bounds, help and the places that take it. Everything else is
derived from :data:`SETTINGS`:

* the options of ``anyv2v edit`` / ``invert`` / ``edit-frame`` (:func:`typer_parameters`),
* the library API's keyword arguments and their validation (:func:`collect`),
* the per-item keys of batch manifests, the sampling fields of the web UI,
* the flags an editor or backbone option may not reuse (:data:`RESERVED_FLAGS`),
* the options table of docs/cli.md (:func:`markdown_table`; a test fails when it is stale).

Validation (:func:`check`) gives the same one-line message wherever a value comes from, and
runs before any model is loaded. This module imports nothing heavy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from .ddim_inversion import FAST_SOLVER, RENOISE_ITERATIONS
from .errors import InputError

#: A ``protocols.BackboneDefaults`` (not imported: protocols builds on this module).
BackboneDefaults = Any

#: The seed of every random draw when none is given.
DEFAULT_SEED = 8888
#: The backbone used when none is named (the AnyV2V reference backbone).
DEFAULT_BACKBONE = "i2vgenxl"
#: The editor used when none is named (a first frame edited by the user).
DEFAULT_EDITOR = "image"
#: The official AnyV2V code's negative prompt (SPEC §2), the default of the backbones it ran with it.
REFERENCE_NEGATIVE_PROMPT = (
    "Distorted, discontinuous, Ugly, blurry, low resolution, motionless, static, disfigured, "
    "disconnected limbs, Ugly faces, incomplete arms"
)


class _FromBackbone:
    """The default of a setting whose value is the backbone's reference setting."""

    def __repr__(self) -> str:
        return "BACKBONE"


#: Default marker: "the backbone's reference value" (``BackboneDefaults``).
BACKBONE: Any = _FromBackbone()

#: Where a setting goes: the edit pass (``EditOptions``), the inversion (``InversionOptions``),
#: the clip and frame handling, memory options (``MemoryOptions``), or the run itself.
GROUPS = ("sampling", "inversion", "clip", "memory", "run")
#: The places that take settings: the commands ``edit``, ``invert``, ``edit-frame``, ``batch``,
#: ``ui`` and ``eval`` (their CLI options), ``manifest`` (per-item keys of batch manifests), ``page``
#: (the web UI's sampling fields) and ``api`` (keywords of the library's ``edit``/``edit_many``).
PLACES = ("edit", "invert", "edit-frame", "batch", "ui", "eval", "manifest", "page", "api")

_ALL = frozenset({"edit", "manifest", "page", "api"})
_RUN = frozenset({"edit", "manifest", "api"})
_SERVE = frozenset({"edit", "invert", "edit-frame", "batch", "ui", "api"})
_MEMORY = frozenset({"edit", "invert", "batch", "api"})


@dataclass(frozen=True)
class Setting:
    """One run setting."""

    name: str
    #: int, float, str, bool, choice, size ("WxH"), position (frame index or "1.5s"), path.
    type: str
    default: Any
    help: str
    group: str
    places: frozenset[str] = _ALL
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    #: Extra accepted spellings of a choice, mapped to the canonical one.
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: A size setting that also takes this word (out_size: "source").
    word: str | None = None
    #: The CLI flag (default ``--name-with-dashes``), a short flag, and for a bool that is on
    #: by default the flag that turns it off (default ``--no-name-with-dashes``).
    flag: str | None = None
    short: str | None = None
    off_flag: str | None = None
    #: A bool flag that is on by default has an ``--no-...`` form.
    label: str = ""
    #: How to read the backbone's reference value (settings with default ``BACKBONE``).
    from_backbone: Callable[[BackboneDefaults], Any] | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def cli_off_flag(self) -> str:
        return self.off_flag or "--no-" + self.cli_flag[2:]

    @property
    def cli_flags(self) -> tuple[str, ...]:
        """Every flag the CLI accepts for this setting."""
        flags = [self.cli_flag]
        if self.type == "bool" and self.default is True:
            flags.append(self.cli_off_flag)
        if self.short:
            flags.append(self.short)
        return tuple(flags)

    @property
    def what(self) -> str:
        """What a valid value is, for messages and docs."""
        lo, hi = self.minimum, self.maximum
        if self.type in ("int", "float"):
            noun = "an integer" if self.type == "int" else "a number"
            if lo is not None and hi is not None:
                return f"{noun} in [{_num(lo)}, {_num(hi)}]"
            if lo is not None:
                return f"{noun} >= {_num(lo)}"
            return noun
        if self.type == "choice":
            return "one of " + ", ".join(self.choices)
        if self.type == "size":
            return '"WxH", positive multiples of 8' + (f', or "{self.word}"' if self.word else "")
        if self.type == "position":
            return 'a frame index (12) or a time ("1.5s")'
        if self.type == "bool":
            return "true or false"
        if self.type == "path":
            return "a path"
        return "a string"

    def default_for(self, defaults: "BackboneDefaults | None" = None) -> Any:
        """The default value, the backbone's reference one for :data:`BACKBONE` settings."""
        if self.default is BACKBONE:
            if defaults is None or self.from_backbone is None:
                return None
            return self.from_backbone(defaults)
        return self.default


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _s(name: str, type: str, default: Any, help: str, group: str, **kw: Any) -> Setting:
    return Setting(name, type, default, help, group, **kw)


def _size(d: BackboneDefaults) -> str:
    return f"{d.width}x{d.height}"


#: Every run setting, in the order of ``anyv2v edit --help`` and docs/cli.md.
SETTINGS: tuple[Setting, ...] = (
    # -- the edit pass (EditOptions) ---------------------------------------------------------
    _s("steps", "int", BACKBONE, "Sampling steps T of the full schedule.", "sampling", minimum=1,
       places=_ALL | {"invert"}, from_backbone=lambda d: d.steps, label="Sampling steps"),
    _s("t_idx", "int", BACKBONE, "Start index into the T-step schedule (1: t=961 of 50 steps).", "sampling",
       minimum=0, from_backbone=lambda d: d.t_idx, label="Start index"),
    _s("cfg", "float", BACKBONE, "Classifier-free guidance scale (<= 1: no unconditional branch).", "sampling",
       minimum=0, from_backbone=lambda d: d.cfg, label="Guidance scale"),
    _s("tau_conv", "float", BACKBONE, "Fraction of T with convolution-feature injection.", "sampling",
       minimum=0, maximum=1, from_backbone=lambda d: d.tau_conv, label="τ conv"),
    _s("tau_sa", "float", BACKBONE, "Fraction of T with spatial-attention Q/K injection.", "sampling",
       minimum=0, maximum=1, from_backbone=lambda d: d.tau_sa, label="τ spatial attention"),
    _s("tau_ta", "float", BACKBONE, "Fraction of T with temporal-attention Q/K injection.", "sampling",
       minimum=0, maximum=1, from_backbone=lambda d: d.tau_ta, label="τ temporal attention"),
    _s("tau_ca", "float", BACKBONE, "Fraction of T with cross-attention Q/K injection, for backbones that "
       "offer it (SEINE; 0 in the paper).", "sampling", minimum=0, maximum=1, from_backbone=lambda d: d.tau_ca,
       label="τ cross attention"),
    _s("negative_prompt", "str", BACKBONE, "Negative prompt of the CFG unconditional branch.", "sampling",
       from_backbone=lambda d: d.negative_prompt, label="Negative prompt"),
    _s("random_ratio", "float", 0.0, "Blend of fresh (seeded) noise into the inverted start latent.", "sampling",
       minimum=0, maximum=1, label="Random ratio"),
    _s("sampler", "str", "ddim", "Edit sampler: ddim (the paper's; a flow backbone's Euler step) or one the "
       "backbone offers (SEINE: ddpm; wan: midpoint, fireflow).",
       "sampling", label="Sampler"),
    _s("compat", "choice", "default", "default: anyv2v's behaviour; official: reproduce the official AnyV2V "
       "code where a backbone deliberately differs from it (SEINE's start latent and DDPM grid, ConsistI2V's "
       "source branch; docs/fidelity.md); invert: keep the latents an official edit reads.", "sampling",
       choices=("default", "official"), places=_ALL | {"invert"}, label="Compatibility"),
    _s("seed", "int", DEFAULT_SEED, "Seed of every random draw (noise blend, stochastic samplers and editors).",
       "sampling", minimum=0, maximum=2**63 - 1, places=_ALL | {"edit-frame", "invert"}, label="Seed"),
    # -- the inversion (InversionOptions) ----------------------------------------------------
    _s("inversion_steps", "int", BACKBONE, "Inversion steps (the grid must contain the edit timesteps; a flow "
       "backbone's only contains its own: wan's default is the edit's).",
       "inversion", minimum=1, places=_ALL | {"invert"}, from_backbone=lambda d: d.inversion_steps,
       label="Inversion steps"),
    _s("inversion_prompt", "str", BACKBONE, "Prompt of the inversion and of the source branch.", "inversion",
       places=_ALL | {"invert"}, from_backbone=lambda d: d.inversion_prompt, label="Inversion prompt"),
    _s("inversion_solver", "str", BACKBONE, "Inversion solver: for DDIM backbones ddim (the reference's), heun "
       "(second order, 2 calls a step) or renoise (ReNoise's fixed-point step, "
       f"{1 + RENOISE_ITERATIONS} calls a step), the last two "
       "for few steps; for flow-matching backbones (wan) euler, midpoint or fireflow (pair a second-order one "
       "with the same --sampler).", "inversion",
       places=_ALL | {"invert"}, from_backbone=lambda d: d.inversion_solver, label="Inversion solver"),
    _s("sample_posterior", "bool", False, "Encode the source by sampling the VAE posterior with --seed (the "
       "reference's way) instead of taking its mean (deterministic, the default).", "inversion",
       places=_RUN | {"invert"}),
    _s("preset", "choice", "default", "default: the paper's settings; fast: invert with as many steps as the "
       f"edit, with the {FAST_SOLVER} solver on DDIM backbones (see docs/performance.md; an explicit "
       "--inversion-steps or --inversion-solver wins).", "inversion", choices=("default", "fast"),
       places=_ALL | {"invert"}, label="Preset"),
    # -- the clip ----------------------------------------------------------------------------
    _s("num_frames", "int", BACKBONE, "Frames to edit (one window).", "clip", minimum=2, short="-n",
       places=_ALL | {"invert"}, from_backbone=lambda d: d.n_frames, label="Frames"),
    _s("size", "size", BACKBONE, "Working size WxH (multiples of 8).", "clip", places=_ALL | {"invert"},
       from_backbone=_size, label="Size (WxH)"),
    _s("fps", "int", BACKBONE, "Output frame rate (and the fps condition of backbones that take one).", "clip",
       minimum=1, places=_ALL | {"invert"}, from_backbone=lambda d: d.fps, label="FPS"),
    _s("start", "position", "0", "First source frame: an index (12) or a time (1.5s).", "clip", places=_RUN),
    _s("end", "position", None, "Stop before this frame index or time (default: the end).", "clip", places=_RUN),
    _s("stride", "int", 1, "Take every N-th source frame.", "clip", minimum=1, places=_RUN),
    _s("resize_mode", "choice", "stretch", "How frames reach the working size: stretch (the reference's), crop "
       "or pad.", "clip", choices=("stretch", "crop", "pad"), places=_RUN),
    _s("mixed_sizes", "bool", False, "Accept a frames folder whose frames differ in size (each is brought to "
       "the working size on its own; refused by default).", "clip", places=_RUN),
    _s("out_size", "size", None, "Output size WxH, or 'source' (default: the working size).", "clip",
       word="source", places=_RUN),
    _s("long", "bool", False, "Edit a clip longer than one window in overlapping windows "
       "(docs/long-videos.md).", "clip", places=_RUN),
    _s("overlap", "int", 1, "Frames shared by consecutive --long windows.", "clip", minimum=1, places=_RUN),
    _s("audio", "bool", True, "Copy the source's audio track into mp4 outputs.", "clip", places=_RUN),
    # -- the run -----------------------------------------------------------------------------
    _s("max_batch", "int", 8, "At most this many edits per denoiser batch (1 + 2N branches; 8 fits "
       "I2VGen-XL 512x512x16 fp16 in 24 GB by estimate, docs/performance.md).", "run", minimum=1,
       places=frozenset({"edit", "api"})),
    _s("cache", "bool", True, "Read and write the inversion cache.", "run",
       places=frozenset({"edit", "batch", "ui", "api"})),
    _s("cache_dir", "path", None, "Inversion cache folder (default: $ANYV2V_CACHE or "
       "~/.cache/anyv2v/inversions).", "run", places=frozenset({"edit", "batch", "ui", "api"})),
    _s("device", "str", "auto", "cpu, cuda, cuda:1, ... (auto: cuda if available).", "run",
       places=_SERVE | {"eval"}),
    _s("dtype", "choice", "auto", "Model dtype (auto: float16 on cuda, else float32).", "run",
       choices=("auto", "float32", "float16", "bfloat16"), aliases={"fp32": "float32", "fp16": "float16",
                                                                    "bf16": "bfloat16"}, places=_SERVE),
    _s("force", "bool", False, "Overwrite existing outputs (batch: re-run every item).", "run", short="-f",
       places=frozenset({"edit", "invert", "edit-frame", "batch", "api"})),
    _s("memory_check", "bool", True, "Refuse, before loading anything, an edit whose estimated memory exceeds "
       "what the device has (docs/reliability.md).", "run", off_flag="--skip-memory-check",
       places=frozenset({"edit", "invert", "batch", "api"})),
    # -- memory (MemoryOptions) --------------------------------------------------------------
    _s("vae_chunk", "int", 1, "Frames per VAE call (1: the reference's; more is faster).", "memory", minimum=1,
       places=_MEMORY),
    _s("vae_tiling", "bool", False, "Tiled VAE decoding (less memory for large frames).", "memory",
       places=_MEMORY),
    _s("offload", "bool", False, "Model CPU offload: every model stays on the CPU except while it runs.", "memory",
       places=_MEMORY),
    _s("channels_last", "bool", False, "channels-last memory format for the denoiser.", "memory",
       places=_MEMORY),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def for_place(place: str) -> list[Setting]:
    """The settings ``place`` (a command, ``manifest``, ``ui`` or ``api``) takes, in order."""
    return [s for s in SETTINGS if place in s.places]


def get(name: str) -> Setting:
    key = name.replace("-", "_")
    if key not in BY_NAME:
        raise InputError(f"unknown setting {name!r} (known: {', '.join(BY_NAME)})")
    return BY_NAME[key]


# -- validation ----------------------------------------------------------------------------------
def _bad(setting: Setting, value: Any) -> InputError:
    return InputError(f"{setting.name} must be {setting.what}, got {value!r}")


def check(name: str, value: Any) -> Any:
    """``value`` of setting ``name`` checked and normalised (a size becomes ``(w, h)``, a
    choice alias its canonical name); ``None`` (not given) passes. One message wherever the
    value came from (CLI, API, manifest, UI)."""
    setting = get(name)
    if value is None:
        return None
    t = setting.type
    if t == "bool":
        if not isinstance(value, bool):
            raise _bad(setting, value)
        return value
    if t in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(setting, value)
        if t == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise _bad(setting, value)
                value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise _bad(setting, value)
        if setting.minimum is not None and value < setting.minimum:
            raise _bad(setting, value)
        if setting.maximum is not None and value > setting.maximum:
            raise _bad(setting, value)
        return value
    if t == "choice":
        text = setting.aliases.get(value, value) if isinstance(value, str) else value
        if text not in setting.choices:
            raise _bad(setting, value)
        return text
    if t == "size":
        if isinstance(value, (tuple, list)) and len(value) == 2:
            w, h = value
        elif isinstance(value, str):
            if setting.word and value == setting.word:
                return value
            parts = value.lower().replace(" ", "").split("x")
            try:
                w, h = (int(p) for p in parts)
            except ValueError:
                raise _bad(setting, value) from None
        else:
            raise _bad(setting, value)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (w, h)) or w <= 0 or h <= 0 \
                or w % 8 or h % 8:
            raise _bad(setting, value)
        return (w, h)
    if t == "position":
        from .video import position

        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise _bad(setting, value)
        try:
            position(value, 1.0, setting.cli_flag)  # the syntax; times are converted with the video's rate
        except InputError:
            raise _bad(setting, value) from None
        return value
    if t == "path":
        if not isinstance(value, (str, Path)) or not str(value):
            raise _bad(setting, value)
        return Path(value).expanduser()
    if not isinstance(value, str):
        raise _bad(setting, value)
    return value


def check_all(values: Mapping[str, Any], place: str = "api") -> dict[str, Any]:
    """Every value checked (:func:`check`); a name ``place`` does not take is an error."""
    allowed = {s.name for s in for_place(place)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise InputError(f"unknown setting {key!r} (known: {known})")
        out[name] = check(name, value)
    return out


# -- the objects the library runs with ------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """Checked settings of one run, grouped as the library consumes them. ``None`` values
    mean "the backbone's" (resolved against ``BackboneDefaults`` by the sampler)."""

    values: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name, BY_NAME[name].default_for(None))

    def group(self, group: str) -> dict[str, Any]:
        """The values of one group's settings by name (``None``: the backbone's)."""
        return {s.name: self[s.name] for s in SETTINGS if s.group == group}

    def given(self, group: str) -> bool:
        """Whether any setting of ``group`` was given (not left at its default)."""
        return any(s.name in self.values for s in SETTINGS if s.group == group)

    def inversion_steps(self, defaults: BackboneDefaults) -> int | None:
        """The inversion steps; with the ``fast`` preset as many as the edit's (an explicit
        ``inversion_steps`` wins); ``None``: the backbone's."""
        steps = self["inversion_steps"]
        if steps is None and self["preset"] == "fast":
            steps = self["steps"] or defaults.steps
        return steps

    def inversion_solver(self, defaults: BackboneDefaults) -> str | None:
        """The inversion solver; with the ``fast`` preset on a DDIM backbone
        :data:`~anyv2v_core.ddim_inversion.FAST_SOLVER` (an explicit ``inversion_solver``
        wins); ``None``: the backbone's."""
        solver = self["inversion_solver"]
        if solver is None and self["preset"] == "fast" and defaults.inversion_solver == "ddim":
            solver = FAST_SOLVER
        return solver

    def frame_range(self) -> Any:
        from .video import FrameRange

        return FrameRange(self["start"], self["end"], self["stride"])

    def cache(self) -> "bool | Path":
        return False if not self["cache"] else (self["cache_dir"] or True)


def cache_values(cache: "bool | str | Path") -> dict[str, Any]:
    """The ``cache``/``cache_dir`` settings of a combined value (``True``: the default cache,
    ``False``: none, a path: that folder), as :meth:`Run.cache` returns it."""
    return {"cache": cache is not False, "cache_dir": None if isinstance(cache, bool) else cache}


def collect(values: Mapping[str, Any], place: str = "api") -> Run:
    """Check ``values`` (setting name -> value; ``None`` = default) and cross-check them
    (before any model is loaded); the result feeds :func:`anyv2v_core.api.edit_many`."""
    checked = {k: v for k, v in check_all(values, place).items() if v is not None}
    steps, t_idx = checked.get("steps"), checked.get("t_idx")
    if steps is not None and t_idx is not None and t_idx >= steps:
        raise InputError(f"t_idx must be below steps ({steps}), got {t_idx}")
    return Run(checked)


def backbone_values(defaults: BackboneDefaults, place: str = "page") -> dict[str, Any]:
    """Every setting's default for a backbone (the backbone's reference values filled in)."""
    return {s.name: s.default_for(defaults) for s in for_place(place)}


#: Options of ``anyv2v edit`` / ``invert`` / ``edit-frame`` that are not run settings (the
#: commands' own inputs); tests/test_settings.py checks this list against the commands.
COMMAND_FLAGS = frozenset({
    "--prompt", "-p", "--edited-frame", "-e", "--editor", "--backbone", "-b", "--model", "-m", "--out", "-o",
    "--frames-dir", "--inversion", "--seeds", "--help",
})
#: Flags an editor or backbone option may not reuse (the CLI would consume the value first).
RESERVED_FLAGS = frozenset({f for s in SETTINGS for f in s.cli_flags} | COMMAND_FLAGS)


# -- the CLI -------------------------------------------------------------------------------------------
_PY_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "choice": str, "size": str, "position": str,
             "path": Path}


def typer_parameters(place: str) -> list[Any]:
    """``inspect.Parameter``s (keyword-only, Typer options as defaults) of the settings
    ``place`` takes: a command's signature is its own parameters plus these."""
    import inspect

    import typer

    params = []
    for s in for_place(place):
        annotation: Any = _PY_TYPES[s.type]
        help_text = s.help
        if s.default is BACKBONE:
            help_text += " (default: the backbone's)"
        if s.type == "choice":
            help_text += f" ({', '.join(s.choices)})"
        if s.type == "bool":
            decls = [f"{s.cli_flag}/{s.cli_off_flag}"] if s.default is True else [s.cli_flag]
            default = bool(s.default)
        else:
            annotation = Optional[annotation]
            decls = [s.cli_flag]
            default = None if s.default is BACKBONE else s.default
        if s.short:
            decls.append(s.short)
        option = typer.Option(default, *decls, help=help_text, show_default=s.default not in (BACKBONE, None))
        params.append(inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=annotation))
    return params


def cli_values(place: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The settings among a command's keyword arguments, CLI strings converted to the
    settings' types (a size stays "WxH" text for :func:`check`)."""
    out = {}
    for s in for_place(place):
        if s.name in kwargs:
            value = kwargs[s.name]
            out[s.name] = value
    return out


def markdown_table(place: str = "edit") -> str:
    """The table of the settings ``place`` takes, for the docs (kept fresh by a test): CLI
    flags for a command, keys for ``manifest``."""
    rows = [f"| {'key' if place == 'manifest' else 'option'} | default | meaning |", "| --- | --- | --- |"]
    for s in for_place(place):
        flags = f"`{s.name}`" if place == "manifest" else " / ".join(f"`{f}`" for f in s.cli_flags)
        if s.default is BACKBONE:
            default = "backbone's"
        elif s.default is None:
            default = ""
        elif isinstance(s.default, bool):
            default = "on" if s.default else "off"
        else:
            default = f"`{s.default}`"
        rows.append(f"| {flags} | {default} | {s.help} ({s.what}) |")
    return "\n".join(rows)


def names(places: Iterable[str]) -> set[str]:
    return {s.name for p in places for s in for_place(p)}


#: The docs holding a generated settings table, and the place each lists.
DOC_TABLES = {"docs/cli.md": "edit", "docs/batch-and-eval.md": "manifest"}
_TABLE = r"(<!-- settings-table:[^>]*-->\n)(.*?)(\n<!-- /settings-table -->)"


def doc_table(text: str) -> str | None:
    """The generated table inside a doc's markers (``None``: no markers)."""
    import re

    match = re.search(_TABLE, text, re.S)
    return match.group(2) if match else None


def write_doc_tables(root: Path) -> list[Path]:
    """Regenerate the settings tables of :data:`DOC_TABLES` under the checkout ``root``."""
    import re

    changed = []
    for doc, place in DOC_TABLES.items():
        path = root / doc
        text = path.read_text(encoding="utf-8")
        new = re.sub(_TABLE, lambda m: m.group(1) + markdown_table(place) + m.group(3), text, flags=re.S)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


if __name__ == "__main__":  # pragma: no cover
    # `python -m anyv2v_core.settings --markdown [PLACE]` prints a table;
    # `python -m anyv2v_core.settings --write-docs` regenerates the docs' tables (run in a checkout).
    import sys

    if "--write-docs" in sys.argv:
        for changed in write_doc_tables(Path.cwd()):
            print(f"updated {changed}")
    else:
        args = [a for a in sys.argv[1:] if a != "--markdown"]
        print(markdown_table(args[0] if args else "edit"))
