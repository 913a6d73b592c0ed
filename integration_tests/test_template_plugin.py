"""A plugin made from tools/plugin-template, pip-installed, is found through its entry point.

The template is rendered into a temporary folder, built and installed with pip into a
temporary ``--target`` folder, and then used from fresh interpreters whose ``PYTHONPATH`` holds
that folder: the way a user installs a third-party plugin, without touching this environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEW_PLUGIN = ROOT / "tools" / "new_plugin.py"
NAME, IMPORT_NAME = "acme-diffusion", "acme_diffusion"


def workspace_version() -> str:
    import tomllib

    with (ROOT / "packages" / "diffcore" / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]["version"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory, run_command):
    """(rendered source folder, pip --target folder) of the template rendered as acme-diffusion."""
    base = tmp_path_factory.mktemp("template")
    run_command([sys.executable, str(NEW_PLUGIN), NAME, "--out", str(base / "src")])
    source = base / "src" / NAME
    site = base / "site"
    run_command(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(site),
            str(source),
        ]
    )
    return source, site


def test_rendered_package_has_the_layout_of_every_package(installed):
    source, _ = installed
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "pyproject.toml",
        f"src/{IMPORT_NAME}/__init__.py",
        f"src/{IMPORT_NAME}/mask.py",
        f"src/{IMPORT_NAME}/plugin.py",
        f"src/{IMPORT_NAME}/prior.py",
        f"src/{IMPORT_NAME}/sampler.py",
        "tests/test_plugin.py",
    ]
    text = "\n".join(p.read_text() for p in source.rglob("*") if p.is_file())
    assert "{{" not in text and "}}" not in text
    pyproject = (source / "pyproject.toml").read_text()
    assert f'"diffcore=={workspace_version()}"' in pyproject
    assert f'{NAME} = "{IMPORT_NAME}.plugin"' in pyproject


def test_rendered_package_passes_ruff(installed, run_command):
    source, _ = installed
    run_command([sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(source)])


def test_installed_plugin_is_found_through_its_entry_point(installed, run_python):
    _, site = installed
    report = run_python(
        f"""
        import json, torch, diffcore
        import {IMPORT_NAME}

        info = {{p.name: p for p in diffcore.plugins()}}["{NAME}"]
        priors = {{c.name: c.plugin for c in diffcore.available("prior")}}
        operators = {{c.name: c.plugin for c in diffcore.available("operator")}}
        samplers = {{c.name: c.plugin for c in diffcore.available("sampler")}}
        prior = diffcore.create("prior", "{NAME}-gaussian", mean=[1.0, -1.0], std=0.5)
        x = diffcore.sample(prior, 64, steps=10, generator=torch.Generator().manual_seed(0))
        mask = diffcore.create("operator", "{NAME}-mask:keep=[True, False]", sigma_y=0.1)
        y = mask.A(x)
        ours, theirs = (
            diffcore.sample(prior, 64, steps=10, sampler=name, generator=torch.Generator().manual_seed(1))
            for name in ("{NAME}-ddim", "ddim")
        )
        print(json.dumps({{
            "info": info.as_dict(),
            "priors": priors,
            "operators": operators,
            "samplers": samplers,
            "sampler_is_ddim": bool(torch.equal(ours, theirs)),
            "module": {IMPORT_NAME}.__file__,
            "version": {IMPORT_NAME}.__version__,
            "x": list(x.shape),
            "y": list(y.shape),
            "y_is_first_coordinate": bool(torch.equal(y[:, 0], x[:, 0])),
            "back": list(mask.A_pinv(y).shape),
            "sigma_y": mask.sigma_y,
            "protocols": [isinstance(prior, diffcore.protocols.Prior), isinstance(mask, diffcore.protocols.Operator)],
        }}))
        """,
        path=[site],
    )
    version = workspace_version()
    assert report["info"] == {
        "name": NAME,
        "version": version,  # read from the installed distribution's metadata
        "module": f"{IMPORT_NAME}.plugin",
        "registered": {"prior": [f"{NAME}-gaussian"], "operator": [f"{NAME}-mask"], "sampler": [f"{NAME}-ddim"]},
        "error": None,
    }
    assert report["priors"][f"{NAME}-gaussian"] == NAME
    assert report["operators"][f"{NAME}-mask"] == NAME
    assert report["samplers"][f"{NAME}-ddim"] == NAME and report["samplers"]["ddim"] == "diffcore"
    assert report["sampler_is_ddim"]
    assert Path(report["module"]).is_relative_to(site)  # the pip-installed copy, not the source
    assert report["version"] == version
    assert report["x"] == [64, 2] and report["y"] == [64, 1] and report["back"] == [64, 2]
    assert report["y_is_first_coordinate"] and report["sigma_y"] == 0.1
    assert report["protocols"] == [True, True]


def test_installed_plugins_own_tests_pass(installed, run_command):
    source, site = installed
    proc = run_command(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--doctest-modules", "--import-mode=importlib", "src", "tests"],
        path=[site],
        cwd=source,
    )
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_diffcore_plugins_json_lists_the_installed_plugin(installed, run_command, console_script, parse_plugins_json):
    _, site = installed
    proc = run_command([str(console_script("diffcore")), "plugins", "--json"], path=[site])
    entry = parse_plugins_json(proc.stdout)[NAME]
    assert entry["version"] == workspace_version()
    assert entry["error"] is None
    assert entry["registered"]["prior"] == [f"{NAME}-gaussian"]
    assert entry["registered"]["operator"] == [f"{NAME}-mask"]
    assert entry["registered"]["sampler"] == [f"{NAME}-ddim"]
    listed = run_command([str(console_script("diffcore")), "available", "sampler", "--json"], path=[site]).stdout
    assert {c["name"]: c["plugin"] for c in json.loads(listed)}[f"{NAME}-ddim"] == NAME


def test_new_plugin_refuses_bad_names_and_existing_folders(tmp_path, run_command):
    for bad in ("Acme", "acme_diffusion", "2fast", "acme--x", "diffcore", "json", "class"):
        proc = run_command([sys.executable, str(NEW_PLUGIN), bad, "--out", str(tmp_path)], check=False)
        assert proc.returncode == 2 and bad in proc.stderr, (bad, proc.stderr)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    proc = run_command([sys.executable, str(NEW_PLUGIN), "taken", "--out", str(tmp_path)], check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # nothing else written
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
