"""Zero-1-to-3 as a diffcore prior: a latent novel-view prior conditioned on a reference view and a camera.

Zero-1-to-3 (Liu et al. 2023, sec. 3.2) fine-tunes Stable Diffusion to generate a view of an
object from one reference view and the camera's spherical offset to it. The diffusers layout of
its weights (the community ``Zero1to3StableDiffusionPipeline``, e.g. ``kxic/zero123-xl-diffusers``)
is a folder with ``unet/`` (a ``UNet2DConditionModel`` with ``2 x 4`` input channels), ``vae/``,
``image_encoder/`` (a ``CLIPVisionModelWithProjection``), ``feature_extractor/`` (its
preprocessing), ``cc_projection/`` (one linear layer, ``config.json`` with ``in_channel`` and
``out_channel``, weights ``projection.weight`` and ``projection.bias``) and ``scheduler/``. The
network sees the reference twice:

- concatenated to the noisy latent along the channels: the mode of the VAE posterior of the
  reference, *unscaled* (Zero-1-to-3's ``encode_first_stage(...).mode()``);
- through cross-attention, one token: ``cc_projection([clip_image_embeds, pose])`` where
  ``pose = [d_polar (radians), sin d_azimuth, cos d_azimuth, d_radius]``.

The contract (the view-conditioned priors of diff-3d follow it too):
``accepts = {"image", "camera"}``, ``Cond(image=reference, camera=relative)``, the reference
(N, 3, H, W) in [-1, 1] at the image size the latents decode to (batch 1 broadcasts) and the
camera either a relative pose (N, 3, 4) or (N, 4, 4) (the target's camera-to-world matrix in the
reference camera's frame, :class:`~diffcore.protocols.Camera` convention) converted by
:func:`spherical_offsets`, or the offsets themselves (N, 3): polar and azimuth in degrees and the
radius. A reference of zeros is *no reference*: the token and the concatenated latent are zeros,
the unconditional branch of Zero-1-to-3's classifier-free guidance. ``null_cond`` is that
reference with the identity pose (both fields set, as :class:`~diffcore.priors.Guided` needs), so
``Guided(prior, scale, Cond(image=reference, camera=relative))`` is Zero-1-to-3's guidance.

The CLIP preprocessing is done in torch (differentiable): [-1, 1] to [0, 1], bicubic resize to
the extractor's crop size, then its mean and std. It agrees with ``CLIPImageProcessor`` up to
its 8-bit rescaling and PIL's resampling.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from diffcore.adapters.diffusers_prior import DiffusersUNetPrior, _dtype, find_scheduler_config
from diffcore.adapters.stable_diffusion import VAELatent
from diffcore.errors import CheckpointError, DiffcoreError, ShapeError
from diffcore.protocols import Cond

COMPONENTS = ("unet", "vae", "image_encoder", "cc_projection")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def spherical_offsets(relative) -> torch.Tensor:
    """Zero-1-to-3's camera offsets (N, 3): polar and azimuth (degrees) and radius, from relative poses (N, 3, 4).

    Both cameras are taken to look at one centre with no roll (the x axis horizontal: an orbit
    about the world's up axis, as Zero-1-to-3's renders are). The centre is where the two optical
    axes pass closest, which gives both radii; the up axis is perpendicular to both cameras'
    x axes. Polar angles are measured from the up axis (90 - elevation), the azimuth offset
    counter-clockwise about it, in (-180, 180]. When the azimuths agree (parallel x axes) the
    offset is a pure polar one, the signed angle between the two view directions; exactly
    opposite azimuths (anti-parallel x axes) leave the elevations undetermined (only their sum
    is seen), and the offset is taken as (0, 180, radius).
    """
    rel = torch.as_tensor(relative, dtype=torch.float64)
    if rel.ndim != 3 or tuple(rel.shape[1:]) not in ((3, 4), (4, 4)):
        raise ShapeError(f"relative poses have shape {tuple(rel.shape)}; expected (N, 3, 4) or (N, 4, 4)")
    rot, pos = rel[:, :3, :3], rel[:, :3, 3]
    ez = torch.tensor([0.0, 0.0, 1.0], dtype=rel.dtype).expand_as(pos)
    # the optical axes: -s ez in the reference frame, pos - u z2 for the target (z2 its z axis); -s ez + u z2 = pos at the centre
    z2 = rot[:, :, 2]
    solution = torch.linalg.lstsq(torch.stack([-ez, z2], dim=-1), pos[:, :, None]).solution[:, :, 0]
    s, u = solution[:, 0], solution[:, 1]
    r1, r2 = s.abs(), u.abs()
    centre = -s[:, None] * ez
    v1 = ez  # from the centre to the reference camera
    v2 = pos - centre
    v2 = v2 / v2.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ex = torch.tensor([1.0, 0.0, 0.0], dtype=rel.dtype).expand_as(pos)
    up = torch.linalg.cross(ex, rot[:, :, 0])
    norm = up.norm(dim=-1, keepdim=True)
    aligned = norm[:, 0] < 1e-7
    parallel, opposite = aligned & (rot[:, 0, 0] > 0), aligned & (rot[:, 0, 0] <= 0)
    up = torch.where(parallel[:, None], torch.tensor([0.0, 1.0, 0.0], dtype=rel.dtype).expand_as(up), up / norm.clamp_min(1e-12))
    up = torch.where((up[:, 1] < 0)[:, None], -up, up)  # the camera's y axis points up-ish
    elev1, elev2 = torch.asin((v1 * up).sum(-1).clamp(-1, 1)), torch.asin((v2 * up).sum(-1).clamp(-1, 1))
    h1 = v1 - (v1 * up).sum(-1, keepdim=True) * up
    h2 = v2 - (v2 * up).sum(-1, keepdim=True) * up
    azimuth = torch.atan2((torch.linalg.cross(h1, h2) * up).sum(-1), (h1 * h2).sum(-1))
    # parallel x axes: the azimuths agree; the polar offset is the signed angle between the view directions about the x axis
    tilt = torch.atan2(torch.linalg.cross(v1, v2)[:, 0], (v1 * v2).sum(-1))
    polar = torch.where(parallel, tilt, torch.where(opposite, torch.zeros_like(tilt), elev1 - elev2))
    azimuth = torch.where(parallel, torch.zeros_like(azimuth), torch.where(opposite, torch.full_like(azimuth, math.pi), azimuth))
    return torch.stack([torch.rad2deg(polar), torch.rad2deg(azimuth), r2 - r1], dim=-1).float()


def pose_embedding(offsets: torch.Tensor) -> torch.Tensor:
    """The 4 numbers (N, 4) Zero-1-to-3 joins to the image embedding: ``[d_polar rad, sin d_az, cos d_az, d_radius]``."""
    polar, azimuth = torch.deg2rad(offsets[:, 0]), torch.deg2rad(offsets[:, 1])
    return torch.stack([polar, torch.sin(azimuth), torch.cos(azimuth), offsets[:, 2]], dim=-1)


class Zero123Prior(DiffusersUNetPrior):
    """The Zero-1-to-3 latent prior (see the module docstring).

    Args:
        unet, vae, image_encoder: the pipeline's ``UNet2DConditionModel``, ``AutoencoderKL`` and
            ``CLIPVisionModelWithProjection``; projection: the ``cc_projection`` ``nn.Linear``;
        scheduler_config: the scheduler's config; clip_size, clip_mean, clip_std: the
            feature extractor's crop size and normalisation; device, dtype, owned: as for
            :class:`~diffcore.adapters.diffusers_prior.DiffusersUNetPrior`.
    """

    name = "zero123"

    def __init__(
        self,
        unet,
        vae,
        image_encoder,
        projection,
        scheduler_config,
        *,
        clip_size: int = 224,
        clip_mean=CLIP_MEAN,
        clip_std=CLIP_STD,
        device=None,
        dtype=None,
        owned: bool = False,
    ):
        dtype = _dtype(dtype)
        super().__init__(unet, scheduler_config, device=device, dtype=dtype, clip_x0=False, owned=owned)
        if int(unet.config.in_channels) != 2 * int(unet.config.out_channels):
            raise CheckpointError(
                f"a Zero-1-to-3 UNet takes the noisy latent and the reference latent: in_channels {unet.config.in_channels}, "
                f"expected twice out_channels {unet.config.out_channels}"
            )
        for setting in (device, dtype):
            if setting is not None:
                vae, image_encoder, projection = vae.to(setting), image_encoder.to(setting), projection.to(setting)
        if owned:
            vae, image_encoder = vae.eval().requires_grad_(False), image_encoder.eval().requires_grad_(False)
            projection = projection.eval().requires_grad_(False)
        self.vae, self.image_encoder, self.projection = vae, image_encoder, projection
        self.latent = VAELatent(vae)
        self.in_channels = int(unet.config.out_channels)
        self.sample_shape = (self.in_channels, *self.sample_shape[1:])
        self.clip_size = int(clip_size)
        self.clip_mean = torch.tensor(clip_mean, dtype=torch.float32).reshape(1, 3, 1, 1)
        self.clip_std = torch.tensor(clip_std, dtype=torch.float32).reshape(1, 3, 1, 1)
        self.null_cond = Cond(image=torch.zeros(1, *self.latent.image_shape(self.sample_shape)), camera=torch.eye(4)[None, :3])
        self._cache: tuple | None = None

    def _accepts(self) -> frozenset[str]:
        return frozenset({"image", "camera"})

    # -- the condition ------------------------------------------------------------------
    def clip_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings (N, D) of references in [-1, 1] (the torch preprocessing of the module docstring)."""
        x = (images.float() + 1) / 2
        x = F.interpolate(x, size=(self.clip_size, self.clip_size), mode="bicubic", align_corners=False, antialias=True)
        x = (x - self.clip_mean.to(x.device)) / self.clip_std.to(x.device)
        return self.image_encoder(pixel_values=x.to(self.dtype)).image_embeds

    def reference_latent(self, images: torch.Tensor) -> torch.Tensor:
        """The unscaled mode of the VAE posterior of references in [-1, 1] (N, 4, h, w)."""
        return self.vae.encode(images.to(self.dtype)).latent_dist.mode()

    def _reference(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (id(image), image._version, image.device)
        if self._cache is not None and self._cache[0] == key and self._cache[1] is image:
            return self._cache[2]
        with torch.no_grad():
            value = (self.clip_embedding(image), self.reference_latent(image))
        self._cache = (key, image, value)
        return value

    def offsets(self, camera, n: int) -> torch.Tensor:
        """Spherical offsets (n, 3) from ``cond.camera``: relative poses (N, 3, 4) / (N, 4, 4) or offsets (N, 3)."""
        camera = torch.as_tensor(camera)
        if camera.ndim == 2 and camera.shape[1] == 3:
            offsets = camera.float()
        elif camera.ndim == 3 and tuple(camera.shape[1:]) in ((3, 4), (4, 4)):
            offsets = spherical_offsets(camera)
        else:
            raise ShapeError(
                f"cond.camera has shape {tuple(camera.shape)}; expected relative poses (N, 3, 4) or (N, 4, 4), or offsets (N, 3)"
            )
        if offsets.shape[0] == 1 and n > 1:
            offsets = offsets.expand(n, 3)
        if offsets.shape[0] != n:
            raise ShapeError(f"cond.camera has batch {offsets.shape[0]}; expected 1 or {n} to match x_t")
        return offsets

    def condition(self, cond: Cond | None, n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-attention token (n, 1, D) and the concatenated latent (n, 4, h, w), zeros where there is no reference."""
        dim = int(self.projection.out_features)
        h, w = like.shape[-2:]
        if cond is None or cond.image is None:
            return like.new_zeros(n, 1, dim), like.new_zeros(n, self.in_channels, h, w)
        image = torch.as_tensor(cond.image)
        if image.ndim != 4 or image.shape[1] != 3 or tuple(image.shape[-2:]) != (h * self.latent.factor, w * self.latent.factor):
            raise ShapeError(
                f"cond.image has shape {tuple(image.shape)}; expected references (N, 3, {h * self.latent.factor}, "
                f"{w * self.latent.factor}) in [-1, 1]"
            )
        if image.shape[0] not in (1, n):
            raise ShapeError(f"cond.image has batch {image.shape[0]}; expected 1 or {n} to match x_t")
        present = image.flatten(1).abs().amax(dim=1) > 0
        if bool(present.any()) and cond.camera is None:
            raise DiffcoreError("Zero-1-to-3 needs the camera of each view: cond=Cond(image=reference, camera=relative pose (N, 3, 4))")
        embeds, latents = self._reference(image.to(self.device))
        offsets = self.offsets(cond.camera, n) if cond.camera is not None else torch.zeros(n, 3)
        embeds, latents, present = embeds.expand(n, -1), latents.expand(n, -1, -1, -1), present.to(self.device).expand(n)
        pose = pose_embedding(offsets).to(device=self.device, dtype=embeds.dtype)
        token = self.projection(torch.cat([embeds, pose], dim=-1))[:, None]
        token = torch.where(present[:, None, None], token, torch.zeros_like(token))
        latents = torch.where(present[:, None, None, None], latents, torch.zeros_like(latents))
        return token.to(like.dtype), latents.to(like.dtype)

    def _network(self, x, timestep, cond: Cond | None, direct: bool = False) -> torch.Tensor:
        token, latents = self.condition(cond, x.shape[0], x)
        run = self.network if direct else self._run
        return run(torch.cat([x, latents], dim=1), timestep, encoder_hidden_states=token, return_dict=False)[0]


def _projection(folder: Path, trust_pickle: bool) -> torch.nn.Linear:
    from diffcore.weights import load_state_dict

    where = folder / "cc_projection"
    try:
        config = json.loads((where / "config.json").read_text())
        layer = torch.nn.Linear(int(config["in_channel"]), int(config["out_channel"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read {where / 'config.json'}: {exc}") from None
    files = sorted(where.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{where} has no safetensors weights")
    tensors = load_state_dict(files[0])
    try:
        layer.load_state_dict({"weight": tensors["projection.weight"], "bias": tensors["projection.bias"]})
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{files[0]} is not a cc_projection of {tuple(layer.weight.shape)}: {exc}") from None
    return layer.float()


def load_zero123(path, *, device=None, dtype=None, trust_pickle: bool = False) -> Zero123Prior:
    """Load a Zero-1-to-3 folder in the diffusers layout (or a hub id) as a :class:`Zero123Prior`.

    Weights load from safetensors only unless ``trust_pickle=True``. Guidance is the caller's:
    ``Guided(prior, scale, Cond(image=ref, camera=rel))`` is Zero-1-to-3's.
    """
    from diffcore.weights import check_model_folder, from_pretrained, resolve_model

    folder = resolve_model(path, trust_pickle=trust_pickle)
    missing = [c for c in COMPONENTS if not (folder / c).is_dir()]
    if missing:
        raise CheckpointError(f"{folder} is not a Zero-1-to-3 folder (diffusers layout): no {', '.join(missing)} subfolder")
    scheduler_config = find_scheduler_config(folder)
    check_model_folder(folder, trust_pickle=trust_pickle, components=COMPONENTS)
    try:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPVisionModelWithProjection
    except ImportError as exc:
        raise ImportError('the zero123 prior needs diffusers and transformers: pip install "diffcore[diffusers]"') from exc
    unet = from_pretrained(UNet2DConditionModel, folder, subfolder="unet", trust_pickle=trust_pickle)
    vae = from_pretrained(AutoencoderKL, folder, subfolder="vae", trust_pickle=trust_pickle)
    encoder = from_pretrained(CLIPVisionModelWithProjection, folder, subfolder="image_encoder", trust_pickle=trust_pickle)
    clip = {}
    extractor = folder / "feature_extractor" / "preprocessor_config.json"
    if extractor.is_file():
        try:
            settings = json.loads(extractor.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {extractor}: {exc}") from None
        crop = settings.get("crop_size", 224)
        clip = {
            "clip_size": int(crop["height"] if isinstance(crop, dict) else crop),
            "clip_mean": tuple(settings.get("image_mean", CLIP_MEAN)),
            "clip_std": tuple(settings.get("image_std", CLIP_STD)),
        }
    projection = _projection(folder, trust_pickle)
    return Zero123Prior(unet, vae, encoder, projection, scheduler_config, device=device, dtype=dtype, owned=True, **clip)


def save_tiny_zero123(folder, *, seed: int = 0) -> Path:
    """Save a tiny random Zero-1-to-3 folder in the diffusers layout (for tests and examples); returns the folder.

    ``UNet2DConditionModel`` on 4 x 8 x 8 latents (8 input channels) with cross-attention to
    16-d tokens, an ``AutoencoderKL`` with one downsampling (16 x 16 images), a 2-layer
    ``CLIPVisionModelWithProjection`` (32 x 32 crops, 16-d embeddings), ``cc_projection`` 20 -> 16,
    Stable Diffusion's ``DDIMScheduler`` settings.
    """
    from diffusers import DDIMScheduler
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from diffcore.testing import tiny_latent_unet_and_vae

    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet, vae = tiny_latent_unet_and_vae(in_channels=8)
        vision = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=32,
                patch_size=8,
                projection_dim=16,
            )
        )
        projection = torch.nn.Linear(16 + 4, 16)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    vision.save_pretrained(folder / "image_encoder", safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder / "feature_extractor")
    (folder / "cc_projection").mkdir(parents=True, exist_ok=True)
    (folder / "cc_projection" / "config.json").write_text(
        json.dumps({"_class_name": "CCProjection", "in_channel": 20, "out_channel": 16}, indent=2) + "\n"
    )
    state = {"projection.weight": projection.weight.detach().contiguous(), "projection.bias": projection.bias.detach().contiguous()}
    save_file(state, str(folder / "cc_projection" / "diffusion_pytorch_model.safetensors"))
    DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
    ).save_pretrained(folder / "scheduler")
    index = {
        "_class_name": "Zero1to3StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "cc_projection": ["diffusers_modules.local.pipeline_zero1to3", "CCProjection"],
        "scheduler": ["diffusers", "DDIMScheduler"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder
