"""CLIP score of an edit: how well its frames match a prompt (Hessel et al. 2021, CLIPScore).

``clip_score(frames, prompt, model)`` is the mean over frames of ``100 * max(cos(E_I(frame),
E_T(prompt)), 0)``, with ``E_I`` and ``E_T`` a CLIP model's projected image and text embeddings
(Radford et al. 2021): the fidelity measure for text-prompted edits, where the zoo's digit
classifier does not apply. ``model`` is a folder holding a transformers ``CLIPModel`` and its
tokenizer (e.g. a downloaded openai/clip-vit-base-patch32), or a ``(CLIPModel, tokenizer)`` pair.
Frames (F, C, H, W) in [-1, 1] are resized (bicubic) to the model's image size, made RGB, and
normalised with CLIP's mean and standard deviation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffcore.errors import DiffcoreError, ShapeError

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def load_clip(model):
    """``(CLIPModel, tokenizer)`` from a folder, or the pair as given."""
    if isinstance(model, tuple):
        return model
    try:
        from transformers import CLIPModel, CLIPTokenizer
    except ImportError as exc:
        raise ImportError("the CLIP score uses transformers: pip install transformers") from exc
    try:
        return CLIPModel.from_pretrained(model).eval(), CLIPTokenizer.from_pretrained(model)
    except OSError as exc:
        raise DiffcoreError(f"no CLIP model and tokenizer in {model!r}: {str(exc).splitlines()[0]}") from exc


def clip_pixels(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Frames (F, C, H, W) in [-1, 1] as CLIP's normalised RGB input (F, 3, size, size)."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] not in (1, 3):
        raise ShapeError(f"frames have shape {tuple(getattr(frames, 'shape', ()))}; expected (F, 1 or 3, H, W)")
    rgb = ((frames.detach().float().clamp(-1, 1) + 1) / 2).expand(-1, 3, -1, -1)
    rgb = F.interpolate(rgb, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return (rgb - torch.tensor(MEAN).reshape(1, 3, 1, 1)) / torch.tensor(STD).reshape(1, 3, 1, 1)


@torch.no_grad()
def clip_score(frames: torch.Tensor, prompt: str, model) -> float:
    """Mean CLIPScore (0-100) of ``frames`` against ``prompt`` (see the module docstring)."""
    clip, tokenizer = load_clip(model)
    device = next(clip.parameters()).device
    pixels = clip_pixels(frames, clip.config.vision_config.image_size).to(device)
    tokens = tokenizer([prompt], padding=True, truncation=True, return_tensors="pt").to(device)
    image = clip.get_image_features(pixel_values=pixels)
    text = clip.get_text_features(**tokens)
    image, text = (getattr(e, "pooler_output", e) for e in (image, text))
    cosine = F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    return float(100 * cosine.clamp_min(0).mean())


__all__ = ["clip_pixels", "clip_score", "load_clip"]
