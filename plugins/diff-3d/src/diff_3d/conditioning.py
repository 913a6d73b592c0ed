"""What a distillation asks the prior for: a prompt or a class label, checked against what the prior accepts.

>>> import diffcore
>>> condition(diffcore.create("prior", "gaussian:mean=[0.0, 0.0]"), label=3)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
diffcore.errors.DiffcoreError: prior 'GaussianPrior' does not accept labels conditioning; ...; drop the label or ...
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond


def condition(prior, *, prompt: str | None = None, label: int | str | None = None) -> Cond | None:
    """``Cond(text=prompt)`` / ``Cond(labels=[label])`` (a label by index or by the prior's class name), or the prior's
    unconditional ``null_cond`` when neither is given; a one-line error when the prior cannot take them."""
    given = {}
    if prompt is not None:
        given["text"] = str(prompt)
    if label is not None:
        given["labels"] = torch.tensor([_label_index(prior, label)])
    name = type(prior).__name__
    missing = [what for what in given if what not in prior.accepts]
    if missing:
        accepted = ", ".join(sorted(prior.accepts)) or "nothing (unconditional)"
        hint = {
            "text": "drop the prompt or choose a text-conditional prior",
            "labels": "drop the label or choose a class-conditional prior",
        }
        raise DiffcoreError(f"prior {name!r} does not accept {missing[0]} conditioning; it accepts: {accepted}; {hint[missing[0]]}")
    if given:
        return Cond(**given)
    null = prior.null_cond
    if null is None and prior.accepts - {"camera"}:
        raise DiffcoreError(
            f"prior {name!r} has no unconditional model: give it a {' or '.join(sorted(prior.accepts - {'camera'}))} condition"
        )
    return null if null is not None and null.given() else None


def _label_index(prior, label) -> int:
    names = prior.class_names
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        if names is None or label not in names:
            known = ", ".join(names) if names else "none (give an index)"
            raise DiffcoreError(f"unknown label {label!r}; the prior's labels: {known}")
        return names.index(label)
    index = int(label)
    if names is not None and not 0 <= index < len(names):
        raise DiffcoreError(f"label {index} is out of range: the prior has {len(names)} labels (0-{len(names) - 1})")
    return index
