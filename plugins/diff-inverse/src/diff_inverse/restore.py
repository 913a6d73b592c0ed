"""Restoring one image, piece by piece: what ``diffcore inverse solve`` and its job task are made of.

- :func:`read_measurement`: a measurement ``y`` from a file: an image file when ``y`` is an image
  (``(C, H, W)``, C = 1 or 3), a ``.npy`` or ``.safetensors`` file otherwise (or for any y);
- :func:`as_measured`: a given measurement put in the operator's form (inpainting keeps the
  observed pixels only);
- :func:`restore`: one posterior sample per item of y, timed;
- :func:`scores`: PSNR and SSIM of each reconstruction against a ground truth;
- :func:`result_files`: the PNG files and metrics.json of a result;
- :func:`write_folder`: the files into a folder, whole: written to a temporary folder that is then
  swapped in, so an earlier result's files never stay beside the new ones;
- :func:`solve_task`: the job task, one measurement file per item.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from diff_inverse import baselines as classical
from diff_inverse import images
from diffcore.errors import DiffcoreError

ARRAY_SUFFIXES = (".npy", ".safetensors")
METRICS = "PSNR (dB) and SSIM (Gaussian window, sigma 1.5) against the ground truth, data range 2 (images in [-1, 1])"


def image_shaped(shape) -> bool:
    """Whether a measurement of this shape (without the batch) is an image a PNG can hold."""
    return len(shape) == 3 and shape[0] in (1, 3)


def read_measurement(path, y_shape: tuple[int, ...]) -> torch.Tensor:
    """The measurement in file ``path`` as a float32 ``(1, *y_shape)`` tensor.

    ``.npy`` and ``.safetensors`` (one tensor, or one named ``y``) hold any y, of shape ``y_shape`` or
    ``(1, *y_shape)``; an image file (PNG, JPEG, ...) holds an image-shaped y in [-1, 1] of exactly
    its size (a super-resolution measurement is the small image).
    """
    path = Path(path)
    if not path.is_file():
        raise DiffcoreError(f"cannot read measurement {str(path)!r}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        import numpy as np

        try:
            y = torch.from_numpy(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise DiffcoreError(f"cannot read measurement {str(path)!r}: {exc}") from exc
    elif suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise DiffcoreError(f"cannot read measurement {str(path)!r}: {exc}") from exc
        if len(tensors) != 1 and "y" not in tensors:
            raise DiffcoreError(f"measurement {str(path)!r} holds {', '.join(sorted(tensors))}: give one tensor, or name it 'y'")
        y = tensors["y"] if "y" in tensors else next(iter(tensors.values()))
    elif image_shaped(y_shape):
        y = images.read_image(path, tuple(y_shape), measurement=True)
    else:
        raise DiffcoreError(f"the operator's y has shape {tuple(y_shape)}, not an image: give the measurement as .npy or .safetensors")
    if not (y.is_floating_point() or y.dtype in (torch.uint8, torch.int16, torch.int32, torch.int64)):
        raise DiffcoreError(f"measurement {str(path)!r} has dtype {y.dtype}; expected numbers")
    y = y.to(torch.float32)
    if tuple(y.shape) == tuple(y_shape):
        y = y[None]
    if tuple(y.shape) != (1, *y_shape):
        raise DiffcoreError(f"measurement {str(path)!r} has shape {tuple(y.shape)}; the operator's y is {tuple(y_shape)}")
    if not torch.isfinite(y).all():
        raise DiffcoreError(f"measurement {str(path)!r} has non-finite values")
    return y


def as_measured(operator, y: torch.Tensor) -> torch.Tensor:
    """A given ``y`` in the operator's form: for inpainting the missing pixels are dropped (set to 0, as
    ``A`` leaves them), whatever the file holds there; other measurements are taken as they are."""
    from diff_inverse.operators import Inpainting

    return operator.A(y) if isinstance(operator, Inpainting) else y


def restore(prior, operator, y: torch.Tensor, *, solver, steps: int, generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """One posterior sample per item of ``y`` on the prior's device, back on the CPU, and the seconds it took."""
    from diff_inverse.solve import solve

    start = time.perf_counter()
    x = solve(prior, operator, y.to(prior.device), solver=solver, steps=steps, generator=generator)
    return x.detach().cpu(), time.perf_counter() - start


def scores(reconstructions: dict[str, torch.Tensor | None], truth: torch.Tensor | None) -> dict[str, dict | None]:
    """PSNR and SSIM of the first image of each reconstruction against ``truth`` ``(C, H, W)``; None without a truth."""
    out = {}
    for name, image in reconstructions.items():
        ok = truth is not None and image is not None
        out[name] = {"psnr": images.psnr(image[0], truth), "ssim": images.ssim(image[0], truth)} if ok else None
    return out


