"""The diffusers adapters against diffusers itself: same seed, same steps, same numbers.

The tiny UNets are untrained, and an untrained eps-prediction network makes DDIM sensitive to
rounding (a change of 1e-7 in the starting noise grows to about 1e-3 after 25 steps), so these
comparisons only pass because the arithmetic matches diffusers' step for step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import diffcore  # noqa: E402
from diffcore import Cond  # noqa: E402
from diffcore.adapters.diffusers_prior import DiffusersUNetPrior, load_unet_prior, schedule_from_config  # noqa: E402
from diffcore.adapters.stable_diffusion import StableDiffusionPrior  # noqa: E402
from diffcore.errors import DiffcoreError, ShapeError  # noqa: E402
from diffcore.priors import GaussianMixturePrior, GaussianPrior, Guided  # noqa: E402
from diffcore.protocols import PriorBase  # noqa: E402
from diffcore.samplers import ddim  # noqa: E402
from diffcore.testing import check_prior, check_schedule, save_tiny_stable_diffusion, save_tiny_unet_pipeline  # noqa: E402

CONFIGS = {  # name -> (prediction_type, clip_sample)
    "eps-clip": ("epsilon", True),
    "eps": ("epsilon", False),
    "v": ("v_prediction", False),
    "sample-clip": ("sample", True),
}


@pytest.fixture(scope="session")
def unet_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-unets")
    return {
        name: save_tiny_unet_pipeline(root / name, prediction_type=pt, clip_sample=clip, seed=1) for name, (pt, clip) in CONFIGS.items()
    }


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory):
    return save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd") / "sd", seed=0)


@pytest.fixture(scope="session")
def sd_pipe(sd_folder):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(sd_folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _ddim_pipeline(folder):
    from diffusers import DDIMPipeline

    pipe = DDIMPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _run_pipeline(pipe, n, steps, eta, seed):
    """DDIMPipeline's np output, and its last sample before post-processing."""
    last = {}
    step = pipe.scheduler.step

    def recording_step(*args, **kwargs):
        out = step(*args, **kwargs)
        last["x"] = out.prev_sample
        return out

    pipe.scheduler.step = recording_step
    try:
        images = pipe(
            batch_size=n, generator=torch.Generator().manual_seed(seed), eta=eta, num_inference_steps=steps, output_type="np"
        ).images
    finally:
        del pipe.scheduler.step
    return images, last["x"]


# -- DDIM against DDIMPipeline ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "eta", "steps"),
    [
        ("eps-clip", 0.0, 10),
        ("eps-clip", 0.0, 50),
        ("eps", 0.0, 25),
        ("v", 0.0, 25),
        ("sample-clip", 0.0, 10),
        ("eps-clip", 0.5, 10),
        ("eps", 1.0, 10),
        ("v", 0.5, 25),
    ],
)
def test_ddim_reproduces_ddim_pipeline(unet_folders, name, eta, steps):
    folder = unet_folders[name]
    ref_images, ref_raw = _run_pipeline(_ddim_pipeline(folder), 2, steps, eta, seed=7)
    prior = load_unet_prior(folder)
    ours = diffcore.sample(prior, 2, steps=steps, sampler="ddim", generator=torch.Generator().manual_seed(7), eta=eta)
    scale = max(1.0, float(ref_raw.abs().max()))  # untrained eps models without clipping reach |x| ~ 100s
    assert float((ours - ref_raw).abs().max()) <= 1e-5 * scale
    ours_images = (ours / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours_images, ref_images, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["eps-clip", "eps", "v", "sample-clip"])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_each_ddim_step_matches_scheduler_step(unet_folders, name, eta):
    """One step from the same x with the same noise, at every step of a 20-step grid."""
    pipe = _ddim_pipeline(unet_folders[name])
    scheduler, unet = pipe.scheduler, pipe.unet
    prior = load_unet_prior(unet_folders[name])
    steps = 20
    scheduler.set_timesteps(steps)
    ts = prior.schedule.timesteps(steps)
    assert prior.schedule.model_time(ts[:-1]).tolist() == scheduler.timesteps.tolist()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for i, t in enumerate(scheduler.timesteps):
            noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(100 + i))
            want = scheduler.step(unet(x, t).sample, t, x, eta=eta, variance_noise=noise if eta > 0 else None).prev_sample
            got = ddim(prior, x, ts[i : i + 2], eta=eta, generator=torch.Generator().manual_seed(100 + i))
            assert float((got - want).abs().max()) <= 1e-6 * max(1.0, float(want.abs().max())), f"step {i} (t={int(t)})"
            x = want


