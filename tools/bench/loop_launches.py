"""What a sampler's or solver's step loop asks of the device, counted on the CPU: kernel launches and host reads per step.

On a GPU a step costs its network call plus one kernel launch per operator the loop runs on the
device, plus a wait for every value it reads back to Python; at batch 4 on a 64x64 UNet the
launches, not the arithmetic, set the loop's overhead (issue 20). This script counts both on the
CPU, where they can be counted exactly and without a GPU, from the first network call to the end
of the run and outside the prior's own call:

- device ops per step: the aten operators, views left out, that touch a tensor in the state's
  dtype (float32) or a boolean: on CUDA each is a kernel launch (a float64 -> float32 copy is the
  host-to-device copy of a schedule coefficient);
- host ops per step: operators on float64 tensors only (the schedule's arithmetic on the host
  time grid), which a GPU run does on the CPU;
- the network's backward pass (gradient solvers) is the network's and is left out, from where the
  gradient enters the prediction to where it leaves for ``x_t``;
- host reads per step: ``item()``, ``float()``, ``bool()``, ... (:class:`diffcore.devices.HostReads`
  where it exists; a wait for the device each on CUDA).

The prior is a small random ``UNet2DModel`` (16x16) through diffcore's ``DiffusersUNetPrior``; the
counts do not depend on its size. Run it against another checkout of the packages to compare
(``PYTHONPATH=<old>/packages/diffcore/src:<old>/plugins/diff-inverse/src``).

    python tools/bench/loop_launches.py [--steps 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import warnings

SAMPLERS = ("ddpm", "ddim", "ddim:eta=0.5", "euler", "heun", "dpm++2m")
SOLVERS = ("ddrm", "ddnm", "ddnm+", "pigdm", "dps", "mcg", "red-diff", "diffpir", "daps", "ilvr")
VIEWS = {
    "view",
    "select",
    "slice",
    "expand",
    "as_strided",
    "unsqueeze",
    "squeeze",
    "reshape",
    "_reshape_alias",
    "t",
    "detach",
    "alias",
    "lift_fresh",
}


def _prior():
    from diff_zoo.recipes import RECIPES
    from diff_zoo.train import build_unet
    from diffcore.adapters.diffusers_prior import DiffusersUNetPrior

    r = RECIPES["patches"]
    tiny = dataclasses.replace(r, unet=dataclasses.replace(r.unet, block_out_channels=(8, 16, 16), sample_size=16))
    return DiffusersUNetPrior(build_unet(tiny, 0).eval().requires_grad_(False), tiny.schedule.scheduler_config(), owned=True)


def _counter():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.on, self.paused, self.device, self.host, self.backward = False, 0, 0, 0, False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if self.on and not self.paused and func.__name__.split(".")[0] not in VIEWS:
                tensors = [
                    a
                    for a in (*args, *(kwargs or {}).values(), *(out if isinstance(out, (tuple, list)) else (out,)))
                    if isinstance(a, torch.Tensor)
                ]
                if any(t.dtype != torch.float64 for t in tensors):
                    self.device += 1
                elif tensors:
                    self.host += 1
            return out

    return Ops()


def _enter(ops):
    if not ops.backward:
        ops.backward = True
        ops.paused += 1


def _leave(ops):
    if ops.backward:
        ops.backward = False
        ops.paused -= 1


def count(prior, run, steps: int) -> dict:
    """Device ops, host ops and host reads per step of ``run(watched_prior)``."""
    import torch

    from diffcore.priors.wrapper import PriorWrapper

    try:
        from diffcore.devices import HostReads
    except ImportError:  # an older checkout of the packages: this one's counter
        import importlib.util
        from pathlib import Path

        spec = importlib.util.spec_from_file_location(
            "_devices", Path(__file__).resolve().parents[2] / "packages/diffcore/src/diffcore/devices.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        HostReads = module.HostReads
    ops = _counter()
    reads = HostReads() if HostReads is not None else None

    class Watched(PriorWrapper):
        first = None

        def predict(self, x_t, t, cond=None):
            ops.on = True
            if reads is not None and self.first is None:
                self.first = len(reads.reads)
            ops.paused += 1
            try:
                track = torch.is_grad_enabled() and x_t.requires_grad
                if track:  # the network's backward pass is the network's: paused from where it enters to where it leaves
                    x_t = x_t.view_as(x_t)
                    x_t.register_hook(lambda g: _leave(ops))
                if reads is not None:
                    with reads.paused():
                        pred = self.prior.predict(x_t, t, cond)
                else:
                    pred = self.prior.predict(x_t, t, cond)
                if track:
                    for out in (pred.x0, pred.eps):
                        if out.requires_grad:
                            out.register_hook(lambda g: _enter(ops))
                return pred
            finally:
                ops.paused -= 1

    watched = Watched(prior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if reads is not None:
            with reads, ops:
                run(watched)
        else:
            with ops:
                run(watched)
    n_reads = len(reads.reads[watched.first :]) if reads is not None else None
    return {"device": ops.device / steps, "host": ops.host / steps, "reads": None if n_reads is None else n_reads / steps}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import torch

    import diffcore
    from diff_inverse.solve import solve

    torch.set_num_threads(1)
    prior = _prior()
    rows = []
    for name in SAMPLERS:
        rows.append(
            (
                "sampler",
                name,
                count(
                    prior,
                    lambda p, n=name: diffcore.sample(p, 2, steps=args.steps, sampler=n, generator=torch.Generator().manual_seed(0)),
                    args.steps,
                ),
            )
        )
    truth = torch.rand((2, *prior.sample_shape), generator=torch.Generator().manual_seed(0)) * 2 - 1
    op = diffcore.create("operator", "sr", x_shape=tuple(prior.sample_shape), sigma_y=0.05, factor=2)
    y = op.measure(truth, torch.Generator().manual_seed(1))
    for name in SOLVERS:
        rows.append(
            (
                "solver (sr x2)",
                name,
                count(
                    prior,
                    lambda p, n=name: solve(p, op, y, solver=n, steps=args.steps, generator=torch.Generator().manual_seed(0)),
                    args.steps,
                ),
            )
        )
    print(f"Per step of a {args.steps}-step run, outside the network call (torch {torch.__version__}):\n")
    print("| kind | name | device ops (kernel launches on CUDA) | host ops | host reads |")
    print("|---|---|---:|---:|---:|")
    for kind, name, c in rows:
        reads = "-" if c["reads"] is None else f"{c['reads']:.1f}"
        print(f"| {kind} | {name} | {c['device']:.1f} | {c['host']:.1f} | {reads} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"kind": k, "name": n, **c} for k, n, c in rows], f, indent=1)


if __name__ == "__main__":
    main()
