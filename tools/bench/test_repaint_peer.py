"""RePaint's peer: diffusers' ``RePaintPipeline`` against our ``projection`` solver in its RePaint mode
(``resample = jump_n_sample``, jump length 1), with the same mask, schedule, jumps and noise.

Our step draws one noise for the whole image, as RePaint's does, and our jump back is the forward
kernel in one draw; so where diffusers' jump is one training step (a network with as many training
steps as inference steps) the two give the same images. On zoo:digits a jump spans 50 training
steps: diffusers draws them one by one, and with betas of the wrong interval (``undo_step(x, t)`` adds
``betas[t : t + n]`` to a sample at level ``t - n``, so it lands at a noisier level than t). With
its undo replaced by the exact kernel in one draw, the pipeline gives our images again.
Measured on 64 held-out digits (8x8 box, 20 steps, jump_n_sample 3), mean PSNR: ours 22.10 and
21.82 dB (seeds 0, 1); the shipped pipeline 19.68 and 19.60; the pipeline with the jumped interval's
betas (50 draws) 21.98 and 22.28.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

import diffcore  # noqa: E402
from diff_inverse.operators import Inpainting  # noqa: E402
from diff_inverse.solve import solve  # noqa: E402

torch.set_num_threads(1)


def _load():
    path = Path(__file__).with_name("repaint_peer.py")
    spec = importlib.util.spec_from_file_location("repaint_peer", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


peer = _load()


def test_same_images_as_repaint_pipeline_on_a_tiny_random_unet(tmp_path):
    from diffusers import UNet2DModel

    from diffcore.testing import save_tiny_unet_pipeline

    folder = save_tiny_unet_pipeline(tmp_path / "tiny", sample_size=8, channels=3, scheduler_options={"num_train_timesteps": 10})
    prior = diffcore.create("prior", "diffusers", path=str(folder))
    pipe = peer.pipeline(UNet2DModel.from_pretrained(folder / "unet"), prior.scheduler_config)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    mask = torch.ones(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 0
    op = Inpainting((3, 8, 8), mask=mask[0, 0])
    for jumps in (1, 3):
        ours = solve(prior, op, op.A(x), solver="projection", steps=10, resample=jumps, generator=torch.Generator().manual_seed(0))
        theirs = peer.theirs(pipe, x, mask, 10, jumps, 0)
        assert float((ours.clamp(-1, 1) - theirs).abs().max()) < 1e-4, jumps  # measured: 4e-7 and 3e-6


def test_zoo_digits_same_images_as_repaint_with_an_exact_jump():
    from diff_inverse import zoo

    if not zoo.available():
        pytest.skip("needs diff-zoo")
    from diffcore.priors import unconditional

    base = diffcore.create("prior", "zoo:digits")
    prior = unconditional(base)
    unet = peer.NullLabel(base.network, int(base.null_cond.labels[0]))
    x = zoo.digits(8)
    mask = torch.ones(8, 1, 16, 16)
    mask[..., 4:12, 4:12] = 0
    op = Inpainting((1, 16, 16), box=(4, 4, 8, 8))
    ours = solve(prior, op, op.A(x), solver="projection", steps=20, resample=3, generator=torch.Generator().manual_seed(0))
    exact = peer.theirs(peer.pipeline(unet, base.scheduler_config, peer.exact_undo_scheduler()), x, mask, 20, 3, 0)
    assert float((ours.clamp(-1, 1) - exact).abs().max()) < 1e-3  # the same images (float32 rounding of the schedules)
    once = peer.theirs(peer.pipeline(unet, base.scheduler_config), x, mask, 20, 1, 0)  # no jumps: the shipped pipeline as it is
    plain = solve(prior, op, op.A(x), solver="projection", steps=20, generator=torch.Generator().manual_seed(0))
    assert float((plain.clamp(-1, 1) - once).abs().max()) < 1e-3

    # the shipped undo_step from level 50 to 100 keeps sqrt(abar_50 prod(1 - betas[100:150])) of the signal, not sqrt(abar_100)
    from diffusers import RePaintScheduler

    signal = torch.ones(200_000, dtype=torch.float64)
    for cls, lands_right in ((RePaintScheduler, False), (peer.exact_undo_scheduler(), True)):
        sched = cls(**{k: base.scheduler_config[k] for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")})
        sched.set_timesteps(20, 1, 3)
        a = sched.alphas_cumprod.double()
        kept = float(sched.undo_step(a[50].sqrt() * signal, torch.tensor(100), torch.Generator().manual_seed(0)).mean())
        assert (abs(kept - float(a[100].sqrt())) < 0.005) is lands_right, (cls.__name__, kept, float(a[100].sqrt()))  # sd 0.002
