"""OT calibration on event files: fit a map in a control region, apply it to any file.

Features and conditions are named in the one feature vocabulary
(:mod:`otus.calibrate.features`); regions use the one region grammar of
:mod:`otus.calibrate.regions`, validated against the observables of the file's process.
:func:`fit_files` fits with the min-max dual (a :class:`~otus.calibrate.ot.config.DualConfig`)
or the region objective (a :class:`~otus.calibrate.ot.config.RegionConfig`);
:func:`apply_map` moves the passing events of an event file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from otus.calibrate.features import (
    check_transportable,
    object_features,
    object_groups,
    replace_features,
    transport_features,
    transport_matrix,
)
from otus.calibrate.ot.config import DualConfig, RegionConfig
from otus.calibrate.ot.fit import fit_ot_map
from otus.calibrate.ot.map import OTMap
from otus.calibrate.ot.region import fit_region_map
from otus.calibrate.regions import known_names, region_for, region_mask
from otus.errors import ConfigError, InputFileError
from otus.io.h5 import Events, read_events
from otus.processes import Process


def _select(ev: Events, region: str | None) -> np.ndarray:
    """Passing events, optionally inside ``region``."""
    if region is None:
        return np.asarray(ev.x_pass, dtype=bool).copy()
    if ev.x is None:
        raise InputFileError("the events hold no detector-level x to select a region on")
    return region_mask(region, ev.process, ev.x, ev.x_pass)


def _stacked(
    process: Process,
    x: np.ndarray,
    w: np.ndarray,
    groups: Sequence[tuple[Sequence[str], Sequence[str]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of every group stacked: one row per object (features, conditions, weights)."""
    f = np.concatenate([transport_matrix(process, x, g[0]) for g in groups])
    c = np.concatenate([transport_matrix(process, x, g[1]) for g in groups])
    return f, c, np.tile(w, len(groups))


