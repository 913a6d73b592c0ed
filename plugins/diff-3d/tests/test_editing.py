"""Editing a capture (diff_3d.editing): the synthetic capture in nerfstudio's layout, its reader's one-line errors, the
multi-view consistency score, SDEdit on an exact prior, and the iterative dataset update."""

from __future__ import annotations

import json

import pytest
import torch

import diffcore
from diff_3d.cameras import camera_rays, index
from diff_3d.editing.capture import capture_cameras, capture_scene, read_capture, synthetic_capture
from diff_3d.editing.consistency import _project, consistency_error
from diff_3d.editing.edit import sdedit
from diff_3d.editing.in2n import iterative_dataset_update
from diffcore.errors import DiffcoreError
from diffcore.priors import GaussianPrior


def test_the_synthetic_capture_reads_back_as_written(tmp_path):
    synthetic_capture(tmp_path / "cap", views=6, size=8)
    cap = read_capture(tmp_path / "cap")
    cameras = capture_cameras(6, 8)
    assert len(cap) == 6 and cap.cameras.width == 8
    assert torch.allclose(cap.cameras.camera_to_worlds, cameras.camera_to_worlds, atol=1e-6)
    assert torch.allclose(cap.images, capture_scene().render(cameras), atol=1 / 127.5)  # 8-bit PNGs
    assert cap.scene.kinds == capture_scene().kinds and torch.equal(cap.scene.centers, capture_scene().centers)
    meta = json.loads((tmp_path / "cap" / "transforms.json").read_text())
    assert meta["frames"][0]["file_path"] == "images/frame_00001.png" and len(meta["frames"][0]["transform_matrix"]) == 4


def test_a_folder_nerfstudio_cannot_read_is_one_line(tmp_path):
    with pytest.raises(DiffcoreError, match="is not a capture nerfstudio can read: it has no transforms.json"):
        read_capture(tmp_path)
    synthetic_capture(tmp_path / "cap", views=2, size=4)
    meta = json.loads((tmp_path / "cap" / "transforms.json").read_text())
    (tmp_path / "cap" / "transforms.json").write_text(json.dumps({"frames": meta["frames"]}))
    with pytest.raises(DiffcoreError, match="shared intrinsics"):
        read_capture(tmp_path / "cap")
    (tmp_path / "cap" / "transforms.json").write_text(json.dumps(meta))
    (tmp_path / "cap" / "images" / "frame_00002.png").write_bytes(b"no image")
    with pytest.raises(DiffcoreError, match="cannot read the capture's image"):
        read_capture(tmp_path / "cap")


def test_a_lifted_pixel_projects_back_onto_itself():
    cameras = capture_cameras(3, 8)
    truth = capture_scene().render_outputs(cameras)
    origins, directions = camera_rays(cameras)
    keep = truth.depth[0, 0] > 0
    points = (origins[0] + truth.depth[0, 0][..., None] * directions[0])[keep]
    u, v, dist = _project(points, index(cameras, 0))
    rows, cols = torch.nonzero(keep, as_tuple=True)
    assert torch.allclose(u, cols + 0.5, atol=1e-4) and torch.allclose(v, rows + 0.5, atol=1e-4)
    assert torch.allclose(dist, truth.depth[0, 0][keep], atol=1e-4)


def test_consistency_error_ranks_true_views_below_inconsistent_ones():
    scene, cameras = capture_scene(), capture_cameras(12, 24)
    views = scene.render(cameras)
    recoloured = views.clone()
    recoloured[::2] = recoloured[::2].flip(1)  # every other view with its colours swapped: inconsistent
    truth, bad = consistency_error(views, cameras, scene), consistency_error(recoloured, cameras, scene)
    assert truth < 0.06 and bad > 4 * truth
    assert consistency_error(torch.zeros_like(views), cameras, scene) == 0.0  # a constant set of views agrees with itself


def _flat(colour, size) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.float32).reshape(-1, 1, 1).expand(len(colour), size, size)


def _flat_prior(colour, size, var=1e-4):
    mean = _flat(colour, size).reshape(-1)
    return GaussianPrior(mean, torch.full((mean.numel(),), var), shape=(len(colour), size, size))


def test_sdedit_goes_to_the_prior_at_full_strength_and_keeps_the_view_at_low_strength():
    prior = _flat_prior([-0.8, 0.6, -0.8], 8)
    views = capture_scene().render(capture_cameras(2, 8))
    g = torch.Generator().manual_seed(0)
    full = sdedit(prior, views, strength=1.0, steps=20, generator=g)
    assert torch.allclose(full, _flat([-0.8, 0.6, -0.8], 8).expand_as(full), atol=0.1)
    light = sdedit(
        _flat_prior([-0.8, 0.6, -0.8], 8, var=0.25), views, strength=0.02, steps=200, generator=g
    )  # a broad prior: little noise, little change
    assert (light - views).abs().mean() < 0.05 < (full - views).abs().mean()
    grey = sdedit(_flat_prior([0.2], 4), views, strength=1.0, steps=10, generator=g)  # a one-channel prior at another size
    assert (
        grey.shape == views.shape and torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey, torch.full_like(grey, 0.2), atol=0.1)
    )
    with pytest.raises(DiffcoreError, match="strength"):
        sdedit(prior, views, strength=0.0, generator=g)


def test_the_iterative_update_edits_every_view_in_turn_and_moves_the_scene_towards_the_edit(tmp_path):
    synthetic_capture(tmp_path / "cap", views=8, size=8)
    cap = read_capture(tmp_path / "cap")
    prior = _flat_prior([-0.8, 0.6, -0.8], 8)
    rep = diffcore.create("representation", "voxel", resolution=8, samples=16)
    record = iterative_dataset_update(
        rep,
        cap,
        prior,
        steps=40,
        reconstruct_steps=20,
        edit_every=2,
        strength=0.5,
        edit_steps=10,
        generator=torch.Generator().manual_seed(0),
    )
    assert sorted(record.edited[:8]) == list(range(8)) and sorted(record.edited[8:16]) == list(range(8))  # shuffled rounds
    target = _flat([-0.8, 0.6, -0.8], 8)
    assert (record.dataset - target).abs().mean() < (cap.images - target).abs().mean()
    rep.eval()
    with torch.no_grad():
        renders = rep.render(cap.cameras)
    assert (renders - target).abs().mean() < (cap.images - target).abs().mean()
