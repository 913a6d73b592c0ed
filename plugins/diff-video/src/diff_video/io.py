"""Reading and writing videos: decord for random access, PyAV for everything else.

- :func:`read_video`: the frames of a file as a float video (F, 3, H, W) in [-1, 1] (diffcore's
  image range), chosen by time range (``start``, ``end`` in seconds), ``stride`` and ``count``
  (:func:`select_frames`) and resized (``size``, antialiased bilinear). decord reads exactly the
  chosen frames (``VideoReader.get_batch``); where decord is not installed or cannot read the
  file (GIFs, some containers), PyAV decodes the stream and keeps the chosen frames.
- :func:`write_video`: MP4 (H.264 through PyAV's libx264, yuv420p) or GIF (PyAV's encoder: exact
  grey levels for grey videos, a fixed 252-colour palette for colour ones), written atomically,
  optionally upscaled by an integer ``scale`` (nearest neighbour) so small videos stay visible.
- :func:`probe`: frame count, frame rate and size.

A missing, empty, corrupt or unreadable file, or a selection with no frames, is a one-line
:class:`~diffcore.errors.DiffcoreError` naming the file.

>>> import tempfile, torch
>>> folder = tempfile.TemporaryDirectory()
>>> video = torch.linspace(-1, 1, 6).reshape(6, 1, 1, 1).expand(6, 3, 16, 16)
>>> path = write_video(folder.name + "/ramp.gif", video, fps=10)
>>> clip = read_video(path, stride=2)
>>> tuple(clip.frames.shape), clip.indices, clip.backend
((3, 3, 16, 16), (0, 2, 4), 'pyav')
>>> folder.cleanup()
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from diffcore.errors import DiffcoreError, ShapeError

BACKENDS = ("auto", "decord", "pyav")
FORMATS = (".mp4", ".gif")


class FrameSelectionError(DiffcoreError):
    """The frames asked for are not in the file (an empty range, too few frames for ``count``)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds: ``frames`` frames of ``height`` x ``width`` at ``fps`` frames per second."""

    path: str
    frames: int
    fps: float
    height: int
    width: int

    @property
    def duration(self) -> float:
        return self.frames / self.fps if self.fps > 0 else 0.0


@dataclass(frozen=True, eq=False)
class Video:
    """Frames read from a file: ``frames`` (F, 3, H, W) float32 in [-1, 1], their ``fps`` (the file's / stride),
    the ``indices`` of the source frames, the source's :class:`VideoInfo` and the ``backend`` that read it."""

    frames: torch.Tensor
    fps: float
    indices: tuple[int, ...]
    info: VideoInfo
    backend: str


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DiffcoreError(f"video {path} does not exist")
    if not path.is_file():
        raise DiffcoreError(f"video {path} is not a file")
    if path.stat().st_size == 0:
        raise DiffcoreError(f"video {path} is empty (0 bytes)")
    return path


def select_frames(
    total: int, fps: float, *, start: float | None = None, end: float | None = None, stride: int = 1, count: int | None = None
) -> list[int]:
    """The indices of the frames to read: those whose time ``i / fps`` lies in ``[start, end)``, every ``stride``-th, the first ``count``.

    >>> select_frames(10, 5.0, start=0.4, stride=3)
    [2, 5, 8]
    >>> select_frames(10, 5.0, count=3, stride=2)
    [0, 2, 4]
    """
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise FrameSelectionError(f"stride must be a positive whole number of frames, got {stride!r}")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise FrameSelectionError(f"count must be a positive whole number of frames, got {count!r}")
    if start is not None and end is not None and end <= start:
        raise FrameSelectionError(f"the time range is empty: end ({end} s) must come after start ({start} s)")
    first = 0 if start is None else max(0, math.ceil(start * fps - 1e-9))
    stop = total if end is None else min(total, math.ceil(end * fps - 1e-9))
    indices = list(range(first, stop, stride))
    if count is not None:
        if len(indices) < count:
            raise FrameSelectionError(
                f"{count} frames were asked for but the selection holds {len(indices)} ({total} frames at {fps:g} fps, stride {stride})"
            )
        indices = indices[:count]
    if not indices:
        raise FrameSelectionError(f"the selection holds no frame ({total} frames at {fps:g} fps, start {start}, end {end})")
    return indices


def resize_frames(frames: torch.Tensor, size) -> torch.Tensor:
    """Frames (F, C, H, W) resized to ``size`` ((H, W) or one int for a square), antialiased bilinear."""
    h, w = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise DiffcoreError(f"size must be positive, got {size!r}")
    if tuple(frames.shape[-2:]) == (h, w):
        return frames
    return F.interpolate(frames.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


def _decord_read(path: Path, select) -> tuple[np.ndarray, list[int], VideoInfo]:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    total, fps = len(reader), float(reader.get_avg_fps())
    if total == 0:
        raise DiffcoreError(f"video {path} holds no frames")
    height, width = reader[0].shape[:2]
    indices = select(total, fps)
    return reader.get_batch(indices).asnumpy(), indices, VideoInfo(str(path), total, fps, int(height), int(width))


def _pyav_read(path: Path, select) -> tuple[np.ndarray, list[int], VideoInfo]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise DiffcoreError(f"{path} holds no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 0
        fps = float(rate) if rate else 0.0
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    if not frames:
        raise DiffcoreError(f"video {path} holds no frames")
    if fps <= 0:
        fps = 25.0  # a stream without a rate: the common default, so that times still mean something
    indices = select(len(frames), fps)
    height, width = frames[0].shape[:2]
    return np.stack([frames[i] for i in indices]), indices, VideoInfo(str(path), len(frames), fps, int(height), int(width))


def _read(path: Path, select, backend: str):
    if backend not in BACKENDS:
        raise DiffcoreError(f"unknown video backend {backend!r}; use {', '.join(BACKENDS)}")
    tried = []
    order = ["decord", "pyav"] if backend == "auto" else [backend]
    for name in order:
        reader = _decord_read if name == "decord" else _pyav_read
        try:
            array, indices, info = reader(path, select)
            return array, indices, info, name
        except ImportError as exc:
            if backend != "auto":
                hint = "decord" if name == "decord" else "av"
                raise DiffcoreError(f"backend {name!r} is not installed: pip install {hint}") from exc
            tried.append(f"{name}: not installed")
        except FrameSelectionError:
            raise
        except DiffcoreError as exc:
            if name == order[-1] and not tried:
                raise
            tried.append(f"{name}: {_one_line(exc)}")
        except Exception as exc:  # noqa: BLE001 - a reader's own errors (DECORDError, av.error.*) become one line
            tried.append(f"{name}: {_one_line(exc)}")
    raise DiffcoreError(f"cannot read video {path} ({'; '.join(tried)})")


def read_video(
    path,
    *,
    start: float | None = None,
    end: float | None = None,
    stride: int = 1,
    count: int | None = None,
    size=None,
    backend: str = "auto",
) -> Video:
    """Read frames of the video file ``path`` (see the module docstring).

    Args:
        start, end: the time range in seconds (frame ``i`` is at ``i / fps``), default the whole file.
        stride: keep every ``stride``-th frame of the range; count: then keep the first ``count``
            (an error when fewer are there).
        size: resize to (H, W) (or a square of that side), antialiased bilinear; None keeps the size.
        backend: ``"auto"`` (decord, else PyAV), ``"decord"`` or ``"pyav"``.
    """
    path = _check_file(path)

    def select(total, fps):
        return select_frames(total, fps, start=start, end=end, stride=stride, count=count)

    array, indices, info, used = _read(path, select, backend)
    frames = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
    frames = frames.div_(127.5).sub_(1)
    if size is not None:
        frames = resize_frames(frames, size)
    return Video(frames, info.fps / stride, tuple(int(i) for i in indices), info, used)


def probe(path, backend: str = "auto") -> VideoInfo:
    """The :class:`VideoInfo` of a video file (its first frame is decoded to check it can be read)."""
    path = _check_file(path)
    return _read(path, lambda total, fps: [0], backend)[2]


def to_uint8(video) -> np.ndarray:
    """A video (F, C, H, W) in [-1, 1] with C = 1 or 3, or uint8 (F, H, W, 3), as uint8 (F, H, W, 3)."""
    if isinstance(video, np.ndarray) and video.dtype == np.uint8:
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ShapeError(f"a uint8 video must be (F, H, W, 3), got {video.shape}")
        return video
    v = torch.as_tensor(video).detach().to("cpu", torch.float32)
    if v.ndim != 4 or v.shape[1] not in (1, 3) or v.shape[0] < 1:
        raise ShapeError(f"video has shape {tuple(v.shape)}; expected (F, C, H, W) with C = 1 or 3 and F >= 1, values in [-1, 1]")
    v = v.nan_to_num(0.0).clamp(-1, 1).expand(-1, 3, -1, -1)
    return ((v + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


_LEVELS = np.array([6, 7, 6])  # red, green, blue levels of the colour GIF palette (252 colours)


def _palette() -> np.ndarray:
    index = np.arange(256)
    parts = [index // 42, (index // 6) % 7, index % 6]
    palette = np.zeros((256, 4), np.uint8)
    palette[:, 0] = 255
    for c, (part, levels) in enumerate(zip(parts, _LEVELS)):
        palette[:, c + 1] = np.round(np.minimum(part, levels - 1) * 255 / (levels - 1))
    return palette


def _gif_frame(frame: np.ndarray, grey: bool):
    import av

    if grey:
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[..., 0]), format="gray")
    q = np.round(frame.astype(np.float64) / 255 * (_LEVELS - 1)).astype(np.int64)
    index = (q[..., 0] * 42 + q[..., 1] * 6 + q[..., 2]).astype(np.uint8)
    return av.VideoFrame.from_ndarray((index, _palette()), format="pal8")


def write_video(path, video, fps: float = 8.0, *, scale: int = 1, crf: int = 18) -> Path:
    """Write ``video`` ((F, C, H, W) in [-1, 1], or uint8 (F, H, W, 3)) to ``path`` (``.mp4`` or ``.gif``); return the path.

    ``scale`` upscales by an integer factor (nearest neighbour); ``crf`` is H.264's quality
    (0 lossless, 18 visually lossless, 23 libx264's default). MP4 needs an even width and height; a GIF
    keeps frame durations in whole hundredths of a second (8 fps reads back as 8.33).
    The file is written under a temporary name and renamed, so a reader never sees part of it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DiffcoreError(f"cannot write {path.name}: video files are {' or '.join(FORMATS)}")
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise DiffcoreError(f"scale must be a positive whole number, got {scale!r}")
    if not (isinstance(fps, int | float) and 0 < fps <= 240):
        raise DiffcoreError(f"fps must be in (0, 240], got {fps!r}")
    frames = to_uint8(video)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    height, width = frames.shape[1:3]
    if suffix == ".mp4" and (height % 2 or width % 2):
        raise ShapeError(f"MP4 (H.264, yuv420p) needs an even width and height, got {width}x{height}; resize, pass scale=2, or write a GIF")
    import av

    grey = bool((frames[..., 0] == frames[..., 1]).all() and (frames[..., 1] == frames[..., 2]).all())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with av.open(str(tmp), "w", format="mp4" if suffix == ".mp4" else "gif") as container:
            rate = Fraction(fps).limit_denominator(1000)
            if suffix == ".mp4":
                stream = container.add_stream("libx264", rate=rate, options={"crf": str(int(crf))})
                stream.pix_fmt = "yuv420p"
            else:
                stream = container.add_stream("gif", rate=rate)
                stream.pix_fmt = "gray" if grey else "pal8"
            stream.width, stream.height = int(width), int(height)
            for frame in frames:
                image = _gif_frame(frame, grey) if suffix == ".gif" else av.VideoFrame.from_ndarray(frame, format="rgb24")
                for packet in stream.encode(image):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def encode_video(video, suffix: str, fps: float = 8.0, *, scale: int = 1) -> bytes:
    """The bytes of ``video`` written as ``suffix`` (``.mp4`` or ``.gif``): what a job task returns."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return write_video(Path(folder) / f"video{suffix}", video, fps, scale=scale).read_bytes()


__all__ = [
    "BACKENDS",
    "FORMATS",
    "FrameSelectionError",
    "Video",
    "VideoInfo",
    "encode_video",
    "probe",
    "read_video",
    "resize_frames",
    "select_frames",
    "to_uint8",
    "write_video",
]
