"""The seam score, on constructed canvases and on zoo:textures panoramas: DiffCollage's seams are
no more visible than MultiDiffusion's."""

from __future__ import annotations

import pytest
import torch

import diffcore
from diff_collage import collage, graphs, seam_score
from diffcore.errors import DiffcoreError


def test_seam_score_on_constructed_canvases():
    g = graphs.chain(3, 8, 2)  # borders at 6, 8, 12, 14 of 20 cells
    smooth = torch.randn(200, 1, 4, 20, generator=torch.Generator().manual_seed(0))
    assert 0.8 < seam_score(smooth, g) < 1.25  # white noise: borders look like anywhere else
    jumps = smooth.clone()
    jumps[..., 6:] += 3.0
    jumps[..., 14:] -= 3.0
    assert seam_score(jumps, g) > 2.5  # jumps of 3 at two of the four borders: (9 + 2 + 9 + 2) / 4 over 2, about 3.2
    flat_seams = smooth.clone()
    flat_seams[..., 6] = flat_seams[..., 5]
    flat_seams[..., 12] = flat_seams[..., 11]
    assert seam_score(flat_seams, g) < 0.8
    loop = graphs.cycle(3, 8, 2)  # the pair (last, first) is a border
    wrap_jump = torch.randn(100, 18, generator=torch.Generator().manual_seed(1))
    wrap_jump[:, 0] += 5.0
    assert seam_score(wrap_jump, loop) > 2 * seam_score(wrap_jump, graphs.tree([[0], [6], [10]], [8], [18]))
    assert seam_score(jumps.repeat_interleave(2, -1), g, scale=2) > 2.5  # a decoded latent canvas, 2 pixels per cell
    with pytest.raises(DiffcoreError, match="no window borders"):
        seam_score(torch.zeros(1, 8), graphs.chain(1, 8, 2))
    with pytest.raises(DiffcoreError, match="do not have 20 cells"):
        seam_score(torch.zeros(1, 21), g)


def _textures():
    pytest.importorskip("diff_zoo")
    try:
        return diffcore.create("prior", "zoo:textures")
    except DiffcoreError as exc:
        pytest.skip(f"zoo:textures is not available: {exc}")


def test_diffcollage_seams_are_at_most_multidiffusion_s_on_texture_strips():
    """Strips of 4 windows of 32x32 (overlap 16) of brick, grass and gravel, 12 DDIM steps, the same seed
    (seeds 0 to 4 all give DiffCollage 0.64-1.09 against MultiDiffusion 1.25-1.78); docs/collage.md has
    the full table (overlaps 8 and 16, the mixture, more samples)."""
    textures = _textures()
    g = graphs.chain(4, 32, 16)
    cond = diffcore.Cond(labels=torch.tensor([0, 1, 2]))
    scores = {}
    for method in ("diffcollage", "multidiffusion"):
        prior = collage(textures, g, method=method)
        x = diffcore.sample(prior, 3, steps=12, cond=cond, generator=torch.Generator().manual_seed(0))
        assert x.shape == (3, 1, 32, 80)
        scores[method] = seam_score(x, g)
    assert scores["diffcollage"] <= scores["multidiffusion"], scores
