"""Plug-and-play feature injection, keyed on module names.

The controller is data-driven: a backbone hands it a list of :class:`InjectionSite`
(glob pattern over the denoiser's module names, a kind, a threshold). Inside the
``with`` block it holds forward hooks on the matched modules; for the current timestep
(:meth:`InjectionController.set_timestep`) each active hook replaces the edit branches'
part of the hooked tensor with the source branch's. On exit every hook is removed, so the
model is left exactly as it was found — also when sampling raises.

No forward function or attention processor is replaced: ``conv-output`` hooks the
module's output, ``attn-qk`` hooks the outputs of the attention's ``to_q`` and ``to_k``
projections, which every attention processor calls once per forward.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from .errors import InjectionError
from .protocols import InjectionSite

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .protocols import EditOptions


def pnp_sites(options: "EditOptions", conv: Iterable[str], spatial: Iterable[str], temporal: Iterable[str],
              cross: Iterable[str] = ()) -> list[InjectionSite]:
    """The AnyV2V injection sites from a backbone's module-name patterns: conv outputs
    (``tau_conv``), spatial and temporal attention Q/K (``tau_sa``, ``tau_ta``) and, only when
    ``tau_ca > 0``, cross-attention Q/K (``tau_ca``; off in the paper)."""
    sites = ([InjectionSite(p, "conv-output", options.tau_conv) for p in conv]
             + [InjectionSite(p, "attn-qk", options.tau_sa) for p in spatial]
             + [InjectionSite(p, "attn-qk", options.tau_ta) for p in temporal])
    if options.tau_ca:
        sites += [InjectionSite(p, "attn-qk", options.tau_ca) for p in cross]
    return sites


def active_timesteps(full_schedule: Sequence[int], threshold: float) -> frozenset[int]:
    """Timesteps at which a site of this threshold injects: the first ``int(T*threshold)``
    of the FULL T-step schedule (the reference counts before the ``t_idx`` cut)."""
    n = int(len(full_schedule) * threshold)
    return frozenset(int(t) for t in list(full_schedule)[: max(n, 0)])


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
        self._active_at = {site: active_timesteps(full_schedule, site.threshold) for site in self.sites}
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
        layout = self.layout
        size = tensor.shape[site.batch_dim]
        if size % layout.n_branches:
            raise InjectionError(
                f"cannot split a batch of {size} into {layout.n_branches} branches at {site.pattern!r}"
            )
        chunks = list(tensor.chunk(layout.n_branches, dim=site.batch_dim))
        for target in layout.targets:
            chunks[target] = chunks[layout.source]
        self.calls += 1
        import torch

        return torch.cat(chunks, dim=site.batch_dim)

    def _make_hook(self, site: InjectionSite):
        def hook(_module, _args, output):
            if not self.is_active(site):
                return None
            return self._replace(output, site)

        return hook

    def __enter__(self) -> "InjectionController":
        try:
            for site, name in self._matches:
                module = self.model.get_submodule(name)
                if site.kind == "conv-output":
                    targets = [module]
                elif site.kind == "attn-qk":
                    missing = [p for p in ("to_q", "to_k") if not hasattr(module, p)]
                    if missing:
                        raise InjectionError(f"attn-qk site {name!r} has no {', '.join(missing)} projection")
                    targets = [module.to_q, module.to_k]
                else:
                    raise InjectionError(f"unknown injection kind {site.kind!r} at {site.pattern!r}")
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
