"""``tune-a-video``: one-shot tuning of the attention projections on the input video, then inversion and edit (Wu et al. 2023).

Tune-A-Video makes an image model's self-attention sparse-causal (each frame attends to the first
and the previous frame) and fine-tunes the attention query projections on the one input video
under its own prompt, so that the model reproduces the video's motion and appearance; the video is
then DDIM-inverted with the tuned model and denoised under the edited prompt. Here:

- a copy of the prior (:func:`diffcore.training.frozen_copy`; the prior passed in is not changed)
  has the ``to_q`` projections of its attention layers made trainable
  (:func:`diffcore.training.train_only` with ``regex:\\.to_q\\.``; with LoRA instead,
  :func:`diffcore.training.add_lora` would do the same job) and is trained by
  :func:`diffcore.training.fit` for ``tune_steps`` steps on the denoising loss
  (:func:`diffcore.training.denoising_loss`) of clips of ``clip`` consecutive frames of the video
  under the source condition, one noise level per clip, with the kernel's
  :class:`~diffcore.attention.CrossFrameAttention` (first + previous frame) installed;
- inversion and edit then run with the tuned copy and streamed first + previous attention, as
  ``cross-frame`` does. Training memory is that of one clip.

The paper also inserts and trains temporal attention layers; an image prior has none, and
inflating it (:func:`diff_video.inflate.inflate`) would make it a video prior, not an image one.
The prior needs self-attention layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_video.editing.cross_frame import CrossFrameRun
from diff_video.editing.engine import Editor
from diffcore.errors import DiffcoreError

TRAINED = r"regex:\.to_q\."


def tune(prior, video: torch.Tensor, cond, *, steps: int, clip: int, lr: float, seed: int, attend: str = "first+previous"):
    """A copy of ``prior`` whose attention query projections are fitted to ``video`` (F, C, H, W); returns (copy, record)."""
    from diffcore.attention import CrossFrameAttention, control
    from diffcore.training import denoising_loss, draw_times, fit, frozen_copy, train_only

    tuned = frozen_copy(prior)
    params = train_only(tuned, TRAINED)
    clip = min(clip, video.shape[0])
    with torch.no_grad():  # the clean frames (latents for latent priors), encoded once
        frames = video.to(device=prior.device, dtype=torch.float32)
        if prior.latent is not None:
            frames = torch.cat([prior.latent.encode(frames[a : a + clip]) for a in range(0, frames.shape[0], clip)])
    batch_cond = _batched(cond, clip)

    def loss(step, generator):
        start = int(torch.randint(frames.shape[0] - clip + 1, (1,), generator=generator))
        t = draw_times(tuned.schedule, 1, generator=generator, device=frames.device).expand(clip)
        with control(tuned, CrossFrameAttention(clip, attend)):
            return denoising_loss(tuned, frames[start : start + clip], cond=batch_cond, generator=generator, t=t)

    record = fit(loss, params, steps=steps, lr=lr, generator=torch.Generator().manual_seed(seed), progress=False)
    network = tuned.network if hasattr(tuned, "network") else None
    if network is not None:
        network.eval().requires_grad_(False)
    return tuned, record


def _batched(cond, n: int):
    import dataclasses

    changes = {}
    for field in dataclasses.fields(cond):
        value = getattr(cond, field.name)
        if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == 1:
            changes[field.name] = value.expand(n, *value.shape[1:])
        elif isinstance(value, str):
            changes[field.name] = [value] * n
    return dataclasses.replace(cond, **changes)


class TuneAVideoRun(CrossFrameRun):
    """The tuned copy (made in :meth:`model`) and streamed first + previous attention."""

    def __init__(self, editor: TuneAVideoEditor):
        super().__init__(editor.attend)
        self.editor = editor
        self.record = None

    def model(self, prior, video, source):
        e = self.editor
        tuned, self.record = tune(prior, video, source, steps=e.tune_steps, clip=e.clip, lr=e.lr, seed=e.seed, attend=e.attend)
        return tuned


@dataclass(frozen=True, repr=False)
class TuneAVideoEditor(Editor):
    """Query projections tuned on the video for ``tune_steps`` steps (clips of ``clip`` frames, AdamW at ``lr``), then a
    cross-frame edit."""

    tune_steps: int = 100
    clip: int = 4
    lr: float = 1e-4
    seed: int = 0
    attend: str = "first+previous"
    name = "tune-a-video"
    needs = "self"

    def __post_init__(self):
        for name, least in (("tune_steps", 1), ("clip", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise DiffcoreError(f"{name} must be a whole number >= {least}, got {value!r}")
        if not float(self.lr) > 0:
            raise DiffcoreError(f"lr must be positive, got {self.lr}")

    def start(self, prior, settings):
        return TuneAVideoRun(self)


__all__ = ["TRAINED", "TuneAVideoEditor", "TuneAVideoRun", "tune"]
