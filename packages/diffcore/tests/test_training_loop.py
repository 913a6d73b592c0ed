"""diffcore.training.fit: resuming after a kill, accumulation, EMA, logging, budgets and errors."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

import diffcore
from diffcore.errors import CheckpointError, DiffcoreError
from diffcore.testing import save_tiny_unet_pipeline
from diffcore.training import EMA, denoising_loss, ema_decay, fit, train_only
from diffcore.training.checkpoint import checkpoints, latest_checkpoint


def _net(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(dropout), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()


def _regression(net, batch=8):
    """A loss that draws its batch from the generator: y = A x + noise."""
    A = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, 1.0, -1.0]], dtype=torch.float64)

    def loss_fn(step, g):
        x = torch.randn(batch, 4, generator=g, dtype=torch.float64)
        y = x @ A.T + 0.1 * torch.randn(batch, 2, generator=g, dtype=torch.float64)
        loss = ((net(x) - y) ** 2).mean()
        return {"loss": loss, "first": (net(x) - y)[:, 0].pow(2).mean()}

    return loss_fn


class Crash(Exception):
    pass


def _settings(**kw):
    return dict(lr=3e-2, lr_schedule="cosine", warmup=3, grad_clip=0.5, progress=False, **kw)


def test_a_run_killed_and_resumed_takes_the_same_steps_as_one_that_never_stopped(tmp_path):
    """2N steps straight against N steps, a crash inside step N+2, and a resume to 2N: same weights, EMA and curve, bit for bit."""
    N = 6
    straight_net = _net(dropout=0.2)  # dropout draws from torch's global generator: its state is checkpointed too
    straight_ema = EMA(straight_net, 0.9)
    torch.manual_seed(123)
    straight = fit(
        _regression(straight_net), straight_net, steps=2 * N, generator=torch.Generator().manual_seed(5), ema=straight_ema, **_settings()
    )

    net = _net(dropout=0.2)
    ema = EMA(net, 0.9)
    inner = _regression(net)

    def crashing(step, g):
        if step == N + 2:
            raise Crash
        return inner(step, g)

    torch.manual_seed(123)
    with pytest.raises(Crash):
        fit(
            crashing,
            net,
            steps=2 * N,
            generator=torch.Generator().manual_seed(5),
            ema=ema,
            checkpoint_dir=tmp_path / "ck",
            checkpoint_every=N,
            **_settings(),
        )
    assert [step for step, _ in checkpoints(tmp_path / "ck")] == [N]
    # a fresh process would rebuild everything from scratch: new network, new EMA, new generator, other global RNG state
    net = _net(seed=99, dropout=0.2)
    torch.manual_seed(777)
    ema = EMA(net, 0.9)
    resumed = fit(
        _regression(net),
        net,
        steps=2 * N,
        generator=torch.Generator().manual_seed(0),
        ema=ema,
        checkpoint_dir=tmp_path / "ck",
        resume=True,
        **_settings(),
    )
    assert resumed.resumed_from == N and resumed.steps == 2 * N
    assert resumed.losses == straight.losses and resumed.logs == straight.logs
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), straight_net.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(ema.module.state_dict().values(), straight_ema.module.state_dict().values()))
    assert [step for step, _ in checkpoints(tmp_path / "ck")] == [2 * N]
    # resuming a finished run does nothing more
    again = fit(
        _regression(net), net, steps=2 * N, generator=torch.Generator(), ema=ema, checkpoint_dir=tmp_path / "ck", resume=True, **_settings()
    )
    assert again.steps == 2 * N and again.losses == straight.losses


def test_checkpoints_refuse_other_runs_and_ignore_partial_writes(tmp_path):
    net = _net()
    fit(
        _regression(net),
        net,
        steps=4,
        generator=torch.Generator().manual_seed(0),
        checkpoint_dir=tmp_path,
        checkpoint_every=2,
        progress=False,
    )
    with pytest.raises(DiffcoreError, match="already holds checkpoints"):
        fit(_regression(net), net, steps=4, generator=torch.Generator(), checkpoint_dir=tmp_path, progress=False)
    other = torch.nn.Linear(4, 2).double()
    with pytest.raises(CheckpointError, match="other parameters"):
        fit(
            lambda s, g: other(torch.ones(1, 4, dtype=torch.float64)).sum(),
            other,
            steps=4,
            generator=torch.Generator(),
            checkpoint_dir=tmp_path,
            resume=True,
            progress=False,
        )
    # a checkpoint killed while being written is a hidden partial folder: never read, removed at the next save
    partial = tmp_path / ".step-000000009.partial-1"
    partial.mkdir()
    (partial / "state.json").write_text("{")
    assert latest_checkpoint(tmp_path).name == "step-000000004"
    fit(_regression(net), net, steps=6, generator=torch.Generator(), checkpoint_dir=tmp_path, resume=True, progress=False)
    assert not partial.exists() and [p.name for p in tmp_path.iterdir()] == ["step-000000006"]
    meta = json.loads((tmp_path / "step-000000006" / "state.json").read_text())
    assert meta["step"] == 6 and len(meta["losses"]) == 6


def test_accumulating_k_micro_batches_is_one_batch_k_times_larger():
    k, b = 4, 3
    data = torch.randn(k * b, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.randn(k * b, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    big, small = _net(), _net()
    fit(lambda s, g: ((big(data) - target) ** 2).mean(), big, steps=5, lr=1e-2, generator=torch.Generator(), progress=False)
    calls = []

    def micro(step, g):
        i = len(calls) % k
        calls.append(step)
        part = slice(i * b, (i + 1) * b)
        return ((small(data[part]) - target[part]) ** 2).mean()

    record = fit(micro, small, steps=5, lr=1e-2, grad_accum=k, generator=torch.Generator(), progress=False)
    assert calls == [s for s in range(5) for _ in range(k)] and record.steps == 5
    for a, c in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)


def test_the_ema_is_the_warmed_up_moving_average_computed_by_hand():
    w = torch.nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
    ema = EMA([("w", w)], decay=0.6)
    grads = [torch.tensor([0.5, 1.0]), torch.tensor([-1.0, 2.0]), torch.tensor([0.25, 0.0]), torch.tensor([3.0, -1.0])]
    fit(
        lambda s, g: (w * grads[s].double()).sum(),
        [("w", w)],
        steps=4,
        optimizer="sgd",
        lr=0.1,
        ema=ema,
        generator=torch.Generator(),
        progress=False,
    )
    p, average = torch.tensor([1.0, -1.0], dtype=torch.float64), torch.tensor([1.0, -1.0], dtype=torch.float64)
    for n, grad in enumerate(grads):
        p = p - 0.1 * grad.double()
        d = min(0.6, (1 + n) / (10 + n))
        average = d * average + (1 - d) * p
    torch.testing.assert_close(w.detach(), p)
    torch.testing.assert_close(ema.tensors["w"], average, rtol=1e-14, atol=1e-14)
    assert [ema_decay(n, 0.6) for n in (0, 5, 100)] == [0.1, 0.4, 0.6]


def test_fitting_a_tiny_unet_decreases_the_denoising_loss(tmp_path):
    prior = diffcore.create("prior", "diffusers", path=str(save_tiny_unet_pipeline(tmp_path / "pipe", block_out_channels=(8, 16))))
    params = train_only(prior, "all")
    x0 = torch.linspace(-1, 1, 8).expand(4, 3, 8, 8).contiguous()
    record = fit(
        lambda s, g: denoising_loss(prior, x0, generator=g),
        params,
        steps=40,
        lr=5e-3,
        warmup=5,
        lr_schedule="cosine",
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    first, last = sum(record.losses[:8]) / 8, sum(record.losses[-8:]) / 8
    assert last < 0.5 * first, (first, last)
    assert record.steps == 40 and record.iterations_per_s > 0 and record.device == "cpu" and record.amp is None


def test_logs_callback_and_progress_lines():
    net = _net()
    seen = []
    console_file = io.StringIO()
    from rich.console import Console

    record = fit(
        _regression(net),
        net,
        steps=30,
        generator=torch.Generator().manual_seed(0),
        log_every=7,
        callback=lambda step, loss, logs: seen.append((step, loss, logs["first"])),
        progress="log",
        name="toy",
        console=Console(file=console_file, width=200),
    )
    assert [s for s, _, _ in seen] == list(range(1, 31)) and [loss for _, loss, _ in seen] == record.losses
    assert [f for _, _, f in seen] == record.logs["first"] and len(record.logs["first"]) == 30
    lines = console_file.getvalue().splitlines()
    assert 3 <= len(lines) <= 6 and all(line.startswith("toy step ") and "loss" in line and "it/s" in line for line in lines)
    quiet = io.StringIO()
    fit(_regression(net), net, steps=3, generator=torch.Generator(), progress=False, console=Console(file=quiet))
    assert quiet.getvalue() == ""


def test_bf16_autocast_on_the_cpu_and_a_non_finite_loss():
    net = torch.nn.Linear(4, 2)
    record = fit(
        lambda s, g: net(torch.randn(8, 4, generator=g)).pow(2).mean(),
        net,
        steps=2,
        amp="bf16",
        generator=torch.Generator(),
        progress=False,
    )
    assert record.amp == "bf16" and len(record.losses) == 2
    with pytest.raises(DiffcoreError, match="the loss became nan at step 1"):
        fit(lambda s, g: net.weight.sum() * float("nan"), net, steps=2, generator=torch.Generator(), progress=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"amp": "fp16"}, "fp16.*needs CUDA"),
        ({"amp": "fp8"}, "amp must be"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"grad_accum": 0}, "grad_accum"),
        ({"lr_schedule": "linear"}, "lr_schedule"),
        ({"optimizer": "lion"}, "unknown optimizer"),
        ({"checkpoint_every": 2}, "checkpoint_every and resume need checkpoint_dir"),
        ({"resume": True}, "need checkpoint_dir"),
        ({"generator": None}, "explicit generator"),
    ],
)
def test_bad_options_fail_with_one_line(options, message):
    net = torch.nn.Linear(2, 1)
    kwargs = {"steps": 2, "generator": torch.Generator(), "progress": False, **options}
    with pytest.raises(DiffcoreError, match=message):
        fit(lambda s, g: net(torch.ones(1, 2)).sum(), net, **kwargs)


def test_frozen_parameters_and_bad_losses_are_refused():
    net = torch.nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(DiffcoreError, match="does not require grad; select what trains"):
        fit(lambda s, g: net(torch.ones(1, 2)).sum(), list(net.named_parameters()), steps=1, generator=torch.Generator(), progress=False)
    live = torch.nn.Linear(2, 1)
    with pytest.raises(DiffcoreError, match="scalar tensor"):
        fit(lambda s, g: live(torch.ones(3, 2)), live, steps=1, generator=torch.Generator(), progress=False)
    with pytest.raises(DiffcoreError, match="without 'loss'"):
        fit(lambda s, g: {"total": live(torch.ones(1, 2)).sum()}, live, steps=1, generator=torch.Generator(), progress=False)


def test_a_time_budget_cuts_the_step_count():
    net = _net()
    record = fit(_regression(net), net, steps=10**6, max_minutes=0.005, generator=torch.Generator(), progress=False)
    assert 10 < record.steps < 10**6 and record.steps_planned == 10**6


_WORKER = textwrap.dedent(
    """
    import json, os, sys, torch
    from diffcore.training import fit
    torch.manual_seed(int(os.environ["RANK"]))  # different initial weights: fit broadcasts rank 0's
    net = torch.nn.Linear(3, 1).double()
    data = torch.arange(24, dtype=torch.float64).reshape(2, 4, 3) / 10
    rank = int(os.environ["RANK"])
    g = torch.Generator().manual_seed(4)
    record = fit(lambda s, g: (net(data[rank]) ** 2).mean(), net, steps=3, optimizer="sgd", lr=0.1, generator=g, progress=False)
    out = {"weight": net.weight.tolist(), "bias": net.bias.tolist(), "losses": record.losses, "world": record.world}
    json.dump(out, open(sys.argv[1], "w"))
    torch.distributed.destroy_process_group()
    """
)


def test_two_processes_average_their_gradients(tmp_path):
    """Two gloo processes with one micro-batch each take the steps of one process accumulating both."""
    pytest.importorskip("accelerate")
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "ACCELERATE_USE_CPU": "1",
        }
        procs.append(
            subprocess.Popen([sys.executable, str(script), str(tmp_path / f"{rank}.json")], env=env, stderr=subprocess.PIPE, text=True)
        )
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    results = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert results[0]["weight"] == results[1]["weight"] and results[0]["losses"] == results[1]["losses"] and results[0]["world"] == 2

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1).double()
    data = torch.arange(24, dtype=torch.float64).reshape(2, 4, 3) / 10
    calls = []

    def micro(step, g):
        calls.append(step)
        return (net(data[(len(calls) - 1) % 2]) ** 2).mean()

    single = fit(micro, net, steps=3, optimizer="sgd", lr=0.1, grad_accum=2, generator=torch.Generator(), progress=False)
    torch.testing.assert_close(torch.tensor(results[0]["weight"], dtype=torch.float64), net.weight.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.tensor(results[0]["bias"], dtype=torch.float64), net.bias.detach(), rtol=1e-12, atol=1e-12)
    assert results[0]["losses"] == pytest.approx(single.losses, rel=1e-12)
