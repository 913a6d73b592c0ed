"""Typed, checked solver options.

A solver is a frozen dataclass whose fields are its options. :class:`Options`, the base of every
solver here, checks each field when the solver is built, from its annotation: ``bool`` takes only
``True``/``False`` (a spec's ``snap=off`` or ``bound=flase`` arrives as a string and is refused),
``int`` an integer, ``float`` a finite number, ``Literal[...]`` one of its values, ``X | None``
also ``None``; :func:`option` adds bounds. A wrong value is a one-line :class:`DiffcoreError`
naming the option, what it accepts and what it got.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Toy(Options):
...     snap: bool = True
...     eta: float = option(0.5, low=0.0, high=1.0)
...     name = "toy"
>>> Toy(snap=False, eta=1).eta
1
>>> Toy(snap="off")
Traceback (most recent call last):
...
diffcore.errors.DiffcoreError: solver 'toy': option snap must be true or false, got 'off'
>>> Toy(eta=2.0)
Traceback (most recent call last):
...
diffcore.errors.DiffcoreError: solver 'toy': option eta must be a number in [0, 1], got 2.0
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Literal, Union

from diffcore.errors import DiffcoreError

_BOUNDS = "diff_inverse.bounds"


def option(default, *, low: float | None = None, high: float | None = None, low_open: bool = False):
    """A dataclass field with bounds: ``low <= value <= high`` (``low < value`` when ``low_open``)."""
    return dataclasses.field(default=default, metadata={_BOUNDS: (low, high, low_open)})


def _fmt(v: float) -> str:
    return f"{v:g}"


def _describe(kind, bounds) -> str:
    low, high, low_open = bounds
    if kind is bool:
        return "true or false"
    noun = "an integer" if kind is int else "a number"
    if low is not None and high is not None:
        return f"{noun} in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}]"
    if low is not None:
        return f"{noun} {'>' if low_open else '>='} {_fmt(low)}"
    if high is not None:
        return f"{noun} <= {_fmt(high)}"
    return noun


def _accepts(kind, bounds, value) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float)):
        return False
    if not math.isfinite(value):
        return False
    low, high, low_open = bounds
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or value <= high


def _split(hint):
    """``(kinds, allows_none)`` of an annotation: ``float | None`` -> ``([float], True)``."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        return [a for a in args if a is not type(None)], type(None) in args
    return [hint], False


def check_options(solver) -> None:
    """Check every field of the dataclass ``solver`` against its annotation (see the module docstring)."""
    hints = typing.get_type_hints(type(solver))
    name = getattr(solver, "name", type(solver).__name__)
    for f in dataclasses.fields(solver):
        value = getattr(solver, f.name)
        kinds, none_ok = _split(hints[f.name])
        if value is None and none_ok:
            continue
        bounds = f.metadata.get(_BOUNDS, (None, None, False))
        said = []
        for kind in kinds:
            if typing.get_origin(kind) is Literal:
                choices = typing.get_args(kind)
                if value in choices and not isinstance(value, bool):
                    break
                said.append("one of " + ", ".join(repr(c) for c in choices))
            elif kind in (bool, int, float):
                if _accepts(kind, bounds, value):
                    break
                said.append(_describe(kind, bounds))
            else:  # an annotation this checker does not know: the solver checks it itself
                break
        else:
            expected = " or ".join(said + (["None"] if none_ok else []))
            raise DiffcoreError(f"solver {name!r}: option {f.name} must be {expected}, got {value!r}")


class Options:
    """Base of the solvers: their options are checked when they are built (:func:`check_options`)."""

    def __post_init__(self):
        check_options(self)
