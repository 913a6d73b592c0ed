"""Per-item overhead of the job runner against calling the task in a plain loop.

For cheap items the runner's own cost shows: settings hash, record check, atomic write of the
output (temporary file, fsync, rename), the record, progress counting. Three ways over the
same items, interleaved and repeated, medians reported:

- plain loop: ``for item in items: task(item)`` (outputs kept in memory, nothing written);
- runner, fresh: ``run_job`` into an empty folder (every item done and written);
- runner, resumed: ``run_job`` again over the finished folder (every item checked and skipped).

Two tasks: ``bytes`` (4 KiB of seeded random bytes, nearly free) and ``sample`` (the built-in
task: 16 draws of a 2-D mixture, 5 DDIM steps).

    python tools/bench/job_overhead.py --items 200 --repeats 3

Prints a markdown table in ms per item; target: runner overhead (fresh - plain) <= 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def bytes_task(size: int = 4096):
    """4 KiB of random bytes per item, from the item's seed."""
    import numpy as np

    def run(item):
        return {".bin": np.random.default_rng(item.seed).bytes(size)}

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="Where to write (default: a temporary folder).")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from diffcore.jobs import TASKS, Task, collect_items, parse_job, run_job, write_file

    torch.set_num_threads(args.threads)
    tasks = {
        "bytes (4 KiB)": (Task("bytes", bytes_task), {}),
        "sample (16 x 2-D, 5 steps)": (TASKS["sample"], {"prior": "gmm:means=[[-4.0,0.0],[4.0,0.0]]", "n": 16, "steps": 5}),
    }
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for label, (task, options) in tasks.items():
            items = collect_items({"seeds": args.items})
            run = task.prepare(options)
            times = {"plain": [], "fresh": [], "resumed": []}
            for r in range(args.repeats):
                start = time.perf_counter()
                for item in items:
                    run(item)
                times["plain"].append(time.perf_counter() - start)
                spec = parse_job({"out": f"{task.name}-{r}", "items": {"seeds": args.items}, "options": options}, Path(tmp))
                start = time.perf_counter()
                summary = run_job(spec, task, prepared=run)
                times["fresh"].append(time.perf_counter() - start)
                assert summary.done == args.items, summary.line()
                start = time.perf_counter()
                summary = run_job(spec, task, prepared=run)
                times["resumed"].append(time.perf_counter() - start)
                assert summary.skipped == args.items, summary.line()
            ms = {k: 1000 * statistics.median(v) / args.items for k, v in times.items()}
            rows.append((label, ms["plain"], ms["fresh"], ms["fresh"] - ms["plain"], ms["resumed"]))
        fsync = []
        for r in range(args.repeats):
            folder = Path(tmp, f"fsync-{r}")
            folder.mkdir()
            data = bytes(4096)
            start = time.perf_counter()
            for i in range(args.items):
                write_file(folder / f"{i}.bin", data)
            fsync.append(time.perf_counter() - start)
    print(
        f"{args.items} items, median of {args.repeats} repeats, {args.threads} thread(s); "
        f"one atomic 4 KiB write alone (temporary file, fsync, rename): {1000 * statistics.median(fsync) / args.items:.3f} ms\n"
    )
    print("| task | plain loop ms/item | runner ms/item | runner overhead ms/item | resumed (all skipped) ms/item |")
    print("|---|---:|---:|---:|---:|")
    for label, plain, fresh, overhead, resumed in rows:
        print(f"| {label} | {plain:.3f} | {fresh:.3f} | {overhead:.3f} | {resumed:.3f} |")


if __name__ == "__main__":
    main()
