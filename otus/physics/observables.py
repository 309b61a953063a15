"""Physics observables of a process (its card), computed from z or x rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from otus.physics import fourvec as fv

if TYPE_CHECKING:  # importing otus.processes here would be circular (its cards use this module)
    from otus.processes.process import Process

M_W = 80.4
M_TOP = 172.5

_LABEL_UNITS = {
    "px": "GeV",
    "py": "GeV",
    "pz": "GeV",
    "E": "GeV",
    "pt": "GeV",
    "eta": "",
    "m": "GeV",
}


def neutrino_pz(lep: np.ndarray, met: np.ndarray, m_w: float = M_W) -> np.ndarray:
    """Neutrino pz from the W-mass constraint on (lepton + MET), smaller-|pz| root."""
    ptl2 = lep[:, 0] ** 2 + lep[:, 1] ** 2
    mu = 0.5 * m_w**2 + lep[:, 0] * met[:, 0] + lep[:, 1] * met[:, 1]
    a = mu * lep[:, 2] / ptl2
    ptn2 = met[:, 0] ** 2 + met[:, 1] ** 2
    disc = a**2 - (lep[:, 3] ** 2 * ptn2 - mu**2) / ptl2
    root = np.sqrt(np.clip(disc, 0.0, None))
    return np.where(np.abs(a - root) < np.abs(a + root), a - root, a + root)


def observables(process: Process, rows: np.ndarray, level: str) -> dict[str, np.ndarray]:
    """Named observables of z (``level='z'``) or x (``level='x'``) rows, [N] each.

    Every stored feature (e.g. ``e+_py``, or a plain column of a generic process), pT and η
    of each object (no η for missing ET), and the observables of the process card at each
    level whose objects they name: ``mass`` (invariant mass), ``mt`` (transverse mass) and
    ``pt`` of the sum of the named objects, and named built-ins (:mod:`otus.processes.named`).
    """
    names = process.objects(level)
    feats = process.z_features if level == "z" else process.x_features
    rows = np.asarray(rows, dtype=np.float64)
    out = {f: rows[:, i] for i, f in enumerate(feats)}
    p = fv.objects(rows[:, : 4 * len(names)], len(names))  # plain columns follow the objects
    for i, (o, transverse) in enumerate(zip(names, process.transverse(level), strict=True)):
        out[f"{o}_pt"] = fv.pt(p[:, i])
        if not transverse:
            out[f"{o}_eta"] = fv.eta(p[:, i])
    for ob in process.observable_defs:
        if ob.kind == "builtin":
            from otus.processes.named import builtin_observables

            out.update(builtin_observables(ob.builtin or "", process, p, level))
            continue
        if not all(o in names for o in ob.objects):
            continue
        idx = [names.index(o) for o in ob.objects]
        if ob.kind == "mass":
            out[ob.name] = fv.invariant_mass(*(p[:, i] for i in idx))
        elif ob.kind == "pt":
            out[ob.name] = fv.pt(p[:, idx].sum(axis=1))
        else:  # mt: transverse mass of the system, sqrt((Σ E_T)² − |Σ pT|²), massless E_T
            ets = sum(fv.pt(p[:, i]) for i in idx)
            tot = p[:, idx].sum(axis=1)
            out[ob.name] = np.sqrt(np.clip(ets**2 - (tot[:, 0] ** 2 + tot[:, 1] ** 2), 0, None))
    return out


def label(name: str) -> str:
    """Axis label with units for an observable name."""
    unit = _LABEL_UNITS.get(name.rsplit("_", 1)[-1], "GeV" if name.startswith("m_") else "")
    return f"{name} [{unit}]" if unit else name
