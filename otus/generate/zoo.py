"""The detector zoo: the detectors ``otus generate PROCESS --detector NAME`` chooses among.

=================  ========================================================  ====================
name               what it is, what differs                                  source
=================  ========================================================  ====================
``cms`` (default)  Delphes' CMS card: tracker electrons and muons            Delphes 3,
                   (log-normal σ/pT), energy-flow jets (anti-kT R = 0.5)     ``delphes_card_CMS``
                   and missing ET                                            (arXiv:1307.6346)
``atlas``          Delphes' ATLAS card: calorimeter-tower jets (R = 0.6,     Delphes 3,
                   its jet energy scale) and missing ET (muons unseen),      ``delphes_card_ATLAS``
                   ATLAS ECAL/HCAL resolutions to |η| = 4.9, wider charged-
                   hadron tracks, muon identification 0.85 for 1.5 < |η| <
                   2.7; electron and muon tracks as the CMS card
``cms_radiative``  ``cms``, and the electron's momentum measurement keeps    Bethe-Heitler (1934);
                   a Bethe-Heitler fraction z of the energy (t = 0.04 X₀ at  CMS tracker material
                   η = 0 to 0.18 X₀ at |η| = 1.4, a tenth of the CMS         (JINST 3 (2008)
                   tracker's material): a long low-side tail, ⟨z⟩ = e^(−t)   S08004)
``crystalball``    calorimetric electrons: FSR photons within ΔR < 0.1       Crystal Ball
                   dressed in; Crystal-Ball response (α = 1.2, n = 3, 21 %   (SLAC-R-236,
                   in the tail) around a core σ/E of the ATLAS card's ECal   SLAC-R-255); ATLAS
                   (1.6 % at 40 GeV); scale 1 − 0.05 e^(−pT/20 GeV);         card ``ECal``; ATLAS
                   identification turn-on in pT, ×0.3 in the crack 1.37 <    electrons
                   |η| < 1.52, none beyond 2.47; charge mis-identification   (arXiv:1902.04655)
                   0.2 % + 0.3 % η²
=================  ========================================================  ====================

Every formula is documented next to its code with its source; where a number is this zoo's
own choice (the non-Gaussian variants), its docstring says so. Muons, jets and missing ET of
the two variants are those of ``cms``.

**QED radiation and dressing.** Every built-in card showers with Pythia's QED final-state
radiation off leptons (``TimeShower:QEDshowerByL``, on by default and never switched off), so
electrons arrive with their FSR photons. The Delphes cards do not dress electrons: an
electron is its track, and its FSR photons are separate ECAL deposits that count in its
isolation (``cms``, ``atlas``, ``cms_radiative``). ``crystalball`` adds photons within
ΔR < 0.1 to the electron before the detector, as a calorimeter cluster holds them; its truth
reference in :mod:`otus.generate.validate` is the electron dressed the same way.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from otus.errors import OtusError
from otus.generate import detector as det
from otus.generate.detector import BetheHeitler, CrystalBall, Detector

# --------------------------------------------------------------------------- Delphes ATLAS card
# cards/delphes_card_ATLAS.tcl of Delphes 3 (the SimpleCalorimeter ECal/HCal version). Its
# tracking efficiencies (ChargedHadron-, Electron-, MuonTrackingEfficiency), electron and muon
# momentum resolutions (ElectronMomentumSmearing, MuonMomentumSmearing), ElectronEfficiency
# and isolation (ElectronIsolation 0.12, MuonIsolation 0.25, ΔR < 0.5, pT > 0.5 GeV) are those
# of the CMS card; the functions below are the modules that differ.


def atlas_charged_hadron_resolution(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``MomentumSmearing ChargedHadronMomentumSmearing`` (ATLAS): σ/pT = √(a² + pT² b²)
    with (a, b) = (0.06, 1.3e-3), (0.10, 1.7e-3), (0.25, 3.1e-3) for |η| ≤ 0.5, ≤ 1.5, ≤ 2.5."""
    return det._tracker_resolution(pt, eta, ((0.06, 1.3e-3), (0.10, 1.7e-3), (0.25, 3.1e-3)))


