"""Solver overhead per step: what each posterior solver spends besides the network, against the network.

The prior is the zoo's ``phantoms`` architecture, a 64x64 one-channel ``UNet2DModel``
(``diff_zoo.train.build_unet(RECIPES["phantoms"], seed)``: four levels, attention at the lowest
one and in the middle, 3.3 M parameters) with random weights, which cost the same as trained
ones, read through the recipe's scheduler config by diffcore's ``DiffusersUNetPrior`` (the
class the ``diffusers`` prior loads). Each solver runs through ``diff_inverse.solve.solve`` on a
batch of measurements of each operator it accepts: super-resolution x2 (average pooling),
box inpainting (the centre quarter missing), Gaussian deblurring (sigma 3), MRI (random lines,
acceleration 4) and, on request (``--operators``), sparse-view CT (30 views; no SVD, its
pseudo-inverse is 50 conjugate-gradient steps).

How the time is split. The prior's ``unet`` is replaced by a wrapper that times every call:

- forward: the wall time of the network call itself;
- backward: ΠGDM, DPS and MCG differentiate through the network. The wrapper passes the input
  through a no-op view and hooks the gradient of the network's output (the backward pass enters
  the network) and of that view (it leaves the network); the time between the two hooks is the
  network's backward pass, and counts as network time. The backward is a property of the
  method (one vector-Jacobian product per step), not overhead.

Overhead is the rest of the solve: the adapter's conversions (eps to x0, clipping), schedule
lookups, the operator (``A``, ``A_pinv``, the SVD transforms), noise draws, the solver's own
arithmetic, the autograd bookkeeping outside the network and the timer itself. A second table
times the bare network per call (no-grad forward, forward with autograd, forward + backward) as
a cross-check of the hooks: the network time of a gradient solver should be about its calls
times "forward + backward".

The last two columns come from one more, untimed run of each case under a dispatch mode that
counts aten operators (``torch.utils._python_dispatch.TorchDispatchMode``): the solver's
operators per step outside the network (its set-up included; the timing hooks move the
network's forward and backward to a count of their own), and their number as a share of the
network's. On a GPU, where a network this small is bound by kernel launches rather than by
arithmetic, that share is a rough forecast of the overhead ratio; on the CPU the arithmetic of
the convolutions dominates and the time ratio is far smaller.

Every case runs once to warm up, then ``--repeats`` times, the cases interleaved so that load
drifting over the run spreads over all of them; totals and network times are medians, the
ratio is the median of the per-run ratios. On CUDA the wrapper synchronises around each call.

    python tools/bench/solver_overhead.py                  # 20 steps, batch 4, 3 repeats, 1 thread
    python tools/bench/solver_overhead.py --operators sr,ct --solvers ddnm,dps
    python tools/bench/solver_overhead.py --quick          # a few seconds: the structure only

Prints two markdown tables; target: overhead / network <= 10 % for every row.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

SOLVERS = ("ddrm", "ddnm", "ddnm+", "pigdm", "dps", "red-diff", "diffpir", "daps", "projection", "ilvr", "mcg", "snips", "langevin")
# RED-Diff walks the whole grid here, so that each requested step is one network call (its default
# from an initial estimate, t_max 0.5, skips the noisier half of the grid)
SOLVER_OPTIONS = {"red-diff": {"t_max": 1.0}}
OPERATORS = {
    # name: (registered operator, options given x_shape = (C, H, W))
    "sr x2": ("sr", lambda c, h, w: {"factor": 2}),
    "inpaint box": ("inpaint", lambda c, h, w: {"box": (h // 4, w // 4, h // 2, w // 2)}),
    "blur": ("blur", lambda c, h, w: {"sigma": 3.0}),
    "mri x4": ("mri", lambda c, h, w: {"mask": "random", "acceleration": 4}),
    "ct 30": ("ct", lambda c, h, w: {"angles": 30}),
}
SHORT = {"sr": "sr x2", "inpaint": "inpaint box", "blur": "blur", "mri": "mri x4", "ct": "ct 30"}
DEFAULT_OPERATORS = ("sr", "inpaint", "blur", "mri")
THRESHOLD = 10.0  # per cent


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def op_counter():
    """A dispatch mode counting the aten operators run under it: in ``ops``, or in ``paused_ops`` while ``paused`` > 0."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpCounter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops, self.paused, self.paused_ops = 0, 0, 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if self.paused:
                self.paused_ops += 1
            else:
                self.ops += 1
            return func(*args, **(kwargs or {}))

    return OpCounter()


