"""Plug-and-play feature injection, keyed on module names.

A backbone declares its injection patterns once, by role (:class:`InjectionPattern`:
a glob over the denoiser's module names, a kind, a role); :func:`resolve_sites` gives
each the run's threshold for its role (ONE role -> setting table, :data:`ROLE_THRESHOLDS`).
The controller is data-driven: inside the ``with`` block it holds forward hooks on the
matched modules; for the current timestep (:meth:`InjectionController.set_timestep`) each
active hook replaces the edit branches' part of the hooked tensor (optionally only a token
range of it) with the source branch's. On exit every hook is removed, so the model is left
exactly as it was found — also when sampling raises.

No forward function or attention processor is replaced: ``conv-output``/``block-output``
hook the module's output, ``attn-q``/``attn-k``/``attn-v``/``attn-qk`` hook the outputs of
the attention's ``to_q``/``to_k``/``to_v`` projections, which every attention processor
calls once per forward.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from .errors import InjectionError
from .protocols import InjectionPattern, InjectionSite

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .protocols import EditOptions

#: role -> (the resolved-option field holding its threshold, whether the role is only
#: injected when that threshold is > 0). The paper's conv, spatial- and temporal-attention
#: sites always take part (τ = 0 just never activates them); cross-attention injection is
#: off in the paper and only added on request.
ROLE_THRESHOLDS: dict[str, tuple[str, bool]] = {
    "conv": ("tau_conv", False),
    "spatial": ("tau_sa", False),
    "temporal": ("tau_ta", False),
    "cross": ("tau_ca", True),
}

#: kind -> the attention projections it hooks (``None``: the matched module's own output).
KIND_TARGETS: dict[str, tuple[str, ...] | None] = {
    "conv-output": None,
    "block-output": None,
    "attn-qk": ("to_q", "to_k"),
    "attn-q": ("to_q",),
    "attn-k": ("to_k",),
    "attn-v": ("to_v",),
}


#: The paper's UNet sites (SPEC §2): the conv output of ``up_blocks.1.resnets.1`` (l1 = 4) and
#: the self-attention of these (up block, attention) positions (l2 = l3 = 4..11).
PAPER_UNET_CONV = "up_blocks.1.resnets.1.conv2"
PAPER_UNET_ATTENTIONS = ((1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2))


def unet_patterns(**attention: str) -> tuple[InjectionPattern, ...]:
    """The AnyV2V injection patterns of an SD-style video UNet: the paper's conv site and,
    for each role given (``spatial=``, ``temporal=``, ``cross=``), the Q/K of the attention
    module named by a template with ``{b}`` (up block) and ``{a}`` (attention index), e.g.
    ``temporal="up_blocks.{b}.temp_attentions.{a}.transformer_blocks.0.attn1"``."""
    return (InjectionPattern("conv", PAPER_UNET_CONV, "conv-output"),
            *(InjectionPattern(role, template.format(b=b, a=a), "attn-qk")  # type: ignore[arg-type]
              for role, template in attention.items() for b, a in PAPER_UNET_ATTENTIONS))


def resolve_sites(patterns: Iterable[InjectionPattern], options: "EditOptions") -> list[InjectionSite]:
    """The injection sites of a run: each pattern with the threshold of its role taken
    from resolved ``options`` (a ``cross`` pattern only when ``tau_ca > 0``), in the
    declared order."""
    sites = []
    for p in patterns:
        if p.role not in ROLE_THRESHOLDS:
            raise InjectionError(f"unknown injection role {p.role!r} of pattern {p.pattern!r}; "
                                 f"use one of {', '.join(ROLE_THRESHOLDS)}")
        setting, optional = ROLE_THRESHOLDS[p.role]
        threshold = getattr(options, setting)
        if optional and not threshold:
            continue
        sites.append(InjectionSite(p.pattern, p.kind, threshold, batch_dim=p.batch_dim, tokens=p.tokens,
                                   token_dim=p.token_dim))
    return sites


def active_timesteps(full_schedule: Sequence[int], threshold: float) -> frozenset[int]:
    """Timesteps at which a site of this threshold injects: the first ``int(T*threshold)``
    of the FULL T-step schedule (the reference counts before the ``t_idx`` cut)."""
    n = int(len(full_schedule) * threshold)
    return frozenset(int(t) for t in list(full_schedule)[: max(n, 0)])


def _site_timesteps(full_schedule: Sequence[int], site: InjectionSite) -> frozenset[int]:
    """Where ``site`` injects: :func:`active_timesteps` of its threshold, restricted to the
    step indices ``site.steps = (a, b)`` of the full schedule when set."""
    active = active_timesteps(full_schedule, site.threshold)
    if site.steps is None:
        return active
    a, b = site.steps
    return active & frozenset(int(t) for t in list(full_schedule)[a:b])


@dataclass(frozen=True)
class BranchLayout:
    """How branches are stacked along the batch: ``n_branches`` equal chunks; the chunks
    listed in ``targets`` receive the chunk ``source``."""

    n_branches: int = 3
    source: int = 0
    targets: tuple[int, ...] = (1, 2)


def match_sites(model: "torch.nn.Module", sites: Iterable[InjectionSite]) -> list[tuple[InjectionSite, str]]:
    """Resolve each site's pattern to module names; a pattern that matches nothing is an error."""
    names = [name for name, _ in model.named_modules() if name]
    out: list[tuple[InjectionSite, str]] = []
    for site in sites:
        hits = [n for n in names if fnmatch.fnmatchcase(n, site.pattern)]
        if not hits:
            raise InjectionError(f"injection pattern {site.pattern!r} ({site.kind}) matches no module of the model")
        out.extend((site, n) for n in hits)
    return out


