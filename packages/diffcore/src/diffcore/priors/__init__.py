"""Priors that ship with the kernel: exact Gaussian mixtures, guidance and fixed-conditioning wrappers."""

from diffcore.priors.conditioned import Conditioned
from diffcore.priors.gmm import GaussianMixturePrior, GaussianPrior
from diffcore.priors.guided import Guided

__all__ = ["Conditioned", "GaussianMixturePrior", "GaussianPrior", "Guided"]
