"""RePaint against diffusers' ``RePaintPipeline`` on held-out zoo:digits: mean PSNR, the line of docs/inverse.md.

Our ``projection`` solver with ``resample = K`` is RePaint (Lugmayr et al. 2022) with jump length 1
and ``jump_n_sample = K``. The pipeline runs zoo:digits' UNet with its null label, on the same
images, mask (the 8x8 centre box), 20 steps and ``K = 3``, three ways: ours; the pipeline as
shipped; the pipeline with its jump back (``undo_step``) made the forward kernel
q(x_t | x_{t-n}) in one draw, which gives our images (``tools/bench/test_repaint_peer.py``
asserts that, and the same images on a tiny random UNet). The shipped ``undo_step(x, t)`` adds
``betas[t : t + n]`` to a sample at level ``t - n`` when a step spans ``n`` training steps, so
it lands noisier than level t.

    OMP_NUM_THREADS=1 python tools/bench/repaint_peer.py            # 64 digits, seeds 0 and 1 (about a minute)
    python tools/bench/repaint_peer.py --n 8 --seeds 0
"""

from __future__ import annotations

import argparse

import torch


class NullLabel(torch.nn.Module):
    """A class-conditional UNet called as RePaintPipeline calls one, with a fixed label."""

    def __init__(self, unet, label: int):
        super().__init__()
        self.unet, self.label, self.config = unet, label, unet.config

    @property
    def dtype(self):
        return self.unet.dtype

    @property
    def device(self):
        return self.unet.device

    def forward(self, sample, timestep):
        return self.unet(sample, timestep, class_labels=torch.full((sample.shape[0],), self.label))


def exact_undo_scheduler():
    """RePaintScheduler with its jump back the forward kernel from level t - n to t in one draw."""
    from diffusers import RePaintScheduler
    from diffusers.utils.torch_utils import randn_tensor

    class ExactUndo(RePaintScheduler):
        def undo_step(self, sample, timestep, generator=None):
            n = self.config.num_train_timesteps // self.num_inference_steps
            t = int(timestep)
            ratio = self.alphas_cumprod[t] / (self.alphas_cumprod[t - n] if t - n >= 0 else self.final_alpha_cumprod)
            noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
            return ratio**0.5 * sample + (1 - ratio) ** 0.5 * noise

    return ExactUndo


def mean_psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR of each image (clamped to [-1, 1]) against its reference, averaged."""
    from diff_inverse.images import psnr

    return sum(psnr(a, b) for a, b in zip(x, ref)) / len(ref)


KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "clip_sample")


def pipeline(unet, config: dict, scheduler_class=None):
    """diffusers' RePaintPipeline on ``unet`` with a RePaint scheduler (or ``scheduler_class``) built from a scheduler ``config``."""
    from diffusers import RePaintPipeline, RePaintScheduler

    cls = scheduler_class or RePaintScheduler
    pipe = RePaintPipeline(unet=unet, scheduler=cls(**{k: config[k] for k in KEYS}))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def theirs(pipe, x: torch.Tensor, mask: torch.Tensor, steps: int, jumps: int, seed: int) -> torch.Tensor:
    """The pipeline's inpainting of ``x`` (N, C, H, W) in [-1, 1] where ``mask`` is 0, jump length 1, in [-1, 1]."""
    out = pipe(
        image=x,
        mask_image=mask,
        num_inference_steps=steps,
        eta=1.0,
        jump_length=1,
        jump_n_sample=jumps,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).images
    return torch.from_numpy(out).permute(0, 3, 1, 2) * 2 - 1


def measure(n: int = 64, seeds=(0, 1), steps: int = 20, jumps: int = 3) -> dict[str, list[float]]:
    """Mean PSNR (dB) over ``n`` held-out digits per seed: ``ours``, ``shipped`` and ``exact undo``."""
    import diffcore
    from diff_inverse import zoo
    from diff_inverse.operators import Inpainting
    from diff_inverse.solve import solve
    from diffcore.priors import unconditional

    base = diffcore.create("prior", "zoo:digits")
    prior = unconditional(base)
    unet = NullLabel(base.network, int(base.null_cond.labels[0]))
    x = zoo.digits(n)
    mask = torch.ones(n, 1, 16, 16)
    mask[..., 4:12, 4:12] = 0
    op = Inpainting((1, 16, 16), box=(4, 4, 8, 8))
    out: dict[str, list[float]] = {"ours": [], "shipped": [], "exact undo": []}
    for seed in seeds:
        ours = solve(prior, op, op.A(x), solver="projection", steps=steps, resample=jumps, generator=torch.Generator().manual_seed(seed))
        out["ours"].append(mean_psnr(ours, x))
        for name, cls in (("shipped", None), ("exact undo", exact_undo_scheduler())):
            out[name].append(mean_psnr(theirs(pipeline(unet, base.scheduler_config, cls), x, mask, steps, jumps, seed), x))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="held-out digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = measure(args.n, tuple(args.seeds))
    seeds = ", ".join(map(str, args.seeds))
    print(f"mean PSNR (dB) over {args.n} held-out digits, 8x8 box, 20 steps, jump_n_sample 3; seeds {seeds}")
    for name, values in result.items():
        print(f"{name}: " + ", ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
