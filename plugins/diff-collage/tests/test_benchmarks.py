"""The benchmark scripts of docs/collage.md (tools/bench/collage_*.py): what they count and how they cut."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from diffcore.priors import GaussianPrior
from diffcore.protocols import Prediction, PriorBase

BENCH = Path(__file__).resolve().parents[3] / "tools" / "bench"


def _module(name: str):
    path = BENCH / f"{name}.py"
    if not path.is_file():
        pytest.skip(f"{path.name} is not in this checkout")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class WhiteNoise(PriorBase):
    """Exact for i.i.d. N(0, 1) pixels, on any width: a prior a crop separator can ask about an overlap."""

    def __init__(self):
        self.sample_shape, self.schedule = (1, 1, 8), GaussianPrior(torch.zeros(1)).schedule

    def predict(self, x_t, t, cond=None):
        t64 = torch.as_tensor(t, dtype=torch.float64)
        alpha, sigma = self.schedule.alpha(t64).to(x_t.dtype), self.schedule.sigma(t64).to(x_t.dtype)
        return Prediction.from_eps(x_t, sigma * x_t, alpha, sigma)


def test_scaling_counts_sequential_calls():
    """DiffCollage: 2 sequential calls per step (windows, overlaps) and MultiDiffusion 1, whatever the
    canvas; outpainting one per window and step."""
    m = _module("collage_scaling")
    window = WhiteNoise()
    for windows in (2, 8):
        calls = {method: m.run(window, method, windows, 2, 5, 0, size=8)["calls"] for method in m.METHODS}
        assert calls == {"DiffCollage": 10, "MultiDiffusion": 5, "sequential outpainting": 5 * windows}
        r = m.run(window, "DiffCollage", windows, 2, 5, 0, size=8)
        assert 0 < r["network"] < r["seconds"]


def test_inverse_tiles_cut_the_box_and_score():
    m = _module("collage_inverse")
    masks = m.tile_masks("inpainting 40x40 box")  # the box (44, 44, 40, 40) straddles the four middle tiles
    assert len(masks) == 16
    missing = {key: int((mask == 0).sum()) for key, mask in masks.items() if bool((mask == 0).any())}
    assert missing == {(1, 1): 20 * 20, (1, 2): 20 * 20, (2, 1): 20 * 20, (2, 2): 20 * 20}
    assert bool((masks[(1, 1)][12:, 12:] == 0).all()) and bool((masks[(2, 2)][:20, :20] == 0).all())
    assert all(mask is None for mask in m.tile_masks("super-resolution x2").values())
    truth = torch.zeros(3, 4, 4)
    assert m.psnr(truth + 0.2, truth) == pytest.approx(10 * torch.log10(torch.tensor(4 / 0.04)).item())
    off = truth.clone()
    off[:, :2] = 0.2  # wrong in the top half only
    where = torch.zeros(4, 4, dtype=torch.bool)
    where[:2] = True
    assert m.psnr(off, truth, where) == pytest.approx(m.psnr(truth + 0.2, truth)) and m.psnr(off, truth, ~where) == float("inf")
