"""diff-inverse's posterior solvers against deepinv's (DPS, DDRM, DiffPIR) on the same problems.

Every pair of runs shares the prior, the operator, the measurement y and the number of network
calls; only the solver differs. What is measured:

1. GMM quality: the Gaussian-mixture benchmark of :mod:`diff_inverse.bench.gmm` (25 components,
   exact posterior). Sliced Wasserstein distance (100 directions) of each solver's samples to
   exact posterior samples, per cell (d_x, d_y, steps), mean ± 1.96 std / sqrt(n) over random
   problems; "prior" (prior samples) and "floor" (two exact sample sets) bracket it.
2. Image quality: the shipped ``zoo:digits`` prior used unconditionally (its null label), held-out
   test digits, super-resolution x2, Gaussian deblurring and box inpainting with sigma_y = 0.05;
   mean PSNR over the images of one posterior sample each (and of the pseudo-inverse).
3. Wall time per sample of each solver, measured in the same run with the same thread count, and
   the ratio ours / deepinv for each pair (dps/dps, ddrm/ddrm, diffpir/diffpir).
   deepinv's time is taken without the adapter below (its own time outside ``prior.predict``,
   clocked inside it and shown apart): that cost is ours, not deepinv's. The autograd backward
   through the adapter's few elementwise operations (DPS) stays in.

How deepinv sees our prior. deepinv's solvers call a ``deepinv.models.Denoiser`` ``D(x, sigma)``
on images in [0, 1] with ``x = x0 + sigma n``. :func:`make_denoiser` wraps a diffcore prior as one:
an image ``u`` at noise ``sigma`` is mapped to our frame ``z = c (2 u - 1)`` at noise
``nu = 2 c sigma``, the prior is asked at the time t with ``sigma_t / alpha_t = nu``
(``diffcore.schedules.time_at_log_snr``) on ``x_t = alpha_t z``, and its x0 is mapped back. ``c = 1``
for images in [-1, 1] (deepinv's own [0, 1] convention); the mixture spans +-16 and uses ``c = 24``
(an exact change of variables, so that deepinv's clamps to [-1, 1] do not cut it). Noise levels
above the prior's schedule are denoised at its last time (counted and reported).
The operator is passed as a ``deepinv.physics.DecomposablePhysics`` built from our operator's SVD
(``A = U diag(s) V^T``), with y mapped to the same frame and ``GaussianNoise(sigma_y / (2 c))``.

Settings. Ours: the GMM benchmark's (``gmm.solver_options``; ΠGDM with the mixture's variance)
and the defaults for images. deepinv:

- DPS: ``deepinv.sampling.DPS`` (norm guidance, weight 1 as shipped) with an ``AncestralSolver``
  on our time grid (same noise levels, mapped to deepinv's VP times) and our DDIM eta.
  ``dps*`` is the same with the weight set per step so that its guidance step equals ours
  (``zeta / ||y - A x0|| grad ||y - A x0||^2``): it isolates the guidance scale. Our ``dps``
  column runs that rule (``discrepancy=False``); ``dps+cap`` is our default, the rule with the
  discrepancy cap, which deepinv does not have.
- DDRM: ``deepinv.sampling.DDRM`` with our noise levels (one denoiser call per level, as ours)
  and our etaA / etaB; on the images, the grid our DDRM runs by default, one level moved onto
  y's noise level (``snap``), so both take the same denoiser calls.
- DiffPIR: ``deepinv.sampling.DiffPIR`` as shipped (its own 1000-step DDPM grid sampled at
  ``steps`` points, quadratically spaced, zeta 0.1, lambda 7), beside ours (``diffpir``, the same
  zeta and lambda, on our grid). What still differs: the grid, deepinv's data step written in its
  [0, 1] frame, and deepinv returning the state of its last step rather than its x0. ΠGDM and DDNM+,
  which also correct the denoiser's x0 with the measurement, are shown too.

    .venv/bin/python tools/bench/deepinv_peer.py                      # the default run
    .venv/bin/python tools/bench/deepinv_peer.py --quick              # the check run, ~30 s
    .venv/bin/python tools/bench/deepinv_peer.py --page docs/inverse-deepinv.md   # the page, whole: both runs

Run on one thread (``OMP_NUM_THREADS=1``; the script also calls ``torch.set_num_threads``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field

import torch

GMM_SCALE = 24.0  # the mixture's frame in deepinv's [0, 1] convention: x01 = (x / 24 + 1) / 2
OURS = ("dps", "ddrm", "pigdm", "ddnm+", "diffpir")
# "ours dps" is the paper's step rule (discrepancy cap off), like for like with deepinv's; "ours dps+cap"
# is our default (the discrepancy cap of diff_inverse.solvers.dps)
VARIANTS = {"dps+cap": ("dps", {"discrepancy": True}), "dps": ("dps", {"discrepancy": False})}
COLUMNS = (
    ("ours", "dps"),
    ("ours", "dps+cap"),
    ("deepinv", "dps"),
    ("deepinv", "dps*"),
    ("ours", "ddrm"),
    ("deepinv", "ddrm"),
    ("ours", "diffpir"),
    ("deepinv", "diffpir"),
    ("ours", "pigdm"),
    ("ours", "ddnm+"),
)
PAIRS = (("dps", "dps"), ("ddrm", "ddrm"), ("diffpir", "diffpir"))  # (ours, deepinv) for the time ratios
IMAGE_OPERATORS = {  # label: registered operator spec (x_shape and sigma_y are added)
    "sr x2": "sr:factor=2",
    "blur (Gaussian, sigma 1.5)": "blur:sigma=1.5",
    "inpaint (centre box)": "inpaint:box=(4,4,8,8)",
}
IMAGE_SIGMA_Y = 0.05


def column_name(lib: str, name: str) -> str:
    return f"{lib} {name}"


# -- deepinv adapters -----------------------------------------------------------------------------


def make_denoiser(prior, scale: float = 1.0, dtype=torch.float32):
    """A ``deepinv.models.Denoiser`` from a diffcore prior: ``D(u, sigma)`` on [0, 1] images.

    ``u`` (any shape with ``B`` first and ``prod(prior.sample_shape)`` entries per item) is
    ``(z / scale + 1) / 2`` for ``z`` in the prior's frame, and ``sigma`` the noise level in the
    same units; the prior is called in ``dtype`` (deepinv hands its denoisers float32). ``calls`` and ``clamped`` count the calls
    and those above the schedule's range;
    ``overhead`` is the seconds spent in the wrapper outside ``prior.predict`` (the frame change).
    """
    import deepinv

    from diffcore.samplers.grid import coefs
    from diffcore.schedules import time_at_log_snr

    schedule = prior.schedule
    t_max = torch.tensor(1.0, dtype=torch.float64)
    nu_max = float(schedule.sigma(t_max) / schedule.alpha(t_max))

    class PriorDenoiser(deepinv.models.Denoiser):
        def __init__(self):
            super().__init__()
            self.prior, self.scale = prior, float(scale)
            self.dtype = dtype
            self.times: dict[float, torch.Tensor] = {}
            self.calls = self.clamped = 0
            self.overhead = 0.0

        def time_at(self, nu: float) -> torch.Tensor:
            if nu not in self.times:
                if nu >= nu_max:
                    self.times[nu] = t_max
                else:
                    self.times[nu] = time_at_log_snr(schedule, torch.tensor(-math.log(nu), dtype=torch.float64)).reshape(())
            return self.times[nu]

        def forward(self, x, sigma, *args, **kwargs):
            start = time.perf_counter()
            self.calls += 1
            n = x.shape[0]
            sig = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu().reshape(-1)
            nus = [2.0 * self.scale * float(s) for s in sig]
            if len(set(nus)) > 1:
                raise NotImplementedError("one noise level per call (deepinv's DPS, DDRM and DiffPIR pass one)")
            nu = nus[0]
            if nu <= 0:
                return x
            self.clamped += nu > nu_max * (1 + 1e-5)  # not float32 rounding at the top
            t = self.time_at(nu)
            z = (self.scale * (2 * x - 1)).to(self.dtype).reshape(n, *self.prior.sample_shape)
            a, _ = coefs(schedule, t, z)
            inner = time.perf_counter()
            x0 = self.prior.predict(a * z, t).x0
            inner = time.perf_counter() - inner
            out = ((x0 / self.scale + 1) / 2).reshape(x.shape).to(x.dtype)
            self.overhead += time.perf_counter() - start - inner
            return out

    return PriorDenoiser()


def svd_physics(operator, scale: float, dtype):
    """``deepinv.physics.DecomposablePhysics`` for our operator in the [0, 1] frame of ``scale``.

    With ``x01 = (x / scale + 1) / 2``, ``y = A x + n`` becomes ``y01 = A x01 + n / (2 scale)``
    for ``y01 = (y + scale A 1) / (2 scale)`` (see :func:`frame_y`). The transformed domain is
    ``(B, 1, 1, n)`` with the singular values first, zeros for the null space (``mask``).
    """
    import deepinv

    shape = tuple(operator.x_shape)
    image = (1, 1, shape[0]) if len(shape) == 1 else shape
    n = math.prod(shape)
    s = operator.singulars().to(dtype)
    k = s.numel()
    mask = torch.zeros(1, 1, 1, n, dtype=dtype)
    mask[..., :k] = s

    def V_adjoint(x):
        return operator.Vt(x.reshape(x.shape[0], *shape)).reshape(x.shape[0], 1, 1, n)

    def V(c):
        return operator.V(c.reshape(c.shape[0], n)).reshape(c.shape[0], *image)

    def U_adjoint(y):
        u = operator.Ut(y)
        return torch.cat([u, u.new_zeros(u.shape[0], n - k)], 1).reshape(y.shape[0], 1, 1, n)

    def U(c):
        return operator.U(c.reshape(c.shape[0], n)[:, :k])

    noise = deepinv.physics.GaussianNoise(sigma=operator.sigma_y / (2 * scale))
    return deepinv.physics.DecomposablePhysics(U=U, U_adjoint=U_adjoint, V=V, V_adjoint=V_adjoint, mask=mask, noise_model=noise)


def frame_y(operator, y: torch.Tensor, scale: float) -> torch.Tensor:
    ones = torch.ones(1, *operator.x_shape, dtype=y.dtype)
    return (y + scale * operator.A(ones)) / (2 * scale)


def from_frame(u: torch.Tensor, scale: float, x_shape) -> torch.Tensor:
    return (scale * (2 * u - 1)).reshape(u.shape[0], *x_shape)


def our_grid(prior, steps: int, snap_to: float | None = None):
    """Our solvers' time grid and its noise levels ``nu = sigma / alpha`` (the last is 0);
    ``snap_to``: one level moved onto it, as our DDRM does for noisy y (``snap_to_noise_level``)."""
    from diff_inverse.solvers._common import snap_to_noise_level

    ts = prior.schedule.timesteps(steps)
    if snap_to is not None:
        ts = snap_to_noise_level(prior.schedule, ts, snap_to)
    nu = prior.schedule.sigma(ts) / prior.schedule.alpha(ts)
    nu[-1] = 0.0
    return ts, nu


def _vp_times(sde, sigmas: torch.Tensor) -> torch.Tensor:
    """deepinv's SDE times with ``sde.sigma_t(tau) = sigmas`` (bisection; its sigma grows with tau)."""
    lo = torch.zeros_like(sigmas)
    hi = torch.full_like(sigmas, float(sde.T))
    for _ in range(60):
        mid = (lo + hi) / 2
        above = sde.sigma_t(mid) > sigmas
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    tau = (lo + hi) / 2
    tau[sigmas <= 0] = 0.0
    return tau


