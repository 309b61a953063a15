"""Explicit, reported clipping of density ratios (never a silent ``nan_to_num``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClipReport:
    """What clipping did: how many ratios were cut, and by how much."""

    threshold: float | None
    n_events: int
    n_clipped: int
    max_ratio: float  # largest ratio before clipping
    weight_removed: float  # fraction of the total |w|·r removed by the clip

    @property
    def fraction(self) -> float:
        return self.n_clipped / self.n_events if self.n_events else 0.0

    @classmethod
    def none(cls) -> ClipReport:
        return cls(None, 0, 0, float("nan"), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": self.fraction}

    def __str__(self) -> str:
        if self.threshold is None:
            return f"no clipping (largest ratio {self.max_ratio:.3g} among {self.n_events} events)"
        return (
            f"clipped {self.n_clipped} of {self.n_events} ratios "
            f"({100 * self.fraction:.3f}%) at {self.threshold:g}; largest was "
            f"{self.max_ratio:.3g}, {100 * self.weight_removed:.3f}% of the weight removed"
        )


def clip_ratio(
    r: np.ndarray, *, clip: float | None, weights: np.ndarray | None = None
) -> tuple[np.ndarray, ClipReport]:
    """Return ``min(r, clip)`` and a :class:`ClipReport` (``clip=None``: r unchanged).

    ``weights`` (the events' own weights) only enter the removed-weight fraction.
    """
    r = np.asarray(r, np.float64)
    w = np.ones_like(r) if weights is None else np.abs(np.asarray(weights, np.float64))
    max_r = float(r.max()) if len(r) else float("nan")
    if clip is None:
        return r, ClipReport(None, len(r), 0, max_r, 0.0)
    over = r > clip
    out = np.where(over, clip, r)
    tot = float(np.sum(w * r))
    removed = float(np.sum(w[over] * (r[over] - clip))) / tot if tot > 0 else 0.0
    return out, ClipReport(float(clip), len(r), int(over.sum()), max_r, removed)
