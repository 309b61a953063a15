"""Event selections: the z and x representations of a process (its card), from any format.

**Detector level** (:func:`build_x`). Detector objects arrive as awkward collections with the
Delphes names (``PT``, ``Eta``, ``Phi``, ``Charge``, ``Mass``; ``MET`` for missing energy),
whether they come from a Delphes ROOT file, a CMS NanoAOD file or otus' own detector model,
so one function builds x for all.

Per object type of the card's selection, the objects passing ``pt_min`` and ``eta_max`` are
ordered by decreasing pT; the type's detector slots take them in order (a slot with a charge
the leading object of that charge not yet taken). The event passes when every type's count
holds (``count``: exactly; ``min_count``: at least, the rest ignored) and every slot is
filled. Missing ET is one object (the first ``MissingET`` entry), stored with pz = 0, E = pT.

**Parton level** (:func:`build_z`). Hard-process particles arrive as one awkward record per
particle (fields of :data:`PARTON_FIELDS`), whether they come from an LHE file or from the
``LHEPart``/``GenPart`` branches of a NanoAOD file, so one function picks z for all: for each
card entry in order, the outgoing particles with one of its PDG ids (and, when the entry
names a ``mother``, whose direct parent has one of those ids) that no earlier entry took; the
highest pT of them is used. An event lacking one is not selected.
"""

from __future__ import annotations

import math
from typing import Any

import awkward as ak
import numpy as np

from otus.errors import OtusError
from otus.physics import fourvec as fv
from otus.processes import Parton, Process

Collections = dict[str, Any]  # name -> awkward array of records (or numpy for "Weight")

# Detector object type -> collection name (Delphes names; readers of other formats map to them)
COLLECTION = {
    "electron": "Electron",
    "muon": "Muon",
    "photon": "Photon",
    "jet": "Jet",
    "met": "MissingET",
}


def _p4(pt: Any, eta: Any, phi: Any, m: Any) -> np.ndarray:
    return fv.from_ptetaphim(
        np.asarray(pt, dtype=np.float64),
        np.asarray(eta, dtype=np.float64),
        np.asarray(phi, dtype=np.float64),
        np.asarray(m, dtype=np.float64),
    )


def _np(a: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.fill_none(a, np.nan)).astype(np.float64)


def required_collections(process: Process) -> tuple[str, ...]:
    """Collection names that :func:`build_x` reads for ``process``."""
    return tuple(COLLECTION[t] for t in process.collection_types)


def build_x(process: Process, reco: Collections) -> tuple[np.ndarray, np.ndarray]:
    """Build x [N, Dx] float32 and x_pass [N] bool from detector collections.

    Rows of failing events are NaN. ``reco`` needs the collections of every object type
    that the process's card names (Delphes field names).
    """
    needed = required_collections(process)
    for name in needed:
        if name not in reco:
            raise OtusError(f"detector collections lack {name!r} needed for {process.name}")
    n = len(reco[needed[0]])
    passed = np.ones(n, dtype=bool)
    parts: dict[int, np.ndarray] = {}
    for t in process.collection_types:
        coll = reco[COLLECTION[t]]
        slots = [(i, s) for i, s in enumerate(process.detector) if s.type == t]
        if t == "met":
            i, _ = slots[0]
            met_pt, met_phi = _np(ak.firsts(coll.MET)), _np(ak.firsts(coll.Phi))
            parts[i] = np.stack(
                [met_pt * np.cos(met_phi), met_pt * np.sin(met_phi), np.zeros(n), met_pt], -1
            )
            passed &= np.isfinite(met_pt)
            continue
        cut = process.cut(t)
        keep = coll.PT > cut.pt_min
        if math.isfinite(cut.eta_max):
            keep = keep & (np.abs(coll.Eta) < cut.eta_max)
        objs = coll[keep]
        objs = objs[ak.argsort(objs.PT, axis=1, ascending=False, stable=True)]
        passed &= ak.to_numpy(cut.count_ok(ak.num(objs)))
        taken = ak.zeros_like(objs.PT, dtype=bool)
        local = ak.local_index(objs.PT)
        for i, s in slots:
            cand = ~taken
            if s.charge is not None:
                cand = cand & ((objs.Charge > 0) if s.charge > 0 else (objs.Charge < 0))
            has = ak.to_numpy(ak.any(cand, axis=1))
            first = ak.fill_none(ak.argmax(cand, axis=1), -1)
            hit = cand & (local == first)
            taken = taken | hit
            pick = objs[hit]
            p = _p4(
                _np(ak.firsts(pick.PT)),
                _np(ak.firsts(pick.Eta)),
                _np(ak.firsts(pick.Phi)),
                _np(ak.firsts(pick.Mass)) if t == "jet" else s.mass,
            )
            p[~has] = np.nan
            parts[i] = p
            passed &= has
    x = np.concatenate([parts[i] for i in range(len(process.detector))], axis=-1)
    x = x.astype(np.float32)
    x[~passed] = np.nan
    return x, passed


