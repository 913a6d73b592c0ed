"""The README's Python examples run as written (a newcomer pastes them first)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_example_runs(index):
    namespace: dict = {}
    exec(compile(_python_blocks()[index], f"README.md python block {index}", "exec"), namespace)
    if "restored" in namespace:  # the inverse-problem example: the restoration beats the pseudo-inverse
        x, y, op, restored = (namespace[k] for k in ("x", "y", "op", "restored"))
        assert ((restored - x) ** 2).mean() < 0.5 * ((op.A_pinv(y) - x) ** 2).mean()
