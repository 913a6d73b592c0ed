"""Noise schedules in continuous time t in [0, 1].

Every schedule gives ``alpha(t)`` and ``sigma(t)`` of the forward process
``x_t = alpha(t) x0 + sigma(t) eps`` with ``alpha(0) = 1, sigma(0) = 0``, and
``timesteps(steps)``, the decreasing grid of ``steps + 1`` times that a sampler walks.

- :class:`DiscreteSchedule`: a DDPM schedule trained on T discrete steps (``linear``,
  ``scaled_linear`` as in Stable Diffusion, or ``cosine`` of Nichol & Dhariwal 2021). Step
  index ``i`` (0-based, as diffusers counts) sits at ``t = (i + 1) / T`` and ``t = 0`` is the
  clean data; between grid points ``log alpha_bar`` is interpolated linearly.
  ``model_time(t)`` gives the (possibly fractional) index the network is fed.
- :class:`VPSchedule`: the continuous VP SDE of Song et al. (2021), linear beta(t).
- :class:`VESchedule`: the VE SDE of Song et al. (2021), ``sigma(t)^2 = smin^2 ((smax/smin)^{2t} - 1)``,
  the exact perturbation variance (so sigma(0) = 0).
- :class:`EDMSchedule`: Karras et al. (2022), ``alpha = 1``, ``sigma(t) = smax t^rho``, so that
  uniform steps in t from 1 to ``(smin/smax)^(1/rho)`` are exactly the EDM sigma grid.

>>> s = DiscreteSchedule.linear(1000)
>>> s.timesteps(5)
tensor([0.8010, 0.6010, 0.4010, 0.2010, 0.0010, 0.0000], dtype=torch.float64)
>>> s.model_time(s.timesteps(5)[:-1])
tensor([800., 600., 400., 200.,   0.], dtype=torch.float64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from diffcore.errors import DiffcoreError


def _as_t(t) -> torch.Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.double()


class _ScheduleMixin:
    """Helpers shared by every schedule."""

    def log_snr(self, t) -> torch.Tensor:
        """``lambda(t) = log(alpha(t) / sigma(t))``; +inf at t = 0."""
        return torch.log(self.alpha(t)) - torch.log(self.sigma(t))

    def init_std(self, t) -> torch.Tensor:
        """Standard deviation of the noise a sampler starts from at time t: sqrt(alpha^2 + sigma^2)."""
        return torch.sqrt(self.alpha(t) ** 2 + self.sigma(t) ** 2)

    def _check_steps(self, steps: int) -> int:
        if not isinstance(steps, int) or steps < 1:
            raise DiffcoreError(f"steps must be a positive integer, got {steps!r}")
        return steps


@dataclass(frozen=True, eq=False)
class DiscreteSchedule(_ScheduleMixin):
    """A DDPM schedule over ``T = len(alphas_cumprod)`` discrete training steps.

    ``spacing`` (``leading``, ``trailing`` or ``linspace``) and ``steps_offset`` choose the
    inference grid as diffusers' schedulers do; ``final_alpha_one`` says whether the last step
    lands on clean data (t = 0, diffusers' ``set_alpha_to_one``) or on step index 0.
    """

    alphas_cumprod: torch.Tensor
    spacing: str = "leading"
    steps_offset: int = 0
    final_alpha_one: bool = True
    _log_ab: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        ab = torch.as_tensor(self.alphas_cumprod, dtype=torch.float64)
        if ab.ndim != 1 or len(ab) < 2 or not bool(((ab > 0) & (ab <= 1)).all()):
            raise DiffcoreError("alphas_cumprod must be a 1-D sequence of values in (0, 1]")
        if self.spacing not in ("leading", "trailing", "linspace"):
            raise DiffcoreError(f"spacing must be leading, trailing or linspace, got {self.spacing!r}")
        object.__setattr__(self, "alphas_cumprod", ab)
        object.__setattr__(self, "_log_ab", torch.cat([ab.new_zeros(1), torch.log(ab)]))

    @property
    def num_train_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    @classmethod
    def from_betas(cls, betas, **kw) -> DiscreteSchedule:
        betas = torch.as_tensor(betas, dtype=torch.float64)
        return cls(torch.cumprod(1 - betas, 0), **kw)

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, **kw) -> DiscreteSchedule:
        """Ho et al. (2020): betas linear in the step index."""
        return cls.from_betas(torch.linspace(beta_start, beta_end, T, dtype=torch.float64), **kw)

    @classmethod
    def scaled_linear(cls, T: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012, **kw) -> DiscreteSchedule:
        """Stable Diffusion's schedule: sqrt(beta) linear in the step index."""
        return cls.from_betas(torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2, **kw)

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999, **kw) -> DiscreteSchedule:
        """Nichol & Dhariwal (2021), eq. 17, betas clipped at ``max_beta``."""

        def f(u):
            return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

        betas = [min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(T)]
        return cls.from_betas(betas, **kw)

    def _log_alpha_bar(self, t) -> torch.Tensor:
        t = _as_t(t)
        pos = (t.double() * self.num_train_timesteps).clamp(0, self.num_train_timesteps)
        lo = pos.floor().long().clamp(max=self.num_train_timesteps - 1)
        frac = pos - lo
        table = self._log_ab.to(t.device)
        return (table[lo] * (1 - frac) + table[lo + 1] * frac).to(t.dtype)

    def alpha(self, t) -> torch.Tensor:
        return torch.exp(0.5 * self._log_alpha_bar(t))

    def sigma(self, t) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(self._log_alpha_bar(t)))

    def model_time(self, t) -> torch.Tensor:
        """The network's timestep for time t: ``t * T - 1`` (integer on the grid)."""
        return _as_t(t) * self.num_train_timesteps - 1

    def timesteps(self, steps: int) -> torch.Tensor:
        T = self.num_train_timesteps
        steps = self._check_steps(steps)
        if steps > T:
            raise DiffcoreError(f"steps={steps} exceeds the schedule's {T} training steps")
        if self.spacing == "leading":
            idx = torch.arange(steps - 1, -1, -1, dtype=torch.float64) * (T // steps) + self.steps_offset
        elif self.spacing == "trailing":
            idx = torch.round(torch.arange(T, 0, -T / steps, dtype=torch.float64)) - 1
        else:
            idx = torch.linspace(T - 1, 0, steps, dtype=torch.float64).round()
        t = (idx + 1) / T
        end = torch.zeros(1, dtype=torch.float64) if self.final_alpha_one else torch.full((1,), 1.0 / T, dtype=torch.float64)
        return torch.cat([t, end])


@dataclass(frozen=True)
class VPSchedule(_ScheduleMixin):
    """Continuous VP SDE: ``beta(t) = beta_min + t (beta_max - beta_min)``."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def _log_alpha_bar(self, t):
        t = _as_t(t)
        return -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t)

    def alpha(self, t):
        return torch.exp(0.5 * self._log_alpha_bar(t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(self._log_alpha_bar(t)))

    def timesteps(self, steps: int) -> torch.Tensor:
        return torch.linspace(1.0, 0.0, self._check_steps(steps) + 1, dtype=torch.float64)


@dataclass(frozen=True)
class VESchedule(_ScheduleMixin):
    """Continuous VE SDE with the exact perturbation variance, so sigma(0) = 0."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def alpha(self, t):
        return torch.ones_like(_as_t(t))

    def sigma(self, t):
        t = _as_t(t)
        r = math.log(self.sigma_max / self.sigma_min)
        return self.sigma_min * torch.sqrt(torch.expm1(2 * r * t))

    def timesteps(self, steps: int) -> torch.Tensor:
        return torch.linspace(1.0, 0.0, self._check_steps(steps) + 1, dtype=torch.float64)


@dataclass(frozen=True)
class EDMSchedule(_ScheduleMixin):
    """Karras et al. (2022): ``alpha = 1``, ``sigma(t) = sigma_max * t^rho``."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def alpha(self, t):
        return torch.ones_like(_as_t(t))

    def sigma(self, t):
        return self.sigma_max * _as_t(t) ** self.rho

    def timesteps(self, steps: int) -> torch.Tensor:
        steps = self._check_steps(steps)
        t_min = (self.sigma_min / self.sigma_max) ** (1 / self.rho)
        grid = torch.linspace(1.0, t_min, steps, dtype=torch.float64) if steps > 1 else torch.ones(1, dtype=torch.float64)
        return torch.cat([grid, torch.zeros(1, dtype=torch.float64)])


# diffcore's own schedules, registered by the built-in plugin (diffcore.builtin); plugins add
# theirs through ``register_schedules`` and `diffcore.available("schedule")` lists them all.
SCHEDULES = {
    "linear": DiscreteSchedule.linear,
    "scaled_linear": DiscreteSchedule.scaled_linear,
    "cosine": DiscreteSchedule.cosine,
    "vp": VPSchedule,
    "ve": VESchedule,
    "edm": EDMSchedule,
}


def make_schedule(name: str, **options):
    """Build a registered schedule by name (or ``name:key=value,...``): diffcore's ``linear``,
    ``scaled_linear``, ``cosine``, ``vp``, ``ve``, ``edm``, or one a plugin registers.

    >>> make_schedule("vp:beta_max=10.0").beta_max
    10.0
    """
    from diffcore.errors import UnknownComponentError, closest
    from diffcore.plugin_host import host
    from diffcore.registry import build, parse_spec

    key, inline = parse_spec(name)
    registry = host().registry
    if key not in registry.components["schedule"] and key not in registry.aliases["schedule"]:
        known = list(registry.components["schedule"])  # registration order: diffcore's first, as always listed
        hint = closest(key, known + list(registry.aliases["schedule"]))
        raise UnknownComponentError(f"unknown schedule {key!r}; known: {', '.join(known)}" + (f" (did you mean {hint!r}?)" if hint else ""))
    return build(registry.get("schedule", key), {**inline, **options})


def time_at_log_snr(schedule, lam, iters: int = 64) -> torch.Tensor:
    """Invert a schedule: the t in (0, 1] with ``log_snr(t) = lam`` (bisection; log-SNR falls with t).

    >>> s = VPSchedule()
    >>> t = time_at_log_snr(s, s.log_snr(torch.tensor([0.3], dtype=torch.float64)))
    >>> round(float(t), 6)
    0.3
    """
    lam = torch.as_tensor(lam, dtype=torch.float64)
    lo = torch.full_like(lam, 1e-12)
    hi = torch.ones_like(lam)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        above = schedule.log_snr(mid) > lam  # still too clean: move right
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    return 0.5 * (lo + hi)
