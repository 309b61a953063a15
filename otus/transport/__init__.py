"""Optimal transport: sliced Wasserstein distance, ICNN potentials, OT maps."""

from otus.transport.sliced import random_projections, sliced_wasserstein, wasserstein_1d

__all__ = ["random_projections", "sliced_wasserstein", "wasserstein_1d"]
