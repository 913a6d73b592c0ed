"""Components registered by plugins, by kind and name.

Plugins never touch a :class:`Registry` directly: each ``register_*`` hook receives a
``register`` callable bound to the plugin (see :mod:`diffcore.hookspecs`). The registry
validates names, rejects duplicates naming both plugins, and records who registered what.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from diffcore.errors import DiffcoreError, UnknownComponentError, closest

# kind -> the hook that fills it
KINDS: dict[str, str] = {
    "prior": "register_priors",
    "schedule": "register_schedules",
    "sampler": "register_samplers",
    "operator": "register_operators",
    "solver": "register_solvers",
    "representation": "register_representations",
    "distiller": "register_distillers",
    "task": "register_tasks",
    "tour": "register_tour",
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.:+-]*$")


def normalize_kind(kind: str) -> str:
    """Accept ``prior`` or ``priors``; reject anything else naming the kinds.

    >>> normalize_kind("solvers")
    'solver'
    """
    k = kind[:-1] if kind.endswith("s") and kind[:-1] in KINDS else kind
    if k not in KINDS:
        hint = closest(k, KINDS)
        raise DiffcoreError(f"unknown component kind {kind!r}; known: {', '.join(KINDS)}" + (f" (did you mean {hint!r}?)" if hint else ""))
    return k


@dataclass(frozen=True)
class Component:
    """One registered component."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    summary: str = ""
    aliases: tuple[str, ...] = ()

    def options(self) -> list[str]:
        """The keyword options the factory takes."""
        try:
            sig = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return []
        return [p.name for p in sig.parameters.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


@dataclass
class Registry:
    """All components of all kinds, plus what each plugin registered."""

    components: dict[str, dict[str, Component]] = field(default_factory=lambda: {k: {} for k in KINDS})
    aliases: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def stage(self, kind: str, plugin: str) -> tuple[Callable[..., None], list[Component]]:
        """A ``register`` callable for one plugin's hook call, and the list it fills.

        Registrations are staged and committed with :meth:`commit` only when the whole hook
        call succeeded, so a plugin that fails half-way leaves nothing behind.
        """
        staged: list[Component] = []

        def register(name: str, factory: Callable[..., Any], *, aliases=(), summary: str | None = None) -> None:
            for n in (name, *aliases):
                if not isinstance(n, str) or not _NAME.match(n):
                    raise DiffcoreError(f"invalid {kind} name {n!r} from plugin {plugin!r}: use lowercase letters, digits and - _ . : +")
            if not callable(factory):
                raise DiffcoreError(f"{kind} {name!r} from plugin {plugin!r}: factory must be callable, got {type(factory).__name__}")
            if summary is None:
                doc = inspect.getdoc(factory) or ""
                summary = doc.strip().splitlines()[0] if doc.strip() else ""
            staged.append(Component(kind, name, factory, plugin, summary, tuple(aliases)))

        return register, staged

    def commit(self, kind: str, staged: list[Component]) -> None:
        """Add staged components, or none of them if any name is taken."""
        taken = self.components[kind]
        seen: dict[str, str] = {}
        for comp in staged:
            for n in (comp.name, *comp.aliases):
                owner = taken[n].plugin if n in taken else (taken[self.aliases[kind][n]].plugin if n in self.aliases[kind] else seen.get(n))
                if owner is not None:
                    raise DiffcoreError(
                        f"{kind} name {n!r} is already registered by plugin {owner!r}; plugin {comp.plugin!r} cannot register it again"
                    )
                seen[n] = comp.plugin
        for comp in staged:
            taken[comp.name] = comp
            for a in comp.aliases:
                self.aliases[kind][a] = comp.name

    def get(self, kind: str, name: str) -> Component:
        kind = normalize_kind(kind)
        table = self.components[kind]
        key = self.aliases[kind].get(name, name)
        if key not in table:
            known = sorted(table) + sorted(self.aliases[kind])
            hint = closest(name, known)
            listing = ", ".join(sorted(table)) or "none (is the plugin that provides it installed?)"
            raise UnknownComponentError(
                f"unknown {kind} {name!r}; known {kind}s: {listing}" + (f". Did you mean {hint!r}?" if hint else "")
            )
        return table[key]

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[normalize_kind(kind)])


def build(component: Component, options: dict[str, Any]) -> Any:
    """Call a component's factory, turning bad options and missing extras into clear errors."""
    try:
        sig = inspect.signature(component.factory)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        try:
            sig.bind(**options)
        except TypeError as exc:
            accepted = ", ".join(component.options()) or "none"
            raise DiffcoreError(f"bad options for {component.kind} {component.name!r}: {exc}; it accepts: {accepted}") from None
    try:
        return component.factory(**options)
    except ImportError as exc:
        raise DiffcoreError(f"{component.kind} {component.name!r} (plugin {component.plugin!r}) needs a missing package: {exc}") from exc


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets or quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


_WORDS = {"true": True, "false": False, "none": None, "null": None}
_OPTIONS = re.compile(r":(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")  # the colon that starts the key=value options


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``name[:key=value,key=value]`` into a name and options (values parsed as literals).

    The name itself may contain ``:`` (``zoo:digits``); the options start at the first ``:``
    that is followed by ``key=`` (names never contain ``=``), so an option's value may itself be
    a spec with ``:`` in it, such as the window prior of a collage (``base=zoo:patches``); quote a
    nested spec that has options of its own (``base='zoo:textures:clip_x0=false'``).

    >>> parse_spec("sr:factor=4,mode='bicubic'")
    ('sr', {'factor': 4, 'mode': 'bicubic'})
    >>> parse_spec("gmm:means=[[0, 1], [2, 3]]")
    ('gmm', {'means': [[0, 1], [2, 3]]})
    >>> parse_spec("zoo:digits")
    ('zoo:digits', {})
    >>> parse_spec("zoo:digits:guidance=2.5,mode=fast")
    ('zoo:digits', {'guidance': 2.5, 'mode': 'fast'})
    >>> parse_spec("dps:discrepancy=false,zeta=none")
    ('dps', {'discrepancy': False, 'zeta': None})
    >>> parse_spec("collage:base=zoo:patches,graph=grid,rows=4")
    ('collage', {'base': 'zoo:patches', 'graph': 'grid', 'rows': 4})
    """
    start = _OPTIONS.search(spec)
    if start is None:
        return spec, {}
    head, tail = spec[: start.start()], spec[start.end() :]
    options: dict[str, Any] = {}
    for item in _split_top(tail):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise DiffcoreError(f"cannot parse option {item!r} in {spec!r}; expected key=value")
        word = value.strip()
        if word.lower() in _WORDS:  # the shell's spelling of booleans and None
            options[key.strip()] = _WORDS[word.lower()]
            continue
        try:
            options[key.strip()] = ast.literal_eval(word)
        except (ValueError, SyntaxError):
            options[key.strip()] = word
    return head, options
