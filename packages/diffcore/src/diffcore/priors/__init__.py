"""Priors that ship with the kernel: exact Gaussian mixtures, and the wrappers (guidance, fixed
conditioning) built on :class:`PriorWrapper`."""

from diffcore.priors.conditioned import Conditioned, unconditional
from diffcore.priors.gmm import GaussianMixturePrior, GaussianPrior
from diffcore.priors.guided import Guided
from diffcore.priors.wrapper import PriorWrapper

__all__ = ["Conditioned", "GaussianMixturePrior", "GaussianPrior", "Guided", "PriorWrapper", "unconditional"]