def fit_files(
    mc: str,
    data: str,
    *,
    features: Sequence[str] | None = None,
    condition: Sequence[str] = (),
    region: str | None = None,
    iterations: int = 1,
    per_object: bool = False,
    config: DualConfig | RegionConfig | None = None,
    accelerator: str = "cpu",
    progress: bool = False,
) -> tuple[OTMap, dict[str, Any]]:
    """Fit an OT map from the passing MC events to the passing data events (in ``region``).

    With ``iterations`` > 1 the MC side of the region is made self-consistent: a region cut
    on an observable that the map moves (m_ee from the calibrated pT) selects different
    events before and after calibration, so the first fit compares MC and data truncated
    differently. Each further fit selects the MC events whose *calibrated* observables (by
    the previous map) lie in the region, i.e. the events that the final calibrated sample
    puts there, as the data's region holds the data events that land there.

    With ``per_object`` one map is fitted on the objects' rows pooled (each electron's log pT
    given its own η, say: the detector response is per object) and applied to each object.

    ``config`` picks the objective: a :class:`DualConfig` (default) fits the min-max dual
    between the two region samples (:func:`otus.calibrate.ot.fit.fit_ot_map`); a
    :class:`RegionConfig` fits the map so that the *calibrated* MC events landing in
    ``region`` match the data there (:func:`otus.calibrate.ot.region.fit_region_map`): the
    selection is consistent by construction, so ``iterations`` does not apply.

    Returns the :class:`~otus.calibrate.ot.map.OTMap` (its ``info`` records process,
    features, condition and region) and a summary with event counts.
    """
    cfg = config or DualConfig()
    objective = "region" if isinstance(cfg, RegionConfig) else "dual"
    ev_mc, ev_data = read_events(mc), read_events(data)
    for path, ev in ((mc, ev_mc), (data, ev_data)):
        if ev.x is None:
            raise InputFileError(f"{path}: holds no detector-level x to calibrate")
    if ev_mc.process.name != ev_data.process.name:
        raise InputFileError(
            f"dimension mismatch: {mc} holds {ev_mc.process.name} events "
            f"({ev_mc.process.dx} features), {data} holds {ev_data.process.name} "
            f"({ev_data.process.dx})"
        )
    proc = ev_mc.process
    features = list(features) if features else transport_features(proc)
    condition = list(condition)
    for path, ev in ((mc, ev_mc), (data, ev_data)):
        _check_names(path, ev.process, [*features, *condition])
        check_transportable(ev.process, features)
        if region is not None:
            region_for(region, ev.process)  # names checked against the file's own process
    if set(condition) & set(features):
        raise ConfigError(
            f"{sorted(set(condition) & set(features))} are both transported and conditioned on"
        )
    groups = object_groups(proc, features, condition) if per_object else [(features, condition)]
    if iterations < 1:
        raise ConfigError(f"iterations must be >= 1, got {iterations}")
    if objective == "region" and region is None:
        raise ConfigError("the region objective needs a region (the cut it keeps consistent)")
    if objective == "region" and iterations != 1:
        raise ConfigError(
            "iterations apply to the dual objective; the region objective "
            "selects the MC by its calibrated observables at every step"
        )
    if objective == "region" and ev_data.process != proc:
        raise InputFileError(
            f"the region objective needs {mc} and {data} of one process (the same columns)"
        )

    def columns(path: str, ev: Events, moved: Events) -> dict[str, Any]:
        """Stacked rows of ``ev`` whose ``moved`` version lies in the region."""
        keep = _select(moved, region)
        if keep.sum() < 10:
            after = " after calibration" if moved is not ev else ""
            raise InputFileError(
                f"{path}: only {int(keep.sum())} passing events in region "
                f"{region!r}{after}; need at least 10"
            )
        w = np.asarray(ev.weight, dtype=np.float64)[keep]
        assert ev.x is not None  # both files were checked to hold x
        x, c, w = _stacked(ev.process, ev.x[keep], w, groups)
        return {
            "x": torch.as_tensor(x, dtype=torch.float32),
            "c": torch.as_tensor(c, dtype=torch.float32),
            "w": torch.as_tensor(w, dtype=torch.float32),
            "keep": keep,
        }

    src = columns(mc, ev_mc, ev_mc)
    target = columns(data, ev_data, ev_data)  # the data side never moves
    has_c = bool(condition)
    m: OTMap | None = None
    n_mc_history: list[int] = []
    for _ in range(iterations if region is not None else 1):
        if m is not None:
            src = columns(mc, ev_mc, apply_map(m, ev_mc))
        n_mc_history.append(len(src["x"]) // len(groups))
        if isinstance(cfg, RegionConfig):
            keep_m, keep_d = np.asarray(ev_mc.x_pass, bool), target["keep"]
            x_mc, x_data = ev_mc.x, ev_data.x
            # checked above: both files hold x, and the region objective has a region
            assert x_mc is not None and x_data is not None and region is not None
            m = fit_region_map(
                proc,
                x_mc[keep_m],
                np.asarray(ev_mc.weight)[keep_m],
                x_data[keep_d],
                np.asarray(ev_data.weight)[keep_d],
                groups=groups,
                region=region,
                config=cfg,
                accelerator=accelerator,
                progress=progress,
            )
        else:
            m = fit_ot_map(
                src["x"],
                target["x"],
                cx=src["c"] if has_c else None,
                cy=target["c"] if has_c else None,
                wx=src["w"],
                wy=target["w"],
                config=cfg,
                accelerator=accelerator,
                progress=progress,
            )
        # every iteration: apply_map reads the process and the groups from the map's info
        m.info.update(
            {
                "process": proc.name,
                "features": features,
                "condition": condition,
                "groups": [[list(f), list(c)] for f, c in groups],
                "region": region,
                "objective": objective,
            }
        )
        if objective == "region":  # the MC events the calibrated sample puts in the region
            n_mc_history[-1] = int(_select(apply_map(m, ev_mc), region).sum())
        m.info.update(
            {
                "n_mc": n_mc_history[-1],
                "n_data": len(target["x"]) // len(groups),
                "iterations": len(n_mc_history),
                "n_mc_per_iteration": list(n_mc_history),
            }
        )
    assert m is not None  # the loop runs at least once
    summary = {
        k: m.info[k]
        for k in (
            "process",
            "features",
            "condition",
            "groups",
            "region",
            "objective",
            "n_mc",
            "n_data",
            "iterations",
            "n_mc_per_iteration",
            "best_step",
            "best",
            "last",
        )
    }
    return m, summary


def _check_names(path: str, process: Process, names: Sequence[str]) -> None:
    """Every feature and condition ``names`` exists in the file ``path`` (of ``process``)."""
    have = set(object_features(process)) | set(known_names(process))
    bad = [n for n in names if n not in have]
    if bad:
        raise ConfigError(
            f"{path}: unknown feature or observable {bad[0]!r}; choose from "
            f"{', '.join(sorted(have))}"
        )


def apply_map(
    m: OTMap,
    ev: Events,
    *,
    region: str | None = None,
    batch_size: int = 65536,
    device: str = "cpu",
    seed: int = 0,
) -> Events:
    """Events ``ev`` with the calibrated features of its passing events (in ``region``)
    moved by the map ``m``; everything else (z, weights, failing events) kept. ``seed``
    seeds the draws of a stochastic map (independent per object group)."""
    proc_name = m.info.get("process")
    if ev.x is None:
        raise InputFileError("input holds no detector-level x to calibrate")
    if proc_name != ev.process.name:
        raise InputFileError(
            f"dimension mismatch: the map calibrates {proc_name} events, "
            f"the input holds {ev.process.name}"
        )
    groups = m.info.get("groups") or [[m.info["features"], m.info["condition"]]]
    keep = _select(ev, region)
    x = np.array(ev.x, copy=True)
    gen = torch.Generator().manual_seed(seed)
    if keep.any():
        orig = ev.x[keep]
        xk = orig
        # Every group reads the uncalibrated features (per-object maps never see a partner's
        # calibrated values).
        for features, condition in groups:
            feats = torch.as_tensor(
                transport_matrix(ev.process, orig, features), dtype=torch.float32
            )
            cond = (
                torch.as_tensor(transport_matrix(ev.process, orig, condition), dtype=torch.float32)
                if condition
                else None
            )
            moved = (
                m.transport(feats, cond, batch_size=batch_size, device=device, generator=gen)
                .double()
                .cpu()
                .numpy()
            )
            xk = replace_features(ev.process, xk, features, moved)
        x[keep] = xk
    return Events(ev.process, ev.z, x.astype(np.float32), ev.x_pass, ev.weight, dict(ev.provenance))
