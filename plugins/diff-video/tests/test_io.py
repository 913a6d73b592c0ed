"""Video IO: written files read back by both backends, frame selection, resizing, and one-line errors."""

from __future__ import annotations

import pytest
import torch

from diff_video.io import FrameSelectionError, probe, read_video, resize_frames, select_frames, to_uint8, write_video
from diffcore.errors import DiffcoreError, ShapeError

FRAMES = 12


def _numbered(frames: int = FRAMES, size: int = 32) -> torch.Tensor:
    """Grey frames whose level encodes the frame index (index i -> code 20 i), with a gradient so codecs see structure."""
    level = torch.arange(frames, dtype=torch.float32).reshape(frames, 1, 1, 1) * 20 / 127.5 - 1
    ramp = torch.linspace(0, 0.02, size).reshape(1, 1, 1, size)
    return (level + ramp).expand(frames, 3, size, size).clamp(-1, 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    video = _numbered()
    return {
        "mp4": write_video(root / "numbered.mp4", video, fps=6, crf=0),
        "gif": write_video(root / "numbered.gif", video, fps=6),
        "video": video,
        "root": root,
    }


def _index_of(frames: torch.Tensor) -> list[int]:
    codes = (frames[:, :, :, :4].mean((1, 2, 3)) + 1) * 127.5
    return [round(float(c) / 20) for c in codes]


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_mp4_round_trip(files, backend):
    clip = read_video(files["mp4"], backend=backend)
    assert clip.backend == backend and clip.frames.shape == (FRAMES, 3, 32, 32) and clip.frames.dtype == torch.float32
    assert clip.info.frames == FRAMES and clip.info.fps == pytest.approx(6.0) and (clip.info.height, clip.info.width) == (32, 32)
    assert clip.indices == tuple(range(FRAMES)) and clip.fps == pytest.approx(6.0)
    # H.264 at crf 0 on yuv420p: grey levels come back within a code or two
    assert float((clip.frames - files["video"]).abs().max()) <= 3 / 127.5


def test_backends_agree_on_mp4(files):
    a = read_video(files["mp4"], backend="decord").frames
    b = read_video(files["mp4"], backend="pyav").frames
    assert float((a - b).abs().max()) <= 1 / 127.5


def test_gif_grey_levels_are_exact_and_read_by_pyav(files):
    clip = read_video(files["gif"])  # decord cannot measure a GIF's duration: PyAV reads it
    assert clip.backend == "pyav"
    assert torch.equal(torch.from_numpy(to_uint8(clip.frames)), torch.from_numpy(to_uint8(files["video"])))
    with pytest.raises(DiffcoreError, match=r"^cannot read video .*numbered\.gif \(decord: ") as info:
        read_video(files["gif"], backend="decord")
    assert "\n" not in str(info.value)


def test_colour_gif_uses_a_palette(tmp_path):
    video = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    back = read_video(write_video(tmp_path / "colour.gif", video, fps=5)).frames
    # 6, 7 and 6 levels per channel: at most half a step off (255 / 10 codes for red and blue)
    assert float((back - video).abs().amax((0, 2, 3)).max()) <= (255 / 10 + 1) / 127.5


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_selection_reads_the_chosen_frames(files, backend):
    clip = read_video(files["mp4"], start=0.5, stride=3, backend=backend)  # 6 fps: frame 3 is at 0.5 s
    assert clip.indices == (3, 6, 9) and _index_of(clip.frames) == [3, 6, 9]
    assert clip.fps == pytest.approx(2.0)
    clip = read_video(files["mp4"], start=0.2, end=1.0, count=2, backend=backend)
    assert clip.indices == (2, 3) and _index_of(clip.frames) == [2, 3]


def test_select_frames():
    assert select_frames(10, 5.0) == list(range(10))
    assert select_frames(10, 5.0, end=1.0) == [0, 1, 2, 3, 4]
    assert select_frames(100, 30.0, start=1.0, end=2.0, stride=10) == [30, 40, 50]
    with pytest.raises(FrameSelectionError, match="8 frames were asked for but the selection holds 5"):
        select_frames(10, 5.0, stride=2, count=8)
    with pytest.raises(FrameSelectionError, match="time range is empty"):
        select_frames(10, 5.0, start=1.0, end=0.5)
    with pytest.raises(FrameSelectionError, match="holds no frame"):
        select_frames(10, 5.0, start=3.0)
    with pytest.raises(FrameSelectionError, match="stride must be a positive"):
        select_frames(10, 5.0, stride=0)


def test_resize_filters_before_subsampling():
    rows = torch.arange(8).reshape(8, 1).expand(8, 8)
    checker = ((rows + rows.T) % 2).float() * 2 - 1
    frames = checker.expand(2, 1, 8, 8)
    small = resize_frames(frames, 2)
    assert small.shape == (2, 1, 2, 2)
    # a one-pixel checkerboard averages out (2 % of the range at the borders, where the filter is cut);
    # sampling every fourth pixel without a filter would give +-1
    assert float(small.abs().max()) <= 0.03
    assert float(frames[:, :, ::4, ::4].abs().min()) == 1.0
    assert resize_frames(frames, (8, 8)) is frames
    big = read_video(write_video_to_tmp(frames.expand(2, 3, 8, 8)), size=(16, 12)).frames
    assert big.shape == (2, 3, 16, 12)


def write_video_to_tmp(video):
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    return write_video(folder / "v.gif", video, fps=4)


def test_probe(files):
    info = probe(files["mp4"])
    assert (info.frames, info.height, info.width) == (FRAMES, 32, 32) and info.duration == pytest.approx(2.0)


def test_bad_files_fail_on_one_line(files, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).to(torch.uint8).numpy().tobytes())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(files["mp4"].read_bytes()[:200])
    cases = [
        (tmp_path / "missing.mp4", "does not exist"),
        (empty, "is empty"),
        (corrupt, "cannot read video"),
        (truncated, "cannot read video"),
        (tmp_path, "is not a file"),
    ]
    for path, message in cases:
        with pytest.raises(DiffcoreError, match=message) as info:
            read_video(path)
        assert "\n" not in str(info.value) and str(path.name) in str(info.value)
    with pytest.raises(DiffcoreError, match="unknown video backend"):
        read_video(files["mp4"], backend="ffmpeg")


def test_write_errors_leave_nothing(tmp_path):
    video = torch.zeros(2, 1, 7, 8)
    with pytest.raises(ShapeError, match="even width and height, got 8x7"):
        write_video(tmp_path / "odd.mp4", video)
    assert write_video(tmp_path / "odd.mp4", video, scale=2).is_file()  # scale 2 makes the size even
    with pytest.raises(DiffcoreError, match="video files are .mp4 or .gif"):
        write_video(tmp_path / "v.avi", video)
    with pytest.raises(ShapeError, match="expected \\(F, C, H, W\\)"):
        write_video(tmp_path / "v.gif", torch.zeros(2, 2, 8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_pyav_reads_where_decord_is_missing(files, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "decord", None)  # import decord now raises ImportError
    clip = read_video(files["mp4"])
    assert clip.backend == "pyav" and clip.frames.shape == (FRAMES, 3, 32, 32)
    with pytest.raises(DiffcoreError, match="backend 'decord' is not installed: pip install decord"):
        read_video(files["mp4"], backend="decord")
