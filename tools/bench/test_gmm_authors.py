"""tools/bench/gmm_authors.py: docs/inverse-gmm.md is what the script makes of its measurements, and the quick
measurement behind the page's check section is repeated exactly, so a change of the code behind the page is caught."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parents[1] / "docs" / "inverse-gmm.md"


def _module():
    spec = importlib.util.spec_from_file_location("gmm_authors", HERE / "gmm_authors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verdicts_and_summary():
    m = _module()
    assert m.verdict(1.0, 2.0, 0.5) == "yes, lower"
    assert m.verdict(2.4, 2.0, 0.5) == "yes, within"
    assert m.verdict(2.6, 2.0, 0.5) == "**no, higher**"
    assert m.verdict(float("nan"), 2.0, 0.5) == "no result"
    mean, half, median, bad = m.summary([1.0, 2.0, 3.0, float("nan")])
    assert (mean, median, bad) == (2.0, 2.0, 1) and math.isclose(half, 1.96 / math.sqrt(3))


def test_the_page_is_generated_whole_from_the_measurements():
    m = _module()
    data = json.loads(m.RESULTS.read_text())
    assert set(data) >= {"defaults", "problem", "quick"}
    assert m.page(data, plots=False, out=PAGE) == PAGE.read_text()


def test_the_quick_measurement_is_repeated():
    """The code behind the page gives the committed quick numbers again (every solver at its defaults, d_x 8, d_y 1)."""
    m = _module()
    published = json.loads(m.RESULTS.read_text())["quick"]
    fresh = m.measure_part("quick", log=lambda message: None)
    assert fresh["solvers"] == published["solvers"]
    a, b = m.quick_numbers(fresh), m.quick_numbers(published)
    assert a.keys() == b.keys()
    for name in a:
        assert all(abs(x - y) <= 1e-6 for x, y in zip(a[name], b[name])), (name, a[name], b[name])
