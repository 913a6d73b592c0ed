"""docs/inverse.md stays true: every registered operator and solver has a row naming its options
with their defaults, and the Python examples run."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

import diffcore

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "inverse.md"
COMMON = {"x_shape", "sigma_y", "noise", "rate"}  # every operator's; described once above the table

pytestmark = pytest.mark.skipif(not GUIDE.is_file(), reason="docs/inverse.md is in the repository, not the installed package")


def rows() -> dict[str, str]:
    out = {}
    for line in GUIDE.read_text().splitlines():
        m = re.match(r"\| `([a-z+-]+)` \|", line)
        if m:
            out[m.group(1)] = line
    return out


def registered(kind: str, table: dict[str, str]) -> list:
    """diff-inverse's components of ``kind``, each checked to have a row in the guide."""
    components = [c for c in diffcore.available(kind) if c.plugin == "inverse"]
    assert components
    for c in components:
        assert c.name in table, f"docs/inverse.md has no row for {kind} {c.name!r}"
    return components


def shown(value) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def test_every_solver_row_names_its_options_and_defaults():
    table = rows()
    for c in registered("solver", table):
        obj = diffcore.create("solver", c.name)
        for f in dataclasses.fields(obj):
            assert f"`{f.name}={shown(getattr(obj, f.name))}" in table[c.name], (
                f"{c.name}: option {f.name}={shown(getattr(obj, f.name))} missing from its row"
            )


def test_every_operator_row_names_its_options():
    table = rows()
    for c in registered("operator", table):
        for name, p in inspect.signature(c.factory).parameters.items():
            if name in COMMON:
                continue
            assert f"`{name}" in table[c.name], f"{c.name}: option {name} missing from its row"
            if p.default is not inspect.Parameter.empty and p.default is not None:
                assert f"`{name}={shown(p.default)}" in table[c.name], f"{c.name}: default {name}={shown(p.default)} missing"


def test_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert len(blocks) >= 2
    scope: dict = {}
    exec(compile("\n".join(blocks), str(GUIDE), "exec"), scope)  # noqa: S102 - the guide's own examples
    x, restored, samples = scope["x"], scope["restored"], scope["samples"]
    assert restored.shape == x.shape and samples.shape[0] == 8
    assert scope["op"].A(x).shape == (4, 64)  # the DenseLinear example, on the digits
