"""Pieces every sampler shares: schedule coefficients at a time or on a whole grid, and noise.

A sampler's loop makes no host-device synchronisation: everything it needs of the schedule on
its grid (``alpha``, ``sigma`` and the step factors built from them) is computed once before the
loop, on the host with the same scalar arithmetic as one step at a time (so the results do not
change by a bit), moved to the state's device in one copy each, and indexed per step
(:class:`Grid`, :func:`on_device`). Decisions that depend on those values (a step that ends at
``sigma = 0``, a step with no noise) are Python booleans taken from the host copy.

Public: plugins' step loops (diff-inverse's solvers) build on the same pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def coefs(schedule, t, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``alpha(t), sigma(t)`` as 0-d tensors in ``like``'s dtype and device (computed in float64)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return schedule.alpha(t).to(like), schedule.sigma(t).to(like)


def host_coefs(schedule, t, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``alpha(t), sigma(t)`` as 0-d CPU tensors in ``dtype``: :func:`coefs` without the copy to a device."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return schedule.alpha(t).to(dtype), schedule.sigma(t).to(dtype)


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` on its own device."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def on_device(like: torch.Tensor, *columns):
    """Each column (a list of 0-d host tensors, one per step) stacked and moved to ``like``'s device in one copy.

    ``None`` entries (a factor a step does not use) become 0. Returns one tensor per column, in order.
    """
    out = []
    for column in columns:
        values = [torch.zeros((), dtype=like.dtype) if v is None else v.to(like.dtype) for v in column]
        out.append(torch.stack(values).to(like.device) if values else torch.zeros(0, dtype=like.dtype, device=like.device))
    return out[0] if len(out) == 1 else tuple(out)


@dataclass(frozen=True)
class Grid:
    """A time grid with ``alpha`` and ``sigma`` at each of its times, computed once.

    ``times`` is the grid as given (host, float64: what ``prior.predict`` receives); ``alpha`` and
    ``sigma`` are in the state's dtype on its device, ``host_alpha`` and ``host_sigma`` the same
    values on the host, for step factors and decisions made before the loop.

    >>> from diffcore.schedules import make_schedule
    >>> s = make_schedule("linear")
    >>> grid = Grid.of(s, s.timesteps(4), torch.zeros(2))
    >>> torch.equal(grid.alpha[1], coefs(s, grid.times[1], torch.zeros(2))[0]), grid.final(3), grid.final(4)
    (True, False, True)
    """

    times: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    host_alpha: torch.Tensor
    host_sigma: torch.Tensor
    finals: tuple[bool, ...]

    @classmethod
    def of(cls, schedule, ts, like: torch.Tensor) -> Grid:
        times = torch.as_tensor(ts, dtype=torch.float64)
        rows = [host_coefs(schedule, times[i], like.dtype) for i in range(len(times))]
        host_alpha = torch.stack([a for a, _ in rows]) if rows else torch.zeros(0, dtype=like.dtype)
        host_sigma = torch.stack([s for _, s in rows]) if rows else torch.zeros(0, dtype=like.dtype)
        finals = tuple(bool(s == 0) for s in host_sigma)
        return cls(times, host_alpha.to(like.device), host_sigma.to(like.device), host_alpha, host_sigma, finals)

    @property
    def steps(self) -> int:
        return len(self.times) - 1

    def host(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``alpha, sigma`` at time ``i`` on the host (0-d tensors), for factors computed before the loop."""
        return self.host_alpha[i], self.host_sigma[i]

    def final(self, i: int) -> bool:
        """Whether ``sigma`` is exactly 0 at time ``i`` (in the state's dtype; decided when the grid was built)."""
        return self.finals[i]
