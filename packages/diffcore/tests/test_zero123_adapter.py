"""The Zero-1-to-3 adapter on a tiny random folder in the diffusers layout: the wiring of the
reference (CLIP token through cc_projection, unscaled VAE mode concatenated), the camera offsets,
the unconditional branch, guidance and the one-line errors."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import diffcore  # noqa: E402
from diffcore.adapters.zero123 import load_zero123, pose_embedding, save_tiny_zero123, spherical_offsets  # noqa: E402
from diffcore.errors import CheckpointError, DiffcoreError, ShapeError  # noqa: E402
from diffcore.priors import Guided  # noqa: E402
from diffcore.protocols import Cond  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_zero123(tmp_path_factory.mktemp("zero123") / "tiny")


@pytest.fixture(scope="module")
def prior(folder):
    return load_zero123(folder)


def _orbit(azimuth, elevation, radius) -> torch.Tensor:
    """Camera-to-world (N, 3, 4) of cameras on an orbit about the z axis looking at the origin, no roll (OpenGL axes)."""
    a, e = torch.deg2rad(torch.tensor(azimuth, dtype=torch.float64)), torch.deg2rad(torch.tensor(elevation, dtype=torch.float64))
    r = torch.tensor(radius, dtype=torch.float64)
    pos = torch.stack([r * torch.cos(e) * torch.cos(a), r * torch.cos(e) * torch.sin(a), r * torch.sin(e)], dim=-1)
    back = pos / pos.norm(dim=-1, keepdim=True)  # the camera's z axis points away from what it looks at
    right = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(back), back)
    right = right / right.norm(dim=-1, keepdim=True)
    up = torch.linalg.cross(back, right)
    return torch.cat([torch.stack([right, up, back], dim=-1), pos[:, :, None]], dim=-1)


def _relative(ref: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    rot = ref[:, :, :3].transpose(1, 2)
    return torch.cat([rot @ tgt[:, :, :3], rot @ (tgt[:, :, 3:] - ref[:, :, 3:])], dim=-1)


def test_spherical_offsets_of_orbit_cameras_are_the_differences_of_their_coordinates():
    az1, el1, r1 = [10.0, 10.0, 30.0, -170.0, 45.0], [20.0, 20.0, 0.0, 35.0, -10.0], [2.0, 2.5, 3.0, 2.2, 1.5]
    az2, el2, r2 = [70.0, 10.0, -100.0, 150.0, 44.0], [-5.0, 40.0, 30.0, 10.0, 60.0], [2.4, 2.0, 3.0, 2.5, 1.5]
    rel = _relative(_orbit(az1, el1, r1), _orbit(az2, el2, r2))
    got = spherical_offsets(rel)
    polar = [a - b for a, b in zip(el1, el2)]  # polar = 90 - elevation
    azimuth = [(b - a + 180) % 360 - 180 for a, b in zip(az1, az2)]
    radius = [b - a for a, b in zip(r1, r2)]
    assert torch.allclose(got, torch.tensor([polar, azimuth, radius]).T.float(), atol=1e-4)
    assert torch.allclose(
        spherical_offsets(_relative(_orbit([5.0], [15.0], [2.0]), _orbit([5.0], [15.0], [2.0]))), torch.zeros(1, 3), atol=1e-5
    )


def test_pose_embedding_is_zero123s_four_numbers():
    emb = pose_embedding(torch.tensor([[30.0, 90.0, 0.5]]))
    assert torch.allclose(emb, torch.tensor([[math.radians(30.0), 1.0, 0.0, 0.5]]), atol=1e-6)


def _manual_eps(prior, x, timestep, ref, offsets, present=True):
    """Zero-1-to-3's network call written out from the components."""
    with torch.no_grad():
        pixels = torch.nn.functional.interpolate((ref + 1) / 2, size=(32, 32), mode="bicubic", align_corners=False, antialias=True)
        pixels = (pixels - prior.clip_mean) / prior.clip_std.reshape(1, 3, 1, 1)
        embeds = prior.image_encoder(pixel_values=pixels).image_embeds
        polar, az = torch.deg2rad(offsets[:, 0]), torch.deg2rad(offsets[:, 1])
        pose = torch.stack([polar, torch.sin(az), torch.cos(az), offsets[:, 2]], dim=-1)
        token = prior.projection(torch.cat([embeds.expand(x.shape[0], -1), pose], dim=-1))[:, None]
        latent = prior.vae.encode(ref).latent_dist.mode().expand(x.shape[0], -1, -1, -1)
        if not present:
            token, latent = torch.zeros_like(token), torch.zeros_like(latent)
        return prior.network(torch.cat([x, latent], dim=1), timestep, encoder_hidden_states=token).sample


