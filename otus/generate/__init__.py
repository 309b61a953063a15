"""Event generation: Pythia hard process + shower and a zoo of parametric detectors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otus.generate.detector import Detector, DetectorOptions
from otus.generate.zoo import DETECTORS, get_detector

if TYPE_CHECKING:
    from otus.generate.generator import generate

__all__ = ["DETECTORS", "Detector", "DetectorOptions", "generate", "get_detector"]


def __getattr__(name: str) -> Any:
    # ``generate`` pulls in Pythia's set-up and the processes (torch): only on use, so that
    # ``otus --help`` (which lists the detectors) stays fast.
    if name == "generate":
        from otus.generate.generator import generate

        return generate
    raise AttributeError(f"module 'otus.generate' has no attribute {name!r}")
