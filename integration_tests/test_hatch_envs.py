"""`hatch test` and `hatch run test` work from a fresh clone.

The root pyproject.toml is a workspace, not a package (no build system): its hatch environments
install the workspace members and the `dev` group and skip installing the root itself, which
setuptools would refuse (a flat layout with several top-level packages). Each command builds its
environment from scratch here (minutes, and a download where the wheels are not cached), so the
test runs only where hatch is on PATH and is marked slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("hatch") is None, reason="needs hatch on PATH (pip install hatch)")]

ROOT = Path(__file__).resolve().parents[1]
TEST = "plugins/diff-inverse/tests/test_solver_options.py"


def test_hatch_test_and_hatch_run_test_from_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "HATCH_DATA_DIR": str(tmp_path / "data"), "HATCH_CACHE_DIR": str(tmp_path / "cache")}
    for command in (["hatch", "run", "test", TEST, "-q"], ["hatch", "test", TEST]):
        done = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=3600)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert " passed" in done.stdout, done.stdout[-2000:]
