"""The parametric detector: what one detector is made of, and the Delphes CMS card's formulas.

A :class:`Detector` holds every number and formula that the reconstruction
(:mod:`otus.generate.reconstruct`) reads: tracking efficiencies and momentum resolutions,
calorimeter resolutions, identification efficiencies, isolation, jets, acceptance, and, beyond
what the Delphes cards model, optional non-Gaussian electron responses
(:class:`CrystalBall`, :class:`BetheHeitler`), a pT-dependent electron energy scale, an
efficiency crack, charge mis-identification and photon dressing. The detectors that
``otus generate --detector NAME`` offers are in :mod:`otus.generate.zoo`.

The formulas below are transcribed from ``cards/delphes_card_CMS.tcl`` of Delphes 3
(de Favereau et al., JHEP 02 (2014) 057, arXiv:1307.6346; github.com/delphes/delphes), the
default detector; the card module each one comes from is named in its docstring. Arguments
are numpy arrays of transverse momentum ``pt`` (GeV), pseudorapidity ``eta`` and energy ``e``
(GeV).

Three knobs change any detector's response, e.g. to make pseudo-"data" that differ from the
simulation (all 1.0 reproduce the detector):

* ``resolution_scale`` multiplies every resolution σ (Gaussian, log-normal or Crystal-Ball
  core),
* ``energy_scale`` multiplies every reconstructed momentum (tracks, calorimeter deposits,
  hence electrons, muons, jets and MET alike),
* ``efficiency_scale`` multiplies the identification efficiencies (clipped to [0, 1]).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from otus.errors import OtusError

Formula = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A card formula: ``f(pt, eta)`` (or ``f(e, eta)`` for calorimeter resolutions)."""


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


# --------------------------------------------------------------------------- non-Gaussian responses


