"""Samplers as registered components: what a sampler factory is, and building one by name.

A sampler component's factory takes the sampler's options and returns the sampler with them
bound: a callable ``sampler(prior, x, ts, *, cond=None, generator=None, callback=None) -> x0``.
diffcore's samplers are functions that take their options as keywords next to the call's own
(``ddim(prior, x, ts, *, cond=None, generator=None, callback=None, eta=0.0)``);
:func:`sampler_factory` turns such a function into a factory whose signature lists exactly
those options, so that ``diffcore.create`` and ``diffcore available sampler --json`` see them.

>>> import diffcore
>>> from diffcore.samplers.ddim import ddim
>>> bound = diffcore.create("sampler", "ddim", eta=0.5)
>>> bound.func is ddim, bound.keywords
(True, {'eta': 0.5})
>>> diffcore.create("sampler", "ddim") is ddim  # no options: the function itself
True
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from diffcore.errors import DiffcoreError, UnknownComponentError, closest

CALL_KEYWORDS = ("cond", "generator", "callback")  # the keywords of every sampler call; the others are options


def sampler_factory(fn: Callable[..., Any]) -> Callable[..., Callable[..., Any]]:
    """The factory of a sampler function: ``factory(**options)`` checks the options against ``fn``'s
    keyword-only ones (other than ``cond``, ``generator``, ``callback``) and returns ``fn`` with them
    bound (``fn`` itself when there are none).

    >>> from diffcore.samplers.edm import euler
    >>> factory = sampler_factory(euler)
    >>> list(inspect.signature(factory).parameters)
    ['s_churn', 's_tmin', 's_tmax', 's_noise']
    >>> factory(s_churn=1.0).keywords
    {'s_churn': 1.0}
    """
    params = [
        p.replace(kind=p.KEYWORD_ONLY)
        for p in inspect.signature(fn).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name not in CALL_KEYWORDS
    ]
    signature = inspect.Signature(params)

    def factory(**options):
        try:
            signature.bind(**options)
        except TypeError as exc:
            accepted = ", ".join(p.name for p in params) or "none"
            raise DiffcoreError(f"sampler {fn.__name__!r} does not take these options: {exc}; it takes: {accepted}") from None
        return functools.partial(fn, **options) if options else fn

    factory.__signature__ = signature
    factory.__name__ = factory.__qualname__ = fn.__name__
    factory.__module__ = fn.__module__
    factory.__doc__ = fn.__doc__
    return factory


def build_sampler(spec: str, options: dict[str, Any]):
    """The registered sampler ``spec`` (a name, an alias, or ``name:key=value,...``) with ``options``
    bound; keyword options win over inline ones. Options the factory does not take fail naming the
    ones it does, and unknown names list the registered samplers."""
    from diffcore.plugin_host import host
    from diffcore.registry import build, parse_spec

    name, inline = parse_spec(spec)
    registry = host().registry
    try:
        component = registry.get("sampler", name)
    except UnknownComponentError:
        # Registration order: diffcore's samplers as they have always been listed, then the plugins'.
        known = list(registry.components["sampler"])
        hint = closest(name, known + list(registry.aliases["sampler"]))
        raise UnknownComponentError(
            f"unknown sampler {name!r}; known samplers: {', '.join(known)}" + (f". Did you mean {hint!r}?" if hint else "")
        ) from None
    options = {**inline, **options}
    try:
        inspect.signature(component.factory).bind(**options)
    except (TypeError, ValueError):
        accepted = component.options()
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise DiffcoreError(
                f"sampler {name!r} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(accepted) or 'none'}"
            ) from None
    return build(component, options)