def test_offset_and_final_alpha_match_pipeline(tmp_path):
    """Stable Diffusion's settings: leading spacing with steps_offset=1, set_alpha_to_one=False."""
    folder = save_tiny_unet_pipeline(
        tmp_path / "sd-like",
        clip_sample=False,
        scheduler_options={
            "steps_offset": 1,
            "set_alpha_to_one": False,
            "beta_schedule": "scaled_linear",
            "beta_start": 0.00085,
            "beta_end": 0.012,
        },
    )
    ref_images, ref_raw = _run_pipeline(_ddim_pipeline(folder), 2, 10, 0.0, seed=3)
    ours = diffcore.sample(load_unet_prior(folder), 2, steps=10, generator=torch.Generator().manual_seed(3))
    assert float((ours - ref_raw).abs().max()) <= 1e-5 * max(1.0, float(ref_raw.abs().max()))


def test_dynamic_thresholding_matches_pipeline(tmp_path):
    folder = save_tiny_unet_pipeline(tmp_path / "thresholded", scheduler_options={"thresholding": True, "sample_max_value": 1.5})
    prior = load_unet_prior(folder)
    assert prior.threshold_x0 and not prior.clip_x0 and not prior.consistent
    ref_images, ref_raw = _run_pipeline(_ddim_pipeline(folder), 2, 10, 0.0, seed=5)
    ours = diffcore.sample(prior, 2, steps=10, generator=torch.Generator().manual_seed(5))
    assert float((ours - ref_raw).abs().max()) <= 1e-5 * max(1.0, float(ref_raw.abs().max()))


# -- schedules from scheduler configs -------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
        {"beta_schedule": "squaredcos_cap_v2"},
        {"trained_betas": np.linspace(1e-4, 0.03, 500).tolist(), "num_train_timesteps": 500},
        {"num_train_timesteps": 100},
    ],
)
def test_schedule_from_config_matches_diffusers(options):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(**options)
    schedule = schedule_from_config(scheduler)
    T = scheduler.config.num_train_timesteps
    assert schedule.num_train_timesteps == T
    assert torch.equal(schedule.alphas_cumprod.float(), scheduler.alphas_cumprod)
    t = torch.arange(1, T + 1, dtype=torch.float64) / T
    # on the grid: exactly the 0-d float32 values that DDIMScheduler.step computes
    assert torch.equal(schedule.alpha(t).float(), torch.stack([a**0.5 for a in scheduler.alphas_cumprod]))
    assert torch.equal(schedule.sigma(t).float(), torch.stack([(1 - a) ** 0.5 for a in scheduler.alphas_cumprod]))
    assert float(schedule.alpha(0.0)) == 1.0 and float(schedule.sigma(0.0)) == 0.0
    assert bool((schedule.init_std(t) == 1).all())  # the starting noise is not rescaled
    check_schedule(schedule)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("offset", [0, 1])
def test_time_grid_matches_scheduler_timesteps(spacing, offset):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(timestep_spacing=spacing, steps_offset=offset)
    schedule = schedule_from_config(scheduler.config)
    for steps in (1, 3, 10, 50, 999):
        if spacing == "linspace" and steps == 1:
            continue  # diffusers' one-step linspace grid is [0] (no denoising); diffcore starts at T - 1
        scheduler.set_timesteps(steps)
        assert schedule.model_time(schedule.timesteps(steps)[:-1]).tolist() == scheduler.timesteps.tolist(), steps


