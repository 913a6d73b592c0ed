"""Test helpers for diffcore and its plugins.

Contract checks that any plugin runs over its components (they raise :class:`AssertionError`
with a message saying what broke):

- :func:`check_schedule`: ``alpha(0) = 1``, ``sigma(0) = 0``, monotone ``alpha``, ``sigma`` and
  log-SNR, decreasing time grids that end at 0 (or at the first training step);
- :func:`check_prior`: shapes and dtypes of ``predict`` at several times (float, 0-d and
  per-sample ``t``), finite outputs, ``x_t = alpha x0 + sigma eps`` where the prior is
  consistent, per-sample ``t`` agreeing with scalar ``t``, rejection of conditioning the prior
  does not accept, determinism, and the latent's encode/decode shapes;
- :func:`check_operator`: a measurement operator's shapes, adjointness, pseudo-inverse
  (``A A^+ A = A``) and, where it has one, its SVD (orthonormal ``V``, ``U``, reconstruction).

Tiny randomly initialised diffusers models, built offline in seconds (these import diffusers
and transformers when called; the contract checks never do):

- :func:`save_tiny_unet_pipeline`: a ``UNet2DModel`` + ``DDIMScheduler`` saved as a
  ``DDIMPipeline`` folder;
- :func:`save_tiny_stable_diffusion`: a complete ``StableDiffusionPipeline`` folder whose CLIP
  tokenizer is built from an in-memory vocabulary.

A plugin's test of its prior, for example:

>>> import diffcore
>>> from diffcore.testing import check_prior
>>> check_prior(diffcore.create("prior", "gmm", means=[[-2.0, 0.0], [2.0, 1.0]]))
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import fields
from pathlib import Path

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond, check_cond, check_prior_attributes

__all__ = [
    "check_operator",
    "check_prior",
    "check_schedule",
    "save_tiny_stable_diffusion",
    "save_tiny_unet_pipeline",
    "tiny_clip_tokenizer",
    "tiny_latent_unet_and_vae",
    "watch_reads",
]


# -- contract checks -----------------------------------------------------------------------
def _expect(ok, message: str) -> None:
    if not bool(ok):
        raise AssertionError(message)


def check_schedule(schedule, *, steps=(1, 2, 10, 50)) -> None:
    """Check the :class:`~diffcore.protocols.Schedule` contract.

    ``alpha(0) = 1`` and ``sigma(0) = 0``; on a fine grid of [0, 1] ``alpha`` does not grow,
    ``sigma`` does not shrink and the log-SNR ``log(alpha / sigma)`` falls; a 0-d time gives
    0-d coefficients; ``timesteps(k)`` has ``k + 1`` decreasing times in [0, 1] ending at 0
    (or, for a discrete schedule without ``final_alpha_one``, at the first training step
    ``1 / T``), and a discrete schedule's ``model_time`` on the grid is an integer step.

    >>> from diffcore.schedules import DiscreteSchedule, EDMSchedule
    >>> check_schedule(DiscreteSchedule.cosine(1000))
    >>> check_schedule(EDMSchedule())
    """
    name = type(schedule).__name__
    t = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    a, s = schedule.alpha(t), schedule.sigma(t)
    _expect(
        a.shape == t.shape and s.shape == t.shape,
        f"{name}: alpha/sigma of a (1001,) time tensor have shapes {tuple(a.shape)}, {tuple(s.shape)}",
    )
    _expect(abs(float(a[0]) - 1) <= 1e-6, f"{name}: alpha(0) = {float(a[0])}; expected 1")
    _expect(abs(float(s[0])) <= 1e-6, f"{name}: sigma(0) = {float(s[0])}; expected 0")
    _expect(torch.isfinite(a).all() and torch.isfinite(s).all(), f"{name}: alpha or sigma is not finite on [0, 1]")
    _expect((a[:-1] > 0).all(), f"{name}: alpha must be positive on [0, 1)")
    _expect((s[1:] > 0).all(), f"{name}: sigma must be positive on (0, 1]")
    grows = a.diff() > 1e-12 * a[1:].abs().clamp_min(1)
    _expect(not grows.any(), f"{name}: alpha(t) grows at t = {float(t[1:][grows][0]) if grows.any() else 0:.4f}; it must not increase")
    shrinks = s.diff() < -1e-12 * s[1:].abs().clamp_min(1)
    _expect(
        not shrinks.any(), f"{name}: sigma(t) shrinks at t = {float(t[1:][shrinks][0]) if shrinks.any() else 0:.4f}; it must not decrease"
    )
    lam = torch.log(a[1:]) - torch.log(s[1:])
    _expect((lam.diff() <= 1e-9).all(), f"{name}: log-SNR log(alpha/sigma) must fall with t")
    inner = t[1:]
    log_snr = schedule.log_snr(inner)
    _expect(torch.allclose(log_snr, lam, rtol=1e-6, atol=1e-6), f"{name}: log_snr(t) differs from log(alpha(t) / sigma(t))")
    std = schedule.init_std(inner)
    _expect(torch.isfinite(std).all() and (std > 0).all(), f"{name}: init_std(t) must be finite and positive on (0, 1]")
    _expect(torch.allclose(std, torch.sqrt(a[1:] ** 2 + s[1:] ** 2), rtol=1e-5), f"{name}: init_std(t) must be sqrt(alpha^2 + sigma^2)")
    half = torch.tensor(0.5, dtype=torch.float64)
    _expect(schedule.alpha(half).ndim == 0 and schedule.sigma(half).ndim == 0, f"{name}: alpha/sigma of a 0-d time must be 0-d")
    T = getattr(schedule, "num_train_timesteps", None)
    for k in steps:
        if T is not None and k > T:
            continue
        ts = schedule.timesteps(k)
        _expect(
            isinstance(ts, torch.Tensor) and ts.shape == (k + 1,),
            f"{name}: timesteps({k}) has shape {tuple(getattr(ts, 'shape', ()))}; expected ({k + 1},)",
        )
        _expect(ts.is_floating_point(), f"{name}: timesteps({k}) must be floating point")
        _expect(((ts >= 0) & (ts <= 1)).all(), f"{name}: timesteps({k}) leaves [0, 1]: {ts.tolist()}")
        _expect((ts.diff() < 0).all(), f"{name}: timesteps({k}) must decrease strictly: {ts.tolist()}")
        last = float(ts[-1])
        first_step = T is not None and not getattr(schedule, "final_alpha_one", True) and math.isclose(last, 1.0 / T)
        _expect(last == 0.0 or first_step, f"{name}: timesteps({k}) ends at {last}; expected 0" + (f" or 1/T = {1.0 / T}" if T else ""))
        if T is not None and hasattr(schedule, "model_time"):
            m = schedule.model_time(ts[:-1])
            _expect(
                ((m - m.round()).abs() < 1e-6).all() and (m >= 0).all() and (m <= T - 1).all(),
                f"{name}: model_time(timesteps({k})) must be integer steps in [0, {T - 1}], got {m.tolist()}",
            )


def _dummy(field: str, n: int, device) -> object:
    """A value for a Cond field that a prior which does not accept it must refuse."""
    return {
        "text": "a photograph of an astronaut riding a horse",
        "labels": torch.zeros(n, dtype=torch.long, device=device),
        "camera": torch.eye(4, device=device).expand(n, 4, 4),
        "image": torch.zeros(n, 3, 8, 8, device=device),
    }.get(field, torch.zeros(n, device=device))


def _check_prediction(prior, pred, x, t, label: str, consistent: bool, rtol: float, atol: float) -> None:
    for part in ("x0", "eps"):
        value = getattr(pred, part, None)
        _expect(isinstance(value, torch.Tensor), f"{label}: prediction has no tensor {part!r}")
        _expect(value.shape == x.shape, f"{label}: {part} has shape {tuple(value.shape)}; expected {tuple(x.shape)} like x_t")
        _expect(value.dtype == x.dtype, f"{label}: {part} has dtype {value.dtype}; expected {x.dtype} like x_t")
        _expect(torch.isfinite(value).all(), f"{label}: {part} is not finite")
    if not consistent:
        return
    t64 = torch.as_tensor(t, dtype=torch.float64).cpu()
    a = prior.schedule.alpha(t64).to(device=x.device, dtype=torch.float64)
    s = prior.schedule.sigma(t64).to(device=x.device, dtype=torch.float64)
    if a.ndim == 1:
        a, s = (c.reshape(-1, *([1] * (x.ndim - 1))) for c in (a, s))
    ax0, seps, xd = a * pred.x0.double(), s * pred.eps.double(), x.double()
    err = (ax0 + seps - xd).abs()
    bound = atol + rtol * (ax0.abs() + seps.abs() + xd.abs())
    worst = float((err / bound).max())
    _expect(
        worst <= 1,
        f"{label}: x_t != alpha x0 + sigma eps (max error {float(err.max()):.3g}, {worst:.3g}x the tolerance); pass consistent=False for "
        "priors that clip x0",
    )


def check_prior(
    prior,
    *,
    n: int = 2,
    generator: torch.Generator | None = None,
    cond: Cond | None = None,
    times=(0.98, 0.6, 0.25, 0.02),
    consistent: bool | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Check the :class:`~diffcore.protocols.Prior` contract on ``n`` random inputs.

    Args:
        prior: the prior under test.
        n: batch size (at least 2, so per-sample times differ).
        generator: for the random ``x_t``; default seed 0.
        cond: conditioning passed to every call (for priors that need one).
        times: the times ``t`` in (0, 1] to predict at.
        consistent: whether ``x_t = alpha x0 + sigma eps`` must hold; default
            ``getattr(prior, "consistent", True)`` (priors that clip x0 set it to False).
        rtol, atol: tolerance of that identity, relative to ``|alpha x0| + |sigma eps| + |x_t|``.

    >>> from diffcore.priors import GaussianMixturePrior
    >>> check_prior(GaussianMixturePrior(means=[[0.0, 1.0, 2.0]]), n=3)
    """
    name = type(prior).__name__
    _expect(n >= 2, "check_prior needs n >= 2")
    shape = getattr(prior, "sample_shape", None)
    _expect(
        isinstance(shape, tuple) and shape and all(isinstance(d, int) and d > 0 for d in shape),
        f"{name}: sample_shape must be a non-empty tuple of positive ints, got {shape!r}",
    )
    accepts = getattr(prior, "accepts", None)
    known = {f.name for f in fields(Cond)}
    _expect(
        isinstance(accepts, frozenset) and accepts <= known,
        f"{name}: accepts must be a frozenset of Cond fields ({', '.join(sorted(known))}), got {accepts!r}",
    )
    _expect(hasattr(prior, "latent"), f"{name}: has no 'latent' attribute (None for pixel priors)")
    try:
        check_prior_attributes(prior)
    except DiffcoreError as exc:
        raise AssertionError(str(exc)) from None
    _expect(
        isinstance(prior.device, torch.device) and isinstance(prior.dtype, torch.dtype),
        f"{name}: device and dtype must be a torch.device and a torch.dtype",
    )
    _expect(prior.class_names is None or isinstance(prior.class_names, tuple), f"{name}: class_names must be None or a tuple")
    _expect(isinstance(prior.image_shape, tuple) and len(prior.image_shape) >= 1, f"{name}: image_shape must be a tuple")
    null = prior.null_cond
    _expect(null is None or isinstance(null, Cond), f"{name}: null_cond must be a Cond or None, got {type(null).__name__}")
    if null is not None:
        check_cond(name, accepts, null)
    check_schedule(prior.schedule)
    if consistent is None:
        consistent = bool(getattr(prior, "consistent", True))
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    device = torch.device(getattr(prior, "device", "cpu"))
    x = torch.randn((n, *shape), generator=g).to(device)
    x_copy = x.clone()

    preds = {}
    for t in times:
        preds[t] = prior.predict(x, float(t), cond)
        _check_prediction(prior, preds[t], x, t, f"{name}.predict(x, t={t})", consistent, rtol, atol)
    t0 = torch.tensor(float(times[0]), dtype=torch.float64)
    pred0 = prior.predict(x, t0, cond)
    _check_prediction(prior, pred0, x, t0, f"{name}.predict(x, 0-d tensor t={float(t0)})", consistent, rtol, atol)
    _expect(
        torch.allclose(pred0.x0, preds[times[0]].x0, rtol=1e-5, atol=1e-6),
        f"{name}: a 0-d tensor t and the same float t give different predictions",
    )

    per_sample = torch.tensor([float(times[i % len(times)]) for i in range(n)], dtype=torch.float64)
    vec = prior.predict(x, per_sample, cond)
    _check_prediction(prior, vec, x, per_sample, f"{name}.predict(x, per-sample t={per_sample.tolist()})", consistent, rtol, atol)
    for i in range(n):
        ref = preds[times[i % len(times)]]
        for part in ("x0", "eps"):
            got, want = getattr(vec, part)[i], getattr(ref, part)[i]
            scale = float(want.abs().max()) + 1e-6
            _expect(
                torch.allclose(got, want, rtol=1e-4, atol=1e-5 * scale),
                f"{name}: per-sample t gives {part}[{i}] different from scalar t={float(per_sample[i])} (max diff "
                f"{float((got - want).abs().max()):.3g})",
            )

    if null is not None and null.given() and cond is None:
        unc = prior.predict(x, float(times[1]), null)
        _check_prediction(prior, unc, x, times[1], f"{name}.predict(x, t, null_cond)", consistent, rtol, atol)
    start = prior.sample_marginal(n, float(times[0]), generator=g, dtype=torch.float32, device=device)
    _expect(
        start is None or (isinstance(start, torch.Tensor) and tuple(start.shape) == (n, *shape)),
        f"{name}: sample_marginal must return None or ({n}, *sample_shape)",
    )

    again = prior.predict(x, float(times[1]), cond)
    for part in ("x0", "eps"):
        first = getattr(preds[times[1]], part)
        _expect(
            torch.allclose(getattr(again, part), first, rtol=1e-6, atol=1e-6),
            f"{name}: predict is not deterministic ({part} differs between two identical calls)",
        )
    _expect(torch.equal(x, x_copy), f"{name}: predict modified x_t in place")

    for field_name in sorted(known - accepts):
        bad = Cond(**{field_name: _dummy(field_name, n, device)})
        try:
            prior.predict(x, float(times[1]), bad)
        except DiffcoreError:
            continue
        except Exception as exc:  # noqa: BLE001 - report what was raised instead
            raise AssertionError(
                f"{name}: unaccepted cond.{field_name} raised {type(exc).__name__} ({exc}); expected a DiffcoreError"
            ) from exc
        raise AssertionError(f"{name}: accepted cond.{field_name} although accepts={sorted(accepts)}")

    latent = prior.latent
    if latent is not None:
        with torch.no_grad():
            images = latent.decode(x)
            _expect(images.ndim >= 2 and images.shape[0] == n, f"{name}: latent.decode gave shape {tuple(images.shape)} for {n} latents")
            _expect(
                torch.isfinite(images).all() and images.abs().max() <= 1 + 1e-5, f"{name}: latent.decode must give finite images in [-1, 1]"
            )
            back = latent.encode(images)
            _expect(back.shape == x.shape, f"{name}: latent.encode gave shape {tuple(back.shape)}; expected {tuple(x.shape)}")
            _expect(torch.isfinite(back).all(), f"{name}: latent.encode is not finite")


# -- tiny diffusers models -----------------------------------------------------------------
def _need_diffusers():
    try:
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ImportError('diffcore.testing.save_tiny_* needs diffusers and transformers: pip install "diffcore[diffusers]"') from exc


def save_tiny_unet_pipeline(
    folder,
    *,
    prediction_type: str = "epsilon",
    clip_sample: bool = True,
    sample_size: int = 8,
    channels: int = 3,
    seed: int = 0,
    block_out_channels=(16, 32),
    scheduler_options: dict | None = None,
) -> Path:
    """Save a tiny random ``UNet2DModel`` + ``DDIMScheduler`` as a ``DDIMPipeline`` folder.

    The UNet has two resolution levels (the second with self-attention) and one layer per block;
    weights are drawn from ``seed`` without touching the global random state and saved as
    safetensors. ``scheduler_options`` are passed on to ``DDIMScheduler`` (e.g.
    ``timestep_spacing``, ``set_alpha_to_one``). Returns the folder.
    """
    _need_diffusers()
    from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel

    groups = math.gcd(*block_out_channels, 8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DModel(
            sample_size=sample_size,
            in_channels=channels,
            out_channels=channels,
            layers_per_block=1,
            block_out_channels=tuple(block_out_channels),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=groups,
            attention_head_dim=8,
        )
    options = {"num_train_timesteps": 1000, "beta_schedule": "linear", **(scheduler_options or {})}
    scheduler = DDIMScheduler(clip_sample=clip_sample, prediction_type=prediction_type, **options)
    folder = Path(folder)
    DDIMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder, safe_serialization=True)
    return folder


