"""Video priors: diffusers' video UNets read as diffcore priors on videos (N, F, C, H, W).

diffcore's layout for videos is frames before channels, ``(N, F, C, H, W)``, so that a video is
a batch of images once its first two axes are merged. diffusers' video UNets take
``(B, C, F, H, W)``; the adapters here convert inside, and nothing outside them sees that layout.

- :class:`VideoPriorMixin`: what every video prior built on
  :class:`~diffcore.adapters.diffusers_prior.DiffusersUNetPrior` shares: ``sample_shape`` is
  ``(F, C, H, W)`` with a default frame count ``num_frames`` (:meth:`~VideoPriorMixin.with_frames`
  gives the same prior for another count, checked against ``max_frames``), ``x_t`` is checked
  as a video, and ``t`` is a float, a 0-d tensor, one time per video (N,) or, where the network
  takes it (``per_frame_time``), one time per frame (N, F).
- :class:`VideoLatent`: a 2-D image autoencoder applied to every frame, ``chunk`` frames at a
  time, so that a long video never passes through the VAE in one batch.
- :class:`VideoDiffusionPrior`: a latent, text-conditional video prior from a
  ``UNet3DConditionModel`` (ModelScope text-to-video, zeroscope) or a ``UNetMotionModel``
  (AnimateDiff: an image UNet with motion modules), with the VAE, text encoder and tokenizer of
  its pipeline. Both networks broadcast one time per video over the frames, so a per-frame time
  is refused. ``UNetMotionModel``'s motion modules carry positional embeddings for
  ``motion_max_seq_length`` frames, its ``max_frames``.
- :func:`load_video_prior`: a ``TextToVideoSDPipeline`` or ``AnimateDiffPipeline`` folder (or hub
  id) as a prior, guided by a prompt if one is given (registered as ``diffusers-video``).

The video prior of an inflated image UNet (one time per frame allowed) is diff-video's.
"""

from __future__ import annotations

import copy

import torch

from diffcore.adapters.diffusers_prior import _dtype, find_scheduler_config
from diffcore.adapters.stable_diffusion import StableDiffusionPrior, VAELatent
from diffcore.errors import CheckpointError, DiffcoreError, ShapeError
from diffcore.protocols import Cond

VIDEO_UNETS = ("UNet3DConditionModel", "UNetMotionModel")
COMPONENTS = ("unet", "vae", "text_encoder")


def to_channels_first(video: torch.Tensor) -> torch.Tensor:
    """diffcore's (N, F, C, H, W) -> diffusers' (N, C, F, H, W)."""
    return video.permute(0, 2, 1, 3, 4)


def to_frames_first(video: torch.Tensor) -> torch.Tensor:
    """diffusers' (N, C, F, H, W) -> diffcore's (N, F, C, H, W)."""
    return video.permute(0, 2, 1, 3, 4)


def is_video_prior(prior) -> bool:
    """Whether ``prior`` draws videos: its decoded samples are (F, C, H, W)."""
    try:
        return len(tuple(prior.image_shape)) == 4
    except (AttributeError, DiffcoreError, TypeError):
        return False