def test_schedule_from_config_rejects_what_it_cannot_represent():
    with pytest.raises(DiffcoreError, match="beta_schedule"):
        schedule_from_config({"beta_schedule": "sigmoid"})
    with pytest.raises(DiffcoreError, match="zero terminal SNR"):
        schedule_from_config({"rescale_betas_zero_snr": True})
    with pytest.raises(DiffcoreError, match="ScoreSdeVeScheduler"):
        schedule_from_config({"_class_name": "ScoreSdeVeScheduler"})


# -- loading ---------------------------------------------------------------------------------
def test_create_loads_the_pipeline_folder(unet_folders):
    prior = diffcore.create("prior", "diffusers", path=str(unet_folders["v"]))
    assert isinstance(prior, DiffusersUNetPrior)
    assert prior.sample_shape == (3, 8, 8)
    assert prior.accepts == frozenset() and prior.latent is None
    assert prior.prediction_type == "v_prediction" and prior.consistent
    clipped = diffcore.create("prior", "diffusers", path=unet_folders["eps-clip"])
    assert clipped.clip_x0 and not clipped.consistent
    assert DiffusersUNetPrior(clipped.unet, clipped.scheduler_config, clip_x0=False).consistent


def test_flat_folder_and_subfolder(tmp_path, unet_folders):
    pipe = _ddim_pipeline(unet_folders["eps-clip"])
    pipe.unet.save_pretrained(tmp_path / "flat")
    pipe.scheduler.save_pretrained(tmp_path / "flat")  # scheduler_config.json next to config.json
    flat = load_unet_prior(tmp_path / "flat")
    nested = load_unet_prior(unet_folders["eps-clip"], subfolder="unet")
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(flat.predict(x, 0.5).x0, nested.predict(x, 0.5).x0)


def test_not_a_unet2dmodel_folder(sd_folder):
    with pytest.raises(DiffcoreError, match="stable-diffusion prior"):
        load_unet_prior(sd_folder, subfolder="unet")


# -- predict ---------------------------------------------------------------------------------
def test_timesteps_fed_to_the_unet(unet_folders):
    prior = load_unet_prior(unet_folders["eps"])
    seen = []
    forward = prior.unet.forward

    def spy(sample, timestep, *args, **kwargs):
        seen.append(timestep)
        return forward(sample, timestep, *args, **kwargs)

    prior.unet.forward = spy
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    on_grid = prior.predict(x, torch.tensor(0.501, dtype=torch.float32))  # 500.99998 -> 500 exactly
    assert seen[-1].dtype == torch.long and seen[-1].tolist() == 500
    assert torch.equal(on_grid.eps, prior.predict(x, 0.501).eps)
    prior.predict(x, torch.tensor([0.2, 0.9], dtype=torch.float64))
    assert seen[-1].tolist() == [199, 899]
    prior.predict(x, 0.5005)
    assert seen[-1].dtype == torch.float32 and seen[-1].tolist() == pytest.approx(499.5)
    prior.predict(x, 1e-5)  # below the first training step: clamped to step 0
    assert seen[-1].tolist() == 0


def test_prediction_types_agree_on_their_own_targets(unet_folders):
    """Each type is read with the right conversion: eps of an eps model is its output, etc."""
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for name, field in [("eps", "eps"), ("sample-clip", None)]:
        prior = load_unet_prior(unet_folders[name])
        out = prior.unet(x, 700).sample
        pred = prior.predict(x, 0.701)
        if field == "eps":
            assert torch.equal(pred.eps, out)
        else:
            assert torch.equal(pred.x0, out.clamp(-1, 1))


def test_bad_input_gives_clear_errors(unet_folders):
    prior = load_unet_prior(unet_folders["eps"])
    with pytest.raises(ShapeError, match=r"expected \(N, 3, H, W\)"):
        prior.predict(torch.zeros(2, 4, 8, 8), 0.5)
    with pytest.raises(DiffcoreError, match="does not accept labels"):
        prior.predict(torch.zeros(2, 3, 8, 8), 0.5, Cond(labels=torch.zeros(2, dtype=torch.long)))
    with pytest.raises(DiffcoreError, match="t has shape"):
        prior.predict(torch.zeros(2, 3, 8, 8), torch.tensor([0.1, 0.2, 0.3]))


