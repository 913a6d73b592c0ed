"""Peak memory of each posterior solver on a 3 x 256 x 256 batch, beyond what the prior itself holds.

Cases: super-resolution x4 and x2 (average pooling), box inpainting (the centre quarter
missing) and Gaussian deblurring (sigma 3), each with every solver that takes the operator
(``diff_inverse.solvers.solvers_for``), on a batch of 4 RGB images of 256 x 256, solver options
at their defaults, plus MCGdiff with 16 particles: its default 64 particles per item put 256
images in flight, by design. A solver may carry options, ``name:key=value``
(``--solvers ddrm,mcgdiff:particles=8``).

The prior is a stand-in of the right shape whose network costs next to nothing in time and
memory: a per-channel affine map ``eps = w_c x_t + b_c`` (one operator) read as the noise prediction through
diffcore's ``DiffusersUNetPrior`` (the adapter of every zoo prior, with the zoo's scheduler
config, clipping included). What a real UNet needs for its weights and activations is thus left
out, and what is measured ("peak") is the solver's own memory plus the stand-in's: the solver's
state, the operator's transforms, the noise it draws, autograd's saved tensors and the result,
plus the stand-in's output and the adapter's conversions (eps to x0, clipping). After the
solve, the prior alone is measured the same way, called as the solver called it ("network
batch": the largest batch it was given, with "(grad)" when the solver differentiated through
it, then also with a backward pass) on an input made beforehand: "prior call". At batch 4 that
is some 10-20 MiB; MCGdiff calls the prior on every particle at once, where it is not small.
"peak - prior call" is the solver's own peak, exactly when that peak falls during a network
call (it usually does; otherwise it understates it by at most the prior call), and the
pass/fail column judges it, as the target is phrased: memory beyond the prior's own.

Method. Each case runs in a fresh Python process (``--worker``), which builds the prior, the
operator and the measurement, calls the prior once with a backward pass and runs a 2-step solve
of one item to warm up (lazily built tables, autograd), then measures the solve and, after it,
the prior call:

- CPU: the resident set size (``VmRSS``) just before is the baseline; the peak RSS
  (``VmHWM``, reset through ``/proc/self/clear_refs`` just before) minus that baseline is the
  peak. glibc is told (``MALLOC_MMAP_THRESHOLD_``) to give every block of 128 KiB
  or more its own mapping, so a freed tensor leaves the RSS at once and the peak is that of the
  live tensors. Where ``clear_refs`` cannot be written, ``ru_maxrss`` (the process's peak since
  it started, warm-up included) stands in for ``VmHWM``, which can only overstate the peak.
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus
  ``memory_allocated`` before (what the caching allocator hands out, not what it reserves).

    python tools/bench/solver_memory.py                    # 4 steps, batch 4, 3 x 256 x 256, CPU
    python tools/bench/solver_memory.py --device cuda
    python tools/bench/solver_memory.py --quick            # 64 x 64, a few cases: the structure only

Prints a markdown table in MiB; target: peak - prior call <= 1024 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

LIMIT_MIB = 1024.0
OPERATORS = {
    # name in the table: (factory name in diff_inverse.operators, options given (C, H, W))
    "sr x4": ("super_resolution", lambda c, h, w: {"factor": 4}),
    "sr x2": ("super_resolution", lambda c, h, w: {"factor": 2}),
    "inpaint box": ("Inpainting", lambda c, h, w: {"box": (h // 4, w // 4, h // 2, w // 2)}),
    "blur": ("blur", lambda c, h, w: {"sigma": 3.0}),
}
SHORT = {"sr4": "sr x4", "sr2": "sr x2", "inpaint": "inpaint box", "blur": "blur"}
MIB = 2.0**20


def _stand_in_prior(shape, device):
    """A ``DiffusersUNetPrior`` whose network is a per-channel affine map: eps = w_c x_t + b_c.

    One operator, one output tensor, a parameter to differentiate through. (Convolutions are no
    good here: the CPU kernels' own working memory, some 40 MiB for a 3x3 one at batch 4 with its
    backward and 2 GB for a 1x1 one at 256 x 3 x 256 x 256, would be counted as the solver's.)
    """
    from types import SimpleNamespace

    import torch

    from diff_zoo.recipes import NoiseSchedule
    from diffcore.adapters.diffusers_prior import DiffusersUNetPrior

    class AffineNet(torch.nn.Module):
        def __init__(self, channels, size):
            super().__init__()
            self.weight = torch.nn.Parameter(0.1 * torch.randn(1, channels, 1, 1))
            self.bias = torch.nn.Parameter(0.01 * torch.randn(1, channels, 1, 1))
            self.config = SimpleNamespace(sample_size=size, in_channels=channels, num_class_embeds=None, class_embed_type=None)

        @property
        def dtype(self):
            return self.weight.dtype

        def forward(self, sample, timestep, class_labels=None, return_dict=True):
            out = torch.addcmul(self.bias, sample, self.weight)
            return (out,) if not return_dict else SimpleNamespace(sample=out)

    c, h, w = shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = AffineNet(c, h)
    return DiffusersUNetPrior(net, NoiseSchedule().scheduler_config(), device=device)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class _Peak:
    """Peak memory beyond the level at ``start()``, in bytes: CUDA allocator, or the process's RSS."""

    def __init__(self, device):
        self.device = device

    def start(self):
        import gc

        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.method = "cuda max_memory_allocated"
            self.base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        rss = _status_kib("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.method = "VmHWM"
        except OSError:
            self.method = "ru_maxrss"
        if rss is None:  # no /proc: ru_maxrss against itself says nothing, so give up loudly
            raise SystemExit("needs /proc/self/status to read the resident set size")
        self.base = rss * 1024

    def stop(self) -> float:
        import resource

        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return float(torch.cuda.max_memory_allocated(self.device) - self.base)
        if self.method == "VmHWM":
            peak = _status_kib("VmHWM") * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return float(max(peak - self.base, 0))


def worker(case: dict) -> dict:
    """Measure one case in this process (which should be fresh)."""
    import torch

    from diff_inverse import operators as ops
    from diff_inverse.solve import solve
    from diff_inverse.solvers import SOLVERS
    from diffcore.registry import parse_spec

    torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    shape = (3, case["size"], case["size"])
    prior = _stand_in_prior(shape, device)
    factory, options = OPERATORS[case["operator"]]
    op = getattr(ops, factory)(shape, sigma_y=case["sigma_y"], **options(*shape))
    truth = (torch.rand((case["batch"], *shape), generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
    y = op.measure(truth, torch.Generator().manual_seed(1))
    name, options = parse_spec(case["solver"])
    solver = SOLVERS[name](**options)
    peak = _Peak(device)
    seen = {"batch": 0, "grad": False}  # how the solver calls the prior: largest batch, through autograd or not
    predict = prior.predict

    def watched(x_t, t, cond=None):
        seen["batch"] = max(seen["batch"], x_t.shape[0])
        seen["grad"] |= torch.is_grad_enabled() and x_t.requires_grad
        return predict(x_t, t, cond)

    def prior_call(x_t, grad):
        with torch.enable_grad() if grad else torch.no_grad():
            x_t.requires_grad_(grad)
            pred = prior.predict(x_t, 0.5)
            if grad:
                torch.autograd.grad(pred.x0.sum(), x_t)

    prior_call(torch.randn((1, *shape), device=device), True)
    solve(prior, op, y[:1], solver=solver, steps=2, generator=torch.Generator(device=device).manual_seed(0))
    prior.predict = watched
    peak.start()
    base_mib = peak.base / MIB
    start = time.perf_counter()
    x = solve(prior, op, y, solver=solver, steps=case["steps"], generator=torch.Generator(device=device).manual_seed(0))
    solver_mib = peak.stop() / MIB
    seconds = time.perf_counter() - start
    prior.predict = predict
    finite = bool(torch.isfinite(x).all())
    del x
    x_t = torch.randn((seen["batch"], *shape), device=device)  # the solver's state, not the prior's
    peak.start()
    prior_call(x_t, seen["grad"])  # the prior alone, as the solver called it
    prior_mib = peak.stop() / MIB
    return {
        "solver_mib": solver_mib,
        "prior_call_mib": prior_mib,
        "network_batch": seen["batch"],
        "network_grad": seen["grad"],
        "baseline_mib": base_mib,
        "method": peak.method,
        "seconds": seconds,
        "finite": finite,
    }


def run_case(case: dict, timeout: float = 600) -> dict:
    """Run one case in a fresh process; its result as a dict (``error`` set if it failed)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(case["threads"]), MALLOC_MMAP_THRESHOLD_=str(128 * 1024))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(case)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def cases(operators, solvers, size, batch, steps, device, threads, sigma_y):
    """Every (operator, solver) pair to measure, as worker arguments."""
    from diff_inverse import operators as ops
    from diff_inverse.solvers import solvers_for
    from diffcore.registry import parse_spec

    out = []
    for short in operators:
        label = SHORT[short]
        factory, options = OPERATORS[label]
        shape = (3, size, size)
        fits = solvers_for(getattr(ops, factory)(shape, sigma_y=sigma_y, **options(*shape)))
        for name in solvers:
            if parse_spec(name)[0] in fits:
                out.append(
                    {
                        "operator": label,
                        "solver": name,
                        "size": size,
                        "batch": batch,
                        "steps": steps,
                        "device": device,
                        "threads": threads,
                        "sigma_y": sigma_y,
                    }
                )
    return out


def _csv(text: str, known) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in items if s not in known]
    if unknown:
        raise SystemExit(f"unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    return items


def _solver_specs(text: str, known) -> tuple[str, ...]:
    """Comma-separated ``name[:key=value]`` items; an item ``key=value`` continues the one before."""
    from diffcore.registry import parse_spec

    specs: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        if item and "=" in item and ":" not in item and specs:
            specs[-1] += "," + item
        elif item:
            specs.append(item)
    unknown = [s for s in specs if parse_spec(s)[0] not in known]
    if unknown:
        raise SystemExit(f"unknown solver {', '.join(unknown)}; choose from {', '.join(known)}")
    return specs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--operators", default=",".join(SHORT), help=f"comma-separated, from {', '.join(SHORT)}")
    parser.add_argument("--solvers", default=None, help="comma-separated solver names (default: every registered solver)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--sigma-y", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads in each worker (default 1)")
    parser.add_argument("--quick", action="store_true", help="64 x 64, batch 2, 3 steps, sr x4 and inpainting with ddrm, dps and mcgdiff")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    from diff_inverse.solvers import SOLVERS

    operators = _csv(args.operators, SHORT)
    solvers = _solver_specs(args.solvers, SOLVERS) if args.solvers else (*SOLVERS, "mcgdiff:particles=16")
    if args.quick:
        args.size, args.batch, args.steps = 64, 2, 3
        operators = ("sr4", "inpaint")
        solvers = tuple(s for s in ("ddrm", "dps", "mcgdiff") if args.solvers is None or s in solvers)
    todo = cases(operators, solvers, args.size, args.batch, args.steps, args.device, args.threads, args.sigma_y)
    results = [(case, run_case(case)) for case in todo]
    methods = sorted({r["method"] for _, r in results if "method" in r})
    print(
        f"Solver peak memory beyond the prior: batch {args.batch} x 3 x {args.size} x {args.size}, {args.steps} steps, sigma_y "
        f"{args.sigma_y:g}, "
        f"affine stand-in prior, one process per case, {args.device} ({', '.join(methods) or 'no result'})\n"
    )
    print(
        "| operator | solver | peak MiB | prior call MiB | peak - prior call MiB | network batch | baseline RSS/allocated MiB | solve s "
        f"| peak - prior call <= {LIMIT_MIB:g} MiB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    failed = []
    for case, r in results:
        if "error" in r:
            failed.append(f"{case['solver']} on {case['operator']}")
            print(f"| {case['operator']} | {case['solver']} | error | | | | | | {r['error']} |")
            continue
        ok = r["solver_mib"] - r["prior_call_mib"] <= LIMIT_MIB
        if not ok:
            failed.append(f"{case['solver']} on {case['operator']}")
        batch = f"{r['network_batch']}{' (grad)' if r['network_grad'] else ''}"
        print(
            f"| {case['operator']} | {case['solver']} | {r['solver_mib']:.1f} | {r['prior_call_mib']:.1f} | "
            f"{r['solver_mib'] - r['prior_call_mib']:.1f} "
            f"| {batch} | {r['baseline_mib']:.0f} | {r['seconds']:.3f} | {'pass' if ok else 'FAIL'} |"
        )
    print(f"\nabove {LIMIT_MIB:g} MiB or failed: {', '.join(failed) if failed else 'none'}")


if __name__ == "__main__":
    main()
