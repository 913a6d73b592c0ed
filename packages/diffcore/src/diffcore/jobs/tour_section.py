"""The job runner's tour section: a job stopped part-way, resumed, and compared byte for byte."""

from __future__ import annotations

import time

PRIOR = "gmm:means=[[-3.0,0.0],[3.0,0.0],[0.0,3.0]],weights=[0.2,0.3,0.5]"


def section(tour) -> None:
    """Run a sample job in two parts (as if killed after the first) and once uninterrupted."""
    from diffcore.jobs import TASKS, parse_job, run_job

    total = 12 if tour.quick else 40
    first = total // 3
    base = tour.section_dir
    options = {"prior": PRIOR, "n": 64, "steps": 20, "format": "npy"}
    task = TASKS["sample"]

    def job(folder: str, seeds: int):
        return parse_job({"task": "sample", "out": folder, "items": {"seeds": seeds}, "options": options}, base)

    rows = []
    for label, folder, seeds in (
        ("first run, stopped after a third of the items", "resumed", first),
        ("restarted with the whole job", "resumed", total),
        ("restarted again", "resumed", total),
        ("one uninterrupted run, for comparison", "straight", total),
    ):
        start = time.perf_counter()
        summary = run_job(job(folder, seeds), task)
        rows.append(
            {
                "run": label,
                "items": summary.total,
                "done": summary.done,
                "skipped": summary.skipped,
                "failed": summary.failed,
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
    resumed = sorted((base / "resumed").glob("*.npy"))
    straight = sorted((base / "straight").glob("*.npy"))
    same = len(resumed) == len(straight) == total and all(
        a.name == b.name and a.read_bytes() == b.read_bytes() for a, b in zip(resumed, straight)
    )
    tour.text(
        f"A `sample` job over {total} seeds (64 samples each from a 3-component mixture, 20 DDIM steps), "
        f"run the way a job killed part-way is: the first run finishes {first} items, the restart skips them "
        "and does the rest, a second restart finds nothing to do. Every output is written atomically next "
        "to a record of its settings; the resumed folder is compared byte for byte with an uninterrupted run. "
        "The same runner shards items over processes and machines with `accelerate launch` (docs/scaling.md)."
    )
    tour.table("runs", rows, caption="What each run of the job did")
    tour.metric("resumed outputs identical to an uninterrupted run", "yes" if same else "NO")
    if not same:
        raise AssertionError("the resumed job's outputs differ from an uninterrupted run's")
