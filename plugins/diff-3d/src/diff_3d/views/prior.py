"""A view-conditioned prior: ``p(target view | reference view, relative pose)`` as a diffcore prior.

The contract every view-conditioned prior of diff-3d follows (``zoo:views``, and Zero-1-to-3
through :mod:`diffcore.adapters.zero123`):

- ``accepts = {"image", "camera"}``: ``Cond(image=reference, camera=relative)``, the reference
  view (N, C, H, W) in [-1, 1] and the relative pose of the view to generate
  (:func:`diff_3d.views.poses.relative_pose`, (N, 3, 4) or (N, 4, 4)); a batch of 1 broadcasts;
- a reference of zeros is *no reference*: that sample is unconditional whatever its camera (the
  networks were trained with the reference and the pose dropped together), and
  ``null_cond = Cond(image=zeros, camera=identity)``, both fields set as
  :class:`diffcore.priors.Guided` needs, so ``Guided(prior, scale, Cond(image=ref, camera=rel))``
  is classifier-free guidance (Ho & Salimans 2022);
- a non-zero reference without a camera is an error.

:func:`is_view_conditioned` tells such a prior apart; :func:`check_view_prior` is the one-line
error of the commands that need one.

:class:`ViewPrior` is the pixel-space prior of :class:`~diff_3d.views.network.ViewUNet` (epsilon
prediction on the zoo's DDPM schedule, x0 clipped to [-1, 1] by default as the zoo priors do). It
is :class:`diffcore.protocols.Trainable`, so :func:`diffcore.training.denoising_loss` trains it.
Its folder: ``config.json`` (network, schedule, clipping) and ``network.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from diff_3d.views.network import NetworkConfig, ViewUNet
from diffcore.errors import CheckpointError, DiffcoreError, ShapeError
from diffcore.protocols import Cond, Prediction, PriorBase, check_cond
from diffcore.schedules import DiscreteSchedule

CONFIG = "config.json"
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
_FROM = {"epsilon": Prediction.from_eps, "v_prediction": Prediction.from_v, "sample": Prediction.from_x0}
WEIGHTS = "network.safetensors"


def _batch(value: torch.Tensor, n: int, what: str) -> torch.Tensor:
    if value.shape[0] == 1 and n > 1:
        return value.expand(n, *value.shape[1:])
    if value.shape[0] != n:
        raise ShapeError(f"{what} has batch {value.shape[0]}; expected 1 or {n} to match x_t")
    return value


def reference_and_pose(cond: Cond | None, n: int, image_shape: tuple[int, ...], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference views (n, C, H, W) and relative poses (n, 3, 4) a view-conditioned network sees, zeros where unconditional."""
    c, h, w = image_shape
    if cond is None or cond.image is None:
        return like.new_zeros(n, c, h, w), like.new_zeros(n, 3, 4)
    image = torch.as_tensor(cond.image).to(like)
    if image.ndim != 4 or tuple(image.shape[1:]) != (c, h, w):
        raise ShapeError(f"cond.image has shape {tuple(image.shape)}; expected reference views (N, {c}, {h}, {w}) in [-1, 1]")
    image = _batch(image, n, "cond.image")
    null = image.flatten(1).abs().amax(dim=1) == 0
    if cond.camera is None:
        if bool(null.all()):
            return image, like.new_zeros(n, 3, 4)
        raise DiffcoreError(
            "a view-conditioned prior needs the relative pose of each view: cond=Cond(image=reference, camera=relative (N, 3, 4))"
        )
    camera = torch.as_tensor(cond.camera).to(like)
    if camera.ndim != 3 or tuple(camera.shape[1:]) not in ((3, 4), (4, 4)):
        raise ShapeError(f"cond.camera has shape {tuple(camera.shape)}; expected relative poses (N, 3, 4) or (N, 4, 4)")
    camera = _batch(camera[:, :3, :4], n, "cond.camera")
    return image, torch.where(null[:, None, None], torch.zeros_like(camera), camera)


def is_view_conditioned(prior) -> bool:
    """Whether ``prior`` takes ``Cond(image=reference, camera=relative pose)`` (see the module docstring)."""
    return {"image", "camera"} <= set(getattr(prior, "accepts", ()))


def check_view_prior(prior, spec: str = "the prior") -> None:
    """Raise a one-line :class:`DiffcoreError` unless ``prior`` is view-conditioned."""
    if not is_view_conditioned(prior):
        accepts = ", ".join(sorted(getattr(prior, "accepts", ()))) or "nothing (unconditional)"
        raise DiffcoreError(
            f"{spec} is not view-conditioned (it accepts {accepts}); expected a prior of Cond(image=reference, camera=relative pose), "
            "e.g. zoo:views or zero123:path=DIR"
        )


def zoo_schedule() -> DiscreteSchedule:
    """DDPM's linear betas 1e-4 to 0.02 over 1000 steps: the zoo priors' schedule."""
    return DiscreteSchedule.linear(1000)


