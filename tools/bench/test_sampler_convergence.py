"""tools/bench/sampler_convergence.py: the quick cells equal the published table's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parents[1] / "docs" / "benchmarks.md"


def _module():
    spec = importlib.util.spec_from_file_location("sampler_convergence", HERE / "sampler_convergence.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_cells_are_the_published_ones():
    m = _module()
    published = m.cells_of(PAGE.read_text())
    assert {d for d, _, _ in published} == set(m.DIMS) and {s for _, _, s in published} - {0} == set(m.STEPS)
    quick = m.cells_of(m.BEGIN + "\n" + m.table(m.measure((2,), (5, 10)), (5, 10)) + m.END)
    assert quick and all(published[key] == value for key, value in quick.items()), {k: (published[k], v) for k, v in quick.items()}
