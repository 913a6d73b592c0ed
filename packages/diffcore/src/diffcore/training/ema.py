"""An exponential moving average of parameters, with the usual warm-up of its decay.

After update ``n`` (0-based) the average moves towards the current parameters by
``1 - d_n`` with ``d_n = min(decay, (1 + n) / (10 + n))``: the warm-up of the decay that
TensorFlow's ``ExponentialMovingAverage`` applies with ``num_updates`` (and diffusers'
``EMAModel`` by default), so that the first updates are not stuck near the initial weights.
Averaged weights sample better than the last iterate (Song & Ermon 2020, sec. 3.5; Ho et al. 2020
use a decay of 0.9999).

>>> import torch
>>> net = torch.nn.Linear(1, 1, bias=False)
>>> with torch.no_grad():
...     _ = net.weight.fill_(0.0)
>>> ema = EMA(net, decay=0.999)
>>> with torch.no_grad():
...     _ = net.weight.fill_(1.0)
>>> ema.update(0)  # d_0 = min(0.999, 1 / 10): moves 90 % of the way
>>> round(float(ema.module.weight), 6)
0.9
"""

from __future__ import annotations

import copy

import torch

from diffcore.errors import DiffcoreError
from diffcore.training.parameters import named_tensors


def ema_decay(step: int, decay: float) -> float:
    """EMA decay after ``step`` updates, warmed up as ``min(decay, (1 + n) / (10 + n))``.

    >>> ema_decay(0, 0.999), ema_decay(10**6, 0.999)
    (0.1, 0.999)
    """
    return min(decay, (1 + step) / (10 + step))


class EMA:
    """The moving average of ``source``: a module (averaged as a frozen copy, ``module``) or named tensors.

    Args:
        source: a :class:`torch.nn.Module`, whose parameters are averaged in a deep copy kept
            in eval mode with ``requires_grad`` off (``ema.module`` is then a drop-in network),
            or an iterable of tensors / ``(name, tensor)`` pairs (``ema.tensors``).
        decay: the decay the warm-up rises to (``ema_decay``).

    ``update(step)`` is what :func:`diffcore.training.fit` calls after each optimiser step;
    ``state()`` and ``load_state(tensors)`` are the tensors a checkpoint holds.
    """

    def __init__(self, source, decay: float = 0.999):
        if not 0.0 <= float(decay) < 1.0:
            raise DiffcoreError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        if isinstance(source, torch.nn.Module):
            self.module = copy.deepcopy(source).eval().requires_grad_(False)
            self._sources = [p for _, p in source.named_parameters()]
            self._names = [n for n, _ in source.named_parameters()]
            self._averages = [p for _, p in self.module.named_parameters()]
        else:
            self.module = None
            pairs = named_tensors(source)
            self._names = [n for n, _ in pairs]
            self._sources = [p for _, p in pairs]
            self._averages = [p.detach().clone() for p in self._sources]
        if not self._sources:
            raise DiffcoreError("EMA of nothing: the source has no parameters")

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """The averaged tensors by name (the module's parameter names for a module)."""
        return dict(zip(self._names, self._averages))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the current values by ``1 - ema_decay(step, decay)``."""
        torch._foreach_lerp_(self._averages, [p.detach() for p in self._sources], 1 - ema_decay(step, self.decay))

    def state(self) -> dict[str, torch.Tensor]:
        return self.tensors

    @torch.no_grad()
    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self._names if n not in tensors]
        if missing:
            raise DiffcoreError(f"the EMA state lacks {len(missing)} tensor(s), e.g. {missing[0]!r}")
        for name, average in zip(self._names, self._averages):
            average.copy_(tensors[name])
