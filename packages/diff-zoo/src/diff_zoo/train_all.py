"""Train all four zoo priors: ``python -m diff_zoo.train_all --device cuda --out DIR``.

Writes ``DIR/NAME/`` for each prior (a pipeline folder with ``recipe.json`` and ``README.md``),
prints the timings, writes ``DIR/train_all.json`` and exits non-zero if any prior failed. Needs
no network: every dataset is built from installed packages or procedurally.

On CUDA the four run at the same time, one process each (``--jobs``, default 4): these small
UNets keep a GPU busy only a fraction of the time, since a training step costs more in Python
and kernel launches than on the GPU, so four processes share one GPU well. Each one fits the
time budget ``--minutes`` (default 5.5), its data building included: the iteration count follows
the measured speed (see :mod:`diff_zoo.train`). The processes start training together, after
each has built its data. With ``--jobs 1`` (the default on the CPU) the priors train one after
the other and share the budget in proportion to ``SHARES``. ``--iterations`` and
``--batch-size`` override every recipe (smoke tests).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from diff_zoo import NAMES

# share of a sequential time budget per prior: the 64x64 and RGB models cost more per step
SHARES = {"digits": 0.7, "patches": 1.1, "textures": 1.0, "phantoms": 1.2}
SUMMARY_KEYS = (
    "iterations",
    "iterations_planned",
    "batch_size",
    "train_time_s",
    "iterations_per_s",
    "wall_time_s",
    "final_loss",
    "weights_bytes",
    "stopped_early",
)
READY_TIMEOUT_S = 240  # how long a parallel run waits for the others to build their data


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m diff_zoo.train_all", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--jobs", type=int, default=None, help="priors trained at the same time (default: 4 on CUDA, 1 otherwise)")
    parser.add_argument("--minutes", type=float, default=None, help="time budget (default: 5.5 on CUDA, none otherwise)")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--report", default="train_all.json", help=argparse.SUPPRESS)
    parser.add_argument("--ready-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ready-count", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def _wait_for_others(ready_dir: Path, name: str, count: int) -> None:
    """Say this run is ready, then wait (at most READY_TIMEOUT_S) until ``count`` runs are."""
    ready_dir.mkdir(parents=True, exist_ok=True)
    (ready_dir / name).touch()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(list(ready_dir.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.2)


def _gpu_is_shared(device: str) -> bool:
    """Whether several processes may use the GPU (its compute mode is Default); True when unknown."""
    index = device.partition(":")[2] or "0"
    try:
        mode = subprocess.run(
            ["nvidia-smi", f"--id={index}", "--query-gpu=compute_mode", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return True
    return mode in ("", "Default")


def _sequential(args, minutes) -> dict:
    from diff_zoo.recipes import get_recipe
    from diff_zoo.train import train

    total_share = sum(SHARES[n] for n in args.only)
    summary = {}
    for name in args.only:
        budget = None if minutes is None else minutes * SHARES[name] / total_share
        t0 = time.perf_counter()
        print(f"== zoo:{name}" + (f" (budget {budget:.2f} min)" if budget else ""), flush=True)
        ready = (lambda n=name: _wait_for_others(args.ready_dir, n, args.ready_count)) if args.ready_dir else None
        try:
            record = train(
                get_recipe(name),
                args.out / name,
                device=args.device,
                seed=args.seed,
                iterations=args.iterations,
                batch_size=args.batch_size,
                max_minutes=budget,
                progress=not args.no_progress,
                on_ready=ready,
            )
        except Exception:  # noqa: BLE001 - report, go on with the others, fail at the end
            traceback.print_exc()
            if args.ready_dir:  # never keep the others waiting
                _wait_for_others(args.ready_dir, name, 0)
            summary[name] = {"error": traceback.format_exc().strip().splitlines()[-1], "wall_time_s": round(time.perf_counter() - t0, 1)}
            continue
        summary[name] = {k: record[k] for k in SUMMARY_KEYS}
        print(
            f"zoo:{name}: {record['iterations']}/{record['iterations_planned']} steps x {record['batch_size']}, "
            f"{record['train_time_s']:.1f} s training ({record['iterations_per_s']} it/s), {record['wall_time_s']:.1f} s in all, "
            f"final loss {record['final_loss']:.4f}, {record['weights_bytes'] / 1e6:.2f} MB",
            flush=True,
        )
    return summary


def _parallel(args, minutes, jobs) -> dict:
    """One child process per prior (at most ``jobs`` at once), each running this module with ``--only NAME``."""
    ready_dir = args.out / ".ready"
    if ready_dir.exists():
        for f in ready_dir.iterdir():
            f.unlink()
    pending, running, summary = list(args.only), {}, {}
    first_wave = min(jobs, len(pending))
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            cmd = [sys.executable, "-m", "diff_zoo.train_all", "--out", str(args.out), "--device", args.device, "--seed", str(args.seed)]
            cmd += ["--only", name, "--jobs", "1", "--no-progress", "--report", f".train_{name}.json"]
            if minutes is not None:
                cmd += ["--minutes", str(minutes)]
            for flag, value in (("--iterations", args.iterations), ("--batch-size", args.batch_size)):
                if value is not None:
                    cmd += [flag, str(value)]
            if len(summary) + len(running) < first_wave:  # the first wave starts training together
                cmd += ["--ready-dir", str(ready_dir), "--ready-count", str(first_wave)]
            print(f"== zoo:{name}: started" + (f" (budget {minutes:.2f} min)" if minutes else ""), flush=True)
            threads = str(max(1, (os.cpu_count() or 1) // jobs))  # data building uses the CPU: don't oversubscribe it
            running[name] = subprocess.Popen(cmd, env={"OMP_NUM_THREADS": threads, **os.environ, "PYTHONUNBUFFERED": "1"})
        time.sleep(0.5)
        for name, proc in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            report = args.out / f".train_{name}.json"
            try:
                summary[name] = json.loads(report.read_text())["priors"][name]
                report.unlink()
            except (OSError, ValueError, KeyError):
                summary[name] = {"error": f"process exited with status {proc.returncode} and no report"}
    if ready_dir.exists():
        for f in ready_dir.iterdir():
            f.unlink()
        ready_dir.rmdir()
    return summary


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda:
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda but CUDA is not available", file=sys.stderr)
            return 2
    minutes = args.minutes if args.minutes is not None else (5.5 if cuda else None)
    jobs = args.jobs if args.jobs is not None else (4 if cuda else 1)
    if jobs > 1 and cuda and not _gpu_is_shared(args.device):
        print("note: the GPU is not in the Default compute mode; training one prior at a time", flush=True)
        jobs = 1  # the budget is then shared out one prior after the other
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = _parallel(args, minutes, jobs) if jobs > 1 and len(args.only) > 1 else _sequential(args, minutes)
    failed = [name for name, s in summary.items() if "error" in s]
    total = time.perf_counter() - start
    report = {
        "device": args.device,
        "seed": args.seed,
        "jobs": jobs,
        "minutes_budget": minutes,
        "total_s": round(total, 1),
        "priors": summary,
        "failed": failed,
    }
    (args.out / args.report).write_text(json.dumps(report, indent=2) + "\n")
    if args.report == "train_all.json":
        for name, s in summary.items():
            if "error" not in s:
                print(
                    f"   zoo:{name}: {s['iterations']} steps x {s['batch_size']}, {s['train_time_s']:.0f} s training, loss "
                    f"{s['final_loss']:.4f}",
                    flush=True,
                )
        print(f"== all done in {total:.1f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
