"""The one place where eps, x0, v and score are converted into each other.

With the forward process ``x_t = alpha * x0 + sigma * eps``:

- ``x0 = (x_t - sigma * eps) / alpha`` and ``eps = (x_t - alpha * x0) / sigma``;
- ``v = alpha * eps - sigma * x0`` (Salimans & Ho, 2022), so that for a VP schedule
  ``x0 = alpha * x_t - sigma * v`` and ``eps = sigma * x_t + alpha * v``; for a general
  schedule both are solved from the pair of linear equations;
- ``score = grad log p_t(x_t) = -eps / sigma`` (Tweedie / denoising score matching);
- what a network learns to output in its own parameterisation (:func:`training_target`).

``alpha`` and ``sigma`` are tensors broadcastable to ``x_t`` (see :func:`expand`) or floats.
Nothing else in diffcore or its plugins re-derives these formulas.

>>> import torch
>>> x0, eps = torch.tensor([1.0]), torch.tensor([0.5])
>>> a, s = 0.6, 0.8
>>> xt = a * x0 + s * eps
>>> round(float(eps_to_x0(xt, eps, a, s)), 6)
1.0
>>> v = v_from_x0_eps(x0, eps, a, s)
>>> round(float(v_to_x0(xt, v, a, s)), 6), round(float(v_to_eps(xt, v, a, s)), 6)
(1.0, 0.5)
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError

#: The parameterisations a network may predict in, by diffusers' names.
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def expand(coef: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    """Reshape a per-sample coefficient of shape (N,) to broadcast against ``like`` (N, ...)."""
    if isinstance(coef, torch.Tensor) and coef.ndim == 1 and like.ndim > 1:
        return coef.reshape(coef.shape[0], *([1] * (like.ndim - 1)))
    return coef


def eps_to_x0(x_t, eps, alpha, sigma):
    """Tweedie's clean estimate from a noise prediction."""
    return (x_t - expand(sigma, x_t) * eps) / expand(alpha, x_t)


def x0_to_eps(x_t, x0, alpha, sigma):
    """The noise implied by a clean estimate (undefined at sigma = 0)."""
    return (x_t - expand(alpha, x_t) * x0) / expand(sigma, x_t)


def v_from_x0_eps(x0, eps, alpha, sigma):
    """The v target ``alpha * eps - sigma * x0``."""
    return expand(alpha, x0) * eps - expand(sigma, x0) * x0


def v_to_x0(x_t, v, alpha, sigma):
    """Clean estimate from a v prediction, for any (alpha, sigma)."""
    a, s = expand(alpha, x_t), expand(sigma, x_t)
    return (a * x_t - s * v) / (a * a + s * s)


def v_to_eps(x_t, v, alpha, sigma):
    """Noise estimate from a v prediction, for any (alpha, sigma)."""
    a, s = expand(alpha, x_t), expand(sigma, x_t)
    return (s * x_t + a * v) / (a * a + s * s)


def eps_to_score(eps, sigma):
    """``score = -eps / sigma``."""
    return -eps / expand(sigma, eps)


def score_to_eps(score, sigma):
    """``eps = -sigma * score``."""
    return -expand(sigma, score) * score


def add_to_score(x0, eps, delta, alpha, sigma):
    """``(x0, eps)`` after adding ``delta`` to the score: ``x0 + sigma^2 / alpha * delta`` and ``eps - sigma * delta``.

    Each of the pair moves by itself, so a prediction whose ``x0`` was clipped (not
    ``(x_t - sigma eps) / alpha``) keeps its clipping; for a consistent pair this is the same as
    converting the corrected score back.

    >>> import torch
    >>> x0, eps = add_to_score(torch.tensor([0.2]), torch.tensor([0.5]), torch.tensor([1.0]), 0.6, 0.8)
    >>> round(float(x0), 4), round(float(eps), 4)
    (1.2667, -0.3)
    """
    a, s = expand(alpha, delta), expand(sigma, delta)
    return x0 + s * s / a * delta, eps - s * delta


def training_target(prediction_type: str, x0, eps, alpha, sigma):
    """What a network that predicts in ``prediction_type`` learns to output at ``x_t = alpha x0 + sigma eps``.

    - ``epsilon``: the noise ``eps`` (Ho et al. 2020, eq. 14);
    - ``v_prediction``: ``v = alpha eps - sigma x0`` (Salimans & Ho 2022, sec. 4); on a VP
      schedule its squared error weights the x0 error by ``1 + SNR`` where eps-prediction weights
      it by ``SNR``, so the high noise levels still teach the global layout;
    - ``sample``: ``x0`` itself.

    The denoising loss is the mean squared error between the network's raw output and this target.

    >>> import torch
    >>> one = torch.ones(1)
    >>> round(float(training_target("v_prediction", one, 0 * one, 0.5, 0.75**0.5)), 4)
    -0.866
    """
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "v_prediction":
        return v_from_x0_eps(x0, eps, alpha, sigma)
    if prediction_type == "sample":
        return x0
    raise DiffcoreError(f"unsupported prediction_type {prediction_type!r}; expected one of {', '.join(PREDICTION_TYPES)}")
