"""--device / --dtype: resolution, the environment default, and building priors on them."""

import pytest
import torch

import diffcore
from diffcore.devices import ENV, build_prior, resolve_device, resolve_dtype
from diffcore.errors import DiffcoreError


def test_devices_and_dtypes_resolve_or_fail_in_one_line(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert resolve_device(None) is None and resolve_device("CPU") == torch.device("cpu")
    monkeypatch.setenv(ENV, "cpu")
    assert resolve_device(None) == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(DiffcoreError, match="use cpu, cuda, cuda:N or mps"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(DiffcoreError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype("float16") is torch.float16 and resolve_dtype(None) is None
    with pytest.raises(DiffcoreError, match="use float32, float16 or bfloat16"):
        resolve_dtype("int8")


def test_build_prior_passes_device_and_dtype_to_factories_that_take_them(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    prior = build_prior("zoo:digits", device="cpu", dtype="bfloat16")
    assert prior.dtype is torch.bfloat16 and prior.device == torch.device("cpu")
    assert build_prior("gmm:means=[[0.0], [1.0]]", device="cpu").sample_shape == (1,)
    with pytest.raises(DiffcoreError, match="prior 'gmm' does not take a dtype"):
        build_prior("gmm:means=[[0.0]]", dtype="float16")
    x = diffcore.sample(prior, 2, steps=3, cond=diffcore.Cond(labels=torch.tensor([1])), generator=torch.Generator().manual_seed(0))
    assert x.dtype is torch.float32 and torch.isfinite(x).all()  # the network in bf16, the sampler's state in float32


def test_the_sample_job_task_takes_device_and_dtype(monkeypatch):
    from diffcore.jobs.tasks import sample_task

    monkeypatch.delenv(ENV, raising=False)
    run = sample_task("zoo:digits:clip_x0=true", n=1, steps=2, device="cpu", dtype="bfloat16")
    assert run.prior.dtype is torch.bfloat16
    with pytest.raises(DiffcoreError, match="does not take a dtype"):
        sample_task("gmm:means=[[0.0]]", dtype="float16")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cpu_generator_gives_the_same_samples_on_cuda_up_to_rounding():
    cpu = diffcore.create("prior", "zoo:digits")
    gpu = build_prior("zoo:digits", device="cuda")
    cond = diffcore.Cond(labels=torch.arange(10))
    a = diffcore.sample(cpu, 10, steps=50, cond=cond, generator=torch.Generator().manual_seed(0))
    b = diffcore.sample(gpu, 10, steps=50, cond=cond, generator=torch.Generator().manual_seed(0), device="cuda")
    assert float((a - b.cpu()).abs().max()) < 0.01  # 0.004 measured on an H200
