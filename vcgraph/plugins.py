"""Plugin loading and the stage registry.

Plugins come from entry points in the ``vcgraph`` group, loaded once on first use, and from
Python with :func:`register_plugin`. Two environment variables control autoloading, as in
pytest and llm:

- ``VCGRAPH_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry point at all;
- ``VCGRAPH_PLUGINS=voice,echo`` loads only the named entry points.

A plugin that fails to import is recorded with its name and error (see ``vcgraph plugins``);
the others still load.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError
from .stage import Stage

ENTRY_POINT_GROUP = "vcgraph"
log = logging.getLogger("vcgraph.plugins")


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin as ``vcgraph plugins`` shows it."""

    name: str
    version: str | None = None
    package: str | None = None
    stages: list[str] = field(default_factory=list)
    error: str | None = None


class Registry:
    """A plugin manager plus the stage types its plugins registered."""

    def __init__(self, autoload: bool = True):
        self.pm = pluggy.PluginManager("vcgraph")
        self.pm.add_hookspecs(hookspecs)
        from . import builtin
        self.pm.register(builtin, name="vcgraph.builtin")
        self.info: dict[str, PluginInfo] = {}
        self._stages: dict[str, tuple[type[Stage], str]] | None = None
        self._lock = threading.RLock()
        if autoload:
            self.load_entry_points()

    # -- loading ---------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Load the plugins installed through entry points, honouring the environment."""
        if os.environ.get("VCGRAPH_DISABLE_PLUGIN_AUTOLOAD", "") not in ("", "0"):
            return
        wanted = os.environ.get("VCGRAPH_PLUGINS")
        names = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if names is not None and ep.name not in names:
                continue
            if self.pm.get_plugin(ep.name) is not None or ep.name in self.info:
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.version if dist else None,
                              dist.metadata["Name"] if dist else None)
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = f"{type(exc).__name__}: {exc}"
                log.warning("plugin '%s' failed to load: %s", ep.name, info.error)
            self.info[ep.name] = info
        self._stages = None

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register a plugin module or object from Python (notebooks, tests)."""
        with self._lock:
            name = self.pm.register(plugin, name=name)
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

    # -- stages ----------------------------------------------------------------------------
    @property
    def stages(self) -> dict[str, tuple[type[Stage], str]]:
        """Stage name → (stage class, plugin name), collected from every plugin."""
        with self._lock:
            if self._stages is None:
                self._stages = self._collect_stages()
            return self._stages

    def _collect_stages(self) -> dict[str, tuple[type[Stage], str]]:
        found: dict[str, tuple[type[Stage], str]] = {}
        for info in self.info.values():
            info.stages = []
        for impl in self.pm.hook.register_stages.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or repr(impl.plugin)

            def register(stage_cls: type[Stage], _plugin: str = plugin_name) -> None:
                if not (isinstance(stage_cls, type) and issubclass(stage_cls, Stage)):
                    raise PluginError(f"plugin '{_plugin}' registered {stage_cls!r}, not a Stage subclass")
                if not stage_cls.name:
                    raise PluginError(f"plugin '{_plugin}': stage {stage_cls.__name__} has no name")
                if stage_cls.name in found:
                    other = found[stage_cls.name][1]
                    raise PluginError(f"stage type '{stage_cls.name}' is registered by two plugins: "
                                      f"'{other}' and '{_plugin}'")
                found[stage_cls.name] = (stage_cls, _plugin)
                self.info.setdefault(_plugin, PluginInfo(_plugin)).stages.append(stage_cls.name)

            before = dict(found)
            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:  # e.g. a lazy import inside the hook: keep the other plugins
                found.clear()
                found.update(before)
                info = self.info.setdefault(plugin_name, PluginInfo(plugin_name))
                info.stages, info.error = [], f"{type(exc).__name__}: {exc}"
                log.warning("plugin '%s' failed to register its stages: %s", plugin_name, info.error)
        return found

    def stage(self, name: str) -> type[Stage]:
        """The stage class registered as ``name``; a clear error when there is none."""
        try:
            return self.stages[name][0]
        except KeyError:
            known = ", ".join(sorted(self.stages)) or "none"
            raise ConfigError(f"unknown stage type '{name}' (known: {known}); "
                              "is its plugin installed? See `vcgraph plugins`.") from None

    def value_loaders(self) -> dict[str, Any]:
        """Value type name → ``load(text)``, for CLI inputs (later plugins win)."""
        found: dict[str, Any] = {}
        for impl in self.pm.hook.register_value_types.get_hookimpls():
            impl.function(register=found.__setitem__)
        return found

    def plugin_of(self, stage_name: str) -> str:
        """The name of the plugin that registered ``stage_name``."""
        return self.stages[stage_name][1]

    def plugins(self) -> list[PluginInfo]:
        """Every plugin, loaded or failed, with the stages it registered."""
        self.stages  # fill in stage lists
        return sorted(self.info.values(), key=lambda p: p.name)


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
