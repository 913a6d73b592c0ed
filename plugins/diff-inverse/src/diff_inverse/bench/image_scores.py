"""The image benchmark's results: scores per image, cells per (operator, solver), and who beats the baselines.

A cell holds the :class:`Scores` of a solver on a row, or a string: why it did not run (the
solver does not take the operator: not compared) or, starting with :data:`FAILED`, the error it
raised (a loss). A solver beats the baselines on a metric when its mean, as printed, is above the
best classical reconstruction of the row (the pseudo-inverse; bicubic and Lanczos upsampling for
super-resolution; y itself for JPEG); a failure or a non-finite output never does.

>>> row = RowResult(Row("sr-x2", "sr:factor=2", 0.05), "AveragePooling", {"pinv": Scores([20.0], [0.5]), "bicubic": Scores([21.0], [0.6])})
>>> row.cells = {"a": Scores([21.5], [0.7]), "b": Scores([20.5], [0.9]), "c": FAILED + "boom", "d": "needs an SVD"}
>>> [row.beats(s, "psnr") for s in "abcd"]
[True, False, False, None]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from diff_inverse.bench.image_rows import Row

LOSS = "↓"  # marks a solver that does not beat the best baseline on a metric
DIGITS = {"psnr": 2, "ssim": 3}  # as printed: a solver beats the baseline when it is better at this precision
FAILED = "failed: "  # a cell whose solve raised an error: a loss, shown as such
BASELINES = {"pinv": "pseudo-inverse", "bicubic": "bicubic", "lanczos": "Lanczos", "measurement": "y itself"}


@dataclass
class Scores:
    """Per-image PSNR (dB) and SSIM, the seconds the batch took, and whether every output was finite."""

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

    def mean(self, metric: str) -> float:
        return getattr(self, f"mean_{metric}")


def failed(cell) -> bool:
    return isinstance(cell, str) and cell.startswith(FAILED)


def _beats(value: float, base: float, metric: str) -> bool:
    """``value`` better than ``base`` as printed (a tie at the table's precision does not beat; nan never does)."""
    return bool(round(value, DIGITS[metric]) > round(base, DIGITS[metric]))


@dataclass
class RowResult:
    row: Row
    operator_name: str
    baselines: dict[str, Scores] = field(default_factory=dict)  # "pinv", "bicubic", "lanczos", "measurement": what applies
    cells: dict[str, Scores | str] = field(default_factory=dict)  # solver -> scores of one sample, or why it did not run / failed
    means: dict[str, Scores] = field(default_factory=dict)  # solver -> scores of the mean of the samples (samples > 1)

    @property
    def pinv(self) -> Scores | None:
        return self.baselines.get("pinv")

    def best_baseline(self, metric: str) -> tuple[str, float] | None:
        """The best classical reconstruction of the row on ``metric``: its name and mean, or None."""
        if not self.baselines:
            return None
        name = max(self.baselines, key=lambda k: self.baselines[k].mean(metric))
        return name, self.baselines[name].mean(metric)

    def beats(self, solver: str, metric: str, estimate: str = "sample") -> bool | None:
        """Whether ``solver`` beats the best baseline on ``metric`` (None: not run, or no baseline).

        ``estimate``: ``sample`` (one posterior sample) or ``mean`` (the mean of the samples). A
        failed solve or a non-finite output is a loss.
        """
        cell = self.cells.get(solver)
        if estimate == "mean" and isinstance(cell, Scores):
            cell = self.means.get(solver)
        best = self.best_baseline(metric)
        if best is None or cell is None or (isinstance(cell, str) and not failed(cell)):
            return None
        if failed(cell) or not cell.finite:
            return False
        return _beats(cell.mean(metric), best[1], metric)


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
        """(row key, solver) of every cell where a solver does not beat the best baseline on ``metric``."""
        return [(r.row.key, s) for r in self.rows for s in self.solvers if r.beats(s, metric, estimate) is False]

    def compared(self) -> int:
        """Pairs with a baseline where the solver ran or failed (a failure counts, as a loss)."""
        return sum(r.beats(s, "psnr") is not None for r in self.rows for s in self.solvers)

    def failures(self) -> list[tuple[str, str, str]]:
        return [(r.row.key, s, r.cells[s][len(FAILED) :]) for r in self.rows for s in self.solvers if failed(r.cells.get(s))]

    # -- the data behind a published section ----------------------------------------------------
    def to_json(self) -> dict:
        def cell(c):
            return c if isinstance(c, str) else asdict(c)

        data = asdict(self)
        data["rows"] = [
            {
                "row": asdict(r.row),
                "operator_name": r.operator_name,
                "baselines": {k: asdict(v) for k, v in r.baselines.items()},
                "cells": {k: cell(v) for k, v in r.cells.items()},
                "means": {k: asdict(v) for k, v in r.means.items()},
            }
            for r in self.rows
        ]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Result:
        def cell(c):
            return c if isinstance(c, str) else Scores(**c)

        rows = [
            RowResult(
                Row(**r["row"]),
                r["operator_name"],
                {k: Scores(**v) for k, v in r["baselines"].items()},
                {k: cell(v) for k, v in r["cells"].items()},
                {k: Scores(**v) for k, v in r["means"].items()},
            )
            for r in data["rows"]
        ]
        fields = {k: v for k, v in data.items() if k != "rows"}
        fields["shape"] = tuple(fields["shape"])
        return cls(rows=rows, **fields)


def score(x: torch.Tensor, ref: torch.Tensor, seconds: float = 0.0) -> Scores:
    """PSNR and SSIM of each image of ``x`` against ``ref``; non-finite values score as 0 and mark the cell not finite."""
    from diff_inverse import images

    finite = bool(torch.isfinite(x).all())
    x = x.detach().nan_to_num(0.0, 0.0, 0.0)
    return Scores([images.psnr(a, b) for a, b in zip(x, ref)], [images.ssim(a, b) for a, b in zip(x, ref)], seconds, finite)
