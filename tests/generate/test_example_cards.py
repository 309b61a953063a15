"""``otus generate`` with the example process cards (examples/cards): Z → μμ and W → e ν.

Physics checks at detector level (the Z peak in m_μμ, the Jacobian edge of the W
transverse mass), generator cuts (none on neutrinos), and the detector's muon response and
missing ET against the Delphes CMS card.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

from otus.generate import generate
from otus.generate.pythia import PythiaSource, _passes_cuts
from otus.generate.reconstruct import reconstruct
from otus.generate.validate import card_closure, lepton_response, missing_et_response
from otus.io.h5 import Events, read_events
from otus.physics import fourvec as fv
from otus.physics.observables import M_W, observables
from otus.physics.selection import build_x
from otus.processes import load_card

pytestmark = pytest.mark.generate

CARDS = Path(__file__).resolve().parents[2] / "examples" / "cards"
M_Z = 91.1876


@pytest.fixture(scope="module")
def zmumu(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("zmumu") / "sample"
    s = generate(CARDS / "zmumu.yaml", 400, seed=31, out_dir=out, progress=False)
    return s, read_events(out / "events.h5")


@pytest.fixture(scope="module")
def wenu():
    """600 W → e ν events through the generator's own chain (Pythia, detector, selection)."""
    proc = load_card(CARDS / "wenu.yaml")
    z, _, particles = PythiaSource(proc, 32).next_batch(600)
    x, x_pass = build_x(proc, reconstruct(particles, np.random.default_rng(33)))
    return Events(proc, z=z.astype(np.float32), x=x, x_pass=x_pass)


def test_neutrinos_are_not_cut_at_generator_level():
    # a forward, soft neutrino with a central hard positron passes; the positron alone is cut
    assert _passes_cuts([(-11, 30.0, 0.0, 10.0), (12, 2.0, 0.0, 100.0)])
    assert not _passes_cuts([(-11, 5.0, 0.0, 10.0), (12, 30.0, 0.0, 0.0)])
    assert not _passes_cuts([(13, 30.0, 0.0, 300.0), (-13, 30.0, 0.0, 0.0)])  # |η| ≈ 3


def test_zmumu_generates_with_the_z_peak_at_detector_level(zmumu):
    s, ev = zmumu
    assert ev.process.name == "zmumu" and len(ev) == 400
    # two muons, each ~0.94 (tracking × identification) and |η| < 2.4 of |η| < 2.5
    assert 0.6 < s["pass_rate"] < 0.9
    m_z = observables(ev.process, ev.z, "z")["m_mumu"]
    assert m_z.min() > 60 and m_z.max() < 120
    m_x = observables(ev.process, ev.x[ev.x_pass], "x")["m_mumu"]
    hist, edges = np.histogram(m_x, bins=np.arange(61.0, 121.0, 4.0))
    assert abs(edges[np.argmax(hist)] + 2.0 - M_Z) < 4.0
    assert abs(np.median(m_x) - M_Z) < 2.0
    assert np.mean(np.abs(m_x - M_Z) < 10) > 0.7


def test_wenu_transverse_mass_has_its_jacobian_edge_at_m_w(wenu):
    ev = wenu
    proc = ev.process
    assert proc.name == "wenu"
    # one positron: tracking × identification × isolation, |η| < 2.5 as at generator level
    assert 0.55 < ev.x_pass.mean() < 0.9
    z = fv.objects(ev.z.astype(np.float64), 2)
    # no cut on the neutrino: some fly beyond the tracker
    assert np.mean(np.abs(fv.eta(z[:, 1])) > 2.5) > 0.05
    mt_z = observables(proc, ev.z, "z")["mt_enu"]
    # parton level: the edge sits at m_W (above it only the Breit-Wigner tail)
    hist, edges = np.histogram(mt_z, bins=np.arange(20.0, 101.0, 5.0))
    assert 65 <= edges[np.argmax(hist)] <= 80
    assert np.mean(mt_z > M_W + 5) < 0.03
    assert np.mean(mt_z > M_W - 10) > 0.2
    # detector level: the same edge, smeared by the MET resolution
    mt_x = observables(proc, ev.x[ev.x_pass], "x")["mt_emet"]
    hist, edges = np.histogram(mt_x, bins=np.arange(20.0, 101.0, 5.0))
    assert 60 <= edges[np.argmax(hist)] <= 80
    assert np.mean(mt_x > M_W + 10) < 0.1
    assert np.mean(np.abs(mt_x - 72) < 12) > 0.25


def test_generate_wenu_writes_charge_conserving_lhe(tmp_path: Path):
    s = generate(CARDS / "wenu.yaml", 100, seed=34, out_dir=tmp_path / "w", progress=False)
    assert 0.4 < s["pass_rate"] < 0.95
    # W+ only: the incoming quarks carry charge +1 in every event of the LHE record
    charge = {1: -1, 2: 2, 3: -1, 4: 2, 5: -1}  # thirds of e
    with gzip.open(tmp_path / "w" / "parton.lhe.gz", "rt") as f:
        rows = [ln.split() for ln in f]
    incoming = [int(r[0]) for r in rows if len(r) == 13 and r[1] == "-1"]
    assert len(incoming) == 2 * 100
    q = np.array([np.sign(i) * charge[abs(i)] for i in incoming]).reshape(-1, 2).sum(1)
    assert np.all(q == 3)


def test_muon_efficiency_and_resolution_follow_the_card():
    """Fit the muon efficiency and pT resolution from Z → μμ against the card (10%)."""
    src = PythiaSource(load_card(CARDS / "zmumu.yaml"), 21)
    _, _, particles = src.next_batch(1500)
    reco = reconstruct(particles, np.random.default_rng(3))
    rows = card_closure(lepton_response(particles, reco, pdg=13))
    assert len(rows) == 2 * 2 + 3 * 2
    for row in rows:
        assert row["n"] > 100, row
        assert row["measured"] == pytest.approx(row["card"], rel=0.1), row


def test_missing_et_is_minus_the_energy_flow():
    """Module ``Merger MissingET``: with the resolutions switched (almost) off, MET is the
    vector sum of what no energy-flow object measures (here the neutrino and far-forward
    particles); at nominal resolution it scatters around it without bias."""
    from otus.generate.detector import DetectorOptions

    src = PythiaSource(load_card(CARDS / "wenu.yaml"), 22)
    _, _, particles = src.next_batch(500)
    sharp = missing_et_response(
        particles, reconstruct(particles, np.random.default_rng(4), DetectorOptions(1e-6))
    )
    np.testing.assert_allclose(sharp["met_px"], sharp["true_px"], atol=0.05)
    np.testing.assert_allclose(sharp["met_py"], sharp["true_py"], atol=0.05)
    nominal = missing_et_response(particles, reconstruct(particles, np.random.default_rng(4)))
    dx = nominal["met_px"] - nominal["true_px"]
    assert abs(np.mean(dx)) < 0.5 and 0.5 < np.std(dx) < 15
