"""Atomic outputs and the records that say an item is finished.

An item is finished when its record matches: the record names the item's settings hash (task,
options, item identity, input bytes) and each output with its size and SHA-256, and every
output on disk has exactly those bytes. The order of writes makes this safe against a kill at
any moment:

1. each output goes to a temporary file next to it (``.NAME.diffcore-tmp``), is fsynced, and is
   renamed over ``NAME`` (readers see the old file or the new one, never a part);
2. then the record is written the same way.

A kill before 2 leaves an output without a matching record, so the item is redone; a record
whose output is missing or has other bytes is redone too. Records are checked by content, so
a record torn by a power loss is just "no record". The job's own files live in
``OUT/.diffcore-job/``: ``job.json`` (which task and options own the folder), ``records/``,
``failed/`` (one file per failed item, with its error) and ``ranks/`` (progress of each process).
"""

from __future__ import annotations

import hashlib
import json
import os
import traceback
from pathlib import Path
from typing import Any

from diffcore.errors import DiffcoreError

JOB_DIR = ".diffcore-job"
TMP_SUFFIX = ".diffcore-tmp"
FORMAT = 1


def canonical(obj: Any) -> bytes:
    """JSON with sorted keys and no spaces: the bytes that settings hashes are taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_SUFFIX}")


def write_file(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    The temporary name is fixed per output: only the process that owns an item writes its
    files, and a temporary file left by a killed run is overwritten, or removed at the next start.
    ``durable=False`` skips the fsync (for records, which are verified when read).
    """
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class JobFolder:
    """The output folder of a job and its bookkeeping files."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.meta_dir = self.out / JOB_DIR
        self.records = self.meta_dir / "records"
        self.failed = self.meta_dir / "failed"
        self.ranks = self.meta_dir / "ranks"
        self._made: set[Path] = set()

    # -- folders ---------------------------------------------------------------------------
    def ensure_dir(self, folder: Path) -> None:
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)

    def record_path(self, key: str) -> Path:
        return self.records / f"{key}.json"

    def failure_path(self, key: str) -> Path:
        return self.failed / f"{key}.json"

    # -- the job that owns the folder ------------------------------------------------------
    def check_owner(self, meta: dict[str, Any], *, force: bool) -> None:
        """Refuse a folder holding another job's records (other task or options) unless ``force``."""
        path = self.meta_dir / "job.json"
        if self.out.exists() and not self.out.is_dir():
            raise DiffcoreError(f"the output folder {str(self.out)!r} is a file")
        try:
            theirs = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            if force:
                return
            raise DiffcoreError(
                f"the output folder {str(self.out)!r} holds an unreadable {JOB_DIR}/job.json ({exc}); pass --force to take it over"
            ) from exc
        if force or (theirs.get("task"), theirs.get("fingerprint")) == (meta["task"], meta["fingerprint"]):
            return
        raise DiffcoreError(
            f"the output folder {str(self.out)!r} holds the records of another job (task {theirs.get('task')!r}, "
            f"options {json.dumps(theirs.get('options'), sort_keys=True)}); this job is task {meta['task']!r}, "
            f"options {json.dumps(meta['options'], sort_keys=True)}. Use another folder, or pass --force to redo its items under this job"
        )

    def claim(self, meta: dict[str, Any]) -> None:
        """Write ``job.json`` and clear what a killed run may have left: temporary files, progress, stop flags."""
        for folder in (self.out, self.meta_dir, self.records, self.failed):
            self.ensure_dir(folder)
        write_file(self.meta_dir / "job.json", json.dumps({"format": FORMAT, **meta}, indent=2, sort_keys=True).encode())
        for dirpath, _dirnames, filenames in os.walk(self.out):
            for name in filenames:
                if name.endswith(TMP_SUFFIX):
                    Path(dirpath, name).unlink(missing_ok=True)
        if self.ranks.is_dir():
            for p in self.ranks.iterdir():
                p.unlink(missing_ok=True)
        self.ensure_dir(self.ranks)

    # -- items -----------------------------------------------------------------------------
    def finished(self, key: str, settings: str) -> bool:
        """True when the item's record matches ``settings`` and every output it names has its bytes."""
        try:
            record = json.loads(self.record_path(key).read_bytes())
            if record["settings"] != settings or not record["outputs"]:
                return False
            for name, want in record["outputs"].items():
                data = (self.out / name).read_bytes()
                if len(data) != want["bytes"] or sha256(data) != want["sha256"]:
                    return False
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return True

    def write_item(self, key: str, settings: str, outputs: dict[str, bytes], *, rank: int = 0) -> None:
        """Write an item's outputs atomically, then its record."""
        listed = {}
        for name, data in outputs.items():
            path = self.out / name
            self.ensure_dir(path.parent)
            write_file(path, data)
            listed[name] = {"bytes": len(data), "sha256": sha256(data)}
        record = self.record_path(key)
        self.ensure_dir(record.parent)
        write_file(record, canonical({"key": key, "settings": settings, "outputs": listed, "rank": rank}), durable=False)

    def write_failure(self, key: str, settings: str, exc: BaseException) -> str:
        """Record a failed item with its error; returns the one-line error."""
        error = f"{type(exc).__name__}: {exc}"
        path = self.failure_path(key)
        self.ensure_dir(path.parent)
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        write_file(path, json.dumps({"key": key, "settings": settings, "error": error, "traceback": tb}, indent=2).encode(), durable=False)
        return error

    def failed_keys(self) -> set[str]:
        if not self.failed.is_dir():
            return set()
        keys = set()
        for dirpath, _dirnames, filenames in os.walk(self.failed):
            for name in filenames:
                if name.endswith(".json"):
                    keys.add(Path(dirpath, name).relative_to(self.failed).as_posix()[: -len(".json")])
        return keys
