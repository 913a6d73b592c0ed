"""Sampler overhead: a sampler's run against its network calls alone, per sampler and batch size.

The prior is the zoo's ``phantoms`` architecture (a 64x64 one-channel ``UNet2DModel``, 3.3 M
parameters) with random weights, which cost the same as trained ones, read through diffcore's
``DiffusersUNetPrior`` (``tools/bench/solver_overhead.py``'s ``build_prior``). For each sampler and
batch size:

- sampler: the wall time of ``diffcore.sample(prior, batch, steps=..., sampler=...)`` (starting
  noise included, as a user calls it);
- network: the same number of calls of the bare network (no grad) on an input made beforehand,
  at the same timestep, the calls counted on a first run (Heun makes ``2 steps - 1``);
- ratio: sampler / network; the goal of issue 20 is at most 1.05.

``--compile``, ``--autocast`` and ``--channels-last`` run both under the same network options
(:class:`diffcore.devices.tuned`), so the ratio is the loop's overhead with that network, and the
per-call time compares the options with each other. On CUDA the peak memory of the sampler run
(``torch.cuda.max_memory_allocated``) is reported too. Runs are interleaved; times are medians.

    python tools/bench/sampler_overhead.py --device cuda --batch 4,256 --steps 20
    python tools/bench/sampler_overhead.py --device cuda --compile --channels-last --autocast bf16
    python tools/bench/sampler_overhead.py --quick          # seconds: the structure only

Prints a markdown table; ``--json FILE`` writes the rows too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

SAMPLERS = ("ddim", "ddpm", "euler", "heun", "dpm++2m")


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _calls(prior, n, steps, sampler, device) -> int:
    import torch

    import diffcore
    from diffcore.priors.wrapper import PriorWrapper

    class Counted(PriorWrapper):
        calls = 0

        def predict(self, x_t, t, cond=None):
            self.calls += 1
            return self.prior.predict(x_t, t, cond)

    counted = Counted(prior)
    diffcore.sample(counted, n, steps=steps, sampler=sampler, device=device, generator=torch.Generator().manual_seed(0))
    return counted.calls


def bench(device="cpu", samplers=SAMPLERS, batches=(4,), steps=20, repeats=3, compile=False, autocast=None, channels_last=False):
    """One dict per (sampler, batch)."""
    import sys
    from pathlib import Path

    import torch

    from diffcore.devices import tuned

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from solver_overhead import build_prior

    device = torch.device(device)
    prior = build_prior(device)
    rows = []
    with tuned(prior, compile=compile, autocast=autocast, channels_last=channels_last):
        for batch in batches:
            rows += _bench_batch(prior, batch, samplers, steps, repeats, device)
    return rows


def _bench_batch(prior, batch, samplers, steps, repeats, device):
    import torch

    import diffcore

    net = prior.network
    x = torch.randn((batch, *prior.sample_shape), generator=torch.Generator().manual_seed(1)).to(device)
    timestep = torch.tensor(500, device=device)

    def bare(calls):
        with torch.no_grad():
            for _ in range(calls):
                net(x, timestep, return_dict=False)

    def run(name):
        return diffcore.sample(prior, batch, steps=steps, sampler=name, device=device, generator=torch.Generator().manual_seed(0))

    calls = {name: _calls(prior, batch, steps, name, device) for name in samplers}  # warms up as well
    bare(2)
    times = {name: ([], []) for name in samplers}
    memory = {}
    for _ in range(repeats):
        for name in samplers:
            _sync(device)
            start = time.perf_counter()
            bare(calls[name])
            _sync(device)
            times[name][1].append(time.perf_counter() - start)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            out = run(name)
            _sync(device)
            times[name][0].append(time.perf_counter() - start)
            if device.type == "cuda":
                memory[name] = torch.cuda.max_memory_allocated(device) / 2**20
            assert out.shape[0] == batch
    rows = []
    for name in samplers:
        total, network = times[name]
        rows.append(
            {
                "sampler": name,
                "batch": batch,
                "calls": calls[name],
                "sampler_s": statistics.median(total),
                "network_s": statistics.median(network),
                "ratio": statistics.median(t / n for t, n in zip(total, network)),
                "ms_per_call": 1e3 * statistics.median(network) / calls[name],
                "peak_mib": memory.get(name),
            }
        )
    return rows


def table(rows, title: str) -> str:
    lines = [
        title,
        "",
        "| sampler | batch | network calls | sampler s | network s | ratio | network ms/call | peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
        lines.append(
            f"| {r['sampler']} | {r['batch']} | {r['calls']} | {r['sampler_s']:.3f} | {r['network_s']:.3f} | {r['ratio']:.3f} | "
            f"{r['ms_per_call']:.2f} | {peak} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated sampler names")
    parser.add_argument("--batch", default="4", help="comma-separated batch sizes (default 4)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="compile the network (CUDA graphs on CUDA)")
    parser.add_argument("--autocast", default=None, help="bf16 or fp16: the network under autocast")
    parser.add_argument("--channels-last", action="store_true", help="the network in channels-last layout")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="batch 2, 3 steps, 1 repeat, ddim and heun: checks that it runs")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    samplers = tuple(s.strip() for s in args.samplers.split(",") if s.strip())
    batches = tuple(int(b) for b in args.batch.split(","))
    if args.quick:
        samplers, batches, args.steps, args.repeats = ("ddim", "heun"), (2,), 3, 1
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # a network option that could not apply: said in the output
        warnings.simplefilter("always")
        rows = bench(args.device, samplers, batches, args.steps, args.repeats, args.compile, args.autocast, args.channels_last)
    fallbacks = sorted({str(w.message) for w in caught if w.category.__name__ == "SpeedWarning"})
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} thread(s)"
    options = (
        ", ".join(
            o
            for o, on in (("compile", args.compile), (f"autocast {args.autocast}", args.autocast), ("channels-last", args.channels_last))
            if on
        )
        or "plain"
    )
    title = (
        f"Sampler overhead: zoo 'phantoms' UNet (random weights), 1 x 64 x 64, {args.steps} steps, network {options}, median of "
        f"{args.repeats} ({where}, torch {torch.__version__})"
    )
    print(table(rows, title))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"title": title, "options": options, "device": where, "torch": torch.__version__, "rows": rows, "fallbacks": fallbacks},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
