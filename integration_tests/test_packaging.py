"""The wheels users install: one per package, each with the right metadata and contents.

Every folder with a ``pyproject.toml`` under ``packages/`` and ``plugins/`` is built into a wheel
(no isolation: the build backend comes from this environment) and its ``METADATA``,
``entry_points.txt`` and file list are checked. A new plugin is covered as soon as its folder
exists; the kernel's dependency rules are checked against every plugin's requirements.
"""

from __future__ import annotations

import email.parser
import sys
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from configparser import ConfigParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent for pattern in ("packages/*/pyproject.toml", "plugins/*/pyproject.toml") for p in ROOT.glob(pattern))
PLUGINS = [p for p in PACKAGES if p.parent.name == "plugins"]
KERNEL = ROOT / "packages" / "diffcore"

# What diffcore itself may require (shared/DESIGN.md): the kernel stays small and light.
KERNEL_REQUIRES = {"torch", "numpy", "pluggy", "click", "safetensors", "rich"}
KERNEL_EXTRAS = {"diffusers", "transformers", "matplotlib", "accelerate", "peft"}
# The stacks that plugins wrap. diffcore must not require them, not even as an extra; every
# requirement of a plugin that the kernel does not already use is added to this list.
PLUGIN_STACKS = {
    "nerfstudio",
    "deepinv",
    "decord",
    "av",
    "scikit-image",
    "scikit-learn",
    "point-cloud-utils",
    "geomloss",
    "pot",
    "trimesh",
    "pytorch3d",
    "opencv-python",
    "imageio",
}
SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def _project(folder: Path) -> dict:
    with (folder / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]


WORKSPACE_VERSION = _project(KERNEL)["version"]
SIBLINGS = {canonicalize_name(_project(p)["name"]) for p in PACKAGES}


class Wheel:
    """A built wheel: its METADATA, entry points and file names."""

    def __init__(self, path: Path):
        self.path = path
        with zipfile.ZipFile(path) as z:
            self.names = set(z.namelist())
            (dist_info,) = {n.split("/")[0] for n in self.names if n.split("/")[0].endswith(".dist-info")}
            self.metadata = email.parser.Parser().parsestr(z.read(f"{dist_info}/METADATA").decode())
            self.entry_points = ConfigParser(delimiters=("=",))
            self.entry_points.optionxform = str  # keep names as written
            if f"{dist_info}/entry_points.txt" in self.names:
                self.entry_points.read_string(z.read(f"{dist_info}/entry_points.txt").decode())
        self.dist_info = dist_info

    @property
    def requirements(self) -> list[Requirement]:
        return [Requirement(r) for r in self.metadata.get_all("Requires-Dist") or []]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory, run_command) -> dict[Path, Wheel]:
    out = tmp_path_factory.mktemp("wheels")

    def build(folder: Path) -> tuple[Path, Wheel]:
        dest = out / folder.name
        run_command(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check", "--outdir", str(dest), str(folder)]
        )
        (wheel,) = dest.glob("*.whl")
        return folder, Wheel(wheel)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(build, PACKAGES))


def _extra_only(req: Requirement) -> bool:
    """True when the requirement applies only with some extra (``extra == '...'`` in its marker)."""
    if req.marker is None:
        return False
    return not req.marker.evaluate({"extra": ""}) and "extra" in str(req.marker)


