"""The one feature vocabulary of calibration: named columns computed from detector rows x.

Two sets, two names:

* **classifier features** (reweighting; :func:`classifier_features`,
  :func:`classifier_matrix`): observables of :func:`otus.physics.observables.observables`.
  The defaults are the φ-free x observables (azimuthal symmetry makes φ carry no
  information, and raw px, py mix φ into every column): pT and η of each object, the pT of
  missing ET, and the observables of the process card — for zee pT and η of e− and e+,
  m_ee, pT of the pair.
* **transported features** (OT calibration; :func:`object_features`,
  :func:`transport_features`, :func:`transport_matrix`): per-object kinematics named
  ``<object>_<kind>`` with kind one of ``px, py, pz`` (Cartesian) or ``pt, logpt, eta, phi``
  (collider coordinates), e.g. ``e-_logpt``, or, for plain features (process ``generic``),
  the columns themselves. Conditioning variables may be any such feature or any observable.
  After transport the changed objects are rebuilt (:func:`rebuild_rows`) and their energy is
  recomputed on the mass shell, :math:`E = \\sqrt{|\\vec p|^2 + m^2}`, with the process's
  object mass (jets, whose mass is free, keep their own mass); a plain column is replaced as
  it is.

>>> from otus.processes import ZEE
>>> transport_features(ZEE)
['e-_logpt', 'e-_eta', 'e-_phi', 'e+_logpt', 'e+_eta', 'e+_phi']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from otus.errors import ConfigError
from otus.physics import fourvec as fv
from otus.physics.fourvec import Array
from otus.physics.observables import observables
from otus.processes import Process


# ----------------------------------------------------------------------- classifier features
def classifier_features(process: Process) -> tuple[str, ...]:
    """The default classifier feature names of ``process`` (see
    :meth:`Process.default_features`)."""
    return process.default_features()


def classifier_matrix(
    process: Process, x: np.ndarray, names: Sequence[str] | None = None
) -> np.ndarray:
    """Classifier features [N, F] (float64) of passing detector rows ``x`` [N, Dx] (no NaN
    allowed); ``names`` default to :func:`classifier_features`."""
    names = tuple(names) if names else classifier_features(process)
    obs = observables(process, np.asarray(x, np.float64), "x")
    unknown = [n for n in names if n not in obs]
    if unknown:
        raise ConfigError(
            f"unknown features {unknown} for {process.name}; choose from {', '.join(sorted(obs))}"
        )
    return np.stack([obs[n] for n in names], axis=1) if len(x) else np.zeros((0, len(names)))


# ---------------------------------------------------------------------- transported features
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


def transport_features(process: Process) -> list[str]:
    """The default transported features: (log pT, η, φ) of every non-MET object, and every
    plain column."""
    objs = [f"{o}_{k}" for o in process.x_objects if o != "met" for k in ("logpt", "eta", "phi")]
    return objs + list(process.x_columns)


def _column(name: str, process: Process) -> int | None:
    """Index in x of the plain column ``name`` (None: not a plain column)."""
    return process.x_features.index(name) if name in process.x_columns else None


def objects_of(process: Process, rows: Array) -> Array:
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


def transport_matrix(process: Process, x: np.ndarray, names: Sequence[str]) -> np.ndarray:
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


def rebuild_objects(process: Process, p: Array, new: dict[int, dict[str, Array]]) -> Array:
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
            pt: Array = (
                xp.exp(kinds["logpt"]) if "logpt" in kinds else kinds.get("pt", fv.pt(p[:, i]))
            )
            eta = kinds.get("eta", fv.eta(p[:, i]))
            phi = kinds.get("phi", fv.phi(p[:, i]))
            if process.x_objects[i] == "met":
                eta = pt * 0.0
            p3 = fv.from_ptetaphim(pt, eta, phi, 0.0)[:, :3]
        out.append(fv.on_shell(p3, mass))
    return xp.stack(out, 1)


def new_values(
    process: Process, names: Sequence[str], values: Array
) -> dict[int, dict[str, Array]]:
    """{object index: {kind: column}} for feature ``names`` and ``values`` [N, len(names)]."""
    new: dict[int, dict[str, Array]] = {}
    for j, n in enumerate(names):
        i, kind = _split(n, process)
        new.setdefault(i, {})[kind] = values[:, j]
    return new


def rebuild_rows(process: Process, rows: Array, names: Sequence[str], values: Array) -> Array:
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
