"""Peak memory of an edit as the frame count grows: the measurement behind the bounded-memory claim.

:func:`peak_growth` runs a function and returns how far the process's resident memory rose above
where it started: the kernel's high-water mark of resident memory (``VmHWM``) is reset first
(writing ``5`` to ``/proc/self/clear_refs``, Linux 4.0+), freed heap is handed back
(``malloc_trim``), and the growth is ``VmHWM`` after the call minus ``VmRSS`` before. Being the
process's own counters, it is not disturbed by other programs on a shared machine. Where
``/proc`` cannot be reset it falls back to ``ru_maxrss`` (then only the first measurement of a
process is meaningful).

``python -m diff_video.editing.memory --prior SPEC --editor NAME --frames 8,32,64 --chunk 4,0``
edits a synthetic video of each length (chunks of ``--chunk`` frames; ``0`` runs each video as one
chunk, the unbounded way), after one unreported warm-up edit, with glibc's mmap threshold fixed
(:func:`fixed_mmap_threshold`), and prints one JSON line per run with the growth in bytes;
tools/bench/video_edit_memory.py and the tests run it in a fresh process.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import json
import resource
from collections.abc import Callable
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def fixed_mmap_threshold(size: int = 65536) -> None:
    """Make glibc serve every allocation above ``size`` bytes by ``mmap`` (freed straight back to the system).

    glibc raises its mmap threshold after large blocks are freed and then serves them from the
    heap, where freed memory stays resident: a run's peak would then depend on the runs before it.
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, int(size))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_growth(fn: Callable[[], object]) -> int:
    """Bytes by which the resident memory's peak during ``fn()`` exceeds the resident memory before it."""
    _trim()
    reset = _reset_peak()
    before = _status_kib("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    after = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(0, (after or 0) - (before or 0)) * 1024


def synthetic_video(frames: int, size: int) -> torch.Tensor:
    """The moving, rotating digit of :mod:`diff_video.editing.synthetic`, resized to ``size`` pixels."""
    from diff_video.editing.synthetic import moving_rotating_digit

    video, _ = moving_rotating_digit(2, frames)
    if size != video.shape[-1]:
        video = torch.nn.functional.interpolate(video, size=(size, size), mode="bilinear", align_corners=False)
    return video


def main(argv=None) -> None:
    import diffcore
    from diff_video.editing import EditSettings, edit_video, make_editor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="zoo:digits")
    parser.add_argument("--editor", default="pix2video")
    parser.add_argument("--frames", default="8,32")
    parser.add_argument("--chunk", default="4", help="frames per chunk, comma-separated; 0: the whole video at once")
    parser.add_argument("--size", type=int, default=16, help="frame size (the synthetic video is resized)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--channels", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    fixed_mmap_threshold()
    prior = diffcore.create("prior", args.prior)
    runs = [(2, 1)] + [(int(f), int(c)) for c in args.chunk.split(",") for f in args.frames.split(",")]
    for i, (frames, chunk) in enumerate(runs):  # the first, unreported, warms up lazy imports and caches
        video = synthetic_video(frames, args.size)[:, :1].expand(-1, args.channels, -1, -1).contiguous()
        if prior.latent is None:
            prior.sample_shape = (args.channels, args.size, args.size)  # the zoo and tiny UNets are fully convolutional
        target = prior.class_names[0] if prior.class_names else None
        settings = EditSettings(steps=args.steps, strength=1.0, chunk=chunk or frames, refine=1)
        growth = peak_growth(functools.partial(edit_video, prior, video, target, editor=make_editor(args.editor), settings=settings))
        if i == 0:
            continue
        print(
            json.dumps({"editor": args.editor, "frames": frames, "chunk": chunk, "size": args.size, "peak_growth_bytes": growth}),
            flush=True,
        )


if __name__ == "__main__":
    main()


__all__ = ["fixed_mmap_threshold", "main", "peak_growth", "synthetic_video"]
