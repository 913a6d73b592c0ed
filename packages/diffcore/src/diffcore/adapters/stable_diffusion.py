"""Stable Diffusion as a diffcore prior: a latent, text-conditional denoiser.

:class:`StableDiffusionPrior` reads a ``UNet2DConditionModel`` through its scheduler config
exactly as :class:`~diffcore.adapters.diffusers_prior.DiffusersUNetPrior` reads a pixel UNet,
and adds what Stable Diffusion needs:

- ``accepts = {"text"}``: ``Cond(text=...)`` holds CLIP embeddings (N, L, D) (batch 1 is
  broadcast), or a string / list of strings that the prior encodes with its own tokenizer
  (padded to ``model_max_length``) and text encoder, as ``StableDiffusionPipeline`` does.
  Without a cond the prior is unconditional (the empty prompt).
- ``latent``: a :class:`VAELatent`; samples live in latent space (``sample_shape`` is the
  latent shape) and :func:`diffcore.sample` decodes them to images in [-1, 1].

:func:`load_stable_diffusion` loads a ``StableDiffusionPipeline`` folder (or hub id) and, given a
prompt, wraps the prior in classifier-free guidance
(:class:`~diffcore.priors.Guided`, ``eps = eps_uncond + scale (eps_cond - eps_uncond)``).
"""

from __future__ import annotations

import torch

from diffcore.adapters.diffusers_prior import DiffusersUNetPrior, _dtype, _first, find_scheduler_config
from diffcore.errors import CheckpointError, DiffcoreError
from diffcore.protocols import Cond

COMPONENTS = ("unet", "vae", "text_encoder")


class VAELatent:
    """The autoencoder of a latent prior: images in [-1, 1] <-> scaled latents.

    ``encode`` returns the posterior mean (equal to its mode: the posterior is a diagonal
    Gaussian), shifted by ``shift_factor`` where the VAE has one and scaled by
    ``scaling_factor``, so latents have roughly unit variance as the UNet expects;
    it is deterministic (no sampling) and differentiable. ``decode`` inverts the scaling,
    runs the decoder and clamps to [-1, 1], as the pipeline's post-processing does.
    """

    def __init__(self, vae):
        self.vae = vae
        self.scaling_factor = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)

    @property
    def dtype(self):
        return next(self.vae.parameters()).dtype

    @property
    def factor(self) -> int:
        """How many pixels one latent cell spans along each axis (8 for Stable Diffusion's VAE)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def image_shape(self, latent_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the image a latent of ``latent_shape`` (C, h, w) decodes to."""
        *_, h, w = latent_shape
        return (int(self.vae.config.out_channels), h * self.factor, w * self.factor)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        posterior = self.vae.encode(images.to(self.dtype)).latent_dist
        return ((posterior.mean - self.shift_factor) * self.scaling_factor).to(images.dtype)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents.to(self.dtype) / self.scaling_factor + self.shift_factor
        return self.vae.decode(z, return_dict=False)[0].clamp(-1, 1).to(latents.dtype)


