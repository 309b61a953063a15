"""Optimal transport: sliced Wasserstein, ICNN potentials, OT maps."""
