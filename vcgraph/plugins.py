"""Plugin loading and the stage registry.

Plugins come from entry points in the ``vcgraph`` group, loaded once on first use, and from
Python with :func:`register_plugin`. Two environment variables control autoloading, as in
pytest and llm:

- ``VCGRAPH_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry point at all;
- ``VCGRAPH_PLUGINS=voice,echo`` loads only the named entry points (a name that matches no
  installed plugin is listed as failed).

A plugin is isolated from the others: one that fails to import, implements a hook that does
not exist (pluggy's ``check_pending``), or whose hook raises is recorded with its error and
the others still load. Two plugins registering one stage type name are both listed with the
conflict; only graphs using that name are refused.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError, StageConflictError

if TYPE_CHECKING:  # imported when stages are collected: `vcgraph --help` does not need pydantic
    from .stage import Stage

ENTRY_POINT_GROUP = "vcgraph"
BUILTIN = "vcgraph"  # the engine's own plugin (value types, model stages)
log = logging.getLogger("vcgraph.plugins")


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin as ``vcgraph plugins`` shows it."""

    name: str
    version: str | None = None
    package: str | None = None
    stages: list[str] = field(default_factory=list)
    error: str | None = None
    #: stage type names this plugin registers that another plugin registers too
    conflicts: dict[str, list[str]] = field(default_factory=dict)


def autoload_note() -> str | None:
    """Why installed plugins are not (all) loaded, from the environment; None when they are."""
    if os.environ.get("VCGRAPH_DISABLE_PLUGIN_AUTOLOAD", "") not in ("", "0"):
        return "VCGRAPH_DISABLE_PLUGIN_AUTOLOAD is set: no installed plugin was loaded"
    wanted = os.environ.get("VCGRAPH_PLUGINS")
    if wanted is not None:
        if not [n for n in wanted.split(",") if n.strip()]:
            return "VCGRAPH_PLUGINS is set but empty: no installed plugin was loaded (unset it to load all)"
        return f"VCGRAPH_PLUGINS={wanted.strip()}: only these installed plugins were loaded"
    return None


