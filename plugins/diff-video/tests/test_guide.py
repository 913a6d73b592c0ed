"""docs/video.md stays true: its Python examples run, every command option and every registered component is in it."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

import diffcore

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "video.md"

pytestmark = pytest.mark.skipif(not GUIDE.is_file(), reason="docs/video.md is in the repository, not the installed package")


def _shipped() -> bool:
    from diff_video.zoo import is_trained, weights_folder

    return is_trained(weights_folder())


def test_every_option_of_every_command_is_documented():
    from diff_video.cli import video

    text = GUIDE.read_text()
    for name, command in video.commands.items():
        assert f"diffcore video {name}" in text, f"docs/video.md does not show 'diffcore video {name}'"
        for param in command.params:
            if isinstance(param, click.Option):
                assert any(f"`{opt}" in text or f"{opt}`" in text or f"{opt} " in text for opt in param.opts), (
                    f"{name}: {param.opts[0]} is not in docs/video.md"
                )


def test_every_component_is_documented():
    text = GUIDE.read_text()
    for kind in ("prior", "operator", "solver"):
        for c in diffcore.available(kind):
            if c.plugin == "video" or c.name == "diffusers-video":
                assert f"| `{c.name}` |" in text or f"| `{c.name}` (kernel) |" in text, f"docs/video.md has no row for {kind} {c.name!r}"


def test_no_placeholders_left():
    assert not re.search(r"\b(IO_TABLE|MODEL_CARD|BENCH_TABLE|TODO|TBD)\b", GUIDE.read_text())


@pytest.mark.skipif(not _shipped(), reason="needs the shipped zoo:moving-digits weights")
def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert len(blocks) >= 5
    scope: dict = {}
    for block in blocks:
        exec(compile(block, str(GUIDE), "exec"), scope)  # noqa: S102 - the guide's own examples
