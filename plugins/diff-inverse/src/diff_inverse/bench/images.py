"""The image benchmark: PSNR and SSIM of the diffusion solvers next to the pseudo-inverse.

Each operator measures a batch of held-out test images once (one noise draw, ``seed``); every
solver that can take the operator restores the same ``y`` with the same number of network
calls (``steps``) and the same seed; the baseline is the operator's pseudo-inverse
``A_pinv(y)``. Scores are the mean over the images of :func:`diff_inverse.images.psnr` and
:func:`diff_inverse.images.ssim` (images in [-1, 1], data range 2: the same values as on
[0, 1] with data range 1).

The default test set and operators depend on the prior's data (``zoo:digits``,
``zoo:patches``, ``zoo:textures``, ``zoo:phantoms``); any other image prior takes ``images``
and a generic set of operators. Class-conditional priors are used unconditionally (their null
label). :func:`markdown` renders one prior's section; :func:`update_document` puts it into a
document that holds one section per prior, so that runs for several priors build one page.

>>> [r.key for r in generic_rows((3, 32, 32))]
['inpaint-box', 'sr-x2', 'deblur', 'denoise', 'colorize']
>>> [r.key for r in ROWS["phantoms"]][:3]
['ct-30', 'ct-30-noiseless', 'mri-random']
>>> split_items(["sr:factor=2,mode='bicubic', deblur", "denoise"])
["sr:factor=2,mode='bicubic'", 'deblur', 'denoise']
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from diffcore.errors import DiffcoreError, closest

DEFAULT_SOLVERS = ("ddrm", "ddnm+", "pigdm", "dps", "red-diff", "projection")
DEFAULT_SIGMA_Y = 0.05
LOSS = "↓"  # marks a solver that does not beat the pseudo-inverse on a metric
DIGITS = {"psnr": 2, "ssim": 3}  # as printed: a solver beats the baseline when it is better at this precision
TITLE = "# Inverse problems on images: diffusion solvers against the pseudo-inverse"
_BEGIN, _END = "<!-- bench-images begin {key} -->", "<!-- bench-images end {key} -->"
_SECTION = re.compile(r"<!-- bench-images begin (?P<key>\S+) -->\n.*?<!-- bench-images end (?P=key) -->\n?", re.S)


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


# -- priors and test sets --------------------------------------------------------------------
def _zoo_data(prior_spec: str) -> str | None:
    """The data set name of a zoo prior spec (``zoo:digits`` -> ``digits``), or None."""
    from diffcore.registry import parse_spec

    name, _ = parse_spec(prior_spec)
    if not name.startswith("zoo:"):
        return None
    try:
        from diff_zoo.recipes import get_recipe
    except ImportError:
        return None
    return get_recipe(name).data


def operator_rows(prior_spec: str, shape: tuple[int, int, int]) -> tuple[Row, ...]:
    """The default operators for ``prior_spec`` (its zoo data set's, else generic ones)."""
    data = _zoo_data(prior_spec) if isinstance(prior_spec, str) else None
    return ROWS.get(data) or generic_rows(shape)


@dataclass(frozen=True, eq=False)
class HeldOutImages:
    """Test images ``(N, C, H, W)`` in [-1, 1], what they are, and an optional featured image (its index)."""

    images: torch.Tensor
    description: str
    featured: int | None = None
    featured_name: str = ""


def default_test_set(prior_spec: str, n: int, shape: tuple[int, int, int]) -> HeldOutImages:
    """The held-out test images of a zoo prior: ``n`` of them, of the prior's ``shape``."""
    data_name = _zoo_data(prior_spec)
    if data_name is None:
        raise DiffcoreError(f"there is no default test set for prior {prior_spec!r} (only zoo priors have one); pass images")
    from diff_zoo import data

    def check(images):
        if tuple(images.shape[1:]) != tuple(shape):
            raise DiffcoreError(f"the {data_name} test images are {tuple(images.shape[1:])} but the prior takes {tuple(shape)}")
        return images.float()

    if data_name == "digits":
        test = data.build("digits").test
        return HeldOutImages(check(test.images(torch.arange(min(n, len(test))))), f"the first {min(n, len(test))} held-out test digits of scikit-learn's digits, 16x16")
    if data_name == "patches":
        test = data.build("patches", n_train=1).test  # the test crops do not depend on the training set
        return HeldOutImages(check(test.images(torch.arange(min(n, len(test))))), f"the first {min(n, len(test))} 32x32 test crops of the held-out photo ({data.HELD_OUT_PHOTO!r}, scales 1, 1/2, 1/4)")
    if data_name == "textures":
        test = data.build("textures", n_train_per_class=1).test
        index = torch.linspace(0, len(test) - 1, min(n, len(test))).round().long()  # spread over the three textures
        return HeldOutImages(check(test.images(index)), f"{len(index)} 32x32 test crops spread over the held-out strips of brick, grass and gravel")
    if data_name == "phantoms":
        shepp = data.held_out_images("phantoms")["shepp_logan"][None]
        test = data.build("phantoms", n_train=1).test
        rest = test.images(torch.arange(min(n - 1, len(test)))) if n > 1 else shepp[:0]
        images = torch.cat([shepp, rest])
        return HeldOutImages(check(images), f"the Shepp-Logan phantom (scikit-image, 64x64) and the first {len(rest)} held-out random-ellipse test phantoms", 0, "Shepp-Logan")
    raise DiffcoreError(f"there is no default test set for data {data_name!r} of prior {prior_spec!r}; pass images")


def image_shape(prior) -> tuple[int, int, int]:
    from diff_inverse.cli import _image_shape

    return _image_shape(prior)


def unconditional(prior):
    """A conditional prior fixed to its null condition (``diffcore.priors.unconditional``); any other prior as it is."""
    from diffcore.priors import unconditional as fixed

    return fixed(prior) if prior.accepts and prior.null_cond is not None else prior


# -- parsing the selections ----------------------------------------------------------------------
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
        out[spec] = _build("solver", spec)
    return out


def _build(kind, spec, **options):
    import diffcore

    try:
        return diffcore.create(kind, spec, **options)
    except DiffcoreError:
        raise
    except (TypeError, ValueError) as exc:
        raise DiffcoreError(f"cannot build {kind} {spec!r}: {type(exc).__name__}: {exc}") from exc


def not_applicable(name: str, solver, operator) -> str | None:
    """Why solver ``name`` does not take ``operator`` (None when it does): :func:`diff_inverse.solvers.fits`, the rule
    ``solve`` and ``solvers_for`` use, with the noiseless-only solvers (``ddnm``, ``projection``) run on sigma_y = 0 rows only."""
    from diff_inverse.solvers import fits

    return fits(solver, operator)


# -- results ---------------------------------------------------------------------------------------
@dataclass
class Scores:
    """Per-image PSNR (dB) and SSIM, and the seconds the batch took."""

    psnr: list[float]
    ssim: list[float]
    seconds: float = 0.0
    finite: bool = True

    @property
    def mean_psnr(self) -> float:
        return sum(self.psnr) / len(self.psnr)

    @property
    def mean_ssim(self) -> float:
        return sum(self.ssim) / len(self.ssim)


@dataclass
class RowResult:
    row: Row
    operator_name: str
    pinv: Scores | None
    cells: dict[str, Scores | str] = field(default_factory=dict)  # solver -> scores of one sample, or why it did not run
    means: dict[str, Scores] = field(default_factory=dict)  # solver -> scores of the mean of the samples (samples > 1)

    def beats(self, solver: str, metric: str, estimate: str = "sample") -> bool | None:
        """Whether ``solver`` beats the pseudo-inverse on ``metric`` (None: not run or no baseline).

        ``estimate``: ``sample`` (one posterior sample) or ``mean`` (the mean of the samples).
        """
        cell = (self.cells if estimate == "sample" else self.means).get(solver)
        if not isinstance(cell, Scores) or self.pinv is None:
            return None
        return _beats(getattr(cell, f"mean_{metric}"), getattr(self.pinv, f"mean_{metric}"), metric)


def _beats(value: float, base: float, metric: str) -> bool:
    """``value`` better than ``base`` as printed (a tie at the table's precision does not beat; nan never does)."""
    return bool(round(value, DIGITS[metric]) > round(base, DIGITS[metric]))


@dataclass
class Result:
    prior: str
    key: str
    test_set: str
    n: int
    shape: tuple[int, int, int]
    steps: int
    seed: int
    solvers: list[str]
    rows: list[RowResult]
    threads: int
    featured: int | None = None
    featured_name: str = ""
    command: str = ""
    samples: int = 1

    def losses(self, metric: str, estimate: str = "sample") -> list[tuple[str, str]]:
        """(row key, solver) of every cell where a solver does not beat the pseudo-inverse on ``metric``."""
        return [(r.row.key, s) for r in self.rows for s in self.solvers if r.beats(s, metric, estimate) is False]

    def compared(self) -> int:
        return sum(r.beats(s, "psnr") is not None for r in self.rows for s in self.solvers)


def _scores(x: torch.Tensor, ref: torch.Tensor, seconds: float = 0.0) -> Scores:
    from diff_inverse import images

    finite = bool(torch.isfinite(x).all())
    x = x.detach().nan_to_num(0.0, 0.0, 0.0)
    return Scores([images.psnr(a, b) for a, b in zip(x, ref)], [images.ssim(a, b) for a, b in zip(x, ref)], seconds, finite)


def _pinv(operator, y):
    if not getattr(operator, "linear", False):
        return None
    try:
        return operator.A_pinv(y).detach().cpu()
    except (NotImplementedError, DiffcoreError):
        return None


def run(
    prior,
    images: torch.Tensor | None = None,
    operators: Sequence[str] | None = None,
    solvers: Sequence[str] | None = None,
    steps: int = 20,
    seed: int = 0,
    *,
    n: int = 8,
    sigma_y: float = DEFAULT_SIGMA_Y,
    samples: int = 1,
    description: str | None = None,
    progress: Callable[[str, str, Scores | str], None] | None = None,
    device=None,
    dtype=None,
) -> Result:
    """Measure the test images with each operator and restore them with each solver.

    ``prior`` is a prior spec (``zoo:digits``, ``zoo:patches:path=DIR``) or a prior object;
    ``images`` (``(N, C, H, W)`` in [-1, 1]) default to the prior's held-out test set (``n``
    images; zoo priors only). ``operators`` are keys of the prior's default rows or operator specs
    (measured with ``sigma_y`` unless they set it); ``solvers`` are solver specs (default
    :data:`DEFAULT_SOLVERS`). Every solver runs ``steps`` network calls per image with
    ``torch.Generator().manual_seed(seed + 1)``; the measurement noise comes from ``seed``.
    A solver that does not take an operator (SVD, linearity, noiseless-only, or an error it raises
    about the pair) is recorded with the reason instead of scores.

    ``samples > 1`` draws that many posterior samples per image in one batched solve (copies of
    each ``y``) and scores, besides the first sample, their mean: the Monte Carlo estimate of the
    posterior mean, the estimator that minimises the expected squared error and so the one PSNR
    favours (a single posterior sample has twice its expected squared error).

    ``device`` and ``dtype`` (a prior spec only; see :func:`diffcore.devices.build_prior`) choose
    where the network runs; measurements and solves follow the prior's device, scores are computed
    on the CPU, and the seeded generators stay on the CPU.
    """
    from diff_inverse.solve import solve
    from diffcore.registry import parse_spec

    if not isinstance(steps, int) or steps < 1:
        raise DiffcoreError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(samples, int) or samples < 1:
        raise DiffcoreError(f"samples (posterior samples per image) must be an integer >= 1, got {samples!r}")
    if not (isinstance(sigma_y, (int, float)) and math.isfinite(sigma_y) and sigma_y >= 0):
        raise DiffcoreError(f"sigma_y must be a finite number >= 0, got {sigma_y!r}")
    solver_objs = build_solvers(solvers)  # unknown solvers fail before the prior loads
    spec = prior if isinstance(prior, str) else getattr(prior, "name", type(prior).__name__)
    if isinstance(prior, str):
        from diffcore.devices import build_prior

        model = build_prior(prior, device=device, dtype=dtype)
    else:
        model = prior
    shape = image_shape(model)
    rows = resolve_rows(operators, spec, shape, sigma_y)
    featured, featured_name = None, ""
    if images is None:
        if not isinstance(n, int) or n < 1:
            raise DiffcoreError(f"n (test images) must be an integer >= 1, got {n!r}")
        ts = default_test_set(spec, n, shape)
        images, featured, featured_name = ts.images, ts.featured, ts.featured_name
        description = description or ts.description
    images = torch.as_tensor(images, dtype=torch.float32)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(shape) or images.shape[0] < 1:
        raise DiffcoreError(f"images must be (N, {', '.join(map(str, shape))}) for this prior, got {tuple(images.shape)}")
    built = []
    for row in rows:  # every operator is built before any solver runs
        options = {} if "sigma_y" in parse_spec(row.spec)[1] else {"sigma_y": row.sigma_y}
        op = _build("operator", row.spec, x_shape=shape, **options)
        built.append((row if row.sigma_y == op.sigma_y else Row(row.key, row.spec, float(op.sigma_y), row.label), op))
    model = unconditional(model)

    results = []
    for row, op in built:
        y = op.measure(images.to(model.device), torch.Generator().manual_seed(seed))
        base = _pinv(op, y)
        rr = RowResult(row, type(op).__name__, _scores(base, images) if base is not None else None)
        for name, solver in solver_objs.items():
            reason = not_applicable(name, solver, op)
            if reason is None:
                start = time.perf_counter()
                copies = y.repeat_interleave(samples, 0) if samples > 1 else y
                try:
                    x = solve(model, op, copies, solver=solver, steps=steps, generator=torch.Generator().manual_seed(seed + 1))
                except DiffcoreError as exc:  # a pair the solver refuses (e.g. pigdm on noisy y without an SVD)
                    reason = str(exc).split(";")[0]
                else:
                    seconds = time.perf_counter() - start
                    x = x.detach().cpu().reshape(images.shape[0], samples, *images.shape[1:])
                    rr.cells[name] = _scores(x[:, 0], images, seconds)
                    if samples > 1:
                        rr.means[name] = _scores(x.clamp(-1, 1).mean(1), images, seconds)
            if reason is not None:
                rr.cells[name] = reason
            if progress is not None:
                progress(row.key, name, rr.cells[name])
        results.append(rr)
    name, options = parse_spec(spec)
    return Result(
        prior=_public_spec(spec),
        key=name,
        test_set=description or f"{images.shape[0]} given images",
        n=int(images.shape[0]),
        shape=tuple(shape),
        steps=steps,
        seed=seed,
        solvers=list(solver_objs),
        rows=results,
        threads=torch.get_num_threads(),
        featured=featured,
        featured_name=featured_name,
        samples=samples,
    )


def _public_spec(spec: str) -> str:
    """``spec`` without the local folder of ``path=`` (no machine's paths in a published page)."""
    from diffcore.registry import parse_spec

    name, options = parse_spec(spec)
    if not options:
        return spec
    shown = ",".join(f"{k}=DIR" if k == "path" else f"{k}={v!r}" for k, v in options.items())
    return f"{name}:{shown}"


# -- markdown --------------------------------------------------------------------------------------
def _cell(result: Result, rr: RowResult, solver: str, metric: str, index: int | None, estimate: str = "sample") -> str:
    fmt = f".{DIGITS[metric]}f"
    cells = rr.cells if estimate == "sample" else rr.means
    cell = cells.get(solver)
    if not isinstance(cell, Scores):
        return "—"
    value = getattr(cell, f"mean_{metric}") if index is None else getattr(cell, metric)[index]
    base = None if rr.pinv is None else (getattr(rr.pinv, f"mean_{metric}") if index is None else getattr(rr.pinv, metric)[index])
    text = format(value, fmt) + ("" if cell.finite else " (nan)")
    others = [getattr(c, f"mean_{metric}") if index is None else getattr(c, metric)[index] for c in cells.values() if isinstance(c, Scores)]
    if value == max(others):
        text = f"**{text}**"
    if base is not None and not _beats(value, base, metric):
        text += f" {LOSS}"
    return text


def _table(result: Result, metric: str, index: int | None = None, estimate: str = "sample") -> list[str]:
    fmt = f".{DIGITS[metric]}f"
    head = ["operator", "sigma_y", "pseudo-inverse", *result.solvers]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 2)]
    for rr in result.rows:
        base = "—" if rr.pinv is None else format(getattr(rr.pinv, f"mean_{metric}") if index is None else getattr(rr.pinv, metric)[index], fmt)
        cells = [_cell(result, rr, s, metric, index, estimate) for s in result.solvers]
        lines.append(f"| {rr.row.title} (`{rr.row.key}`) | {rr.row.sigma_y:g} | {base} | " + " | ".join(cells) + " |")
    return lines


