"""The learning-rate schedule of every trainer in otus (the OTUS model and the calibration
networks): a cosine decay to a floor over the fraction of the training budget used, whether
the budget is counted in steps, epochs or wall-clock time."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

COSINE_FLOOR = 0.02  # the final learning rate as a fraction of the initial one


def cosine_floor(progress: float, *, floor: float = COSINE_FLOOR) -> float:
    r"""Learning-rate factor :math:`f + (1 - f)\,\tfrac12(1 + \cos \pi p)` at training progress
    ``p`` (clipped to [0, 1]): a cosine decay from 1 to the floor ``f``.

    >>> cosine_floor(0.0), cosine_floor(1.0), round(cosine_floor(0.5), 6)
    (1.0, 0.02, 0.51)
    """
    p = min(max(progress, 0.0), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * p))


def cosine_schedule(
    opt: torch.optim.Optimizer, progress: Callable[[int], float]
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler multiplying the lr by :func:`cosine_floor` of ``progress(step)``."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: cosine_floor(progress(step)))
