"""The OTUS model: networks, Lightning module and data, training, and the public API."""

from otus.models.api import Surrogate, load_run

__all__ = ["Surrogate", "load_run"]
