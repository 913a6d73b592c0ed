"""Erased Stable Diffusion (ESD), Gandikota et al. 2023, "Erasing Concepts from Diffusion Models".

The fine-tuned model theta is trained so that, given the concept c, it predicts the noise of the
frozen original theta* guided *away* from c (their eq. 4, negative classifier-free guidance)::

    eps_theta(x_t, c, t)  ->  eps*(x_t, t) - eta * (eps*(x_t, c, t) - eps*(x_t, t))

with ``eps*(x_t, t)`` the original's unconditional prediction (here: with the prior's null
condition). **Erasing towards another concept** a replaces the unconditional prediction by the
anchor's, ``eps*(x_t, a, t) - eta * (eps*(x_t, c, t) - eps*(x_t, a, t))``: the concept is mapped
onto a and pushed away from itself.

Variants (which parameters train, :mod:`diff_safety.erasure`): ESD-x the cross-attention layers
(the only ones that read the text in Stable Diffusion, so the erasure stays specific to the
prompt), ESD-u every layer but those (the unconditional pathways, a broader erasure), and full.

The noisy inputs ``x_t`` are the original's own generations of the concept, noised by the
forward process at a training time drawn like the denoising loss's. Gandikota et al. draw them
by partially sampling the model being trained at every step; at the start of training the two
are the same distribution, and a pool generated once is what makes the method run on a CPU in
minutes.
"""

from __future__ import annotations

import torch

from diffcore.protocols import Cond


def esd_target(original, x_t: torch.Tensor, t, concept: Cond, anchor: Cond, *, eta: float = 1.0) -> torch.Tensor:
    """``eps*(x_t, a, t) - eta (eps*(x_t, c, t) - eps*(x_t, a, t))`` of the frozen ``original`` (no gradients)."""
    with torch.no_grad():
        e_c = original.predict(x_t, t, concept).eps
        e_a = original.predict(x_t, t, anchor).eps
    return e_a - eta * (e_c - e_a)


__all__ = ["esd_target"]
