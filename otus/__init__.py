"""otus: optimal-transport based simulation, unfolding and calibration for particle physics."""

from __future__ import annotations

__version__ = "0.1.0"

from otus.errors import OtusError

__all__ = ["OtusError", "__version__"]