class TimedNetwork:
    """Stands in for the prior's UNet: calls it and adds up its forward and backward time.

    With ``counter`` set (an :func:`op_counter`), the network's own operators, forward and
    backward, go to its ``paused_ops``.
    """

    def __init__(self, net, device):
        self.net, self.device = net, device
        self.config, self.dtype = net.config, net.dtype
        self.counter = None
        self.reset()

    @property
    def training(self) -> bool:
        return self.net.training

    def parameters(self):
        return self.net.parameters()

    def reset(self):
        self.calls, self.forward_s, self.backward_s = 0, 0.0, 0.0

    def _pause(self, by: int):
        if self.counter is not None:
            self.counter.paused += by

    def __call__(self, sample, timestep, *args, **kwargs):
        import torch

        self._pause(1)
        track = torch.is_grad_enabled() and sample.requires_grad
        if track:
            sample = sample.view_as(sample)  # a node of its own whose gradient marks the end of the backward
        _sync(self.device)
        start = time.perf_counter()
        out = self.net(sample, timestep, *args, **kwargs)
        _sync(self.device)
        self.forward_s += time.perf_counter() - start
        self.calls += 1
        if track:
            first = out[0] if isinstance(out, tuple) else out.sample
            entered = []

            def enter(grad):
                self._pause(1)
                _sync(self.device)
                entered.append(time.perf_counter())

            def leave(grad):
                _sync(self.device)
                if entered:
                    self.backward_s += time.perf_counter() - entered.pop()
                    self._pause(-1)

            first.register_hook(enter)
            sample.register_hook(leave)
        self._pause(-1)
        return out


def build_prior(device, seed: int = 0, recipe: str = "phantoms"):
    """The zoo recipe's UNet (random weights) and scheduler config as a ``DiffusersUNetPrior``."""
    from diff_zoo.recipes import RECIPES
    from diff_zoo.train import build_unet
    from diffcore.adapters.diffusers_prior import DiffusersUNetPrior

    r = RECIPES[recipe]
    return DiffusersUNetPrior(build_unet(r, seed).eval().requires_grad_(False), r.schedule.scheduler_config(), device=device, owned=True)


def make_operator(short: str, x_shape, sigma_y: float):
    import diffcore

    name, options = OPERATORS[SHORT[short]]
    return diffcore.create("operator", name, x_shape=tuple(x_shape), sigma_y=sigma_y, **options(*x_shape))


def _cases(prior, operators, solvers, batch, sigma_y, device):
    import torch

    from diff_inverse.solvers import solvers_for

    g = torch.Generator().manual_seed(0)
    truth = (torch.rand((batch, *prior.sample_shape), generator=g) * 2 - 1).to(device)
    cases = []
    for short in operators:
        op = make_operator(short, prior.sample_shape, sigma_y)
        y = op.measure(truth, torch.Generator().manual_seed(1))
        fits = set(solvers_for(op))
        cases += [(name, SHORT[short], op, y) for name in solvers if name in fits]
    return cases


def _count_ops(prior, timed, case, steps, device) -> tuple[float, float]:
    """Aten operators per step outside the network (set-up included) and inside it."""
    import torch

    from diff_inverse.solve import solve

    name, _, op, y = case
    timed.counter = op_counter()
    try:
        with timed.counter:
            solve(
                prior,
                op,
                y,
                solver=name,
                steps=steps,
                generator=torch.Generator(device=device).manual_seed(0),
                **SOLVER_OPTIONS.get(name, {}),
            )
        return timed.counter.ops / steps, timed.counter.paused_ops / steps
    finally:
        timed.counter = None