def acceptance(process: Process, x: Any) -> Any:
    """Boolean mask of rows of x (numpy or torch, [N, Dx]) inside the detector thresholds.

    This is the truncation applied to reconstructions D(z): objects below threshold would
    be missing from real detector data, so such events do not enter the data loss.
    """
    # In squares, without η: |η| < c ⟺ pz² < pT² sinh²(c) (pT > 0), and pT > t ⟺ pT² > t².
    # Equal to the cuts on pT and |η|, and no asinh/sqrt (this runs on every simulated event).
    p = fv.objects(x, len(process.x_objects))
    pt2 = p[..., 0] ** 2 + p[..., 1] ** 2
    pz2 = p[..., 2] ** 2
    ok: Any = None
    for t in dict.fromkeys(process.x_types):
        if t == "met":
            continue
        idx = [i for i, s in enumerate(process.x_types) if s == t]
        cut = process.cut(t)
        sl = slice(idx[0], idx[-1] + 1) if idx == list(range(idx[0], idx[-1] + 1)) else idx
        m = pt2[..., sl] > cut.pt_min**2
        if math.isfinite(cut.eta_max):
            m = m & (pz2[..., sl] < pt2[..., sl] * math.sinh(cut.eta_max) ** 2)
        m = m.all(-1)
        ok = m if ok is None else ok & m
    if ok is None:  # only missing ET: nothing to truncate
        ok = pt2[..., 0] == pt2[..., 0]
    return ok


# Fields of the hard-process record that build_z reads: PDG id, outgoing (LHE status 1),
# PDG id of the direct parent (0: none or unknown), four-momentum in GeV.
PARTON_FIELDS = ("pdg", "outgoing", "mother", "px", "py", "pz", "E")


def build_z(process: Process, particles: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """Build z [N, Dz] float64 and selected [N] bool from hard-process records.

    ``particles`` is a jagged array of records with the fields :data:`PARTON_FIELDS`; rules in
    the module docstring. Rows of events that are not selected are NaN.
    """
    missing = [f for f in PARTON_FIELDS if f not in ak.fields(particles)]
    if missing:
        raise OtusError(f"hard-process records lack fields {missing}")
    pt = np.hypot(particles.px, particles.py)
    # A particle with NaN momentum wins the pT comparison, so that the NaN reaches z (and the
    # reader's finiteness check) instead of an argmax silently passing over it.
    pt = ak.where(np.isnan(pt), np.inf, pt)
    local = ak.local_index(particles.pdg)
    taken = ak.zeros_like(particles.pdg, dtype=bool)
    moms, ones = [], []
    for entry in process.parton:
        m = particles.outgoing & _isin(particles.pdg, entry.pdg) & ~taken
        if entry.mother is not None:
            m = m & _isin(particles.mother, entry.mother)
        best = ak.argmax(ak.where(m, pt, -1.0), axis=1, keepdims=True)
        one = ak.to_numpy(ak.any(m, axis=1))
        chosen = particles[best]
        moms.append(
            np.stack(
                [np.where(one, _np(ak.firsts(chosen[c])), np.nan) for c in ("px", "py", "pz", "E")],
                axis=-1,
            )
        )
        ones.append(one)
        taken = taken | ((local == ak.fill_none(best[:, 0], -1)) & one)
    selected = np.logical_and.reduce(ones)
    z = np.concatenate(moms, axis=-1)
    z[~selected] = np.nan
    return z, selected


def entry_matches(process: Process, particles: ak.Array) -> list[int]:
    """Per card parton entry, the number of events holding at least one outgoing particle
    that matches it (ignoring the other entries): a zero points at a wrong PDG id."""
    out = []
    for entry in process.parton:
        m = particles.outgoing & _isin(particles.pdg, entry.pdg)
        if entry.mother is not None:
            m = m & _isin(particles.mother, entry.mother)
        out.append(int(ak.sum(ak.any(m, axis=1))))
    return out


def describe_partons(process: Process) -> str:
    """The card's parton entries in words, for messages: ``the zee partons e- (pdg 11), …``."""

    def one(p: Parton) -> str:
        ids = "|".join(str(i) for i in p.pdg)
        moth = f" from {'|'.join(str(i) for i in p.mother)}" if p.mother else ""
        return f"{p.name} (pdg {ids}{moth})"

    return f"the {process.name} partons " + ", ".join(one(p) for p in process.parton)


def _isin(a: ak.Array, values: tuple[int, ...]) -> ak.Array:
    out = a == values[0]
    for v in values[1:]:
        out = out | (a == v)
    return out
