"""The library's error types: every bad input ends as one of these."""

from __future__ import annotations


class OtusError(ValueError):
    """A user-facing problem (bad file, bad option); the CLI prints it as one line, exit 2."""


class InputFileError(OtusError):
    """An input file is missing, malformed or holds the wrong content."""


class ConfigError(OtusError):
    """A configuration key or value is invalid."""


class TrainingError(OtusError):
    """Training cannot go on (e.g. a diverging loss)."""