def markdown(result: Result) -> str:
    """One prior's section: settings, PSNR and SSIM tables, seconds, and the cells where a solver loses."""
    c, h, w = result.shape
    compared = result.compared()
    lose_p, lose_s = result.losses("psnr"), result.losses("ssim")
    lines = [
        f"## {result.key}",
        "",
        f"Prior `{result.prior}` ({c}x{h}x{w}, unconditional); test set: {result.test_set} (N = {result.n}). "
        f"Every solver: {result.steps} network calls per image, seed {result.seed}; one measurement per operator "
        f"(noise seed {result.seed}), shared by all solvers; torch threads: {result.threads}.",
        "",
        f"Rerun: `{result.command}`" if result.command else "",
        "",
        f"**Summary:** in {compared} (operator, solver) pairs with a baseline, the solver beats the pseudo-inverse "
        f"on PSNR in {compared - len(lose_p)} and on SSIM in {compared - len(lose_s)} with one posterior sample"
        + (
            f"; with the mean of {result.samples} samples, on PSNR in {compared - len(result.losses('psnr', 'mean'))} "
            f"and on SSIM in {compared - len(result.losses('ssim', 'mean'))}."
            if result.samples > 1
            else "."
        ),
        "",
        f"### PSNR (dB) of one posterior sample, mean over the {result.n} images",
        "",
        *_table(result, "psnr"),
        "",
        f"### SSIM of one posterior sample, mean over the {result.n} images",
        "",
        *_table(result, "ssim"),
        "",
    ]
    if result.samples > 1:
        k = result.samples
        lines += [
            f"### PSNR (dB) of the mean of {k} posterior samples (the posterior-mean estimate), mean over the {result.n} images",
            "",
            *_table(result, "psnr", estimate="mean"),
            "",
            f"### SSIM of the mean of {k} posterior samples, mean over the {result.n} images",
            "",
            *_table(result, "ssim", estimate="mean"),
            "",
        ]
    if result.featured is not None:
        lines += [f"### PSNR (dB) on {result.featured_name} alone", "", *_table(result, "psnr", result.featured), ""]
    per = f"N images x {result.samples} samples" if result.samples > 1 else "N images"
    lines += [f"### Seconds per batch of {per}", "", "| operator | " + " | ".join(result.solvers) + " |", "|---|" + "---:|" * len(result.solvers)]
    for rr in result.rows:
        secs = [f"{cell.seconds:.1f}" if isinstance(cell, Scores) else "—" for cell in (rr.cells[s] for s in result.solvers)]
        lines.append(f"| `{rr.row.key}` | " + " | ".join(secs) + " |")
    lines.append("")
    reasons: dict[str, list[str]] = {}
    for rr in result.rows:
        for s in result.solvers:
            cell = rr.cells[s]
            if isinstance(cell, str):
                reasons.setdefault(f"{s} ({cell})", []).append(f"`{rr.row.key}`")
    if reasons:
        lines += ["Not run (—): " + "; ".join(f"{k}: {', '.join(v)}" for k, v in reasons.items()) + ".", ""]
    estimates = [("", "sample")] + ([(f", mean of {result.samples} samples", "mean")] if result.samples > 1 else [])
    for label, estimate in estimates:
        for metric in ("psnr", "ssim"):
            lost = result.losses(metric, estimate)
            if lost:
                lines.append(f"Below or equal to the pseudo-inverse on {metric.upper()}{label} ({LOSS}): " + ", ".join(f"{s} on `{k}`" for k, s in lost) + ".")
                lines.append("")
    specs = ", ".join(f"`{rr.row.key}` = `{rr.row.spec}`" for rr in result.rows)
    lines += [f"Operator specs: {specs}.", ""]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1])).rstrip("\n") + "\n"


