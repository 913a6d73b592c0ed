"""The tour's view-conditioned section: zoo:views draws new views of held-out scenes from one reference view.

Live on the shipped prior (a few seconds on a CPU; ``--quick``: fewer pairs and steps): held-out
pairs of views (scenes and cameras training never drew) give a reference view, the relative pose
and the renderer's true target view. The prior draws the target view from the reference and the
pose, ``Cond(image=reference, camera=relative)``, with DDIM; PSNR against the truth is shown beside
the baseline that copies the reference view (the bar the model card measures on 64 pairs).
"""

from __future__ import annotations

import torch

from diff_3d.views.data import pairs, split_generator
from diff_3d.views.evaluate import novel_views
from diff_3d.views.metrics import psnr
from diff_3d.views.zoo import weights_folder


def section(tour) -> None:
    if not (weights_folder() / "network.safetensors").is_file():
        tour.text("**zoo:views** is not shipped in this installation: train it with `python -m diff_3d.views.train OUT`.")
        return
    import diffcore

    n, steps = (4, 20) if tour.quick else (8, 50)
    prior = diffcore.create("prior", "zoo:views")
    data = pairs(n, split_generator(1, "held-out"))  # seed 1: other pairs than the card's
    drawn = torch.cat([novel_views(prior, data.reference, data.relative, generator=tour.generator(0), steps=steps)]).clamp(-1, 1)
    tour.text(
        "**A view-conditioned prior.** `zoo:views` is a small UNet trained on this CPU on procedural scenes of coloured "
        "primitives rendered from random cameras; its condition is `Cond(image=reference, camera=relative pose)`, the contract "
        "Zero-1-to-3 uses (diffcore's `zero123` prior loads that model's diffusers layout). Held-out scenes, "
        f"{steps} DDIM steps; rows: reference view, true target view, the prior's view."
    )
    tour.image("novel-views", torch.cat([data.reference, data.target, drawn]), caption="reference / truth / zoo:views", nrow=n)
    tour.metric("PSNR of the drawn view to the truth", round(float(psnr(drawn, data.target).mean()), 2), "dB")
    tour.metric("PSNR of the reference view copied (baseline)", round(float(psnr(data.reference, data.target).mean()), 2), "dB")
    tour.text(
        "One draw is a guess among the views the pose allows, so its PSNR sits near the copy baseline's; the model card "
        "(docs/3d.md) measures 64 pairs, the mean of draws, 3DiM's stochastic conditioning on two views, and one image to 3-D "
        "(`ns-train diff-zero123`)."
    )


__all__ = ["section"]