def test_class_conditional_unet_accepts_labels(tmp_path):
    from diffusers import DDIMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        num_class_embeds=3,
    )
    prior = DiffusersUNetPrior(unet, DDIMScheduler().config)
    assert prior.accepts == frozenset({"labels"})
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    a = prior.predict(x, 0.5, Cond(labels=torch.tensor([0, 2])))
    b = prior.predict(x, 0.5, Cond(labels=torch.tensor([1])))  # a batch of 1 is broadcast
    assert not torch.equal(a.eps, b.eps)
    with pytest.raises(DiffcoreError, match="class-conditional"):
        prior.predict(x, 0.5)
    check_prior(prior, cond=Cond(labels=torch.tensor([1, 2])))


# -- Stable Diffusion ------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [10, 25])
def test_guided_stable_diffusion_matches_pipeline(sd_folder, sd_pipe, steps):
    prompt, scale = "a photo of a cat", 5.0
    guided = diffcore.create("prior", "stable-diffusion", path=sd_folder, prompt=prompt, guidance_scale=scale)
    assert isinstance(guided, Guided) and isinstance(guided.prior, StableDiffusionPrior)
    latents = torch.randn((2, *guided.sample_shape), generator=torch.Generator().manual_seed(0))
    kwargs = dict(num_inference_steps=steps, guidance_scale=scale, latents=latents, num_images_per_prompt=2)
    ref = sd_pipe(prompt, output_type="latent", **kwargs).images
    ours = ddim(guided, latents.clone(), guided.schedule.timesteps(steps))
    # measured: bitwise equal on CPU; the bound leaves room for other kernels
    assert float((ours - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))
    ref_images = sd_pipe(prompt, output_type="np", **kwargs).images
    with torch.no_grad():
        images = guided.latent.decode(ours)
    np.testing.assert_allclose((images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy(), ref_images, rtol=0, atol=1e-5)


def test_stable_diffusion_prior(sd_folder):
    prior = diffcore.create("prior", "sd", path=sd_folder)
    assert isinstance(prior, StableDiffusionPrior)
    assert prior.accepts == frozenset({"text"}) and prior.sample_shape == (4, 8, 8)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    emb = prior.encode_text("a dog")
    assert emb.shape == (1, 77, 16)
    by_string = prior.predict(x, 0.5, Cond(text="a dog"))
    assert torch.equal(by_string.eps, prior.predict(x, 0.5, Cond(text=emb)).eps)
    assert torch.equal(prior.predict(x, 0.5).eps, prior.predict(x, 0.5, Cond(text="")).eps)
    with pytest.raises(ShapeError, match="cond.text"):
        prior.predict(x, 0.5, Cond(text=torch.zeros(3, 77, 16)))
    with pytest.raises(DiffcoreError, match="does not accept labels"):
        prior.predict(x, 0.5, Cond(labels=torch.zeros(2, dtype=torch.long)))
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        z = prior.latent.encode(images)
        assert z.shape == (2, 4, 8, 8)
        decoded = prior.latent.decode(z)
    assert decoded.shape == images.shape and float(decoded.abs().max()) <= 1


def test_guided_with_string_prompts(sd_folder):
    """Guided broadcasts one prompt to the batch (it used to split a string into characters)."""
    prior = diffcore.create("prior", "sd", path=sd_folder)
    by_string = Guided(prior, 3.0, Cond(text="a cat"), Cond(text=""))
    by_emb = Guided(prior, 3.0, Cond(text=prior.encode_text("a cat")), Cond(text=prior.encode_text("")))
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.9, 0.5, 0.1], dtype=torch.float64)
    assert torch.equal(by_string.predict(x, t).eps, by_emb.predict(x, t).eps)


