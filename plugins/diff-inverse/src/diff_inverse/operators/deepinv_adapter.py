"""Any ``deepinv.physics`` operator through the diff-inverse contract (optional: deepinv installed)."""

from __future__ import annotations

import math

import torch

from diff_inverse.operators._image import image_shape
from diff_inverse.operators.base import LinearOperator, Operator
from diffcore.errors import DiffcoreError


def _need_deepinv():
    try:
        import deepinv
    except ImportError as exc:
        raise ImportError('deepinv operators need deepinv: pip install "diff-inverse[deepinv]"') from exc
    return deepinv


class _DeepinvCalls:
    """Runs the wrapped physics in its own dtype and gives results in the caller's."""

    def _dtype(self) -> torch.dtype:
        for t in (*self.physics.parameters(), *self.physics.buffers()):
            if t.is_floating_point():
                return t.dtype
        return torch.float32

    def _call(self, fn, t: torch.Tensor) -> torch.Tensor:
        out = fn(t.to(self._dtype()))
        return out.to(t.dtype) if not out.is_complex() else out


class DeepinvNonlinear(_DeepinvCalls, Operator):
    """A nonlinear ``deepinv.physics.Physics``: ``A`` only (its own noise model is not used)."""

    def __init__(self, physics, x_shape, y_shape, sigma_y: float = 0.0, *, noise: str = "gaussian", rate=None):
        super().__init__(x_shape, y_shape, sigma_y, noise=noise, rate=rate)
        self.physics = physics

    def A(self, x):
        self.check_x(x)
        return self._call(self.physics.A, x)


class DeepinvLinear(_DeepinvCalls, LinearOperator):
    """A ``deepinv.physics.LinearPhysics``: ``A``, ``A_adjoint``, and ``A_dagger`` as ``A_pinv``.

    For a ``DecomposablePhysics`` whose ``V_adjoint`` gives a real tensor of ``n`` entries and
    whose ``mask`` (the singular values) is real and non-negative, the SVD is exposed in this
    package's convention: coordinates with a nonzero mask first (raster order of deepinv's
    transformed domain), then the rest; other physics have ``has_svd = False`` (deepinv's
    Fourier-domain ones use complex half-spectra). deepinv's own noise model is not used:
    ``sigma_y`` / ``noise`` here set the noise. ``A_pinv`` of a non-decomposable physics is
    deepinv's iterative least-squares solver, so it is approximate.
    """

    def __init__(self, physics, x_shape, y_shape, sigma_y: float = 0.0, *, noise: str = "gaussian", rate=None):
        super().__init__(x_shape, y_shape, sigma_y, noise=noise, rate=rate)
        self.physics = physics
        self.has_svd = False
        deepinv = _need_deepinv()
        if isinstance(physics, deepinv.physics.DecomposablePhysics):
            probe = torch.zeros(1, *x_shape, dtype=self._dtype())
            coords = physics.V_adjoint(probe)
            mask = torch.as_tensor(physics.mask)
            if not coords.is_complex() and coords[0].numel() == math.prod(x_shape) and not mask.is_complex():
                mask = torch.broadcast_to(mask.detach().cpu().to(torch.float64), coords.shape)[0]
                if (mask >= 0).all() and (mask > 0).any():
                    flat = mask.reshape(-1) > 0
                    self.domain = tuple(coords.shape[1:])
                    self.kept = flat.nonzero().squeeze(1)
                    self.order = torch.cat([self.kept, (~flat).nonzero().squeeze(1)])
                    self.inverse_order = torch.argsort(self.order)
                    self._singulars = mask.reshape(-1)[self.kept]
                    self.has_svd = True

    def A(self, x):
        self.check_x(x)
        return self._call(self.physics.A, x)

    def A_adjoint(self, y):
        self.check_y(y)
        return self._call(self.physics.A_adjoint, y)

    def A_pinv(self, y):
        self.check_y(y)
        return self._call(self.physics.A_dagger, y)

    def singulars(self):
        self._need_svd("singulars")
        return self._singulars

    def Vt(self, x):
        self._need_svd("Vt")
        self.check_x(x)
        return self._call(self.physics.V_adjoint, x).reshape(x.shape[0], -1)[:, self.order.to(x.device)]

    def V(self, c):
        self._need_svd("V")
        z = c[:, self.inverse_order.to(c.device)].reshape(c.shape[0], *self.domain)
        return self._call(self.physics.V, z).reshape(c.shape[0], *self.x_shape)

    def Ut(self, y):
        self._need_svd("Ut")
        self.check_y(y)
        return self._call(self.physics.U_adjoint, y).reshape(y.shape[0], -1)[:, self.kept.to(y.device)]

    def U(self, c):
        self._need_svd("U")
        z = c.new_zeros(c.shape[0], math.prod(self.domain))
        z[:, self.kept.to(c.device)] = c
        return self._call(self.physics.U, z.reshape(c.shape[0], *self.domain)).reshape(c.shape[0], *self.y_shape)


def deepinv_operator(x_shape, *, physics, options: dict | None = None, sigma_y: float = 0.0, noise: str = "gaussian", rate=None):
    """Wrap a ``deepinv.physics`` operator: an instance, or a class name with ``options``.

    ``y_shape`` is found by applying the physics to a zero image of ``x_shape``. For example
    ``deepinv_operator((1, 8, 8), physics="Inpainting", options={"img_size": (1, 8, 8), "mask": 0.5})``
    or, from the registry, ``diffcore.create("operator", "deepinv", x_shape=..., physics=...)``.
    """
    deepinv = _need_deepinv()
    shape = image_shape(x_shape)
    if isinstance(physics, str):
        cls = getattr(deepinv.physics, physics, None)
        if not (isinstance(cls, type) and issubclass(cls, deepinv.physics.Physics)):
            raise DiffcoreError(f"deepinv.physics has no operator named {physics!r}")
        physics = cls(**(options or {}))
    elif options:
        raise DiffcoreError("options are for a physics given by name; pass either an instance or a name with options")
    if not isinstance(physics, deepinv.physics.Physics):
        raise DiffcoreError(f"physics must be a deepinv.physics.Physics or its class name, got {type(physics).__name__}")
    probe = torch.zeros(1, *shape)
    with torch.no_grad():
        y = physics.A(probe)
    cls = DeepinvLinear if isinstance(physics, deepinv.physics.LinearPhysics) else DeepinvNonlinear
    return cls(physics, shape, tuple(y.shape[1:]), sigma_y, noise=noise, rate=rate)