def result_files(restored: torch.Tensor, y: torch.Tensor, operator, *, truth: torch.Tensor | None, spec: str) -> dict[str, bytes]:
    """``restoration.png``, the measurement (``measurement.png``, or ``measurement_pinv.png``, its
    pseudo-inverse, when y is not an image) and, with a ground truth, ``input.png``."""
    files = {"restoration.png": images.png(restored[0])}
    if truth is not None:
        files["input.png"] = images.png(truth)
    if image_shaped(tuple(y.shape[1:])):
        files["measurement.png"] = images.png(y[0])
        return files
    pinv = classical.pseudo_inverse(operator, y)
    if pinv is None:
        raise DiffcoreError(
            f"cannot draw the measurement of {spec!r}: y has shape {tuple(y.shape[1:])} and the operator has no pseudo-inverse"
        )
    files["measurement_pinv.png"] = images.png(pinv[0])
    return files


RESULT_NAMES = ("restoration.png", "measurement.png", "measurement_pinv.png", "input.png", "metrics.json")


def write_folder(out, files: dict[str, bytes]) -> None:
    """Write ``files`` as the folder ``out``, whole (:func:`diffcore.tour.write_folder`): an existing ``out``
    is replaced only when it is empty or holds nothing but an earlier result (:data:`RESULT_NAMES`)."""
    from diffcore.tour import write_folder as write_whole

    write_whole(out, files, result_names=RESULT_NAMES)


def metrics_json(metrics: dict) -> bytes:
    return (json.dumps(metrics, indent=2) + "\n").encode("utf-8")


def build(kind: str, spec: str, **options):
    """``diffcore.create(kind, spec, **options)``, a bad option the factory cannot take as a DiffcoreError."""
    import diffcore

    try:
        return diffcore.create(kind, spec, **options)
    except DiffcoreError:
        raise
    except (TypeError, ValueError) as exc:
        raise DiffcoreError(f"cannot build {kind} {spec!r}: {type(exc).__name__}: {exc}") from exc


def build_operator(spec: str, shape: tuple[int, int, int], *, sigma_y: float | None = None, mask=None):
    """The operator ``spec`` for images of ``shape``; ``sigma_y`` overrides its noise and ``mask`` (a mask
    image file) is the mask of an inpainting operator."""
    from diffcore.registry import parse_spec

    options = {} if sigma_y is None else {"sigma_y": float(sigma_y)}
    if mask is not None:
        import diffcore
        from diff_inverse.operators import Inpainting

        name, given = parse_spec(spec)
        component = next((c for c in diffcore.available("operator") if name == c.name or name in c.aliases), None)
        if component is None or component.factory is not Inpainting:
            raise DiffcoreError(f"--mask goes with the inpainting operator (inpaint); {spec!r} is another")
        taken = [k for k in ("box", "fraction", "mask") if k in given]
        if taken:
            raise DiffcoreError(f"--mask gives the inpainting mask; {spec!r} sets {', '.join(taken)} too")
        options["mask"] = str(mask)
    return build("operator", spec, x_shape=shape, **options)


def prepared_prior(spec: str, *, device=None, dtype=None):
    """The prior ``spec`` on ``device``/``dtype``, used unconditionally (its null condition), and its image shape."""
    from diffcore.devices import build_prior
    from diffcore.priors import unconditional

    prior = build_prior(spec, device=device, dtype=dtype)
    shape = image_shape(prior)
    if prior.accepts and prior.null_cond is not None:  # a conditional prior used without its condition
        prior = unconditional(prior)
    return prior, shape


def image_shape(prior) -> tuple[int, int, int]:
    shape = tuple(prior.image_shape)
    if not image_shaped(shape):
        raise DiffcoreError(
            f"`diffcore inverse solve` needs an image prior (C, H, W) with C = 1 or 3; this one has samples of shape {shape}"
        )
    return shape


def solve_task(
    prior: str,
    operator: str,
    solver: str = "ddrm",
    steps: int = 20,
    sigma_y: float | None = None,
    mask: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
):
    """Restore each measurement file (an image, .npy or .safetensors): <key>.png and <key>.json

    Each item is one measurement, restored with ``torch.Generator().manual_seed(item.seed)``; the
    outputs are the restoration and its metrics.json-style record (settings and seconds; no scores,
    as there is no ground truth).
    """
    from diffcore.registry import parse_spec

    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise DiffcoreError(f"task 'inverse solve': steps must be a positive integer, got {steps!r}")
    name, solver_options = parse_spec(solver)
    solver_obj = build("solver", name, **solver_options)
    model, shape = prepared_prior(prior, device=device, dtype=dtype)
    op = build_operator(operator, shape, sigma_y=sigma_y, mask=mask)

    def run(item) -> dict[str, bytes]:
        if item.path is None:
            raise DiffcoreError("task 'inverse solve' restores measurement files: give [items] a folder, glob or manifest")
        y = as_measured(op, read_measurement(item.path, op.y_shape))
        restored, seconds = restore(model, op, y, solver=solver_obj, steps=steps, generator=torch.Generator().manual_seed(item.seed))
        record = {
            "settings": {"prior": prior, "operator": operator, "solver": solver, "steps": steps, "sigma_y": op.sigma_y, "seed": item.seed},
            "measurement": item.path.name,
            "seconds": {"solve": round(seconds, 3)},
        }
        return {".png": images.png(restored[0]), ".json": metrics_json(record)}

    return run
