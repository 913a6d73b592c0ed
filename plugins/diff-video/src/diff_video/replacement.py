"""Replacement (Song et al. 2021, appendix I; the baseline of Ho et al. 2022, sec. 3.1), as a solver.

The unmeasured part of the video is sampled by the unconditional model while the measured part
is replaced, after every step, by a draw of the forward process from the measurement,
``A x_s := alpha_s y + sigma_s A eps`` (:func:`diff_video.conditional.conditional_ddim` with no
guidance). Ho et al. observe that the replaced frames inform the others only through the
model's own denoising of the joint state, which keeps the generated part weakly coupled to them.

>>> import torch, diffcore
>>> from diff_video.operators import TemporalSubsampling
>>> prior = diffcore.create("prior", "gaussian", mean=[0.0] * 4, shape=(2, 1, 1, 2))
>>> op = TemporalSubsampling((2, 1, 1, 2), first=1)
>>> y = torch.ones(3, 1, 1, 1, 2)
>>> x = Replacement()(prior, op, y, steps=10, generator=torch.Generator().manual_seed(0))
>>> torch.equal(x[:, :1], y)
True
"""

from __future__ import annotations

from dataclasses import dataclass

from diff_video.conditional import conditional_ddim


@dataclass(frozen=True)
class Replacement:
    """Conditional DDIM with the measured part replaced after each step; ``eta`` as in DDIM."""

    eta: float = 0.0
    name = "replacement"
    needs_linear = True
    needs_differentiable = False
    noiseless_only = True

    def __call__(self, prior, operator, y, *, steps: int, generator=None, cond=None, callback=None):
        return conditional_ddim(
            prior, operator, y, steps=steps, weight=0.0, replace=True, eta=self.eta, cond=cond, generator=generator, callback=callback
        )


__all__ = ["Replacement"]
