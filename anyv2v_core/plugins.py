"""The plugin registry: entry points of the group ``anyv2v``, loaded with pluggy.

Each plugin is loaded and each of its hooks is called in isolation: a plugin that fails
to import, or whose ``register`` hook raises, is recorded in :attr:`Registry.failures`
(shown by ``anyv2v plugins``) and the others still work. Registered components are kept
as references and imported only when used, so discovery stays light.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import pluggy

from . import default_plugins, hookspecs
from .errors import PluginError

ENTRY_POINT_GROUP = "anyv2v"
#: Comma-separated allow-list of the plugins to load (entry-point or distribution names);
#: unset: all installed plugins; empty: none. The built-ins always load.
LOAD_PLUGINS_ENV = "ANYV2V_LOAD_PLUGINS"
Kind = Literal["editor", "backbone"]


def _core_version() -> str:
    try:
        return md.version("anyv2v")
    except md.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin module: its entry-point name and the distribution that ships it."""

    name: str
    package: str
    version: str


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    package: str
    version: str
    error: str


@dataclass(frozen=True)
class Component:
    """A registered editor or backbone."""

    kind: Kind
    name: str
    ref: Any  # a class or "module:Class"
    plugin: PluginInfo
    description: str = ""
    #: Declared options (:class:`~anyv2v_core.protocols.EditorOption`), known without
    #: importing the component.
    options: tuple = ()

    def load(self) -> type:
        """Import and return the component's class (a one-line :class:`PluginError` on failure)."""
        if not isinstance(self.ref, str):
            return self._checked(self.ref)
        module_name, _, attr = self.ref.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin's import is reported
            raise PluginError(
                f"{self.kind} {self.name!r} from {self.plugin.package} failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        return self._checked(obj)

    def _checked(self, obj: Any) -> Any:
        """``obj``, if the options its class declares (if any) are the registered ones."""
        own = getattr(obj, "options", None)
        if isinstance(own, (tuple, list)) and tuple(own) != self.options:
            # the declaration is register(options=...); a class attribute may only repeat it
            def flags(options: Any) -> str:
                return ", ".join(getattr(o, "flag", repr(o)) for o in options) or "none"

            raise PluginError(
                f"{self.kind} {self.name!r} from {self.plugin.package}: its class declares options "
                f"({flags(own)}) that differ from those registered ({flags(self.options)}); declare them once, "
                f"in register(..., options=...), and let the class attribute be the same object or drop it"
            )
        return obj


@dataclass
class Registry:
    editors: dict[str, Component] = field(default_factory=dict)
    backbones: dict[str, Component] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    #: Names in ANYV2V_LOAD_PLUGINS that match no installed plugin.
    unknown_allowed: list[str] = field(default_factory=list)
    #: Installed plugins left out by ANYV2V_LOAD_PLUGINS.
    skipped: list[PluginInfo] = field(default_factory=list)
    _pm: pluggy.PluginManager | None = None

    # -- lookups ----------------------------------------------------------------------
    def _get(self, kind: Kind, name: str) -> Component:
        table = self.editors if kind == "editor" else self.backbones
        if name not in table:
            available = ", ".join(sorted(table)) or "none"
            hint = ""
            broken = [f.plugin for f in self.failures]
            if broken:
                hint = f" (plugins that failed to load: {', '.join(broken)}; see `anyv2v plugins`)"
            raise PluginError(f"unknown {kind} {name!r}; available: {available}{hint}")
        return table[name]

    def editor(self, name: str) -> Component:
        return self._get("editor", name)

    def backbone(self, name: str) -> Component:
        return self._get("backbone", name)

    def register_commands(self, app: Any) -> None:
        """Let plugins add CLI subcommands; a failing plugin is recorded, not fatal. Each
        plugin's hook runs once per ``app`` (also across registry refreshes), so plugins
        need no guard against adding a command twice."""
        if self._pm is None:
            return
        done: set[str] = app.__dict__.setdefault("_anyv2v_commands_from", set())
        for impl in self._pm.hook.anyv2v_register_commands.get_hookimpls():
            if impl.plugin_name not in done and _call_isolated(self, impl, app=app):
                done.add(impl.plugin_name)


def _plugin_info(ep: md.EntryPoint) -> PluginInfo:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return PluginInfo(ep.name, "?", "?")
    return PluginInfo(ep.name, dist.metadata["Name"] or dist.name, dist.version)


def _call_isolated(registry: Registry, impl: Any, **kwargs: Any) -> bool:
    """Run one plugin's hook; a failure is recorded (returns False), not raised."""
    info: PluginInfo = getattr(impl.plugin, "__anyv2v_info__", PluginInfo(impl.plugin_name, "?", "?"))
    try:
        impl.function(**kwargs)
    except Exception as exc:  # noqa: BLE001
        registry.failures.append(PluginFailure(info.name, info.package, info.version, f"{type(exc).__name__}: {exc}"))
        return False
    return True


def _make_register(registry: Registry, kind: Kind, info: PluginInfo) -> Callable[..., None]:
    table = registry.editors if kind == "editor" else registry.backbones

    def register(name: str, ref: Any, description: str = "", options: Any = None) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {info.name!r} registered a {kind} without a name")
        if name in table:
            other = table[name].plugin
            raise PluginError(f"{kind} {name!r} of {info.package} is already registered by {other.package}")
        if options is None:  # a class registered directly may carry its declarations
            options = getattr(ref, "options", ()) if not isinstance(ref, str) else ()
        options = tuple(options)
        from .editor_options import check_declarations

        check_declarations(name, options)
        component = Component(kind, name, ref, info, description, options)
        if not isinstance(ref, str):
            component.load()  # a class given directly: its own declarations are checked now
        table[name] = component

    return register


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _allow_list(value: str | None) -> set[str] | None:
    """The names of ``ANYV2V_LOAD_PLUGINS`` (None when it is unset)."""
    if value is None:
        return None
    return {_norm(n) for n in value.split(",") if n.strip()}


def build_registry(entry_points: list[md.EntryPoint] | None = None, allow: str | None = None) -> Registry:
    """Discover plugins and collect their registrations (fresh, uncached).

    Only the plugins named in ``allow`` (default: the ``ANYV2V_LOAD_PLUGINS`` environment
    variable, comma-separated entry-point or distribution names) are loaded when it is set."""
    registry = Registry()
    pm = pluggy.PluginManager("anyv2v")
    pm.add_hookspecs(hookspecs)
    registry._pm = pm

    builtin = PluginInfo("builtins", "anyv2v", _core_version())
    default_plugins.__anyv2v_info__ = builtin  # type: ignore[attr-defined]
    pm.register(default_plugins, name="anyv2v.builtins")
    registry.plugins.append(builtin)

    if entry_points is None:
        entry_points = list(md.entry_points(group=ENTRY_POINT_GROUP))
    allowed = _allow_list(os.environ.get(LOAD_PLUGINS_ENV) if allow is None else allow)
    matched: set[str] = set()
    seen: set[str] = set()
    for ep in sorted(entry_points, key=lambda e: e.name):
        if ep.name in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(ep.name)
        info = _plugin_info(ep)
        if allowed is not None:
            names = {_norm(info.name), _norm(info.package)} & allowed
            if not names:
                registry.skipped.append(info)
                continue
            matched |= names
        try:
            module = ep.load()
            module.__anyv2v_info__ = info
            pm.register(module, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
            registry.failures.append(PluginFailure(info.name, info.package, info.version, f"{type(exc).__name__}: {exc}"))
            continue
        registry.plugins.append(info)

    if allowed is not None:
        registry.unknown_allowed = sorted(allowed - matched - {"builtins", "anyv2v"})
    for kind, hook in (("editor", pm.hook.anyv2v_register_editors), ("backbone", pm.hook.anyv2v_register_backbones)):
        for impl in hook.get_hookimpls():
            info = getattr(impl.plugin, "__anyv2v_info__", PluginInfo(impl.plugin_name, "?", "?"))
            _call_isolated(registry, impl, register=_make_register(registry, kind, info))  # type: ignore[arg-type]
    return registry


_REGISTRY: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry (built on first use)."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = build_registry()
    return _REGISTRY


def get_editor(name: str) -> type:
    """The editor class registered as ``name``; :class:`PluginError` lists the known names."""
    return get_registry().editor(name).load()


def get_backbone(name: str) -> type:
    """The backbone class registered as ``name``; :class:`PluginError` lists the known names."""
    return get_registry().backbone(name).load()
