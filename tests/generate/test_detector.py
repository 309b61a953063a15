"""The Delphes-CMS-card formulas and the detector chain on hand-made events (no Pythia)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from otus.errors import OtusError
from otus.generate import detector as det
from otus.generate.reconstruct import isolation_ratio, reconstruct


def test_card_efficiencies_at_known_points():
    pt = np.array([50.0, 50.0, 150.0, 5.0, 50.0])
    eta = np.array([0.3, 2.0, -1.0, 0.0, 2.6])
    np.testing.assert_allclose(
        det.electron_efficiency(pt, eta), [0.95 * 0.95, 0.83 * 0.85, 0.99 * 0.95, 0.0, 0.0]
    )
    np.testing.assert_allclose(
        det.muon_id_efficiency(np.array([50.0, 50.0, 2000.0]), np.array([2.3, 2.45, 0.0])),
        [0.95, 0.0, 0.95 * np.exp(0.5 - 1.0)],
    )


def test_card_resolutions_at_known_points():
    pt = np.array([40.0, 40.0, 40.0, 0.05])
    eta = np.array([0.2, -1.0, 2.0, 0.0])
    want = [
        np.hypot(0.03, 40 * 1.3e-3),
        np.hypot(0.05, 40 * 1.7e-3),
        np.hypot(0.15, 40 * 3.1e-3),
        0,
    ]
    np.testing.assert_allclose(det.electron_resolution(pt, eta), want)
    np.testing.assert_allclose(
        det.hcal_resolution(np.array([100.0]), np.array([1.0])),
        [np.sqrt(100**2 * 0.05**2 + 100 * 1.5**2)],
    )
    np.testing.assert_allclose(
        det.ecal_resolution(np.array([100.0]), np.array([0.0])),
        [np.sqrt(100**2 * 0.008**2 + 100 * 0.11**2 + 0.4**2)],
    )
    np.testing.assert_allclose(
        det.jet_energy_scale(np.array([30.0]), np.array([0.0])), [np.sqrt(2.5**2 / 30 + 1)]
    )


def test_log_normal_has_the_requested_mean_and_width():
    rng = np.random.default_rng(0)
    x = det.log_normal(np.full(200_000, 50.0), np.full(200_000, 5.0), rng)
    assert x.min() > 0
    assert x.mean() == pytest.approx(50.0, rel=2e-3)
    assert x.std() == pytest.approx(5.0, rel=1e-2)
    assert np.all(det.log_normal(np.zeros(3), np.ones(3), rng) == 0)


def test_bad_detector_options():
    with pytest.raises(OtusError, match="resolution_scale must be a positive number"):
        det.DetectorOptions(resolution_scale=-1.0)
    with pytest.raises(OtusError, match="energy_scale"):
        det.DetectorOptions(energy_scale=float("nan"))


def test_isolation_ratio_by_hand():
    # one event: candidate (pT 40 at η=φ=0), a 2 GeV neighbour at ΔR 0.3, a 5 GeV one at
    # ΔR 0.7 (outside), a 0.4 GeV one at ΔR 0.1 (below 0.5 GeV)
    pt = np.array([40.0, 2.0, 5.0, 0.4])
    eta = np.array([0.0, 0.3, 0.7, 0.1])
    phi = np.zeros(4)
    r = isolation_ratio(np.array([0]), np.zeros(4, dtype=int), pt, eta, phi, np.array([4]))
    np.testing.assert_allclose(r, [2.0 / 40.0])


def _events(n: int, *extra: tuple[int, float, float, float, float]) -> ak.Array:
    """n copies of one event: an e- with pT 40 GeV at η = 0.3, plus ``extra`` particles
    (id, charge, pT, η, φ)."""
    rows = [(11, -1.0, 40.0, 0.3, 0.5), *extra]
    pid, q, pt, eta, phi = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2)
    one = {"id": pid.astype(np.int64), "charge": q, "px": px, "py": py, "pz": pz, "e": e}
    flat = {k: np.tile(v, n) for k, v in one.items()}
    return ak.unflatten(ak.zip(flat), np.full(n, len(rows)))


def test_electron_efficiency_and_scale_knobs():
    pytest.importorskip("fastjet")
    n = 4000
    ev = _events(n, (12, 0.0, 30.0, -1.0, 2.5))  # a neutrino: invisible
    reco = reconstruct(ev, np.random.default_rng(1))
    frac = np.mean(ak.num(reco["Electron"]) == 1)
    assert frac == pytest.approx(0.95 * 0.95, abs=4 * np.sqrt(0.09 / n))
    assert np.all(ak.flatten(reco["Electron"].Charge) == -1)
    half = reconstruct(ev, np.random.default_rng(1), det.DetectorOptions(efficiency_scale=0.5))
    assert np.mean(ak.num(half["Electron"]) == 1) == pytest.approx(0.95 * 0.95 * 0.5, abs=0.03)
    sharp = reconstruct(
        ev, np.random.default_rng(1), det.DetectorOptions(resolution_scale=1e-6, energy_scale=1.1)
    )
    np.testing.assert_allclose(ak.flatten(sharp["Electron"].PT), 44.0, rtol=1e-5)
    # MET balances the visible electron (the neutrino is not seen)
    met = ak.to_numpy(ak.flatten(sharp["MissingET"].MET))
    np.testing.assert_allclose(met, 44.0, rtol=1e-5)


def test_non_isolated_electron_is_lost_and_becomes_jet_input():
    pytest.importorskip("fastjet")
    # 30 GeV of neutral hadrons at ΔR ≈ 0.2 from the electron: not isolated
    ev = _events(50, (130, 0.0, 30.0, 0.3, 0.7))
    reco = reconstruct(ev, np.random.default_rng(2))
    assert ak.sum(ak.num(reco["Electron"])) == 0
    assert np.all(ak.num(reco["Jet"]) == 1)  # electron and hadron clustered into one jet
    pt = ak.to_numpy(ak.flatten(reco["Jet"].PT))
    assert 45 < np.median(pt) < 90
