"""Feature spaces for the cosine-similarity copy test (Somepalli et al. 2023, "Diffusion Art or
Digital Forgery?"): a generation whose embedding has cosine similarity above a threshold with a
training image's is flagged as a replica.

A feature space is any callable ``features(images) -> (N, D)`` on images (N, C, H, W) in [-1, 1];
:func:`feature_space` builds one by name, or passes a callable through, so a user plugs in their
own (``audit(..., features=my_embedding)``).

- ``"pixels"`` (the default, shipped, no weights): each image average-pooled to at most 16x16,
  its mean removed and scaled to unit norm per image. The cosine of two such vectors is the
  Pearson correlation of the two low-resolution images: blind to brightness and contrast
  changes and to fine noise, so a copy with a shifted tone still scores near 1, and cheap
  enough for a million training images.
- ``"zoo-digits"``: the 45 one-vs-one decision values of diff-zoo's digits classifier
  (``diff_zoo.classifier.DigitClassifier``, fitted on zoo digits' training split); 16x16
  one-channel images only; needs ``pip install "diff-safety[zoo]"``.
- ``"vision"``: the pooled embedding of a pretrained vision transformer read through
  ``transformers`` (``AutoModel``: DINOv2, CLIP's vision tower, ViT), from ``path`` (a local
  folder or a hub id; default ``facebook/dinov2-small``). Somepalli et al. found self-supervised
  copy-detection features (SSCD, DINO) the best at finding replicas; this is the better space
  where such weights are installed (in the Hugging Face cache or a folder).

>>> f = feature_space("pixels")
>>> x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
>>> y = 0.5 * x + 0.2                        # the same images with lower contrast and a brighter tone
>>> [round(float(v), 4) for v in (f(x) * f(y)).sum(1)]
[1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from diffcore.errors import DiffcoreError, ShapeError, closest

DEFAULT = "pixels"


def _check_images(images) -> torch.Tensor:
    x = torch.as_tensor(images)
    if x.ndim != 4:
        raise ShapeError(f"images have shape {tuple(x.shape)}; a feature space takes (N, C, H, W) in [-1, 1]")
    return x.float()


def pixel_features(images, size: int = 16) -> torch.Tensor:
    """Mean-removed, unit-norm low-resolution pixels (N, C * h * w), ``h, w <= size`` (see the module docstring)."""
    x = _check_images(images)
    h, w = x.shape[-2:]
    if max(h, w) > size:
        x = F.adaptive_avg_pool2d(x, (min(h, size), min(w, size)))
    flat = x.reshape(x.shape[0], -1)
    flat = flat - flat.mean(1, keepdim=True)
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)


def zoo_digits_features() -> Callable[[torch.Tensor], torch.Tensor]:
    """The zoo digits classifier's 45 decision values (fitted once on the zoo's training split)."""
    try:
        from diff_zoo import data as zoo_data
        from diff_zoo.classifier import DigitClassifier
    except ImportError as exc:
        raise ImportError('the "zoo-digits" feature space needs diff-zoo: pip install "diff-safety[zoo]"') from exc
    classifier = DigitClassifier.fit(zoo_data.digits().train)

    def features(images) -> torch.Tensor:
        return torch.from_numpy(classifier.features(_check_images(images))).float()

    return features


def vision_features(path: str = "facebook/dinov2-small", *, batch: int = 64, device=None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The pooled output of a ``transformers`` vision model (DINOv2, CLIP vision, ViT) at ``path``.

    Images are resized to the model's input size, mapped from [-1, 1] with the model's own mean and
    std (from its config's processor settings where given, else ImageNet's), and grey images
    are repeated to three channels. The model loads from safetensors only.
    """
    try:
        from transformers import AutoConfig, AutoModel
    except ImportError as exc:
        raise ImportError('the "vision" feature space needs transformers: pip install "diffcore[diffusers]"') from exc
    try:
        config = AutoConfig.from_pretrained(path)
        model = AutoModel.from_pretrained(path, use_safetensors=True)
    except (OSError, ValueError) as exc:  # ValueError: neither a folder nor a valid hub id
        raise DiffcoreError(
            f"cannot load the vision model {path!r} (no such folder, or not in the Hugging Face cache and no network): "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        ) from None
    if hasattr(model, "vision_model"):  # a CLIP-like two-tower model: use its image tower
        model = model.vision_model
        config = getattr(config, "vision_config", config)
    model = model.eval().requires_grad_(False)
    if device is not None:
        model = model.to(device)
    size = getattr(config, "image_size", 224)
    size = size if isinstance(size, int) else int(size[0])
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    if "clip" in type(model).__name__.lower():
        mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).reshape(1, 3, 1, 1)
        std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).reshape(1, 3, 1, 1)

    @torch.no_grad()
    def features(images) -> torch.Tensor:
        x = _check_images(images)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[1] != 3:
            raise ShapeError(f"the vision feature space takes 1- or 3-channel images; got {x.shape[1]} channels")
        out = []
        for part in x.split(batch):
            part = F.interpolate((part + 1) / 2, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            part = ((part - mean) / std).to(next(model.parameters()).device)
            result = model(pixel_values=part)
            pooled = getattr(result, "pooler_output", None)
            if pooled is None:
                pooled = result.last_hidden_state[:, 0]
            out.append(pooled.float().cpu())
        return torch.cat(out)

    return features


SPACES: dict[str, Callable[..., Callable]] = {
    "pixels": lambda **options: lambda images: pixel_features(images, **options),
    "zoo-digits": zoo_digits_features,
    "vision": vision_features,
}


def feature_space(spec="pixels", **options) -> Callable[[torch.Tensor], torch.Tensor]:
    """A feature space by name (``"pixels"``, ``"zoo-digits"``, ``"vision"``, with ``options``), or ``spec`` itself when callable."""
    if callable(spec):
        if options:
            raise DiffcoreError("options go with a feature space name, not with a callable")
        return spec
    if spec not in SPACES:
        hint = closest(str(spec), SPACES)
        raise DiffcoreError(
            f"unknown feature space {spec!r}; known: {', '.join(SPACES)} (or pass a callable images -> (N, D))"
            + (f". Did you mean {hint!r}?" if hint else "")
        )
    try:
        return SPACES[spec](**options)
    except TypeError as exc:
        raise DiffcoreError(f"bad options for feature space {spec!r}: {exc}") from None


def embed(space: Callable, images: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """``space`` applied in batches, checked: (N, D) float32 with finite values."""
    out = []
    for part in torch.as_tensor(images).split(batch):
        f = torch.as_tensor(space(part)).float()
        if f.ndim != 2 or f.shape[0] != part.shape[0]:
            raise ShapeError(f"the feature space returned shape {tuple(f.shape)} for {part.shape[0]} images; expected ({part.shape[0]}, D)")
        out.append(f)
    features = torch.cat(out)
    if not torch.isfinite(features).all():
        raise DiffcoreError("the feature space returned non-finite values")
    return features


__all__ = ["DEFAULT", "SPACES", "embed", "feature_space", "pixel_features", "vision_features", "zoo_digits_features"]