class StableDiffusionPrior(DiffusersUNetPrior):
    """Latent text-to-image prior from Stable Diffusion's components.

    Args:
        unet: ``UNet2DConditionModel``; vae: ``AutoencoderKL``; text_encoder:
            ``CLIPTextModel``; tokenizer: ``CLIPTokenizer``.
        scheduler_config: the pipeline scheduler's config (dict or scheduler).
        device, dtype, clip_x0, owned: as for :class:`DiffusersUNetPrior`; ``owned`` also puts the
            VAE and the text encoder in eval mode with frozen parameters (otherwise they are used as
            they are).

    ``null_cond`` is the empty prompt's embedding, what ``predict`` without a cond uses.
    """

    name = "stable-diffusion"

    def __init__(
        self,
        unet,
        vae,
        text_encoder,
        tokenizer,
        scheduler_config,
        device=None,
        dtype=None,
        clip_x0: bool | None = None,
        owned: bool = False,
    ):
        dtype = _dtype(dtype)
        super().__init__(unet, scheduler_config, device=device, dtype=dtype, clip_x0=clip_x0, owned=owned)
        for setting in (device, dtype):
            if setting is not None:
                vae, text_encoder = vae.to(setting), text_encoder.to(setting)
        if owned:
            vae, text_encoder = vae.eval().requires_grad_(False), text_encoder.eval().requires_grad_(False)
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.latent = VAELatent(self.vae)
        self._empty: torch.Tensor | None = None

    def _accepts(self) -> frozenset[str]:
        return frozenset({"text"})

    @property
    def null_cond(self) -> Cond:
        return Cond(text=self._embeddings(None, 1))

    @torch.no_grad()
    def encode_text(self, text: str | list[str]) -> torch.Tensor:
        """CLIP embeddings (N, L, D) of one prompt or a list of prompts, as the pipeline computes them."""
        if isinstance(text, str):
            text = [text]
        if not isinstance(text, (list, tuple)) or not all(isinstance(s, str) for s in text):
            raise DiffcoreError("text must be a string or a list of strings")
        ids = self.tokenizer(
            list(text), padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        device = next(self.text_encoder.parameters()).device
        return self.text_encoder(ids.to(device))[0]

    def _embeddings(self, cond: Cond | None, n: int) -> torch.Tensor:
        text = None if cond is None else cond.text
        if text is None:
            if self._empty is None:
                self._empty = self.encode_text("")
            text = self._empty
        elif not isinstance(text, torch.Tensor):
            text = self.encode_text(text)
        return _first(text, n, "cond.text", 3)

    def _network(self, x, timestep, cond: Cond | None, direct: bool = False) -> torch.Tensor:
        emb = self._embeddings(cond, x.shape[0]).to(device=x.device, dtype=self.dtype)
        return (self.network if direct else self._run)(x, timestep, encoder_hidden_states=emb, return_dict=False)[0]


def load_stable_diffusion(
    path, prompt=None, negative_prompt="", guidance_scale: float = 7.5, device=None, dtype=None, trust_pickle: bool = False
):
    """Load a Stable Diffusion pipeline folder (or hub id) as a prior.

    Returns the bare :class:`StableDiffusionPrior` when ``prompt`` is None; otherwise
    ``Guided(prior, guidance_scale, Cond(text=emb(prompt)), Cond(text=emb(negative_prompt)))``,
    the classifier-free-guided prior that ``StableDiffusionPipeline`` samples from.
    Weights load from safetensors only unless ``trust_pickle=True``.
    """
    from diffcore.weights import check_model_folder, from_pretrained, resolve_model

    folder = resolve_model(path, trust_pickle=trust_pickle)
    missing = [c for c in (*COMPONENTS, "tokenizer") if not (folder / c).is_dir()]
    if missing:
        raise CheckpointError(f"{folder} is not a Stable Diffusion pipeline folder: no {', '.join(missing)} subfolder")
    scheduler_config = find_scheduler_config(folder)
    check_model_folder(folder, trust_pickle=trust_pickle, components=COMPONENTS)
    try:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as exc:
        raise ImportError('the stable-diffusion prior needs diffusers and transformers: pip install "diffcore[diffusers]"') from exc
    unet = from_pretrained(UNet2DConditionModel, folder, subfolder="unet", trust_pickle=trust_pickle)
    vae = from_pretrained(AutoencoderKL, folder, subfolder="vae", trust_pickle=trust_pickle)
    text_encoder = from_pretrained(CLIPTextModel, folder, subfolder="text_encoder", trust_pickle=trust_pickle)
    tokenizer = from_pretrained(CLIPTokenizer, folder, subfolder="tokenizer", weights=False)
    prior = StableDiffusionPrior(unet, vae, text_encoder, tokenizer, scheduler_config, device=device, dtype=dtype, owned=True)
    if prompt is None:
        return prior
    from diffcore.priors import Guided

    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt)
    if len(negatives) != len(prompts):
        raise DiffcoreError(f"negative_prompt has {len(negatives)} entries; expected 1 or {len(prompts)} to match prompt")
    return Guided(prior, guidance_scale, Cond(text=prior.encode_text(prompts)), Cond(text=prior.encode_text(negatives)))