def intro() -> str:
    return f"""{TITLE}

Each section below takes one image prior and its held-out test images, measures them with each
operator (one noise draw per operator, shared by all solvers), and restores them with every
diffusion solver that can take the operator, next to the operator's pseudo-inverse
`A_pinv(y)` as the baseline. PSNR (dB) and SSIM (Gaussian window, sigma 1.5; the settings of
scikit-image's `structural_similarity` with `gaussian_weights=True`) are computed against the
clean image with values mapped from [-1, 1] to [0, 1], restorations clamped, and averaged over the
test images.

- Every solver gets the same number of network calls per image (`steps`) and the same seed;
  no solver is tuned per operator (each runs with its default options). The gradient-based
  solvers (DPS, and RED-Diff's optimisation) were designed for many more steps (1000 in the
  DPS paper); at 20 they are at a disadvantage, which `--steps 100` shows.
- A cell marked {LOSS} is one where the solver does not beat the pseudo-inverse on that metric
  at the printed precision (a tie is marked); the best value of each row is bold; — means the
  solver does not take the operator (the reason is under the table): `ddrm`, `ddnm+` and
  `projection` need an SVD, `projection` runs on noiseless rows only (it takes y as
  noiseless), `pigdm` needs an SVD when y is noisy.
- One posterior sample is what a solver returns. PSNR and SSIM reward the posterior mean
  instead (the mean has the least expected squared error; a single sample has twice its
  error), so on ambiguous problems (colorization, light denoising) a sample can lose to a
  smooth baseline while being a plausible image. `--samples K` draws K samples per image in one
  batched solve and adds tables for their mean (the Monte Carlo posterior-mean estimate), at
  K times the cost.
- Known losses at 20 steps: DPS on sparse-view CT (25 dB against the CG pseudo-inverse's 28;
  its default step is divided by the Radon transform's gain of 43, without which it reached 9 dB)
  and on light denoising (its default step, scaled up for few steps, fits the noise);
  RED-Diff's regulariser is noisy with so few Adam steps and rarely improves on its initial
  estimate.
- Class-conditional priors are used unconditionally (their null label).
- The pseudo-inverse of an ill-conditioned operator (deblurring) amplifies the noise: it is the
  baseline the issue asks for, not a good reconstruction. Where the operator has no SVD
  (CT) it is conjugate gradients on the normal equations, a finite number of steps from 0.

Rerun a section (it replaces the section of the same prior and keeps the others):

```bash
diffcore inverse bench images --prior zoo:digits --samples 8 --out docs/inverse-images.md
diffcore inverse bench images --prior zoo:patches --samples 8 --out docs/inverse-images.md
diffcore inverse bench images --prior zoo:textures --samples 8 --threads 2 --out docs/inverse-images.md
diffcore inverse bench images --prior zoo:phantoms --samples 4 --out docs/inverse-images.md
```

The code is `diff_inverse.bench.images` (plugins/diff-inverse); `--operators` and `--solvers`
choose rows and columns (`diffcore inverse bench images --help`).
"""


def update_document(text: str | None, result: Result) -> str:
    """``text`` (a document of sections, or None) with the section of ``result.key`` replaced or appended."""
    section = _BEGIN.format(key=result.key) + "\n" + markdown(result) + _END.format(key=result.key) + "\n"
    sections = [(m.group("key"), m.group(0)) for m in _SECTION.finditer(text or "")]
    out, placed = [], False
    for key, body in sections:
        if key == result.key:
            out.append(section)
            placed = True
        else:
            out.append(body if body.endswith("\n") else body + "\n")
    if not placed:
        out.append(section)
    return intro() + "\n" + "\n".join(out)


def write(out, result: Result) -> str:
    """Update the document ``out`` with ``result``'s section, atomically; returns the new text."""
    from pathlib import Path

    from diffcore.tour import write_atomic

    out = Path(out)
    old = out.read_text(encoding="utf-8") if out.is_file() else None
    text = update_document(old, result)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, text)
    return text
