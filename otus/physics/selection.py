"""Detector-level event selections and the x representation of SPEC §5.

Detector objects arrive as awkward collections with the Delphes names (``PT``, ``Eta``,
``Phi``, ``Charge``, ``Mass``; ``MET`` for missing energy), whether they come from a Delphes
ROOT file or from otus' own detector model, so one function builds x for both.
"""

from __future__ import annotations

import math
from typing import Any

import awkward as ak
import numpy as np

from otus.errors import OtusError
from otus.physics import fourvec as fv
from otus.processes import ELECTRON_MASS, Process

# Object thresholds (SPEC §5; MadGraph run-card style generator cuts use the same values).
ELECTRON_PT_MIN = 10.0
ELECTRON_ETA_MAX = 2.5
JET_PT_MIN = 20.0
JET_ETA_MAX = 2.5

Collections = dict[str, Any]  # name -> awkward array of records (or numpy for "Weight")


def _p4(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, m: np.ndarray | float) -> np.ndarray:
    return fv.from_ptetaphim(
        np.asarray(pt, dtype=np.float64),
        np.asarray(eta, dtype=np.float64),
        np.asarray(phi, dtype=np.float64),
        np.asarray(m, dtype=np.float64),
    )


def _first(coll: ak.Array, field: str, mask: ak.Array) -> np.ndarray:
    """The field of the first object passing ``mask`` in every event (NaN where none)."""
    sel = coll[field][mask]
    return ak.to_numpy(ak.fill_none(ak.firsts(sel), np.nan)).astype(np.float64)


def build_x(process: Process, reco: Collections) -> tuple[np.ndarray, np.ndarray]:
    """Build x [N, Dx] float32 and x_pass [N] bool from detector collections.

    Rows of failing events are NaN. ``reco`` needs ``Electron`` (and for ttbar ``Muon``,
    ``Jet``, ``MissingET``) collections with Delphes field names.
    """
    for name in ("Electron",) + (("Muon", "Jet", "MissingET") if process.name == "ttbar" else ()):
        if name not in reco:
            raise OtusError(f"detector collections lack {name!r} needed for {process.name}")
    ele = reco["Electron"]
    n = len(ele)
    neg = ele.Charge < 0
    pos = ele.Charge > 0
    if process.name == "zee":
        passed = (ak.sum(neg, axis=1) == 1) & (ak.sum(pos, axis=1) == 1) & (ak.num(ele) == 2)
        parts = [
            _p4(_first(ele, "PT", m), _first(ele, "Eta", m), _first(ele, "Phi", m), ELECTRON_MASS)
            for m in (neg, pos)
        ]
    elif process.name == "ttbar":
        jets = reco["Jet"]
        central = (jets.PT > JET_PT_MIN) & (np.abs(jets.Eta) < JET_ETA_MAX)
        cj = jets[central]
        cj = cj[ak.argsort(cj.PT, axis=1, ascending=False)]
        passed = (
            (ak.num(ele) == 1)
            & (ak.sum(neg, axis=1) == 1)
            & (ak.num(reco["Muon"]) == 0)
            & (ak.num(cj) == 4)
        )
        e = _p4(_first(ele, "PT", neg), _first(ele, "Eta", neg), _first(ele, "Phi", neg), 0.0)
        met = reco["MissingET"]
        met_pt = ak.to_numpy(ak.fill_none(ak.firsts(met.MET), np.nan)).astype(np.float64)
        met_phi = ak.to_numpy(ak.fill_none(ak.firsts(met.Phi), np.nan)).astype(np.float64)
        nu = np.stack(
            [met_pt * np.cos(met_phi), met_pt * np.sin(met_phi), np.zeros(n), met_pt], axis=-1
        )
        padded = ak.pad_none(cj, 4, axis=1, clip=True)
        jet4 = []
        for i in range(4):
            j = padded[:, i]
            jet4.append(
                _p4(
                    ak.to_numpy(ak.fill_none(j.PT, np.nan)),
                    ak.to_numpy(ak.fill_none(j.Eta, np.nan)),
                    ak.to_numpy(ak.fill_none(j.Phi, np.nan)),
                    ak.to_numpy(ak.fill_none(j.Mass, np.nan)),
                )
            )
        parts = [e, nu, *jet4]
    else:  # pragma: no cover - get_process guards this
        raise OtusError(f"no detector selection for process {process.name!r}")
    x = np.concatenate(parts, axis=-1).astype(np.float32)
    x_pass = ak.to_numpy(passed).astype(bool)
    x[~x_pass] = np.nan
    return x, x_pass


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

    def ok(sl: slice, pt_min: float, eta_max: float) -> Any:
        return (pt2[..., sl] > pt_min**2) & (pz2[..., sl] < pt2[..., sl] * math.sinh(eta_max) ** 2)

    if process.name == "zee":
        return ok(slice(None), ELECTRON_PT_MIN, ELECTRON_ETA_MAX).all(-1)
    e_ok = ok(slice(0, 1), ELECTRON_PT_MIN, ELECTRON_ETA_MAX)[..., 0]
    j_ok = ok(slice(2, None), JET_PT_MIN, JET_ETA_MAX).all(-1)
    return e_ok & j_ok
