"""Checks of generated samples against their inputs: the Z line shape, and the detector's
electron and muon response (efficiency, resolution, scale, and the non-Gaussian parts: tails,
crack, charge mis-identification) and missing ET measured against the formulas of the
detector that made them (:mod:`otus.generate.zoo`; used by tests and experiments)."""

from __future__ import annotations

import awkward as ak
import numpy as np

from otus.generate import detector as det
from otus.generate.reconstruct import dress, isolation_ratio
from otus.generate.zoo import get_detector

ETA_REGIONS_EFF = ((0.0, 1.5), (1.5, 2.5))
ETA_REGIONS_RES = ((0.0, 0.5), (0.5, 1.5), (1.5, 2.5))
PT_BINS_SCALE = ((20.0, 35.0), (35.0, 50.0), (50.0, 100.0))
TAIL_RATIO = 0.9  # the Bethe-Heitler tail: the fraction of pT_reco/pT_true below this
R_MIN = 0.6  # resolution fits use pT_reco/pT_true above this


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


def _lepton_formulas(d: det.Detector, pdg: int) -> tuple[str, det.Formula, det.Formula, float]:
    """Per lepton flavour: reconstructed collection, efficiency (tracking × identification),
    relative pT resolution, isolation cut."""
    if pdg == 11:
        return "Electron", d.electron_efficiency, d.electron_resolution, d.electron_iso_ratio_max
    if pdg == 13:
        return "Muon", d.muon_efficiency, d.muon_resolution, d.muon_iso_ratio_max
    raise ValueError(f"pdg must be 11 (electrons) or 13 (muons), got {pdg!r}")


def lepton_response(
    particles: ak.Array,
    reco: dict[str, ak.Array],
    *,
    pdg: int = 11,
    detector: str | det.Detector = "cms",
) -> dict[str, np.ndarray]:
    """Every final-state truth lepton of flavour ``pdg`` (11: electrons, 13: muons; flat):
    ``pt``, ``eta``, ``charge``, its truth isolation ratio ``iso`` (the detector's definition,
    true momenta) and the pT and charge of the nearest reconstructed lepton within ΔR < 0.1,
    ``reco_pt`` and ``reco_charge`` (NaN when none). Electrons are dressed as the detector
    dresses them (``electron_dressing_dr``)."""
    d = get_detector(detector)
    collection = _lepton_formulas(d, pdg)[0]
    counts = ak.to_numpy(ak.num(particles))
    evt = np.repeat(np.arange(len(particles)), counts)
    flat = ak.flatten(particles)
    pid = ak.to_numpy(flat.id)
    p4 = np.stack(
        [ak.to_numpy(flat[c]).astype(np.float64) for c in ("px", "py", "pz", "e")], axis=-1
    ).reshape(-1, 4)
    if pdg == 11 and d.electron_dressing_dr > 0:
        p4 = dress(pid, p4, evt, counts, d.electron_dressing_dr)
    px, py, pz = p4[:, 0], p4[:, 1], p4[:, 2]
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(py, px)
    visible = ~np.isin(np.abs(pid), (12, 14, 16)) & (np.abs(eta) < d.calo_eta_max)
    cand = np.flatnonzero(np.abs(pid) == pdg)
    iso = isolation_ratio(
        cand,
        evt,
        np.where(visible, pt, 0.0),
        eta,
        phi,
        counts,
        dr_max=d.iso_dr_max,
        pt_min=d.iso_pt_min,
    )
    # pair every truth lepton with every reconstructed lepton of its event
    lep = reco[collection]
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
    dr2 = (r["Eta"][j] - eta[c]) ** 2 + dphi**2
    ok = np.flatnonzero(dr2 < 0.01)
    ok = ok[np.lexsort((dr2[ok], rep[ok]))]  # per truth lepton, the nearest first
    ok = ok[np.unique(rep[ok], return_index=True)[1]]
    rpt, rq = np.full(len(cand), np.nan), np.full(len(cand), np.nan)
    rpt[rep[ok]], rq[rep[ok]] = r["PT"][j[ok]], r["Charge"][j[ok]]
    return {
        "pt": pt[cand],
        "eta": eta[cand],
        "charge": -np.sign(pid[cand]).astype(np.float64),
        "iso": iso,
        "reco_pt": rpt,
        "reco_charge": rq,
        "pdg": np.full(len(cand), pdg),
    }


def electron_response(
    particles: ak.Array, reco: dict[str, ak.Array], detector: str | det.Detector = "cms"
) -> dict[str, np.ndarray]:
    """:func:`lepton_response` of the electrons."""
    return lepton_response(particles, reco, pdg=11, detector=detector)


