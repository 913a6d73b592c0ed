"""The image benchmark's page: one section per prior, each with the data it was made from.

:func:`markdown` renders one prior's section from a :class:`~diff_inverse.bench.image_scores.Result`;
:func:`update_document` puts it into a page of sections (replacing that prior's, keeping the
others, in the order of :data:`PRIORS`) under the intro :func:`intro`, which is generated from the
code and the sections' data too (what the page holds, which default prior it lacks, each section's
rerun command). Each section carries its result as JSON in an HTML comment, so :func:`regenerate`
can rebuild the whole page from the page itself: the tests check that a published page is exactly
what the current code makes of its data, and repeat the ``check`` section's measurement (:data:`CHECK`).
"""

from __future__ import annotations

import json
import re

from diff_inverse.bench.image_scores import BASELINES, DIGITS, LOSS, Result, RowResult, Scores, failed

TITLE = "# Inverse problems on images: diffusion solvers against the classical baselines"
_BEGIN, _END, _DATA = "<!-- bench-images begin {key} -->", "<!-- bench-images end {key} -->", "<!-- bench-images data {data} -->"
_SECTION = re.compile(r"<!-- bench-images begin (?P<key>\S+) -->\n.*?<!-- bench-images end (?P=key) -->\n?", re.S)
_DATA_LINE = re.compile(r"^<!-- bench-images data (?P<data>.*) -->$", re.M)
CHECK_KEY = "check"
# The page's priors, in the page's order, and how each is rerun by default (posterior samples per image)
PRIORS = {"zoo:digits": 8, "zoo:patches": 8, "zoo:textures": 8, "zoo:phantoms": 4}
# The measurement the tests repeat: zoo:digits, two images, a noisy and a noiseless row, every default solver, 5 steps
CHECK = {"prior": "zoo:digits", "operators": ["sr-x2", "inpaint-box-noiseless"], "steps": 5, "n": 2, "seed": 0}


def _baseline_columns(result: Result) -> list[str]:
    return [k for k in BASELINES if any(k in r.baselines for r in result.rows)]


def _value(scores: Scores, metric: str, index: int | None) -> float:
    return scores.mean(metric) if index is None else getattr(scores, metric)[index]


def _cell(rr: RowResult, solver: str, metric: str, index: int | None, estimate: str, best: float | None) -> str:
    cell = rr.cells.get(solver)
    if failed(cell):
        return f"failed {LOSS}"
    if estimate == "mean" and isinstance(cell, Scores):
        cell = rr.means.get(solver)
    if not isinstance(cell, Scores):
        return "—"
    value = _value(cell, metric, index)
    text = format(value, f".{DIGITS[metric]}f") + ("" if cell.finite else " (non-finite output)")
    if best is not None and value == best:
        text = f"**{text}**"
    if index is None:
        beats = rr.beats(solver, metric, estimate)
    else:
        base = max((_value(b, metric, index) for b in rr.baselines.values()), default=None)
        beats = None if base is None else (cell.finite and round(value, DIGITS[metric]) > round(base, DIGITS[metric]))
    return text + (f" {LOSS}" if beats is False else "")


def _table(result: Result, metric: str, index: int | None = None, estimate: str = "sample") -> list[str]:
    fmt = f".{DIGITS[metric]}f"
    bases = _baseline_columns(result)
    head = ["operator", "sigma_y", *(BASELINES[b] for b in bases), *result.solvers]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 2)]
    for rr in result.rows:
        shown = [format(_value(rr.baselines[b], metric, index), fmt) if b in rr.baselines else "—" for b in bases]
        scored = [rr.means.get(s) if estimate == "mean" else rr.cells.get(s) for s in result.solvers]
        values = [_value(c, metric, index) for c in scored if isinstance(c, Scores) and c.finite]
        best = max(values) if values else None
        cells = [_cell(rr, s, metric, index, estimate, best) for s in result.solvers]
        lines.append(f"| {rr.row.title} (`{rr.row.key}`) | {rr.row.sigma_y:g} | " + " | ".join(shown + cells) + " |")
    return lines


def _summary(result: Result) -> str:
    compared = result.compared()
    text = (
        f"**Summary:** in {compared} (operator, solver) pairs with a baseline, the solver beats the best classical baseline on "
        f"PSNR in {compared - len(result.losses('psnr'))} and on SSIM in {compared - len(result.losses('ssim'))} with one posterior sample"
    )
    if result.samples > 1:
        text += (
            f"; with the mean of {result.samples} samples, on PSNR in {compared - len(result.losses('psnr', 'mean'))} "
            f"and on SSIM in {compared - len(result.losses('ssim', 'mean'))}"
        )
    fails = result.failures()
    return text + (f". {len(fails)} of the pairs failed (counted as losses)." if fails else ".")


