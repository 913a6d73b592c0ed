"""The second score of variational score distillation: the score of the renders' own distribution.

ProlificDreamer (Wang et al. 2023, sec. 4.1) learns ``eps_phi(x_t, t, y, c)``, the noise prediction
of the distribution of the current renders given camera ``c``, alongside the 3-D parameters. Two
forms:

- :class:`LoRAScore`, for a prior with a network (:class:`diffcore.protocols.Trainable`): LoRA
  adapters on its attention projections (:func:`diffcore.training.add_lora`; turned off for the
  pretrained score with :func:`diffcore.training.lora_disabled`) and a camera embedding added to
  the network's time embedding (ProlificDreamer's "camera as class embedding"), installed with a
  forward hook for the duration of each call only; trained with :func:`diffcore.training.denoising_loss`;
  it starts equal to the pretrained prior, so the first VSD gradients are zero and grow as it learns
  what the renders look like;
- :class:`ResidualDenoiser`, for any other prior (an exact one, a composed one): the prior's own
  clean estimate plus a correction, preconditioned so that at low noise it is the one-sample
  estimate of the renders' clean image and at high noise a small convolutional network of ``x_t``,
  the time and the camera's per-pixel rays supplies it.

Both own their optimiser (AdamW) and step it in ``train_step``.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from diffcore import conversions
from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond
from diffcore.training import add_lora, denoising_loss, draw_times, lora_disabled

CAMERA_FEATURES = 12  # a camera-to-world matrix (3, 4), flattened


def camera_features(camera, n: int, device, dtype=torch.float32) -> torch.Tensor:
    """(N, 12) flattened camera-to-world matrices of a :class:`~diffcore.protocols.Camera`, zeros without one."""
    if camera is None:
        return torch.zeros(n, CAMERA_FEATURES, device=device, dtype=dtype)
    return camera.camera_to_worlds.reshape(len(camera), -1).to(device=device, dtype=dtype).expand(n, -1)


def drop_cameras(features: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Zero each camera with probability ``rate`` (one uniform draw per sample): the unconditional case is trained too."""
    keep = (torch.rand(features.shape[0], generator=generator) >= rate).to(features)
    return features * keep[:, None]


