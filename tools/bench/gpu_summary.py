"""The throughput tables of one ``tools/gpu_check.sh`` run, in markdown for docs/benchmarks.md.

Reads the JSON files the check wrote into its folder (``sampler_<options>.json`` from
``sampler_overhead.py``, ``solver_<options>.json`` from ``solver_overhead.py``) and writes
``summary.md``: the machine (GPU name, torch version, date), then the samplers' ratio to their
network calls and the network's ms per call under each network option side by side, then the
solvers' overhead / network under each option side by side. A row over the 5 % goal is marked.

    python tools/bench/gpu_summary.py OUT_FOLDER
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

GOAL = 1.05  # sampler time / network time; solver overhead / network <= 5 %
ORDER = ("plain", "compile", "channels-last", "autocast bf16")


def _load(folder: Path, prefix: str) -> dict[str, dict]:
    runs = {}
    for path in sorted(folder.glob(f"{prefix}_*.json")):
        data = json.loads(path.read_text())
        runs[data["options"]] = data
    return dict(sorted(runs.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER)))


def _mark(ok: bool) -> str:
    return "" if ok else " (over)"


def summary(folder) -> str:
    folder = Path(folder)
    samplers, solvers = _load(folder, "sampler"), _load(folder, "solver")
    any_run = next(iter({**samplers, **solvers}.values()), None)
    lines = ["# GPU check", ""]
    if any_run is None:
        return "\n".join(lines + ["No benchmark results in this folder.", ""])
    lines += [f"{any_run['device']}, torch {any_run['torch']}, {time.strftime('%Y-%m-%d', time.gmtime())}", ""]
    if samplers:
        options = list(samplers)
        lines += ["## Samplers: run time / the bare network's calls (goal <= 1.05), network ms per call", ""]
        lines += ["| sampler | batch | " + " | ".join(f"{o}: ratio | {o}: ms/call" for o in options) + " |"]
        lines += ["|---|---:|" + "---:|---:|" * len(options)]
        keys = [(r["sampler"], r["batch"]) for r in samplers[options[0]]["rows"]]
        for key in keys:
            cells = []
            for o in options:
                row = next((r for r in samplers[o]["rows"] if (r["sampler"], r["batch"]) == key), None)
                cells += ["-", "-"] if row is None else [f"{row['ratio']:.3f}{_mark(row['ratio'] <= GOAL)}", f"{row['ms_per_call']:.2f}"]
            lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
        lines.append("")
    if solvers:
        options = list(solvers)
        lines += ["## Solvers: overhead / network % (goal <= 5 %), network s per solve", ""]
        lines += ["| solver | operator | " + " | ".join(f"{o}: % | {o}: network s" for o in options) + " |"]
        lines += ["|---|---|" + "---:|---:|" * len(options)]
        keys = [(r["solver"], r["operator"]) for r in solvers[options[0]]["rows"]]
        for key in keys:
            cells = []
            for o in options:
                row = next((r for r in solvers[o]["rows"] if (r["solver"], r["operator"]) == key), None)
                cells += (
                    ["-", "-"] if row is None else [f"{row['ratio']:.1f}{_mark(row['ratio'] <= 100 * (GOAL - 1))}", f"{row['network']:.3f}"]
                )
            lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
        lines.append("")
    notes = sorted({f"{o}: {m}" for runs in (samplers, solvers) for o, data in runs.items() for m in data.get("fallbacks", [])})
    if notes:
        lines += ["Options that did not apply (the plain network ran instead):", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: gpu_summary.py OUT_FOLDER")
    text = summary(argv[0])
    (Path(argv[0]) / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
