"""The contracts between diffcore and its plugins.

These are :class:`typing.Protocol` classes: a component satisfies one by having the attributes
and methods listed, without inheriting from anything. ``isinstance(obj, Prior)`` checks the
names at run time; the contract tests in :mod:`diffcore.testing` check the behaviour.

Conventions (see docs/architecture.md): continuous time ``t`` in [0, 1]; forward process
``x_t = alpha(t) * x0 + sigma(t) * eps``; images are float NCHW in [-1, 1], videos NFCHW,
point clouds NP3; randomness only through an explicit :class:`torch.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import torch

from diffcore import conversions
from diffcore.errors import DiffcoreError


@dataclass(frozen=True)
class Prediction:
    """What a prior predicts at ``(x_t, t)``: the clean estimate ``x0`` and the noise ``eps``.

    Build one from whatever a network outputs with :meth:`from_eps`, :meth:`from_x0` or
    :meth:`from_v`; the score is derived, never stored.
    """

    x0: torch.Tensor
    eps: torch.Tensor

    @classmethod
    def from_eps(cls, x_t, eps, alpha, sigma) -> Prediction:
        return cls(x0=conversions.eps_to_x0(x_t, eps, alpha, sigma), eps=eps)

    @classmethod
    def from_x0(cls, x_t, x0, alpha, sigma) -> Prediction:
        return cls(x0=x0, eps=conversions.x0_to_eps(x_t, x0, alpha, sigma))

    @classmethod
    def from_v(cls, x_t, v, alpha, sigma) -> Prediction:
        return cls(x0=conversions.v_to_x0(x_t, v, alpha, sigma), eps=conversions.v_to_eps(x_t, v, alpha, sigma))

    def score(self, sigma) -> torch.Tensor:
        """``grad log p_t(x_t) = -eps / sigma(t)``."""
        return conversions.eps_to_score(self.eps, sigma)


@dataclass(frozen=True)
class Cond:
    """Typed conditioning. Each field is optional; a prior lists the ones it accepts.

    - ``text``: text embeddings (N, L, D), or a string / list of strings for priors that carry
      their own text encoder;
    - ``labels``: class indices (N,) as int64;
    - ``camera``: camera poses (N, 4, 4) or whatever the prior documents;
    - ``image``: reference images (N, C, H, W) in [-1, 1].
    """

    text: Any = None
    labels: torch.Tensor | None = None
    camera: torch.Tensor | None = None
    image: torch.Tensor | None = None

    def given(self) -> frozenset[str]:
        """The names of the fields that are set."""
        return frozenset(f.name for f in fields(self) if getattr(self, f.name) is not None)


def check_cond(prior_name: str, accepts: frozenset[str] | set[str], cond: Cond | None) -> None:
    """Reject conditioning that a prior cannot use, naming what it accepts.

    >>> check_cond("gmm", frozenset(), Cond(labels=torch.tensor([1])))
    Traceback (most recent call last):
    ...
    diffcore.errors.DiffcoreError: prior 'gmm' does not accept labels conditioning; it accepts: nothing (unconditional)
    """
    if cond is None:
        return
    if not isinstance(cond, Cond):
        raise DiffcoreError(f"cond must be a diffcore.Cond, got {type(cond).__name__}")
    extra = sorted(cond.given() - set(accepts))
    if extra:
        accepted = ", ".join(sorted(accepts)) or "nothing (unconditional)"
        raise DiffcoreError(f"prior {prior_name!r} does not accept {', '.join(extra)} conditioning; it accepts: {accepted}")


@runtime_checkable
class Schedule(Protocol):
    """A noise schedule: ``alpha(t)``, ``sigma(t)`` for t in [0, 1], with alpha(0)=1, sigma(0)=0.

    ``timesteps(steps)`` gives the decreasing grid of ``steps + 1`` times a sampler walks,
    ending at 0. Discrete schedules also map t to the model's timestep (``model_time``).
    """

    def alpha(self, t: torch.Tensor) -> torch.Tensor: ...
    def sigma(self, t: torch.Tensor) -> torch.Tensor: ...
    def timesteps(self, steps: int) -> torch.Tensor: ...


@runtime_checkable
class Latent(Protocol):
    """The autoencoder of a latent prior: images <-> latents."""

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...
    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Prior(Protocol):
    """A denoiser with a schedule. It predicts; it never samples.

    - ``schedule``: a :class:`Schedule`;
    - ``sample_shape``: shape of one sample, e.g. ``(3, 32, 32)`` (latent shape for latent priors);
    - ``accepts``: the :class:`Cond` fields it uses (empty for unconditional priors);
    - ``latent``: ``None`` for pixel priors, else a :class:`Latent`;
    - ``predict(x_t, t, cond=None) -> Prediction`` with ``t`` a float or a (N,) tensor.
    """

    schedule: Schedule
    sample_shape: tuple[int, ...]
    accepts: frozenset[str]
    latent: Latent | None

    def predict(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> Prediction: ...


@runtime_checkable
class Operator(Protocol):
    """A measurement ``y = A(x) + noise`` with noise level ``sigma_y``.

    Linear operators add ``A_adjoint(y)`` and ``A_pinv(y)``, and where cheap the SVD
    ``A = U diag(singulars) V^T`` through ``V``, ``Vt``, ``U``, ``Ut`` and ``singulars()``.
    """

    sigma_y: float

    def A(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Solver(Protocol):
    """A posterior sampler: ``solve(prior, operator, y, *, steps, generator) -> x``."""

    def __call__(self, prior: Prior, operator: Operator, y: torch.Tensor, *, steps: int, generator=None, **options) -> torch.Tensor: ...


@runtime_checkable
class Representation(Protocol):
    """Content with parameters that renders differentiably: ``render(camera) -> image``."""

    def render(self, camera: Any) -> torch.Tensor: ...
    def parameters(self): ...


@runtime_checkable
class Distiller(Protocol):
    """A score-distillation objective: ``grad(prior, image, cond, step) -> gradient on image``."""

    def grad(self, prior: Prior, image: torch.Tensor, cond: Cond | None, step: int) -> torch.Tensor: ...


def time_tensor(t, x: torch.Tensor) -> torch.Tensor:
    """Turn a float, 0-d or (N,) time into a (N,) tensor on ``x``'s device and dtype.

    >>> time_tensor(0.5, torch.zeros(3, 2))
    tensor([0.5000, 0.5000, 0.5000])
    """
    n = x.shape[0]
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(n)
    if t.shape != (n,):
        raise DiffcoreError(f"t has shape {tuple(t.shape)}; expected a scalar or ({n},) to match x_t")
    return t
