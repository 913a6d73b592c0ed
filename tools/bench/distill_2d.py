"""2-D distillation from zoo:digits: SDS against VSD on labels, saturation and diversity.

Each run distils one free 16x16 image (the ``image`` representation) from ``zoo:digits`` given a
class label, with guidance ``--guidance`` (diffusers' convention), Adam at 0.05, ``--steps``
iterations. For every label and seed, both distillers start from the same grey image and draw from
the same generator seed. Reported per distiller:

- accuracy: the share of images the zoo's digit classifier (an SVC, 98.6% on real digits) labels as asked;
- saturation: the share of pixel values beyond +-0.95 (DreamFusion-style over-saturation; real
  zoo digits: shown as a reference);
- diversity: the mean pairwise RMS distance between the seeds' images of one label, averaged over
  labels (VSD's claim: more diverse than SDS's mode-seeking); the real digits' value is the reference;
- Frechet distance to the real test digits in the classifier's 45-value feature space.

    python tools/bench/distill_2d.py --labels 0 2 4 6 8 --seeds 3 --steps 200

Prints a markdown table; ``--out`` saves the images as a PNG grid (rows: SDS, VSD; columns: label x seed).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, nargs="*", default=[0, 2, 4, 6, 8])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--distillers", nargs="*", default=["sds", "vsd"])
    parser.add_argument("--out", type=Path, default=None, help="PNG grid of the images")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    import diffcore
    from diff_3d.conditioning import condition
    from diff_3d.distill import distill
    from diff_3d.metrics import diversity, saturation
    from diff_zoo import data
    from diff_zoo.classifier import DigitClassifier
    from diff_zoo.distances import frechet_distance

    torch.set_num_threads(args.threads)
    digits = data.digits()
    classifier = DigitClassifier.fit(digits.train)
    real = digits.test.images()
    real_labels = digits.test.labels
    results, pictures = {}, []
    for name in args.distillers:
        images, asked, seconds = [], [], 0.0
        for label in args.labels:
            for seed in range(args.seeds):
                prior = diffcore.create("prior", "zoo:digits")  # VSD puts its LoRA on the network it is given: one prior per run
                image = diffcore.create("representation", "image", size=16, channels=1)
                distiller = diffcore.create("distiller", name, guidance_scale=args.guidance)
                start = time.perf_counter()
                distill(
                    prior,
                    image,
                    distiller,
                    steps=args.steps,
                    lr=0.05,
                    cond=condition(prior, label=label),
                    generator=torch.Generator().manual_seed(1000 * label + seed),
                )
                seconds += time.perf_counter() - start
                images.append(image.render(None).detach())
                asked.append(label)
        x = torch.cat(images)
        per_label = x.reshape(len(args.labels), args.seeds, -1)
        results[name] = {
            "accuracy": classifier.accuracy(x, torch.tensor(asked)),
            "saturation": saturation(x),
            "diversity": sum(diversity(group) for group in per_label) / len(args.labels),
            "frechet": frechet_distance(classifier.features(x), classifier.features(real)),
            "seconds per image": seconds / len(images),
        }
        pictures.append(x)
        print(name, results[name], flush=True)
    chosen = torch.isin(real_labels, torch.tensor(args.labels))
    reference = real[chosen]
    groups = [reference[real_labels[chosen] == label][: args.seeds] for label in args.labels]
    results["real test digits"] = {
        "accuracy": classifier.accuracy(reference, real_labels[chosen]),
        "saturation": saturation(reference),
        "diversity": sum(diversity(group) for group in groups) / len(groups),
        "frechet": frechet_distance(classifier.features(reference), classifier.features(real)),
        "seconds per image": float("nan"),
    }
    print(f"\nzoo:digits, labels {args.labels}, {args.seeds} seeds each, guidance {args.guidance:g}, {args.steps} steps\n")
    print(
        "| | classifier accuracy | saturation (share beyond +-0.95) | diversity (pairwise RMS within a label) | Frechet (classifier "
        "features) | s per image |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['accuracy']:.2f} | {r['saturation']:.3f} | {r['diversity']:.3f} | {r['frechet']:.1f} | "
            f"{r['seconds per image']:.1f} |"
        )
    if args.out:
        from diffcore.tour import encode_png, image_grid, upscale

        args.out.write_bytes(encode_png(upscale(image_grid(torch.cat(pictures), nrow=len(args.labels) * args.seeds), target=720, most=4)))


if __name__ == "__main__":
    main()