def run_deepinv(
    name: str,
    prior,
    operator,
    y: torch.Tensor,
    *,
    steps: int,
    seed: int,
    scale: float,
    eta: float,
    zeta: float,
    etaA: float = 0.85,
    etaB: float = 1.0,
    snap: bool = False,
):
    """One deepinv solver on our problem; returns samples in our frame and the denoiser (for its counters).
    ``snap``: DDRM gets the grid ours runs on by default (one level moved onto y's, see ``diff_inverse.solvers.ddrm``)."""
    import deepinv
    import numpy as np
    from deepinv.sampling import AncestralSolver

    dtype = y.dtype
    den = make_denoiser(prior, scale, dtype)
    physics = svd_physics(operator, scale, dtype)
    y01 = frame_y(operator, y, scale)
    ts, nu = our_grid(prior, steps)
    torch.manual_seed(seed)
    if name in ("dps", "dps*"):
        rng = torch.Generator().manual_seed(seed)
        weights, fidelity = {}, []

        class Solver(AncestralSolver):
            def step(self, sde, t0, t1, x0, *args, **kwargs):
                if name == "dps*":
                    fidelity[0].weight = weights[round(float(t0), 12)]
                return super().step(sde, t0, t1, x0, *args, **kwargs)

        probe = deepinv.sampling.VariancePreservingDiffusion(dtype=torch.float64)
        tau = _vp_times(probe, nu / scale)
        solver = Solver(timesteps=tau, eta=eta, rng=rng)
        model = deepinv.sampling.DPS(den, solver=solver, dtype=torch.float64)
        fidelity.append(model.data_fidelity)
        # dps*: deepinv moves our x_t by -(w / (2 c)) (alpha_s / alpha_t) sigma_t^2 (1 - coef) grad ||y - A x0||
        # (AncestralSolver's step on the [-1, 1] state, see the module docstring); ours by -2 zeta grad ||y - A x0||.
        a = prior.schedule.alpha(ts)
        sig = prior.schedule.sigma(ts)
        for i in range(steps):
            r = nu[i + 1] / nu[i]
            coef = r * torch.sqrt((1 - eta**2 * (1 - r**2)).clamp_min(0))
            weights[round(float(tau[i]), 12)] = float(4 * zeta * scale * a[i] / (a[i + 1] * sig[i] ** 2 * (1 - coef)))
        out = model(y01, physics)
    elif name == "ddrm":
        if snap and operator.sigma_y > 0:  # DDRM's target: the median of sigma_y / s_i
            ts, nu = our_grid(prior, steps, float((operator.sigma_y / operator.singulars().to(dtype)).median()))
        model = deepinv.sampling.DDRM(den, sigmas=np.asarray((nu[:-1] / (2 * scale)).tolist()), eta=etaA, etab=etaB)
        out = model(y01, physics)
    elif name == "diffpir":
        model = deepinv.sampling.DiffPIR(
            den, data_fidelity=deepinv.optim.data_fidelity.L2(), max_iter=steps, sigma=operator.sigma_y / (2 * scale)
        )
        out = model(y01, physics)
    else:
        raise ValueError(f"unknown deepinv solver {name!r}")
    return from_frame(out.detach().to(dtype), scale, operator.x_shape), den


