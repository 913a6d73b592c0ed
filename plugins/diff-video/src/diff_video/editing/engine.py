"""The editing loop every editor shares: invert the source video, then denoise it towards the target, a chunk of frames at a time.

An edit of a video ``(F, C, H, W)`` in [-1, 1] with an image prior (pixel or latent) runs, for
each chunk of ``chunk`` consecutive frames in order:

1. encode the frames (latent priors) and invert them with DDIM under the source condition up to
   ``t = strength`` (:func:`~diff_video.editing.inversion.ddim_invert`, fixed-point refined);
2. denoise them back with DDIM under the target condition (classifier-free guidance of scale
   ``guidance`` when it is not 1), decode, and keep the frames.

An editor (:class:`Editor`) adds attention processors to both passes (cross-frame attention,
recorded and fused maps) and may replace the clean estimate of each edit step (Pix2Video's
guided update). Whatever ties a chunk to the frames before it (the anchor's and the previous
frame's keys and values, one chunk's recorded maps) is the editor's state, bounded in the frame
count, so memory grows with ``chunk``, not with ``F``; only the frames themselves are whole.
Both passes use the same processors, so editing towards the source condition without guidance
gives the video back up to the inversion error (the identity test).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from diff_video.editing.inversion import ddim_denoise, ddim_invert, edit_times
from diffcore import Cond
from diffcore.errors import DiffcoreError, ShapeError


@dataclass(frozen=True)
class EditSettings:
    """How an edit runs (every editor).

    Attributes:
        steps: DDIM steps of the full schedule; the edit uses the last ``strength`` of them.
        strength: how far the source is inverted, as a fraction of the schedule (1: to pure noise).
        guidance: classifier-free guidance scale of the target condition (1: the conditional model alone).
        chunk: frames per pass of the network (memory grows with it, not with the frame count).
        refine: fixed-point iterations per inversion step (0: plain DDIM inversion).
        null_text: Adam iterations of null-text inversion per step (0: none; needs guidance and a
            text prior, :mod:`diff_video.editing.null_text`); null_text_lr: their learning rate.
    """

    steps: int = 20
    strength: float = 0.8
    guidance: float = 1.0
    chunk: int = 8
    refine: int = 2
    null_text: int = 0
    null_text_lr: float = 1e-2

    def __post_init__(self):
        for name, least in (("steps", 1), ("chunk", 1), ("refine", 0), ("null_text", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise DiffcoreError(f"{name} must be a whole number >= {least}, got {value!r}")
        if not 0.0 < float(self.strength) <= 1.0:
            raise DiffcoreError(f"strength must be in (0, 1], got {self.strength!r}")
        if float(self.guidance) < 0:
            raise DiffcoreError(f"guidance must be >= 0, got {self.guidance!r}")
        if self.null_text and float(self.guidance) == 1.0:
            raise DiffcoreError("null-text inversion fits the unconditional input of guidance; set guidance other than 1")


class EditRun:
    """The per-edit state of an editor; the base edits every frame alone (no processors, no correction)."""

    def model(self, prior, video: torch.Tensor, source: Cond):
        """The prior both passes use (Tune-A-Video's tuned copy); default ``prior`` itself."""
        return prior

    def optimization(self, frames: int):
        """The processor for null-text inversion's guided calls on the chunk (its own state), or None."""
        return None

    def denoise(self, prior, x: torch.Tensor, times: torch.Tensor, target: Cond, source: Cond, guidance: float, frames: int, nulls=None):
        """The edit of one chunk from its inverted ``x``; default DDIM under ``target`` (with the fitted ``nulls`` as the
        unconditional input where given) and :meth:`corrector`'s estimate."""
        if nulls is not None:
            from diff_video.editing.null_text import NullTextGuided

            editing = NullTextGuided(prior, guidance, target, nulls, times)
        else:
            editing = _conditioned(prior, target, guidance)
        return ddim_denoise(editing, x, times, correct=self.corrector(editing, times, frames))

    def inversion(self, frames: int):
        """The attention processor (or list of them) for inverting the next chunk of ``frames`` frames, or None."""
        return None

    def edit(self, frames: int, groups: int):
        """The processor for denoising the chunk (``groups`` copies of it in the batch: 2 under guidance), or None."""
        return None

    def corrector(self, prior, times: torch.Tensor, frames: int):
        """``correct(i, x_t, t, cond) -> x0`` for the chunk's edit steps, or None for the plain DDIM step."""
        return None

    def chunk_done(self) -> None:
        """Called after each chunk (free what only that chunk needed)."""

    def close(self) -> None:
        """Called once at the end, also on errors."""


class Editor:
    """A video editor: a name, what it needs of the prior, and a fresh :class:`EditRun` per edit."""

    name = "editor"
    #: the attention layer kind the editor installs processors on (``"self"``, ``"cross"``), or None
    needs: str | None = None
    #: the layers its processors go on (a kind or a ``diffcore.attention.Select``)
    select = "self"

    def start(self, prior, settings: EditSettings) -> EditRun:
        return EditRun()

    def check(self, prior) -> None:
        """A one-line error when ``prior`` lacks what this editor needs."""
        if self.needs is None:
            return
        from diffcore.layers import attention_layers

        try:
            kinds = {layer.kind for layer in attention_layers(prior)}
        except DiffcoreError:
            kinds = set()
        if self.needs not in kinds:
            has = ", ".join(sorted(kinds)) or "no attention layers"
            raise DiffcoreError(
                f"the {self.name} editor needs {self.needs}-attention layers in the prior's network; this prior has {has} "
                "(use the per-frame editor, or a prior with attention)"
            )

    def __repr__(self) -> str:
        fields = (
            ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)) if dataclasses.is_dataclass(self) else ""
        )
        return f"{type(self).__name__}({fields})"


