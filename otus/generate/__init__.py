"""Event generation: Pythia hard process + shower and a Delphes-CMS-card detector model."""

from __future__ import annotations

from otus.generate.detector import DetectorOptions
from otus.generate.generator import generate

__all__ = ["DetectorOptions", "generate"]