# -- runs -------------------------------------------------------------------------------------


@dataclass
class Results:
    """Per cell: quality values (SW per problem, or PSNR per image) and seconds per sample, by column."""

    quality: dict = field(default_factory=dict)  # {cell: {column: [values]}}
    seconds: dict = field(default_factory=dict)  # {cell: {column: [seconds per sample]}}
    notes: dict = field(default_factory=dict)  # {cell: {column: "n/a: reason"}}
    clamped: dict = field(default_factory=dict)  # {(part, column): (clamped calls, calls)}
    adapter: dict = field(default_factory=dict)  # {cell: {column: [seconds per sample in the denoiser wrapper]}}

    def add(self, cell, column, values, seconds):
        """``values``: the quality of one run (a list: one SW, or one PSNR per image)."""
        self.quality.setdefault(cell, {}).setdefault(column, []).extend(values)
        self.seconds.setdefault(cell, {}).setdefault(column, []).append(seconds)

    def fail(self, cell, column, reason):
        self.notes.setdefault(cell, {})[column] = f"n/a ({reason})"

    def count(self, cell, column, den, n):
        c, k = self.clamped.get((cell[0], column), (0, 0))
        self.clamped[(cell[0], column)] = (c + den.clamped, k + den.calls)
        self.adapter.setdefault(cell, {}).setdefault(column, []).append(den.overhead / n)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _solve_all(results, cell, prior, operator, y, *, steps, seed, scale, options, score, deepinv_options):
    """Run every column on one problem; ``score(x) -> float`` gives the quality."""
    from diff_inverse import solve

    n = y.shape[0]
    for i, (lib, name) in enumerate(COLUMNS):
        column = column_name(lib, name)
        try:
            if lib == "ours":
                g = torch.Generator().manual_seed(seed + i)
                solver, extra = VARIANTS.get(name, (name, {}))
                kw = {**options.get(solver, {}), **extra}
                x, secs = _timed(lambda g=g, solver=solver, kw=kw: solve(prior, operator, y, solver=solver, steps=steps, generator=g, **kw))
            else:
                (x, den), secs = _timed(
                    lambda i=i, name=name: run_deepinv(name, prior, operator, y, steps=steps, seed=seed + i, scale=scale, **deepinv_options)
                )
                results.count(cell, column, den, n)
        except Exception as exc:  # a solver that cannot run here is reported, not fatal
            results.fail(cell, column, f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
            continue
        values = score(x) if bool(torch.isfinite(x).all()) else [math.nan]
        results.add(cell, column, values, secs / n)


def run_gmm(results: Results, dxs, dys, steps_list, *, problems: int, samples: int, seed: int = 0, progress=print):
    """The GMM cells: SW to exact posterior samples for every column, plus ``prior`` and ``floor``."""
    from diff_inverse.bench import gmm
    from diff_inverse.operators import DenseLinear
    from diffcore.metrics import sliced_wasserstein

    for d_x in dxs:
        for d_y in dys:
            for steps in steps_list:
                cell = ("gmm", d_x, d_y, steps)
                eta = gmm.authors_eta(steps)
                for p in range(problems):
                    g = torch.Generator().manual_seed(seed * 100_003 + 1000 * d_x + 10 * d_y + p)
                    prob = gmm.make_problem(d_x, d_y, g)
                    ref = prob.posterior.sample(samples, generator=g, dtype=torch.float64)

                    def sw(x, ref=ref, p=p):  # the same directions for every sample set of a problem
                        return [sliced_wasserstein(x, ref, n_dirs=100, generator=torch.Generator().manual_seed(p))]

                    results.add(cell, "floor", sw(prob.posterior.sample(samples, generator=g, dtype=torch.float64)), 0.0)
                    results.add(cell, "prior", sw(prob.prior.sample(samples, generator=g, dtype=torch.float64)), 0.0)
                    op = DenseLinear(prob.matrix, sigma_y=prob.sigma_y)
                    y = prob.y.to(torch.float64).expand(samples, -1).contiguous()
                    options = {name: gmm.solver_options(name, steps, samples) for name in OURS}
                    options["pigdm"] = gmm.pigdm_options(prob.prior, steps)  # as the GMM benchmark runs it
                    # like for like with deepinv's solvers: DDIM(eta) steps for DPS (not the MCGdiff script's
                    # DDPM-mean rule) and DDRM's etaA in the null space (deepinv has no etaC)
                    options["dps"] = {**options["dps"], "step": "ddim"}
                    options["ddrm"] = {k: v for k, v in options["ddrm"].items() if k != "etaC"}
                    deepinv_options = {
                        "eta": eta,
                        "zeta": options["dps"]["zeta"],
                        "etaA": options["ddrm"]["etaA"],
                        "etaB": options["ddrm"]["etaB"],
                    }
                    _solve_all(
                        results,
                        cell,
                        prob.prior,
                        op,
                        y,
                        steps=steps,
                        seed=seed * 7919 + 31 * p,
                        scale=GMM_SCALE,
                        options=options,
                        score=sw,
                        deepinv_options=deepinv_options,
                    )
                progress(f"gmm d_x={d_x} d_y={d_y} steps={steps} done")


def digits_prior():
    import diffcore
    from diffcore.priors import unconditional

    return unconditional(diffcore.create("prior", "zoo:digits"))


def run_images(results: Results, steps_list, *, images: int, seed: int = 0, operators=None, progress=print):
    """The image cells: mean PSNR to held-out digits for every column, plus the pseudo-inverse."""
    import diffcore
    from diff_inverse import zoo
    from diff_inverse.images import psnr

    prior = digits_prior()
    x = zoo.digits(images, every=7)  # held-out test digits, as the tour takes them
    for label, spec in (operators or IMAGE_OPERATORS).items():
        op = diffcore.create("operator", spec, x_shape=tuple(x.shape[1:]), sigma_y=IMAGE_SIGMA_Y)
        y = op.measure(x, generator=torch.Generator().manual_seed(seed))

        def score(out, x=x):
            return [psnr(out[i], x[i]) for i in range(len(x))]

        for steps in steps_list:
            cell = ("images", label, steps)
            results.add(cell, "pseudo-inverse", score(op.A_pinv(y)), 0.0)
            from diff_inverse.solvers.dps import DPS

            deepinv_options = {"eta": 1.0, "zeta": DPS().zeta_at(steps), "etaA": 0.85, "etaB": 1.0, "snap": True}  # our defaults
            _solve_all(
                results,
                cell,
                prior,
                op,
                y,
                steps=steps,
                seed=seed * 7919 + steps,
                scale=1.0,
                options={},
                score=score,
                deepinv_options=deepinv_options,
            )
            progress(f"images {label} steps={steps} done")


# -- tables -----------------------------------------------------------------------------------


def _summary(values):
    v = torch.tensor(values, dtype=torch.float64)
    ok = v[torch.isfinite(v)]
    if len(ok) == 0:
        return math.nan, math.nan, len(v)
    half = 1.96 * float(ok.std()) / math.sqrt(len(ok)) if len(ok) > 1 else 0.0
    return float(ok.mean()), half, len(v) - len(ok)


def _cell_text(results, cell, column, *, digits=2, interval=True):
    note = results.notes.get(cell, {}).get(column)
    if note:
        return note
    values = results.quality.get(cell, {}).get(column)
    if not values:
        return ""
    mean, half, bad = _summary(values)
    text = f"{mean:.{digits}f}" + (f"±{half:.{digits}f}" if interval and len(values) > 1 else "")
    return text + (f" [{bad} non-finite]" if bad else "")


def _table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(results: Results, *, problems: int, samples: int, images: int) -> str:
    cols = [column_name(lib, name) for lib, name in COLUMNS]
    lines = []
    gmm_cells = sorted(c for c in results.quality if c[0] == "gmm")
    if gmm_cells:
        lines += [
            f"### 1. Gaussian mixture: sliced Wasserstein to the exact posterior ({samples} samples, {problems} problem(s) per cell; "
            "mean ± 1.96 std/sqrt(n); lower is better)",
            "",
        ]
        rows = [
            [str(d_x), str(d_y), str(steps)] + [_cell_text(results, c, k) for k in (*cols, "prior", "floor")]
            for c in gmm_cells
            for _, d_x, d_y, steps in [c]
        ]
        lines += _table(["d_x", "d_y", "steps", *cols, "prior", "floor"], rows) + [""]
    image_cells = [c for c in results.quality if c[0] == "images"]
    if image_cells:
        lines += [
            f"### 2. zoo:digits: PSNR (dB) to the held-out digits, one sample per image, mean ± 1.96 std/sqrt(n) over {images} images, "
            f"sigma_y = {IMAGE_SIGMA_Y} (higher is better)",
            "",
        ]
        rows = [
            [label, str(steps)] + [_cell_text(results, c, k) for k in ("pseudo-inverse", *cols)]
            for c in image_cells
            for _, label, steps in [c]
        ]
        lines += _table(["operator", "steps", "pseudo-inverse", *cols], rows) + [""]
    lines += [
        f"### 3. Wall time per sample (ms): ours / deepinv (ratio), {torch.get_num_threads()} thread(s), same run; "
        "deepinv's time without the adapter that shows it our prior (last column, excluded)",
        "",
    ]
    head = ["setting", "steps"] + [f"{o} / {d}" for o, d in PAIRS] + ["deepinv dps*", "adapter (ms)"]
    rows = []

    def ms(cell, column, own=False):
        t = results.seconds.get(cell, {}).get(column)
        if not t:
            return None
        extra = results.adapter.get(cell, {}).get(column, []) if own else []
        return 1000 * (sum(t) - sum(extra)) / len(t)

    for c in [*gmm_cells, *image_cells]:
        setting = f"gmm d_x={c[1]} d_y={c[2]}" if c[0] == "gmm" else c[1]
        row = [setting, str(c[-1])]
        for o, d in PAIRS:
            a, b = ms(c, column_name("ours", o)), ms(c, column_name("deepinv", d), own=True)
            row.append("n/a" if a is None or b is None else f"{a:.2f} / {b:.2f} ({a / b:.2f})")
        b = ms(c, column_name("deepinv", "dps*"), own=True)
        row.append("n/a" if b is None else f"{b:.2f}")
        extra = [v for values in results.adapter.get(c, {}).values() for v in values]
        row.append(f"{1000 * sum(extra) / len(extra):.2f}" if extra else "n/a")
        rows.append(row)
    lines += _table(head, rows) + [""]
    clamped = [f"{column} ({part}): {c} of {n} calls" for (part, column), (c, n) in results.clamped.items() if c]
    if clamped:
        lines += ["Denoiser calls above the prior's noise range (denoised at its last time): " + "; ".join(clamped) + ".", ""]
    return "\n".join(lines)


def describe() -> str:
    import deepinv

    return (
        f"torch {torch.__version__}, deepinv {deepinv.__version__}, python {platform.python_version()}, "
        f"{torch.get_num_threads()} torch thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} CPU(s)"
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the structure only; used by the test)")
    parser.add_argument("--problems", type=int, default=None, help="GMM problems per cell (default 5; quick 1)")
    parser.add_argument("--samples", type=int, default=None, help="GMM samples per solver and problem (default 1000; quick 64)")
    parser.add_argument("--steps", default=None, help="GMM step counts, comma-separated (default 20,100; quick 10)")
    parser.add_argument("--dx", default=None, help="GMM d_x values (default 8,80; quick 8)")
    parser.add_argument("--dy", default=None, help="GMM d_y values (default 1,4; quick 1)")
    parser.add_argument("--image-steps", default=None, help="image step counts (default 20,50; quick 4)")
    parser.add_argument("--images", type=int, default=None, help="test digits (default 16; quick 2)")
    parser.add_argument("--skip", default="", help="parts to skip: gmm, images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", default=None, help="also write the tables to this markdown file")
    parser.add_argument(
        "--page", default=None, help="write the whole page (docs/inverse-deepinv.md): this run's tables and the --quick check"
    )
    args = parser.parse_args(argv)
    q = args.quick

    def ints(text, default):
        return [int(v) for v in (text or default).split(",") if v.strip()]

    args.problems = args.problems or (1 if q else 5)
    args.samples = args.samples or (64 if q else 1000)
    args.steps = ints(args.steps, "10" if q else "20,100")
    args.dx = ints(args.dx, "8" if q else "8,80")
    args.dy = ints(args.dy, "1" if q else "1,4")
    args.image_steps = ints(args.image_steps, "4" if q else "20,50")
    args.images = args.images or (2 if q else 16)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


def main(argv=None, *, progress=None) -> dict:
    """Run, print the tables, optionally write them; returns the results and the markdown."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    info = describe()
    run = (
        f"GMM: d_x {args.dx}, d_y {args.dy}, steps {args.steps}, {args.problems} problem(s), {args.samples} samples; "
        f"images: zoo:digits, {args.images} test digits, steps {args.image_steps}; seed {args.seed}"
    )
    print(f"{info}\n{run}\n", flush=True)
    results = Results()
    start = time.perf_counter()
    if "gmm" not in args.skip:
        run_gmm(results, args.dx, args.dy, args.steps, problems=args.problems, samples=args.samples, seed=args.seed, progress=say)
    if "images" not in args.skip:
        run_images(results, args.image_steps, images=args.images, seed=args.seed, progress=say)
    text = markdown(results, problems=args.problems, samples=args.samples, images=args.images)
    total = time.perf_counter() - start
    text += f"\n{info}; {run}; {total:.0f} s in all.\n"
    print(text, flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    if args.page:
        check = main(["--quick", "--threads", str(args.threads)], progress=progress)["markdown"]
        with open(args.page, "w") as fh:
            fh.write(page(text, check))
    return {"results": results, "markdown": text, "args": args, "seconds": total}


INTRO = """# diff-inverse against deepinv: DPS, DDRM and DiffPIR on the same problems

This page compares diff-inverse's posterior solvers with those of [deepinv](https://deepinv.github.io)
(a dev dependency of the workspace) on the same prior, the same operator, the same measurement y and
the same number of network calls, so that only the solver differs: sample quality on the
Gaussian-mixture benchmark with an exact posterior (`diff_inverse.bench.gmm`, sliced Wasserstein),
PSNR on held-out digits with the shipped `zoo:digits` prior (super-resolution x2, Gaussian deblurring,
box inpainting, sigma_y = 0.05), and wall time per sample measured in the same run on one thread.
deepinv has DPS, DDRM and DiffPIR, and so do we. The page is generated whole by
`tools/bench/deepinv_peer.py --page docs/inverse-deepinv.md` (the default run, then the `--quick`
run as the check section); `tools/bench/test_deepinv_peer.py` repeats the quick run and compares it
with the check section.

## How the two libraries are put on the same problem

- **Prior.** deepinv's solvers call a `deepinv.models.Denoiser` `D(x, sigma)` on images in [0, 1]
  with `x = x0 + sigma n`. The script wraps our prior as one: the image is mapped to our frame
  `z = c (2 u - 1)` at noise `nu = 2 c sigma`, the prior is asked at the time where
  `sigma_t / alpha_t = nu` (`diffcore.schedules.time_at_log_snr`) on `alpha_t z`, and its x0 is
  mapped back. `c = 1` for the digits (our [-1, 1] is deepinv's [0, 1]); the mixture spans +-16, so
  it uses `c = 24`, an exact change of variables that keeps deepinv's clamps to [-1, 1] off the data.
- **Operator and y.** A `deepinv.physics.DecomposablePhysics` built from our operator's SVD, y mapped
  to the same frame, `GaussianNoise(sigma_y / (2 c))` (DDRM and DiffPIR read sigma_y from it).
- **Steps.** DPS and DDRM get our time grid: the same noise levels, one network call each. DPS runs on
  deepinv's `AncestralSolver` with our DDIM eta (0.6 / 0.85 on the mixture as in the benchmark, 1 on
  the digits); DDRM with our etaA = 0.85, etaB = 1, and on the digits the grid our DDRM runs by default
  (one time moved onto y's noise level). deepinv's DiffPIR cannot take a grid: it runs as shipped (its
  1000-step DDPM schedule at `steps` quadratically spaced points, zeta 0.1, lambda 7, returning the state
  of its last step); ours runs with the same zeta and lambda on our grid.
- **Our settings:** the GMM benchmark's (`gmm.solver_options`; DPS zeta 0.1, ΠGDM with the mixture's
  variance and its unbounded move) and the defaults on the digits. `ours dps` is our DPS with the
  paper's step rule (`discrepancy=False`), the like-for-like column for deepinv's; `ours dps+cap` is our
  default, with the discrepancy cap (no step past the noise level of y), which deepinv does not have.
- **`deepinv dps*`** is deepinv's DPS with its guidance weight set per step so that its step equals ours
  (`zeta / ||y - A x0|| * grad ||y - A x0||^2`). deepinv adds the guidance to the score, so its step on
  x_t is `(w / 2c) (alpha_s / alpha_t) sigma_t^2 (1 - r^(1+a)) grad ||y - A x0||`: it shrinks with the
  step size and with sigma_t, and with the shipped `weight=1` it is far below the paper's. `dps*`
  isolates that one setting.
- **deepinv's DDRM** (0.5.0) draws its noise as `std * randn / sqrt(2)` while it calls the denoiser at
  `sigma`, so its states carry less noise than the level the denoiser is told: where it leads ours on
  single-sample PSNR, that is the reason (a copy of our DDRM with every draw scaled by 1/sqrt(2)
  reproduces it); ours follows the paper's equations.

Times: each ratio compares two solvers timed in the same run, one after the other, on a machine shared
with other jobs, so single timings move by 10-20 %. deepinv's times exclude the adapter that shows it
our prior (the frame change and time lookup, clocked inside it; last column).
"""


def page(results_markdown: str, check_markdown: str) -> str:
    """The whole page: the intro, the default run's tables and the quick run's as the check."""
    return (
        INTRO
        + "\n## Results\n\n"
        + results_markdown.strip()
        + "\n\n## Check (`--quick`): what the test repeats\n\n"
        + check_markdown.strip()
        + "\n"
    )


def quality_tables(text: str) -> dict[str, list[str]]:
    """The quality tables (sections 1 and 2) of a run's markdown: heading -> rows, for comparing runs."""
    out, heading = {}, None
    for line in text.splitlines():
        if line.startswith("### "):
            heading = line if line.startswith(("### 1.", "### 2.")) else None
            if heading:
                out[heading] = []
        elif heading and line.startswith("|"):
            out[heading].append(line)
    return out


if __name__ == "__main__":
    main()
