"""Per-window conditions: one :class:`~diffcore.Cond` per window, batched with the windows.

The window batch is window-major (all ``N`` samples of window 0, then of window 1, ...), so the
condition of window ``i`` is broadcast to its ``N`` samples and the windows' conditions are
concatenated in the same order.
"""

from __future__ import annotations

import re
from dataclasses import fields

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond


def _field_batch(name: str, value, n: int):
    """One field of a Cond as a batch of ``n`` (a tensor or a list)."""
    if isinstance(value, torch.Tensor):
        if value.ndim == 0:
            value = value.reshape(1)
        if value.shape[0] == 1 and n > 1:
            return value.expand(n, *value.shape[1:])
        if value.shape[0] != n:
            raise DiffcoreError(f"cond.{name} has batch {value.shape[0]}; expected 1 or {n}")
        return value
    if isinstance(value, str):
        return [value] * n
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return list(value) * n
        if len(value) != n:
            raise DiffcoreError(f"cond.{name} has {len(value)} entries; expected 1 or {n}")
        return list(value)
    raise DiffcoreError(f"cond.{name} of type {type(value).__name__} cannot be batched; use a tensor, a string or a list")


def stack_conds(conds: list[Cond | None], n: int) -> Cond | None:
    """The conditions of several groups of ``n`` samples as one batch, group after group.

    >>> c = stack_conds([Cond(labels=torch.tensor([1])), Cond(labels=torch.tensor([2]))], 2)
    >>> c.labels.tolist()
    [1, 1, 2, 2]
    """
    if all(c is None or not c.given() for c in conds):
        return None
    given = {c.given() if c is not None else frozenset() for c in conds}
    if len(given) != 1:
        raise DiffcoreError("the windows' conditions must all set the same fields (e.g. labels for every window)")
    out = {}
    for f in fields(Cond):
        parts = [_field_batch(f.name, getattr(c, f.name), n) for c in conds] if f.name in next(iter(given)) else None
        if parts is None:
            out[f.name] = None
        elif isinstance(parts[0], torch.Tensor):
            out[f.name] = torch.cat(parts)
        else:
            out[f.name] = [v for p in parts for v in p]
    return Cond(**out)


def slice_cond(cond: Cond | None, i: int, j: int) -> Cond | None:
    """Samples ``i:j`` of a batched condition (every set field has the batch first)."""
    if cond is None:
        return None
    return Cond(**{f.name: (None if getattr(cond, f.name) is None else getattr(cond, f.name)[i:j]) for f in fields(Cond)})


def same_cond(a: Cond | None, b: Cond | None) -> bool:
    """Whether two conditions are equal field by field (tensors by value)."""
    a, b = a or Cond(), b or Cond()
    for f in fields(Cond):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if (va is None) != (vb is None):
            return False
        if isinstance(va, torch.Tensor) or isinstance(vb, torch.Tensor):
            if not (isinstance(va, torch.Tensor) and isinstance(vb, torch.Tensor) and va.shape == vb.shape and bool((va == vb).all())):
                return False
        elif va != vb:
            return False
    return True


def segments(values, windows: int) -> list:
    """Spread ``values`` over ``windows`` windows in contiguous runs, as evenly as possible: the
    segment prompts of a long chain (one prompt for each stretch of the canvas).

    >>> segments(["walk", "jump"], 5)
    ['walk', 'walk', 'walk', 'jump', 'jump']
    """
    values = list(values)
    if not values or windows < len(values):
        raise DiffcoreError(f"cannot spread {len(values)} segments over {windows} windows; give between 1 and {windows}")
    k = len(values)
    return [values[i * k // windows] for i in range(windows)]


_REPEAT = re.compile(r"^(.*?)\s*\*\s*(\d+)$")


def expand_list(text) -> list[str]:
    """``"brick*2,grass"`` -> ``['brick', 'brick', 'grass']``; a list is taken as it is.

    >>> expand_list("brick*2, grass")
    ['brick', 'brick', 'grass']
    """
    if isinstance(text, (list, tuple)):
        return [str(v) if not isinstance(v, int) else v for v in text]
    out = []
    for item in str(text).split(","):
        item = item.strip()
        m = _REPEAT.match(item)
        out.extend([m.group(1)] * int(m.group(2)) if m else [item])
    return [v for v in out if v != ""]


def label_conds(prior, labels) -> list[Cond]:
    """One ``Cond(labels=...)`` per entry of ``labels``: class indices or the prior's class names."""
    if "labels" not in prior.accepts:
        raise DiffcoreError(
            f"{type(prior).__name__} does not take class labels; it accepts: {', '.join(sorted(prior.accepts)) or 'nothing'}"
        )
    names = tuple(prior.class_names or ())
    out = []
    for v in expand_list(labels):
        if isinstance(v, str) and v.lstrip("-").isdigit():
            v = int(v)
        if isinstance(v, str):
            if v not in names:
                known = ", ".join(names) or "none (give class indices)"
                raise DiffcoreError(f"unknown label {v!r}; this prior's classes: {known}")
            v = names.index(v)
        if names and not 0 <= v < len(names):
            raise DiffcoreError(f"label {v} is out of range: this prior has {len(names)} classes (0..{len(names) - 1})")
        out.append(Cond(labels=torch.tensor([int(v)])))
    return out
