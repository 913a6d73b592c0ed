"""Progress across processes and the summary at the end.

Each process counts its own items and, when there are several, writes its counts to
``OUT/.diffcore-job/ranks/<rank>.json`` (atomically, at most twice a second, and once at the
end). Rank 0 draws one rich progress bar over the whole job from those files (items done,
rate, ETA) and, at the end, waits for every process to finish so that the summary (done,
skipped, failed, time) and the exit status cover the whole job on every rank. Files rather
than collectives: a process busy with a long item never holds up the others' barrier.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from diffcore.jobs.ranks import Ranks
from diffcore.jobs.records import JobFolder, write_file

MAX_LISTED = 50  # failures each process reports in its progress file


@dataclass
class Summary:
    """What a job did: items done this run, skipped (already finished), failed, and the time."""

    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    stopped: bool = False  # --fail-fast stopped the job
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item key, error), first ones
    main: bool = True  # the process that prints

    @property
    def not_run(self) -> int:
        return self.total - self.done - self.skipped - self.failed

    @property
    def exit_code(self) -> int:
        """0 when every item is finished; 1 when an item failed (or --fail-fast stopped the job)."""
        return 1 if self.failed or self.stopped else 0

    def line(self) -> str:
        rate = f" ({self.done / self.seconds:.1f} items/s)" if self.done and self.seconds > 0 else ""
        text = f"{self.total} items: {self.done} done, {self.skipped} skipped, {self.failed} failed in {self.seconds:.1f} s{rate}"
        if self.stopped:
            text += f"; stopped at the first failure, {self.not_run} not run"
        return text


class Tracker:
    """Counts one process's items, shares them with rank 0, and draws rank 0's progress bar."""

    def __init__(self, folder: JobFolder, ranks: Ranks, total: int, *, show: bool = False, console=None):
        self.folder, self.ranks, self.total = folder, ranks, total
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.failures: list[tuple[str, str]] = []
        self.stopped = False
        self._shared_at = self._stop_checked_at = 0.0
        self._started = time.perf_counter()
        self._bar = self._thread = None
        self._quit = threading.Event()
        if show and ranks.main:
            self._start_bar(console)

    # -- this process ----------------------------------------------------------------------
    def count(self, kind: str, key: str | None = None, error: str | None = None) -> None:
        self.counts[kind] += 1
        if error is not None and len(self.failures) < MAX_LISTED:
            self.failures.append((key, error))
        if self.ranks.world > 1 and time.perf_counter() - self._shared_at > 0.5:
            self._share(finished=False)

    def request_stop(self) -> None:
        """Ask every process to stop after its current item (--fail-fast)."""
        self.stopped = True
        self.folder.ensure_dir(self.folder.ranks)
        write_file(self.folder.ranks / f"stop-{self.ranks.rank}", b"stop\n", durable=False)

    def should_stop(self) -> bool:
        if self.stopped or self.ranks.world == 1:
            return self.stopped
        now = time.perf_counter()
        if now - self._stop_checked_at > 0.2:
            self._stop_checked_at = now
            self.stopped = any((self.folder.ranks / f"stop-{r}").exists() for r in range(self.ranks.world))
        return self.stopped

    def _share(self, *, finished: bool) -> None:
        self._shared_at = time.perf_counter()
        self.folder.ensure_dir(self.folder.ranks)
        state = {**self.counts, "finished": finished, "stopped": self.stopped, "failures": self.failures}
        write_file(self.folder.ranks / f"{self.ranks.rank}.json", json.dumps(state).encode(), durable=False)

    # -- every process ---------------------------------------------------------------------
    def _states(self) -> list[dict]:
        states = []
        for r in range(self.ranks.world):
            if r == self.ranks.rank:
                states.append({**self.counts, "finished": True, "stopped": self.stopped, "failures": self.failures})
                continue
            try:
                states.append(json.loads((self.folder.ranks / f"{r}.json").read_bytes()))
            except (OSError, ValueError):
                states.append({"done": 0, "skipped": 0, "failed": 0, "finished": False, "stopped": False, "failures": []})
        return states

    def finish(self) -> Summary:
        """Wait until every process has finished, then sum their counts (the same on every rank)."""
        if self.ranks.world > 1:
            self._share(finished=True)
            states = self._states()
            while not all(s.get("finished") for s in states):
                time.sleep(0.1)
                states = self._states()
        else:
            states = self._states()
        summary = Summary(self.total, main=self.ranks.main)
        for s in states:
            summary.done += s["done"]
            summary.skipped += s["skipped"]
            summary.failed += s["failed"]
            summary.stopped = summary.stopped or s["stopped"]
            summary.failures.extend(tuple(f) for f in s["failures"])
        summary.failures.sort()
        summary.seconds = time.perf_counter() - self._started
        self._stop_bar(summary)
        return summary

    # -- rank 0's bar ----------------------------------------------------------------------
    def _start_bar(self, console) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("[red]{task.fields[failed]}"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task = self._bar.add_task("items", total=self.total, rate="", eta="-", failed="")
        self._bar.start()
        self._thread = threading.Thread(target=self._refresh_loop, name="diffcore-job-progress", daemon=True)
        self._thread.start()

    def _refresh(self, states: list[dict]) -> None:
        done = sum(s["done"] for s in states)
        skipped = sum(s["skipped"] for s in states)
        failed = sum(s["failed"] for s in states)
        elapsed = time.perf_counter() - self._started
        worked = done + failed
        rate = worked / elapsed if elapsed > 0 else 0.0
        left = self.total - worked - skipped
        eta = time.strftime("%H:%M:%S", time.gmtime(left / rate)) if rate > 0 else "-"
        self._bar.update(
            self._task,
            completed=worked + skipped,
            rate=f"{rate:.1f} items/s" if worked else "",
            eta=eta,
            failed=f"{failed} failed" if failed else "",
        )

    def _refresh_loop(self) -> None:
        while not self._quit.wait(0.25):
            self._refresh(self._states())

    def _stop_bar(self, summary: Summary) -> None:
        if self._bar is None:
            return
        self._quit.set()
        self._thread.join()
        self._refresh(self._states())
        self._bar.stop()
        self._bar = None

    def close(self) -> None:
        """Stop the bar without waiting for the other processes (the run was interrupted)."""
        if self._bar is not None:
            self._quit.set()
            self._thread.join()
            self._bar.stop()
            self._bar = None
