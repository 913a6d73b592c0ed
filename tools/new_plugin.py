"""Create a new diffcore plugin package from tools/plugin-template.

    python tools/new_plugin.py diff-example             # writes plugins/diff-example/
    python tools/new_plugin.py my-plugin --out DIR      # writes DIR/my-plugin/

The name is the distribution name, the entry-point name (what ``diffcore plugins`` and
``DIFFCORE_PLUGINS`` show) and, with ``-`` turned into ``_``, the import name. The package
pins diffcore to this workspace's version, as every package here does. An existing folder is
never overwritten. Standard library only, so it runs before any environment exists.
"""

from __future__ import annotations

import argparse
import keyword
import re
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tools" / "plugin-template"
KERNEL_PYPROJECT = ROOT / "packages" / "diffcore" / "pyproject.toml"

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z_]+\s*\}\}")
SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache", ".DS_Store"}
RESERVED = {"diffcore", "diffcore-workspace", "plugin", "plugins", "test", "tests"}


class TemplateError(Exception):
    """A bad name, an existing target or a broken template, explained in the message."""


def check_name(name: str) -> str:
    """Validate a plugin name and return its import name.

    >>> check_name("diff-example")
    'diff_example'
    >>> try:
    ...     check_name("diffcore")
    ... except TemplateError as exc:
    ...     print(exc)
    plugin name 'diffcore' is taken (by diffcore, Python or the standard library); choose another
    """
    if not NAME.match(name):
        raise TemplateError(
            f"invalid plugin name {name!r}: use lowercase letters and digits, words joined by single hyphens, starting with a letter "
            "(e.g. diff-example)"
        )
    import_name = name.replace("-", "_")
    if name in RESERVED or keyword.iskeyword(import_name) or import_name in sys.stdlib_module_names:
        raise TemplateError(f"plugin name {name!r} is taken (by diffcore, Python or the standard library); choose another")
    return import_name


def workspace_version() -> str:
    """The version every package of the workspace shares: diffcore's."""
    with KERNEL_PYPROJECT.open("rb") as f:
        return tomllib.load(f)["project"]["version"]


def render_text(text: str, values: dict[str, str]) -> str:
    """Fill ``{{key}}`` placeholders; leave nothing unfilled.

    >>> render_text("{{name}} = '{{import_name}}.plugin'", {"name": "a-b", "import_name": "a_b"})
    "a-b = 'a_b.plugin'"
    """
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = PLACEHOLDER.search(text)
    if left:
        raise TemplateError(f"unknown placeholder {left.group()} in the template")
    return text


def render(name: str, out: Path, *, version: str | None = None, template: Path = TEMPLATE) -> Path:
    """Render the template into ``out / name`` and return that folder.

    Everything is written into a temporary folder next to the target first and moved into
    place at the end, so a failure leaves nothing behind.
    """
    import_name = check_name(name)
    values = {"name": name, "import_name": import_name, "version": version or workspace_version()}
    target = out / name
    if target.exists():
        raise TemplateError(f"{target} already exists; choose another name or --out folder")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out))
    try:
        for src in sorted(template.rglob("*")):
            rel = src.relative_to(template)
            if SKIP.intersection(rel.parts) or src.suffix == ".pyc" or src.is_dir():
                continue
            dest = staging / render_text(rel.as_posix(), values)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(render_text(src.read_text(encoding="utf-8"), values), encoding="utf-8")
            shutil.copymode(src, dest)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create a new diffcore plugin package from the template.")
    parser.add_argument("name", help="distribution and plugin name, e.g. diff-example")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "plugins", help="folder to create the package in (default: the workspace's plugins/)"
    )
    args = parser.parse_args(argv)
    try:
        target = render(args.name, args.out)
    except TemplateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"created {target}")
    print(f"next: pip install -e {target}    # then `diffcore plugins` lists it")
    print(f"      python -m pytest {target}")
    print("      in this workspace, also list it in the root pyproject.toml's workspace members")
    return 0


if __name__ == "__main__":
    sys.exit(main())
