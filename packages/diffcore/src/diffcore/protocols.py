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
    - ``camera``: camera-to-world matrices (N, 3, 4) or (N, 4, 4) in the :class:`Camera` convention,
      or whatever the prior documents;
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

    - ``timesteps(steps)``: the decreasing grid of ``steps + 1`` times a sampler walks, ending at 0;
    - ``log_snr(t)``: ``log(alpha(t) / sigma(t))``, falling with t (+inf at t = 0);
    - ``init_std(t)``: the standard deviation of the noise a sampler starts from at time t when the
      prior does not know its marginal there (``sqrt(alpha^2 + sigma^2)``: unit data variance).

    Discrete schedules also map t to the model's timestep (``model_time``).
    """

    def alpha(self, t: torch.Tensor) -> torch.Tensor: ...
    def sigma(self, t: torch.Tensor) -> torch.Tensor: ...
    def timesteps(self, steps: int) -> torch.Tensor: ...
    def log_snr(self, t: torch.Tensor) -> torch.Tensor: ...
    def init_std(self, t: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Latent(Protocol):
    """The autoencoder of a latent prior: images <-> latents."""

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...
    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Prior(Protocol):
    """A denoiser with a schedule. It predicts; it never samples.

    What callers use, and nothing else (:class:`PriorBase` gives the defaults):

    - ``schedule``: a :class:`Schedule`;
    - ``sample_shape``: shape of one sample, e.g. ``(3, 32, 32)`` (the latent shape for latent priors);
    - ``image_shape``: shape of one decoded sample (``sample_shape`` for pixel priors);
    - ``accepts``: the :class:`Cond` fields it uses (empty for unconditional priors);
    - ``null_cond``: the :class:`Cond` that makes a prediction unconditional: ``Cond()`` when
      ``predict(x_t, t)`` already is, the null label or empty prompt of a model trained with
      condition dropout, ``None`` when the prior has no unconditional model;
    - ``class_names``: the names of the class labels it accepts, or ``None``;
    - ``latent``: ``None`` for pixel priors, else a :class:`Latent`;
    - ``consistent``: whether ``x_t = alpha x0 + sigma eps`` holds for its predictions (priors that
      clip x0 set it to False);
    - ``device``, ``dtype``: where its network runs and in what precision (inputs may be in any
      floating dtype; predictions come back in the input's);
    - ``predict(x_t, t, cond=None) -> Prediction`` with ``t`` a float, a 0-d or a (N,) tensor;
    - ``sample_marginal(n, t, *, generator, dtype, device)``: ``n`` exact draws of ``x_t`` at time t,
      or ``None`` when the prior does not know its marginal (samplers then start from
      ``N(0, init_std(t)^2)``).
    """

    schedule: Schedule
    sample_shape: tuple[int, ...]
    image_shape: tuple[int, ...]
    accepts: frozenset[str]
    null_cond: Cond | None
    class_names: tuple[str, ...] | None
    latent: Latent | None
    consistent: bool
    device: torch.device
    dtype: torch.dtype

    def predict(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> Prediction: ...
    def sample_marginal(self, n: int, t, *, generator=None, dtype=torch.float32, device=None) -> torch.Tensor | None: ...


PRIOR_ATTRIBUTES = (
    "schedule",
    "sample_shape",
    "image_shape",
    "accepts",
    "null_cond",
    "class_names",
    "latent",
    "consistent",
    "device",
    "dtype",
)


class PriorBase:
    """Defaults for the optional parts of the :class:`Prior` contract; a prior may inherit them.

    Unconditional (``null_cond = Cond()``), a pixel prior (``image_shape`` is ``sample_shape``),
    consistent, on the CPU in float32, without a known marginal. A subclass sets ``schedule``,
    ``sample_shape`` and ``predict`` and overrides what differs.
    """

    accepts: frozenset[str] = frozenset()
    null_cond: Cond | None = Cond()
    class_names: tuple[str, ...] | None = None
    latent: Latent | None = None
    consistent: bool = True
    device = torch.device("cpu")
    dtype = torch.float32

    @property
    def image_shape(self) -> tuple[int, ...]:
        if self.latent is None:
            return tuple(self.sample_shape)
        shape = getattr(self.latent, "image_shape", None)
        if shape is None:
            raise DiffcoreError(f"{type(self).__name__} is a latent prior whose decoder does not say its image shape")
        return tuple(shape(tuple(self.sample_shape)) if callable(shape) else shape)

    def sample_marginal(self, n: int, t, *, generator=None, dtype=torch.float32, device=None) -> torch.Tensor | None:
        return None


def check_prior_attributes(prior) -> None:
    """Raise a one-line :class:`DiffcoreError` naming what ``prior`` lacks of the :class:`Prior` contract.

    >>> check_prior_attributes(object())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    diffcore.errors.DiffcoreError: object is not a complete diffcore prior: it lacks predict, sample_marginal, schedule, ... and 8 more; ...
    """
    own = vars(prior) if hasattr(prior, "__dict__") else {}
    missing = [a for a in ("predict", "sample_marginal", *PRIOR_ATTRIBUTES) if a not in own and not hasattr(type(prior), a)]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise DiffcoreError(
            f"{type(prior).__name__} is not a complete diffcore prior: it lacks {shown}; inherit diffcore.protocols.PriorBase for the "
            "defaults"
        )


@runtime_checkable
class Operator(Protocol):
    """A measurement ``y = A(x) + noise`` with noise level ``sigma_y``.

    ``x`` has shape ``(N, *x_shape)`` and ``y`` ``(N, *y_shape)``. ``linear`` says whether the
    operator satisfies :class:`LinearOperator`, ``has_svd`` whether it also satisfies
    :class:`SVDOperator`; ``differentiable = False`` marks an ``A`` autograd cannot go through.
    """

    sigma_y: float
    linear: bool
    has_svd: bool
    differentiable: bool

    def A(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class LinearOperator(Operator, Protocol):
    """A linear measurement: ``A``, its adjoint and its pseudo-inverse.

    ``<A x, y> = <x, A_adjoint y>`` for every x, y, and ``A_pinv`` is the Moore-Penrose
    pseudo-inverse: ``A A_pinv A = A``. :func:`diffcore.testing.check_operator` checks both.
    """

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor: ...
    def A_pinv(self, y: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class SVDOperator(LinearOperator, Protocol):
    """A linear operator with its singular value decomposition ``A = U diag(s) V^T``, per batch item.

    With ``n = prod(x_shape)``, ``m = prod(y_shape)`` and ``k = len(singulars())``:

    - ``Vt(x) -> (N, n)``: coordinates of ``x`` in the orthonormal basis ``V``, the first ``k``
      paired with the singular values, the rest spanning the null space; ``V(c)`` inverts it;
    - ``Ut(y) -> (N, k)`` and ``U(c) -> (N, *y_shape)`` on the measurement side (``U`` has
      orthonormal columns; the ``m - k`` directions it misses are never measured);
    - ``singulars() -> (k,)``: positive, in the order of the coordinates;

    so that ``A(x) == U(singulars() * Vt(x)[:, :k])``. DDRM, DDNM, ΠGDM and SNIPS need it.
    """

    def V(self, c: torch.Tensor) -> torch.Tensor: ...
    def Vt(self, x: torch.Tensor) -> torch.Tensor: ...
    def U(self, c: torch.Tensor) -> torch.Tensor: ...
    def Ut(self, y: torch.Tensor) -> torch.Tensor: ...
    def singulars(self) -> torch.Tensor: ...


@runtime_checkable
class Solver(Protocol):
    """A posterior sampler: ``solve(prior, operator, y, *, steps, generator) -> x``."""

    def __call__(self, prior: Prior, operator: Operator, y: torch.Tensor, *, steps: int, generator=None, **options) -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)
class Camera:
    """Pinhole cameras in the project's convention, nerfstudio's (see docs/architecture.md, Cameras).

    - ``camera_to_worlds``: (N, 3, 4) rotation and position, mapping camera coordinates to world
      coordinates; camera axes are OpenGL's: x right, y up, the camera looks along -z;
    - ``fx``, ``fy``, ``cx``, ``cy``: (N, 1) focal lengths and principal point in pixels; the ray of
      pixel (row v, column u) leaves through the pixel's centre, camera direction
      ``((u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1)``;
    - ``width``, ``height``: the image size in pixels, shared by the batch.

    The attribute names are nerfstudio's ``Cameras``'; the world is z-up around the origin, where
    nerfstudio's random cameras look.
    """

    camera_to_worlds: torch.Tensor
    fx: torch.Tensor
    fy: torch.Tensor
    cx: torch.Tensor
    cy: torch.Tensor
    width: int
    height: int

    def __post_init__(self):
        c2w = self.camera_to_worlds
        if not isinstance(c2w, torch.Tensor) or c2w.ndim != 3 or tuple(c2w.shape[1:]) not in ((3, 4), (4, 4)):
            raise DiffcoreError(f"camera_to_worlds must be an (N, 3, 4) tensor, got {tuple(getattr(c2w, 'shape', ()))}")
        n = c2w.shape[0]
        object.__setattr__(self, "camera_to_worlds", c2w[:, :3, :4])
        for name in ("fx", "fy", "cx", "cy"):
            value = torch.as_tensor(getattr(self, name), dtype=c2w.dtype, device=c2w.device).reshape(-1, 1)
            if value.shape[0] not in (1, n):
                raise DiffcoreError(f"camera {name} has {value.shape[0]} values; expected 1 or {n}")
            object.__setattr__(self, name, value.expand(n, 1))
        if int(self.width) < 1 or int(self.height) < 1:
            raise DiffcoreError(f"camera image size must be positive, got {self.width} x {self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def __len__(self) -> int:
        return self.camera_to_worlds.shape[0]


@dataclass(frozen=True, eq=False)
class Rendering:
    """What a representation renders from N cameras: ``rgb`` (N, C, H, W) in [-1, 1], and where it has
    them ``depth`` (N, 1, H, W: distance along the unit ray), ``accumulation`` (N, 1, H, W: opacity
    in [0, 1]) and ``normals`` (N, 3, H, W: the weighted sum of unit world-space normals along each
    ray, of length at most the accumulation)."""

    rgb: torch.Tensor
    depth: torch.Tensor | None = None
    accumulation: torch.Tensor | None = None
    normals: torch.Tensor | None = None


@runtime_checkable
class Representation(Protocol):
    """Content with parameters that renders differentiably.

    - ``render(camera) -> torch.Tensor``: the images (N, C, H, W) in [-1, 1] that ``camera`` (a
      :class:`Camera`) sees, differentiable in the parameters; a 2-D representation may ignore
      the camera beyond its batch size;
    - ``parameters()``: the tensors an optimiser trains.

    A 3-D representation also satisfies :class:`Representation3D`.
    """

    def render(self, camera: Any) -> torch.Tensor: ...
    def parameters(self): ...


@runtime_checkable
class Representation3D(Representation, Protocol):
    """A representation in 3-D space (a radiance field, a grid, Gaussians): what rendering and export use.

    - ``render_outputs(camera) -> Rendering``: rgb plus depth, accumulation and normals where it
      has them (``render`` is its ``rgb``);
    - ``density(points) -> (P,)``: the volume density (>= 0) at world points (P, 3), for meshes;
    - ``colors(points) -> (P, C)``: the colour in [-1, 1] at world points, for vertex colours;
    - ``bounds``: (2, 3) the corners of the world box that holds the content.
    """

    bounds: torch.Tensor

    def render_outputs(self, camera: Camera) -> Rendering: ...
    def density(self, points: torch.Tensor) -> torch.Tensor: ...
    def colors(self, points: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Distiller(Protocol):
    """A score-distillation objective: ``grad(prior, image, cond, step) -> gradient on image``.

    The gradient (same shape as ``image``) is what the objective adds to ``d loss / d image`` for
    each image. Distillers that train (every one diffcore's plugins ship) satisfy
    :class:`LossDistiller`, which adds the loss, annealing, an explicit generator and parameters of
    their own; :class:`DistillerBase` derives ``grad`` from ``loss``.
    """

    def grad(self, prior: Prior, image: torch.Tensor, cond: Cond | None, step: int) -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)
class Distillation:
    """What :meth:`LossDistiller.loss` returns: the scalar ``loss`` to back-propagate and ``logs``
    (0-d or (N,) tensors: the time ``t``, the weight ``w(t)``, gradient norms...)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor]


@runtime_checkable
class LossDistiller(Distiller, Protocol):
    """A distiller as a training loss (what diff-3d's loop and nerfstudio methods call).

    - ``loss(prior, images, cond, *, step, total_steps, generator, camera=None) -> Distillation``:
      ``images`` (N, C, H, W) in [-1, 1] are the renders, with their graph to the representation;
      ``step`` of ``total_steps`` (``None``: no annealing) drives the noise-level annealing; every
      random draw comes from ``generator``; ``camera`` is the :class:`Camera` that rendered them.
      Gradient convention: with ``g`` the per-image distillation gradient (SDS:
      ``w(t) (eps_hat(x_t) - eps)``) in the prior's space ``z`` (the images, or their latents
      ``z = encode(images)``), ``loss = 0.5 * sum((z - stopgrad(z - g))^2) / N``, so
      ``d loss / d z = g / N`` while the prior is never differentiated. The loss is float32 whatever
      the autocast, and its value is ``0.5 |g|^2 / N``, a log, not a measure of progress;
    - ``parameters()``: the distiller's own trainable tensors (VSD's LoRA), empty for most;
    - ``update(prior, images, cond, *, step, total_steps, generator, camera=None) -> dict``: one
      optimiser step of those on the detached ``images``, which the distiller owns (a no-op
      returning ``{}`` without parameters); callers run it once per step, after ``loss``.
    """

    def loss(self, prior: Prior, images: torch.Tensor, cond: Cond | None, *, step, total_steps, generator, camera=None) -> Distillation: ...
    def parameters(self): ...
    def update(self, prior: Prior, images: torch.Tensor, cond: Cond | None, *, step, total_steps, generator, camera=None) -> dict: ...


class DistillerBase:
    """Defaults for :class:`LossDistiller`: no parameters of its own, ``update`` a no-op, and ``grad``
    the per-image gradient that ``loss`` implies (``N * d loss / d images``; a generator seeded with
    ``step`` when none is given). A subclass implements ``loss``."""

    def parameters(self) -> list[torch.Tensor]:
        return []

    def update(self, prior, images, cond, *, step, total_steps, generator, camera=None) -> dict:
        return {}

    def grad(self, prior, image, cond, step, *, total_steps=None, generator=None, camera=None) -> torch.Tensor:
        x = image.detach().requires_grad_(True)
        generator = generator if generator is not None else torch.Generator().manual_seed(int(step))
        out = self.loss(prior, x, cond, step=step, total_steps=total_steps, generator=generator, camera=camera)
        (g,) = torch.autograd.grad(out.loss, x)
        return g * x.shape[0]


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


@runtime_checkable
class Trainable(Protocol):
    """A network-backed prior that can be fine-tuned (:mod:`diffcore.training`).

    - ``network``: the :class:`torch.nn.Module` the prior runs; training changes its parameters;
    - ``prediction_type``: what the network outputs: ``epsilon``, ``v_prediction`` or ``sample``
      (diffusers' names; :func:`diffcore.conversions.training_target` gives each target);
    - ``schedule``: the :class:`Schedule` of its forward process;
    - ``network_output(x_t, t, cond=None)``: the network's raw output at ``(x_t, t)`` in that
      parameterisation, in the network's mode and with gradients to its parameters (``predict``
      converts the same output to a :class:`Prediction`, without parameter gradients).
    """

    network: torch.nn.Module
    prediction_type: str
    schedule: Schedule

    def network_output(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> torch.Tensor: ...
