"""The data side of a model card: held-out images, training images, the digits classifier, image statistics.

:class:`References` builds a prior's data set once (:mod:`diff_zoo.data`, with the recipe's
options) and answers the distance questions of :mod:`diff_zoo.evaluate`: Frechet distances to
the held-out set (in the digits classifier's feature space, or on scaled
:func:`~diff_zoo.features.image_statistics`) and nearest-training-neighbour distances
(mirrored training images included where the recipe trains on flips).
"""

from __future__ import annotations

import torch

from diff_zoo import data as zoo_data
from diff_zoo.recipes import get_recipe
from diffcore.errors import DiffcoreError

TRAIN_REFERENCE = 1024  # training images in the "vs training" reference set of the unlabelled priors
MIN_CLASSIFIER_ACCURACY = 0.95


def _subset(n_total: int, n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[: min(n, n_total)]


class References:
    """The data side of a card, built once: data set, held-out images, classifier or statistics.

    ``n`` and ``seed`` pick the subsets: ``n`` real training images compared with the held-out
    data, ``n`` held-out images for the nearest-neighbour baseline, and (unlabelled priors)
    :data:`TRAIN_REFERENCE` other training images as a second reference.
    """

    def __init__(self, name: str, *, n: int = 256, seed: int = 0, with_train: bool = True):
        self.recipe = get_recipe(name)
        self.name = self.recipe.name
        options = dict(self.recipe.data_options)
        if not with_train and self.name == "phantoms":
            options["n_train"] = 1  # the test stream has its own seed: the same held-out set, none of the cost
        self.with_train, self.n, self.seed = with_train, n, seed
        self.dataset = zoo_data.build(self.recipe.data, **options)
        self.held_out = self.dataset.test.images()
        self.held_out_labels = self.dataset.test.labels
        self.flips = tuple(f for f, on in (("h", self.recipe.hflip), ("v", self.recipe.vflip)) if on)
        self._train = None
        self._train_reference_stats = None
        if self.name == "digits":
            from diff_zoo.classifier import DigitClassifier

            self.classifier = DigitClassifier.fit(self.dataset.train)
            self.classifier_accuracy = self.classifier.accuracy(self.held_out, self.held_out_labels)
            if self.classifier_accuracy < MIN_CLASSIFIER_ACCURACY:
                raise DiffcoreError(f"the digits classifier labels only {self.classifier_accuracy:.1%} of the test split correctly")
            self.held_out_features = torch.from_numpy(self.classifier.features(self.held_out))
        else:
            from diff_zoo.features import image_statistics

            self.held_out_stats = image_statistics(self.held_out)

    @property
    def train(self) -> torch.Tensor:
        if not self.with_train:
            raise DiffcoreError("these references were built without the training set")
        if self._train is None:
            self._train = self.dataset.train.images()
        return self._train

    @property
    def train_pick(self) -> torch.Tensor:
        """Indices of the ``n`` training images compared with the held-out data."""
        return _subset(len(self.dataset.train), self.n, self.seed + 1)

    @property
    def held_out_pick(self) -> torch.Tensor:
        """Indices of the ``n`` held-out images of the nearest-neighbour baseline (and of the pictures)."""
        return _subset(len(self.held_out), self.n, self.seed + 4)

    @property
    def train_reference_stats(self) -> torch.Tensor:
        """Statistics of :data:`TRAIN_REFERENCE` training images outside :attr:`train_pick`."""
        if self._train_reference_stats is None:
            from diff_zoo.features import image_statistics

            rest = torch.ones(len(self.dataset.train), dtype=torch.bool)
            rest[self.train_pick] = False
            others = torch.nonzero(rest)[:, 0]
            self._train_reference_stats = image_statistics(self.train[others[_subset(len(others), TRAIN_REFERENCE, self.seed + 3)]])
        return self._train_reference_stats

    # -- distances ----------------------------------------------------------------------------
    def frechet_to_held_out(self, images: torch.Tensor) -> float:
        """Frechet distance to the held-out set: classifier features (digits) or scaled image statistics."""
        if self.name == "digits":
            from diff_zoo.distances import frechet_distance

            return round(frechet_distance(torch.from_numpy(self.classifier.features(images)), self.held_out_features), 4)
        return self.frechet_to(images, self.held_out_stats)

    def frechet_to(self, images: torch.Tensor, reference_stats: torch.Tensor) -> float:
        """Frechet distance between the image statistics of ``images`` and ``reference_stats``, both scaled by the held-out spread."""
        from diff_zoo.distances import frechet_distance
        from diff_zoo.features import image_statistics, scaled

        return round(
            frechet_distance(scaled(image_statistics(images), self.held_out_stats), scaled(reference_stats, self.held_out_stats)), 4
        )

    def nearest(self, images: torch.Tensor) -> torch.Tensor:
        from diff_zoo.distances import nearest_training_distances

        return nearest_training_distances(images, self.train, self.flips)


__all__ = ["MIN_CLASSIFIER_ACCURACY", "TRAIN_REFERENCE", "References"]
