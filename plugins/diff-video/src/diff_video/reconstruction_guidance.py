"""Reconstruction guidance (Ho et al. 2022, Video Diffusion Models, sec. 3.1, eq. 7), as a solver.

The model's clean estimate is corrected by the gradient, through the network, of how badly it
reconstructs the measurement: ``x~(x_t) = x^(x_t) - (w_r alpha_t / 2) grad_{x_t} ||y - A x^(x_t)||^2``,
then a DDIM step is taken from ``x~`` and the measured part is replaced as in
:class:`~diff_video.replacement.Replacement` (:func:`diff_video.conditional.conditional_ddim`).
The gradient is what makes the unmeasured frames (or the high frequencies, for super-resolution)
agree with the measured ones: it approximates ``grad log q(y | x_t)`` (Ho et al., eq. 6-7; the
same idea as DPS, Chung et al. 2023). ``weight`` is ``w_r``; Ho et al. found weights above 1 best.
The default, 5, is the best of 1, 2, 5, 10 and 20 on an exact Gaussian video prior (the conditional
mean within 0.04; 10 and 20 overshoot); zoo:moving-digits gains up to 20 (docs/video.md).

>>> import torch, diffcore
>>> from diff_video.operators import TemporalSubsampling
>>> prior = diffcore.create("prior", "gaussian", mean=[0.0] * 4, shape=(2, 1, 1, 2))
>>> op = TemporalSubsampling((2, 1, 1, 2), first=1)
>>> x = ReconstructionGuidance(weight=2.0)(prior, op, torch.ones(3, 1, 1, 1, 2), steps=10, generator=torch.Generator().manual_seed(0))
>>> tuple(x.shape)
(3, 2, 1, 1, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

from diff_video.conditional import conditional_ddim


@dataclass(frozen=True)
class ReconstructionGuidance:
    """Conditional DDIM with reconstruction guidance of weight ``weight`` (w_r) and replacement (``replace``)."""

    weight: float = 5.0
    replace: bool = True
    eta: float = 0.0
    name = "reconstruction-guidance"
    needs_linear = True
    needs_differentiable = True

    def __call__(self, prior, operator, y, *, steps: int, generator=None, cond=None, callback=None):
        return conditional_ddim(
            prior,
            operator,
            y,
            steps=steps,
            weight=self.weight,
            replace=self.replace,
            eta=self.eta,
            cond=cond,
            generator=generator,
            callback=callback,
        )


__all__ = ["ReconstructionGuidance"]
