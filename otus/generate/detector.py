"""The parametric detector: formulas of Delphes' CMS card, as pure numpy functions.

Every formula below is transcribed from ``cards/delphes_card_CMS.tcl`` of Delphes 3
(de Favereau et al., JHEP 02 (2014) 057, arXiv:1307.6346; github.com/delphes/delphes); the
card module each one comes from is named in its docstring. Arguments are numpy arrays of
transverse momentum ``pt`` (GeV), pseudorapidity ``eta`` and energy ``e`` (GeV).

Three knobs change the detector response, e.g. to make pseudo-"data" that differ from the
simulation (all 1.0 reproduce the card):

* ``resolution_scale`` multiplies every resolution σ,
* ``energy_scale`` multiplies every reconstructed momentum (tracks, calorimeter deposits,
  hence electrons, muons, jets and MET alike),
* ``efficiency_scale`` multiplies the identification efficiencies (clipped to [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from otus.errors import OtusError

CARD = "delphes_card_CMS.tcl (Delphes 3, arXiv:1307.6346)"

# Isolation (module Isolation ElectronIsolation / MuonIsolation): scalar pT sum of the
# energy-flow objects with pT > ISO_PT_MIN inside ΔR < ISO_DR_MAX, divided by the candidate pT.
ISO_DR_MAX = 0.5
ISO_PT_MIN = 0.5
ELECTRON_ISO_RATIO_MAX = 0.12
MUON_ISO_RATIO_MAX = 0.25

# Jets (module FastJetFinder FastJetFinder): anti-kT, R = 0.5, pT > 20 GeV before the JES.
JET_R = 0.5
JET_PT_MIN = 20.0

# Calorimeter acceptance (ECal/HCal towers end at |η| = 5); the tracker ends at |η| = 2.5.
CALO_ETA_MAX = 5.0
TRACKER_ETA_MAX = 2.5


@dataclass(frozen=True)
class DetectorOptions:
    """Knobs of the detector response; the defaults are the card."""

    resolution_scale: float = 1.0
    energy_scale: float = 1.0
    efficiency_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("resolution_scale", "energy_scale", "efficiency_scale"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise OtusError(f"{name} must be a positive number, got {v}")


# --------------------------------------------------------------------------- efficiencies


def _tracking(
    pt: np.ndarray, eta: np.ndarray, barrel: tuple[float, float], endcap: tuple[float, float]
) -> np.ndarray:
    """The Delphes cards' two-step tracking efficiency: (pT in (0.1, 1], pT > 1 GeV) values
    in the barrel (|η| ≤ 1.5) and the endcaps (1.5 < |η| ≤ 2.5), 0 otherwise."""
    a = np.abs(eta)
    low, high = (pt > 0.1) & (pt <= 1.0), pt > 1.0
    value = np.zeros(np.shape(pt))
    for region, (e_low, e_high) in (((a <= 1.5), barrel), ((a > 1.5) & (a <= 2.5), endcap)):
        value += region * (e_low * low + e_high * high)
    return value


def charged_hadron_tracking_efficiency(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``Efficiency ChargedHadronTrackingEfficiency``: 0.70 / 0.95 (|η| ≤ 1.5) and
    0.60 / 0.85 (1.5 < |η| ≤ 2.5) for pT in (0.1, 1] / above 1 GeV; 0 otherwise."""
    return _tracking(pt, eta, (0.70, 0.95), (0.60, 0.85))


