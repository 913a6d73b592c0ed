"""``pix2video``: self-attention injected from the anchor and the previous frame, plus a guided latent update (Ceylan et al. 2023).

Pix2Video edits the frames in order with an image model. Each frame's self-attention takes its
keys and values from the anchor frame (the first) and from the previous frame (Sec. 3.2, "feature
injection"), and each denoising step pulls the frame's clean estimate towards the previous
frame's (Sec. 3.3, "guided latent update"): with ``x^_0^i(x_t^i)`` the clean estimate of frame
``i``, the step uses

    x~_0^i = x^_0^i - (w alpha_t / 2) grad_{x_t^i} || x^_0^i - sg(x^_0^{i-1}) ||^2,

reconstruction guidance (Ho et al. 2022, eq. 7) with the previous frame's estimate at the same
step as the measurement (``sg``: no gradient through it); ``w`` is ``weight`` (0: feature
injection alone). The frames go through in chunks; the previous frame of a chunk's first frame
is the last frame of the chunk before, whose keys, values and clean estimates are kept per step
(:class:`~diff_video.editing.streamed.StreamedCrossFrame`); the gradient of a frame's term flows
through its own queries only (the anchor's and previous frame's keys and values are fixed, as
when the frames are edited one after the other), so any chunking gives the same edit. The inversion runs with the same
attention, so the edit towards the source condition without guidance reconstructs the video. The
prior needs self-attention layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_video.editing.cross_frame import CrossFrameRun
from diff_video.editing.engine import Editor
from diff_video.editing.inversion import clean_estimate
from diffcore.errors import DiffcoreError


class Pix2VideoRun(CrossFrameRun):
    """Streamed anchor + previous attention, and the previous frame's clean estimate per edit step."""

    def __init__(self, attend: str, weight: float):
        super().__init__(attend, detach=True)
        self.weight = float(weight)
        self._previous: dict[int, torch.Tensor] = {}

    def corrector(self, prior, times, frames):
        if self.weight == 0:
            return None
        schedule = prior.schedule

        def correct(i, x, t, cond):
            with torch.enable_grad():
                z = x.detach().requires_grad_(True)
                x0 = clean_estimate(schedule, z, prior.predict(z, t, cond).eps, t)
                before = self._previous.get(i, x0[:1])  # frame 0 is its own previous frame: no pull
                target = torch.cat([before, x0[:-1]]).detach()
                (grad,) = torch.autograd.grad((x0 - target).pow(2).sum(), z)
            self._previous[i] = x0[-1:].detach()
            alpha = schedule.alpha(torch.as_tensor(t, dtype=torch.float64)).to(x)
            return x0.detach() - (self.weight * alpha / 2) * grad

        return correct

    def close(self):
        super().close()
        self._previous = {}


@dataclass(frozen=True, repr=False)
class Pix2VideoEditor(Editor):
    """Anchor + previous-frame attention and the guided latent update of weight ``weight`` (see the module docstring)."""

    weight: float = 0.5
    attend: str = "first+previous"
    name = "pix2video"
    needs = "self"

    def __post_init__(self):
        if float(self.weight) < 0:
            raise DiffcoreError(f"the pix2video weight must be >= 0, got {self.weight}")

    def start(self, prior, settings):
        return Pix2VideoRun(self.attend, self.weight)


__all__ = ["Pix2VideoEditor", "Pix2VideoRun"]