def condition(prior, value, what: str) -> Cond:
    """The :class:`~diffcore.Cond` of a target or source: a class index or name, a prompt for a text prior, None for the
    unconditional model; a Cond as is."""
    if isinstance(value, Cond):
        return value
    if value is None:  # the unconditional model
        if prior.null_cond is None:
            raise DiffcoreError(f"this prior has no unconditional model; give the {what} condition")
        return prior.null_cond
    names = prior.class_names
    if "labels" in prior.accepts:
        if isinstance(value, str) and names is not None and value in names:
            return Cond(labels=torch.tensor([names.index(value)]))
        if isinstance(value, int) and not isinstance(value, bool) and (names is None or 0 <= value < len(names)):
            return Cond(labels=torch.tensor([value]))
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return condition(prior, int(value), what)
        known = f"a class index 0-{len(names) - 1} or one of {', '.join(names)}" if names else "a class index"
        raise DiffcoreError(f"the {what} {value!r} is not a class of this prior; expected {known}")
    if "text" in prior.accepts and isinstance(value, str):
        # embeddings, so that guidance can batch them with the null prompt's
        return Cond(text=prior.encode_text(value)) if hasattr(prior, "encode_text") else Cond(text=value)
    accepts = ", ".join(sorted(prior.accepts)) or "no conditioning"
    raise DiffcoreError(f"this prior cannot be conditioned on the {what} {value!r}: it accepts {accepts}")


def _check_video(prior, video: torch.Tensor) -> None:
    if not isinstance(video, torch.Tensor) or video.ndim != 4:
        raise ShapeError(f"the video has shape {tuple(getattr(video, 'shape', ()))}; expected frames (F, C, H, W)")
    if len(prior.sample_shape) != 3:
        raise DiffcoreError(f"video editing takes an image prior (samples C x H x W); this one has samples of shape {prior.sample_shape}")
    if prior.latent is None and tuple(video.shape[1:]) != tuple(prior.sample_shape):
        raise ShapeError(f"the frames are {tuple(video.shape[1:])} but the prior makes images of shape {tuple(prior.sample_shape)}")
    if prior.latent is not None and video.shape[1] != prior.image_shape[0]:
        raise ShapeError(f"the frames have {video.shape[1]} channels but the prior's images have {prior.image_shape[0]}")


def _conditioned(prior, cond: Cond, guidance: float = 1.0):
    from diffcore.priors import Conditioned, Guided

    if guidance == 1.0:
        return Conditioned(prior, cond) if cond.given() else prior
    if prior.null_cond is None:
        raise DiffcoreError("guidance needs a prior with an unconditional model (a null label or empty prompt); use guidance 1")
    return Guided(prior, guidance, cond, prior.null_cond)


def _installed(prior, processor, select):
    from diffcore.attention import control

    return contextlib.nullcontext() if processor is None else control(prior, processor, select=select)


def edit_video(prior, video: torch.Tensor, target, *, editor: Editor, source=None, settings: EditSettings | None = None) -> torch.Tensor:
    """Edit ``video`` (F, C, H, W) in [-1, 1] towards ``target`` with ``editor``; returns the edited frames (F, C, H, W).

    ``source``: the condition the video is inverted under (a class, a prompt; default the prior's
    unconditional model). ``target``: a class index or name, a prompt, or a ``Cond``.
    """
    settings = settings or EditSettings()
    _check_video(prior, video)
    editor.check(prior)
    target_cond = condition(prior, target, "target")
    source_cond = condition(prior, source, "source")
    guidance = float(settings.guidance)
    groups = 1 if guidance == 1.0 else 2
    if guidance != 1.0 and prior.null_cond is None:
        raise DiffcoreError("guidance needs a prior with an unconditional model (a null label or empty prompt); use guidance 1")
    if settings.null_text:
        from diff_video.editing.null_text import null_embedding

        null_embedding(prior)  # before any work: the prior's unconditional input must be an embedding
    times = edit_times(prior.schedule, settings.steps, settings.strength)
    run = editor.start(prior, settings)
    device, dtype = prior.device, torch.float32 if prior.dtype in (torch.float16, torch.bfloat16) else prior.dtype
    out = []
    try:
        prior = run.model(prior, video, source_cond)
        inverting = _conditioned(prior, source_cond)
        for a in range(0, video.shape[0], settings.chunk):
            frames = video[a : a + settings.chunk].to(device=device, dtype=dtype)
            count = frames.shape[0]
            with torch.no_grad():
                x = frames if prior.latent is None else prior.latent.encode(frames)
            trajectory = [x]
            keep = (lambda i, state, into=trajectory: into.append(state)) if settings.null_text else None
            with _installed(prior, run.inversion(count), editor.select):
                x = ddim_invert(inverting, x, times, refine=settings.refine, callback=keep)
            nulls = None
            if settings.null_text:
                from diff_video.editing.null_text import fit_nulls

                with _installed(prior, run.optimization(count), editor.select):
                    nulls = fit_nulls(
                        prior, trajectory[::-1], times, source_cond, guidance, iterations=settings.null_text, lr=settings.null_text_lr
                    )
            with _installed(prior, run.edit(count, groups), editor.select):
                x = run.denoise(prior, x, times, target_cond, source_cond, guidance, count, nulls=nulls)
            with torch.no_grad():
                x = x if prior.latent is None else prior.latent.decode(x)
            out.append(x.detach().to("cpu", torch.float32))
            run.chunk_done()
    finally:
        run.close()
    return torch.cat(out)


__all__ = ["EditRun", "EditSettings", "Editor", "condition", "edit_video"]
