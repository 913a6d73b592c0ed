"""Priors that ship with the kernel: exact Gaussian mixtures and the guidance wrapper."""

from diffcore.priors.gmm import GaussianMixturePrior, GaussianPrior
from diffcore.priors.guided import Guided

__all__ = ["GaussianMixturePrior", "GaussianPrior", "Guided"]
