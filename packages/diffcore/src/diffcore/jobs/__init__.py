"""Batch jobs that resume and scale out: one task over many items.

A job is a list of items (N generated seeds, the files of a folder or a glob, or a CSV/JSONL
manifest) and one task (a built-in one such as ``sample``, or a plugin command that takes
``--job``). ``diffcore run JOB.toml`` runs it; ``accelerate launch ... -m diffcore.cli run
JOB.toml`` runs it on several processes or machines, each taking its share of the items. Every
output is written atomically with a record of its settings, so a job killed at any moment and
started again redoes only the unfinished items and ends with exactly the outputs of an
uninterrupted run. See docs/scaling.md.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> spec = parse_job({"task": "sample", "out": "samples", "items": {"seeds": 3},
...                   "options": {"prior": "gaussian:mean=[0.0,0.0]", "n": 4, "steps": 5}}, out)
>>> summary = run_job(spec, TASKS["sample"])
>>> (summary.done, summary.skipped, summary.failed), sorted(p.name for p in (out / "samples").glob("*.npy"))
((3, 0, 0), ['seed-000000.npy', 'seed-000001.npy', 'seed-000002.npy'])
>>> run_job(spec, TASKS["sample"]).skipped  # started again: everything is finished
3
"""

from diffcore.jobs.command import find_task, job_option, run_spec
from diffcore.jobs.items import Item, collect_items
from diffcore.jobs.progress import Summary
from diffcore.jobs.ranks import Ranks, current_ranks
from diffcore.jobs.records import JOB_DIR, JobFolder, write_file
from diffcore.jobs.runner import run_job
from diffcore.jobs.spec import JobSpec, load_job, parse_job
from diffcore.jobs.tasks import TASKS, Task

__all__ = [
    "JOB_DIR",
    "TASKS",
    "Item",
    "JobFolder",
    "JobSpec",
    "Ranks",
    "Summary",
    "Task",
    "collect_items",
    "current_ranks",
    "find_task",
    "job_option",
    "load_job",
    "parse_job",
    "run_job",
    "run_spec",
    "write_file",
]
