"""The built-in plugin: diffcore's own components (priors, schedules, samplers, the ``sample``
job task, tour sections), registered through the same hooks as any third-party plugin. Heavy
imports stay inside the factories."""

from __future__ import annotations

from diffcore.hookspecs import hookimpl


def gmm(means, weights=None, covs=None, schedule=None, shape=None):
    """Gaussian mixture with exact scores, posteriors and log-densities (the test oracle)"""
    from diffcore.priors import GaussianMixturePrior
    from diffcore.schedules import make_schedule

    if isinstance(schedule, str):
        schedule = make_schedule(schedule)
    return GaussianMixturePrior(means, weights, covs, schedule=schedule, shape=shape)


def gaussian(mean, cov=None, schedule=None, shape=None):
    """A single Gaussian N(mean, cov) with exact scores"""
    from diffcore.priors import GaussianPrior
    from diffcore.schedules import make_schedule

    if isinstance(schedule, str):
        schedule = make_schedule(schedule)
    return GaussianPrior(mean, cov, schedule=schedule, shape=shape)


def diffusers_prior(path, subfolder=None, device=None, dtype=None, trust_pickle=False, clip_x0=None):
    """A pixel prior from a diffusers UNet2DModel and scheduler (hub id or local folder)"""
    from diffcore.adapters.diffusers_prior import load_unet_prior

    return load_unet_prior(path, subfolder=subfolder, device=device, dtype=dtype, trust_pickle=trust_pickle, clip_x0=clip_x0)


def stable_diffusion(path, prompt=None, negative_prompt="", guidance_scale=7.5, device=None, dtype=None, trust_pickle=False):
    """Latent text-to-image Stable Diffusion prior with classifier-free guidance"""
    from diffcore.adapters.stable_diffusion import load_stable_diffusion

    return load_stable_diffusion(
        path,
        prompt=prompt,
        negative_prompt=negative_prompt,
        guidance_scale=guidance_scale,
        device=device,
        dtype=dtype,
        trust_pickle=trust_pickle,
    )


def finetuned(path, base=None, device=None, dtype=None):
    """A prior fine-tuned with diffcore.training: its base rebuilt by spec, the saved weights applied"""
    from diffcore.training.finetuned import load_finetuned

    return load_finetuned(base, path, device=device, dtype=dtype)


def diffusers_video(
    path, num_frames=16, prompt=None, negative_prompt="", guidance_scale=9.0, device=None, dtype=None, trust_pickle=False, chunk=8
):
    """Latent text-to-video prior (N, F, C, H, W) from a UNet3DConditionModel (ModelScope) or UNetMotionModel (AnimateDiff) pipeline"""
    from diffcore.adapters.video import load_video_prior

    return load_video_prior(
        path,
        num_frames=num_frames,
        prompt=prompt,
        negative_prompt=negative_prompt,
        guidance_scale=guidance_scale,
        device=device,
        dtype=dtype,
        trust_pickle=trust_pickle,
        chunk=chunk,
    )


def zero123(path, device=None, dtype=None, trust_pickle=False):
    """Zero-1-to-3 (diffusers layout): a latent novel-view prior, Cond(image=reference, camera=relative pose)"""
    from diffcore.adapters.zero123 import load_zero123

    return load_zero123(path, device=device, dtype=dtype, trust_pickle=trust_pickle)


@hookimpl
def register_priors(register):
    register("gmm", gmm, aliases=("gaussian-mixture",))
    register("gaussian", gaussian)
    register("diffusers", diffusers_prior)
    register("stable-diffusion", stable_diffusion, aliases=("sd",))
    register("finetuned", finetuned)
    register("diffusers-video", diffusers_video, aliases=("text-to-video",))
    register("zero123", zero123, aliases=("zero-1-to-3",))


@hookimpl
def register_schedules(register):
    from diffcore.schedules import SCHEDULES

    summaries = {
        "linear": "DDPM's betas linear in the step index, 1000 steps (Ho et al. 2020)",
        "scaled_linear": "Stable Diffusion's betas: sqrt(beta) linear in the step index, 1000 steps",
        "cosine": "Cosine alpha_bar, 1000 steps (Nichol & Dhariwal 2021, eq. 17)",
        "vp": "Continuous VP SDE with linear beta(t) (Song et al. 2021)",
        "ve": "Continuous VE SDE with the exact perturbation variance (Song et al. 2021)",
        "edm": "Karras et al. (2022): alpha = 1, sigma(t) = sigma_max t^rho",
    }
    for name, factory in SCHEDULES.items():
        register(name, factory, summary=summaries[name])


@hookimpl
def register_samplers(register):
    from diffcore.samplers import ALIASES, SAMPLERS
    from diffcore.samplers.factory import sampler_factory

    summaries = {
        "ddpm": "Ancestral sampling (Ho et al. 2020, Algorithm 2)",
        "ddim": "DDIM (Song et al. 2021, eq. 12); eta = 0 deterministic, eta = 1 DDPM-like",
        "euler": "Euler steps (Karras et al. 2022, Algorithm 1), optional churn",
        "heun": "Heun's second-order steps (Karras et al. 2022, Algorithms 1 and 2)",
        "dpm++2m": "DPM-Solver++(2M), second-order multistep (Lu et al. 2022)",
    }
    for name, fn in SAMPLERS.items():
        aliases = tuple(alias for alias, target in ALIASES.items() if target == name)
        register(name, sampler_factory(fn), aliases=aliases, summary=summaries[name])


@hookimpl
def register_tasks(register):
    from diffcore.jobs.tasks import sample_task

    register("sample", sample_task, summary="Draw n samples per item (seed) from a prior")


@hookimpl
def register_tour(register):
    from diffcore.tour_section import section

    register("diffcore", section, summary="Samplers on an exact Gaussian mixture: samples, densities and error against steps")
    from diffcore.jobs.tour_section import section as jobs_section

    register("jobs", jobs_section, summary="Batch jobs that resume: a job stopped part-way, restarted, and compared byte for byte")