def _bytes_to_unicode() -> list[str]:
    """GPT-2's reversible byte -> printable character map, the base alphabet of CLIP's BPE."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]


_MERGES = ["a n", "t h", "th e</w>", "o n</w>", "a t</w>", "c at</w>", "d o", "do g</w>", "p h", "o t", "ph ot", "phot o</w>", "an d</w>"]


def tiny_clip_tokenizer(model_max_length: int = 77):
    """A CLIP tokenizer over bytes plus a few merges, built from vocab/merges files in a temp dir."""
    _need_diffusers()
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in _MERGES] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f)
        with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "\n".join(_MERGES) + "\n")
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=model_max_length)


def watch_reads(prior, counter):
    """``prior`` wrapped to check a loop for host reads with ``counter`` (a :class:`diffcore.devices.HostReads`): it counts
    its ``calls``, keeps the prior's own reads out of the count, and ``loop_reads`` are the reads from its first call on
    (what a sampler or solver does before its loop is set-up and allowed)."""
    from diffcore.priors.wrapper import PriorWrapper

    class Watched(PriorWrapper):
        def __init__(self, prior):
            super().__init__(prior)
            self.calls, self.first = 0, None

        def predict(self, x_t, t, cond=None):
            if self.first is None:
                self.first = len(counter.reads)
            self.calls += 1
            with counter.paused():
                return self.prior.predict(x_t, t, cond)

        @property
        def loop_reads(self):
            return counter.reads[self.first :]

    return Watched(prior)


def tiny_latent_unet_and_vae(in_channels: int = 4):
    """The random ``UNet2DConditionModel`` (4 x 8 x 8 latents, ``in_channels`` inputs, cross-attention to 16-d tokens)
    and ``AutoencoderKL`` (one downsampling, 16 x 16 images) of the tiny latent pipelines, drawn from torch's current
    random state (the caller seeds it)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
    )
    return unet, vae