def markdown(result: Result) -> str:
    """One prior's section: settings, PSNR and SSIM tables, seconds, what did not run or failed, and the losses."""
    c, h, w = result.shape
    lines = [
        f"## {result.key}",
        "",
        f"Prior `{result.prior}` ({c}x{h}x{w}, unconditional); test set: {result.test_set} (N = {result.n}). "
        f"Every solver: {result.steps} network calls per image, seed {result.seed}; one measurement per operator "
        f"(noise seed {result.seed}), shared by all solvers; torch threads: {result.threads}.",
        "",
        f"Rerun: `{result.command}`" if result.command else "",
        "",
        _summary(result),
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
    lines += [
        f"### Seconds per batch of {per}",
        "",
        "| operator | " + " | ".join(result.solvers) + " |",
        "|---|" + "---:|" * len(result.solvers),
    ]
    for rr in result.rows:
        secs = [f"{cell.seconds:.1f}" if isinstance(cell, Scores) else "—" for cell in (rr.cells[s] for s in result.solvers)]
        lines.append(f"| `{rr.row.key}` | " + " | ".join(secs) + " |")
    lines.append("")
    reasons: dict[str, list[str]] = {}
    for rr in result.rows:
        for s in result.solvers:
            cell = rr.cells[s]
            if isinstance(cell, str) and not failed(cell):
                reasons.setdefault(f"{s} ({cell})", []).append(f"`{rr.row.key}`")
    if reasons:
        lines += ["Not run (—): " + "; ".join(f"{k}: {', '.join(v)}" for k, v in reasons.items()) + ".", ""]
    for key, s, error in result.failures():
        lines += [f"Failed: {s} on `{key}`: {error}", ""]
    estimates = [("", "sample")] + ([(f", mean of {result.samples} samples", "mean")] if result.samples > 1 else [])
    for label, estimate in estimates:
        for metric in ("psnr", "ssim"):
            lost = result.losses(metric, estimate)
            if lost:
                lines.append(
                    f"Not above the best baseline on {metric.upper()}{label} ({LOSS}): " + ", ".join(f"{s} on `{k}`" for k, s in lost) + "."
                )
                lines.append("")
    specs = ", ".join(f"`{rr.row.key}` = `{rr.row.spec}`" for rr in result.rows)
    lines += [f"Operator specs: {specs}.", ""]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1])).rstrip("\n") + "\n"


def _contents(results: list[Result]) -> list[str]:
    """What the page holds (from its sections' data) and which of :data:`PRIORS` it lacks."""
    measured = [r for r in results if r.key != CHECK_KEY]
    lines = [
        f"- `{r.key}`: {r.n} images, {r.steps} steps, "
        + (f"{r.samples} posterior samples per image" if r.samples > 1 else "one posterior sample per image")
        for r in measured
    ]
    missing = [p for p in PRIORS if p not in {r.key for r in measured}]
    if missing:
        lines.append(f"- not on this page (not measured with the current code): {', '.join(f'`{p}`' for p in missing)}")
    return lines


def _commands(results: list[Result]) -> list[str]:
    """Each section's rerun command, and the default one of every prior of :data:`PRIORS` the page lacks."""
    given = {r.key: r.command for r in results if r.command}
    keys = [*PRIORS, *(k for k in given if k not in PRIORS and k != CHECK_KEY), CHECK_KEY]
    out = "diffcore inverse bench images {} --out docs/inverse-images.md"
    defaults = {p: out.format(f"--prior {p} --samples {k}") for p, k in PRIORS.items()} | {CHECK_KEY: out.format("--check")}
    return [given.get(k) or defaults[k] for k in keys]