def test_prediction_is_the_network_called_as_zero123_calls_it(prior):
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    x = torch.randn(3, 4, 8, 8, generator=g)
    offsets = torch.tensor([[10.0, 45.0, 0.0], [-20.0, 180.0, 0.3], [0.0, -90.0, -0.2]])
    t = 0.5
    alpha, sigma = prior.schedule.alpha(torch.tensor(t)), prior.schedule.sigma(torch.tensor(t))
    step = int(round(float(prior.schedule.model_time(torch.tensor(t, dtype=torch.float64)))))
    eps = _manual_eps(prior, x, step, ref, offsets)
    pred = prior.predict(x, t, Cond(image=ref, camera=offsets))
    assert torch.allclose(pred.eps, eps, atol=1e-5)
    assert torch.allclose(pred.x0, (x - sigma * eps) / alpha, atol=1e-4)
    # the same cameras as relative poses give the same prediction
    rel = _relative(_orbit([0.0] * 3, [20.0] * 3, [2.0] * 3), _orbit([45.0, 180.0 - 1e-3, -90.0], [10.0, 40.0, 20.0], [2.0, 2.3, 1.8]))
    assert torch.allclose(spherical_offsets(rel), offsets, atol=2e-3)
    assert torch.allclose(prior.predict(x, t, Cond(image=ref, camera=rel)).eps, eps, atol=1e-3)


def test_a_reference_of_zeros_is_the_unconditional_branch_and_guidance_combines_the_two(prior):
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    x = torch.randn(2, 4, 8, 8, generator=g)
    offsets = torch.tensor([[5.0, 30.0, 0.0]])
    step = int(round(float(prior.schedule.model_time(torch.tensor(0.3, dtype=torch.float64)))))
    uncond = prior.predict(x, 0.3, prior.null_cond).eps
    assert torch.allclose(uncond, _manual_eps(prior, x, step, ref, offsets.expand(2, 3), present=False), atol=1e-5)
    assert torch.allclose(prior.predict(x, 0.3).eps, uncond)
    # a batch mixing a reference and no reference: each sample gets its own branch
    both = torch.cat([ref, torch.zeros_like(ref)])
    mixed = prior.predict(x, 0.3, Cond(image=both, camera=offsets)).eps
    assert torch.allclose(mixed[1], uncond[1], atol=1e-5)
    assert torch.allclose(mixed[0], prior.predict(x[:1], 0.3, Cond(image=ref, camera=offsets)).eps[0], atol=1e-5)
    rel = _relative(_orbit([0.0], [20.0], [2.0]), _orbit([30.0], [15.0], [2.0])).float()  # the null cond's camera is a pose too
    guided = Guided(prior, 3.0, Cond(image=ref, camera=rel))
    cond_eps = prior.predict(x, 0.3, Cond(image=ref, camera=rel)).eps
    assert torch.allclose(guided.predict(x, 0.3).eps, uncond + 3.0 * (cond_eps - uncond), atol=1e-4)


def test_registered_and_loaded_by_spec(folder):
    prior = diffcore.create("prior", "zero123", path=str(folder))
    assert prior.accepts == frozenset({"image", "camera"}) and prior.sample_shape == (4, 8, 8) and prior.image_shape == (3, 16, 16)


def test_bad_input_is_one_line(prior, tmp_path):
    x = torch.zeros(1, 4, 8, 8)
    ref = torch.rand(1, 3, 16, 16) * 2 - 1
    with pytest.raises(DiffcoreError, match="needs the camera"):
        prior.predict(x, 0.5, Cond(image=ref))
    with pytest.raises(ShapeError, match="cond.image"):
        prior.predict(x, 0.5, Cond(image=torch.rand(1, 3, 32, 32), camera=torch.zeros(1, 3)))
    with pytest.raises(ShapeError, match="cond.camera"):
        prior.predict(x, 0.5, Cond(image=ref, camera=torch.zeros(1, 4)))
    with pytest.raises(DiffcoreError, match="does not accept labels"):
        prior.predict(x, 0.5, Cond(labels=torch.tensor([1])))
    with pytest.raises(CheckpointError, match="not a Zero-1-to-3 folder"):
        load_zero123(tmp_path)
