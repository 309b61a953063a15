"""Optimal-transport building blocks (sliced Wasserstein distance)."""

from otus.transport.sliced import random_projections, sliced_wasserstein, wasserstein_1d

__all__ = ["random_projections", "sliced_wasserstein", "wasserstein_1d"]