class VideoLatent:
    """An image autoencoder (a :class:`~diffcore.adapters.stable_diffusion.VAELatent` or any ``Latent``) applied frame by frame.

    ``encode`` maps videos (N, F, 3, H, W) to latents (N, F, c, h, w) and ``decode`` back, each
    passing at most ``chunk`` frames through the image autoencoder at once; the result equals
    coding every frame alone (the VAE treats batch items independently).
    """

    def __init__(self, frames_latent, chunk: int = 8):
        if not isinstance(chunk, int) or chunk < 1:
            raise DiffcoreError(f"chunk must be a positive number of frames, got {chunk!r}")
        self.frames = frames_latent
        self.chunk = chunk

    def image_shape(self, latent_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The video shape (F, C, H, W) that a latent of ``latent_shape`` (F, c, h, w) decodes to."""
        f, *frame = latent_shape
        shape = self.frames.image_shape
        return (f, *(shape(tuple(frame)) if callable(shape) else shape))

    def _per_frame(self, fn, video: torch.Tensor, what: str) -> torch.Tensor:
        if video.ndim != 5:
            raise ShapeError(f"{what} has shape {tuple(video.shape)}; expected videos (N, F, C, H, W)")
        n, f = video.shape[:2]
        flat = video.reshape(n * f, *video.shape[2:])
        out = torch.cat([fn(flat[i : i + self.chunk]) for i in range(0, n * f, self.chunk)])
        return out.reshape(n, f, *out.shape[1:])

    def encode(self, videos: torch.Tensor) -> torch.Tensor:
        return self._per_frame(self.frames.encode, videos, "videos")

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self._per_frame(self.frames.decode, latents, "latents")


class VideoPriorMixin:
    """Video layout, frame counts and per-video or per-frame time for a :class:`DiffusersUNetPrior` subclass.

    A subclass calls :meth:`_video_init` after the image adapter's ``__init__`` and implements
    ``_network(x, timestep, cond, direct)`` on videos (N, F, C, H, W), with ``timestep`` (N,) or,
    if ``per_frame_time``, (N, F).
    """

    per_frame_time = False
    max_frames: int | None = None

    def _video_init(self, num_frames: int, max_frames: int | None = None) -> None:
        self.max_frames = None if max_frames is None else int(max_frames)
        self._check_frames(num_frames)
        self.sample_shape = (int(num_frames), *self.sample_shape[-3:])

    @property
    def num_frames(self) -> int:
        """The frame count of ``sample_shape``: what :func:`diffcore.sample` draws."""
        return self.sample_shape[0]

    def _check_frames(self, count) -> None:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ShapeError(f"a video needs a positive whole number of frames, got {count!r}")
        if self.max_frames is not None and count > self.max_frames:
            raise ShapeError(f"{self.name} takes at most {self.max_frames} frames, got {count}")

    def with_frames(self, count: int):
        """This prior drawing videos of ``count`` frames (the same network, shared, not copied)."""
        self._check_frames(count)
        twin = copy.copy(self)
        twin.sample_shape = (int(count), *self.sample_shape[1:])
        twin._memo = {}
        return twin

    def _check_x(self, x_t):
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != 5 or x_t.shape[2] != self.in_channels:
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ShapeError(
                f"x_t has shape {shape}; expected videos (N, F, {self.in_channels}, H, W), e.g. (N, "
                f"{', '.join(map(str, self.sample_shape))})"
            )
        self._check_frames(int(x_t.shape[1]))

    def _coefficients(self, t, x_t):
        """``alpha``, ``sigma`` and the network's timestep for one time per video, or per frame where allowed."""
        t_shape = tuple(t.shape) if isinstance(t, torch.Tensor) else ()
        if len(t_shape) == 2:
            n, f = x_t.shape[:2]
            if t_shape != (n, f):
                raise DiffcoreError(f"t has shape {t_shape}; expected a scalar, ({n},) or ({n}, {f}) to match x_t")
            if not self.per_frame_time:
                raise DiffcoreError(
                    f"{self.name} takes one time per video (a scalar or ({n},)); its network cannot take one per frame ({n}, {f})"
                )
            alpha, sigma, timestep = super()._coefficients(t.reshape(n * f), x_t.reshape(n * f, *x_t.shape[2:]))
            return alpha.reshape(n, f, 1, 1, 1), sigma.reshape(n, f, 1, 1, 1), timestep.reshape(n, f)
        return super()._coefficients(t, x_t)


def _without_variance(out: torch.Tensor, channels: int) -> torch.Tensor:
    """Drop a learned-variance half of the channels (axis 1 of diffusers' layout)."""
    return out[:, :channels] if out.shape[1] == 2 * channels else out


class VideoDiffusionPrior(VideoPriorMixin, StableDiffusionPrior):
    """A latent text-to-video prior: ``UNet3DConditionModel`` or ``UNetMotionModel`` with its VAE and text encoder.

    Args:
        unet, vae, text_encoder, tokenizer, scheduler_config, device, dtype, clip_x0, owned: as for
            :class:`~diffcore.adapters.stable_diffusion.StableDiffusionPrior`.
        num_frames: the frame count of ``sample_shape`` (the network takes others, up to ``max_frames``).
        chunk: frames per VAE call when encoding or decoding.

    ``sample_shape`` is the latent video (F, c, h, w); ``image_shape`` the decoded one (F, 3, H, W).
    ``predict(x_t, t, cond)`` takes latent videos (N, F, c, h, w) and one time per video.
    """

    name = "diffusers-video"

    def __init__(
        self,
        unet,
        vae,
        text_encoder,
        tokenizer,
        scheduler_config,
        num_frames: int = 16,
        device=None,
        dtype=None,
        clip_x0: bool | None = None,
        owned: bool = False,
        chunk: int = 8,
    ):
        kind = type(unet).__name__
        if kind not in VIDEO_UNETS:
            raise DiffcoreError(f"the video prior takes a {' or '.join(VIDEO_UNETS)}, got {kind}")
        super().__init__(unet, vae, text_encoder, tokenizer, scheduler_config, device=device, dtype=dtype, clip_x0=clip_x0, owned=owned)
        self.latent = VideoLatent(VAELatent(self.vae), chunk=chunk)
        limit = getattr(unet.config, "motion_max_seq_length", None) if kind == "UNetMotionModel" else None
        self._video_init(num_frames, limit)
        self.per_frame_text = kind == "UNetMotionModel"

    def _network(self, x, timestep, cond: Cond | None, direct: bool = False) -> torch.Tensor:
        emb = self._embeddings(cond, x.shape[0]).to(device=x.device, dtype=self.dtype)
        if self.per_frame_text:  # UNetMotionModel takes the text of every frame (its pipeline repeats it)
            emb = emb.repeat_interleave(x.shape[1], dim=0)
        run = self.network if direct else self._run
        out = run(to_channels_first(x), timestep, encoder_hidden_states=emb, return_dict=False)[0]
        return to_frames_first(_without_variance(out, x.shape[2]))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({type(self.network).__name__}, sample_shape={self.sample_shape}, "
            f"prediction_type={self.prediction_type!r})"
        )


def _read_class(folder, subfolder: str) -> str:
    import json

    path = folder / subfolder / "config.json"
    try:
        return json.loads(path.read_text()).get("_class_name", "")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None


def load_video_prior(
    path,
    num_frames: int = 16,
    prompt=None,
    negative_prompt="",
    guidance_scale: float = 9.0,
    device=None,
    dtype=None,
    trust_pickle: bool = False,
    chunk: int = 8,
):
    """Load a text-to-video pipeline folder (or hub id) as a :class:`VideoDiffusionPrior`.

    The folder is what ``TextToVideoSDPipeline`` (``unet/`` a ``UNet3DConditionModel``) or
    ``AnimateDiffPipeline`` (``unet/`` a ``UNetMotionModel``) ``.save_pretrained`` writes, with
    ``vae/``, ``text_encoder/``, ``tokenizer/`` and ``scheduler/``. Without ``prompt`` the bare
    prior comes back; with one, ``Guided(prior, guidance_scale, Cond(text=emb(prompt)),
    Cond(text=emb(negative_prompt)))``. Weights load from safetensors only unless ``trust_pickle=True``.
    """
    from diffcore.weights import check_model_folder, from_pretrained, resolve_model

    folder = resolve_model(path, trust_pickle=trust_pickle)
    missing = [c for c in (*COMPONENTS, "tokenizer") if not (folder / c).is_dir()]
    if missing:
        raise CheckpointError(f"{folder} is not a text-to-video pipeline folder: no {', '.join(missing)} subfolder")
    kind = _read_class(folder, "unet")
    if kind not in VIDEO_UNETS:
        hint = "; use the stable-diffusion prior for images" if kind == "UNet2DConditionModel" else ""
        raise CheckpointError(f"{folder} holds a {kind or 'unknown'} UNet; the video prior needs a {' or '.join(VIDEO_UNETS)}{hint}")
    scheduler_config = find_scheduler_config(folder)
    check_model_folder(folder, trust_pickle=trust_pickle, components=COMPONENTS)
    try:
        import diffusers
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as exc:
        raise ImportError('the video prior needs diffusers and transformers: pip install "diffcore[diffusers]"') from exc
    unet = from_pretrained(getattr(diffusers, kind), folder, subfolder="unet", trust_pickle=trust_pickle)
    vae = from_pretrained(AutoencoderKL, folder, subfolder="vae", trust_pickle=trust_pickle)
    text_encoder = from_pretrained(CLIPTextModel, folder, subfolder="text_encoder", trust_pickle=trust_pickle)
    tokenizer = from_pretrained(CLIPTokenizer, folder, subfolder="tokenizer", weights=False)
    prior = VideoDiffusionPrior(
        unet,
        vae,
        text_encoder,
        tokenizer,
        scheduler_config,
        num_frames=num_frames,
        device=device,
        dtype=_dtype(dtype),
        owned=True,
        chunk=chunk,
    )
    if prompt is None:
        return prior
    from diffcore.priors import Guided

    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt)
    if len(negatives) != len(prompts):
        raise DiffcoreError(f"negative_prompt has {len(negatives)} entries; expected 1 or {len(prompts)} to match prompt")
    return Guided(prior, guidance_scale, Cond(text=prior.encode_text(prompts)), Cond(text=prior.encode_text(negatives)))


__all__ = [
    "VIDEO_UNETS",
    "VideoDiffusionPrior",
    "VideoLatent",
    "VideoPriorMixin",
    "is_video_prior",
    "load_video_prior",
    "to_channels_first",
    "to_frames_first",
]
