"""Shared fixtures: fresh Python processes, fake installed distributions, in-memory entry points.

Plugin discovery happens once per process, so a test that needs a different set of installed
plugins runs its checks in a subprocess whose ``PYTHONPATH`` holds fake distributions: a
``*.dist-info`` folder with ``METADATA`` and ``entry_points.txt`` is all that
:mod:`importlib.metadata` needs to find an entry point, exactly as for a pip-installed package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # where this environment's console scripts live


def _env(path, extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("DIFFCORE_PLUGINS", "PYTHONPATH")}
    env.update(OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    if path:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in path)
    env.update(extra_env or {})
    return env


def _run(args, *, path=(), env=None, cwd=None, check=True, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=_env(path, env), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def run_python():
    """``run_python(code, path=[...], env={...})``: run code in a fresh interpreter of this env.

    The last line the code prints is parsed as JSON and returned; ``DIFFCORE_PLUGINS`` is unset
    unless ``env`` sets it.
    """

    def run(code: str, *, path=(), env=None, cwd=None):
        proc = _run([sys.executable, "-c", textwrap.dedent(code)], path=path, env=env, cwd=cwd)
        lines = proc.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else None

    return run


@pytest.fixture(scope="session")
def run_command():
    """``run_command(args, path=[...], env={...}, check=True)``: run a program, return the process."""
    return _run


@pytest.fixture(scope="session")
def console_script():
    """The path of one of this environment's console scripts (``diffcore``), never hard-coded."""

    def find(name: str) -> Path:
        for candidate in (BIN / name, BIN / f"{name}.exe"):
            if candidate.exists():
                return candidate
        raise AssertionError(f"console script {name!r} is not installed next to {sys.executable}; reinstall the workspace (make env)")

    return find


def write_distribution(site: Path, name: str, *, entry_points: dict[str, str], files: dict[str, str], version: str = "1.0.0") -> None:
    """Install a fake distribution into ``site``: its dist-info and its module files.

    ``entry_points`` maps entry-point names to ``module`` or ``module:attr`` values in the
    ``diffcore`` group; ``files`` maps paths relative to ``site`` to (dedented) source.
    """
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{ep} = {value}\n" for ep, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[diffcore]\n{lines}")
    for rel, source in files.items():
        dest = site / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(textwrap.dedent(source))


@pytest.fixture(scope="session")
def make_distribution():
    """``make_distribution(site, name, entry_points=..., files=...)``; see :func:`write_distribution`."""
    return write_distribution


class InMemoryEntryPoint:
    """What :class:`diffcore.plugin_host.PluginHost` needs of an entry point: a name, a value and load()."""

    def __init__(self, name: str, plugin, error: BaseException | None = None):
        self.name, self.value, self._plugin, self._error = name, f"<in memory {name}>", plugin, error

    def load(self):
        if self._error is not None:
            raise self._error
        return self._plugin


@pytest.fixture(scope="session")
def entry_point():
    """``entry_point(name, plugin)``: an in-memory entry point for ``PluginHost(entry_points=[...])``."""
    return InMemoryEntryPoint


def plugins_by_name(cli_json: str) -> dict[str, dict]:
    """``diffcore plugins --json`` output as {plugin name: entry}, whether a list or {"plugins": [...]}."""
    data = json.loads(cli_json)
    if isinstance(data, dict):
        data = data["plugins"]
    return {entry["name"]: entry for entry in data}


@pytest.fixture(scope="session")
def parse_plugins_json():
    return plugins_by_name
