"""No image-size operator builds an n x n matrix: memory at 256 x 256 RGB stays far below 1 GB.

How it is measured: in a fresh Python process (so earlier tests do not blur the numbers), each
operator is built and applied (``A``, and ``A_adjoint``, ``A_pinv``, ``Vt``/``V`` where it has
them) to one 3 x 256 x 256 float32 image. Before each one the kernel's peak-RSS counter is
reset (``/proc/self/clear_refs``, Linux); the operator's cost is the peak resident memory
(``VmHWM``) minus the resident memory before it (``VmRSS``). torch's CPU allocations do not go
through Python's allocator, so ``tracemalloc`` would miss them; RSS sees everything. A dense
``n x n`` matrix at this size would need 154 GB. Independently, every tensor an operator
keeps as an attribute must have fewer than ``4 n`` elements.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import json, math, torch
torch.set_num_threads(1)
import diffcore

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise RuntimeError(key)

S = (3, 256, 256)
n = math.prod(S)
x = torch.rand((1, *S), generator=torch.Generator().manual_seed(0)) * 2 - 1
cases = [("inpaint", {"fraction": 0.5}), ("inpaint", {"box": (64, 64, 128, 128)}), ("denoise", {}), ("sr", {"factor": 4}),
         ("sr", {"factor": 4, "mode": "bicubic"}), ("blur", {"sigma": 3.0}), ("blur", {"kernel": torch.ones(9, 9) / 81}),
         ("motion", {"length": 15, "angle": 45.0}), ("colorize", {}), ("cs", {"ratio": 0.25}), ("mri", {"mask": "random"}),
         ("mri", {"mask": "radial", "lines": 40}), ("ct", {"angles": 30, "cg_steps": 3}), ("phase", {}), ("jpeg", {"quality": 20})]
out = []
for name, options in cases:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS:")
    op = diffcore.create("operator", name, x_shape=S, **options)
    y = op.A(x)
    if op.linear:
        op.A_pinv(y); op.A_adjoint(y)
    if op.has_svd:
        op.V(op.Vt(x))
    peak = status("VmHWM:") - before
    largest = max([v.numel() for v in vars(op).values() if isinstance(v, torch.Tensor)] + [0])
    shown = repr({k: tuple(v.shape) if isinstance(v, torch.Tensor) else v for k, v in options.items()})
    out.append({"name": name, "options": shown, "peak": peak, "largest": largest, "n": n})
    del op, y
print(json.dumps(out))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak-RSS counter")
def test_image_size_operators_stay_far_below_1gb():
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DIFFCORE_PLUGINS": "inverse"}
    import os

    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(rows) == 15
    for row in rows:
        label = f"{row['name']} {row['options']}"
        assert row["peak"] < 256 * 2**20, (
            f"{label}: peak memory {row['peak'] / 2**20:.0f} MiB at 256x256 RGB (limit 256 MiB, far below 1 GB)"
        )
        assert row["largest"] < 4 * row["n"], f"{label}: keeps a tensor of {row['largest']} elements (n = {row['n']}): a dense matrix?"
