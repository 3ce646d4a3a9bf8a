"""The seams of anyv2v: what an image editor and an image-to-video backbone must provide.

Both are :class:`typing.Protocol` classes, so a plugin implements them without importing
anything from here but the dataclasses it exchanges. Heavy libraries (torch, PIL) are
only imported for type checking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Sequence, get_args, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

#: What an injection site replaces: a module's output (``conv-output`` for a convolution,
#: ``block-output`` for a whole block; a tuple output's element 0), or the outputs of an
#: attention's ``to_q``/``to_k``/``to_v`` projections (``attn-qk``: queries and keys).
InjectionKind = Literal["conv-output", "block-output", "attn-qk", "attn-q", "attn-k", "attn-v"]
#: Which threshold a pattern's sites take (see :data:`anyv2v_core.injection.ROLE_THRESHOLDS`):
#: conv -> tau_conv, spatial -> tau_sa, temporal -> tau_ta, cross -> tau_ca (only when > 0).
InjectionRole = Literal["conv", "spatial", "temporal", "cross"]

#: One branch's conditioning: named tensors with a leading batch dimension of 1. The
#: sampler concatenates the branches' dicts key by key along dim 0, in branch order.
Conditioning = dict[str, "torch.Tensor"]


def _check_fields(obj: Any) -> None:
    """Check every field of an options dataclass against its setting (:mod:`anyv2v_core.settings`):
    the same one-line error wherever the object was built (CLI, API, manifest, UI)."""
    from dataclasses import fields

    from . import settings

    for f in fields(obj):
        name = getattr(type(obj), "_setting_names", {}).get(f.name, f.name)
        if name in settings.BY_NAME:
            value = settings.check(name, getattr(obj, f.name))
            object.__setattr__(obj, f.name, value)


def _default(name: str) -> Any:
    from .settings import BY_NAME

    return BY_NAME[name].default



@dataclass(frozen=True)
class ClipSpec:
    """Which frames of the source are edited and at what size and rate."""

    n_frames: int
    width: int
    height: int
    fps: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


@dataclass(frozen=True)
class InjectionPattern:
    """What a backbone declares, once: a glob (``fnmatch``, case-sensitive) over its
    denoiser's ``named_modules()`` names, the kind of tensor replaced there and the role
    whose threshold applies. The core turns patterns into :class:`InjectionSite` with the
    run's thresholds (:func:`anyv2v_core.injection.resolve_sites`).

    ``tokens`` restricts the replacement to the slice ``[a:b]`` along ``token_dim`` of the
    hooked tensor (e.g. the video tokens of a joint text+video attention whose text tokens
    come first); ``None`` replaces all of it. ``batch_dim`` is the dimension along which
    the hooked tensor is branch-major.
    """

    role: InjectionRole
    pattern: str
    kind: InjectionKind
    tokens: tuple[int | None, int | None] | None = None
    token_dim: int = 1
    batch_dim: int = 0


@dataclass(frozen=True)
class InjectionSite:
    """One resolved plug-and-play injection site (a pattern with its threshold).

    ``pattern`` must match at least one module of the denoiser.

    * ``conv-output`` / ``block-output``: the matched module's output (a tuple output:
      its element 0) of every edit branch is replaced by the source branch's.
    * ``attn-q`` / ``attn-k`` / ``attn-v``: the matched module is an attention layer; the
      output of its ``to_q`` / ``to_k`` / ``to_v`` projection is replaced. ``attn-qk``:
      both queries and keys (the paper's attention injection; values stay the branch's own).

    The site is active at timestep ``t`` iff ``t`` is among the first ``int(T * threshold)``
    timesteps of the full ``T``-step schedule (before the ``t_idx`` cut) and, with
    ``steps = (a, b)``, also ``a <= index of t in the full schedule < b``.
    ``tokens``/``token_dim``/``batch_dim`` as in :class:`InjectionPattern`.
    """

    pattern: str
    kind: InjectionKind
    threshold: float
    batch_dim: int = 0
    tokens: tuple[int | None, int | None] | None = None
    token_dim: int = 1
    steps: tuple[int, int] | None = None


@dataclass(frozen=True)
class MemoryOptions:
    """Memory/speed trade-offs for real GPUs, all off by default (the defaults give the
    reference's numbers). A backbone applies them in ``configure_memory(options)``."""

    #: Frames per VAE encode/decode call (1 = the reference; larger is faster, same up to
    #: float rounding).
    vae_chunk: int = _default("vae_chunk")
    #: Tiled VAE decoding for large frames (changes pixels slightly at tile seams).
    vae_tiling: bool = _default("vae_tiling")
    #: Model CPU offload: every model (text/image encoders, VAE, denoiser) stays on the
    #: CPU and is moved to the device by accelerate's hooks only while it runs, one at a
    #: time (saves device memory; slower).
    offload: bool = _default("offload")
    #: channels-last memory format for the denoiser (faster convolutions on some GPUs).
    channels_last: bool = _default("channels_last")

    def __post_init__(self) -> None:
        _check_fields(self)

    @property
    def is_default(self) -> bool:
        return self == MemoryOptions()


@dataclass(frozen=True)
class BackboneDefaults:
    """The reference settings of a backbone; every ``None`` option falls back to these."""

    n_frames: int
    width: int
    height: int
    fps: int
    inversion_steps: int
    steps: int
    cfg: float
    t_idx: int
    tau_conv: float
    tau_sa: float
    tau_ta: float
    negative_prompt: str = ""
    inversion_prompt: str = ""
    tau_ca: float = 0.0
    #: Inversion solver: "ddim" (DDIM backbones) or, for flow-matching backbones, one of
    #: ``anyv2v_core.flow.SOLVERS``.
    inversion_solver: str = "ddim"


@dataclass(frozen=True)
class EditOptions:
    """Sampling options of the PnP edit (the ``sampling`` settings of
    :mod:`anyv2v_core.settings`, which declare their defaults, bounds and help).
    ``None`` means: the backbone's default. Checked when built."""

    steps: int | None = None
    t_idx: int | None = None
    cfg: float | None = None
    tau_conv: float | None = None
    tau_sa: float | None = None
    tau_ta: float | None = None
    tau_ca: float | None = None
    negative_prompt: str | None = None
    random_ratio: float = _default("random_ratio")
    #: Sampler of the edit pass: "ddim" (deterministic, the paper's) or what a backbone
    #: additionally offers (e.g. "ddpm"); stochastic samplers draw from each edit's seeded generator.
    sampler: str = _default("sampler")
    #: "default", or "official": reproduce the official AnyV2V code where the backbone
    #: deliberately differs from it (the backbone's ``compat_plan`` / ``make_scheduler(compat=)``).
    compat: str = _default("compat")

    def __post_init__(self) -> None:
        _check_fields(self)

    def resolve(self, defaults: BackboneDefaults) -> "EditOptions":
        """A copy with every ``None`` replaced by the backbone's default."""
        values = {}
        for name in ("steps", "t_idx", "cfg", "tau_conv", "tau_sa", "tau_ta", "tau_ca", "negative_prompt"):
            own = getattr(self, name)
            values[name] = getattr(defaults, name) if own is None else own
        return EditOptions(**values, random_ratio=self.random_ratio, sampler=self.sampler, compat=self.compat)


@dataclass(frozen=True)
class InversionOptions:
    """Inversion options. ``None`` means: the backbone's default. Checked when built."""

    steps: int | None = None
    prompt: str | None = None
    #: Encode frames with the VAE posterior mean (deterministic) or sample it with ``seed``.
    sample_posterior: bool = False
    seed: int = _default("seed")
    #: Inversion solver (see :attr:`BackboneDefaults.inversion_solver`).
    solver: str | None = None

    #: The settings these fields are (``steps`` is the ``inversion_steps`` setting).
    _setting_names: ClassVar[dict[str, str]] = {"steps": "inversion_steps", "prompt": "inversion_prompt",
                                                "solver": "inversion_solver"}

    def __post_init__(self) -> None:
        _check_fields(self)

    def resolve(self, defaults: BackboneDefaults) -> "InversionOptions":
        return InversionOptions(
            steps=defaults.inversion_steps if self.steps is None else self.steps,
            prompt=defaults.inversion_prompt if self.prompt is None else self.prompt,
            sample_posterior=self.sample_posterior,
            seed=self.seed,
            solver=defaults.inversion_solver if self.solver is None else self.solver,
        )

    @property
    def encoding(self) -> str:
        """How the latents were made, beyond steps and prompt: the VAE encoding, and the
        solver when it is not DDIM (part of the inversion cache key)."""
        base = f"sample(seed={self.seed})" if self.sample_posterior else "mean"
        return base if self.solver in (None, "ddim") else f"{base};solver={self.solver}"


OptionType = Literal["str", "int", "float", "bool", "path", "choice"]
#: The option types, in the order the docs list them (checked at registration).
OPTION_TYPES: tuple[str, ...] = get_args(OptionType)


@dataclass(frozen=True)
class EditorOption:
    """An option an editor (or a backbone) declares; the CLI exposes it as ``--<name>`` on
    ``anyv2v edit`` and ``anyv2v edit-frame`` and the editor reads ``request.options[key]``
    (a backbone gets it as a constructor keyword).

    ``path`` options must name an existing file. ``bool`` options are flags. ``choice``
    options take one of ``choices`` (strings). Declarations are checked when the plugin
    registers them (:func:`anyv2v_core.editor_options.check_declarations`).
    """

    name: str
    type: OptionType = "str"
    default: Any = None
    required: bool = False
    help: str = ""
    choices: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        return f"--{self.name}"


@dataclass
class EditRequest:
    """What an editor gets besides the first frame: the video prompt, the seed, the
    hand-edited frame (``image`` editor) and the editor's own declared options."""

    prompt: str = ""
    edited_frame: Path | None = None
    seed: int = field(default_factory=lambda: _default("seed"))
    options: dict[str, Any] = field(default_factory=dict)
    #: ``progress(stage, done, total)`` for long editors (the CLI draws it as a bar).
    progress: Any = None


@runtime_checkable
class Editor(Protocol):
    """Stage 1: edit the first frame.

    Constructed as ``EditorClass(device=..., dtype=..., model=...)`` by the registry.
    """

    name: ClassVar[str]

    def edit(self, first_frame: "Image.Image", request: EditRequest) -> "Image.Image":
        """Return the edited first frame. ``first_frame`` is the source's first frame at its
        own resolution; return any size (the backbone resizes it), usually the same."""
        ...


@runtime_checkable
class I2VBackbone(Protocol):
    """Stage 2: an image-to-video diffusion model the core sampler can drive.

    Constructed as ``BackboneClass(model=..., device=..., dtype=...)``; ``model`` is a
    local folder or hub id (``None``: ``default_model``). The core owns the DDIM
    inversion/PnP loops (:mod:`anyv2v_core.sampling`); a backbone supplies conditioning,
    the denoiser call, schedulers, VAE coding and its injection patterns.
    :class:`anyv2v_core.diffusers_backbone.DiffusersBackbone` implements the model-agnostic
    part (loading, fingerprint, text cache, VAE coding, memory options) for backbones
    built from diffusers/transformers parts.
    """

    name: ClassVar[str]
    default_model: ClassVar[str]
    defaults: ClassVar[BackboneDefaults]
    #: Where and what PnP injects, by role (class attribute, or instance attribute when it
    #: depends on the backbone's options); the core resolves the thresholds.
    injection_patterns: Sequence[InjectionPattern]

    #: The module whose ``named_modules()`` the injection patterns refer to.
    denoiser: "torch.nn.Module"
    device: "torch.device"
    dtype: "torch.dtype"
    #: What ``model`` resolved to (for inversion metadata).
    model_id: str
    #: Identity of the loaded weights AND of the backbone's options (everything that
    #: changes an inversion besides the run settings): addresses cached inversions.
    model_fingerprint: str

    def make_scheduler(self, sampler: str = "ddim") -> Any:
        """A fresh diffusers-style scheduler (``set_timesteps``, ``timesteps``, ``step``) for
        ``sampler``; raise :class:`~anyv2v_core.errors.InputError` for one it does not offer."""
        ...

    def make_inverse_scheduler(self) -> Any:
        """A fresh DDIM inverse scheduler matching :meth:`make_scheduler`."""
        ...

    def encode_video(
        self, frames: Sequence["Image.Image"], generator: "torch.Generator | None" = None
    ) -> "torch.Tensor":
        """Clean latents ``(1, C, F, h, w)`` of frames already at the clip size.

        ``generator`` None: posterior mean; else a sample drawn with it."""
        ...

    def decode_video(self, latents: "torch.Tensor") -> "torch.Tensor":
        """Frames ``(F, H, W, 3)``, float in [0, 1], on the CPU."""
        ...

    def condition(self, image: "Image.Image", prompt: str, clip: ClipSpec, *, negative: bool = False) -> Conditioning:
        """One branch's conditioning. ``negative`` marks the CFG unconditional branch."""
        ...

    def predict(self, sample: "torch.Tensor", timestep: "torch.Tensor", cond: Conditioning) -> "torch.Tensor":
        """The denoiser's output for a batch of branches (sample ``(B, C, F, h, w)``)."""
        ...

    def configure_memory(self, options: MemoryOptions) -> None:
        """Apply every :class:`MemoryOptions` field (all off: the reference's numbers);
        ``MemoryOptions()`` undoes earlier ones. A backbone that cannot honour a field
        raises :class:`~anyv2v_core.errors.InputError` saying which and why (the
        ``DiffusersBackbone`` base honours all of them)."""
        ...

    # Optional, for ``EditOptions.compat`` other than "default" (the official code's behaviour
    # where a backbone deliberately differs from it): ``make_scheduler(sampler, compat=...)``
    # and ``compat_plan(plan, options, inversion_steps) -> SamplingPlan`` (see
    # :func:`anyv2v_core.sampling.plan`); a backbone without them runs its default.
    # Optional: ``initial_noise(shape, generator) -> Tensor`` (float32, CPU) draws the noise
    # blended in by ``random_ratio``; without it the sampler uses ``torch.randn(shape)``.
