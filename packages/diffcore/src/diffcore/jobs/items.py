"""The items of a job: generated seeds, the files of a folder or a glob, or a CSV/JSONL manifest.

Every item has a ``key`` (its outputs are named ``key + suffix``), a ``seed`` that depends only
on the job's base seed and the item itself (never on its position, the number of processes
or earlier interruptions), and for file items the input ``path``. Items are sorted by key, so
every process of a job sees the same list.

>>> [(i.key, i.seed) for i in seed_items(3, base=10)]
[('seed-000010', 10), ('seed-000011', 11), ('seed-000012', 12)]
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from diffcore.errors import DiffcoreError

_BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\\:*?\"<>|]")


@dataclass(frozen=True)
class Item:
    """One unit of work: ``task(item)`` computes its outputs."""

    key: str
    seed: int
    path: Path | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """What the item's record hashes besides the task settings (the input's bytes are added)."""
        return {"key": self.key, "seed": self.seed, "path": self.path.name if self.path else None, "fields": self.fields}


def derived_seed(base: int, key: str) -> int:
    """A seed for a file item from the job seed and the item key: stable under any sharding.

    >>> derived_seed(0, "cat") == derived_seed(0, "cat") != derived_seed(1, "cat")
    True
    """
    return int.from_bytes(hashlib.sha256(f"{base}/{key}".encode()).digest()[:4], "big")


def seed_items(seeds: int | list[int], base: int = 0) -> list[Item]:
    values = list(range(base, base + seeds)) if isinstance(seeds, int) else list(seeds)
    return [Item(f"seed-{s:06d}" if s >= 0 else f"seed-m{-s:06d}", s) for s in values]


def _key_of(rel: PurePosixPath) -> str:
    return str(rel.with_suffix("")) if rel.suffix else str(rel)


def _file_items(paths: list[Path], root: Path, base: int) -> list[Item]:
    items = []
    for p in paths:
        key = _key_of(PurePosixPath(p.relative_to(root).as_posix()))
        items.append(Item(key, derived_seed(base, key), p))
    return items


def folder_items(folder: Path, base: int = 0, *, suffixes: list[str] | None = None, recursive: bool = False) -> list[Item]:
    """The visible files of ``folder`` (and its subfolders when ``recursive``), optionally only those with ``suffixes``."""
    if not folder.is_dir():
        raise DiffcoreError(f"[items] folder does not exist or is not a folder: {str(folder)!r}")
    wanted = {s.lower() if s.startswith(".") else "." + s.lower() for s in suffixes} if suffixes else None
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in filenames:
            if name.startswith(".") or (wanted is not None and Path(name).suffix.lower() not in wanted):
                continue
            found.append(Path(dirpath) / name)
    return _file_items(sorted(found), folder, base)


def glob_items(pattern: str, base: int = 0) -> list[Item]:
    """The files matching ``pattern`` (``**`` recurses); keys are relative to the pattern's fixed part."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    return _file_items(paths, root if fixed < len(parts) else root.parent, base)


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DiffcoreError(f"cannot read manifest {str(path)!r}: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DiffcoreError(f"manifest {str(path)!r}, line {n}: not valid JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise DiffcoreError(f"manifest {str(path)!r}, line {n}: each line must be a JSON object, got {type(row).__name__}")
            rows.append(row)
        return rows
    raise DiffcoreError(f"manifest {str(path)!r}: use a .csv file (with a header row) or a .jsonl file (one JSON object a line)")


def manifest_items(manifest: Path, base: int = 0) -> list[Item]:
    """Items from a CSV or JSONL manifest: each row has ``path`` (relative to the manifest) or
    ``key``, an optional ``seed``; other columns are passed to the task as ``item.fields``."""
    rows = _manifest_rows(manifest)
    items, missing = [], []
    for n, row in enumerate(rows, 1):
        row = dict(row)
        raw_path, key, seed = row.pop("path", None), row.pop("key", None), row.pop("seed", None)
        path = None
        if raw_path not in (None, ""):
            path = manifest.parent / str(raw_path)
            if not path.is_file():
                missing.append(str(raw_path))
            key = key or _key_of(PurePosixPath(str(raw_path).replace(os.sep, "/")))
        if key in (None, ""):
            raise DiffcoreError(f"manifest {str(manifest)!r}, row {n}: give 'path' or 'key'")
        if seed in (None, ""):
            seed = derived_seed(base, str(key))
        else:
            try:
                seed = int(seed)
            except (TypeError, ValueError):
                raise DiffcoreError(f"manifest {str(manifest)!r}, row {n}: seed must be an integer, got {seed!r}") from None
        items.append(Item(str(key), seed, path, row))
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DiffcoreError(f"manifest {str(manifest)!r} names {len(missing)} file(s) that do not exist: {shown}")
    return items


def collect_items(source: dict[str, Any], base: int = 0) -> list[Item]:
    """The items of a job's validated ``[items]`` table, sorted by key; keys must be unique and safe."""
    if "seeds" in source:
        items = seed_items(source["seeds"], base)
    elif "folder" in source:
        items = folder_items(Path(source["folder"]), base, suffixes=source.get("suffixes"), recursive=source.get("recursive", False))
    elif "glob" in source:
        items = glob_items(source["glob"], base)
    else:
        items = manifest_items(Path(source["manifest"]), base)
    items.sort(key=lambda i: i.key)
    for a, b in zip(items, items[1:]):
        if a.key == b.key:
            raise DiffcoreError(
                f"two items share the key {a.key!r} (their outputs would overwrite each other): {_describe(a)} and {_describe(b)}"
            )
    for item in items:
        parts = item.key.split("/")
        if _BAD_KEY_CHARS.search(item.key) or any(not part.strip() or part.startswith(".") for part in parts):
            raise DiffcoreError(
                f'item key {item.key!r} cannot name an output file: no empty or hidden parts, control characters or \\ : * ? " < > |'
            )
    return items


def _describe(item: Item) -> str:
    return repr(str(item.path)) if item.path else f"seed {item.seed}"
