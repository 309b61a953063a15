"""The learning-rate schedule of every trainer in otus: cosine decay to a floor over the
fraction of the training budget used (steps, epochs or wall-clock time)."""

from __future__ import annotations

import math

COSINE_FLOOR = 0.02  # the final learning rate as a fraction of the initial one


def cosine_with_floor(progress: float, floor: float = COSINE_FLOOR) -> float:
    """Learning-rate factor after ``progress`` ∈ [0, 1] of the budget: 1 at the start,
    ``floor`` at the end, half a cosine in between.

    >>> cosine_with_floor(0.0), cosine_with_floor(1.0), round(cosine_with_floor(0.5), 3)
    (1.0, 0.02, 0.51)
    """
    p = min(max(progress, 0.0), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))
