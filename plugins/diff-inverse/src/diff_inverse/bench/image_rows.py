"""The image benchmark's rows: the operators of each zoo data set, and parsing ``--operators`` and ``--solvers``.

>>> [r.key for r in generic_rows((3, 32, 32))]
['inpaint-box', 'sr-x2', 'deblur', 'denoise', 'colorize']
>>> [r.key for r in ROWS["phantoms"]][:3]
['ct-30', 'ct-30-noiseless', 'mri-random']
>>> split_items(["sr:factor=2,mode='bicubic', deblur", "denoise"])
["sr:factor=2,mode='bicubic'", 'deblur', 'denoise']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diffcore.errors import DiffcoreError, closest

# Every registered solver that restores images from one network call per step or its gradient; the noiseless-only
# ones (ddnm, ilvr, projection) run on the rows with sigma_y = 0
DEFAULT_SOLVERS = ("ddrm", "ddnm+", "pigdm", "dps", "red-diff", "diffpir", "daps", "mcg", "projection", "ddnm", "ilvr")
DEFAULT_SIGMA_Y = 0.05


@dataclass(frozen=True)
class Row:
    """One operator of the table: ``spec`` (options inline) measured with noise ``sigma_y``."""

    key: str
    spec: str
    sigma_y: float
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.key


def _row(key, spec, label, sigma_y=DEFAULT_SIGMA_Y):
    return Row(key, spec, float(sigma_y), label)


# The operators of each zoo data set (by the recipe's data name). Noiseless rows (sigma_y = 0)
# are there for the solvers that assume noiseless y.
ROWS: dict[str, tuple[Row, ...]] = {
    "digits": (
        _row("inpaint-box", "inpaint:box=(4,4,8,8)", "inpainting, 8x8 centre box"),
        _row("inpaint-random", "inpaint:fraction=0.7", "inpainting, 70% of pixels missing"),
        _row("sr-x2", "sr:factor=2", "super-resolution x2 (average)"),
        _row("deblur", "blur:sigma=1.5", "Gaussian deblurring, sigma 1.5 px"),
        _row("denoise", "denoise", "denoising"),
        _row("denoise-0.2", "denoise", "denoising, sigma_y 0.2", 0.2),
        _row("cs", "cs:ratio=0.25", "compressed sensing, 25% of measurements"),
        _row("inpaint-box-noiseless", "inpaint:box=(4,4,8,8)", "inpainting, 8x8 centre box", 0.0),
        _row("sr-x2-noiseless", "sr:factor=2", "super-resolution x2 (average)", 0.0),
        _row("jpeg-10", "jpeg:quality=10", "JPEG, quality 10 (straight-through gradient)", 0.0),
        _row("phase", "phase:oversampling=2", "phase retrieval, oversampling 2", DEFAULT_SIGMA_Y),
    ),
    "patches": (
        _row("inpaint-box", "inpaint:box=(8,8,16,16)", "inpainting, 16x16 centre box"),
        _row("sr-x2", "sr:factor=2", "super-resolution x2 (average)"),
        _row("sr-x4", "sr:factor=4", "super-resolution x4 (average)"),
        _row("deblur", "blur:sigma=1.5", "Gaussian deblurring, sigma 1.5 px"),
        _row("colorize", "colorize", "colorization"),
        _row("denoise", "denoise", "denoising"),
        _row("denoise-0.2", "denoise", "denoising, sigma_y 0.2", 0.2),
        _row("inpaint-box-noiseless", "inpaint:box=(8,8,16,16)", "inpainting, 16x16 centre box", 0.0),
        _row("sr-x4-noiseless", "sr:factor=4", "super-resolution x4 (average)", 0.0),
    ),
    "textures": (
        _row("inpaint-box", "inpaint:box=(8,8,16,16)", "inpainting, 16x16 centre box"),
        _row("sr-x2", "sr:factor=2", "super-resolution x2 (average)"),
        _row("sr-x4", "sr:factor=4", "super-resolution x4 (average)"),
        _row("deblur", "blur:sigma=1.5", "Gaussian deblurring, sigma 1.5 px"),
        _row("denoise", "denoise", "denoising"),
        _row("denoise-0.2", "denoise", "denoising, sigma_y 0.2", 0.2),
        _row("cs", "cs:ratio=0.25", "compressed sensing, 25% of measurements"),
        _row("sr-x4-noiseless", "sr:factor=4", "super-resolution x4 (average)", 0.0),
    ),
    "phantoms": (
        _row("ct-30", "ct:angles=30", "sparse-view CT, 30 views"),
        _row("ct-30-noiseless", "ct:angles=30", "sparse-view CT, 30 views", 0.0),
        _row("mri-random", "mri:mask='random',acceleration=4", "MRI, random lines, acceleration 4"),
        _row("mri-radial", "mri:mask='radial',lines=13", "MRI, 13 radial spokes (26% of k-space)"),
        _row("mri-random-noiseless", "mri:mask='random',acceleration=4", "MRI, random lines, acceleration 4", 0.0),
        _row("denoise", "denoise", "denoising"),
        _row("denoise-0.2", "denoise", "denoising, sigma_y 0.2", 0.2),
        _row("sr-x2", "sr:factor=2", "super-resolution x2 (average)"),
    ),
}


def generic_rows(shape: tuple[int, int, int]) -> tuple[Row, ...]:
    """Operators for an image prior of shape ``(C, H, W)`` without a zoo data set."""
    c, h, w = shape
    rows = [_row("inpaint-box", f"inpaint:box=({h // 4},{w // 4},{h // 2},{w // 2})", "inpainting, centre box")]
    if h % 2 == 0 and w % 2 == 0:
        rows.append(_row("sr-x2", "sr:factor=2", "super-resolution x2 (average)"))
    rows += [_row("deblur", "blur:sigma=1.5", "Gaussian deblurring, sigma 1.5 px"), _row("denoise", "denoise", "denoising")]
    if c == 3:
        rows.append(_row("colorize", "colorize", "colorization"))
    return tuple(rows)


def operator_rows(prior_spec: str, shape: tuple[int, int, int]) -> tuple[Row, ...]:
    """The default operators for ``prior_spec`` (its zoo data set's, else generic ones)."""
    from diff_inverse import zoo

    data = zoo.data_name(prior_spec) if isinstance(prior_spec, str) else None
    return ROWS.get(data) or generic_rows(shape)


def split_items(values: Sequence[str]) -> list[str]:
    """Items given as repeated options and/or comma-separated lists; a ``key=value`` piece after a
    comma continues the spec before it (``sr:factor=2,mode='bicubic'`` is one item)."""
    out: list[str] = []
    for value in values:
        depth, piece = 0, ""
        pieces = []
        for ch in str(value):
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            if depth == 0 and (ch == "," or ch.isspace()):
                pieces.append(piece)
                piece = ""
            else:
                piece += ch
        pieces.append(piece)
        for p in (p.strip() for p in pieces):
            if not p:
                continue
            eq = p.find("=")
            if out and eq > 0 and ":" not in p[:eq] and ("=" in out[-1]):
                out[-1] += "," + p
            else:
                out.append(p)
    return out


def resolve_rows(items: Sequence[str] | None, prior_spec: str, shape, sigma_y: float = DEFAULT_SIGMA_Y) -> list[Row]:
    """Rows from names of the prior's default operators or operator specs (these measured with ``sigma_y``
    unless the spec sets it). Unknown names fail with the known ones."""
    import diffcore
    from diffcore.registry import parse_spec

    defaults = {r.key: r for r in operator_rows(prior_spec, shape)}
    if not items:
        return list(defaults.values())
    registered = {c.name for c in diffcore.available("operator")} | {a for c in diffcore.available("operator") for a in c.aliases}
    rows = []
    for item in items:
        if item in defaults:
            rows.append(defaults[item])
            continue
        name, options = parse_spec(item)
        if name not in registered:
            hint = closest(name, [*defaults, *sorted(registered)])
            raise DiffcoreError(
                f"unknown operator {item!r}: give one of this prior's rows ({', '.join(defaults)}) or an operator spec "
                f"({', '.join(sorted(registered))})" + (f". Did you mean {hint!r}?" if hint else "")
            )
        s = options.get("sigma_y", sigma_y)
        rows.append(Row(item, item, float(s) if isinstance(s, (int, float)) else s, ""))
    keys = [r.key for r in rows]
    if len(set(keys)) != len(keys):
        raise DiffcoreError(f"an operator is given twice: {', '.join(sorted({k for k in keys if keys.count(k) > 1}))}")
    return rows


def build_solvers(items: Sequence[str] | None) -> dict[str, object]:
    """Solver objects by their spec (``ddrm``, ``dps:zeta=1.0``); an unknown name fails with the known ones."""
    out = {}
    for spec in items or DEFAULT_SOLVERS:
        if spec in out:
            raise DiffcoreError(f"solver {spec!r} is given twice")
        out[spec] = build("solver", spec)
    return out


def build(kind, spec, **options):
    import diffcore

    try:
        return diffcore.create(kind, spec, **options)
    except DiffcoreError:
        raise
    except (TypeError, ValueError) as exc:
        raise DiffcoreError(f"cannot build {kind} {spec!r}: {type(exc).__name__}: {exc}") from exc
