"""Physics observables per process (SPEC §8), computed from z or x rows.

ttbar jet assignment at detector level (jets carry no flavour tag in x): the hadronic W is
the pair of the four jets whose mass is closest to M_W; of the two remaining jets, the one
that with that W gives a mass closest to M_t is the hadronic b, the other the leptonic b.
The leptonic W is electron + neutrino, the neutrino pz solved from the W-mass constraint
(the smaller-|pz| root; the real part when the discriminant is negative). At parton level
the assignment is known: W = q + q̄′, hadronic top = b + W, leptonic top = e⁻ + ν̄ + b̄.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from otus.physics import fourvec as fv
from otus.processes import Process

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


def _ttbar_detector_assignment(x: np.ndarray) -> dict[str, np.ndarray]:
    p = fv.objects(x.astype(np.float64), 6)
    e, met, jets = p[:, 0], p[:, 1], p[:, 2:]
    pairs = list(combinations(range(4), 2))
    mw = np.stack([fv.invariant_mass(jets[:, i], jets[:, j]) for i, j in pairs], axis=1)
    best = np.nanargmin(np.where(np.isnan(mw), np.inf, np.abs(mw - M_W)), axis=1)
    rows = np.arange(len(x))
    ij = np.array(pairs)[best]
    w = jets[rows, ij[:, 0]] + jets[rows, ij[:, 1]]
    rest = np.array([[k for k in range(4) if k not in pr] for pr in pairs])[best]
    b1, b2 = jets[rows, rest[:, 0]], jets[rows, rest[:, 1]]
    t1, t2 = fv.mass(w + b1), fv.mass(w + b2)
    first = np.abs(t1 - M_TOP) <= np.abs(t2 - M_TOP)
    b_had = np.where(first[:, None], b1, b2)
    b_lep = np.where(first[:, None], b2, b1)
    nu = met.copy()
    nu[:, 2] = neutrino_pz(e, met)
    nu[:, 3] = fv.p3(nu)
    return {"w_had": w, "t_had": w + b_had, "t_lep": e + nu + b_lep}


def _ttbar_parton_assignment(z: np.ndarray) -> dict[str, np.ndarray]:
    p = fv.objects(z.astype(np.float64), 6)
    e, nu, b, bbar, q, qbar = (p[:, i] for i in range(6))
    w = q + qbar
    return {"w_had": w, "t_had": w + b, "t_lep": e + nu + bbar}


def observables(process: Process, rows: np.ndarray, level: str) -> dict[str, np.ndarray]:
    """Named observables of z (``level='z'``) or x (``level='x'``) rows, [N] each.

    Every stored feature (e.g. ``e+_py``), pT and η of each object, and the process's
    invariant masses: ``m_ee`` for zee; ``m_W_had``, ``m_t_had``, ``m_t_lep``, ``m_tt`` for ttbar.
    """
    names = process.z_objects if level == "z" else process.x_objects
    feats = process.z_features if level == "z" else process.x_features
    rows = np.asarray(rows, dtype=np.float64)
    out = {f: rows[:, i] for i, f in enumerate(feats)}
    p = fv.objects(rows, len(names))
    for i, o in enumerate(names):
        out[f"{o}_pt"] = fv.pt(p[:, i])
        if not (level == "x" and o == "met"):
            out[f"{o}_eta"] = fv.eta(p[:, i])
    if process.name == "zee":
        out["m_ee"] = fv.invariant_mass(p[:, 0], p[:, 1])
        out["pt_ee"] = fv.pt(p[:, 0] + p[:, 1])
    else:
        a = _ttbar_parton_assignment(rows) if level == "z" else _ttbar_detector_assignment(rows)
        out["m_W_had"] = fv.mass(a["w_had"])
        out["m_t_had"] = fv.mass(a["t_had"])
        out["m_t_lep"] = fv.mass(a["t_lep"])
        out["m_tt"] = fv.mass(a["t_had"] + a["t_lep"])
    return out


def label(name: str) -> str:
    """Axis label with units for an observable name."""
    unit = _LABEL_UNITS.get(name.rsplit("_", 1)[-1], "GeV" if name.startswith("m_") else "")
    return f"{name} [{unit}]" if unit else name
