"""Variational Score Distillation (Wang et al. 2023, ProlificDreamer, eq. 9 and Algorithm 1).

VSD treats the 3-D parameters as samples of a distribution and matches the distribution of their
renders to the prior's. Its gradient on a render ``z`` replaces SDS's noise ``eps`` by the noise
prediction of a second model ``eps_phi`` that learns the renders' own distribution given the camera
``c`` (:mod:`diff_3d.distillers.vsd_models`):

    g = w(t) (eps_hat_pretrained(x_t; y, t) - eps_phi(x_t; y, t, c)),    x_t = alpha z + sigma eps,

and, alternately, ``eps_phi`` takes one optimiser step of the denoising loss on the (detached)
renders: ``update``, which the distiller owns. The pretrained prediction is guided
(``guidance_scale``, diffusers' convention); ``eps_phi`` is not (ProlificDreamer's LoRA runs at
scale 1). A LoRA ``eps_phi`` starts equal to the pretrained model, so its first gradients are zero;
the residual denoiser starts from the one-sample estimate of the renders' score (see
:class:`~diff_3d.distillers.vsd_models.ResidualDenoiser`).

The second model is a LoRA on the prior's network with a camera embedding where the prior is
:class:`diffcore.protocols.Trainable` (``second="lora"``; the adapters are added to that network in
place), a small residual denoiser otherwise (``second="denoiser"``); ``second="auto"`` picks.
With one particle (one representation, as here and in ProlificDreamer's 3-D runs), a perfect
``eps_phi`` of a single render gives ``E[eps | x_t]`` and VSD's gradient becomes SDS's.

>>> import torch
>>> from diffcore.priors import GaussianPrior
>>> prior = GaussianPrior(torch.zeros(3 * 4 * 4), shape=(3, 4, 4))
>>> vsd, g = VSD(), torch.Generator().manual_seed(0)
>>> images = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
>>> vsd.loss(prior, images, None, step=0, total_steps=10, generator=g).loss.backward()
>>> type(vsd.model).__name__, sorted(vsd.update(prior, images, None, step=0, total_steps=10, generator=g))  # no network: the small denoiser
('ResidualDenoiser', ['vsd_model_loss'])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_3d.distillers.base import NoiseLevels, check_options, clip_gradient, coefficients, predict_guided, surrogate_loss, to_prior_space
from diff_3d.distillers.sds import weighting
from diff_3d.distillers.vsd_models import LoRAScore, ResidualDenoiser
from diffcore.errors import DiffcoreError
from diffcore.protocols import Distillation, DistillerBase, Trainable

SECOND = ("auto", "lora", "denoiser")


@dataclass(eq=False)
class VSD(DistillerBase):
    """Variational score distillation (see the module docstring).

    Args:
        guidance_scale, weighting, t_min, t_max, t_end, anneal, grad_clip: as for :class:`~diff_3d.distillers.sds.SDS`
            (ProlificDreamer: guidance 7.5, ``t_max`` 0.98 annealed to 0.5).
        second: ``auto``, ``lora`` or ``denoiser`` (see the module docstring).
        lora_rank, lora_target: the adapters (:func:`diffcore.training.add_lora`; ``all`` attention layers by default).
        lr: the second model's learning rate (AdamW); model_updates: its steps per ``update``.
        camera_embedding: condition the LoRA model on the camera; camera_dropout: the share of its
            training samples without a camera.
        denoiser_width: the residual denoiser's channels; seed: the second model's initialisation.
    """

    guidance_scale: float = 1.0
    weighting: str = "sds"
    t_min: float = 0.02
    t_max: float = 0.98
    t_end: float | None = None
    anneal: str = "linear"
    grad_clip: float | None = None
    second: str = "auto"
    lora_rank: int = 4
    lora_target: str = "all"
    lr: float = 1e-3
    model_updates: int = 1
    camera_embedding: bool = True
    camera_dropout: float = 0.1
    denoiser_width: int = 32
    seed: int = 0

    def __post_init__(self):
        self.levels = NoiseLevels(self.t_min, self.t_max, self.t_end, self.anneal)
        self.weight = weighting(self.weighting)
        check_options(self.guidance_scale, self.grad_clip)
        if self.second not in SECOND:
            raise DiffcoreError(f"unknown second model {self.second!r}; expected one of {', '.join(SECOND)}")
        if not isinstance(self.model_updates, int) or self.model_updates < 1:
            raise DiffcoreError(f"model_updates must be a positive integer, got {self.model_updates!r}")
        if not 0 <= self.camera_dropout < 1:
            raise DiffcoreError(f"camera_dropout must lie in [0, 1), got {self.camera_dropout}")
        self.model = None
        self._prior = None

    def second_model(self, prior):
        """The second model for ``prior``, built on first use (a distiller serves one prior)."""
        if self.model is not None:
            if prior is not self._prior:
                raise DiffcoreError("this VSD distiller already trains a second model for another prior; build one VSD per prior")
            return self.model
        lora = self.second == "lora" or (self.second == "auto" and isinstance(prior, Trainable))
        if lora:
            if not isinstance(prior, Trainable):
                raise DiffcoreError(
                    f"second='lora' needs a prior with a network (diffcore.protocols.Trainable); {type(prior).__name__} has none: use "
                    "second='denoiser'"
                )
            options = {"camera_embedding": self.camera_embedding}
            self.model = LoRAScore(
                prior,
                rank=self.lora_rank,
                target=self.lora_target,
                lr=self.lr,
                camera_dropout=self.camera_dropout,
                seed=self.seed,
                **options,
            )
        else:
            self.model = ResidualDenoiser(prior, width=self.denoiser_width, lr=self.lr, camera_dropout=self.camera_dropout, seed=self.seed)
        self._prior = prior
        return self.model

    def parameters(self) -> list[torch.Tensor]:
        return [] if self.model is None else list(self.model.params)

    def loss(self, prior, images, cond, *, step, total_steps, generator, camera=None) -> Distillation:
        model = self.second_model(prior)
        z = to_prior_space(prior, images)
        t = self.levels.draw(prior.schedule, z.shape[0], step, total_steps, generator)
        eps = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
        alpha, sigma = coefficients(prior, t, z)
        with torch.no_grad():
            x_t = alpha * z.detach() + sigma * eps
            with model.pretrained():
                guided = predict_guided(prior, x_t, t, cond, self.guidance_scale)
            pretrained = guided.eps.float()
            if isinstance(model, ResidualDenoiser):  # eps_phi is unguided: the guided prediction serves only at scale 1
                estimate = model.eps(x_t, t, cond, camera, prediction=guided if self.guidance_scale == 1.0 else None)
            else:
                estimate = model.eps(x_t, t, cond, camera).float()
            w = self.weight(alpha, sigma)
            g = clip_gradient(w * (pretrained - estimate), self.grad_clip)
        logs = {"t": t.float(), "weight": w.flatten(), "grad_norm": g.flatten(1).norm(dim=1)}
        return Distillation(surrogate_loss(z, g), logs)

    def update(self, prior, images, cond, *, step, total_steps, generator, camera=None) -> dict:
        model = self.second_model(prior)
        with torch.no_grad():
            z0 = to_prior_space(prior, images.detach())
        losses = [model.train_step(z0, cond, camera, generator) for _ in range(self.model_updates)]
        return {"vsd_model_loss": torch.stack(losses).mean()}
