"""The card's measurements: locating the digit, clip statistics, PSNR, the benchmark's rows, the card's text."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import diffcore
from diff_video.bench import measure, psnr
from diff_video.card import render_card
from diff_video.data import held_out_clips
from diff_video.evaluate import clip_statistics, locate
from diff_video.per_frame import PerFrame


@pytest.fixture(scope="module")
def clips():
    return held_out_clips(12, 8)


def _bounced(clips) -> torch.Tensor:
    v = clips.corners.diff(dim=1)
    return (v.diff(dim=1) != 0).any(-1).any(-1)


def test_locate_follows_the_digit(clips):
    videos = clips.videos()
    windows, centroid = locate(videos)
    ink = ((videos + 1) / 2).flatten(2).sum(2)
    assert torch.allclose(((windows + 1) / 2).flatten(2).sum(2), ink, atol=1e-4)  # every window holds all the ink
    # the glyph only moves: the centroid moves by exactly the digit's displacement
    assert torch.allclose(centroid.diff(dim=1), clips.corners.diff(dim=1).double(), atol=1e-6)


def test_clip_statistics(clips):
    videos = clips.videos()
    classes = torch.zeros(videos.shape[:2], dtype=torch.long)
    classes[0, 3] = 1
    stats = clip_statistics(videos, classes)
    speed = clips.corners.diff(dim=1).double().norm(dim=-1)
    assert torch.allclose(stats[:, 0], speed.mean(1), atol=1e-6)
    straight = ~_bounced(clips)
    assert bool(straight.any()) and torch.allclose(stats[straight, 2], torch.zeros(int(straight.sum()), dtype=torch.float64), atol=1e-6)
    assert float(stats[0, 3]) == 7 / 8 and bool((stats[1:, 3] == 1).all())


def test_psnr():
    x = torch.zeros(2, 3, 4)
    assert psnr(x + 0.2, x) == pytest.approx(10 * math.log10(4 / 0.04)) and psnr(x, x) == math.inf


def test_benchmark_rows(clips):
    from diff_video.evaluate import classify
    from diff_zoo.classifier import DigitClassifier
    from diff_zoo.data import digits

    classifier = DigitClassifier.fit(digits().train)
    image = diffcore.create("prior", "gaussian", mean=[-0.8] * 1024, shape=(1, 32, 32))
    prior = PerFrame(image, 8)
    rows = measure(
        prior, prior, clips.videos()[:2], clips.labels[:2], lambda v: classify(classifier, v), steps=2, weights=(2.0,), image_weights=(2.0,)
    )
    assert [(r["task"], r["method"], r["prior"]) for r in rows][:5] == [
        ("interpolation", "trivial estimate", "-"),
        ("interpolation", "replacement", "video"),
        ("interpolation", "reconstruction guidance w=2", "video"),
        ("interpolation", "replacement", "image-only"),
        ("interpolation", "reconstruction guidance w=2", "image-only"),
    ]
    assert len(rows) == 15
    truth = clips.videos()[:2]
    nearest = F.interpolate(F.avg_pool2d(truth.flatten(0, 1), 2), scale_factor=2, mode="nearest").unflatten(0, (2, 8))
    sr = next(r for r in rows if r["task"] == "super-resolution" and r["method"] == "trivial estimate")
    assert sr["psnr"] == round(psnr(nearest, truth), 2)


def test_card_shows_the_measurements():
    record = {
        "stages": {"image": {"steps": 10, "train_time_s": 60.0, "cpu_time_s": 30.0, "final_loss": 0.01}},
        "seed": 0,
        "wall_time_s": 90.0,
    }
    figures = {
        "video prior": {"frame accuracy": 0.9, "class consistency": 0.95, "frechet (clip statistics)": 1.5},
        "held-out clips": {"frame accuracy": 0.97},
    }
    metrics = {
        "protocol": {"n": 4, "frames": 8, "steps": 10, "eta": 0.0, "seed": 0},
        "figures": figures,
        "clip_features": ["mean speed"],
        "timing": {"seconds_per_clip": 1.0, "threads": 1},
    }
    card = render_card(record, metrics)
    assert "| video prior | 0.9 | - | 0.95 | - | - | 1.5 |" in card and "| held-out clips | 0.97 |" in card
    assert "10 steps in 1.0 min (0.5 min of CPU time)" in card
