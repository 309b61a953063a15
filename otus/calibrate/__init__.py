"""Calibration of simulation toward data: classifier reweighting and ICNN optimal transport.

Shared foundations: :mod:`~otus.calibrate.regions` (the one region grammar),
:mod:`~otus.calibrate.features` (the one feature vocabulary) and
:mod:`~otus.calibrate.training` (the training idiom of the small networks); then
:mod:`otus.calibrate.reweight` (classifier reweighting) and :mod:`otus.calibrate.ot` (ICNN
transport maps). The names below are the public API; they are imported on first use, so
that ``otus --help`` and the option defaults load without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otus.calibrate.features import (
        classifier_features,
        classifier_matrix,
        object_features,
        replace_features,
        transport_features,
        transport_matrix,
    )
    from otus.calibrate.ot.config import DualConfig, RegionConfig
    from otus.calibrate.ot.dual import OTDual
    from otus.calibrate.ot.files import apply_map
    from otus.calibrate.ot.fit import fit_ot_map
    from otus.calibrate.ot.map import OTMap
    from otus.calibrate.ot.region import fit_region_map
    from otus.calibrate.regions import Region, known_names, parse_region, region_for, region_mask
    from otus.calibrate.reweight.clipping import ClipReport, clip_ratio
    from otus.calibrate.reweight.config import ReweightConfig
    from otus.calibrate.reweight.diagnostics import diagnose, effective_sample_size
    from otus.calibrate.reweight.files import load_reweighter
    from otus.calibrate.reweight.fit import OverlapWarning, ReweightFit, fit_reweighter

_EXPORTS = {
    "otus.calibrate.features": (
        "classifier_features",
        "classifier_matrix",
        "object_features",
        "replace_features",
        "transport_features",
        "transport_matrix",
    ),
    "otus.calibrate.ot.config": ("DualConfig", "RegionConfig"),
    "otus.calibrate.ot.dual": ("OTDual",),
    "otus.calibrate.ot.files": ("apply_map",),
    "otus.calibrate.ot.fit": ("fit_ot_map",),
    "otus.calibrate.ot.map": ("OTMap",),
    "otus.calibrate.ot.region": ("fit_region_map",),
    "otus.calibrate.regions": (
        "Region",
        "known_names",
        "parse_region",
        "region_for",
        "region_mask",
    ),
    "otus.calibrate.reweight.clipping": ("ClipReport", "clip_ratio"),
    "otus.calibrate.reweight.config": ("ReweightConfig",),
    "otus.calibrate.reweight.diagnostics": ("diagnose", "effective_sample_size"),
    "otus.calibrate.reweight.files": ("load_reweighter",),
    "otus.calibrate.reweight.fit": ("OverlapWarning", "ReweightFit", "fit_reweighter"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "ClipReport",
    "DualConfig",
    "OTDual",
    "OTMap",
    "OverlapWarning",
    "Region",
    "RegionConfig",
    "ReweightConfig",
    "ReweightFit",
    "apply_map",
    "classifier_features",
    "classifier_matrix",
    "clip_ratio",
    "diagnose",
    "effective_sample_size",
    "fit_ot_map",
    "fit_region_map",
    "fit_reweighter",
    "known_names",
    "load_reweighter",
    "object_features",
    "parse_region",
    "region_for",
    "region_mask",
    "replace_features",
    "transport_features",
    "transport_matrix",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its home module on first use (PEP 562)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
