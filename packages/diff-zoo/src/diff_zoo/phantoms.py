"""Random-ellipse phantoms, the standard synthetic training set for CT and MRI reconstruction.

Each phantom is a sum of ellipses with constant, additive intensities, built like the
Shepp-Logan head phantom (Shepp & Logan 1974; the "modified" contrasts of Toft 1996): a bright
outer ellipse (the skull, value 1), a slightly smaller one inside it that subtracts 0.8 (the
brain, 0.2 in total), and 3 to 10 small inner ellipses that add or subtract up to a few tenths.
Centres, semi-axes, angles and intensities are random; the result is clipped to [0, 1]. The
"random ellipses" sets of learned CT reconstruction (e.g. Adler & Oktem 2018) are made the same
way. Edges are anti-aliased: each pixel takes the covered fraction of an ellipse, estimated
from the first-order signed distance to its boundary.

Coordinates are those of :func:`skimage.data.shepp_logan_phantom`: the image spans [-1, 1]^2,
with y pointing up.

>>> import torch
>>> x = random_ellipse_phantoms(4, size=32, generator=torch.Generator().manual_seed(0))
>>> tuple(x.shape), bool(x.min() >= 0), bool(x.max() <= 1)
((4, 1, 32, 32), True, True)
"""

from __future__ import annotations

import math

import torch

MAX_INNER = 10  # inner ellipses per phantom, at most
MIN_INNER = 3


def _uniform(n, lo, hi, generator, shape=()):
    return lo + (hi - lo) * torch.rand((n, *shape), generator=generator, dtype=torch.float64)


def ellipse_parameters(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random parameters of ``n`` phantoms, each with ``2 + MAX_INNER`` ellipses.

    Returns tensors of shape (n, E): ``x``, ``y`` (centres), ``a``, ``b`` (semi-axes along the
    ellipse's own axes), ``angle`` (radians, counter-clockwise), ``value`` (additive intensity)
    and ``on`` (whether the ellipse is used; the unused inner ones have value 0).
    """
    g = generator
    # the head: skull and brain share a centre, the brain is 90-95% of the skull
    cx, cy = _uniform(n, -0.05, 0.05, g), _uniform(n, -0.05, 0.05, g)
    a0, b0 = _uniform(n, 0.55, 0.78, g), _uniform(n, 0.72, 0.90, g)  # inside the image, with a margin
    th0 = _uniform(n, -0.25, 0.25, g)
    shrink = _uniform(n, 0.90, 0.95, g)
    # inner ellipses: centres uniform in 80% of the brain, log-uniform axes, any angle
    k = torch.randint(MIN_INNER, MAX_INNER + 1, (n,), generator=g)
    r = 0.8 * torch.sqrt(torch.rand((n, MAX_INNER), generator=g, dtype=torch.float64))
    phi = 2 * math.pi * torch.rand((n, MAX_INNER), generator=g, dtype=torch.float64)
    u = r * torch.cos(phi) * (a0 * shrink)[:, None]
    v = r * torch.sin(phi) * (b0 * shrink)[:, None]
    c, s = torch.cos(th0)[:, None], torch.sin(th0)[:, None]
    xi, yi = cx[:, None] + c * u - s * v, cy[:, None] + s * u + c * v
    ai = torch.exp(_uniform(n, math.log(0.03), math.log(0.3), g, (MAX_INNER,)))
    bi = torch.exp(_uniform(n, math.log(0.03), math.log(0.3), g, (MAX_INNER,)))
    thi = _uniform(n, 0.0, math.pi, g, (MAX_INNER,))
    magnitude = _uniform(n, 0.05, 0.35, g, (MAX_INNER,))
    sign = torch.where(torch.rand((n, MAX_INNER), generator=g) < 0.35, -1.0, 1.0).double()
    on = torch.arange(MAX_INNER)[None, :] < k[:, None]
    ones = torch.ones(n, 2, dtype=torch.bool)
    return {
        "x": torch.cat([torch.stack([cx, cx], 1), xi], 1),
        "y": torch.cat([torch.stack([cy, cy], 1), yi], 1),
        "a": torch.cat([torch.stack([a0, a0 * shrink], 1), ai], 1),
        "b": torch.cat([torch.stack([b0, b0 * shrink], 1), bi], 1),
        "angle": torch.cat([torch.stack([th0, th0], 1), thi], 1),
        "value": torch.cat([torch.tensor([[1.0, -0.8]], dtype=torch.float64).expand(n, 2), magnitude * sign * on], 1),
        "on": torch.cat([ones, on], 1),
    }


def render_ellipses(params: dict[str, torch.Tensor], size: int, device=None) -> torch.Tensor:
    """Render ellipse parameters (as from :func:`ellipse_parameters`) to (n, 1, size, size), clipped to [0, 1].

    Rendering runs in float32 on ``device`` (default: the CPU); the parameters are drawn in
    float64 on the CPU, so they do not depend on the device or on the chunking.
    """
    h = 2.0 / size  # pixel size in image coordinates
    centres = (-1 + h * (torch.arange(size, dtype=torch.float64) + 0.5)).float().to(device)
    X = centres[None, None, None, :]
    Y = centres.flip(0)[None, None, :, None]  # row 0 is the top of the image (y points up)
    p = {k: v[:, :, None, None].float().to(device) for k, v in params.items() if k != "on"}
    c, s = torch.cos(p["angle"]), torch.sin(p["angle"])
    dx, dy = X - p["x"], Y - p["y"]
    u, v = c * dx + s * dy, -s * dx + c * dy
    q = torch.sqrt((u / p["a"]) ** 2 + (v / p["b"]) ** 2)
    grad = torch.sqrt((u / p["a"] ** 2) ** 2 + (v / p["b"] ** 2) ** 2) / q.clamp_min(1e-12)
    distance = (q - 1) / grad.clamp_min(1e-12)  # signed distance to the boundary, first order
    coverage = (0.5 - distance / h).clamp(0, 1)
    image = (coverage * p["value"]).sum(1, keepdim=True)
    return image.clamp(0, 1)


def random_ellipse_phantoms(n: int, size: int = 64, *, generator: torch.Generator, device=None, chunk: int = 256) -> torch.Tensor:
    """``n`` random phantoms (n, 1, size, size) in [0, 1], a deterministic function of ``generator``'s state.

    ``generator`` is a CPU generator; ``device`` is where the phantoms are rendered and returned.
    """
    params = ellipse_parameters(n, generator)
    return torch.cat([render_ellipses({k: v[i : i + chunk] for k, v in params.items()}, size, device) for i in range(0, n, chunk)])


def shepp_logan(size: int = 64) -> torch.Tensor:
    """scikit-image's modified Shepp-Logan phantom resized to (1, size, size), in [0, 1]: the held-out test image."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    image = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True, order=1)
    return torch.from_numpy(image).float().clamp(0, 1)[None]
