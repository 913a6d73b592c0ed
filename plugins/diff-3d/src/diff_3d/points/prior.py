"""A point-cloud diffusion prior: a diffcore prior whose samples are clouds (P, 3), so the kernel's samplers draw shapes.

The forward process is the kernel's, ``x_t = alpha(t) x0 + sigma(t) eps`` on every coordinate of
every point, with PVD's schedule (DDPM linear betas 1e-4 to 0.02 over 1000 steps; Zhou et al. 2021,
sec. 4); the network (:class:`~diff_3d.points.network.PointVoxelNet`) predicts ``eps``.
:class:`PointCloudPrior` is a :class:`diffcore.protocols.PriorBase` with ``sample_shape = (P, 3)`` and
satisfies :class:`diffcore.protocols.Trainable` (``network``, ``prediction_type``, ``network_output``),
so :func:`diffcore.training.denoising_loss` trains it and :func:`diffcore.sample` samples it. The
network takes any number of points: :meth:`PointCloudPrior.with_points` is the same prior for another
``P``. A class-conditional network accepts ``Cond(labels=...)``; its null label (the label after the
last class, trained by label dropout) is ``null_cond``.

>>> import torch, diffcore
>>> from diff_3d.points.network import PointVoxelNet
>>> prior = PointCloudPrior(PointVoxelNet(width=16, resolution=4, blocks=1, voxel_width=8), points=32)
>>> diffcore.sample(prior, 2, steps=5, generator=torch.Generator().manual_seed(0)).shape
torch.Size([2, 32, 3])
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import Cond, Prediction, PriorBase, check_cond, time_tensor


def _times(t, x_t: torch.Tensor) -> torch.Tensor:
    """``t`` as (N,) float64 on the CPU (a float, a 0-d or an (N,) tensor; kept in float64 for the schedule)."""
    return time_tensor(torch.as_tensor(t).detach().cpu().to(torch.float64), x_t.new_empty(x_t.shape[0], dtype=torch.float64, device="cpu"))


def default_schedule():
    """PVD's schedule: DDPM linear betas 1e-4..0.02, 1000 steps."""
    from diffcore.schedules import DiscreteSchedule

    return DiscreteSchedule.linear(1000)


class PointCloudPrior(PriorBase):
    """Clouds of ``points`` points denoised by ``network`` (see the module docstring).

    Args:
        network: a module ``network(points (N, P, 3), model_time (N,), labels (N,) or None) -> eps``
            with ``classes`` (0: unconditional), such as :class:`~diff_3d.points.network.PointVoxelNet`.
        points: P, the number of points a sample has; schedule: the forward process (default PVD's).
        class_names: the names of the labels; device, dtype: where and in what precision the network runs.
    """

    prediction_type = "epsilon"

    def __init__(
        self, network: torch.nn.Module, *, points: int = 2048, schedule=None, class_names=None, device=None, dtype=None, name=None
    ):
        if int(points) < 1:
            raise DiffcoreError(f"a point cloud needs at least one point, got points={points}")
        self.network = network
        self.schedule = schedule if schedule is not None else default_schedule()
        self.sample_shape = (int(points), 3)
        self.classes = int(getattr(network, "classes", 0))
        if device is not None or dtype is not None:
            network.to(device=device, dtype=dtype)
        first = next(network.parameters())
        self.device, self.dtype = first.device, first.dtype
        if self.classes:
            self.accepts = frozenset({"labels"})
            self.null_cond = Cond(labels=torch.tensor([self.classes]))
            names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(self.classes))
            if len(names) != self.classes:
                raise DiffcoreError(f"class_names has {len(names)} names for a network of {self.classes} classes")
            self.class_names = names
        self.name = name or "point-cloud"

    def with_points(self, points: int) -> PointCloudPrior:
        """The same prior (the same network object) for clouds of ``points`` points."""
        other = PointCloudPrior(self.network, points=points, schedule=self.schedule, class_names=self.class_names, name=self.name)
        return other

    def _labels(self, cond: Cond | None, n: int) -> torch.Tensor | None:
        if not self.classes:
            return None
        if cond is None or cond.labels is None:
            raise DiffcoreError(f"{self.name} is class-conditional: pass cond=Cond(labels=...) (null label {self.classes} for no class)")
        labels = torch.as_tensor(cond.labels, device=self.device).long().reshape(-1)
        if labels.numel() == 1:
            labels = labels.expand(n)
        if labels.numel() != n:
            raise ShapeError(f"cond.labels has {labels.numel()} labels; expected 1 or {n} to match x_t")
        if bool(((labels < 0) | (labels > self.classes)).any()):
            raise DiffcoreError(f"labels must lie in 0..{self.classes} ({self.classes} is the null label), got {labels.tolist()}")
        return labels

    def _check(self, x_t: torch.Tensor) -> None:
        if x_t.ndim != 3 or x_t.shape[-1] != 3:
            raise ShapeError(f"x_t has shape {tuple(x_t.shape)}; expected point clouds (N, P, 3)")

    def network_output(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> torch.Tensor:
        check_cond(self.name, self.accepts, cond)
        self._check(x_t)
        tt = _times(t, x_t)
        steps = self.schedule.model_time(tt).to(device=self.device, dtype=torch.float32)
        return self.network(x_t.to(self.device, self.dtype), steps, self._labels(cond, x_t.shape[0]))

    def predict(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> Prediction:
        with torch.no_grad():
            eps = self.network_output(x_t, t, cond).to(x_t)
        tt = _times(t, x_t).reshape(-1, 1, 1)
        alpha = self.schedule.alpha(tt).to(x_t)
        sigma = self.schedule.sigma(tt).to(x_t)
        return Prediction.from_eps(x_t, eps, alpha, sigma)
