"""2-D distillation with the image representation and zoo:digits: the class label decides what the zoo classifier sees."""

import pytest
import torch

import diffcore
from diff_3d.conditioning import condition
from diff_3d.distill import distill
from diff_3d.distillers import SDS
from diff_3d.representations import ImageRepresentation


@pytest.fixture(scope="module")
def classifier():
    from diff_zoo import data
    from diff_zoo.classifier import DigitClassifier

    return DigitClassifier.fit(data.digits().train)


def test_sds_from_a_label_draws_that_digit(classifier):
    prior = diffcore.create("prior", "zoo:digits")
    drawn = []
    for label in (3, 7):
        image = ImageRepresentation(size=16, channels=1)
        distill(
            prior,
            image,
            SDS(guidance_scale=3.0),
            steps=150,
            lr=0.05,
            cond=condition(prior, label=label),
            generator=torch.Generator().manual_seed(label),
        )
        drawn.append(image.render(None).detach())
    assert classifier.predict(torch.cat(drawn)).tolist() == [3, 7]
    blank = ImageRepresentation(size=16, channels=1).render(None).detach()
    assert classifier.predict(blank).item() not in (3, 7)  # a grey image is neither: the label did it
