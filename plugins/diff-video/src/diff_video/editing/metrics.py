"""How consistent, faithful and structure-keeping a video edit is.

- :func:`warp_error`: the flow warping error of Lai et al. 2018 ("Learning blind video temporal
  consistency", eq. 9): optical flow is computed on the *source* video (OpenCV's Farneback flow,
  Farneback 2003), each edited frame is warped onto the next one with it, and the squared
  difference is averaged over the pixels where the forward and backward flows agree (not
  occluded). A consistent edit moves with the source, so its warped frames match.
- :func:`frame_difference`: the mean absolute difference of consecutive edited frames (a flicker
  measure that ignores motion).
- :func:`digit_fidelity`: the share of edited frames that the zoo's digit classifier
  (:class:`diff_zoo.classifier.DigitClassifier`) labels as the target class (16 x 16 digits).
- :func:`diff_video.editing.clip_score.clip_score`: CLIPScore of a prompt, where a CLIP model is given;
- :func:`structure_psnr`: PSNR of the low frequencies (a Gaussian blur) of the edit to those of
  the source: how much of the source's layout the edit keeps.

Videos are (F, C, H, W) in [-1, 1]. Frames smaller than 64 pixels are upsampled for the flow
(Farneback's pyramid needs room) and the flow scaled back.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from diffcore.errors import DiffcoreError, ShapeError


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise ImportError('the flow metrics use OpenCV: pip install "diff-video[metrics]"') from exc
    return cv2


def _check(video: torch.Tensor, name: str = "video") -> torch.Tensor:
    if not isinstance(video, torch.Tensor) or video.ndim != 4:
        raise ShapeError(f"{name} has shape {tuple(getattr(video, 'shape', ()))}; expected frames (F, C, H, W)")
    return video.detach().to("cpu", torch.float32)


def _grey_uint8(frame: torch.Tensor, size: int) -> np.ndarray:
    grey = frame.mean(0, keepdim=True)[None]
    if grey.shape[-1] != size:
        grey = F.interpolate(grey, size=(size * grey.shape[-2] // grey.shape[-1], size), mode="bilinear", align_corners=False)
    return ((grey[0, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def optical_flow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Farneback flow (2, H, W) from frame ``a`` to frame ``b`` (C, H, W): pixel p of ``a`` is at p + flow(p) in ``b``."""
    cv2 = _cv2()
    width = a.shape[-1]
    size = max(width, 64)
    flow = cv2.calcOpticalFlowFarneback(_grey_uint8(a, size), _grey_uint8(b, size), None, 0.5, 3, 15, 3, 5, 1.2, 0)
    flow = torch.from_numpy(flow).permute(2, 0, 1)[None]
    if size != width:
        flow = F.interpolate(flow, size=tuple(a.shape[-2:]), mode="bilinear", align_corners=False) * (width / size)
    return flow[0]


def warp(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``frame`` (C, H, W) sampled at p + flow(p) (bilinear, borders repeated)."""
    c, h, w = frame.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    gx = (xs + flow[0] + 0.5) / w * 2 - 1
    gy = (ys + flow[1] + 0.5) / h * 2 - 1
    grid = torch.stack([gx, gy], -1)[None]
    return F.grid_sample(frame[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


def warp_error(source: torch.Tensor, edit: torch.Tensor, *, consistency: float = 0.5) -> float:
    """Mean over frame pairs of the masked squared error between edited frame f+1 and edited frame f warped by the source's flow."""
    source, edit = _check(source, "source"), _check(edit, "edit")
    if source.shape[0] != edit.shape[0] or source.shape[-2:] != edit.shape[-2:]:
        raise ShapeError(f"source {tuple(source.shape)} and edit {tuple(edit.shape)} need the same frames and frame size")
    if source.shape[0] < 2:
        raise DiffcoreError("the warp error needs at least two frames")
    errors = []
    for f in range(source.shape[0] - 1):
        back = optical_flow(source[f + 1], source[f])  # frame f+1 -> f
        fwd = optical_flow(source[f], source[f + 1])
        # forward-backward check: following back then fwd returns to the start where nothing is occluded
        roundtrip = back + warp(fwd, back)
        mask = (roundtrip.pow(2).sum(0) <= consistency**2).float()
        diff = (edit[f + 1] - warp(edit[f], back)).pow(2).mean(0)
        errors.append(float((diff * mask).sum() / mask.sum().clamp_min(1.0)))
    return float(np.mean(errors))


def frame_difference(edit: torch.Tensor) -> float:
    """Mean absolute difference of consecutive frames."""
    edit = _check(edit, "edit")
    if edit.shape[0] < 2:
        raise DiffcoreError("the frame difference needs at least two frames")
    return float((edit[1:] - edit[:-1]).abs().mean())


def _gaussian_blur(video: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = video.shape[1]
    out = F.pad(video, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, k.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, k.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def structure_psnr(source: torch.Tensor, edit: torch.Tensor, *, sigma: float = 1.5) -> float:
    """PSNR (dB, peak-to-peak 2) between the Gaussian-blurred (``sigma`` pixels) edit and source."""
    source, edit = _check(source, "source"), _check(edit, "edit")
    if source.shape != edit.shape:
        raise ShapeError(f"source {tuple(source.shape)} and edit {tuple(edit.shape)} need the same shape")
    mse = (_gaussian_blur(source, sigma) - _gaussian_blur(edit, sigma)).pow(2).mean()
    return float(10 * torch.log10(4.0 / mse.clamp_min(1e-12)))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two videos in [-1, 1] (peak-to-peak 2)."""
    mse = (a.detach().float().cpu() - b.detach().float().cpu()).pow(2).mean()
    return float(10 * torch.log10(4.0 / mse.clamp_min(1e-12)))


@lru_cache(maxsize=1)
def digit_classifier():
    """The zoo:digits card's classifier (trained in a fraction of a second on the zoo's training split)."""
    from diff_zoo import data
    from diff_zoo.classifier import DigitClassifier

    return DigitClassifier.fit(data.digits().train)


def digit_fidelity(edit: torch.Tensor, target: int) -> float:
    """The share of frames the digit classifier labels ``target`` (frames (F, 1, 16, 16))."""
    edit = _check(edit, "edit")
    return float((digit_classifier().predict(edit) == int(target)).float().mean())


def edit_metrics(
    source: torch.Tensor, edit: torch.Tensor, *, target: int | None = None, prompt: str | None = None, clip=None
) -> dict[str, float]:
    """Every metric of the module for one edit: the digit fidelity where ``target`` is given and the frames are 1 x 16 x 16,
    the CLIP score (:mod:`diff_video.editing.clip_score`) of ``prompt`` where a ``clip`` model is given."""
    out = {
        "warp_error": warp_error(source, edit),
        "frame_difference": frame_difference(edit),
        "structure_psnr": structure_psnr(source, edit),
    }
    if target is not None and tuple(edit.shape[1:]) == (1, 16, 16):
        out["fidelity"] = digit_fidelity(edit, target)
    if clip is not None and prompt is not None:
        from diff_video.editing.clip_score import clip_score

        out["clip_score"] = clip_score(edit, prompt, clip)
    return out


__all__ = [
    "digit_classifier",
    "digit_fidelity",
    "edit_metrics",
    "frame_difference",
    "optical_flow",
    "psnr",
    "structure_psnr",
    "warp",
    "warp_error",
]
