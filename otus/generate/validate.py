"""Checks of generated samples against their inputs: the Z line shape and the detector's
electron response measured against the Delphes CMS card (used by tests and experiments)."""

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


def electron_response(particles: ak.Array, reco: dict[str, ak.Array]) -> dict[str, np.ndarray]:
    """Every final-state truth electron (flat): ``pt``, ``eta``, its truth isolation ratio
    ``iso`` (card definition, true momenta) and the pT of the reconstructed electron of the
    same charge within ΔR < 0.1, ``reco_pt`` (NaN when none)."""
    counts = ak.to_numpy(ak.num(particles))
    evt = np.repeat(np.arange(len(particles)), counts)
    flat = ak.flatten(particles)
    pid = ak.to_numpy(flat.id)
    px, py, pz = (ak.to_numpy(flat[c]).astype(np.float64) for c in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(py, px)
    visible = ~np.isin(np.abs(pid), (12, 14, 16)) & (np.abs(eta) < det.CALO_ETA_MAX)
    cand = np.flatnonzero(np.abs(pid) == 11)
    iso = isolation_ratio(cand, evt, np.where(visible, pt, 0.0), eta, phi, counts)
    # pair every truth electron with every reconstructed electron of its event
    ele = reco["Electron"]
    rcount = ak.to_numpy(ak.num(ele))
    rstart = np.concatenate([[0], np.cumsum(rcount)[:-1]])
    r = {
        f: ak.to_numpy(ak.flatten(ele[f])).astype(np.float64)
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
    return {"pt": pt[cand], "eta": eta[cand], "iso": iso, "reco_pt": rpt}


def card_closure(resp: dict[str, np.ndarray], *, pt_min: float = 20.0) -> list[dict[str, object]]:
    """Measured vs card electron efficiency and pT resolution, per |η| region, for truth
    electrons with pT > ``pt_min``.

    Efficiency rows: the fraction reconstructed, for well-isolated electrons (truth isolation
    below half the card's cut, so that isolation does not enter) and for all, against the
    mean of ε_track·ε_id (``ElectronTrackingEfficiency`` × ``ElectronEfficiency``).
    Resolution rows: the standard deviation of pT_reco/pT_true against the RMS of the card's
    σ/pT (``ElectronMomentumSmearing``), and the mean of pT_reco/pT_true (1 by construction).
    """
    aeta = np.abs(resp["eta"])
    found = np.isfinite(resp["reco_pt"])
    hard = resp["pt"] > pt_min
    isolated = resp["iso"] < 0.5 * det.ELECTRON_ISO_RATIO_MAX
    rows: list[dict[str, object]] = []
    for lo, hi in ETA_REGIONS_EFF:
        region = (aeta >= lo) & (aeta < hi) & hard
        for label, sel in (("isolated", region & isolated), ("all", region)):
            card = det.electron_efficiency(resp["pt"][sel], resp["eta"][sel]).mean()
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
        card = np.sqrt(np.mean(det.electron_resolution(resp["pt"][sel], resp["eta"][sel]) ** 2))
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