def test_sample_decodes_to_images(sd_folder):
    guided = diffcore.create(
        "prior", "stable-diffusion", path=sd_folder, prompt=["a cat", "a dog"], negative_prompt="blurry", guidance_scale=2.0
    )
    images = diffcore.sample(guided, 2, steps=4, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 16, 16) and float(images.abs().max()) <= 1
    with pytest.raises(DiffcoreError, match="negative_prompt"):
        diffcore.create("prior", "stable-diffusion", path=sd_folder, prompt=["a", "b"], negative_prompt=["c", "d", "e"])


# -- the contract helpers over every prior ---------------------------------------------------
@pytest.mark.parametrize("name", list(CONFIGS))
def test_contract_on_unet_priors(unet_folders, name):
    check_prior(diffcore.create("prior", "diffusers", path=unet_folders[name]), n=3)


def test_contract_on_stable_diffusion(sd_folder):
    prior = diffcore.create("prior", "stable-diffusion", path=sd_folder)
    check_prior(prior)
    check_prior(prior, cond=Cond(text=["a cat", "a dog"]))
    check_prior(diffcore.create("prior", "stable-diffusion", path=sd_folder, prompt="a cat", guidance_scale=4.0))


def test_contract_on_analytic_priors():
    check_prior(GaussianMixturePrior(means=[[-2.0, 0.0], [2.0, 1.0]], weights=[0.3, 0.7]))
    check_prior(
        GaussianMixturePrior(
            means=torch.zeros(2, 12), covs=torch.rand(2, 12, generator=torch.Generator().manual_seed(0)) + 0.1, shape=(3, 2, 2)
        )
    )
    check_prior(GaussianPrior(mean=[1.0, -1.0, 0.5]))
    check_prior(Guided(GaussianMixturePrior(means=[[0.0], [3.0]]), 2.0, Cond(), Cond()))


def test_contract_helpers_catch_broken_priors():
    gmm = GaussianMixturePrior(means=[[0.0, 1.0]])

    class Incomplete:
        schedule, sample_shape, accepts, latent = gmm.schedule, gmm.sample_shape, gmm.accepts, None

        def predict(self, x_t, t, cond=None):
            return gmm.predict(x_t, t, cond)

    with pytest.raises(AssertionError, match="lacks sample_marginal, image_shape, null_cond, class_names and 3 more"):
        check_prior(Incomplete())

    class Inconsistent(PriorBase):
        schedule, sample_shape = gmm.schedule, gmm.sample_shape

        def predict(self, x_t, t, cond=None):
            pred = gmm.predict(x_t, t, cond)
            return type(pred)(x0=pred.x0 + 0.1, eps=pred.eps)

    with pytest.raises(AssertionError, match="alpha x0 \\+ sigma eps"):
        check_prior(Inconsistent())

    class IgnoresCond(Inconsistent):
        def predict(self, x_t, t, cond=None):
            return gmm.predict(x_t, t)

    with pytest.raises(AssertionError, match="accepted cond"):
        check_prior(IgnoresCond())

    class Increasing:
        def alpha(self, t):
            return torch.as_tensor(t, dtype=torch.float64) + 1

        def sigma(self, t):
            return torch.as_tensor(t, dtype=torch.float64)

        def timesteps(self, steps):
            return torch.linspace(1, 0, steps + 1, dtype=torch.float64)

    with pytest.raises(AssertionError, match="alpha"):
        check_schedule(Increasing())

    class WrongStart(type(gmm.schedule)):
        def init_std(self, t):
            return torch.ones_like(torch.as_tensor(t, dtype=torch.float64)) * 2

    with pytest.raises(AssertionError, match="init_std"):
        check_schedule(WrongStart(gmm.schedule.alphas_cumprod))


def test_the_adapters_package_exports_every_adapter_lazily():
    import subprocess
    import sys

    import diffcore.adapters as adapters

    assert all(callable(getattr(adapters, name)) for name in adapters.__all__)
    assert {"VideoDiffusionPrior", "load_video_prior"} <= set(adapters.__all__)
    code = "import sys, diffcore.adapters; assert 'diffusers' not in sys.modules, 'imported diffusers'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0  # importing it imports no diffusers
