"""Checks of generated samples against their inputs: the Z line shape, and the detector's
electron and muon response and missing ET measured against the Delphes CMS card (used by
tests and experiments)."""

from __future__ import annotations

import awkward as ak
import numpy as np

from otus.generate import detector as det
from otus.generate.reconstruct import isolation_ratio

ETA_REGIONS_EFF = ((0.0, 1.5), (1.5, 2.5))
ETA_REGIONS_RES = ((0.0, 0.5), (0.5, 1.5), (1.5, 2.5))


def fit_breit_wigner(m: np.ndarray, *, lo: float = 81.0, hi: float = 101.0) -> tuple[float, float]:
    """Unbinned maximum-likelihood fit of a Breit-Wigner (Cauchy) line plus a flat continuum
    to the masses ``m`` inside [lo, hi]; returns (mass, full width), GeV.

    .. math:: p(m) = f\\,\\frac{Γ/2π}{(m − M)^2 + Γ^2/4}\\big/ N + (1 − f)/(hi − lo).
    """
    from scipy.optimize import minimize

    m = np.asarray(m, dtype=np.float64)
    m = m[(m > lo) & (m < hi)]

    def nll(p: np.ndarray) -> float:
        mass, g, f = p[0], abs(p[1]) / 2, 1.0 / (1.0 + np.exp(-p[2]))
        norm = (np.arctan((hi - mass) / g) - np.arctan((lo - mass) / g)) / np.pi
        bw = g / np.pi / ((m - mass) ** 2 + g**2) / norm
        return -float(np.sum(np.log(f * bw + (1 - f) / (hi - lo))))

    res = minimize(nll, [0.5 * (lo + hi), 3.0, 2.0], method="Nelder-Mead")
    return float(res.x[0]), abs(float(res.x[1]))


# Per lepton flavour: reconstructed collection, card efficiency (tracking × identification),
# card relative pT resolution, isolation cut.
_LEPTON = {
    11: ("Electron", det.electron_efficiency, det.electron_resolution, det.ELECTRON_ISO_RATIO_MAX),
    13: ("Muon", det.muon_efficiency, det.muon_resolution, det.MUON_ISO_RATIO_MAX),
}