class ViewPrior(PriorBase):
    """A :class:`~diff_3d.views.network.ViewUNet` as a view-conditioned prior (see the module docstring).

    Args:
        network: the ``ViewUNet``; schedule: default :func:`zoo_schedule`; clip_x0: clamp x0 to [-1, 1]
        (eps stays the network's, so the prior is then not ``consistent``); name: for messages.
    """

    accepts = frozenset({"image", "camera"})

    def __init__(self, network: ViewUNet, *, schedule=None, clip_x0: bool = True, name: str = "views", prediction_type: str = "epsilon"):
        if prediction_type not in PREDICTION_TYPES:
            raise DiffcoreError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, got {prediction_type!r}")
        self.prediction_type = prediction_type
        self.network = network
        self.schedule = schedule if schedule is not None else zoo_schedule()
        config = network.config
        self.sample_shape = (config.channels, config.size, config.size)
        self.clip_x0 = bool(clip_x0)
        self.consistent = not self.clip_x0
        self.name = name
        self.null_cond = Cond(image=torch.zeros(1, *self.sample_shape), camera=torch.eye(4)[None, :3])
        param = next(network.parameters())
        self.device, self.dtype = param.device, param.dtype

    def __repr__(self) -> str:
        return f"ViewPrior({self.name!r}, sample_shape={self.sample_shape})"

    def _timestep(self, t, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t64 = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
        if t64.ndim == 0:
            t64 = t64.expand(x_t.shape[0])
        if t64.shape != (x_t.shape[0],):
            raise DiffcoreError(f"t has shape {tuple(t64.shape)}; expected a scalar or ({x_t.shape[0]},) to match x_t")
        step = self.schedule.model_time(t64)
        step = torch.where((step - step.round()).abs() < 1e-4, step.round(), step).clamp(0, self.schedule.num_train_timesteps - 1)
        shape = (-1,) + (1,) * (x_t.ndim - 1)
        alpha = self.schedule.alpha(t64).reshape(shape).to(x_t)
        sigma = self.schedule.sigma(t64).reshape(shape).to(x_t)
        return alpha, sigma, step.to(device=x_t.device, dtype=torch.float32)

    def _check(self, x_t) -> None:
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != 4 or tuple(x_t.shape[1:]) != self.sample_shape:
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ShapeError(f"x_t has shape {shape}; expected (N, {', '.join(map(str, self.sample_shape))})")

    def network_output(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> torch.Tensor:
        """The predicted noise, with gradients to the network's trainable parameters (for training)."""
        check_cond(self.name, self.accepts, cond)
        self._check(x_t)
        _, _, timestep = self._timestep(t, x_t)
        reference, relative = reference_and_pose(cond, x_t.shape[0], self.sample_shape, x_t.to(self.dtype))
        return self.network(x_t.to(self.dtype), timestep, reference, relative)

    def predict(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> Prediction:
        check_cond(self.name, self.accepts, cond)
        self._check(x_t)
        alpha, sigma, timestep = self._timestep(t, x_t)
        reference, relative = reference_and_pose(cond, x_t.shape[0], self.sample_shape, x_t.to(self.dtype))
        net = self.network
        was_training = net.training
        net.eval()
        try:
            if any(p.requires_grad for p in net.parameters()):  # no parameter gradients from a prediction
                from torch.func import functional_call

                state = {k: v.detach() for k, v in [*net.named_parameters(), *net.named_buffers()]}
                eps = functional_call(net, state, (x_t.to(self.dtype), timestep, reference, relative))
            else:
                eps = net(x_t.to(self.dtype), timestep, reference, relative)
        finally:
            net.train(was_training)
        pred = _FROM[self.prediction_type](x_t, eps.to(x_t.dtype), alpha, sigma)
        if self.clip_x0:
            return Prediction(x0=pred.x0.clamp(-1, 1), eps=pred.eps)
        return pred

    def to(self, device=None, dtype=None) -> ViewPrior:
        self.network.to(device=device, dtype=dtype)
        param = next(self.network.parameters())
        self.device, self.dtype = param.device, param.dtype
        return self


def save_view_prior(prior: ViewPrior, folder, *, dtype: torch.dtype = torch.float16, extra: dict | None = None) -> Path:
    """Write ``config.json`` and ``network.safetensors`` (tensors stored in ``dtype``) to ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().to(dtype).contiguous() for k, v in prior.network.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt"})
    config = {
        "network": prior.network.config.as_dict(),
        "schedule": {"kind": "linear", "T": 1000},
        "clip_x0": prior.clip_x0,
        "prediction_type": prior.prediction_type,
        **(extra or {}),
    }
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def load_view_prior(folder, *, device=None, dtype=None, clip_x0: bool | None = None, name: str = "views") -> ViewPrior:
    """The :class:`ViewPrior` saved in ``folder`` (float32 unless ``dtype``), in eval mode with frozen parameters."""
    from diffcore.weights import load_state_dict

    folder = Path(folder)
    missing = [f for f in (CONFIG, WEIGHTS) if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a view-conditioned prior folder: it lacks {', '.join(missing)}")
    try:
        config = json.loads((folder / CONFIG).read_text())
        network = ViewUNet(NetworkConfig.from_dict(config["network"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read {folder / CONFIG}: {exc}") from None
    tensors = load_state_dict(folder / WEIGHTS)
    try:
        network.load_state_dict({k: v.float() for k, v in tensors.items()})
    except RuntimeError as exc:
        raise CheckpointError(f"{folder / WEIGHTS} does not fit its config: {str(exc).splitlines()[0]}") from None
    network = network.eval().requires_grad_(False)
    if device is not None or dtype is not None:
        from diffcore.devices import resolve_dtype

        network = network.to(device=device, dtype=resolve_dtype(dtype))
    clip = config.get("clip_x0", True) if clip_x0 is None else clip_x0
    return ViewPrior(network, clip_x0=clip, name=name, prediction_type=config.get("prediction_type", "epsilon"))