def save_tiny_stable_diffusion(folder, *, seed: int = 0) -> Path:
    """Save a tiny random Stable Diffusion set as a ``StableDiffusionPipeline`` folder.

    Components: ``UNet2DConditionModel`` on 4 x 8 x 8 latents with cross-attention to 16-d text
    embeddings, an ``AutoencoderKL`` with one downsampling (16 x 16 images), a 2-layer
    ``CLIPTextModel`` and a :func:`tiny_clip_tokenizer` (``model_max_length = 77``), and
    Stable Diffusion v1's ``DDIMScheduler`` settings (scaled_linear betas, ``steps_offset=1``,
    ``set_alpha_to_one=False``, no clipping). No safety checker. Returns the folder.
    """
    _need_diffusers()
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet, vae = tiny_latent_unet_and_vae(in_channels=4)
        text_config = CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            projection_dim=16,
        )
        text_encoder = CLIPTextModel(text_config)
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


# -- operator contract ---------------------------------------------------------------------
def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest per-item ``||a - b|| / ||b||`` (with a floor on ``||b||``)."""
    diff = (a - b).reshape(a.shape[0], -1).norm(dim=1)
    scale = b.reshape(b.shape[0], -1).norm(dim=1).clamp_min(1e-12)
    return float((diff / scale).max())


def check_operator(
    op,
    *,
    generator: torch.Generator | None = None,
    batch: int = 2,
    dtype: torch.dtype = torch.float64,
    rtol: float = 1e-6,
    pinv_rtol: float | None = None,
) -> None:
    """Check the measurement-operator contract of diff-inverse's ``LinearOperator`` (duck-typed).

    On ``batch`` random ``x`` of ``op.x_shape`` and ``y`` of ``op.y_shape`` (in ``dtype``):
    ``A(x)`` has shape ``(N, *y_shape)``, keeps the dtype, and is batch-consistent; a wrong
    ``x`` shape raises a ``DiffcoreError``; ``measure`` with a seeded generator is
    deterministic. For linear operators (``op.linear``): ``A`` is linear; adjointness
    ``<A x, y> = <x, A^T y>`` within ``rtol * ||A x|| ||y||`` (plus ``||x|| ||A^T y||``);
    ``A A^+ A x = A x`` within ``pinv_rtol`` (default ``rtol``) of ``||A x||``. With
    ``op.has_svd``: ``singulars()`` is 1-D, finite, positive, no longer than ``n`` or ``m``;
    ``Vt(x)`` has shape ``(N, n)`` and keeps the norm; ``V(Vt(x)) = x`` and ``Vt(V(c)) = c``;
    ``Ut(U(c)) = c`` for ``c`` of shape ``(N, k)``; ``A(x) = U(singulars() * Vt(x)[:, :k])``.
    Nonlinear operators only get the shape, determinism and wrong-shape checks.

    >>> import torch
    >>> class Scale:  # the smallest operator with an SVD: y = 2 x
    ...     linear, has_svd, x_shape, y_shape, sigma_y = True, True, (3,), (3,), 0.0
    ...     def A(self, x): return self._shape(x) * 2
    ...     def A_adjoint(self, y): return y * 2
    ...     def A_pinv(self, y): return y / 2
    ...     def measure(self, x, generator=None): return self.A(x)
    ...     def singulars(self): return torch.full((3,), 2.0, dtype=torch.float64)
    ...     def V(self, c): return c
    ...     Vt = U = Ut = V
    ...     def _shape(self, x):
    ...         from diffcore.errors import ShapeError
    ...         if tuple(x.shape[1:]) != (3,): raise ShapeError("bad x")
    ...         return x
    >>> check_operator(Scale())
    """
    name = type(op).__name__
    _expect(batch >= 1, "check_operator needs batch >= 1")
    pinv_rtol = rtol if pinv_rtol is None else pinv_rtol
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    x_shape, y_shape = tuple(op.x_shape), tuple(op.y_shape)
    n, m = math.prod(x_shape), math.prod(y_shape)
    x = torch.randn((batch, *x_shape), generator=g, dtype=dtype)
    x2 = torch.randn((batch, *x_shape), generator=g, dtype=dtype)
    y = torch.randn((batch, *y_shape), generator=g, dtype=dtype)

    ax = op.A(x)
    _expect(tuple(ax.shape) == (batch, *y_shape), f"{name}: A(x) has shape {tuple(ax.shape)}; expected {(batch, *y_shape)}")
    _expect(ax.dtype == dtype, f"{name}: A(x) has dtype {ax.dtype}; expected {dtype} like x")
    _expect(torch.isfinite(ax).all(), f"{name}: A(x) is not finite")
    first = op.A(x[:1])
    _expect(
        _rel(first, ax[:1]) <= max(rtol, 1e-5) or float(ax[:1].abs().max()) == 0,
        f"{name}: A(x[:1]) differs from A(x)[:1]: items of a batch must not interact",
    )
    bad = torch.zeros((batch, *x_shape[:-1], x_shape[-1] + 1), dtype=dtype)
    try:
        op.A(bad)
    except DiffcoreError:
        pass
    except Exception as exc:  # noqa: BLE001 - report what was raised instead
        raise AssertionError(
            f"{name}: A on a wrongly shaped x {tuple(bad.shape)} raised {type(exc).__name__} ({exc}); expected a DiffcoreError (ShapeError)"
        ) from exc
    else:
        raise AssertionError(f"{name}: A accepted x of shape {tuple(bad.shape)}; expected a ShapeError naming {x_shape}")
    _expect(
        getattr(op, "sigma_y", None) is not None and op.sigma_y >= 0, f"{name}: sigma_y must be >= 0, got {getattr(op, 'sigma_y', None)!r}"
    )
    y1 = op.measure(x, generator=torch.Generator().manual_seed(1))
    y2 = op.measure(x, generator=torch.Generator().manual_seed(1))
    _expect(
        tuple(y1.shape) == (batch, *y_shape) and torch.equal(y1, y2),
        f"{name}: measure with the same seeded generator must give the same y of shape {(batch, *y_shape)}",
    )
    if not getattr(op, "linear", False):
        return

    lin = op.A(2 * x - 3 * x2)
    _expect(
        _rel(lin, 2 * ax - 3 * op.A(x2)) <= max(rtol, 1e-5),
        f"{name}: A is not linear: A(2 x - 3 x2) != 2 A(x) - 3 A(x2) (relative error {_rel(lin, 2 * ax - 3 * op.A(x2)):.3g})",
    )
    aty = op.A_adjoint(y)
    _expect(tuple(aty.shape) == (batch, *x_shape), f"{name}: A_adjoint(y) has shape {tuple(aty.shape)}; expected {(batch, *x_shape)}")
    dims = tuple(range(1, ax.ndim))
    lhs = (ax * y).sum(dims)
    rhs = (x * aty).sum(tuple(range(1, x.ndim)))
    scale = ax.flatten(1).norm(dim=1) * y.flatten(1).norm(dim=1) + x.flatten(1).norm(dim=1) * aty.flatten(1).norm(dim=1)
    err = float(((lhs - rhs).abs() / scale.clamp_min(1e-30)).max())
    _expect(
        err <= rtol, f"{name}: not adjoint: <A x, y> = {lhs.tolist()} but <x, A^T y> = {rhs.tolist()} (relative error {err:.3g} > {rtol:g})"
    )
    pinv = op.A_pinv(ax)
    _expect(tuple(pinv.shape) == (batch, *x_shape), f"{name}: A_pinv(y) has shape {tuple(pinv.shape)}; expected {(batch, *x_shape)}")
    err = _rel(op.A(pinv), ax)
    _expect(err <= pinv_rtol, f"{name}: A A^+ A x != A x (relative error {err:.3g} > {pinv_rtol:g})")
    if not getattr(op, "has_svd", False):
        return

    s = op.singulars()
    k = s.numel()
    _expect(
        s.ndim == 1 and 0 < k <= min(n, m), f"{name}: singulars() has shape {tuple(s.shape)}; expected (k,) with 0 < k <= min(n={n}, m={m})"
    )
    _expect(torch.isfinite(s).all() and (s > 0).all(), f"{name}: singulars must be finite and positive (min {float(s.min()):.3g})")
    c = op.Vt(x)
    _expect(tuple(c.shape) == (batch, n), f"{name}: Vt(x) has shape {tuple(c.shape)}; expected {(batch, n)}")
    norms = c.norm(dim=1) / x.flatten(1).norm(dim=1)
    _expect(
        ((norms - 1).abs() <= max(rtol, 1e-6) * 10).all(),
        f"{name}: Vt must keep the norm (V orthonormal): ||Vt x|| / ||x|| = {norms.tolist()}",
    )
    back = op.V(c)
    _expect(tuple(back.shape) == (batch, *x_shape), f"{name}: V(c) has shape {tuple(back.shape)}; expected {(batch, *x_shape)}")
    _expect(_rel(back, x) <= rtol, f"{name}: V(Vt(x)) != x (relative error {_rel(back, x):.3g})")
    coords = torch.randn((batch, n), generator=g, dtype=dtype)
    _expect(_rel(op.Vt(op.V(coords)), coords) <= rtol, f"{name}: Vt(V(c)) != c (relative error {_rel(op.Vt(op.V(coords)), coords):.3g})")
    ck = torch.randn((batch, k), generator=g, dtype=dtype)
    uc = op.U(ck)
    _expect(tuple(uc.shape) == (batch, *y_shape), f"{name}: U(c) has shape {tuple(uc.shape)}; expected {(batch, *y_shape)}")
    _expect(
        _rel(op.Ut(uc), ck) <= rtol, f"{name}: Ut(U(c)) != c: U must have orthonormal columns (relative error {_rel(op.Ut(uc), ck):.3g})"
    )
    _expect(tuple(op.Ut(y).shape) == (batch, k), f"{name}: Ut(y) has shape {tuple(op.Ut(y).shape)}; expected {(batch, k)}")
    svd = op.U(s.to(c) * c[:, :k])
    _expect(_rel(svd, ax) <= rtol, f"{name}: A(x) != U(singulars() * Vt(x)[:, :k]) (relative error {_rel(svd, ax):.3g})")