def test_every_package_is_found():
    assert KERNEL in PACKAGES
    names = [_project(p)["name"] for p in PACKAGES]
    assert len(set(names)) == len(names), f"two packages share a name: {names}"


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda p: p.name)
def test_version_is_the_workspace_version(wheels, folder):
    assert wheels[folder].metadata["Version"] == WORKSPACE_VERSION


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda p: p.name)
def test_siblings_are_pinned_exactly(wheels, folder):
    for req in wheels[folder].requirements:
        if canonicalize_name(req.name) in SIBLINGS:
            assert str(req.specifier) == f"=={WORKSPACE_VERSION}", (
                f"{folder.name} requires {req}; siblings pin each other exactly: {req.name}=={WORKSPACE_VERSION}"
            )


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda p: p.name)
def test_metadata_is_complete(wheels, folder):
    meta = wheels[folder].metadata
    assert meta["Name"] == _project(folder)["name"]
    assert meta["Requires-Python"], f"{folder.name} must declare requires-python"
    assert meta["Summary"], f"{folder.name} needs a description"
    assert meta.get_payload().strip(), f"{folder.name} needs a README as its long description"


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda p: p.name)
def test_wheel_ships_the_source_tree_and_nothing_else(wheels, folder):
    """Every file under src/ (modules, py.typed, package data) is in the wheel; tests are not."""
    src = folder / "src"
    expected = {
        p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file() and not SKIP.intersection(p.parts) and p.suffix != ".pyc"
    }
    shipped = {n for n in wheels[folder].names if not n.startswith(wheels[folder].dist_info + "/")}
    assert expected, f"{folder.name} has no files under src/"
    assert sorted(expected - shipped) == [], f"{folder.name}'s wheel lacks files from src/"
    assert sorted(shipped - expected) == [], f"{folder.name}'s wheel ships files that are not under src/"


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda p: p.name)
def test_entry_points_resolve_inside_the_wheel(wheels, folder):
    wheel = wheels[folder]
    tops = {n.split("/")[0] for n in wheel.names if not n.startswith(wheel.dist_info)}
    for group in wheel.entry_points.sections():
        for name, value in wheel.entry_points.items(group):
            module = value.split(":")[0].strip()
            if module.split(".")[0] not in tops:
                continue  # points at another distribution
            path = module.replace(".", "/")
            assert {f"{path}.py", f"{path}/__init__.py"} & wheel.names, (
                f"{folder.name}: entry point [{group}] {name} = {value} names a module the wheel does not ship"
            )


@pytest.mark.parametrize("folder", PLUGINS, ids=lambda p: p.name)
def test_plugin_has_a_diffcore_entry_point(wheels, folder):
    wheel = wheels[folder]
    assert wheel.entry_points.has_section("diffcore") and wheel.entry_points.items("diffcore"), (
        f"{folder.name} declares no entry point in the diffcore group"
    )
    assert any(canonicalize_name(r.name) == "diffcore" for r in wheel.requirements), f"{folder.name} must require diffcore"


def test_kernel_requires_only_what_the_design_allows(wheels):
    always = {canonicalize_name(r.name) for r in wheels[KERNEL].requirements if not _extra_only(r)}
    assert always <= KERNEL_REQUIRES, (
        f"diffcore requires {sorted(always - KERNEL_REQUIRES)} unconditionally; the kernel may only require {sorted(KERNEL_REQUIRES)}"
    )


def test_kernel_takes_diffusers_only_as_an_extra(wheels):
    for req in wheels[KERNEL].requirements:
        if canonicalize_name(req.name) in {"diffusers", "transformers"}:
            assert _extra_only(req), f"diffcore requires {req} outside an extra"
    extras = wheels[KERNEL].metadata.get_all("Provides-Extra") or []
    assert "diffusers" in extras


def test_kernel_requires_nothing_from_a_plugin_stack(wheels):
    stacks = set(PLUGIN_STACKS)
    for folder in PLUGINS:
        stacks |= {canonicalize_name(r.name) for r in wheels[folder].requirements} - KERNEL_REQUIRES - KERNEL_EXTRAS - SIBLINGS
    found = sorted(str(r) for r in wheels[KERNEL].requirements if canonicalize_name(r.name) in stacks)
    assert not found, f"diffcore requires {found}: these belong to the plugins that use them, not to the kernel (not even as an extra)"


def test_extra_only_reads_markers():
    assert _extra_only(Requirement('diffusers>=0.30; extra == "diffusers"'))
    assert not _extra_only(Requirement("torch>=2.1"))
    assert not _extra_only(Requirement('numpy; python_version >= "3.11"'))
    assert not _extra_only(Requirement('rich; extra == "cli" or python_version >= "3.11"'))


def test_make_test_enforces_the_linter_format_and_line_length():
    """`make test` runs `ruff check` (E501 selected: lines within the configured length) and `ruff format --check`, and fails on them."""
    import re

    makefile = (ROOT / "Makefile").read_text()
    recipe = lambda target: re.search(rf"^{target}:(.*)\n((?:\t.*\n)+)", makefile, re.M)  # noqa: E731
    test, lint = recipe("test"), recipe("lint")
    assert "lint" in test.group(1).split(), "make test must depend on make lint"
    assert "ruff check ." in lint.group(2) and "ruff format --check" in lint.group(2)
    assert "|| true" not in lint.group(2) and "-" not in [line.strip()[:1] for line in lint.group(2).splitlines()]
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert ruff["line-length"] == 140 and "E501" not in ruff["lint"]["ignore"] and "E" in ruff["lint"]["select"]
