"""The deepinv comparison script in its --quick mode: every row and column is there and sane.

Runs the whole script once (about 15 s on one thread): one small GMM cell and the three image
operators at 4 steps. The numbers themselves are not checked (too few samples to mean
anything), only that every solver of both libraries ran and gave finite values.
"""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepinv")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = Path(__file__).with_name("deepinv_peer.py")
    spec = importlib.util.spec_from_file_location("deepinv_peer", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("peer") / "peer.md"
    run = module.main(["--quick", "--out", str(out)], progress=lambda msg: None)
    return module, run, out


def test_every_solver_ran_on_every_cell(quick):
    module, run, _ = quick
    res = run["results"]
    columns = [module.column_name(lib, name) for lib, name in module.COLUMNS]
    gmm = [c for c in res.quality if c[0] == "gmm"]
    images = [c for c in res.quality if c[0] == "images"]
    assert gmm == [("gmm", 8, 1, 10)]
    assert sorted(c[1] for c in images) == sorted(module.IMAGE_OPERATORS)
    assert not res.notes, f"solvers that did not run: {res.notes}"
    for cell in gmm + images:
        assert set(res.quality[cell]) == set(columns) | ({"prior", "floor"} if cell[0] == "gmm" else {"pseudo-inverse"})
        for column in columns:
            assert all(s > 0 for s in res.seconds[cell][column]), (cell, column)


def test_values_are_finite(quick):
    _, run, _ = quick
    res = run["results"]
    for cell, columns in res.quality.items():
        for column, values in columns.items():
            assert values and all(math.isfinite(v) for v in values), (cell, column, values)
            if cell[0] == "gmm":
                assert all(v > 0 for v in values), (cell, column, values)  # SW of two different sample sets
            else:
                assert len(values) == run["args"].images  # one PSNR per test image


def test_tables_are_printed_and_written(quick):
    module, run, out = quick
    text = out.read_text()
    assert text == run["markdown"]
    for heading in ("### 1.", "### 2.", "### 3."):
        assert heading in text
    for lib, name in module.COLUMNS:
        assert module.column_name(lib, name) in text
    assert "deepinv 0.5" in text and "n/a" not in text
    assert all(f"{o} / {d}" in text for o, d in module.PAIRS)


PAGE = Path(__file__).resolve().parents[2] / "docs" / "inverse-deepinv.md"


def _numbers(row: str) -> list[float]:
    import re

    return [float(v) for v in re.findall(r"-?\d+\.\d+", row)]


def test_the_page_is_the_scripts_and_its_check_is_repeated(quick):
    """docs/inverse-deepinv.md is the script's page: its intro, result tables with this run's columns, and a
    check section that a fresh --quick run reproduces (quality tables, to 0.02)."""
    module, run, _ = quick
    text = PAGE.read_text()
    assert text.startswith(module.INTRO)
    results, check = text.split("\n## Check (`--quick`): what the test repeats\n")
    fresh = module.quality_tables(run["markdown"])
    published = module.quality_tables(check)
    assert set(published) == set(fresh) and fresh
    for heading, rows in fresh.items():
        assert [r.split("|")[:4] for r in published[heading]] == [r.split("|")[:4] for r in rows], heading
        for mine, theirs in zip(rows, published[heading]):
            a, b = _numbers(mine), _numbers(theirs)
            assert len(a) == len(b) and all(abs(x - y) <= 0.02 for x, y in zip(a, b)), (heading, mine, theirs)
    full = module.quality_tables(results)
    assert [rows[0] for rows in full.values()] == [rows[0] for rows in fresh.values()]  # the same columns as the code's