def _run(prior, timed, case, steps, device):
    import torch

    from diff_inverse.solve import solve

    name, _, op, y = case
    timed.reset()
    generator = torch.Generator(device=device).manual_seed(0)
    _sync(device)
    start = time.perf_counter()
    x = solve(prior, op, y, solver=name, steps=steps, generator=generator, **SOLVER_OPTIONS.get(name, {}))
    _sync(device)
    total = time.perf_counter() - start
    return total, timed.forward_s, timed.backward_s, timed.calls, bool(torch.isfinite(x).all())


def calibrate(prior, timed, batch, device, repeats):
    """Bare network per call (ms, aten operators): no-grad forward, forward with autograd, forward + backward."""
    import torch

    x = torch.randn((batch, *prior.sample_shape), generator=torch.Generator().manual_seed(2)).to(device)
    t = torch.tensor(500, device=device)
    net = timed.net

    def fwd():
        with torch.no_grad():
            net(x, t, return_dict=False)

    def fwd_grad():
        xg = x.clone().requires_grad_(True)
        net(xg, t, return_dict=False)

    def fwd_bwd():
        xg = x.clone().requires_grad_(True)
        (out,) = net(xg, t, return_dict=False)
        torch.autograd.grad(out.sum(), xg)

    rows = []
    for label, fn in (("forward (no grad)", fwd), ("forward with autograd", fwd_grad), ("forward + backward", fwd_bwd)):
        fn()
        times = []
        for _ in range(max(3, repeats)):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - start)
        with op_counter() as counter:
            fn()
        rows.append((label, 1e3 * statistics.median(times), counter.ops))
    return rows


def bench(device="cpu", operators=DEFAULT_OPERATORS, solvers=SOLVERS, batch=4, steps=20, repeats=3, sigma_y=0.0, seed=0, network=None):
    """One dict per (solver, operator) case, and the calibration rows ``(label, ms, aten ops)``.

    ``network``: options of :class:`diffcore.devices.tuned` (``compile``, ``autocast``, ``channels_last``)
    the network runs under, timed as the network.
    """
    import torch

    device = torch.device(device)
    prior = build_prior(device, seed)
    if network:
        from diffcore.devices import tuned

        with tuned(prior, **network):
            return _bench(prior, device, operators, solvers, batch, steps, repeats, sigma_y)
    return _bench(prior, device, operators, solvers, batch, steps, repeats, sigma_y)


def _bench(prior, device, operators, solvers, batch, steps, repeats, sigma_y):
    timed = TimedNetwork(prior.network, device)
    prior.network = timed
    cases = _cases(prior, operators, solvers, batch, sigma_y, device)
    for case in cases:  # warm-up: first-call costs (allocations, autograd, lazily built tables)
        _run(prior, timed, case, 2, device)
    runs = {i: [] for i in range(len(cases))}
    for _ in range(repeats):
        for i, case in enumerate(cases):
            runs[i].append(_run(prior, timed, case, steps, device))
    rows = []
    for i, case in enumerate(cases):
        rs = runs[i]
        rows.append(
            {
                "solver": case[0],
                "operator": case[1],
                "calls": rs[0][3],
                "total": statistics.median(r[0] for r in rs),
                "network": statistics.median(r[1] + r[2] for r in rs),
                "backward": statistics.median(r[2] for r in rs),
                "overhead": statistics.median(r[0] - r[1] - r[2] for r in rs),
                "ratio": statistics.median(100 * (r[0] - r[1] - r[2]) / (r[1] + r[2]) for r in rs),
                "ops": _count_ops(prior, timed, case, steps, device),  # (solver, network) per step
                "finite": all(r[4] for r in rs),
            }
        )
    calibration = calibrate(prior, timed, batch, device, repeats)
    prior.network = timed.net
    return rows, calibration


