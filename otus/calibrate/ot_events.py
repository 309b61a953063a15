"""OT calibration on event files: named features, control regions, fit and apply.

Transported features are per-object kinematics of the detector-level ``x``, named
``<object>_<kind>`` with kind one of ``px, py, pz`` (Cartesian) or ``pt, logpt, eta, phi``
(collider coordinates), e.g. ``e-_logpt``, or, for plain features (process ``generic``), the
columns themselves. After transport the changed objects are rebuilt and their energy is
recomputed on the mass shell, :math:`E = \\sqrt{|\\vec p|^2 + m^2}`, with the process's
object mass (jets, whose mass is free, keep their own mass); a plain column is replaced as
it is. Conditioning variables may be any such feature or any observable of
:func:`otus.physics.observables`. Regions use the one region grammar of
:mod:`otus.calibrate.regions`, validated against the observables of the file's process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from otus.calibrate.regions import known_names, region_for, region_mask
from otus.errors import ConfigError
from otus.physics import fourvec as fv
from otus.physics.observables import observables
from otus.processes import Process

CARTESIAN = ("px", "py", "pz")
COLLIDER = ("pt", "logpt", "eta", "phi")
KINDS = CARTESIAN + COLLIDER


def object_features(process: Process) -> list[str]:
    """All transportable feature names: kinematics of the detector-level objects, then the
    plain columns."""
    out = []
    for o in process.x_objects:
        kinds = [k for k in KINDS if not (o == "met" and k in ("pz", "eta"))]
        out += [f"{o}_{k}" for k in kinds]
    return out + list(process.x_columns)


def _column(name: str, process: Process) -> int | None:
    """Index in x of the plain column ``name`` (None: not a plain column)."""
    return process.x_features.index(name) if name in process.x_columns else None


def objects_of(process: Process, rows: Any) -> Any:
    """The objects' four-momenta [N, n, 4] of detector rows [N, Dx] (numpy or torch)."""
    n = len(process.x_objects)
    return fv.objects(rows[:, : 4 * n], n)


def _split(name: str, process: Process) -> tuple[int, str]:
    obj, _, kind = name.rpartition("_")
    if obj in process.x_objects and kind in KINDS and name in object_features(process):
        return process.x_objects.index(obj), kind
    raise ConfigError(
        f"unknown feature {name!r} for {process.name}; choose from "
        f"{', '.join(object_features(process))}"
    )


def _kind_values(p: np.ndarray, kind: str) -> np.ndarray:
    if kind in CARTESIAN:
        return p[:, CARTESIAN.index(kind)]
    if kind == "pt":
        return fv.pt(p)
    if kind == "logpt":
        return np.log(np.clip(fv.pt(p), 1e-12, None))
    return fv.eta(p) if kind == "eta" else fv.phi(p)