def atlas_ecal_resolution(e: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``SimpleCalorimeter ECal`` (ATLAS): σ(E) = √(0.0017² E² + 0.101² E) for
    |η| ≤ 3.2 and √(0.035² E² + 0.285² E) for 3.2 < |η| ≤ 4.9, GeV."""
    a = np.abs(eta)
    return np.select(
        [a <= 3.2, a <= 4.9],
        [np.sqrt(e**2 * 0.0017**2 + e * 0.101**2), np.sqrt(e**2 * 0.0350**2 + e * 0.285**2)],
        0.0,
    )


def atlas_hcal_resolution(e: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``SimpleCalorimeter HCal`` (ATLAS): σ(E) = √(0.0302² E² + 0.5205² E + 1.59²)
    for |η| ≤ 1.7, √(0.05² E² + 0.706² E) for |η| ≤ 3.2, √(0.0942² E² + 1.0² E) for
    |η| ≤ 4.9, GeV."""
    a = np.abs(eta)
    return np.select(
        [a <= 1.7, a <= 3.2, a <= 4.9],
        [
            np.sqrt(e**2 * 0.0302**2 + e * 0.5205**2 + 1.59**2),
            np.sqrt(e**2 * 0.0500**2 + e * 0.706**2),
            np.sqrt(e**2 * 0.0942**2 + e * 1.00**2),
        ],
        0.0,
    )


def atlas_muon_id_efficiency(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``Efficiency MuonEfficiency`` (ATLAS): 0.95 for |η| ≤ 1.5 and 0.85 for
    1.5 < |η| ≤ 2.7, both for pT > 10 GeV; 0 otherwise (tracks end at |η| = 2.5)."""
    a = np.abs(eta)
    return ((pt > 10.0) * (0.95 * (a <= 1.5) + 0.85 * ((a > 1.5) & (a <= 2.7)))).astype(np.float64)


def atlas_jet_energy_scale(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Module ``EnergyScale JetEnergyScale`` (ATLAS): s = √((3.0 − 0.2|η|)² / pT + 1)."""
    return np.sqrt((3.0 - 0.2 * np.abs(eta)) ** 2 / pt + 1.0)


# --------------------------------------------------------------------------- cms_radiative


def cms_tracker_material(eta: np.ndarray) -> np.ndarray:
    """The CMS tracker's material budget in radiation lengths, piecewise linear through
    ≈ 0.4 X₀ at η = 0, ≈ 1.8 X₀ at |η| = 1.4 and ≈ 1.0 X₀ at |η| = 2.5 (CMS, JINST 3 (2008)
    S08004, the tracker material-budget figure)."""
    return np.interp(np.abs(eta), [0.0, 1.4, 2.5], [0.4, 1.8, 1.0])


RADIATIVE_FRACTION = 0.1


def radiative_thickness(eta: np.ndarray) -> np.ndarray:
    """The thickness t(η) whose bremsstrahlung the momentum measurement misses:
    ``RADIATIVE_FRACTION`` = 0.1 of :func:`cms_tracker_material` (0.04 X₀ at η = 0, 0.18 X₀
    at |η| = 1.4: 4 % and 16 % mean loss). A stand-in (this zoo's choice) for the part of the radiation that biases a
    Kalman-filter track fit, which averages the curvature over the track; CMS describes the
    resulting low-side tail of electron momenta in JINST 10 (2015) P06005, arXiv:1502.02701."""
    return RADIATIVE_FRACTION * cms_tracker_material(eta)


# --------------------------------------------------------------------------- crystalball


def calorimeter_electron_resolution(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """σ/E of a calorimeter-measured electron: the ATLAS card's ECal (module
    ``SimpleCalorimeter ECal``), σ/E = √(0.101²/E + 0.0017²), E = pT cosh η (the Gaussian
    core of the Crystal-Ball response of ``crystalball``)."""
    e = np.maximum(pt * np.cosh(eta), 1e-12)
    return atlas_ecal_resolution(e, eta) / e


def turn_on_electron_id_efficiency(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Identification efficiency with a turn-on in pT and the ATLAS precision acceptance:

    .. math:: ε = ε_∞(η)\\,\\bigl(1 - e^{-(p_T - 7)/12}\\bigr)\\ (p_T > 10\\text{ GeV}),\\quad
              ε_∞ = 0.90\\ (|η| ≤ 1.52),\\ 0.85\\ (|η| ≤ 2.47),\\ 0 \\text{ beyond}.

    0.22 at 10 GeV, 0.66 at 20, 0.85 at 30, 0.95 at 45 (times ε_∞). The shape (a turn-on
    to a plateau near 0.9, lower in the endcaps) follows ATLAS' likelihood identification
    (arXiv:1902.04655); the numbers are this zoo's. The crack is applied on top
    (``Detector.electron_crack``).
    """
    a = np.abs(eta)
    plateau = 0.90 * (a <= 1.52) + 0.85 * ((a > 1.52) & (a <= 2.47))
    return np.where(pt > 10.0, plateau * (1.0 - np.exp(-(pt - 7.0) / 12.0)), 0.0)


def low_pt_energy_scale(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Response scale of the true pT: s = 1 − 0.05 e^(−pT/20 GeV) (0.982 at 20 GeV, 0.995
    at 45 GeV): energy lost in dead material that a calibration made at the Z peak leaves at
    low pT (this zoo's numbers; ATLAS' calibration and its non-linearity: arXiv:1908.00005)."""
    return 1.0 - 0.05 * np.exp(-np.asarray(pt) / 20.0)


def charge_flip_probability(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Probability that the electron's track has the wrong charge: 0.002 + 0.003 η², from
    0.2 % at η = 0 to 2 % at |η| = 2.4 (bremsstrahlung photons converting in the tracker;
    the size and the rise with |η| of ATLAS' measured rates, arXiv:1902.04655)."""
    return np.broadcast_to(0.002 + 0.003 * np.asarray(eta, dtype=np.float64) ** 2, np.shape(pt))


# --------------------------------------------------------------------------- the registry

CMS = Detector(
    name="cms",
    summary="Delphes CMS card: tracker leptons, energy-flow jets (R = 0.5) and missing ET",
    source="delphes_card_CMS.tcl (Delphes 3, arXiv:1307.6346)",
    electron_tracking_efficiency=det.electron_tracking_efficiency,
    muon_tracking_efficiency=det.muon_tracking_efficiency,
    charged_hadron_tracking_efficiency=det.charged_hadron_tracking_efficiency,
    electron_resolution=det.electron_resolution,
    muon_resolution=det.muon_resolution,
    charged_hadron_resolution=det.charged_hadron_resolution,
    ecal_resolution=det.ecal_resolution,
    hcal_resolution=det.hcal_resolution,
    electron_id_efficiency=det.electron_id_efficiency,
    muon_id_efficiency=det.muon_id_efficiency,
    jet_r=0.5,  # FastJetFinder FastJetFinder: anti-kT, R = 0.5, pT > 20 GeV
    jet_energy_scale=det.jet_energy_scale,
    jet_pt_min=20.0,
    iso_dr_max=0.5,  # Isolation ElectronIsolation / MuonIsolation
    iso_pt_min=0.5,
    electron_iso_ratio_max=0.12,
    muon_iso_ratio_max=0.25,
    tracker_eta_max=2.5,
    calo_eta_max=5.0,  # ECal/HCal towers end at |η| = 5
)

ATLAS = dataclasses.replace(
    CMS,
    name="atlas",
    summary="Delphes ATLAS card: calorimeter-tower jets (R = 0.6) and missing ET",
    source="delphes_card_ATLAS.tcl (Delphes 3, arXiv:1307.6346)",
    charged_hadron_resolution=atlas_charged_hadron_resolution,
    ecal_resolution=atlas_ecal_resolution,
    hcal_resolution=atlas_hcal_resolution,
    muon_id_efficiency=atlas_muon_id_efficiency,
    jet_r=0.6,  # FastJetFinder FastJetFinder: anti-kT, R = 0.6, pT > 20 GeV, on Calorimeter/towers
    jet_energy_scale=atlas_jet_energy_scale,
    calo_eta_max=4.9,  # the HCal towers and both resolution formulas end at |η| = 4.9
    towers=True,  # FastJetFinder and MissingET (Merger) read Calorimeter/towers
)

CMS_RADIATIVE = dataclasses.replace(
    CMS,
    name="cms_radiative",
    summary="CMS card with a Bethe-Heitler bremsstrahlung low-side tail on electron momenta",
    source="CMS card + Bethe-Heitler (Proc. R. Soc. A 146 (1934) 83), CMS tracker material",
    electron_radiation=BetheHeitler(radiative_thickness),
)

CRYSTALBALL = dataclasses.replace(
    CMS,
    name="crystalball",
    summary="calorimetric electrons: dressed (ΔR < 0.1), Crystal-Ball response, pT scale, "
    "η crack, ID turn-on, charge mis-ID",
    source="Crystal Ball (SLAC-R-236, SLAC-R-255), ATLAS card ECal, ATLAS electron "
    "performance (arXiv:1902.04655)",
    electron_resolution=calorimeter_electron_resolution,
    electron_id_efficiency=turn_on_electron_id_efficiency,
    electron_dressing_dr=0.1,
    electron_core=CrystalBall(alpha=1.2, n=3.0),
    electron_scale=low_pt_energy_scale,
    electron_crack=(1.37, 1.52, 0.3),  # ATLAS' barrel-endcap transition; 0.3: this zoo's
    electron_charge_flip=charge_flip_probability,
)

DETECTORS: dict[str, Detector] = {d.name: d for d in (CMS, ATLAS, CMS_RADIATIVE, CRYSTALBALL)}
"""The zoo by name; ``cms`` is the default."""


def get_detector(detector: str | Detector) -> Detector:
    """The detector called ``detector`` in :data:`DETECTORS` (a :class:`Detector` is
    returned as it is)."""
    if isinstance(detector, Detector):
        return detector
    if detector not in DETECTORS:
        raise OtusError(f"unknown detector {detector!r}; choose one of: {', '.join(DETECTORS)}")
    return DETECTORS[detector]
