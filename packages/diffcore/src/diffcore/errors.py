"""Errors that diffcore raises on purpose.

Every error a user can cause (a bad name, a wrong shape, an untrusted checkpoint) is a
:class:`DiffcoreError`, so the CLI can print it on one line and exit 2, while anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DiffcoreError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class UnknownComponentError(DiffcoreError, KeyError):
    """A component name that no loaded plugin registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ShapeError(DiffcoreError, ValueError):
    """A tensor whose shape is not the one expected."""


class CheckpointError(DiffcoreError):
    """A weights file that cannot or must not be loaded."""


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, or None when nothing is close.

    >>> closest("dddim", ["ddim", "ddpm", "heun"])
    'ddim'
    """
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return matches[0] if matches else None


def check_shape(name: str, tensor, expected: tuple) -> None:
    """Raise :class:`ShapeError` unless ``tensor.shape`` matches ``expected``.

    ``None`` in ``expected`` matches any size.

    >>> import torch
    >>> check_shape("x", torch.zeros(2, 3), (None, 3))
    >>> check_shape("x", torch.zeros(2, 4), (None, 3))
    Traceback (most recent call last):
    ...
    diffcore.errors.ShapeError: x has shape (2, 4); expected (N, 3)
    """
    shape = tuple(tensor.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected))
    if not ok:
        want = ", ".join("N" if i == 0 and e is None else ("*" if e is None else str(e)) for i, e in enumerate(expected))
        raise ShapeError(f"{name} has shape {shape}; expected ({want})")
