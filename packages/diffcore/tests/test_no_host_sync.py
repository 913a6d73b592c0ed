"""The samplers' step loops make no host-device synchronisation.

On the CPU: every method that reads a tensor's value back to Python (``item``, ``float()``,
``bool()``, ``tolist``, ...: on CUDA each one waits for the device) is counted from the first
network call to the end of the run (what comes before is set-up and allowed), except inside the
prior's own ``predict``. On CUDA the same runs go under ``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import pytest
import torch

import diffcore
from diffcore.devices import HostReads
from diffcore.priors.wrapper import PriorWrapper
from diffcore.testing import watch_reads

SAMPLERS = ("ddpm", "ddim", "ddim:eta=0.5", "euler", "heun", "dpm++2m", "euler:s_churn=2.0", "heun:s_churn=1.0,s_tmin=0.5,s_tmax=50")


def test_the_counter_sees_the_reads_a_loop_could_make():
    with HostReads() as counter:
        x = torch.randn(4)
        if x.sum() > 0:  # bool()
            pass
        _ = float(x[0]), x.max().item(), x.tolist(), x[x > 0]
        with counter.paused():
            float(x[1])
        x[x < 0] = 0
    assert {r.module for r in counter.reads} == {__name__}
    assert [(r.method, r.dtype) for r in counter.reads] == [
        ("__bool__", torch.bool),
        ("__float__", torch.float32),
        ("item", torch.float32),
        ("tolist", torch.float32),
        ("__getitem__[mask]", torch.float32),
        ("__setitem__[mask]", torch.float32),
    ]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampler_loop_reads_nothing_back(sampler):
    gmm = diffcore.create("prior", "gmm", means=[[-3.0, 0.0], [3.0, 0.0]], weights=[0.25, 0.75])
    with HostReads() as counter:
        prior = watch_reads(gmm, counter)
        x = diffcore.sample(prior, 16, steps=8, sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert prior.calls >= 8 and x.shape == (16, 2)
    assert prior.loop_reads == []


def test_a_read_in_the_loop_is_caught():
    """The check can fail: a sampler that branches on a tensor inside its loop is counted."""
    gmm = diffcore.create("prior", "gmm", means=[[0.0, 0.0]])

    def reading(prior, x, ts, *, cond=None, generator=None, callback=None):
        for i in range(len(ts) - 1):
            pred = prior.predict(x, ts[i], cond)
            x = pred.x0 if float(x.abs().max()) > 1e9 else x + 0 * pred.eps
        return x

    with HostReads() as counter:
        prior = watch_reads(gmm, counter)
        reading(prior, torch.zeros(2, 2), gmm.schedule.timesteps(3))
    assert [(r.method, r.module) for r in prior.loop_reads] == [("__float__", __name__)] * 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("sampler", ("ddpm", "ddim", "dpm++2m", "heun"))
def test_sampler_loop_does_not_synchronise_on_cuda(sampler):
    from diffcore.devices import build_prior

    prior = build_prior("zoo:patches", device="cuda")
    x = diffcore.sample(prior, 2, steps=2, sampler=sampler, generator=torch.Generator().manual_seed(0), device="cuda")  # warm-up

    class Strict(PriorWrapper):  # the check covers the sampler's loop, not the adapter's own call
        def predict(self, x_t, t, cond=None):
            torch.cuda.set_sync_debug_mode(0)
            try:
                return self.prior.predict(x_t, t, cond)
            finally:
                torch.cuda.set_sync_debug_mode("error")

    from diffcore.samplers import get_sampler, initial_noise

    ts = prior.schedule.timesteps(8)
    g = torch.Generator(device="cuda").manual_seed(0)
    x = initial_noise(prior, 2, ts[0], generator=g, device="cuda", start="normal")
    fn = get_sampler(sampler)
    torch.cuda.synchronize()
    try:  # set-up may synchronise; from the first network call on (Strict turns the check on after it) nothing may
        x = fn(Strict(prior), x, ts, generator=g)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert bool(torch.isfinite(x).all())
