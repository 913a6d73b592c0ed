"""The learning-rate schedule: linear warm-up, then a cosine to zero or a constant rate.

The warm-up (Goyal et al. 2017) raises the rate linearly over the first ``warmup`` steps; the
cosine (Loshchilov & Hutter 2017, SGDR without restarts) then follows half a cosine period to
zero at the last step.
"""

from __future__ import annotations

import math

from diffcore.errors import DiffcoreError

LR_SCHEDULES = ("cosine", "constant")


def check_lr_schedule(schedule: str) -> str:
    if schedule not in LR_SCHEDULES:
        raise DiffcoreError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")
    return schedule


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The learning-rate multiplier at ``step`` (0-based) of ``total``: linear warm-up, then cosine to 0 or constant.

    >>> [round(lr_factor(s, 10, 2, "cosine"), 3) for s in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.038]
    >>> lr_factor(9, 10, 2, "constant")
    1.0
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = (step - warmup) / (total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))