def electron_tracking_efficiency(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``Efficiency ElectronTrackingEfficiency``.

    .. math:: ε = \\begin{cases} 0.73 / 0.95 / 0.99 & |η| ≤ 1.5,\\ p_T ∈ (0.1,1] / (1,100] / >100\\\\
              0.50 / 0.83 / 0.90 & 1.5 < |η| ≤ 2.5 \\end{cases}, \\quad 0 \\text{ otherwise}.
    """
    a = np.abs(eta)
    barrel, endcap = a <= 1.5, (a > 1.5) & (a <= 2.5)
    low, mid, high = (pt > 0.1) & (pt <= 1.0), (pt > 1.0) & (pt <= 100.0), pt > 100.0
    return (
        barrel * (0.73 * low + 0.95 * mid + 0.99 * high)
        + endcap * (0.50 * low + 0.83 * mid + 0.90 * high)
    ).astype(np.float64)


def electron_id_efficiency(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``Efficiency ElectronEfficiency`` (applied to the smeared pT):
    0.95 for |η| ≤ 1.5, 0.85 for 1.5 < |η| ≤ 2.5, both for pT > 10 GeV; 0 otherwise."""
    a = np.abs(eta)
    return ((pt > 10.0) * (0.95 * (a <= 1.5) + 0.85 * ((a > 1.5) & (a <= 2.5)))).astype(np.float64)


def electron_efficiency(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Total electron efficiency, tracking × identification (pT the true pT)."""
    return electron_tracking_efficiency(pt, eta) * electron_id_efficiency(pt, eta)


def muon_tracking_efficiency(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``Efficiency MuonTrackingEfficiency``: 0.75 / 0.99 (|η| ≤ 1.5) and
    0.70 / 0.98 (1.5 < |η| ≤ 2.5) for pT in (0.1, 1] / above 1 GeV."""
    return _tracking(pt, eta, (0.75, 0.99), (0.70, 0.98))


def muon_id_efficiency(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``Efficiency MuonEfficiency``: 0.95 for |η| ≤ 2.4 and 10 < pT ≤ 1000 GeV,
    0.95·exp(0.5 − 5·10⁻⁴ pT) above 1 TeV, 0 otherwise."""
    inside = (np.abs(eta) <= 2.4) & (pt > 10.0)
    val = np.where(pt <= 1.0e3, 0.95, 0.95 * np.exp(0.5 - pt * 5.0e-4))
    return (inside * val).astype(np.float64)


def muon_efficiency(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Total muon efficiency, tracking × identification (pT the true pT); isolation
    (``MuonIsolation``, Σ pT / pT ≤ 0.25 within ΔR < 0.5) comes on top."""
    return muon_tracking_efficiency(pt, eta) * muon_id_efficiency(pt, eta)


# --------------------------------------------------------------------------- resolutions


def electron_resolution(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``MomentumSmearing ElectronMomentumSmearing``: relative pT resolution σ/pT.

    .. math:: σ/p_T = \\sqrt{a^2 + p_T^2 b^2},\\ (a, b) = (0.03, 1.3·10^{-3}),
              (0.05, 1.7·10^{-3}), (0.15, 3.1·10^{-3}) \\text{ for } |η| ≤ 0.5, ≤ 1.5, ≤ 2.5.
    """
    return _tracker_resolution(pt, eta, ((0.03, 1.3e-3), (0.05, 1.7e-3), (0.15, 3.1e-3)))


def muon_resolution(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``MomentumSmearing MuonMomentumSmearing``: σ/pT = √(a² + pT² b²) with (a, b) =
    (0.01, 1.0e-4), (0.015, 1.5e-4), (0.025, 3.5e-4) in the same |η| regions as electrons."""
    return _tracker_resolution(pt, eta, ((0.01, 1.0e-4), (0.015, 1.5e-4), (0.025, 3.5e-4)))


def charged_hadron_resolution(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``MomentumSmearing ChargedHadronMomentumSmearing``: σ/pT = √(a² + pT² b²) with
    (a, b) = (0.01, 1.5e-4), (0.015, 2.5e-4), (0.025, 5.5e-4)."""
    return _tracker_resolution(pt, eta, ((0.01, 1.5e-4), (0.015, 2.5e-4), (0.025, 5.5e-4)))


def _tracker_resolution(
    pt: np.ndarray, eta: np.ndarray, ab: tuple[tuple[float, float], ...]
) -> np.ndarray:
    a = np.abs(eta)
    regions = (a <= 0.5, (a > 0.5) & (a <= 1.5), (a > 1.5) & (a <= 2.5))
    out = np.zeros(np.broadcast(pt, eta).shape, dtype=np.float64)
    for mask, (c0, c1) in zip(regions, ab, strict=True):
        out = np.where(mask & (pt > 0.1), np.sqrt(c0**2 + pt**2 * c1**2), out)
    return out


def ecal_resolution(e: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``SimpleCalorimeter ECal``: absolute energy resolution σ(E), GeV.

    .. math:: σ = f(η)\\sqrt{0.008^2E^2 + 0.11^2E + 0.40^2},\\ f = 1 + 0.64η^2\\ (|η| ≤ 1.5),
              \\ 2.16 + 5.6(|η| − 2)^2\\ (|η| ≤ 2.5);\\ \\sqrt{0.107^2E^2 + 2.08^2E}\\ (|η| ≤ 5).
    """
    a = np.abs(eta)
    core = np.sqrt(e**2 * 0.008**2 + e * 0.11**2 + 0.40**2)
    fwd = np.sqrt(e**2 * 0.107**2 + e * 2.08**2)
    return np.select(
        [a <= 1.5, a <= 2.5, a <= 5.0],
        [(1.0 + 0.64 * eta**2) * core, (2.16 + 5.6 * (a - 2.0) ** 2) * core, fwd],
        0.0,
    )


def hcal_resolution(e: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``SimpleCalorimeter HCal``: σ(E) = √(0.05² E² + 1.5² E) for |η| ≤ 3 and
    √(0.13² E² + 2.7² E) for 3 < |η| ≤ 5, GeV."""
    a = np.abs(eta)
    return np.select(
        [a <= 3.0, a <= 5.0],
        [np.sqrt(e**2 * 0.050**2 + e * 1.50**2), np.sqrt(e**2 * 0.130**2 + e * 2.70**2)],
        0.0,
    )


def jet_energy_scale(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``EnergyScale JetEnergyScale``: the jet four-momentum is multiplied by

    .. math:: s = \\sqrt{(2.5 - 0.15|η|)^2 / p_T + 1}.
    """
    return np.sqrt((2.5 - 0.15 * np.abs(eta)) ** 2 / pt + 1.0)


# --------------------------------------------------------------------------- random draws


def log_normal(mean: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Delphes' ``LogNormal(mean, sigma)``: a log-normal draw with the given mean and
    standard deviation (``MomentumSmearing``, ``SimpleCalorimeter``); 0 where mean ≤ 0.

    .. math:: b = \\sqrt{\\ln(1 + σ^2/μ^2)},\\ a = \\ln μ − b^2/2,\\ x = e^{a + b\\,\\mathcal N(0,1)}.
    """
    mean = np.asarray(mean, dtype=np.float64)
    z = rng.standard_normal(mean.shape)
    pos = mean > 0
    safe = np.where(pos, mean, 1.0)
    b = np.sqrt(np.log1p((np.asarray(sigma, dtype=np.float64) / safe) ** 2))
    return np.where(pos, np.exp(np.log(safe) - 0.5 * b**2 + b * z), 0.0)


def accept(prob: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bernoulli draws with probabilities ``prob`` (clipped to [0, 1])."""
    prob = np.clip(np.asarray(prob, dtype=np.float64), 0.0, 1.0)
    return rng.random(prob.shape) < prob