def feature_matrix(process: Process, x: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Columns ``names`` [N, len(names)] computed from detector rows ``x`` [N, Dx].

    Per-object features (see module doc) or observables (conditioning only).
    """
    x = np.asarray(x, dtype=np.float64)
    p = objects_of(process, x)
    cols: list[np.ndarray] = []
    obs: dict[str, np.ndarray] | None = None
    for name in names:
        c = _column(name, process)
        if c is not None:
            cols.append(x[:, c])
            continue
        try:
            i, kind = _split(name, process)
            cols.append(_kind_values(p[:, i], kind))
        except ConfigError:
            if obs is None:
                obs = observables(process, x, "x") if len(x) else {}
            if name not in obs and len(x):
                choices = sorted(set(object_features(process)) | set(obs))
                raise ConfigError(
                    f"unknown feature or observable {name!r} for {process.name}; "
                    f"choose from {', '.join(choices)}"
                ) from None
            cols.append(obs[name] if len(x) else np.zeros(0))
    return np.stack(cols, axis=1) if cols else np.zeros((len(x), 0))


def check_transportable(process: Process, names: Sequence[str]) -> None:
    """Each object may be calibrated in Cartesian *or* collider coordinates, not both."""
    if not names:
        raise ConfigError("no features to calibrate")
    if len(set(names)) != len(names):
        raise ConfigError(f"feature listed twice in {', '.join(names)}")
    per_obj: dict[int, set[str]] = {}
    for n in names:
        if _column(n, process) is not None:
            continue
        i, kind = _split(n, process)
        per_obj.setdefault(i, set()).add(kind)
    for i, kinds in per_obj.items():
        o = process.x_objects[i]
        if kinds & set(CARTESIAN) and kinds & set(COLLIDER):
            raise ConfigError(
                f"{o}: mix of Cartesian and collider features {sorted(kinds)}; "
                "use px/py/pz or pt/logpt/eta/phi"
            )
        if {"pt", "logpt"} <= kinds:
            raise ConfigError(f"{o}: give pt or logpt, not both")


def rebuild_objects(process: Process, p: Any, new: dict[int, dict[str, Any]]) -> Any:
    """Four-momenta ``p`` [N, n, 4] (numpy or torch) with the kinds ``new`` {object index:
    {kind: values}} replaced and those objects' energies put back on the mass shell.

    Works on torch tensors too (differentiable in the new values), for the region objective.
    """
    xp = fv.namespace(p)
    out = []
    for i in range(p.shape[1]):
        kinds = new.get(i)
        if not kinds:
            out.append(p[:, i])
            continue
        m = process.x_masses[i]
        mass = fv.mass(p[:, i]) if np.isnan(m) else m
        if set(kinds) <= set(CARTESIAN):
            p3 = fv.stack([kinds.get(k, p[:, i, j]) for j, k in enumerate(CARTESIAN)], p)
        else:
            pt: Any = (
                xp.exp(kinds["logpt"]) if "logpt" in kinds else kinds.get("pt", fv.pt(p[:, i]))
            )
            eta = kinds.get("eta", fv.eta(p[:, i]))
            phi = kinds.get("phi", fv.phi(p[:, i]))
            if process.x_objects[i] == "met":
                eta = pt * 0.0
            p3 = fv.from_ptetaphim(pt, eta, phi, 0.0)[:, :3]
        out.append(fv.on_shell(p3, mass))
    return xp.stack(out, 1)


def new_values(process: Process, names: Sequence[str], values: Any) -> dict[int, dict[str, Any]]:
    """{object index: {kind: column}} for feature ``names`` and ``values`` [N, len(names)]."""
    new: dict[int, dict[str, Any]] = {}
    for j, n in enumerate(names):
        i, kind = _split(n, process)
        new.setdefault(i, {})[kind] = values[:, j]
    return new


def rebuild_rows(process: Process, rows: Any, names: Sequence[str], values: Any) -> Any:
    """Detector rows [N, Dx] (numpy or torch) with features ``names`` set to ``values``
    [N, len(names)]: changed objects rebuilt on the mass shell (:func:`rebuild_objects`),
    plain columns replaced. Differentiable in ``values`` for torch tensors."""
    xp = fv.namespace(rows)
    n = len(process.x_objects)
    obj = [j for j, name in enumerate(names) if _column(name, process) is None]
    cols = {_column(names[j], process): values[:, j] for j in range(len(names)) if j not in obj}
    parts = []
    if n:
        new = new_values(process, [names[j] for j in obj], values[:, obj])
        parts.append(rebuild_objects(process, objects_of(process, rows), new).reshape(-1, 4 * n))
    rest = [cols.get(c, rows[:, c]) for c in range(4 * n, rows.shape[1])]
    if rest:
        parts.append(xp.stack(rest, 1))
    return parts[0] if len(parts) == 1 else xp.concatenate(parts, 1)


def replace_features(
    process: Process, x: np.ndarray, names: Sequence[str], values: np.ndarray
) -> np.ndarray:
    """Rows ``x`` with features ``names`` set to ``values``, energies back on shell."""
    check_transportable(process, names)
    out = rebuild_rows(
        process, np.asarray(x, dtype=np.float64), names, np.asarray(values, dtype=np.float64)
    )
    return out.astype(np.asarray(x).dtype)


def _select(ev: Any, region: str | None) -> np.ndarray:
    """Passing events, optionally inside ``region``."""
    if region is None:
        return np.asarray(ev.x_pass, dtype=bool).copy()
    return region_mask(region, ev.process, ev.x, ev.x_pass)


def object_groups(
    process: Process, features: Sequence[str], condition: Sequence[str]
) -> list[tuple[list[str], list[str]]]:
    """Per-object calibration: split ``features`` and ``condition`` into one
    (features, condition) group per object, e.g. e-_logpt | e-_eta and e+_logpt | e+_eta.
    Every object must list the same kinds in the same order (one map serves them all)."""
    objs: list[int] = []
    by_obj: dict[int, tuple[list[str], list[str]]] = {}
    for names, slot in ((features, 0), (condition, 1)):
        for n in names:
            try:
                i, _ = _split(n, process)
            except ConfigError:
                raise ConfigError(
                    f"per-object calibration: {n!r} is not an object feature (e.g. e-_eta)"
                ) from None
            if i not in by_obj:
                if slot == 1:
                    raise ConfigError(
                        f"per-object calibration: {n!r} conditions an object that is not calibrated"
                    )
                objs.append(i)
                by_obj[i] = ([], [])
            by_obj[i][slot].append(n)
    groups = [by_obj[i] for i in objs]

    def kinds(names: list[str]) -> list[str]:
        return [_split(n, process)[1] for n in names]

    first = (kinds(groups[0][0]), kinds(groups[0][1]))
    for f, c in groups[1:]:
        if (kinds(f), kinds(c)) != first:
            raise ConfigError(
                f"per-object calibration: every object needs the same features "
                f"and conditions; {f + c} differ from {groups[0][0] + groups[0][1]}"
            )
    return groups


def _stacked(
    process: Process,
    x: np.ndarray,
    w: np.ndarray,
    groups: Sequence[tuple[Sequence[str], Sequence[str]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of every group stacked: one row per object (features, conditions, weights)."""
    f = np.concatenate([feature_matrix(process, x, g[0]) for g in groups])
    c = np.concatenate([feature_matrix(process, x, g[1]) for g in groups])
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
    objective: str = "dual",
    **fit_kw: Any,
) -> tuple[Any, dict[str, Any]]:
    """Fit an OT map from the passing MC events to the passing data events (in ``region``).

    With ``iterations`` > 1 the MC side of the region is made self-consistent: a region cut
    on an observable that the map moves (m_ee from the calibrated pT) selects different
    events before and after calibration, so the first fit compares MC and data truncated
    differently. Each further fit selects the MC events whose *calibrated* observables (by
    the previous map) lie in the region, i.e. the events that the final calibrated sample
    puts there, as the data's region holds the data events that land there.

    With ``per_object`` one map is fitted on the objects' rows pooled (each electron's log pT
    given its own η, say: the detector response is per object) and applied to each object.

    ``objective``: ``"dual"`` fits the min-max dual between the two region samples
    (:func:`otus.calibrate.ot.fit_ot_map`, ``fit_kw`` its options); ``"region"`` fits the map
    so that the *calibrated* MC events landing in ``region`` match the data there
    (:func:`otus.calibrate.ot_region.fit_region_map`, ``fit_kw`` its options): the selection
    is consistent by construction, so ``iterations`` does not apply.

    Returns the :class:`otus.calibrate.ot.OTMap` (its ``info`` records process, features,
    condition and region) and a summary with event counts.
    """
    import torch

    from otus.calibrate.ot import fit_ot_map
    from otus.errors import InputFileError
    from otus.io.h5 import read_events

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
    features = list(features) if features else default_features(proc)
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
    if objective not in ("dual", "region"):
        raise ConfigError(f"unknown objective {objective!r}; choose dual or region")
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

    def columns(path: str, ev: Any, moved: Any) -> dict[str, Any]:
        """Stacked rows of ``ev`` whose ``moved`` version lies in the region."""
        keep = _select(moved, region)
        if keep.sum() < 10:
            after = " after calibration" if moved is not ev else ""
            raise InputFileError(
                f"{path}: only {int(keep.sum())} passing events in region "
                f"{region!r}{after}; need at least 10"
            )
        w = np.asarray(ev.weight, dtype=np.float64)[keep]
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
    m: Any = None
    n_mc_history: list[int] = []
    for _ in range(iterations if region is not None else 1):
        if m is not None:
            src = columns(mc, ev_mc, apply_map(m, ev_mc))
        n_mc_history.append(len(src["x"]) // len(groups))
        if objective == "region":
            from otus.calibrate.ot_region import fit_region_map

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
                **fit_kw,
            )
        else:
            m = fit_ot_map(
                src["x"],
                target["x"],
                cx=src["c"] if has_c else None,
                cy=target["c"] if has_c else None,
                wx=src["w"],
                wy=target["w"],
                **fit_kw,
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


def default_features(process: Process) -> list[str]:
    """(log pT, η, φ) of every non-MET object, and every plain column."""
    objs = [f"{o}_{k}" for o in process.x_objects if o != "met" for k in ("logpt", "eta", "phi")]
    return objs + list(process.x_columns)


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
    m: Any,
    ev: Any,
    *,
    region: str | None = None,
    batch_size: int = 65536,
    device: str = "cpu",
    seed: int = 0,
) -> Any:
    """Events ``ev`` with the calibrated features of its passing events (in ``region``)
    moved by the map ``m``; everything else (z, weights, failing events) kept. ``seed``
    seeds the draws of a stochastic map (independent per object group)."""
    import torch

    from otus.errors import InputFileError
    from otus.io.h5 import Events

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
            feats = torch.as_tensor(feature_matrix(ev.process, orig, features), dtype=torch.float32)
            cond = (
                torch.as_tensor(feature_matrix(ev.process, orig, condition), dtype=torch.float32)
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
