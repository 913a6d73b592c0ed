"""The denoising loss of a trainable prior, in the prior's own parameterisation.

For data ``x0``, a time ``t`` and noise ``eps ~ N(0, I)``, the network sees
``x_t = alpha(t) x0 + sigma(t) eps`` and is trained to output
:func:`diffcore.conversions.training_target`: the noise (Ho et al. 2020, Algorithm 1 and
eq. 14), ``v`` (Salimans & Ho 2022) or ``x0``, whatever its ``prediction_type`` says. The loss is
the mean squared error, optionally weighted per sample.

Times: a discrete schedule of ``T`` steps draws the step index ``i`` uniformly from
``{0, ..., T-1}`` (``t = (i + 1) / T``, where the network is fed ``i`` exactly as in training
with diffusers' DDPM); a continuous schedule draws ``t`` uniformly from (0, 1]. The index (or
time) is drawn first, then the noise, both from ``generator``, so a seeded generator repeats a
run draw for draw.

>>> import tempfile, torch
>>> from diffcore.adapters.diffusers_prior import load_unet_prior
>>> from diffcore.testing import save_tiny_unet_pipeline
>>> with tempfile.TemporaryDirectory() as folder:
...     prior = load_unet_prior(save_tiny_unet_pipeline(folder))
>>> x0 = torch.zeros(2, *prior.sample_shape)
>>> loss = denoising_loss(prior, x0, generator=torch.Generator().manual_seed(0))
>>> loss.ndim, bool(loss > 0)
(0, True)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from diffcore.conversions import expand, training_target
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import Cond, Trainable
from diffcore.schedules import DiscreteSchedule


def check_trainable(prior) -> None:
    """Raise a one-line :class:`DiffcoreError` unless ``prior`` satisfies :class:`~diffcore.protocols.Trainable`."""
    if not isinstance(prior, Trainable):
        missing = [a for a in ("network", "prediction_type", "schedule", "network_output") if not hasattr(prior, a)]
        raise DiffcoreError(
            f"{type(prior).__name__} is not trainable: it lacks {', '.join(missing)} (diffcore.protocols.Trainable; the diffusers "
            "adapters and zoo priors have them)"
        )


def draw_times(schedule, n: int, *, generator: torch.Generator, device=None) -> torch.Tensor:
    """``n`` training times (float64): on the training grid of a discrete schedule, uniform in (0, 1] otherwise."""
    if isinstance(schedule, DiscreteSchedule):
        T = schedule.num_train_timesteps
        index = torch.randint(T, (n,), device=device, generator=generator)
        return (index.double() + 1) / T
    return 1 - torch.rand(n, device=device, generator=generator, dtype=torch.float64)


def min_snr_weights(gamma: float, prediction_type: str, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023, eq. 8 and sec. 3.4) for each parameterisation.

    The x0 error is weighted by ``min(SNR, gamma)``; expressed on the network's own error that is
    ``min(SNR, gamma) / SNR`` for epsilon, ``min(SNR, gamma) / (SNR + 1)`` for v (on a VP schedule)
    and ``min(SNR, gamma)`` for x0.

    >>> a, s = torch.tensor([0.6, 0.99]), torch.tensor([0.8, 0.141])
    >>> [round(w, 3) for w in min_snr_weights(5.0, "epsilon", a, s).tolist()]
    [1.0, 0.101]
    """
    snr = (alpha / sigma) ** 2
    clipped = snr.clamp(max=gamma)
    if prediction_type == "epsilon":
        return clipped / snr
    if prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped


def _weights(weighting, prior, alpha, sigma) -> torch.Tensor | None:
    if weighting is None:
        return None
    if callable(weighting):
        return torch.as_tensor(weighting(alpha, sigma))
    if isinstance(weighting, str) and weighting.startswith("min-snr-"):
        try:
            gamma = float(weighting[len("min-snr-") :])
        except ValueError:
            gamma = -1.0
        if gamma > 0:
            return min_snr_weights(gamma, prior.prediction_type, alpha, sigma)
    raise DiffcoreError(
        f"unknown weighting {weighting!r}; expected None, 'min-snr-<gamma>' (e.g. 'min-snr-5') or a callable weighting(alpha, sigma)"
    )


def denoising_loss(
    prior,
    x0: torch.Tensor,
    *,
    cond: Cond | None = None,
    generator: torch.Generator,
    t=None,
    weighting: str | Callable | None = None,
) -> torch.Tensor:
    """The denoising loss of ``prior`` on the batch ``x0``: MSE to the target in its own parameterisation.

    Args:
        prior: a :class:`~diffcore.protocols.Trainable` prior (the diffusers adapters, zoo priors).
        x0: clean training data (N, ...), in the prior's sample space (latents for a latent prior).
        cond: the conditioning of the batch, passed to ``network_output``.
        generator: where the times and the noise come from (times first, then noise).
        t: the times (float, 0-d or (N,)) instead of drawing them; only the noise is drawn then.
        weighting: ``None`` (every sample alike: the "simple" loss of Ho et al.),
            ``"min-snr-<gamma>"`` (Hang et al. 2023) or a callable ``weighting(alpha, sigma) -> (N,)``
            on the per-sample ``alpha(t)``, ``sigma(t)``.

    Returns the scalar loss in float32 (or ``x0``'s dtype if wider), with gradients to the
    network's trainable parameters.
    """
    check_trainable(prior)
    if not isinstance(x0, torch.Tensor) or x0.ndim < 1 or x0.shape[0] < 1:
        raise ShapeError("x0 must be a batch of training data (N, ...) with N >= 1")
    n = x0.shape[0]
    if t is None:
        t = draw_times(prior.schedule, n, generator=generator, device=x0.device)
    else:
        t = torch.as_tensor(t, dtype=torch.float64, device=x0.device)
        if t.ndim == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ShapeError(f"t has shape {tuple(t.shape)}; expected a scalar or ({n},) to match x0")
    eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    t = t.cpu()  # the one device sync of a step: the adapter maps t to the network's timestep on the CPU
    alpha = prior.schedule.alpha(t).to(device=x0.device, dtype=x0.dtype)
    sigma = prior.schedule.sigma(t).to(device=x0.device, dtype=x0.dtype)
    a, s = expand(alpha, x0), expand(sigma, x0)
    x_t = a * x0 + s * eps
    output = prior.network_output(x_t, t, cond)
    target = training_target(prior.prediction_type, x0, eps, a, s)
    dtype = torch.promote_types(x0.dtype, torch.float32)
    weights = _weights(weighting, prior, alpha, sigma)
    if weights is None:
        return F.mse_loss(output.to(dtype), target.to(dtype))
    per_sample = (output.to(dtype) - target.to(dtype)).pow(2).reshape(n, -1).mean(dim=1)
    return (weights.to(per_sample) * per_sample).mean()
