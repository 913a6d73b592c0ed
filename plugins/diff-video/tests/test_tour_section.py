"""The tour section runs on the shipped zoo:moving-digits and its GIFs play in the report."""

from __future__ import annotations

import json

import pytest

from diff_video.io import read_video
from diff_video.zoo import is_trained, weights_folder


@pytest.mark.skipif(not is_trained(weights_folder()), reason="needs the shipped zoo:moving-digits weights")
def test_video_tour_section(tmp_path):
    from diffcore.tour import run_tour

    run_tour(tmp_path, only=["video"], quick=True)
    (section,) = json.loads((tmp_path / "report.json").read_text())["sections"]
    assert section["status"] == "ok", section["error"]
    page = (tmp_path / "index.html").read_text()
    for name in ("generated", "frames-alone", "held-out", "extended", "interpolated", "edited"):
        assert f'src="video/{name}.gif"' in page
    generated = read_video(tmp_path / "video" / "generated.gif")
    assert generated.frames.shape[0] == 8 and generated.info.frames == 8  # an animation, not a still
    extended = read_video(tmp_path / "video" / "extended.gif")
    assert extended.frames.shape[0] == 12
    edited = read_video(tmp_path / "video" / "edited.gif")
    assert edited.frames.shape[0] == 8 and edited.frames.shape[-1] > 3 * 16 * 4  # three videos side by side, upscaled