def _module_type():
    import torch

    return torch.nn.Module


class InjectionController:
    """Context manager that installs PnP injection hooks for one sampling run.

    ``full_schedule`` is the full T-step timestep list used for the thresholds.
    Call :meth:`set_timestep` before each denoiser call; ``set_timestep(None)`` disables
    injection (e.g. for a call that has no source branch).
    """

    def __init__(
        self,
        model: "torch.nn.Module",
        sites: Sequence[InjectionSite],
        full_schedule: Sequence[int],
        layout: BranchLayout = BranchLayout(),
    ) -> None:
        self.model = model
        self.layout = layout
        self.sites = list(sites)
        self._matches = match_sites(model, self.sites)
        self._active_at = {site: _site_timesteps(full_schedule, site) for site in self.sites}
        self._handles: list = []
        self._timestep: int | None = None
        #: Number of tensor replacements done so far (for tests and logging).
        self.calls = 0

    # -- schedule ---------------------------------------------------------------------
    def set_timestep(self, t: "int | torch.Tensor | None") -> None:
        self._timestep = None if t is None else int(t)

    def is_active(self, site: InjectionSite, t: int | None = None) -> bool:
        t = self._timestep if t is None else t
        return t is not None and t in self._active_at[site]

    def any_active_from(self, timesteps: Iterable[int]) -> bool:
        """Whether any site injects at any of ``timesteps`` (lets a caller drop the source
        branch once injection is over)."""
        ts = {int(t) for t in timesteps}
        return any(ts & active for active in self._active_at.values())

    # -- hooks ------------------------------------------------------------------------
    def _replace(self, tensor: "torch.Tensor", site: InjectionSite) -> "torch.Tensor":
        import torch

        layout = self.layout
        size = tensor.shape[site.batch_dim]
        if size % layout.n_branches:
            raise InjectionError(
                f"cannot split a batch of {size} into {layout.n_branches} branches at {site.pattern!r}"
            )
        chunks = list(tensor.chunk(layout.n_branches, dim=site.batch_dim))
        source = chunks[layout.source]
        if site.tokens is None:
            for target in layout.targets:
                chunks[target] = source
        else:
            index = [slice(None)] * tensor.ndim
            index[site.token_dim] = slice(*site.tokens)
            index = tuple(index)
            for target in layout.targets:
                chunks[target] = chunks[target].clone()
                chunks[target][index] = source[index]
        self.calls += 1
        return torch.cat(chunks, dim=site.batch_dim)

    def _make_hook(self, site: InjectionSite):
        def hook(_module, _args, output):
            if not self.is_active(site):
                return None
            if isinstance(output, tuple):  # e.g. a block returning (hidden_states, extras...)
                return (self._replace(output[0], site), *output[1:])
            return self._replace(output, site)

        return hook

    def __enter__(self) -> "InjectionController":
        try:
            for site, name in self._matches:
                module = self.model.get_submodule(name)
                if site.kind not in KIND_TARGETS:
                    raise InjectionError(f"unknown injection kind {site.kind!r} at {site.pattern!r}; "
                                         f"use one of {', '.join(KIND_TARGETS)}")
                projections = KIND_TARGETS[site.kind]
                if projections is None:
                    targets = [module]
                else:
                    missing = [p for p in projections if not isinstance(getattr(module, p, None), _module_type())]
                    if missing:
                        raise InjectionError(f"{site.kind} site {name!r} has no {', '.join(missing)} projection")
                    targets = [getattr(module, p) for p in projections]
                for target in targets:
                    self._handles.append(target.register_forward_hook(self._make_hook(site)))
        except BaseException:
            self._remove()
            raise
        return self

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __exit__(self, *exc) -> None:
        self._remove()
        self._timestep = None
