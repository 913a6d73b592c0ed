"""The job file: a TOML table naming the items, the task, its options and the output folder.

.. code-block:: toml

    task = "sample"          # a registered task (diffcore's or a plugin's) or a plugin command that takes --job
    out = "samples"          # output folder, relative to the job file
    seed = 0                 # base seed (generated seeds start here; file items derive theirs)

    [items]                  # exactly one of: seeds, folder, glob, manifest
    seeds = 64

    [options]                # the task's options, checked against the task before any work
    prior = "gmm:means=[[-4.0,0.0],[4.0,0.0]]"
    steps = 25

Unknown keys, wrong types and a missing source are errors before any work starts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffcore.errors import DiffcoreError, closest

TOP_KEYS = ("task", "out", "seed", "items", "options")
SOURCES = ("seeds", "folder", "glob", "manifest")
ITEM_KEYS = (*SOURCES, "suffixes", "recursive")


@dataclass(frozen=True)
class JobSpec:
    """A parsed, validated job file. Paths are absolute, resolved against the job file's folder."""

    task: str | None
    out: Path
    items: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    source: Path | None = None  # the job file, for messages

    def where(self) -> str:
        return f"job file {str(self.source)!r}" if self.source else "job"


def _unknown(keys, allowed, where: str) -> None:
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        hint = closest(unknown[0], allowed)
        raise DiffcoreError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
            + (f" (did you mean {hint!r}?)" if hint else "")
        )


def _expect(value, kind: type, what: str, where: str):
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):  # TOML true is not a count
        raise DiffcoreError(f"{where}: {what} must be {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def parse_job(data: dict[str, Any], base: Path, source: Path | None = None) -> JobSpec:
    """Validate a job table (as read from TOML) and resolve its paths against ``base``."""
    where = f"job file {str(source)!r}" if source else "job"
    _unknown(data, TOP_KEYS, where)
    task = data.get("task")
    if task is not None:
        _expect(task, str, "'task'", where)
    if "out" not in data:
        raise DiffcoreError(f"{where}: 'out' (the output folder) is missing")
    out = base / _expect(data["out"], str, "'out'", where)
    seed = _expect(data.get("seed", 0), int, "'seed'", where)
    options = dict(_expect(data.get("options", {}), dict, "[options]", where))
    if "items" not in data:
        raise DiffcoreError(f"{where}: the [items] table is missing; give one of: {', '.join(SOURCES)}")
    items = dict(_expect(data["items"], dict, "[items]", where))
    _unknown(items, ITEM_KEYS, f"{where}, [items]")
    given = [k for k in SOURCES if k in items]
    if len(given) != 1:
        raise DiffcoreError(f"{where}: [items] needs exactly one of {', '.join(SOURCES)}; got {', '.join(given) or 'none'}")
    kind = given[0]
    if kind == "seeds":
        value = items["seeds"]
        if isinstance(value, list):
            for s in value:
                _expect(s, int, "each of [items] seeds", where)
        elif _expect(value, int, "[items] seeds (a count or a list of seeds)", where) < 0:
            raise DiffcoreError(f"{where}: [items] seeds must be >= 0, got {value}")
    else:
        items[kind] = str(base / _expect(items[kind], str, f"[items] {kind}", where))
    for extra in ("suffixes", "recursive"):
        if extra in items and kind != "folder":
            raise DiffcoreError(f"{where}: [items] {extra} applies to 'folder' only")
    if "suffixes" in items:
        for s in _expect(items["suffixes"], list, "[items] suffixes", where):
            _expect(s, str, "each of [items] suffixes", where)
    if "recursive" in items:
        _expect(items["recursive"], bool, "[items] recursive", where)
    return JobSpec(task=task, out=out, items=items, options=options, seed=seed, source=source)


def load_job(path: str | Path) -> JobSpec:
    """Read and validate a job file (TOML). Relative paths in it are relative to its folder."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise DiffcoreError(f"cannot read job file {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DiffcoreError(f"job file {str(path)!r} is not valid TOML: {exc}") from exc
    return parse_job(data, path.resolve().parent, source=path)
