"""Finding, loading and guarding plugins.

Plugins are found through the ``diffcore`` entry-point group. Each one loads inside its own
guard: a plugin that raises at import, declares an unknown hook, or fails in a hook is
reported (``diffcore plugins``) and skipped, and the others work. ``DIFFCORE_PLUGINS`` (a
comma-separated list of entry-point names) limits which third-party plugins load; the
built-in plugin always loads.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

import pluggy

from diffcore import hookspecs
from diffcore.errors import DiffcoreError, closest
from diffcore.registry import KINDS, Component, Registry, build, normalize_kind, parse_spec

ENTRY_POINT_GROUP = "diffcore"
BUILTIN = "diffcore"  # the built-in plugin's name


@dataclass
class PluginInfo:
    """What ``diffcore plugins`` shows for one plugin."""

    name: str
    version: str | None
    module: str
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "module": self.module, "registered": self.registered, "error": self.error}


class PluginHost:
    """A pluggy manager plus the registry its hooks fill, built once per process."""

    def __init__(self, entry_points=None, only: list[str] | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._specs: list[Any] = [hookspecs]  # namespaces of hook specs added so far
        self.registry = Registry()
        self.infos: dict[str, PluginInfo] = {}
        self._load(entry_points, only)
        self._fill()

    # -- loading -------------------------------------------------------------------------
    def _load(self, entry_points, only):
        from diffcore import builtin

        self._add(BUILTIN, builtin, version=_version("diffcore"), module="diffcore.builtin")
        if entry_points is None:
            entry_points = md.entry_points(group=ENTRY_POINT_GROUP)
        for ep in entry_points:
            if only is not None and ep.name not in only:
                continue
            version = _version(ep.dist.name) if getattr(ep, "dist", None) else None
            info = PluginInfo(ep.name, version, ep.value)
            if ep.name in self.infos:
                info.name = f"{ep.name} ({ep.value})"
                info.error = f"plugin name {ep.name!r} is already taken by {self.infos[ep.name].module}"
                self.infos[info.name] = info
                continue
            self.infos[ep.name] = info
            try:
                obj = ep.load()
            except BaseException as exc:  # noqa: BLE001 - a broken plugin must never break the rest
                if isinstance(exc, KeyboardInterrupt):
                    raise
                info.error = _one_line("failed to import", exc)
                continue
            self._add(ep.name, obj, version=version, module=ep.value)
        self._check_pending()

    def _add(self, name: str, obj: Any, *, version: str | None, module: str) -> None:
        info = self.infos.setdefault(name, PluginInfo(name, version, module))
        try:
            extra = getattr(obj, "hookspecs", None)  # a plugin may bring hook specs of its own
            if extra is not None and not any(extra is s for s in self._specs):  # not ones it merely imported
                self.pm.add_hookspecs(extra)
                self._specs.append(extra)
            self.pm.register(obj, name=name)
        except Exception as exc:  # noqa: BLE001
            info.error = _one_line("failed to register", exc)

    def _check_pending(self) -> None:
        """Unregister each plugin that implements a hook no loaded plugin declares.

        Runs once every plugin is registered, so a plugin may implement a hook whose spec a
        plugin loaded after it brings.
        """
        known = [n for n in vars(self.pm.hook) if not n.startswith("_") and getattr(self.pm.hook, n).has_spec()]
        for name, plugin in list(self.pm.list_name_plugin()):
            unknown = sorted(
                caller.name
                for caller in self.pm.get_hookcallers(plugin) or []
                if not caller.has_spec() and any(i.plugin_name == name and not i.optionalhook for i in caller.get_hookimpls())
            )
            if unknown:
                self.pm.unregister(name=name)
                hint = closest(unknown[0], known)
                self.infos[name].error = f"declares an unknown hook {unknown[0]!r}" + (f" (did you mean {hint!r}?)" if hint else "")
        self.pm.check_pending()

    def _fill(self) -> None:
        for kind, hook_name in KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():  # registration order: the built-in plugin first
                info = self.infos[impl.plugin_name]
                if info.error:
                    continue
                register, staged = self.registry.stage(kind, impl.plugin_name)
                try:
                    impl.function(register=register)
                    self.registry.commit(kind, staged)
                except Exception as exc:  # noqa: BLE001
                    info.error = _one_line(f"failed in {hook_name}", exc)
                    continue
                if staged:
                    info.registered.setdefault(kind, []).extend(c.name for c in staged)

    def register_commands(self, cli) -> None:
        """Let each plugin add subcommands to the click group ``cli``, each inside its own guard.

        A plugin whose hook raises, or that replaces a command already there, keeps none of its
        commands and is reported, as for the ``register_*`` hooks.
        """
        owners = dict.fromkeys(cli.commands, BUILTIN)
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.infos[impl.plugin_name]
            if info.error:
                continue
            before = dict(cli.commands)
            try:
                impl.function(cli=cli)
                for n, command in before.items():
                    if cli.commands.get(n) is not command:
                        raise DiffcoreError(
                            f"command {n!r} is already registered by plugin {owners[n]!r}; plugin {impl.plugin_name!r} cannot register "
                            "it again"
                        )
            except Exception as exc:  # noqa: BLE001
                cli.commands.clear()
                cli.commands.update(before)
                info.error = _one_line("failed in register_commands", exc)
                continue
            added = sorted(cli.commands.keys() - before.keys())
            owners.update(dict.fromkeys(added, impl.plugin_name))
            if added:
                info.registered.setdefault("command", []).extend(added)


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _one_line(what: str, exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({os.path.basename(last[0].filename)}:{last[0].lineno})" if last else ""
    return f"{what}: {type(exc).__name__}: {exc}{where}"


_host: PluginHost | None = None
_lock = threading.Lock()
_loading_in: int | None = None  # the thread building the host, so that a call back into it fails instead of waiting forever


def host() -> PluginHost:
    """The process-wide plugin host, loaded on first use (honours ``DIFFCORE_PLUGINS``).

    A plugin that reaches for a registered component while it is being imported or registered
    (``make_schedule`` at module level, ``diffcore.create`` in a hook) gets a ``DiffcoreError``
    and is skipped like any plugin that fails to load.
    """
    global _host, _loading_in
    if _loading_in == threading.get_ident():
        raise DiffcoreError(
            "diffcore's plugins are still loading: build components inside factories, not when a plugin is imported or registers"
        )
    with _lock:
        if _host is None:
            env = os.environ.get("DIFFCORE_PLUGINS")
            only = [p.strip() for p in env.split(",") if p.strip()] if env is not None else None
            _loading_in = threading.get_ident()
            try:
                _host = PluginHost(only=only)
            finally:
                _loading_in = None
        return _host


def reset() -> None:
    """Forget loaded plugins (tests, or after installing a plugin in a running process)."""
    global _host
    with _lock:
        _host = None


def component(kind: str, name: str) -> Component:
    """The registered component ``name`` of ``kind`` (raises naming known ones and the closest)."""
    return host().registry.get(kind, name)


def create(kind: str, name: str, **options):
    """Build a registered component.

    ``name`` may carry options inline (``"sr:factor=4"``); keyword options win over them.

    >>> prior = create("prior", "gaussian", mean=[0.0, 0.0])
    >>> prior.sample_shape
    (2,)
    """
    name, inline = parse_spec(name)
    return build(component(kind, name), {**inline, **options})


def available(kind: str) -> list[Component]:
    """The components of one kind, sorted by name, with summary and owning plugin."""
    kind = normalize_kind(kind)
    reg = host().registry
    return [reg.components[kind][n] for n in reg.names(kind)]


def plugins() -> list[PluginInfo]:
    """Every plugin found, with version, what it registered, and its error if it was skipped."""
    return list(host().infos.values())