@dataclass(frozen=True)
class CrystalBall:
    """A Crystal-Ball response: the measured momentum is the true one times ``r = 1 + σ t``,
    with a Gaussian core and a power-law low tail (energy lost before or outside the
    measurement), truncated at r ≥ 0.

    .. math:: f(t) ∝ \\begin{cases} e^{-t^2/2} & t > -α \\\\
              A\\,(B - t)^{-n} & -1/σ ≤ t ≤ -α \\end{cases},\\quad
              A = (n/α)^n e^{-α^2/2},\\ B = n/α - α.

    References: M. Oreglia, SLAC-R-236 (1980), app. D; J. Gaiser, SLAC-R-255 (1982);
    T. Skwarnicki, DESY F31-86-02 (1986). ``sigma`` is the width of the Gaussian core; it must
    stay below 1/α.
    """

    alpha: float
    n: float

    def __post_init__(self) -> None:
        if not (self.alpha > 0 and self.n > 1 and self.n != 2):
            raise OtusError(f"CrystalBall needs alpha > 0 and n > 1 (n != 2), got {self}")

    def _tail_area(self, sigma: np.ndarray) -> np.ndarray:
        a, n = self.alpha, self.n
        sigma = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-12)
        w = self.n / a - a + np.maximum(1.0 / sigma, a)  # B − t_min
        return math.exp(-0.5 * a * a) * (n / a) ** n / (n - 1) * ((n / a) ** (1 - n) - w ** (1 - n))

    def _core_area(self) -> float:
        return math.sqrt(math.pi / 2) * (1 + math.erf(self.alpha / math.sqrt(2)))

    def tail_probability(self, sigma: np.ndarray) -> np.ndarray:
        """P(t < −α): the fraction of responses in the power-law tail."""
        tail = self._tail_area(sigma)
        return tail / (tail + self._core_area())

    def pdf(self, t: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """The normalised density of t (0 below the truncation t = −1/σ)."""
        a, n = self.alpha, self.n
        t = np.asarray(t, dtype=np.float64)
        norm = self._tail_area(sigma) + self._core_area()
        tail = math.exp(-0.5 * a * a) * (n / a) ** n * np.maximum(n / a - a - t, n / a) ** (-n)
        f = np.where(t > -a, np.exp(-0.5 * np.minimum(t * t, 1e4)), tail)
        return np.where(t >= -1.0 / np.asarray(sigma), f, 0.0) / norm

    def cdf(self, t: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """P(T ≤ t)."""
        from scipy.special import ndtr

        a, n = self.alpha, self.n
        sigma = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-12)
        t = np.maximum(np.asarray(t, dtype=np.float64), -1.0 / sigma)
        tail_area = self._tail_area(sigma)
        w, w_min = np.maximum(n / a - a - t, n / a), n / a - a + np.maximum(1.0 / sigma, a)
        below = math.exp(-0.5 * a * a) * (n / a) ** n / (n - 1) * (w ** (1 - n) - w_min ** (1 - n))
        core = math.sqrt(2 * math.pi) * (ndtr(t) - ndtr(-a))
        return np.where(t > -a, tail_area + core, below) / (tail_area + self._core_area())

    def draw(self, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Responses r = 1 + σ t, one per entry of ``sigma`` (two uniform draws each)."""
        from scipy.special import ndtr, ndtri

        a, n = self.alpha, self.n
        sigma = np.asarray(sigma, dtype=np.float64)
        branch, u = rng.random(sigma.shape), rng.random(sigma.shape)
        core = ndtri(ndtr(-a) + u * ndtr(a))  # Gaussian truncated to t > −α
        w = n / a - a + np.maximum(1.0 / np.maximum(sigma, 1e-12), a)
        u_min = (w * a / n) ** (1 - n)  # inverse of the tail's CDF, truncated at t = −1/σ
        tail = n / a - a - (n / a) * (u_min + (1 - u_min) * u) ** (1 / (1 - n))
        t = np.where(branch < self.tail_probability(sigma), tail, core)
        return 1.0 + sigma * t


@dataclass(frozen=True)
class BetheHeitler:
    """Bremsstrahlung in the material in front of the measurement: an electron crossing
    ``thickness(η)`` radiation lengths t keeps the fraction z of its energy, with the
    Bethe-Heitler density

    .. math:: f(z) = \\frac{(-\\ln z)^{c - 1}}{Γ(c)},\\quad c = t/\\ln 2,
              \\quad\\text{i.e. } -\\ln z \\sim \\mathrm{Gamma}(c, 1),\\ \\langle z\\rangle = e^{-t}.

    References: H. Bethe, W. Heitler, Proc. R. Soc. A 146 (1934) 83; the form used by track
    fits: R. Frühwirth, Comput. Phys. Commun. 154 (2003) 131. Most electrons lose almost
    nothing (for c < 1 the density of −ln z peaks at 0); a few lose most of their energy.
    """

    thickness: Callable[[np.ndarray], np.ndarray]

    def shape(self, eta: np.ndarray) -> np.ndarray:
        """c = t/ln 2 at ``eta``."""
        return np.asarray(self.thickness(np.asarray(eta, dtype=np.float64))) / math.log(2.0)

    def draw(self, eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The kept fractions z, one per entry of ``eta`` (one gamma draw each)."""
        return np.exp(-rng.standard_gamma(self.shape(eta)))

    def cdf(self, z: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """P(kept fraction ≤ z) = Q(c, −ln z), the regularised upper incomplete gamma."""
        from scipy.special import gammaincc

        return gammaincc(self.shape(eta), -np.log(np.clip(z, 1e-300, 1.0)))

    def loss_quantile(self, u: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """The ``u``-quantile of −ln z (broadcast over ``u`` and ``eta``)."""
        from scipy.special import gammaincinv

        return gammaincinv(self.shape(eta), u)


# --------------------------------------------------------------------------- the description


@dataclass(frozen=True)
class Detector:
    """One parametric detector: every number and formula the reconstruction reads.

    Tracker: ``*_tracking_efficiency(pt, eta)`` (modules ``Efficiency *TrackingEfficiency``)
    and relative momentum resolutions ``*_resolution(pt, eta)`` = σ/pT (``MomentumSmearing``,
    log-normal). Calorimeters: ``ecal_resolution(e, eta)``, ``hcal_resolution(e, eta)`` = σ(E)
    in GeV (``SimpleCalorimeter ECal``/``HCal``). Identification on the measured pT:
    ``electron_id_efficiency``, ``muon_id_efficiency`` (``Efficiency``). Isolation
    (``Isolation``): Σ pT of other objects above ``iso_pt_min`` within ``iso_dr_max``, over the
    lepton pT, at most ``*_iso_ratio_max``. Jets (``FastJetFinder``, ``EnergyScale``): anti-kT
    ``jet_r``, pT > ``jet_pt_min`` and ``jet_energy_scale(pt, eta)``; from the energy flow, or
    from calorimeter towers when ``towers`` (which then also make the missing ET). Acceptance:
    ``tracker_eta_max``, ``calo_eta_max``.

    Beyond the cards (the defaults leave a card as it is), for electrons:
    ``electron_dressing_dr`` (photons within that ΔR are added to the electron before the
    detector, as a calorimeter cluster holds them), ``electron_core`` (a :class:`CrystalBall`
    instead of the log-normal, with σ = ``electron_resolution``), ``electron_radiation`` (a
    :class:`BetheHeitler` loss on the electron's momentum measurement),
    ``electron_scale(pt, eta)`` (a response scale, of the true pT), ``electron_crack``
    ((|η| low, high, factor): the identification efficiency is multiplied by ``factor``
    there), ``electron_charge_flip(pt, eta)`` (the probability of the wrong charge).
    """

    name: str
    summary: str
    source: str
    electron_tracking_efficiency: Formula
    muon_tracking_efficiency: Formula
    charged_hadron_tracking_efficiency: Formula
    electron_resolution: Formula
    muon_resolution: Formula
    charged_hadron_resolution: Formula
    ecal_resolution: Formula
    hcal_resolution: Formula
    electron_id_efficiency: Formula
    muon_id_efficiency: Formula
    jet_r: float
    jet_energy_scale: Formula
    jet_pt_min: float = 20.0
    iso_dr_max: float = 0.5
    iso_pt_min: float = 0.5
    electron_iso_ratio_max: float = 0.12
    muon_iso_ratio_max: float = 0.25
    tracker_eta_max: float = 2.5
    calo_eta_max: float = 5.0
    towers: bool = False
    electron_dressing_dr: float = 0.0
    electron_core: CrystalBall | None = None
    electron_radiation: BetheHeitler | None = None
    electron_scale: Formula | None = None
    electron_crack: tuple[float, float, float] | None = None
    electron_charge_flip: Formula | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_]+", self.name):
            raise OtusError(f"detector name must match [a-z0-9_]+, got {self.name!r}")
        for key in ("jet_r", "jet_pt_min", "iso_dr_max", "tracker_eta_max", "calo_eta_max"):
            if not getattr(self, key) > 0:
                raise OtusError(f"detector {self.name!r}: {key} must be positive")
        if self.electron_dressing_dr < 0:
            raise OtusError(f"detector {self.name!r}: electron_dressing_dr must be >= 0")

    def electron_identification(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Identification efficiency of electrons, the crack included."""
        eff = self.electron_id_efficiency(pt, eta)
        if self.electron_crack is not None:
            lo, hi, factor = self.electron_crack
            a = np.abs(eta)
            eff = np.where((a > lo) & (a < hi), factor * eff, eff)
        return eff

    def electron_efficiency(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Total electron efficiency, tracking × identification (before isolation)."""
        return self.electron_tracking_efficiency(pt, eta) * self.electron_identification(pt, eta)

    def muon_efficiency(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Total muon efficiency, tracking × identification (before isolation)."""
        return self.muon_tracking_efficiency(pt, eta) * self.muon_id_efficiency(pt, eta)
