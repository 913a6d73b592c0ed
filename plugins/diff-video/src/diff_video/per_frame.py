"""``PerFrame``: an image prior applied to every frame of a video on its own.

The simplest video prior, and the baseline every video model is measured against: the frames of
a video are independent draws of the image prior, ``p(x^1..x^F) = prod_f p(x^f)``, so its
denoiser is the image denoiser on each frame (the image model "without temporal layers" of
Video LDM, Blattmann et al. 2023). It is a :class:`~diffcore.priors.wrapper.PriorWrapper`:
``sample_shape`` is ``(F, *image sample_shape)``, a latent image prior becomes a latent video
prior (:class:`~diffcore.adapters.video.VideoLatent`), and ``t`` may be one time per video (N,)
or per frame (N, F). Conditioning is per video: each tensor of the ``Cond`` (labels, text
embeddings) is repeated for the frames.

>>> import torch, diffcore
>>> image = diffcore.create("prior", "gaussian", mean=[0.0, 1.0])
>>> video = PerFrame(image, frames=3)
>>> video.sample_shape
(3, 2)
>>> x = torch.randn(4, 3, 2)
>>> bool(torch.equal(video.predict(x, 0.5).x0, image.predict(x.reshape(12, 2), 0.5).x0.reshape(4, 3, 2)))
True
"""

from __future__ import annotations

import dataclasses

import torch

from diffcore.adapters.video import VideoLatent
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.priors.wrapper import PriorWrapper
from diffcore.protocols import Cond, Prediction


def repeat_cond(cond: Cond | None, n: int, f: int) -> Cond | None:
    """``cond`` for N videos turned into one for their N * F frames (tensors repeated per frame; batch 1 broadcasts)."""
    if cond is None:
        return None
    changes = {}
    for field in dataclasses.fields(cond):
        value = getattr(cond, field.name)
        if not isinstance(value, torch.Tensor) or value.ndim == 0:
            continue
        if value.shape[0] == 1 and n > 1:
            value = value.expand(n, *value.shape[1:])
        if value.shape[0] != n:
            raise ShapeError(f"cond.{field.name} has batch {value.shape[0]}; expected 1 or {n} (one per video)")
        changes[field.name] = value.repeat_interleave(f, dim=0)
    return dataclasses.replace(cond, **changes)


class PerFrame(PriorWrapper):
    """The image prior ``prior`` on each of ``frames`` frames independently (see the module docstring)."""

    def __init__(self, prior, frames: int = 8):
        super().__init__(prior)
        if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
            raise DiffcoreError(f"frames must be a positive whole number, got {frames!r}")
        self.sample_shape = (frames, *prior.sample_shape)
        self.image_shape = (frames, *prior.image_shape)
        self.latent = None if prior.latent is None else VideoLatent(prior.latent)

    @property
    def num_frames(self) -> int:
        return self.sample_shape[0]

    def with_frames(self, count: int) -> PerFrame:
        """The same image prior on videos of ``count`` frames."""
        return PerFrame(self.prior, count)

    def predict(self, x_t, t, cond=None) -> Prediction:
        frame_dims = len(self.prior.sample_shape)
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != frame_dims + 2:
            raise ShapeError(
                f"x_t has shape {tuple(getattr(x_t, 'shape', ()))}; expected videos (N, F, {', '.join(map(str, self.prior.sample_shape))})"
            )
        n, f = x_t.shape[:2]
        t = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, float | int) else t
        if isinstance(t, torch.Tensor) and t.ndim > 0:
            if tuple(t.shape) == (n,):
                t = t.repeat_interleave(f)
            elif tuple(t.shape) == (n, f):
                t = t.reshape(n * f)
            else:
                raise DiffcoreError(f"t has shape {tuple(t.shape)}; expected a scalar, ({n},) or ({n}, {f}) to match x_t")
        pred = self.prior.predict(x_t.reshape(n * f, *x_t.shape[2:]), t, repeat_cond(cond, n, f))
        return Prediction(x0=pred.x0.reshape(x_t.shape), eps=pred.eps.reshape(x_t.shape))

    def sample_marginal(self, n: int, t, **options):
        frames = self.prior.sample_marginal(n * self.num_frames, t, **options)
        return None if frames is None else frames.reshape(n, *self.sample_shape)

    def __repr__(self) -> str:
        return f"PerFrame({self.prior!r}, frames={self.num_frames})"


__all__ = ["PerFrame", "repeat_cond"]
