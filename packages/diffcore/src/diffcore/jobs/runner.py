"""The job runner: check everything, claim the output folder, then do this process's items.

Order of a run, in every process:

1. before any work: list the items (a manifest naming missing files fails here), build the
   task from its options (unknown options fail here), and check that the output folder holds
   no other job's records (refused unless ``force``);
2. rank 0 claims the folder (``job.json``, and removes what a killed run left) between two
   barriers, so no process starts before the folder is ready;
3. each process takes its shard of the items (``items[rank::world]``), skips the finished
   ones (their record matches), and runs the task on the others; a few threads write the
   outputs atomically, then the record, while the task computes the next item. A task that raises is
   recorded in ``failed/`` and the job goes on, or, with
   ``fail_fast``, every process stops after its current item.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from diffcore.errors import DiffcoreError
from diffcore.jobs.items import Item, collect_items
from diffcore.jobs.progress import Summary, Tracker
from diffcore.jobs.ranks import Ranks, current_ranks
from diffcore.jobs.records import JobFolder, canonical, sha256
from diffcore.jobs.spec import JobSpec
from diffcore.jobs.tasks import Task

WRITERS = 4  # threads writing outputs
IN_FLIGHT = 8  # items computed but not yet written, at most (bounds the memory held)


def job_meta(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """What identifies a job in its output folder: the task and its options."""
    return {"task": task.name, "options": options, "fingerprint": sha256(canonical({"task": task.name, "options": options}))}


def item_settings(meta: dict[str, Any], item: Item) -> str:
    """The hash an item's record must carry: job fingerprint, item identity and input bytes."""
    identity: dict[str, Any] = {"job": meta["fingerprint"], "item": item.identity()}
    if item.path is not None:
        try:
            identity["input"] = sha256(item.path.read_bytes())
        except OSError as exc:
            identity["input"] = f"unreadable: {exc}"  # the task will fail on it and the failure is recorded
    return sha256(canonical(identity))


def output_names(item: Item, outputs: Any) -> dict[str, bytes]:
    """``{suffix: bytes}`` from a task -> ``{file name relative to OUT: bytes}``, checked."""
    if not isinstance(outputs, dict) or not outputs:
        raise TypeError(f"a task must return a non-empty dict {{suffix: bytes}}, got {type(outputs).__name__}")
    named = {}
    for suffix, data in outputs.items():
        if not isinstance(suffix, str) or not suffix or "/" in suffix or "\\" in suffix:
            raise TypeError(f"a task's output suffix must be a non-empty string without slashes, got {suffix!r}")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"a task's output for {suffix!r} must be bytes, got {type(data).__name__}")
        named[item.key + suffix] = bytes(data)
    return named


def run_job(
    spec: JobSpec,
    task: Task,
    *,
    force: bool = False,
    fail_fast: bool = False,
    progress: bool = False,
    console=None,
    ranks: Ranks | None = None,
    prepared: Callable[[Item], dict[str, bytes]] | None = None,
) -> Summary:
    """Run ``task`` over the items of ``spec``; returns the summary over all processes."""
    if spec.task is not None and spec.task not in (task.name, *task.aliases):
        raise DiffcoreError(f"{spec.where()} names task {spec.task!r}, but it is being run as task {task.name!r}")
    items = collect_items(spec.items, spec.seed)
    run = prepared if prepared is not None else task.prepare(spec.options)
    meta = job_meta(task, spec.options)
    folder = JobFolder(spec.out)
    folder.check_owner(meta, force=force)
    ranks = ranks if ranks is not None else current_ranks()
    try:
        ranks.barrier()  # every process has checked the folder before rank 0 claims it
        if ranks.main:
            folder.claim(meta)
        ranks.barrier()
        failed_before = folder.failed_keys()
        tracker = Tracker(folder, ranks, len(items), show=progress, console=console)
        pending: deque[tuple[Item, str, Future]] = deque()

        def fail(item: Item, settings: str, exc: Exception) -> None:
            tracker.count("failed", item.key, folder.write_failure(item.key, settings, exc))
            if fail_fast:
                tracker.request_stop()

        def settle(keep: int) -> None:
            """Count the oldest writes once finished, until at most ``keep`` are in flight."""
            while pending and (len(pending) > keep or pending[0][2].done()):
                item, settings, future = pending.popleft()
                try:
                    future.result()
                except Exception as exc:  # noqa: BLE001 - a disk error fails this item, not the job
                    fail(item, settings, exc)
                    continue
                _forget_failure(folder, item.key, failed_before)
                tracker.count("done")

        # Outputs are written by a few threads while the task computes the next item: an
        # fsync costs milliseconds, and the file system commits concurrent ones together.
        # Each item's own order (outputs, then record) stays within one thread.
        with ThreadPoolExecutor(WRITERS, thread_name_prefix="diffcore-job-write") as writers:
            try:
                for item in ranks.shard(items):
                    settle(IN_FLIGHT)
                    if tracker.should_stop():
                        break
                    settings = item_settings(meta, item)
                    if folder.finished(item.key, settings):
                        _forget_failure(folder, item.key, failed_before)
                        tracker.count("skipped")
                        continue
                    try:
                        outputs = output_names(item, run(item))
                    except Exception as exc:  # noqa: BLE001 - a failing item is recorded and the job goes on
                        fail(item, settings, exc)
                        continue
                    pending.append((item, settings, writers.submit(folder.write_item, item.key, settings, outputs, rank=ranks.rank)))
                settle(0)
            except BaseException:
                tracker.close()  # killed or interrupted: the records on disk say what is finished
                raise
        return tracker.finish()
    finally:
        ranks.close()


def _forget_failure(folder: JobFolder, key: str, failed_before: set[str]) -> None:
    if key in failed_before:
        folder.failure_path(key).unlink(missing_ok=True)
        failed_before.discard(key)