class Registry:
    """A plugin manager plus the stage types its plugins registered."""

    def __init__(self, autoload: bool = True):
        self.pm = pluggy.PluginManager("vcgraph")
        self.pm.add_hookspecs(hookspecs)
        from . import builtin
        self.pm.register(builtin, name=BUILTIN)
        self.info: dict[str, PluginInfo] = {}
        self.conflicts: dict[str, list[str]] = {}  # stage name -> the plugins registering it
        self._stages: dict[str, tuple[type[Stage], str]] | None = None
        self._lock = threading.RLock()
        if autoload:
            self.load_entry_points()

    # -- loading ---------------------------------------------------------------------------
    def installed(self) -> list[importlib.metadata.EntryPoint]:
        """Every entry point in the ``vcgraph`` group, loaded or not."""
        return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))

    def load_entry_points(self) -> None:
        """Load the plugins installed through entry points, honouring the environment."""
        if os.environ.get("VCGRAPH_DISABLE_PLUGIN_AUTOLOAD", "") not in ("", "0"):
            return
        wanted = os.environ.get("VCGRAPH_PLUGINS")
        names = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        eps = self.installed()
        for ep in eps:
            if names is not None and ep.name not in names:
                continue
            if self.pm.get_plugin(ep.name) is not None or ep.name in self.info:
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.version if dist else None,
                              dist.metadata["Name"] if dist else None)
            try:
                self._register_checked(ep.load(), ep.name)
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = f"{type(exc).__name__}: {exc}"
                log.warning("plugin '%s' failed to load: %s", ep.name, info.error)
            self.info[ep.name] = info
        for name in sorted((names or set()) - {ep.name for ep in eps}):
            installed = ", ".join(sorted({ep.name for ep in eps})) or "none"
            error = f"not installed: VCGRAPH_PLUGINS names '{name}', but no installed plugin has that name " \
                    f"(installed: {installed})"
            self.info[name] = PluginInfo(name, error=error)
            log.warning("plugin '%s' %s", name, error)
        self._stages = None

    def _register_checked(self, plugin: Any, name: str | None) -> str:
        """Register ``plugin``; a hook implementation without a hook specification (a misspelt
        hook) unregisters it again and raises :class:`PluginError`."""
        name = self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            unknown = sorted(c.name for c in self.pm.get_hookcallers(exc.plugin) or [] if c.spec is None)
            self.pm.unregister(exc.plugin)
            hooks = ", ".join(sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "vcgraph_spec")))
            raise PluginError(f"plugin '{name}' implements unknown hook(s) {', '.join(unknown)} "
                              f"(hooks: {hooks})") from None
        return name

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register a plugin module or object from Python (notebooks, tests)."""
        with self._lock:
            name = self._register_checked(plugin, name)
            version = getattr(plugin, "__version__", None)
            self.info[name] = PluginInfo(name, version, None)
            self._stages = None
            return name

    def unregister(self, name: str) -> None:
        """Remove a plugin registered by name."""
        with self._lock:
            self.pm.unregister(name=name)
            self.info.pop(name, None)
            self._stages = None

    def _info(self, name: str) -> PluginInfo:
        return self.info.setdefault(name, PluginInfo(name))

    def _call_one(self, hook: str, plugin: Any, impls: list, what: str, **kwargs: Any) -> bool:
        """Call ``hook`` of ``plugin`` alone, through pluggy. When it raises, the plugin is
        recorded like one that failed to load (``what`` it was doing goes to the log) and
        False is returned."""
        caller = self.pm.subset_hook_caller(hook, remove_plugins=[i.plugin for i in impls if i.plugin is not plugin])
        try:
            caller(**kwargs)
            return True
        except Exception as exc:  # noqa: BLE001 - e.g. a lazy import inside the hook
            name = self.pm.get_name(plugin) or repr(plugin)
            info = self._info(name)
            info.error = info.error or f"{type(exc).__name__}: {exc}"
            log.warning("plugin '%s' failed to %s: %s", name, what, info.error)
            return False

    def call_each(self, hook: str, what: str, **kwargs: Any) -> None:
        """Call ``hook`` of every plugin, one plugin at a time so that one failing does not
        stop the others, in pluggy's order (last registered first, ``tryfirst``/``trylast``
        honoured); see :meth:`_call_one`."""
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        for impl in reversed(impls):  # pluggy calls its list backwards
            self._call_one(hook, impl.plugin, impls, what, **kwargs)

    # -- stages ----------------------------------------------------------------------------
    @property
    def stages(self) -> dict[str, tuple[type[Stage], str]]:
        """Stage name → (stage class, plugin name), collected from every plugin; names that
        two plugins register are left out (see :attr:`conflicts`)."""
        with self._lock:
            if self._stages is None:
                self._stages = self._collect_stages()
            return self._stages

    def _collect_stages(self) -> dict[str, tuple[type[Stage], str]]:
        from .stage import Stage
        for info in self.info.values():
            info.stages, info.conflicts = [], {}
        claims: dict[str, list[tuple[type[Stage], str]]] = {}
        impls = self.pm.hook.register_stages.get_hookimpls()
        for impl in reversed(impls):  # one plugin at a time: a failure drops only its own stages
            plugin = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            pending: list[type[Stage]] = []

            def register(stage_cls: type[Stage], _pending: list = pending) -> None:
                if not (isinstance(stage_cls, type) and issubclass(stage_cls, Stage)):
                    raise PluginError(f"registered {stage_cls!r}, not a Stage subclass")
                if not stage_cls.name:
                    raise PluginError(f"stage {stage_cls.__name__} has no name")
                _pending.append(stage_cls)

            if self._call_one("register_stages", impl.plugin, impls, "register its stages", register=register):
                for stage_cls in pending:
                    claims.setdefault(stage_cls.name, []).append((stage_cls, plugin))
        found: dict[str, tuple[type[Stage], str]] = {}
        self.conflicts = {}
        for stage_name, owners in sorted(claims.items()):
            plugins = [p for _, p in owners]
            for plugin in dict.fromkeys(plugins):
                self._info(plugin).stages.append(stage_name)
            if len(owners) == 1:
                found[stage_name] = owners[0]
                continue
            self.conflicts[stage_name] = plugins
            for plugin in dict.fromkeys(plugins):
                self._info(plugin).conflicts[stage_name] = [p for p in plugins if p != plugin] or [plugin]
            log.warning("stage type '%s' is registered by %s: graphs using it are refused",
                        stage_name, _both(plugins))
        return found

    def stage(self, name: str) -> type[Stage]:
        """The stage class registered as ``name``; a clear error when there is none."""
        stages = self.stages
        if name in self.conflicts:
            raise StageConflictError(f"stage type '{name}' is registered by two plugins: "
                                     f"{_both(self.conflicts[name])}; uninstall one, or choose with "
                                     "VCGRAPH_PLUGINS (see `vcgraph plugins`)")
        try:
            return stages[name][0]
        except KeyError:
            known = ", ".join(sorted(stages)) or "none"
            failed = [i.name for i in self.info.values() if i.error]
            hint = f"; plugin(s) that failed to load: {', '.join(sorted(failed))}" if failed else ""
            raise ConfigError(f"unknown stage type '{name}' (known: {known}); "
                              f"is its plugin installed? See `vcgraph plugins`{hint}.") from None

    def value_loaders(self) -> dict[str, Any]:
        """Value type name → ``load(text)``, for CLI inputs (later plugins win)."""
        found: dict[str, Any] = {}
        self.call_each("register_value_types", "register its value types", register=found.setdefault)
        return found

    def bench_baselines(self) -> dict[str, tuple[Callable, str]]:
        """Baseline name → (``run(audio)``, plugin name), for ``vcgraph bench``."""
        found: dict[str, tuple[Callable, str]] = {}
        impls = self.pm.hook.register_bench_baselines.get_hookimpls()
        for impl in reversed(impls):
            plugin = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            self._call_one("register_bench_baselines", impl.plugin, impls, "register its bench baselines",
                           register=lambda name, run, _p=plugin: found.setdefault(name, (run, _p)))
        return found

    def add_commands(self, subparsers) -> None:
        """Let every plugin add its CLI subcommands."""
        self.call_each("register_commands", "add its commands", subparsers=subparsers)

    def plugin_of(self, stage_name: str) -> str:
        """The name of the plugin that registered ``stage_name``."""
        return self.stages[stage_name][1]

    def plugins(self) -> list[PluginInfo]:
        """Every plugin, loaded or failed, with the stages it registered."""
        self.stages  # fill in stage lists
        return sorted(self.info.values(), key=lambda p: p.name)


def _both(plugins: list[str]) -> str:
    return " and ".join(f"'{p}'" for p in plugins)


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, created (and entry points loaded) on first use."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = Registry()
        return _registry


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register a plugin with the process-wide registry."""
    return get_registry().register(plugin, name)


def reset_registry() -> None:
    """Forget the process-wide registry (tests; after installing a package at run time)."""
    global _registry
    with _registry_lock:
        _registry = None