def _csv(text: str, known) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in items if s not in known]
    if unknown:
        raise SystemExit(f"unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    return items


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--operators", default=",".join(DEFAULT_OPERATORS), help=f"comma-separated, from {', '.join(SHORT)}")
    parser.add_argument("--solvers", default=",".join(SOLVERS), help="comma-separated solver names (mcgdiff may be added)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sigma-y", type=float, default=0.0, help="measurement noise (default 0: every solver takes noiseless y)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="batch 1, 3 steps, 1 repeat, sr and inpainting: checks that it runs")
    parser.add_argument("--compile", action="store_true", help="compile the network (CUDA graphs on CUDA; diffcore.devices.tuned)")
    parser.add_argument("--autocast", default=None, help="bf16 or fp16: the network under autocast")
    parser.add_argument("--channels-last", action="store_true", help="the network in channels-last layout")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    import torch

    from diff_inverse.solvers import SOLVERS as REGISTERED

    torch.set_num_threads(args.threads)
    operators, solvers = _csv(args.operators, SHORT), _csv(args.solvers, REGISTERED)
    if args.quick:
        args.batch, args.steps, args.repeats, operators = 1, 3, 1, ("sr", "inpaint")
    network = {k: v for k, v in (("compile", args.compile), ("autocast", args.autocast), ("channels_last", args.channels_last)) if v}
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # a network option that could not apply: said in the output
        warnings.simplefilter("always")
        rows, calibration = bench(args.device, operators, solvers, args.batch, args.steps, args.repeats, args.sigma_y, network=network)
    fallbacks = sorted({str(w.message) for w in caught if w.category.__name__ == "SpeedWarning"})
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} thread(s)"
    options = ", ".join(f"{k} {v}" if v is not True else k.replace("_", "-") for k, v in network.items()) or "plain"
    print(
        f"Solver overhead: zoo 'phantoms' UNet (random weights, network {options}), batch {args.batch} x 1 x 64 x 64, {args.steps} "
        f"steps, sigma_y {args.sigma_y:g}, median of {args.repeats} interleaved runs ({where}, torch {torch.__version__})\n"
    )
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(
                {
                    "options": options,
                    "device": where,
                    "torch": torch.__version__,
                    "rows": rows,
                    "calibration": calibration,
                    "fallbacks": fallbacks,
                },
                f,
                indent=1,
            )
    print(
        "| solver | operator | network calls | total s | network s | of which backward s | overhead s | overhead ms/step | overhead / "
        "network % "
        "| solver ops/step | solver ops / network ops % |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        per_step = 1e3 * r["overhead"] / args.steps
        print(
            f"| {r['solver']} | {r['operator']} | {r['calls']} | {r['total']:.3f} | {r['network']:.3f} | {r['backward']:.3f} | "
            f"{r['overhead']:.3f} "
            f"| {per_step:.2f} | {r['ratio']:.1f} | {r['ops'][0]:.0f} | {100 * r['ops'][0] / max(r['ops'][1], 1):.0f} |"
        )
    print("\n| bare network, per call | ms | aten ops |")
    print("|---|---:|---:|")
    for label, ms, ops in calibration:
        print(f"| {label} | {ms:.2f} | {ops} |")
    over = [f"{r['solver']} on {r['operator']} ({r['ratio']:.0f} %)" for r in rows if not r["ratio"] <= THRESHOLD]
    worst = max(rows, key=lambda r: r["ratio"] if math.isfinite(r["ratio"]) else math.inf)
    print(
        f"\nlargest overhead: {worst['solver']} on {worst['operator']}, {worst['ratio']:.1f} %; above {THRESHOLD:g} %: "
        f"{', '.join(over) if over else 'none'}"
    )
    bad = [f"{r['solver']} on {r['operator']}" for r in rows if not r["finite"]]
    if bad:
        print(f"non-finite output (random weights; timing unaffected): {', '.join(bad)}")


if __name__ == "__main__":
    main()
