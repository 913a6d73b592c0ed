"""Frames per second read by each video backend, on one generated 256x256 clip.

The clip: ``--frames`` frames (default 240) at 30 fps of a moving colour gradient with a bouncing
square, written once as H.264 MP4 (libx264, yuv420p, crf 18) with diff-video's writer. Each
backend then reads it, repeats interleaved, median reported:

- ``decord``: ``VideoReader.get_batch`` of every frame (what ``read_video(..., backend="decord")`` does);
- ``decord (16 random)``: 16 frames at random positions, random access;
- ``pyav``: PyAV decoding the stream to RGB arrays (``read_video(..., backend="pyav")``);
- ``pyav (16 random)``: the same 16 frames through PyAV (it decodes from the start: no random access);
- ``diff_video.read_video``: the whole reader (decord, uint8 -> float in [-1, 1]);
- ``torchvision``, ``torchcodec``: where installed (torchvision 0.22+ has no video reader; its
  successor is torchcodec).

    python tools/bench/video_io.py --frames 240 --repeats 3

Prints a markdown table: frames per second (for the random rows: the 16 frames' rate).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_clip(path: Path, frames: int, size: int = 256, fps: int = 30) -> Path:
    from diff_video.io import write_video

    y, x = np.mgrid[0:size, 0:size] / size
    video = np.empty((frames, size, size, 3), np.uint8)
    for f in range(frames):
        phase = f / frames
        video[f, ..., 0] = (127 + 127 * np.sin(2 * np.pi * (x + phase))).astype(np.uint8)
        video[f, ..., 1] = (127 + 127 * np.cos(2 * np.pi * (y - phase))).astype(np.uint8)
        video[f, ..., 2] = (255 * (x * y)).astype(np.uint8)
        top = int(abs((f * 5) % (2 * (size - 40)) - (size - 40)))
        video[f, top : top + 40, 60:100] = 255
    return write_video(path, video, fps=fps, crf=18)


def backends(path: Path, frames: int, seed: int = 0):
    """name -> (reader returning the number of frames read)."""
    rng = np.random.default_rng(seed)
    random_16 = sorted(rng.choice(frames, 16, replace=False).tolist())
    out = {}
    try:
        import decord

        def decord_all():
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
            return len(reader.get_batch(list(range(len(reader)))).asnumpy())

        def decord_random():
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
            return len(reader.get_batch(random_16).asnumpy())

        out["decord"], out["decord (16 random)"] = decord_all, decord_random
    except ImportError:
        out["decord"] = None
    import av

    def pyav_all():
        with av.open(str(path)) as container:
            return sum(1 for frame in container.decode(video=0) if frame.to_ndarray(format="rgb24") is not None)

    def pyav_random():
        wanted, got = set(random_16), 0
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    frame.to_ndarray(format="rgb24")
                    got += 1
                if got == len(wanted):
                    break
        return got

    out["pyav"], out["pyav (16 random)"] = pyav_all, pyav_random

    def diff_video_reader():
        from diff_video.io import read_video

        return read_video(path).frames.shape[0]

    out["diff_video.read_video"] = diff_video_reader
    try:
        from torchcodec.decoders import VideoDecoder

        out["torchcodec"] = lambda: VideoDecoder(str(path))[:].shape[0]
    except ImportError:
        out["torchcodec"] = None
    import torchvision.io

    out["torchvision"] = (
        (lambda: torchvision.io.read_video(str(path), pts_unit="sec")[0].shape[0]) if hasattr(torchvision.io, "read_video") else None
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as folder:
        path = make_clip(Path(folder) / "clip.mp4", args.frames)
        readers = backends(path, args.frames)
        times: dict[str, list[float]] = {name: [] for name, fn in readers.items() if fn is not None}
        counts: dict[str, int] = {}
        for _ in range(args.repeats):
            for name in times:
                began = time.perf_counter()
                counts[name] = readers[name]()
                times[name].append(time.perf_counter() - began)
        size_kb = path.stat().st_size / 1024
    print(f"{args.frames} frames, 256x256, H.264 MP4 ({size_kb:.0f} KiB), {torch.get_num_threads()} thread(s), median of {args.repeats}\n")
    print("| backend | frames read | frames per second |")
    print("|---|---:|---:|")
    for name, fn in readers.items():
        if fn is None:
            print(f"| {name} | - | not installed |")
            continue
        median = statistics.median(times[name])
        print(f"| {name} | {counts[name]} | {counts[name] / median:.0f} |")


if __name__ == "__main__":
    main()