def lepton_response(
    particles: ak.Array, reco: dict[str, ak.Array], *, pdg: int = 11
) -> dict[str, np.ndarray]:
    """Every final-state truth lepton of flavour ``pdg`` (11: electrons, 13: muons; flat):
    ``pt``, ``eta``, its truth isolation ratio ``iso`` (card definition, true momenta) and
    the pT of the reconstructed lepton of the same charge within ΔR < 0.1, ``reco_pt``
    (NaN when none)."""
    if pdg not in _LEPTON:
        raise ValueError(f"pdg must be 11 (electrons) or 13 (muons), got {pdg!r}")
    counts = ak.to_numpy(ak.num(particles))
    evt = np.repeat(np.arange(len(particles)), counts)
    flat = ak.flatten(particles)
    pid = ak.to_numpy(flat.id)
    px, py, pz = (ak.to_numpy(flat[c]).astype(np.float64) for c in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(py, px)
    visible = ~np.isin(np.abs(pid), (12, 14, 16)) & (np.abs(eta) < det.CALO_ETA_MAX)
    cand = np.flatnonzero(np.abs(pid) == pdg)
    iso = isolation_ratio(cand, evt, np.where(visible, pt, 0.0), eta, phi, counts)
    # pair every truth lepton with every reconstructed lepton of its event
    lep = reco[_LEPTON[pdg][0]]
    rcount = ak.to_numpy(ak.num(lep))
    rstart = np.concatenate([[0], np.cumsum(rcount)[:-1]])
    r = {
        f: ak.to_numpy(ak.flatten(lep[f])).astype(np.float64)
        for f in ("PT", "Eta", "Phi", "Charge")
    }
    n_per = rcount[evt[cand]]
    rep = np.repeat(np.arange(len(cand)), n_per)
    first = np.concatenate([[0], np.cumsum(n_per)[:-1]])
    j = np.repeat(rstart[evt[cand]] - first, n_per) + np.arange(len(rep))
    c = cand[rep]
    dphi = (r["Phi"][j] - phi[c] + np.pi) % (2 * np.pi) - np.pi
    ok = (r["Charge"][j] == -np.sign(pid[c])) & ((r["Eta"][j] - eta[c]) ** 2 + dphi**2 < 0.01)
    rpt = np.full(len(cand), np.nan)
    rpt[rep[ok]] = r["PT"][j[ok]]
    return {
        "pt": pt[cand],
        "eta": eta[cand],
        "iso": iso,
        "reco_pt": rpt,
        "pdg": np.full(len(cand), pdg),
    }


def electron_response(particles: ak.Array, reco: dict[str, ak.Array]) -> dict[str, np.ndarray]:
    """:func:`lepton_response` of the electrons."""
    return lepton_response(particles, reco, pdg=11)


def missing_et_response(particles: ak.Array, reco: dict[str, ak.Array]) -> dict[str, np.ndarray]:
    """Per event: the true missing transverse momentum (vector sum of the neutrinos and of
    the particles outside the calorimeter, |η| ≥ 5, and of muons outside the tracker, none
    of which any energy-flow object measures) ``true_px``, ``true_py``, and the
    reconstructed ``MissingET`` (``met_px``, ``met_py``): module ``Merger MissingET``, minus
    the vector sum of the energy flow (tracks, ECAL photons, HCAL neutral hadrons)."""
    flat = ak.flatten(particles)
    counts = ak.to_numpy(ak.num(particles))
    evt = np.repeat(np.arange(len(particles)), counts)
    apid = np.abs(ak.to_numpy(flat.id))
    px, py, pz = (ak.to_numpy(flat[c]).astype(np.float64) for c in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    aeta = np.abs(np.arcsinh(pz / np.maximum(pt, 1e-12)))
    unseen = (
        np.isin(apid, (12, 14, 16))
        | (aeta >= det.CALO_ETA_MAX)
        | ((apid == 13) & (aeta > det.TRACKER_ETA_MAX))
    )
    n = len(particles)
    met = reco["MissingET"]
    m, phi = (ak.to_numpy(ak.firsts(met[f])).astype(np.float64) for f in ("MET", "Phi"))
    return {
        "true_px": np.bincount(evt, weights=np.where(unseen, px, 0.0), minlength=n),
        "true_py": np.bincount(evt, weights=np.where(unseen, py, 0.0), minlength=n),
        "met_px": m * np.cos(phi),
        "met_py": m * np.sin(phi),
    }


def card_closure(resp: dict[str, np.ndarray], *, pt_min: float = 20.0) -> list[dict[str, object]]:
    """Measured vs card lepton efficiency and pT resolution, per |η| region, for the truth
    leptons of :func:`lepton_response` (electrons or muons) with pT > ``pt_min``.

    Efficiency rows: the fraction reconstructed, for well-isolated leptons (truth isolation
    below half the card's cut, so that isolation does not enter) and for all, against the
    mean of ε_track·ε_id (``ElectronTrackingEfficiency`` × ``ElectronEfficiency``, or
    ``MuonTrackingEfficiency`` × ``MuonEfficiency``). Resolution rows: the standard deviation
    of pT_reco/pT_true against the RMS of the card's σ/pT (``ElectronMomentumSmearing`` or
    ``MuonMomentumSmearing``), and the mean of pT_reco/pT_true (1 by construction).
    """
    pdg = int(resp["pdg"][0]) if len(resp.get("pdg", ())) else 11
    _, efficiency, resolution, iso_max = _LEPTON[pdg]
    aeta = np.abs(resp["eta"])
    found = np.isfinite(resp["reco_pt"])
    hard = resp["pt"] > pt_min
    isolated = resp["iso"] < 0.5 * iso_max
    rows: list[dict[str, object]] = []
    for lo, hi in ETA_REGIONS_EFF:
        region = (aeta >= lo) & (aeta < hi) & hard
        for label, sel in (("isolated", region & isolated), ("all", region)):
            card = efficiency(resp["pt"][sel], resp["eta"][sel]).mean()
            rows.append(
                {
                    "quantity": f"efficiency ({label})",
                    "eta": (lo, hi),
                    "n": int(sel.sum()),
                    "measured": float(found[sel].mean()),
                    "card": float(card),
                }
            )
    for lo, hi in ETA_REGIONS_RES:
        sel = (aeta >= lo) & (aeta < hi) & hard & found
        ratio = resp["reco_pt"][sel] / resp["pt"][sel]
        card = np.sqrt(np.mean(resolution(resp["pt"][sel], resp["eta"][sel]) ** 2))
        rows.append(
            {
                "quantity": "resolution σ(pT)/pT",
                "eta": (lo, hi),
                "n": int(sel.sum()),
                "measured": float(ratio.std()),
                "card": float(card),
            }
        )
        rows.append(
            {
                "quantity": "scale <pT_reco/pT_true>",
                "eta": (lo, hi),
                "n": int(sel.sum()),
                "measured": float(ratio.mean()),
                "card": 1.0,
            }
        )
    return rows