class CameraEmbedding(torch.nn.Module):
    """A two-layer MLP from the 12 camera numbers to the network's time-embedding width; zero at the start."""

    def __init__(self, width: int, hidden: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(CAMERA_FEATURES, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, width))
        torch.nn.init.zeros_(self.net[-1].weight)
        torch.nn.init.zeros_(self.net[-1].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def _eps_from_output(prior, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    alpha, sigma = (c(t).reshape(shape).to(x_t) for c in (prior.schedule.alpha, prior.schedule.sigma))
    output = output.to(x_t)
    if prior.prediction_type == "epsilon":
        return output
    if prior.prediction_type == "v_prediction":
        return conversions.v_to_eps(x_t, output, alpha, sigma)
    return conversions.x0_to_eps(x_t, output, alpha, sigma)


class LoRAScore:
    """LoRA adapters and a camera embedding on a trainable prior's own network (see the module docstring).

    The adapters are added to the prior's network in place (once: build one VSD per prior object).
    """

    def __init__(self, prior, *, rank: int, target: str, lr: float, camera_embedding: bool, camera_dropout: float, seed: int):
        self.prior = prior
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # peft draws the LoRA A matrices from torch's global generator
            lora = add_lora(prior, rank=rank, target=target)
            network = prior.network
            time_embedding = network.time_embedding if isinstance(getattr(network, "time_embedding", None), torch.nn.Module) else None
            self.embedding = None
            if camera_embedding and time_embedding is not None:
                width = time_embedding.linear_2.out_features
                param = next(network.parameters())
                self.embedding = CameraEmbedding(width).to(device=param.device, dtype=torch.float32)
        self.time_embedding = time_embedding
        self.camera_dropout = float(camera_dropout)
        self.params = [p for _, p in lora] + (list(self.embedding.parameters()) if self.embedding is not None else [])
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.0)

    @contextlib.contextmanager
    def _cameras(self, features: torch.Tensor | None):
        """The camera embedding added to the time embedding's output during the block (a forward hook, removed on exit)."""
        if self.embedding is None or features is None:
            yield
            return

        def add(module, inputs, output):
            return output + self.embedding(features.to(output.device, torch.float32)).to(output.dtype)

        handle = self.time_embedding.register_forward_hook(add)
        try:
            yield
        finally:
            handle.remove()

    def _cond(self, cond: Cond | None) -> Cond | None:
        return cond if cond is not None and cond.given() else self.prior.null_cond

    def pretrained(self):
        """A block in which the prior is its pretrained self (adapters off)."""
        return lora_disabled(self.prior)

    @torch.no_grad()
    def eps(self, x_t, t, cond, camera) -> torch.Tensor:
        """``eps_phi(x_t, t, y, c)``: the adapted network with the camera embedding (no guidance, as ProlificDreamer)."""
        features = camera_features(camera, x_t.shape[0], x_t.device)
        was = self.prior.network.training
        self.prior.network.eval()
        try:
            with self._cameras(features):
                output = self.prior.network_output(x_t, t, self._cond(cond))
        finally:
            self.prior.network.train(was)
        return _eps_from_output(self.prior, output, x_t, t)

    def train_step(self, z0, cond, camera, generator) -> torch.Tensor:
        """One AdamW step of the adapters and the embedding on the denoising loss of the renders ``z0``."""
        features = drop_cameras(camera_features(camera, z0.shape[0], z0.device), self.camera_dropout, generator)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad(), torch.autocast(z0.device.type, enabled=False), self._cameras(features):
            loss = denoising_loss(self.prior, z0, cond=self._cond(cond), generator=generator)
            loss.backward()
        self.optimizer.step()
        return loss.detach()


def ray_maps(camera, height: int, width: int, n: int, device) -> torch.Tensor:
    """Per-pixel rays of the cameras at the prior's resolution, with Fourier features: (N, 30, H, W); zeros without a camera.

    Origins and unit directions (6 numbers a pixel, as in light field networks, Sitzmann et al. 2021)
    and their sines and cosines at two frequencies, so that a small network can tell views apart.
    """
    if camera is None:
        return torch.zeros(n, RAY_FEATURES, height, width, device=device)
    from diff_3d.cameras import camera_rays, with_size

    origins, directions = camera_rays(with_size(camera, width, height))
    rays = torch.cat([origins, directions], dim=-1).to(device=device, dtype=torch.float32)  # (N, H, W, 6)
    waves = [f(k * rays) for k in (1.0, 3.0) for f in (torch.sin, torch.cos)]
    return torch.cat([rays, *waves], dim=-1).permute(0, 3, 1, 2).expand(n, -1, -1, -1)


RAY_FEATURES = 30


class ResidualDenoiser(torch.nn.Module):
    """A correction ``rho`` of the prior's clean estimate, learnt on the renders: ``x0_phi = x0_prior + rho``.

    So ``eps_phi = eps_prior - (alpha / sigma) rho`` and VSD's gradient is ``w (alpha / sigma) rho``. The
    target of ``rho`` is ``E[render | x_t, c] - x0_prior(x_t)``. It is preconditioned as in Karras et al.
    (2022, EDM, sec. 5) in the variance-exploding noise ``s = sigma / alpha`` of the renders around the
    prior's estimate: ``rho = c_skip(s) (x_t / alpha - x0_prior) + c_out(s) F``, with
    ``c_skip = d^2 / (s^2 + d^2)``, ``c_out = s d / sqrt(s^2 + d^2)`` and ``d = 0.5``, so that at low noise
    the correction is the unbiased one-sample estimate ``x_t / alpha - x0_prior`` and at high noise the
    network ``F`` supplies it; ``F`` is trained on its own target (EDM's loss weight ``1 / c_out^2``).
    ``F`` is a three-layer convolutional network of ``x_t`` (scaled to unit variance), the prior's
    ``x0``, the per-pixel camera rays (:func:`ray_maps`, the camera embedding of a pixel-space model)
    and the time (a per-channel bias); its last layer starts at zero.
    """

    SPREAD = 0.5  # d: the spread of renders around the prior's estimate that the preconditioning assumes

    def __init__(self, prior, *, width: int, lr: float, camera_dropout: float, seed: int):
        super().__init__()
        if int(width) < 1:
            raise DiffcoreError(f"the denoiser's width must be positive, got {width}")
        channels, self.height, self.width = prior.sample_shape
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.SiLU(), torch.nn.Linear(64, width))
            self.inp = torch.nn.Conv2d(2 * channels + RAY_FEATURES, width, 3, padding=1)
            self.mid = torch.nn.Conv2d(width, width, 3, padding=1)
            self.out = torch.nn.Conv2d(width, channels, 1)
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.zeros_(self.out.bias)
        self.to(prior.device)
        self.prior = [prior]  # not a submodule: its parameters are not ours
        self.camera_dropout = float(camera_dropout)
        self.params = list(self.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.0)

    def network(self, x_t, t, alpha, sigma, x0, rays) -> torch.Tensor:
        """``F(x_t, x0_prior, rays, t)``."""
        tt = t.to(x_t.device, torch.float32)[:, None]
        e = self.embed(torch.cat([tt, torch.cos(math.pi / 2 * tt)], dim=1))
        scaled = (x_t / (alpha**2 + sigma**2).sqrt()).float()
        h = F.silu(self.inp(torch.cat([scaled, x0.float(), rays], dim=1)) + e[:, :, None, None])
        return self.out(F.silu(self.mid(h)))

    def preconditioning(self, alpha, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        s2, d = (sigma / alpha) ** 2, self.SPREAD
        return d * d / (s2 + d * d), (s2.sqrt() * d) / (s2 + d * d).sqrt()

    def correction(self, x_t, t, alpha, sigma, x0, rays) -> torch.Tensor:
        skip, out = self.preconditioning(alpha, sigma)
        return skip * (x_t / alpha - x0) + out * self.network(x_t, t, alpha, sigma, x0, rays)

    def pretrained(self):
        return contextlib.nullcontext()

    def _coefficients(self, t, like):
        prior = self.prior[0]
        shape = (-1,) + (1,) * (like.ndim - 1)
        return (c(t).reshape(shape).to(like) for c in (prior.schedule.alpha, prior.schedule.sigma))

    @torch.no_grad()
    def eps(self, x_t, t, cond, camera, prediction=None) -> torch.Tensor:
        """``eps_phi``; ``prediction`` is the prior's own (unguided) one at ``(x_t, t)`` when the caller has it."""
        pred = prediction if prediction is not None else self.prior[0].predict(x_t, t, cond)
        alpha, sigma = self._coefficients(t, x_t.float())
        rho = self.correction(x_t, t, alpha, sigma, pred.x0, ray_maps(camera, self.height, self.width, x_t.shape[0], x_t.device))
        return pred.eps.float() - alpha / sigma * rho

    def train_step(self, z0, cond, camera, generator) -> torch.Tensor:
        """One AdamW step of ``F`` on its target at a random training time (EDM's weighting of ``|x0_phi - z0|^2``), on the
        renders ``z0``."""
        prior = self.prior[0]
        n = z0.shape[0]
        t = draw_times(prior.schedule, n, generator=generator)  # the training grid of a discrete schedule, as the prior learnt
        eps = torch.randn(z0.shape, generator=generator, dtype=z0.dtype).to(z0.device)
        rays = ray_maps(camera, self.height, self.width, n, z0.device)
        keep = (torch.rand(n, generator=generator) >= self.camera_dropout).to(rays)
        alpha, sigma = self._coefficients(t, z0)
        x_t = alpha * z0 + sigma * eps
        with torch.no_grad():
            base = prior.predict(x_t, t, cond).x0.float()
        skip, out = self.preconditioning(alpha, sigma)
        target = (z0.float() - base - skip * (x_t / alpha - base)) / out  # what F must output for rho to be exact
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad(), torch.autocast(z0.device.type, enabled=False):
            loss = F.mse_loss(self.network(x_t, t, alpha, sigma, base, rays * keep[:, None, None, None]), target)
            loss.backward()
        self.optimizer.step()
        return loss.detach()