def intro(results: list[Result] | None = None) -> str:
    """The page's intro, from the code and the page's data (``results``, its sections): the default solvers,
    what each needs, how the tables are made, what the page holds and how each section is rerun."""
    from diff_inverse.bench.image_rows import DEFAULT_SOLVERS
    from diff_inverse.solvers import SOLVERS
    from diff_inverse.solvers.fit import Needs

    needs = []
    for name in DEFAULT_SOLVERS:
        n = Needs.of(SOLVERS[name])
        said = [
            w
            for w, flag in (("an SVD", n.svd), ("a linear operator", n.linear and not n.svd), ("a differentiable A", n.differentiable))
            if flag
        ]
        extra = (", noiseless y" if n.noiseless else "") + (", an SVD for noisy y" if n.svd_when_noisy else "")
        needs.append(f"`{name}` ({' and '.join(said)}" + extra + ")")
    results = list(results or [])
    contents = "\n".join(_contents(results))
    commands = "\n".join(_commands(results))
    return f"""{TITLE}

Each section below takes one image prior and its held-out test images, measures them with each
operator (one noise draw per operator, shared by all solvers), and restores them with every
diffusion solver that can take the operator, next to the classical reconstructions: the
operator's pseudo-inverse `A_pinv(y)`, and for super-resolution bicubic and Lanczos upsampling of
y (Pillow's filters, in floats); for JPEG, y itself. PSNR (dB) and SSIM (Gaussian window, sigma 1.5;
scikit-image's `structural_similarity` with `gaussian_weights=True`) are computed against the
clean image with restorations clamped to [-1, 1] (data range 2, the same values as on [0, 1]),
and averaged over the test images. The page is generated whole by `diff_inverse.bench.images`
from the data each section carries (a test rebuilds it from that data and repeats the check
section's measurement).

- Every solver runs at its defaults with the same number of network calls per image (`steps`)
  and the same seed; none is tuned per operator. The columns, in order, and what each needs:
  {", ".join(needs)}. A solver that does not take an operator shows — and the reason is under
  the table; the noiseless-only ones run on the rows with sigma_y = 0.
- A solver beats the baselines on a metric when its mean, as printed, is above the best classical
  reconstruction of the row; {LOSS} marks a cell where it does not (a tie included). A solve that
  raises an error shows "failed" and a non-finite output is marked: both count as losses. The
  best solver of each row is bold.
- One posterior sample is what a solver returns. PSNR and SSIM reward the posterior mean (it has
  the least expected squared error; a single sample has twice its error), so on ambiguous
  problems (colorization, light denoising, phase retrieval) a sample can lose to a smooth
  baseline while being a plausible image. `--samples K` adds tables for the mean of K samples.
- Phase retrieval does not determine the image: a sign flip, a shift or a flip give the same y,
  and PSNR against the test image counts such an answer as wrong. JPEG's gradient is
  straight-through (`diff_inverse.operators.JPEG`).
- Class-conditional priors are used unconditionally (their null label). Where the operator has
  no SVD (CT) the pseudo-inverse is conjugate gradients on the normal equations.

The priors on this page:

{contents}

Rerun a section (it replaces the section of the same prior and keeps the others), and the check:

```bash
{commands}
```

`--operators` and `--solvers` choose rows and columns (`diffcore inverse bench images --help`).
"""


def section(result: Result) -> str:
    data = json.dumps(result.to_json(), separators=(",", ":"), sort_keys=True)
    return _BEGIN.format(key=result.key) + "\n" + markdown(result) + _DATA.format(data=data) + "\n" + _END.format(key=result.key) + "\n"


def results_of(text: str) -> list[Result]:
    """The results behind every section of a page, in the page's order."""
    out = []
    for m in _SECTION.finditer(text or ""):
        found = _DATA_LINE.search(m.group(0))
        if found is not None:
            out.append(Result.from_json(json.loads(found.group("data"))))
    return out


def update_document(text: str | None, result: Result) -> str:
    """``text`` (a page of sections, or None) with the section of ``result.key`` replaced or appended, the
    intro and every other section regenerated from their data (a section without data is kept as it is)."""
    parts, placed = [], False
    for m in _SECTION.finditer(text or ""):
        if m.group("key") == result.key:
            parts.append(section(result))
            placed = True
            continue
        found = _DATA_LINE.search(m.group(0))
        parts.append(section(Result.from_json(json.loads(found.group("data")))) if found else m.group(0).rstrip("\n") + "\n")
    if not placed:
        parts.append(section(result))
    order = {key: i for i, key in enumerate(PRIORS)}
    keyed = [(_SECTION.match(p).group("key"), p) for p in parts]
    keyed.sort(key=lambda kp: 1 + len(order) if kp[0] == CHECK_KEY else order.get(kp[0], len(order)))  # stable: others keep their place
    parts = [p for _, p in keyed]
    return intro(results_of("".join(parts))) + "\n" + "\n".join(parts)


def regenerate(text: str) -> str:
    """The page the current code makes of the data in ``text``."""
    results = results_of(text)
    if not results:
        return intro([])
    out = None
    for r in results:
        out = update_document(out, r)
    return out


def write(out, result: Result) -> str:
    """Update the page ``out`` with ``result``'s section, atomically; returns the new text."""
    from pathlib import Path

    from diffcore.tour import write_atomic

    out = Path(out)
    old = out.read_text(encoding="utf-8") if out.is_file() else None
    text = update_document(old, result)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, text)
    return text