def missing_et_response(
    particles: ak.Array, reco: dict[str, ak.Array], detector: str | det.Detector = "cms"
) -> dict[str, np.ndarray]:
    """Per event: the true missing transverse momentum (vector sum of the neutrinos and of
    the particles outside the calorimeter, |η| ≥ 5, and of muons outside the tracker, none
    of which any energy-flow object measures; every muon for detectors whose missing ET comes
    from calorimeter towers) ``true_px``, ``true_py``, and the reconstructed ``MissingET``
    (``met_px``, ``met_py``): module ``Merger MissingET``, minus the vector sum of the energy
    flow (tracks, ECAL photons, HCAL neutral hadrons) or of the towers."""
    d = get_detector(detector)
    flat = ak.flatten(particles)
    counts = ak.to_numpy(ak.num(particles))
    evt = np.repeat(np.arange(len(particles)), counts)
    apid = np.abs(ak.to_numpy(flat.id))
    px, py, pz = (ak.to_numpy(flat[c]).astype(np.float64) for c in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    aeta = np.abs(np.arcsinh(pz / np.maximum(pt, 1e-12)))
    unseen = (
        np.isin(apid, (12, 14, 16))
        | (aeta >= d.calo_eta_max)
        | ((apid == 13) & ((aeta > d.tracker_eta_max) | d.towers))
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


def _scale(d: det.Detector, pdg: int, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    if pdg == 11 and d.electron_scale is not None:
        return np.asarray(d.electron_scale(pt, eta), dtype=np.float64)
    return np.ones(len(pt))


def _loss_nodes(d: det.Detector, eta: np.ndarray, m: int = 128) -> np.ndarray:
    """Midpoint quantiles of the Bethe-Heitler loss −ln z per lepton [N, m] (quadrature)."""
    assert d.electron_radiation is not None
    u = (np.arange(m) + 0.5) / m
    return d.electron_radiation.loss_quantile(u[None, :], eta[:, None])


def fit_response(
    ratio: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    *,
    detector: str | det.Detector = "cms",
    pdg: int = 11,
    r_min: float = 0.0,
) -> tuple[float, float]:
    """Unbinned maximum-likelihood fit of the response r = pT_reco/pT_true (all above
    ``r_min``) of leptons with true ``pt`` and ``eta`` to the detector's own response model
    with two free factors: a scale λ and a resolution factor k (both 1 when the detector
    follows its formulas).

    The model: r/(λ s) follows the log-normal of relative width kσ (Delphes'
    ``MomentumSmearing``), times the Bethe-Heitler kept fraction for ``electron_radiation``,
    or the Crystal Ball 1 + kσ t for ``electron_core``; σ, s are the detector's resolution
    and scale formulas; the density is normalised above ``r_min``. Returns (λ, k).
    """
    from scipy.optimize import minimize
    from scipy.special import log_ndtr

    d = get_detector(detector)
    sigma = np.asarray(_lepton_formulas(d, pdg)[2](pt, eta), dtype=np.float64)
    s = _scale(d, pdg, pt, eta)
    core = d.electron_core if pdg == 11 else None
    nodes = _loss_nodes(d, eta) if pdg == 11 and d.electron_radiation is not None else None
    y = np.log(np.maximum(ratio / s, 1e-300))
    y_min = np.log(np.maximum(r_min / s, 1e-300))

    def nll(p: np.ndarray) -> float:
        lam, k = np.exp(p[0]), np.exp(p[1])
        if core is not None:
            t = (ratio / (lam * s) - 1.0) / (k * sigma)
            above = 1.0 - core.cdf((r_min / (lam * s) - 1.0) / (k * sigma), k * sigma)
            logp = np.log(np.maximum(core.pdf(t, k * sigma), 1e-300)) - np.log(k * sigma)
            return -float(np.sum(logp - np.log(np.maximum(above, 1e-300))))
        b = np.sqrt(np.log1p((k * sigma) ** 2))
        mu = p[0] - 0.5 * b**2
        if nodes is None:
            norm = log_ndtr((mu - y_min) / b)
            return float(np.sum(0.5 * ((y - mu) / b) ** 2 + np.log(b) + norm))
        dens = np.exp(-0.5 * ((y[:, None] + nodes - mu[:, None]) / b[:, None]) ** 2).mean(1)
        above = np.exp(log_ndtr((mu[:, None] - nodes - y_min[:, None]) / b[:, None])).mean(1)
        logp = np.log(np.maximum(dens, 1e-300)) - np.log(b) - np.log(np.maximum(above, 1e-300))
        return -float(np.sum(logp))

    res = minimize(nll, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-5})
    return float(np.exp(res.x[0])), float(np.exp(res.x[1]))


def draw_response(
    pt: np.ndarray,
    eta: np.ndarray,
    rng: np.random.Generator,
    *,
    detector: str | det.Detector = "cms",
    pdg: int = 11,
) -> np.ndarray:
    """Draws of the response r = pT_measured/pT_true of leptons with true ``pt``, ``eta``
    from the detector's formulas (the model :func:`fit_response` fits)."""
    d = get_detector(detector)
    sigma = np.asarray(_lepton_formulas(d, pdg)[2](pt, eta), dtype=np.float64)
    core = d.electron_core if pdg == 11 else None
    if core is not None:
        r = core.draw(sigma, rng)
    else:
        r = det.log_normal(np.ones(len(sigma)), sigma, rng)
    r = r * _scale(d, pdg, pt, eta)
    if pdg == 11 and d.electron_radiation is not None:
        r = r * d.electron_radiation.draw(eta, rng)
    return r


def _response_draws(
    resp: dict[str, np.ndarray], d: det.Detector, pdg: int, draws: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """For the truth leptons of ``resp``: ``draws`` measured-pT responses each [N, draws]
    (:func:`draw_response`) and the probability that each passes the identification (on
    the measured pT) and the isolation cut (truth isolation sum over the measured pT)."""
    ident: det.Formula = d.electron_identification if pdg == 11 else d.muon_id_efficiency
    cut = _lepton_formulas(d, pdg)[3]
    rng = np.random.default_rng(seed)
    pt, eta, iso = (np.repeat(resp[k], draws) for k in ("pt", "eta", "iso"))
    r = draw_response(pt, eta, rng, detector=d, pdg=pdg)
    passed = ident(r * pt, eta) * (iso <= cut * r)
    return r.reshape(-1, draws), passed.reshape(-1, draws)


def expected_efficiency(
    resp: dict[str, np.ndarray], detector: str | det.Detector = "cms", *, draws: int = 64
) -> np.ndarray:
    """Per truth lepton of :func:`lepton_response`, the efficiency the detector's formulas
    predict: ε_track(pT) times the mean, over ``draws`` draws of the measured pT, of
    ε_id(measured pT) (Delphes applies the identification to the smeared candidate) and of
    the isolation cut on the truth isolation sum over the measured pT. For a Gaussian
    detector and leptons well above threshold this is ε_track·ε_id·1(iso ≤ cut)."""
    d = get_detector(detector)
    pdg = int(resp["pdg"][0]) if len(resp["pdg"]) else 11
    tracking = d.electron_tracking_efficiency if pdg == 11 else d.muon_tracking_efficiency
    _, passed = _response_draws(resp, d, pdg, draws)
    return tracking(resp["pt"], resp["eta"]) * passed.mean(1)


def _tail_rows(
    d: det.Detector, resp: dict[str, np.ndarray], sel: np.ndarray
) -> list[dict[str, object]]:
    """The electrons' non-Gaussian parts, measured on the reconstructed electrons ``sel``
    against their formulas; tail fractions predicted from draws of the response weighted by
    the probability to be reconstructed (a lepton deep in the tail may fail the
    identification or the isolation)."""
    pt, eta = resp["pt"][sel], resp["eta"][sel]
    ratio = resp["reco_pt"][sel] / pt
    sigma = np.asarray(d.electron_resolution(pt, eta), dtype=np.float64)
    s = _scale(d, 11, pt, eta)
    r, passed = _response_draws({k: v[sel] for k, v in resp.items()}, d, 11)

    def row(quantity: str, measured: float, card: float) -> dict[str, object]:
        return {
            "quantity": quantity,
            "eta": (0.0, 2.5),
            "n": int(sel.sum()),
            "measured": measured,
            "card": card,
        }

    rows: list[dict[str, object]] = []
    if d.electron_radiation is not None:
        tail = r < TAIL_RATIO
        rows.append(
            row(
                f"tail fraction P(pT_reco/pT_true < {TAIL_RATIO})",
                float(np.mean(ratio < TAIL_RATIO)),
                float((tail * passed).sum() / passed.sum()),
            )
        )
    if d.electron_core is not None:
        alpha = d.electron_core.alpha
        t_draw = (r / s[:, None] - 1.0) / sigma[:, None]
        rows.append(
            row(
                f"tail fraction P(t < -{alpha})",
                float(np.mean((ratio / s - 1.0) / sigma < -alpha)),
                float(((t_draw < -alpha) * passed).sum() / passed.sum()),
            )
        )
    if d.electron_charge_flip is not None:
        rows.append(
            row(
                "charge mis-identification",
                float(np.mean(resp["reco_charge"][sel] != resp["charge"][sel])),
                float(np.mean(d.electron_charge_flip(pt, eta))),
            )
        )
    return rows


def card_closure(
    resp: dict[str, np.ndarray],
    detector: str | det.Detector = "cms",
    *,
    pt_min: float = 20.0,
) -> list[dict[str, object]]:
    """Measured vs formula lepton efficiency, pT resolution and scale, per |η| region, for
    the truth leptons of :func:`lepton_response` (electrons or muons) with pT > ``pt_min``,
    against the formulas of ``detector`` (the one that made the sample).

    Efficiency rows: the fraction reconstructed, for well-isolated leptons (truth isolation
    below half the detector's cut, so that isolation hardly enters) and for all, against the
    mean of :func:`expected_efficiency`: ε_track·ε_id (e.g. ``ElectronTrackingEfficiency`` ×
    ``ElectronEfficiency``, or ``MuonTrackingEfficiency`` × ``MuonEfficiency``) on the
    measured pT, and the isolation cut on the truth isolation; with an ``electron_crack``,
    the same in the crack. Resolution rows: the width kσ of the Gaussian core fitted by
    :func:`fit_response` against the RMS of the formula's σ/pT (``ElectronMomentumSmearing``
    or ``MuonMomentumSmearing``); scale rows: the fitted scale λ·⟨s⟩ against ⟨s⟩ (1 unless
    the detector has an ``electron_scale``, whose pT dependence then gets rows per pT bin).
    Electrons of detectors with non-Gaussian parts get rows for them (:func:`_tail_rows`):
    the Bethe-Heitler tail fraction, the Crystal-Ball tail fraction, the charge
    mis-identification rate.
    """
    d = get_detector(detector)
    pdg = int(resp["pdg"][0]) if len(resp.get("pdg", ())) else 11
    _, _, resolution, iso_max = _lepton_formulas(d, pdg)
    aeta = np.abs(resp["eta"])
    found = np.isfinite(resp["reco_pt"])
    hard = resp["pt"] > pt_min
    isolated = resp["iso"] < 0.5 * iso_max
    eff_regions = list(ETA_REGIONS_EFF)
    if pdg == 11 and d.electron_crack is not None:
        eff_regions.append(d.electron_crack[:2])
    expected = expected_efficiency(resp, d)
    rows: list[dict[str, object]] = []
    for lo, hi in eff_regions:
        region = (aeta >= lo) & (aeta < hi) & hard
        for label, sel in (("isolated", region & isolated), ("all", region)):
            card = expected[sel].mean()
            rows.append(
                {
                    "quantity": f"efficiency ({label})",
                    "eta": (lo, hi),
                    "n": int(sel.sum()),
                    "measured": float(found[sel].mean()),
                    "card": float(card),
                }
            )

    def response_rows(sel: np.ndarray, where: dict[str, object]) -> list[dict[str, object]]:
        pt, eta = resp["pt"][sel], resp["eta"][sel]
        lam, k = fit_response(resp["reco_pt"][sel] / pt, pt, eta, detector=d, pdg=pdg, r_min=R_MIN)
        rms = float(np.sqrt(np.mean(resolution(pt, eta) ** 2)))
        s = float(_scale(d, pdg, pt, eta).mean())
        n = int(sel.sum())
        return [
            {"quantity": "resolution σ(pT)/pT", **where, "n": n, "measured": k * rms, "card": rms},
            {"quantity": "scale pT_reco/pT_true", **where, "n": n, "measured": lam * s, "card": s},
        ]

    # the response of well-isolated leptons measured above R_MIN (so that neither the
    # identification threshold nor the isolation selects on it; the fit knows the truncation)
    fit = hard & found & isolated
    fit[fit] = resp["reco_pt"][fit] > R_MIN * resp["pt"][fit]
    for lo, hi in ETA_REGIONS_RES:
        rows += response_rows((aeta >= lo) & (aeta < hi) & fit, {"eta": (lo, hi)})
    if pdg == 11 and d.electron_scale is not None:
        for lo, hi in PT_BINS_SCALE:
            sel = (resp["pt"] >= lo) & (resp["pt"] < hi) & fit & (aeta < 2.5)
            rows += response_rows(sel, {"eta": (0.0, 2.5), "pt": (lo, hi)})
    if pdg == 11:
        rows += _tail_rows(d, resp, hard & found)
    return rows
