"""diff-safety's tour section: the duplication experiment's plot and an erasure before/after grid.

Both come from runs too long for the tour (about 25 and 5 minutes on a 2-core CPU), recorded in
``diff_safety/results/`` (small JSON and PNG files) by ``python -m diff_safety.duplication`` and
``tools/bench/safety_erasure.py --results``; the section shows those files and their numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _image(path: Path):
    from matplotlib.image import imread

    return (imread(path)[..., :3] * 255).round().astype("uint8")


def section(tour):
    duplication = RESULTS / "duplication.json"
    if duplication.is_file():
        result = json.loads(duplication.read_text())
        tour.text(
            "**Memorisation rises with duplication.** Small UNets trained on zoo digits in which some training images are repeated "
            "10 and 100 times; generations are tested with Carlini et al. (2023)'s extraction test (tiled L2, relative score, "
            "delta 1/3). The more copies of an image the training set holds, the more often the model emits it."
        )
        tour.image(
            "duplication", _image(RESULTS / "duplication.png"), caption="Share of training images extracted, by copies in the training set"
        )
        tour.table(
            "duplication-levels", result["levels"], caption="Per duplication level: images, images extracted, generations that extract them"
        )
        for row in result["levels"]:
            tour.metric(f"extracted at {row['copies']}x", round(100 * row["extraction_rate"], 1), unit="%")
    erasure = RESULTS / "erasure.json"
    if erasure.is_file():
        result = json.loads(erasure.read_text())
        tour.text(f"**Concept erasure.** {result['summary']}")
        tour.image("erasure-grid", _image(RESULTS / "erasure.png"), caption=result["caption"])
        tour.table(
            "erasure-rates", result["table"], caption="Share of class-k-conditioned samples the zoo classifier labels k, before and after"
        )
