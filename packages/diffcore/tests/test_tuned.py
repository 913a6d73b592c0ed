"""The network options of sample and solve: compile, autocast, channels-last (diffcore.devices.tuned).

On the CPU: compile=True falls back with one warning and gives exactly the plain samples; a graph
that fails to compile falls back the same way; channels-last agrees with the default layout up to
float rounding; bf16 autocast keeps the state in float32 and stays near the float32 samples; the
prior's network, its mode and its layout are restored afterwards. compile="default" really
compiles on the CPU (slow: run with DIFFCORE_COMPILE_TESTS=1); CUDA graphs are checked on CUDA.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

import diffcore
from diffcore.devices import SpeedWarning, TunedNetwork, tuned

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    from diffcore.adapters.diffusers_prior import load_unet_prior
    from diffcore.testing import save_tiny_unet_pipeline

    folder = save_tiny_unet_pipeline(tmp_path_factory.mktemp("unet"), clip_sample=False)
    return load_unet_prior(folder)


def _draw(prior, **options):
    return diffcore.sample(prior, 2, steps=4, generator=torch.Generator().manual_seed(0), **options)


def _speed_warnings(caught):
    return [str(w.message) for w in caught if issubclass(w.category, SpeedWarning)]


def test_compile_true_on_the_cpu_warns_once_and_runs_the_plain_path(prior):
    plain = _draw(prior)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = _draw(prior, compile=True)
    (message,) = _speed_warnings(caught)
    assert "need a CUDA device" in message and "the network is on cpu" in message
    assert torch.equal(x, plain)


def test_a_prior_without_a_network_warns_and_runs_as_it_is():
    gmm = diffcore.create("prior", "gmm", means=[[0.0, 1.0]])
    with pytest.warns(SpeedWarning, match="has no network module"):
        x = diffcore.sample(gmm, 8, steps=4, compile=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, diffcore.sample(gmm, 8, steps=4, generator=torch.Generator().manual_seed(0)))


def test_a_graph_that_fails_to_compile_falls_back_once(prior, monkeypatch):
    def broken(module, **options):
        def call(*args, **kwargs):
            raise RuntimeError("cannot capture a data-dependent branch")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    plain = _draw(prior)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = _draw(prior, compile="default")
    (message,) = _speed_warnings(caught)  # one warning for the run, not one per step
    assert "could not be compiled (RuntimeError: cannot capture" in message
    assert torch.equal(x, plain)


def test_channels_last_agrees_and_the_layout_is_restored(prior):
    net = prior.network
    plain = _draw(prior)
    x = _draw(prior, channels_last=True)
    assert prior.network is net and not any(p.ndim == 4 and not p.is_contiguous() for p in net.parameters())
    assert float((x - plain).abs().max()) < 1e-4
    with tuned(prior, channels_last=True):
        assert isinstance(prior.network, TunedNetwork)
        assert any(p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in net.parameters())


def test_bf16_autocast_keeps_the_arithmetic_in_float32(prior):
    seen = []
    x = diffcore.sample(
        prior, 2, steps=4, autocast="bf16", generator=torch.Generator().manual_seed(0), callback=lambda i, t, x, p: seen.append(p.eps.dtype)
    )
    assert x.dtype == torch.float32 and set(seen) == {torch.float32} and bool(torch.isfinite(x).all())
    assert next(prior.network.parameters()).dtype == torch.float32
    x_t = torch.randn((4, *prior.sample_shape), generator=torch.Generator().manual_seed(1))
    plain = prior.predict(x_t, 0.5).eps
    with tuned(prior, autocast="bf16"):
        half = prior.predict(x_t, 0.5).eps
    rel = float((half - plain).norm() / plain.norm())
    assert half.dtype == torch.float32 and 0 < rel < 0.05  # bf16 keeps 8 bits of mantissa: the network's output moves, a little


def test_the_network_mode_is_kept(prior):
    net = prior.network
    with tuned(prior, channels_last=True):
        assert prior.network.training == net.training
        _draw(prior)
    assert prior.network is net and not net.training


def test_bad_values_are_refused(prior):
    with pytest.raises(diffcore.errors.DiffcoreError, match="autocast must be bfloat16 or float16"):
        _draw(prior, autocast="float32")
    with pytest.raises(diffcore.errors.DiffcoreError, match="compile must be true, false or a torch.compile mode"):
        _draw(prior, compile="fastest")


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("DIFFCORE_COMPILE_TESTS"), reason="compiling on the CPU takes a minute: set DIFFCORE_COMPILE_TESTS=1"
)
def test_compiled_on_the_cpu_gives_the_same_samples(prior):
    plain = _draw(prior)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpeedWarning)  # it must really compile
        x = _draw(prior, compile="default")
    assert float((x - plain).abs().max()) < 1e-4  # inductor fuses and reorders float32 arithmetic


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_give_the_same_samples(prior):
    prior.network.to("cuda")
    try:
        cuda = type(prior)(prior.network, prior.scheduler_config, owned=True)
        plain = diffcore.sample(cuda, 2, steps=6, device="cuda", generator=torch.Generator().manual_seed(0))
        with warnings.catch_warnings():
            warnings.simplefilter("error", SpeedWarning)
            x = diffcore.sample(cuda, 2, steps=6, device="cuda", compile=True, generator=torch.Generator().manual_seed(0))
        assert float((x - plain).abs().max()) < 1e-3
    finally:
        prior.network.to("cpu")


def test_the_sample_command_takes_the_options(prior, tmp_path):
    from click.testing import CliRunner

    from diffcore.cli import cli

    spec = "gmm:means=[[0.0,1.0]]"
    plain = CliRunner().invoke(cli, ["sample", "--prior", spec, "--n", "4", "--steps", "3", "--out", str(tmp_path / "a.npy")])
    with pytest.warns(SpeedWarning, match="has no network module"):
        run = CliRunner().invoke(
            cli, ["sample", "--prior", spec, "--n", "4", "--steps", "3", "--compile", "--out", str(tmp_path / "b.npy")]
        )
    assert plain.exit_code == 0 and run.exit_code == 0, run.output
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()
    bad = CliRunner().invoke(cli, ["sample", "--prior", spec, "--autocast", "float32", "--out", str(tmp_path / "c.npy")])
    assert bad.exit_code == 2 and "autocast must be bfloat16 or float16" in bad.output
